"""The deploy_report callback's aggregation: plugins/callback/deploy_report.py (pure functions)
and the callback object fed with fake task results (no ansible run)."""

import json
import os
import stat
from types import SimpleNamespace

import pytest

from ansible_collections.prodready.deploy.plugins.callback import deploy_report as dr

SECRET = "s3cr3t-never-in-a-report"


@pytest.mark.parametrize("action, expected", [
    ("prodready.deploy.pg_backup", "pg_backup"),
    ("prodready.deploy.feature_flag", "feature_flag"),
    ("ansible.builtin.set_fact", "set_fact"),
    ("set_fact", "set_fact"),
    ("ansible.builtin.command", None),
    ("community.general.redis_info", None),
    (None, None),
])
def test_module_name(action, expected):
    assert dr.module_name(action) == expected


@pytest.mark.parametrize("module, data, kind, fields, text", [
    ("pg_backup", {"path": "/b/app.dump", "size_bytes": 10240, "duration_s": 3.2, "reused": False,
                   "manifest": {"db": "app"}, "executed_commands": [["pg_dump"]]},
     "backup", {"path": "/b/app.dump", "size_bytes": 10240, "duration_s": 3.2}, "backup /b/app.dump (10240 bytes, 3.2s)"),
    ("alembic_migrate", {"current_before": "0001", "current_after": "0002", "direction": "upgrade", "sql": "ALTER ..."},
     "migration", {"current_before": "0001", "current_after": "0002"}, "migration upgrade 0001 -> 0002"),
    ("alembic_migrate", {"current_before": None, "current_after": "0001"},
     "migration", {"current_after": "0001"}, "migration upgrade base -> 0001"),
    ("health_gate", {"passed": False, "reason": "error rate 50.0% > 1.0%", "samples": 20, "errors": 10,
                     "error_rate": 0.5, "latency_ms": {"p95": 12.5}, "first_failure": {"url": "x"}},
     "gate", {"passed": False, "samples": 20, "error_rate": 0.5, "p95_ms": 12.5},
     "health gate FAILED: 20 samples, error rate 50.0%, p95 12.5 ms (error rate 50.0% > 1.0%)"),
    ("health_gate", {"passed": True, "reason": "", "samples": 5, "error_rate": 0.0, "latency_ms": {"p95": 1.0}},
     "gate", {"passed": True}, "health gate passed: 5 samples, error rate 0.0%, p95 1.0 ms"),
    ("redis_cache_check", {"passed": False, "reason": "hit ratio 10.0% < 60.0%", "hit_ratio": 0.1, "hits": 20,
                           "misses": 180, "version": "7"},
     "gate", {"gate": "redis_cache_check", "hit_ratio": 0.1}, "cache gate FAILED: hit ratio 10.0% over 200 lookups (hit ratio 10.0% < 60.0%)"),
    ("redis_cache_check", {"passed": True, "reason": "", "hit_ratio": None, "ping_ms": 0.4},
     "gate", {"gate": "redis_cache_check", "passed": True}, "cache gate passed: ping 0.4 ms"),
    ("rollback_start", {"state_found": True, "target": "1.0.0", "color": "blue", "warm": True, "switched": True,
                        "noop": False, "switch": {"previous_live": "green", "switch_ms": 12.5}, "state": {"x": 1}},
     "router_switch", {"target": "1.0.0", "previous_live": "green"}, "rollback to 1.0.0: router green -> blue in 12.5 ms (warm)"),
    ("rollback_start", {"state_found": True, "target": "1.0.0", "color": "blue", "warm": False, "switched": False,
                        "noop": False, "probe_reason": "connection failed: refused", "switch": None},
     "rollback_plan", {"warm": False}, "rollback to 1.0.0: blue is cold (connection failed: refused)"),
    ("rollback_start", {"state_found": False, "target": "", "switched": False},
     "rollback_plan", {"switched": False}, "rollback: nothing deployed on this host"),
    ("router_switch", {"live": "green", "previous_live": "blue", "switch_ms": 3.1, "servers_state": {}},
     "router_switch", {"live": "green", "previous_live": "blue"}, "router blue -> green in 3.1 ms"),
    ("feature_flag", {"previous": {"A": "0", "B": None, "C": "x"}, "current": {"A": "1", "B": "true", "C": "x"},
                      "changed_flags": ["A", "B"], "diff": {"before": "A=0"}},
     "flags", {"flags": {"A": {"previous": "0", "current": "1"}, "B": {"previous": None, "current": "true"}}},
     'flags A "0" -> "1", B null -> "true"'),
    ("feature_flag", {"previous": {"A": "1"}, "current": {"A": "1"}, "changed_flags": []},
     "flags", {"flags": {}}, "flags unchanged"),
    ("preflight_check", {"passed": False, "counts": {"ok": 14, "warn": 1, "fail": 1},
                         "failed_checks": [{"name": "env JWT_SECRET_KEY", "status": "fail", "detail": "still a placeholder"}],
                         "checks": [], "table": "CHECK ..."},
     "preflight", {"passed": False, "failed_checks": [{"name": "env JWT_SECRET_KEY", "detail": "still a placeholder"}]},
     "preflight FAILED: 14 ok, 1 warn, 1 fail; env JWT_SECRET_KEY: still a placeholder"),
    ("deploy_lock", {"acquired": True, "holder": {"owner": "alice", "pid": 1}},
     "lock", {"acquired": True, "owner": "alice"}, "deploy lock taken"),
    ("deploy_state", {"state": {"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0",
                                "history": ["1.0.0", "1.1.0"]}, "audit_line": {"action": "deploy"}},
     "state", {"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0"},
     "state: live 1.1.0 (green), previous 1.0.0"),
    ("deploy_state", {"state": {}}, "state", {"live_version": None}, "state: live nothing (no color)"),
])
def test_summarize_module_keeps_only_whitelisted_fields(module, data, kind, fields, text):
    event = dr.summarize_module(module, data)
    assert event["kind"] == kind
    assert event["text"] == text
    for key, value in fields.items():
        assert event[key] == value
    # Bulky or internal fields never reach the report.
    for key in ("manifest", "executed_commands", "sql", "first_failure", "diff", "servers_state", "version", "table", "checks"):
        assert key not in event


