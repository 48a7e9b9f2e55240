# -*- coding: utf-8 -*-
"""Unit tables for _lockfile: record, staleness, decisions, messages."""

import json

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _lockfile

NOW = 1795689667.0


def rec(run_id="r1", age=10.0, owner="alice@ci"):
    return _lockfile.make_record(owner, run_id, NOW - age, "web1", 42)


def test_make_and_parse_record_round_trip():
    record = rec()
    parsed = _lockfile.parse_record(_lockfile.render_record(record), 0)
    beat = dict((key, parsed.pop(key)) for key in ("beat_epoch", "heartbeat"))
    assert parsed == record
    assert parsed["since"] == "2026-11-26T10:40:57Z"
    # An mtime before the lock was taken (clock skew) is not a heartbeat: since is.
    assert beat == {"beat_epoch": NOW - 10.0, "heartbeat": "2026-11-26T10:40:57Z"}
    touched = _lockfile.parse_record(_lockfile.render_record(record), NOW - 2)
    assert touched["beat_epoch"] == NOW - 2 and _lockfile.silence_s(touched, NOW) == pytest.approx(2)


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b"\xff"])
def test_unreadable_lock_is_held_by_unknown_since_mtime(data):
    parsed = _lockfile.parse_record(data, NOW - 5)
    assert parsed["owner"].startswith("unknown")
    assert parsed["run_id"] is None
    assert _lockfile.age_s(parsed, NOW) == pytest.approx(5)


def test_bad_since_epoch_falls_back_to_mtime():
    parsed = _lockfile.parse_record(json.dumps({"run_id": "x", "since_epoch": "soon"}).encode(),
                                    NOW - 7)
    assert parsed["since_epoch"] == NOW - 7 and parsed["since"]


@pytest.mark.parametrize("age, stale_after, stale", [
    (10, 3600, False),
    (3600, 3600, False),
    (3601, 3600, True),
    (-50, 1, False),  # clock skew: a lock from the future is fresh
])
def test_is_stale(age, stale_after, stale):
    assert _lockfile.is_stale(rec(age=age), NOW, stale_after) is stale


@pytest.mark.parametrize("run_id, age, break_stale, force, action", [
    ("r1", 10, False, False, _lockfile.OURS),
    ("r1", 99999, False, True, _lockfile.OURS),
    ("r2", 10, False, False, _lockfile.WAIT),
    ("r2", 10, True, False, _lockfile.WAIT),
    ("r2", 10, False, True, _lockfile.FORCE),
    ("r2", 7200, False, False, _lockfile.STALE),
    ("r2", 7200, True, False, _lockfile.BREAK_STALE),
])
def test_decide(run_id, age, break_stale, force, action):
    assert _lockfile.decide(rec(age=age), run_id, NOW, 3600, break_stale, force) == action


def test_held_message():
    msg = _lockfile.held_message("/srv/app/deploy.lock", rec(age=75), NOW, 2.04)
    assert msg == ("deploy lock /srv/app/deploy.lock is held by alice@ci (run r1) since "
                   "2026-11-26T10:39:52Z (75 s ago); waited 2.0 s")


def test_stale_message_tells_how_to_break():
    msg = _lockfile.stale_message("/l", rec(age=7200), NOW, 3600)
    assert "is stale" in msg and "alice@ci (run r1)" in msg and "7200 s ago" in msg
    assert "stale_after=3600 s" in msg and "break_stale: true" in msg


def test_release_refused_message():
    msg = _lockfile.release_refused_message("/l", rec(), "r9")
    assert "held by alice@ci (run r1)" in msg and "(r9)" in msg and "force: true" in msg


def test_a_lock_whose_controller_process_is_gone_is_taken_over_whatever_its_age():
    record = _lockfile.make_record("ci@ctl", "other", 100.0, "h1", 1, {"host": "ctl", "pid": 4242, "user": "ci"})
    assert record["controller"] == {"host": "ctl", "pid": 4242, "user": "ci"}
    assert _lockfile.decide(record, "mine", 101.0, 3600, False, False, gone=True) == _lockfile.TAKEOVER
    assert _lockfile.decide(record, "mine", 101.0, 3600, False, False, gone=False) == _lockfile.WAIT
    assert _lockfile.decide(record, "other", 101.0, 3600, False, False, gone=True) == _lockfile.OURS
    assert _lockfile.gone_reason(record) == ("its holder ci@ctl (run other) is gone: ansible-playbook pid 4242 "
                                             "on ctl no longer runs")


