# -*- coding: utf-8 -*-
"""deploy_state through real ansible-playbook: state.json and audit.log on disk."""

import json
import os
import stat

import yaml

from helpers import run_module

from ansible_collections.prodready.deploy.plugins.modules import deploy_state

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations",
                      "_stdout", "skipped", "exception", "diff"}


def test_update_remove_idempotent_and_audit(tmp_path):
    state = tmp_path / "state.json"
    log = tmp_path / "audit.log"
    first = run_module("deploy_state", dict(
        path=str(state), update={"live_color": "blue", "versions": {"blue": "1.0"},
                                 "backup_path": "/b/pre-1.0.dump"},
        audit_log=str(log), audit={"action": "deploy", "version": "1.0", "result": "ok"}))
    assert not first.get("failed"), first["_stdout"]
    assert first["changed"] is True and first["previous"] == {}
    assert set(first) - COMMON_RESULT_KEYS <= set(yaml.safe_load(deploy_state.RETURN))
    assert json.loads(state.read_text()) == {"live_color": "blue", "versions": {"blue": "1.0"},
                                             "backup_path": "/b/pre-1.0.dump"}
    assert stat.S_IMODE(os.stat(str(state)).st_mode) == 0o640

    second = run_module("deploy_state", dict(
        path=str(state), update={"live_color": "green", "backup_path": None},
        audit_log=str(log), audit={"action": "switch", "to": "green"}))
    assert second["changed"] is True
    assert second["previous"]["live_color"] == "blue"
    assert json.loads(state.read_text()) == {"live_color": "green", "versions": {"blue": "1.0"}}

    same = run_module("deploy_state", dict(path=str(state), update={"live_color": "green"}))
    assert same["changed"] is False and same["audit_line"] is None

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [x["action"] for x in lines] == ["deploy", "switch"]
    assert lines[1] == second["audit_line"]
    assert all(x["time"].endswith("Z") and x["user"] and x["host"] for x in lines)
    assert stat.S_IMODE(os.stat(str(log)).st_mode) == 0o600


def test_corrupt_state_refused_bytes_untouched(tmp_path):
    state = tmp_path / "state.json"
    corrupt = b'{"live_color": "blue",\n'
    state.write_bytes(corrupt)
    result = run_module("deploy_state", dict(path=str(state), update={"live_color": "green"}))
    assert result["failed"]
    assert str(state) in result["msg"] and "not valid JSON" in result["msg"]
    assert "Traceback" not in result["_stdout"]
    assert state.read_bytes() == corrupt


def test_check_mode_and_diff_write_nothing(tmp_path):
    state = tmp_path / "state.json"
    state.write_text('{"live_color": "blue"}')
    before = state.read_bytes()
    log = tmp_path / "audit.log"
    result = run_module("deploy_state", dict(path=str(state), update={"live_color": "green"},
                                             audit_log=str(log), audit={"action": "switch"}),
                        check=True, diff=True)
    assert result["changed"] is True
    assert result["state"] == {"live_color": "green"}
    assert '"green"' in result["diff"]["after"] and '"blue"' in result["diff"]["before"]
    assert state.read_bytes() == before
    assert not log.exists()


def test_bad_input_is_a_message(tmp_path):
    result = run_module("deploy_state", dict(path=str(tmp_path), update={"a": 1}))
    assert result["failed"] and "is a directory" in result["msg"]
    result = run_module("deploy_state", dict(path=str(tmp_path / "s.json"), audit={"a": 1}))
    assert result["failed"] and "audit_log" in result["msg"]