@pytest.mark.parametrize("data, expected", [
    ({"msg": "One or more items failed", "results": [
        {"failed": False, "msg": "All assertions passed"},
        {"failed": True, "msg": "stage 'a': health_gate has unknown option(s) p95"}]},
     "stage 'a': health_gate has unknown option(s) p95"),
    ({"msg": "One or more items failed", "results": [{"failed": True, "msg": "first"}, {"failed": True, "msg": "second"}]},
     "first (and 1 more failed items)"),
    ({"msg": "One or more items failed", "results": [{"failed": True, "msg": "s3cret", "_ansible_no_log": True}]},
     "One or more items failed"),
    ({"msg": "plain failure"}, "plain failure"),
    ({}, "failed"),
])
def test_failure_message_of_a_looped_task_is_its_first_failed_item(data, expected):
    assert dr.failure_message(data) == expected
    events = dr.events_from_result("ansible.builtin.assert", "Check", data, "failed")
    assert events[-1]["kind"] == "failure" and events[-1]["msg"] == expected


def test_unknown_module_is_not_summarized():
    assert dr.summarize_module("not_a_module", {"x": 1}) is None


def ok(**data):
    return dict(data)


@pytest.mark.parametrize("action, data, status, expected", [
    # A collection module: one event with task/status/module.
    ("prodready.deploy.router_switch", ok(live="green", previous_live="blue", changed=True), "changed",
     [("router_switch", "changed", "router blue -> green")]),
    # Skipped tasks leave nothing.
    ("prodready.deploy.router_switch", ok(skipped=True), "skipped", []),
    # Other modules are ignored unless they fail.
    ("ansible.builtin.command", ok(stdout=SECRET, cmd=["echo", SECRET]), "ok", []),
    ("ansible.builtin.fail", ok(msg="flag_rollout: stage 'x' gate failed"), "failed",
     [("failure", "failed", "failed: t: flag_rollout: stage 'x' gate failed")]),
    ("ansible.builtin.command", ok(msg="non-zero return code"), "ignored",
     [("failure", "ignored", "ignored failure in t: non-zero return code")]),
    # A failing gate: its numbers and the failure.
    ("prodready.deploy.health_gate", ok(passed=False, reason="p95 900 ms > 500 ms", samples=3, error_rate=0.0,
                                        latency_ms={"p95": 900.0}, msg="health gate failed: p95 900 ms > 500 ms"),
     "failed", [("gate", "failed", "health gate FAILED: 3 samples, error rate 0.0%, p95 900.0 ms (p95 900 ms > 500 ms)"),
                ("failure", "failed", "failed: t: health gate failed: p95 900 ms > 500 ms")]),
    # no_log: only that it happened.
    ("prodready.deploy.feature_flag", ok(_ansible_no_log=True, previous={"TOKEN": SECRET}), "changed",
     [("censored", "changed", "t: changed, censored (no_log)")]),
    ("prodready.deploy.feature_flag", ok(censored="the output has been hidden", changed=True), "changed",
     [("censored", "changed", "t: changed, censored (no_log)")]),
    ("ansible.builtin.set_fact", ok(_ansible_no_log=True, ansible_facts={"prodready_report": {"text": SECRET}}), "ok", []),
    # Loops: each item, skipped items dropped, a censored item censored.
    ("prodready.deploy.feature_flag", ok(results=[
        ok(previous={"A": "1"}, current={"A": None}, changed_flags=["A"], changed=True),
        ok(skipped=True),
        ok(_ansible_no_log=True, previous={"K": SECRET}, changed=True),
    ]), "changed", [("flags", "changed", 'flags A "1" -> null'), ("censored", "changed", "t: changed, censored (no_log)")]),
    ("prodready.deploy.health_gate", ok(results=[
        ok(passed=True, samples=1, error_rate=0.0, latency_ms={"p95": 1.0}),
        ok(failed=True, passed=False, reason="down", samples=1, error_rate=1.0, latency_ms={}, msg="gate failed: down"),
    ]), "ignored", [("gate", "ok", "health gate passed: 1 samples, error rate 0.0%, p95 1.0 ms"),
                    ("gate", "ignored", "health gate FAILED: 1 samples, error rate 100.0%, p95 ? ms (down)"),
                    ("failure", "ignored", "ignored failure in t: gate failed: down")]),
    # Facts the roles set for the report.
    ("ansible.builtin.set_fact", ok(ansible_facts={"flag_rollout_event": {
        "stage": "week-2", "action": "apply", "result": "changed A", "flags": {"A": True}, "user": "alice"}}), "ok",
     [("stage", "ok", "stage week-2: apply (changed A)")]),
    ("ansible.builtin.set_fact", ok(ansible_facts={"prodready_report": [{"kind": "note", "text": "cache warmed"}, "junk"]}),
     "ok", [("note", "ok", "cache warmed")]),
    ("ansible.builtin.set_fact", ok(ansible_facts={"other": 1}), "ok", []),
])
def test_events_from_result(action, data, status, expected):
    events = dr.events_from_result(action, "t", data, status)
    assert [(e["kind"], e["status"], e["text"]) for e in events] == expected
    assert all(e["task"] == "t" for e in events)
    assert SECRET not in json.dumps(events)