def test_holder_gone_only_for_a_dead_process_on_this_host(tmp_path):
    import os
    import subprocess
    from ansible_collections.prodready.deploy.plugins.module_utils import _lock_io

    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its pid names no process now
    dead = {"controller": {"host": "here", "pid": child.pid}}
    assert _lock_io.holder_gone(dead, hostname="here") is True
    assert _lock_io.holder_gone(dead, hostname="elsewhere") is False  # another controller: its age decides
    assert _lock_io.holder_gone({"controller": {"host": "here", "pid": os.getpid()}}, hostname="here") is False
    assert _lock_io.holder_gone({"pid": child.pid}, hostname="here") is False  # an older record: no controller


def test_acquire_takes_over_a_lock_left_by_a_killed_run_and_says_why(tmp_path):
    import socket
    import subprocess
    from ansible_collections.prodready.deploy.plugins.module_utils import _lock_io

    child = subprocess.Popen(["true"])
    child.wait()
    path = str(tmp_path / "deploy.lock")
    _lock_io.create_lock(path, _lockfile.make_record("ci", "killed", 1.0, "h1", 1,
                                                     {"host": socket.gethostname(), "pid": child.pid}))
    taken = _lock_io.acquire(path, "next", timeout=0)
    assert taken["acquired"] and taken["holder"]["run_id"] == "next"
    assert taken["broke_stale"]["run_id"] == "killed" and "no longer runs" in taken["broke_stale"]["takeover"]


def remote(age, silence):
    """A lock taken `age` s ago by a controller on another host, last beating `silence` s ago."""
    record = _lockfile.make_record("ci@ctl2", "other", NOW - age, "web1", 7, {"host": "ctl2", "pid": 99, "user": "ci"})
    return _lockfile.parse_record(_lockfile.render_record(record), NOW - silence)


@pytest.mark.parametrize("age, silence, timeout, action", [
    (7200, 5, 900, _lockfile.WAIT),          # a long deploy that still beats is never stale
    (1000, 901, 900, _lockfile.TAKEOVER),    # silent for more than the limit: taken over
    (1000, 899, 900, _lockfile.WAIT),
    (1000, 901, 0, _lockfile.WAIT),          # heartbeat judgement off: its age (< stale_after) decides
    (7200, 901, 0, _lockfile.STALE),
])
def test_a_lock_of_another_controller_is_judged_by_its_heartbeat(age, silence, timeout, action):
    assert _lockfile.decide(remote(age, silence), "mine", NOW, 3600, False, False,
                            heartbeat_timeout=timeout) == action


def test_a_record_without_its_controller_is_never_judged_silent():
    old = _lockfile.parse_record(_lockfile.render_record(rec(age=2000)), NOW - 2000)
    assert not _lockfile.is_silent(old, NOW, 900)
    assert _lockfile.decide(old, "mine", NOW, 3600, False, False) == _lockfile.WAIT


def test_a_silent_holder_is_named_with_its_last_heartbeat():
    record = remote(1000, 950)
    assert _lockfile.gone_reason(record, NOW, 900, gone=False) == (
        "its holder ci@ctl2 (run other) (ansible-playbook pid 99 on ctl2) is silent: its last heartbeat was "
        "%s, 950 s ago, more than heartbeat_timeout=900 s" % record["heartbeat"])
    assert ", controller ctl2 pid 99, last heartbeat 950 s ago);" in _lockfile.held_message("/l", record, NOW, 0.0)


def test_acquire_takes_over_a_silent_holder_of_another_controller(tmp_path):
    import os
    from ansible_collections.prodready.deploy.plugins.module_utils import _lock_io

    path = str(tmp_path / "deploy.lock")
    _lock_io.create_lock(path, _lockfile.make_record("ci", "silent", 1000.0, "h1", 1, {"host": "ctl2", "pid": 1}))
    os.utime(path, (2000.0, 2000.0))
    with pytest.raises(Exception) as held:  # still beating as of 2000 + 899
        _lock_io.acquire(path, "next", timeout=0, clock=lambda: 2899.0)
    assert "last heartbeat 899 s ago" in str(held.value)
    taken = _lock_io.acquire(path, "next", timeout=0, clock=lambda: 2901.0)
    assert taken["holder"]["run_id"] == "next"
    assert "is silent: its last heartbeat was 1970-01-01T00:33:20Z, 901 s ago" in taken["broke_stale"]["takeover"]
