# -*- coding: utf-8 -*-
"""_heartbeat: a module working for the run that holds the lock touches it; nothing else does."""

import json
import os
import time

from ansible_collections.prodready.deploy.plugins.module_utils import _heartbeat


def lock(tmp_path, run_id="r1"):
    path = tmp_path / "deploy.lock"
    path.write_text(json.dumps({"run_id": run_id, "owner": "ci"}))
    os.utime(str(path), (1000.0, 1000.0))
    return str(path)


def env(path, run_id="r1"):
    return {_heartbeat.LOCK_ENV: path, _heartbeat.RUN_ENV: run_id}


def wait_for(predicate, limit=5.0):
    deadline = time.monotonic() + limit
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_the_holder_beats_at_start_and_while_it_works(tmp_path):
    path = lock(tmp_path)
    with _heartbeat.Heartbeat(env(path), every=0.02) as heart:
        assert os.stat(path).st_mtime > 1000.0  # the first beat, at once
        os.utime(path, (1000.0, 1000.0))
        assert wait_for(lambda: heart.beats >= 3 and os.stat(path).st_mtime > 1000.0)
    os.utime(path, (1000.0, 1000.0))
    time.sleep(0.1)
    assert os.stat(path).st_mtime == 1000.0  # stopped with the module's work


def test_another_run_or_no_lock_is_never_touched(tmp_path):
    path = lock(tmp_path, "someone-else")
    with _heartbeat.Heartbeat(env(path, "r1"), every=0.01) as heart:
        time.sleep(0.05)
    assert heart.beats == 0 and os.stat(path).st_mtime == 1000.0
    for environ in ({}, env(str(tmp_path / "absent")), env(path, "")):
        with _heartbeat.Heartbeat(environ, every=0.01) as heart:
            pass
        assert heart.beats == 0


def test_the_beat_stops_when_the_lock_is_released_or_taken_over(tmp_path):
    path = lock(tmp_path)
    heart = _heartbeat.Heartbeat(env(path), every=0.01).start()
    try:
        with open(path, "w") as handle:
            json.dump({"run_id": "taker"}, handle)
        os.utime(path, (1000.0, 1000.0))
        assert wait_for(lambda: not heart._thread.is_alive())
        assert os.stat(path).st_mtime == 1000.0
    finally:
        heart.stop()
