# -*- coding: utf-8 -*-
"""_status: the last runs of an audit log, the lock as an operator reads it, the table."""

import json

from ansible_collections.prodready.deploy.plugins.module_utils import _status

NOW = 1796650000.0
AUDIT = "\n".join(json.dumps(line) for line in [
    {"action": "deploy", "result": "success", "version": "1.0.0", "time": "t1", "user": "alice", "run_id": "r1"},
    {"action": "migrate", "result": "success", "time": "t2"},
    {"action": "deploy", "result": "success", "version": "1.1.0", "previous_version": "1.0.0", "time": "t3",
     "user": "bob", "run_id": "r2"},
    {"action": "rollback", "step": "switch", "result": "success", "time": "t4"},
    {"action": "rollback", "step": "finalize", "result": "success", "version": "1.0.0", "from_version": "1.1.0",
     "time": "t5", "user": "carol", "run_id": "rb1"},
    {"action": "deploy", "result": "failed", "version": "1.2.0", "time": "t6", "reason": "x" * 500, "run_id": "r3"},
]) + "\n{cut by a cr"


def test_the_last_runs_are_the_outcomes_newest_first():
    runs = _status.last_runs(_status.parse_audit(AUDIT), 3)
    assert [(r["time"], r["action"], r["result"]) for r in runs] == [
        ("t6", "deploy", "failed"), ("t5", "rollback", "success"), ("t3", "deploy", "success")]
    assert runs[1]["from_version"] == "1.1.0" and runs[2]["from_version"] == "1.0.0"
    assert len(runs[0]["reason"]) == _status.REASON_MAX and runs[0]["reason"].endswith("...")
    assert _status.last_runs(_status.parse_audit(AUDIT), 0) == []


def test_the_lock_is_shown_with_its_age_and_last_heartbeat():
    record = {"owner": "ci@ctl", "run_id": "r9", "since": "s", "since_epoch": NOW - 120, "beat_epoch": NOW - 4,
              "heartbeat": "h", "controller": {"host": "ctl", "pid": 7}}
    view = _status.lock_view(record, NOW)
    assert (view["age_s"], view["heartbeat_age_s"], view["controller"]["pid"]) == (120, 4, 7)
    assert _status.lock_view(None, NOW) is None


def status(**state):
    ports = {"blue": 8101, "green": 8102}
    answers = {"blue": {"version": "1.0.0", "error": None}, "green": {"version": None, "error": "connection refused"}}
    return _status.summarize(state, ports, answers, None, _status.last_runs(_status.parse_audit(AUDIT), 2), NOW)


def test_a_host_status_and_its_table():
    st = status(live_color="blue", live_version="1.0.0", colors={"blue": "1.0.0", "green": "1.1.0"},
                pending_rollback={"to": "1.0.0", "run_id": "rb2"})
    assert (st["live_color"], st["idle_color"], st["idle_version"]) == ("blue", "green", None)
    assert st["colors"][1] == {"color": "green", "port": 8102, "role": "idle", "recorded_version": "1.1.0",
                               "answers": None, "error": "connection refused"}
    lines = _status.table({"web1": st, "web2": status()})
    assert lines[0].split() == ["host", "live", "idle", "lock", "last", "run"]
    assert lines[2].split()[:6] == ["web1", "blue", "1.0.0", "green", "down", "free"]
    assert "never deployed" in lines[3]
    assert "web1: a rollback to 1.0.0 (run rb2) was interrupted: rollback.yml takes it up" in lines
    assert any(line.startswith("web1: t6 deploy failed 1.2.0: xxx") for line in lines)
    assert "web1: t5 rollback success 1.1.0 -> 1.0.0 by carol" in lines


def test_a_color_answering_another_version_than_recorded_shows_both():
    st = _status.summarize({"live_color": "blue", "live_version": "1.0.0", "colors": {"blue": "1.0.0"}},
                           {"blue": 1}, {"blue": {"version": "1.1.0", "error": None}}, None, [], NOW)
    assert "blue 1.1.0 (recorded 1.0.0)" in _status.table({"h": st})[2]


def test_a_run_launched_by_an_awx_user_names_that_user_not_the_login():
    lines = [{"action": "deploy", "result": "success", "version": "1.1.0", "time": "t1", "user": "root",
              "launched_by": "alice", "run_id": "r1"},
             {"action": "deploy", "result": "success", "version": "1.2.0", "time": "t2", "user": "deploy", "run_id": "r2"}]
    assert [run["user"] for run in _status.last_runs(lines, 5)] == ["deploy", "alice"]
