"""Testinfra checks of the flag_rollout scenario: the env file and the audit log."""

import json
import os

APP_ROOT = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "flag_rollout-app")

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