def ev(kind, status="ok", **extra):
    return dict(extra, kind=kind, status=status, text=extra.get("text", kind))


@pytest.mark.parametrize("events, stats, expected", [
    ([ev("flags", "changed")], {"ok": 3, "changed": 1, "failures": 0}, ("ok", None, [], 1)),
    # A rescued failure followed by success: ok, no stop reason.
    ([ev("failure", "failed", msg="gate failed"), ev("router_switch", "changed")], {"failures": 0, "rescued": 1},
     ("ok", None, [], 1)),
    # The last failure that was not ignored is why the host stopped.
    ([ev("failure", "failed", msg="first"), ev("failure", "ignored", msg="ignored one"),
      ev("stage", action="revert", result="restored b, a; cause: first"), ev("failure", "failed", msg="final")],
     {"failures": 1}, ("failed", "final", ["restored b, a"], 0)),
    ([], {"unreachable": 1}, ("unreachable", None, [], 0)),
    ([ev("failure", "failed", msg="ssh: no route")], {"unreachable": 1}, ("unreachable", "ssh: no route", [], 0)),
])
def test_host_summary(events, stats, expected):
    summary = dr.host_summary(events, stats)
    assert (summary["outcome"], summary["stopped_reason"], summary["reverted"], summary["changed"]) == expected


