# -*- coding: utf-8 -*-
"""deploy_lock through real ansible-playbook: lock files on disk, two runs racing."""

import json
import os
import stat
import subprocess
import time

import yaml

from helpers import ROOT, ansible_env, run_module

from ansible_collections.prodready.deploy.plugins.modules import deploy_lock
from ansible_collections.prodready.deploy.plugins.module_utils import _lockfile

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations",
                      "_stdout", "skipped", "exception"}


def test_acquire_reentrant_wait_fail_release(tmp_path):
    lock = tmp_path / "deploy.lock"
    first = run_module("deploy_lock", dict(path=str(lock), run_id="run-A", owner="alice@laptop"))
    assert not first.get("failed"), first["_stdout"]
    assert first["changed"] and first["acquired"] and first["waited_s"] == 0
    assert set(first) - COMMON_RESULT_KEYS == set(yaml.safe_load(deploy_lock.RETURN))
    assert stat.S_IMODE(os.stat(str(lock)).st_mode) == 0o600
    assert json.loads(lock.read_text())["owner"] == "alice@laptop"

    again = run_module("deploy_lock", dict(path=str(lock), run_id="run-A"))
    assert again["changed"] is False and again["acquired"]

    other = run_module("deploy_lock", dict(path=str(lock), run_id="run-B", lock_timeout=1.5))
    assert other["failed"] and other["acquired"] is False
    assert "deploy lock %s is held by alice@laptop (run run-A) since " % lock in other["msg"]
    assert other["waited_s"] >= 1.5 and "waited 1." in other["msg"]
    assert other["holder"]["run_id"] == "run-A"

    refused = run_module("deploy_lock", dict(path=str(lock), run_id="run-B", state="absent"))
    assert refused["failed"] and "not releasing" in refused["msg"]
    assert json.loads(lock.read_text())["run_id"] == "run-A"

    released = run_module("deploy_lock", dict(path=str(lock), run_id="run-A", state="absent"))
    assert released["changed"] and released["holder"] is None and not lock.exists()


def test_stale_lock_broken_only_with_break_stale(tmp_path):
    lock = tmp_path / "deploy.lock"
    dead = _lockfile.make_record("bob@ci", "run-dead", time.time() - 600, "web1", 1)
    lock.write_bytes(_lockfile.render_record(dead))
    refused = run_module("deploy_lock", dict(path=str(lock), run_id="run-C", stale_after=300))
    assert refused["failed"] and "is stale" in refused["msg"]
    assert "break_stale: true" in refused["msg"]
    assert json.loads(lock.read_text())["run_id"] == "run-dead"
    broke = run_module("deploy_lock", dict(path=str(lock), run_id="run-C", stale_after=300,
                                           break_stale=True))
    assert broke["changed"] and broke["acquired"]
    assert broke["broke_stale"]["run_id"] == "run-dead"
    assert json.loads(lock.read_text())["run_id"] == "run-C"


def test_two_playbooks_at_once_exactly_one_wins(tmp_path):
    lock = tmp_path / "deploy.lock"
    procs = []
    for name in ("one", "two"):
        play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
                 "tasks": [{"name": "lock", "prodready.deploy.deploy_lock": {
                     "path": str(lock), "run_id": "run-" + name, "owner": name}}]}]
        pb = tmp_path / ("%s.yml" % name)
        pb.write_text(yaml.safe_dump(play))
        procs.append(subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(pb)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ansible_env(),
            cwd=str(ROOT)))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outputs
    winner = ("one", "two")[codes.index(0)]
    loser_out = outputs[codes.index(2)]
    assert json.loads(lock.read_text())["run_id"] == "run-" + winner
    assert "is held by %s (run run-%s)" % (winner, winner) in loser_out
