"""Testinfra checks of the flag_rollout scenario: the env file, the audit log and the service."""

import json
import os
from pathlib import Path

ROOT = Path(os.environ["PRODREADY_ROOT"])
SANDBOX = json.loads((Path(os.environ.get("PRODREADY_SANDBOX_DIR", ROOT / ".sandbox")) / "sandbox.json").read_text())
APP_ROOT = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "flag_rollout-app")
PORT = SANDBOX["services"]["haproxy"]["slots"]["s16"]["servers"]["blue"]
SUPERVISORCTL = "%s/.venv/bin/supervisorctl -c %s" % (ROOT, SANDBOX["services"]["supervisor"]["config"])

EXPECTED_ENV = (
    "# sample app settings\n"
    "DATABASE_URL=postgresql://app@127.0.0.1/app\n"
    "ENABLE_PO_CACHING=true\n"
    "ENABLE_PO_QUERY_OPTIMIZATION=true\n"
    "ENABLE_PERFORMANCE_MONITORING=true\n"
    "ENABLE_CACHE_METRICS=true\n"
)


def test_env_file_holds_both_stages_once_and_keeps_its_mode(host):
    env = host.file(os.path.join(APP_ROOT, ".env"))
    assert env.exists
    assert env.content_string == EXPECTED_ENV
    assert env.mode == 0o640


def test_audit_log_has_one_line_per_transition_and_is_private(host):
    log = host.file(os.path.join(APP_ROOT, "audit.log"))
    assert log.mode == 0o600
    entries = [json.loads(line) for line in log.content_string.splitlines()]
    # The idempotence run changed nothing, so it wrote nothing.
    assert [(e["stage"], e["action"]) for e in entries] == [
        ("week-2", "apply"), ("week-2", "gate-pass"), ("week-3", "apply"), ("week-3", "gate-pass")]
    assert entries[2]["flags"] == {"ENABLE_PO_CACHING": True, "ENABLE_CACHE_METRICS": True}


def test_the_service_runs_under_supervisor_and_listens(host):
    assert "RUNNING" in host.check_output("%s status molecule_flags" % SUPERVISORCTL)
    assert host.socket("tcp://127.0.0.1:%d" % PORT).is_listening


def test_the_service_was_restarted_and_serves_the_new_flags(host):
    health = json.loads(host.check_output("curl -fsS http://127.0.0.1:%d/health" % PORT))
    assert health["status"] == "healthy"
    assert health["flags"]["ENABLE_PO_CACHING"] == "true"
    assert health["flags"]["ENABLE_CACHE_METRICS"] == "true"
    assert health["flags"]["ENABLE_PO_QUERY_OPTIMIZATION"] == "true"
    started_with = int(host.file(os.path.join(APP_ROOT, "prepare.pid")).content_string)
    assert health["pid"] != started_with
    assert host.process.filter(pid=health["pid"])[0].args.endswith("flagapp.py %d %s/.env" % (PORT, APP_ROOT))