def sample_report():
    events = {
        "web1": [ev("stage", action="apply", text="stage s: apply (changed A)"),
                 ev("failure", "failed", msg="gate | failed", text="failed: t: gate | failed"),
                 ev("stage", action="revert", result="restored s; cause: gate | failed", text="stage s: revert")],
        "web2": [ev("flags", "changed", text='flags A "0" -> "1"')],
    }
    stats = {"web1": {"failures": 1}, "web2": {"failures": 0, "changed": 1}, "web3": {"ok": 1}}
    return dr.build_report({"playbooks": ["flag_rollout.yml"], "started": "S", "finished": "F"}, events, stats)


def test_build_report_and_renderings():
    report = sample_report()
    assert report["outcome"] == "failed"
    assert sorted(report["hosts"]) == ["web1", "web2", "web3"]
    assert report["hosts"]["web1"]["stopped_reason"] == "gate | failed"
    assert report["hosts"]["web3"]["events"] == [] and report["hosts"]["web3"]["outcome"] == "ok"
    json.dumps(report)

    summary = dr.render_summary(report)
    assert summary.splitlines() == [
        "DEPLOY REPORT: FAILED (flag_rollout.yml)",
        "web1: FAILED",
        "  - stage s: apply (changed A)",
        "  - stage s: revert",
        "  reverted: restored s",
        "  stopped: gate | failed",
        "web2: OK",
        '  - flags A "0" -> "1"',
        "web3: OK",
    ]
    markdown = dr.render_markdown(report)
    assert "## web1: failed" in markdown
    assert "Stopped: gate \\| failed" in markdown  # a pipe does not break the table
    assert '| ok | flags A "0" -> "1" |' not in markdown  # status column is "changed"
    assert '| flags | changed | flags A "0" -> "1" |' in markdown


def test_check_mode_is_said_in_the_summary_and_the_markdown():
    report = dr.build_report({"playbooks": ["deploy.yml"], "check_mode": True}, {}, {"web1": {"ok": 1}})
    assert dr.render_summary(report).splitlines()[0] == "DEPLOY REPORT: OK (deploy.yml) -- CHECK MODE, what would have been done"
    assert "- **check mode**: nothing was changed" in dr.render_markdown(report)
    assert "CHECK MODE" not in dr.render_summary(sample_report())


def test_summary_keeps_only_the_last_entries_of_a_long_host():
    events = {"web1": [ev("flags", text="entry %d" % n) for n in range(30)]}
    summary = dr.render_summary(dr.build_report({"playbooks": []}, events, {"web1": {}}), max_lines=5)
    assert "  ... 25 earlier entries in the report files" in summary
    assert summary.splitlines()[-1] == "  - entry 29"


def test_report_paths_never_overwrite(tmp_path):
    first = dr.report_paths(str(tmp_path), "20261126T120000Z")
    assert first == (str(tmp_path / "deploy-report-20261126T120000Z.json"), str(tmp_path / "deploy-report-20261126T120000Z.md"))
    (tmp_path / "deploy-report-20261126T120000Z.md").write_text("x")
    assert dr.report_paths(str(tmp_path), "20261126T120000Z")[0].endswith("deploy-report-20261126T120000Z-1.json")


