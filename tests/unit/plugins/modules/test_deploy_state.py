# -*- coding: utf-8 -*-
"""Unit tests of the deploy_state module: docs agree with the code, files on disk."""

import json
import os
import stat
import sys

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.prodready.deploy.plugins.modules import deploy_state

sys.path.insert(0, os.path.dirname(__file__))
from _db_modules_helpers import documented_attributes  # noqa: E402

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations"}


def run_main(capsys, args, check=False, diff=False):
    module_args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(module_args):
        with pytest.raises(SystemExit):
            deploy_state.main()
    return json.loads(capsys.readouterr().out)


def test_documented_options_match_argument_spec():
    doc = yaml.safe_load(deploy_state.DOCUMENTATION)
    options = doc["options"]
    spec = deploy_state.argument_spec()
    assert set(options) == set(spec)
    for name, opt in spec.items():
        assert options[name].get("type", "str") == opt.get("type", "str"), name
        assert options[name].get("default") == opt.get("default"), name
        assert bool(options[name].get("required", False)) == bool(opt.get("required", False))
    attributes = documented_attributes(deploy_state)
    assert set(attributes) == {"check_mode", "diff_mode", "platform", "action_group"}
    assert all(a.get("description") for a in attributes.values())


def test_examples_use_documented_options():
    options = yaml.safe_load(deploy_state.DOCUMENTATION)["options"]
    for task in yaml.safe_load(deploy_state.EXAMPLES):
        assert set(task["prodready.deploy.deploy_state"]) <= set(options), task["name"]


def test_every_returned_key_is_documented(tmp_path, capsys):
    documented = set(yaml.safe_load(deploy_state.RETURN))
    result = run_main(capsys, dict(path=str(tmp_path / "state.json"), update={"a": 1},
                                   audit_log=str(tmp_path / "audit.log"), audit={"x": 1},
                                   release_lock={"path": str(tmp_path / "deploy.lock"), "run_id": "r1"}),
                      diff=True)
    assert not result.get("failed"), result
    assert "diff" in result
    assert set(result) - COMMON_RESULT_KEYS <= documented
    assert documented <= set(result) | COMMON_RESULT_KEYS


def test_new_file_mode_and_content(tmp_path, capsys):
    path = tmp_path / "state.json"
    result = run_main(capsys, dict(path=str(path), update={"live_color": "blue", "x": None}))
    assert result["changed"] is True
    assert result["previous"] == {} and result["state"] == {"live_color": "blue"}
    assert json.loads(path.read_text()) == {"live_color": "blue"}
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_existing_mode_kept_and_idempotent(tmp_path, capsys):
    path = tmp_path / "state.json"
    path.write_text('{"a": 1}')
    os.chmod(str(path), 0o600)
    result = run_main(capsys, dict(path=str(path), update={"b": 2}))
    assert result["changed"] and result["state"] == {"a": 1, "b": 2}
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    again = run_main(capsys, dict(path=str(path), update={"b": 2}))
    assert again["changed"] is False and again["previous"] == again["state"]


def test_missing_file_without_update_is_not_created(tmp_path, capsys):
    path = tmp_path / "state.json"
    result = run_main(capsys, dict(path=str(path)))
    assert result["changed"] is False and result["state"] == {}
    assert not path.exists()


def test_missing_file_create_false_fails(tmp_path, capsys):
    result = run_main(capsys, dict(path=str(tmp_path / "state.json"), create=False,
                                   update={"a": 1}))
    assert result["failed"] and "does not exist (create=false)" in result["msg"]


def test_corrupt_file_refused_untouched(tmp_path, capsys):
    path = tmp_path / "state.json"
    path.write_bytes(b'{"live_color": "bl')
    result = run_main(capsys, dict(path=str(path), update={"live_color": "green"}))
    assert result["failed"]
    assert str(path) in result["msg"] and "not valid JSON" in result["msg"]
    assert path.read_bytes() == b'{"live_color": "bl'


def test_audit_without_log_fails(tmp_path, capsys):
    result = run_main(capsys, dict(path=str(tmp_path / "s.json"), audit={"a": 1}))
    assert result["failed"] and "audit_log" in result["msg"]


def test_check_mode_writes_nothing(tmp_path, capsys):
    path = tmp_path / "state.json"
    log = tmp_path / "audit.log"
    result = run_main(capsys, dict(path=str(path), update={"a": 1}, audit_log=str(log),
                                   audit={"action": "x"}), check=True, diff=True)
    assert result["changed"] and result["state"] == {"a": 1}
    assert result["audit_line"]["action"] == "x"
    assert result["diff"]["after"].startswith("{")
    assert not path.exists() and not log.exists()


def test_audit_lines_appended(tmp_path, capsys):
    path = tmp_path / "state.json"
    log = tmp_path / "audit.log"
    for n in range(3):
        result = run_main(capsys, dict(path=str(path), audit_log=str(log),
                                       audit={"action": "deploy", "n": n}))
        assert result["changed"] is True
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["n"] for x in lines] == [0, 1, 2]
    assert set(lines[0]) == {"action", "n", "time", "user", "host"}
    assert stat.S_IMODE(os.stat(str(log)).st_mode) == 0o600


def test_release_lock_ends_the_deploy_in_the_same_call_and_never_takes_anothers(tmp_path, capsys):
    lock = tmp_path / "deploy.lock"
    lock.write_text(json.dumps({"run_id": "r1", "owner": "ci", "since": "2026-12-07T00:00:00Z"}))
    args = dict(path=str(tmp_path / "state.json"), update={"live_version": "1.1"},
                audit_log=str(tmp_path / "audit.log"), audit={"action": "deploy"},
                release_lock={"path": str(lock), "run_id": "r1"})
    assert run_main(capsys, args, check=True)["lock_released"] is True and lock.exists()  # check mode: would
    result = run_main(capsys, args)
    assert result["lock_released"] is True and not lock.exists()
    assert json.loads((tmp_path / "state.json").read_text()) == {"live_version": "1.1"}
    assert run_main(capsys, args)["lock_released"] is False  # no lock: nothing to release, no error
    # Another run's lock: the state and the audit line are written, the lock is left, the
    # failure names the option and the holder.
    lock.write_text(json.dumps({"run_id": "r2", "owner": "alice", "since": "2026-12-07T00:00:00Z"}))
    failed = run_main(capsys, dict(args, update={"live_version": "1.2"}))
    assert failed["failed"] is True and failed["msg"].startswith("release_lock: ") and "alice" in failed["msg"]
    assert json.loads(lock.read_text())["run_id"] == "r2"
    assert json.loads((tmp_path / "state.json").read_text()) == {"live_version": "1.2"}
    assert len((tmp_path / "audit.log").read_text().splitlines()) == 3
