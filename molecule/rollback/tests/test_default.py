"""Verify the rollback converge: 1.0.0 serves again, the rollback is recorded and audited."""

import json
import os
from pathlib import Path

import requests

ROOT = Path(os.environ["PRODREADY_ROOT"])
SANDBOX = json.loads((Path(os.environ.get("PRODREADY_SANDBOX_DIR", ROOT / ".sandbox")) / "sandbox.json").read_text())
APP_ROOT = Path(SANDBOX["apps_dir"]) / "molecule_rb"
SLOT = SANDBOX["services"]["haproxy"]["slots"]["s2"]


def state(host):
    return json.loads(host.file(str(APP_ROOT / "state.json")).content_string)


def test_router_serves_the_previous_version():
    body = requests.get("http://127.0.0.1:%d/health" % SLOT["port"], timeout=5).json()
    assert body["version"] == "1.0.0" and body["status"] == "healthy"


def test_state_records_the_rollback(host):
    st = state(host)
    assert st["live_version"] == "1.0.0" and st.get("previous_version") is None  # null removes the key
    assert st["last_rollback"]["from"] == "1.1.0" and st["last_rollback"]["to"] == "1.0.0"
    assert st["colors"][st["live_color"]] == "1.0.0"


def test_audit_log_has_every_rollback_step(host):
    audit = host.file(str(APP_ROOT / "audit.log"))
    lines = [json.loads(line) for line in audit.content_string.splitlines()]
    deploys = [(e["action"], e["result"], e["version"]) for e in lines if e["action"] == "deploy"]
    assert deploys == [("deploy", "success", "1.0.0"), ("deploy", "success", "1.1.0")]
    steps = [(e["step"], e["result"]) for e in lines if e["action"] == "rollback"]
    assert steps == [("switch", "success"), ("verify", "success"), ("finalize", "success")]


def test_the_rolled_back_color_is_stopped_and_the_live_one_runs(host):
    st = state(host)
    sup = SANDBOX["services"]["supervisor"]
    ctl = f"{ROOT}/.venv/bin/supervisorctl -c {sup['config']} status "
    assert "RUNNING" in host.run(ctl + f"molecule_rb-{st['live_color']}").stdout
    assert "STOPPED" in host.run(ctl + f"molecule_rb-{st['previous_color']}").stdout