def test_write_private_is_0600_and_atomic(tmp_path):
    path = str(tmp_path / "r.json")
    old = os.umask(0)
    try:
        dr.write_private(path, "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert open(path).read() == "{}\n"
    assert os.listdir(str(tmp_path)) == ["r.json"]


# The callback object itself, fed with fake results the way ansible calls it.

class FakeTask(object):
    def __init__(self, name, action, no_log=False):
        self.name, self.resolved_action, self.action, self.no_log = name, action, action, no_log

    def get_name(self):
        return self.name


class FakeHost(object):
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


def fake_result(host, task, data):
    return SimpleNamespace(task=task, host=FakeHost(host), result=data)


class FakeStats(object):
    def __init__(self, per_host):
        self.processed = dict((h, 1) for h in per_host)
        self.per_host = per_host

    def summarize(self, host):
        return self.per_host[host]


class FakeDisplay(object):
    def __init__(self):
        self.lines = []
        self.verbosity = 0

    def display(self, msg, **kwargs):
        self.lines.append(msg)

    def warning(self, msg, **kwargs):
        self.lines.append("WARNING: " + msg)


def test_callback_writes_json_and_markdown_0600_and_prints_the_summary(tmp_path):
    display = FakeDisplay()
    callback = dr.CallbackModule(display=display)
    callback._plugin_options = {"report_dir": str(tmp_path / "reports")}  # as ansible's config sets it
    callback.v2_playbook_on_start(SimpleNamespace(_file_name="/x/playbooks/deploy.yml"))
    callback.v2_runner_on_ok(fake_result("web1", FakeTask("backup", "prodready.deploy.pg_backup"), {
        "changed": True, "path": "/b/app.dump", "size_bytes": 5, "duration_s": 0.5}))
    # A task with no_log: true whose result was not censored yet is censored by the callback.
    callback.v2_runner_on_ok(fake_result("web1", FakeTask("secret flag", "prodready.deploy.feature_flag", no_log=True), {
        "changed": True, "previous": {"TOKEN": SECRET}, "current": {"TOKEN": "x"}, "changed_flags": ["TOKEN"]}))
    callback.v2_runner_on_failed(fake_result("web1", FakeTask("gate", "prodready.deploy.health_gate"), {
        "failed": True, "passed": False, "reason": "down", "samples": 1, "error_rate": 1.0,
        "latency_ms": {}, "msg": "health_gate: down"}))
    callback.v2_playbook_on_stats(FakeStats({"web1": {"failures": 1, "ok": 1, "changed": 2}}))

    reports = sorted(os.listdir(str(tmp_path / "reports")))
    assert len(reports) == 2 and reports[0].startswith("deploy-report-") and reports[0].endswith(".json")
    assert reports[1] == reports[0][:-5] + ".md"
    assert stat.S_IMODE(os.stat(str(tmp_path / "reports")).st_mode) == 0o700
    for name in reports:
        path = tmp_path / "reports" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert SECRET not in path.read_text()
    report = json.loads((tmp_path / "reports" / reports[0]).read_text())
    assert report["playbooks"] == ["deploy.yml"] and report["check_mode"] is False
    web1 = report["hosts"]["web1"]
    assert web1["outcome"] == "failed" and web1["stopped_reason"] == "health_gate: down"
    assert [e["kind"] for e in web1["events"]] == ["backup", "censored", "gate", "failure"]
    assert web1["events"][0]["size_bytes"] == 5
    assert all(e["time"].endswith("Z") for e in web1["events"])
    summary = display.lines[-1]
    assert summary.startswith("DEPLOY REPORT: FAILED (deploy.yml)\nweb1: FAILED\n")
    assert "  - backup /b/app.dump (5 bytes, 0.5s)" in summary
    assert "  stopped: health_gate: down" in summary
    assert "report: %s" % (tmp_path / "reports" / reports[0]) in summary
    assert SECRET not in "\n".join(display.lines)


def test_callback_warns_when_the_report_dir_cannot_be_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    display = FakeDisplay()
    callback = dr.CallbackModule(display=display)
    callback._plugin_options = {"report_dir": str(blocker / "reports")}
    callback.v2_playbook_on_stats(FakeStats({"web1": {"ok": 1}}))
    assert any(line.startswith("WARNING: deploy_report: cannot write the report into") for line in display.lines)
    assert display.lines[-1].startswith("DEPLOY REPORT: OK")
