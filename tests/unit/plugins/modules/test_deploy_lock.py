# -*- coding: utf-8 -*-
"""Unit tests of the deploy_lock module: docs agree with the code, lock files on disk."""

import json
import os
import stat
import time

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.prodready.deploy.plugins.modules import deploy_lock
from ansible_collections.prodready.deploy.plugins.module_utils import _lockfile

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations"}


def run_main(capsys, args, check=False):
    module_args = dict(args, _ansible_check_mode=check)
    with patch_module_args(module_args):
        with pytest.raises(SystemExit):
            deploy_lock.main()
    return json.loads(capsys.readouterr().out)


def write_lock(path, run_id, age):
    record = _lockfile.make_record("bob@old", run_id, time.time() - age, "web1", 1)
    path.write_bytes(_lockfile.render_record(record))
    return record


def test_documented_options_match_argument_spec():
    doc = yaml.safe_load(deploy_lock.DOCUMENTATION)
    options = doc["options"]
    spec = deploy_lock.argument_spec()
    assert set(options) == set(spec)
    for name, opt in spec.items():
        assert options[name].get("type", "str") == opt.get("type", "str"), name
        assert options[name].get("default") == opt.get("default"), name
        assert options[name].get("choices") == opt.get("choices"), name
        assert bool(options[name].get("required", False)) == bool(opt.get("required", False))
        assert options[name].get("aliases") == opt.get("aliases"), name
    assert all(a.get("description") for a in doc["attributes"].values())
    for task in yaml.safe_load(deploy_lock.EXAMPLES):
        assert set(task["prodready.deploy.deploy_lock"]) <= set(options), task["name"]


def test_every_returned_key_is_documented(tmp_path, capsys):
    documented = set(yaml.safe_load(deploy_lock.RETURN))
    result = run_main(capsys, dict(path=str(tmp_path / "l"), run_id="a"))
    assert set(result) - COMMON_RESULT_KEYS == documented
    failed = run_main(capsys, dict(path=str(tmp_path / "l"), run_id="b"))
    assert failed["failed"]
    assert set(failed) - COMMON_RESULT_KEYS <= documented


def without_beat(holder):
    """A holder record as written to the file (the heartbeat is read from its mtime)."""
    return dict((key, value) for key, value in holder.items() if key not in ("beat_epoch", "heartbeat"))


def test_acquire_reentrant_release(tmp_path, capsys):
    lock = tmp_path / "deploy.lock"
    first = run_main(capsys, dict(path=str(lock), run_id="r1", owner="me"))
    assert first["changed"] and first["acquired"]
    assert stat.S_IMODE(os.stat(str(lock)).st_mode) == 0o600
    on_disk = json.loads(lock.read_text())
    assert without_beat(first["holder"]) == on_disk
    assert set(on_disk) == {"owner", "run_id", "since", "since_epoch", "host", "pid"}
    # The holder as read back: its last heartbeat is the file's modification time.
    assert first["holder"]["beat_epoch"] == pytest.approx(os.stat(str(lock)).st_mtime)
    again = run_main(capsys, dict(path=str(lock), run_id="r1"))
    assert again["changed"] is False and again["acquired"] and without_beat(again["holder"]) == on_disk
    released = run_main(capsys, dict(path=str(lock), run_id="r1", state="absent"))
    assert released["changed"] and released["holder"] is None and not lock.exists()
    gone = run_main(capsys, dict(path=str(lock), run_id="r1", state="absent"))
    assert gone["changed"] is False
    assert sorted(os.listdir(str(tmp_path))) == []  # no temp files left


@pytest.mark.parametrize("option", ["lock_timeout", "timeout"])
def test_held_fails_after_lock_timeout(tmp_path, capsys, option):
    """lock_timeout, or its deprecated alias timeout, is how long another run's lock is waited for."""
    lock = tmp_path / "deploy.lock"
    write_lock(lock, "other", 30)
    result = run_main(capsys, {"path": str(lock), "run_id": "r1", option: 0.5})
    assert result["failed"] and result["acquired"] is False
    assert "is held by bob@old (run other)" in result["msg"]
    assert result["waited_s"] >= 0.5
    assert json.loads(lock.read_text())["run_id"] == "other"


def test_stale_needs_break_stale(tmp_path, capsys):
    lock = tmp_path / "deploy.lock"
    old = write_lock(lock, "dead", 7200)
    refused = run_main(capsys, dict(path=str(lock), run_id="r1"))
    assert refused["failed"] and "break_stale: true" in refused["msg"]
    predicted = run_main(capsys, dict(path=str(lock), run_id="r1", break_stale=True), check=True)
    assert predicted["changed"] and predicted["broke_stale"]["run_id"] == "dead"
    assert json.loads(lock.read_text())["run_id"] == "dead"
    broke = run_main(capsys, dict(path=str(lock), run_id="r1", break_stale=True))
    assert broke["acquired"] and without_beat(broke["broke_stale"]) == old
    assert json.loads(lock.read_text())["run_id"] == "r1"


def test_release_by_other_refused_unless_force(tmp_path, capsys):
    lock = tmp_path / "deploy.lock"
    write_lock(lock, "other", 5)
    refused = run_main(capsys, dict(path=str(lock), run_id="r1", state="absent"))
    assert refused["failed"] and "not releasing" in refused["msg"] and lock.exists()
    forced = run_main(capsys, dict(path=str(lock), run_id="r1", state="absent", force=True))
    assert forced["changed"] and forced["broke_stale"]["run_id"] == "other"
    assert not lock.exists()


def test_check_mode_creates_nothing(tmp_path, capsys):
    lock = tmp_path / "deploy.lock"
    result = run_main(capsys, dict(path=str(lock), run_id="r1"), check=True)
    assert result["changed"] and result["acquired"] and not lock.exists()


@pytest.mark.parametrize("args, fragment", [
    (dict(lock_timeout=-1), "lock_timeout: must be 0 or more, got -1"),
    (dict(timeout=-1), "lock_timeout: must be 0 or more, got -1"),
    (dict(stale_after=0), "stale_after: must be more than 0"),
    (dict(run_id=" "), "run_id: must not be empty"),
])
def test_bad_input(tmp_path, capsys, args, fragment):
    base = dict(path=str(tmp_path / "l"), run_id="r1")
    base.update(args)
    result = run_main(capsys, base)
    assert result["failed"] and fragment in result["msg"]


def test_missing_directory(tmp_path, capsys):
    result = run_main(capsys, dict(path=str(tmp_path / "nope" / "l"), run_id="r1"))
    assert result["failed"] and "does not exist" in result["msg"]


def test_take_away_keeps_a_lock_that_changed(tmp_path):
    lock = tmp_path / "deploy.lock"
    judged = write_lock(lock, "dead", 7200)
    write_lock(lock, "fresh", 1)  # another run broke it and took it meanwhile
    assert deploy_lock.take_away(str(lock), judged) is False
    assert json.loads(lock.read_text())["run_id"] == "fresh"
    assert os.listdir(str(tmp_path)) == ["deploy.lock"]
