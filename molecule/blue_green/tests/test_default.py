"""Verify the blue_green converge: the release is live behind the router, state recorded."""

import json
import os
from pathlib import Path

import requests

ROOT = Path(os.environ["PRODREADY_ROOT"])
SANDBOX = json.loads((Path(os.environ.get("PRODREADY_SANDBOX_DIR", ROOT / ".sandbox")) / "sandbox.json").read_text())
APP_ROOT = Path(SANDBOX["apps_dir"]) / "molecule_bg"


def test_state_records_the_live_release(host):
    state = json.loads(host.file(str(APP_ROOT / "state.json")).content_string)
    assert state["live_version"] == "1.0.0"
    assert state["live_color"] in ("blue", "green")
    assert host.file(str(APP_ROOT / "releases" / "1.0.0" / ".release.json")).exists


def test_router_serves_the_release():
    port = SANDBOX["services"]["haproxy"]["slots"]["s7"]["port"]
    body = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    assert body["version"] == "1.0.0" and body["status"] == "healthy"


def test_audit_log_has_one_successful_deploy(host):
    audit = host.file(str(APP_ROOT / "audit.log"))
    assert audit.mode == 0o600
    lines = [json.loads(line) for line in audit.content_string.splitlines()]
    assert [(e["action"], e["result"], e["version"]) for e in lines] == [("deploy", "success", "1.0.0")]


def test_the_live_color_runs_under_supervisor(host):
    state = json.loads(host.file(str(APP_ROOT / "state.json")).content_string)
    sup = SANDBOX["services"]["supervisor"]
    out = host.check_output(f"{ROOT}/.venv/bin/supervisorctl -c {sup['config']} status molecule_bg-{state['live_color']}")
    assert "RUNNING" in out
