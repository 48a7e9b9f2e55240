"""The deploy_report callback's aggregation: plugins/callback/deploy_report.py (pure functions)
and the callback object fed with fake task results (no ansible run)."""

import json
import os
import stat
from types import SimpleNamespace

import pytest
import yaml

from ansible_collections.prodready.deploy.plugins.callback import deploy_report as dr


@pytest.fixture(autouse=True)
def _report_file_env(monkeypatch):
    """The callback names its report in the process environment: never leak it to later tests."""
    monkeypatch.delenv(dr.REPORT_FILE_ENV, raising=False)


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
    # a verify of that backup (backup.yml's run) is not a second backup
    ("pg_backup", {"path": "/b/app.dump", "verified": True, "invocation": {"module_args": {"mode": "verify"}}},
     "backup_verified", {"path": "/b/app.dump", "verified": True}, "backup verified: /b/app.dump"),
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
    # Redis unreachable: no verdict in the result, the task failed.
    ("redis_cache_check", {"failed": True, "msg": "cannot connect to Redis at 127.0.0.1:6379: timed out"},
     "gate", {"gate": "redis_cache_check", "passed": False},
     "cache gate FAILED (cannot connect to Redis at 127.0.0.1:6379: timed out)"),
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
    ("release_exec", {"version": "1.4.0", "rc": 3, "duration_s": 0.5, "timed_out": False, "stdout": "TOKEN=x",
                      "stderr": "boom", "env_names": ["TOKEN"], "reason": "the command exited with rc 3: boom"},
     "exec", {"version": "1.4.0", "rc": 3, "duration_s": 0.5}, "exec in 1.4.0: rc 3 in 0.5 s"),
    ("deploy_state", {"state": {"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0",
                                "history": ["1.0.0", "1.1.0"]}, "audit_line": {"action": "deploy"}},
     "state", {"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0", "action": "deploy"},
     "state: live 1.1.0 (green), previous 1.0.0; audit deploy"),
    ("deploy_state", {"state": {"host": "h1", "live_color": "blue", "live_version": "1.0.0", "previous_version": "1.1.0"},
                      "audit_line": {"action": "fleet_revert", "result": "reverted", "version": "1.1.0",
                                     "reason": "h2 failed in phase gate_live: p95 900 ms > 500 ms ", "user": "deploy"}},
     "state", {"state_host": "h1", "action": "fleet_revert", "result": "reverted", "live_version": "1.0.0"},
     "state: live 1.0.0 (blue), previous 1.1.0; audit fleet_revert reverted"),
    ("router_switch", {"live": ["h1-green", "h2-green"], "previous_live": ["h1-blue", "h2-blue"], "switch_ms": 212.0},
     "router_switch", {"live": ["h1-green", "h2-green"]}, "router h1-blue, h2-blue -> h1-green, h2-green in 212.0 ms"),
    # A switch whose failure the task masked (failed_when: false): no live key, its message.
    ("router_switch", {"msg": "haproxy: 1 of 2 servers did not become UP", "failed_when_result": False},
     "router_switch", {"switch_failed": True}, "router switch FAILED: haproxy: 1 of 2 servers did not become UP"),
    ("deploy_state", {"state": {}}, "state", {"live_version": None}, "state: live nothing (no color)"),
])
def test_summarize_module_keeps_only_whitelisted_fields(module, data, kind, fields, text):
    event = dr.summarize_module(module, data)
    assert event["kind"] == kind
    assert event["text"] == text
    for key, value in fields.items():
        assert event[key] == value
    # Bulky or internal fields never reach the report.
    for key in ("manifest", "executed_commands", "sql", "first_failure", "diff", "servers_state", "table", "checks", "user",
                "stdout", "stderr", "env_names"):
        assert key not in event
    assert "version" not in event or module in ("deploy_state", "release_exec")  # (redis's server version is not kept)


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
    ({"msg": ["preflight: 2 of 9 checks failed: a: x; b: y", "CHECK  STATUS", "a  FAIL"]},
     "preflight: 2 of 9 checks failed: a: x; b: y"),
    ({}, "failed"),
])
def test_failure_message_of_a_looped_task_is_its_first_failed_item(data, expected):
    assert dr.failure_message(data) == expected
    events = dr.events_from_result("ansible.builtin.assert", "Check", data, "failed")
    assert events[-1]["kind"] == "failure" and events[-1]["msg"] == expected


def test_documentation_is_yaml_ansible_can_load():
    # ansible reads the options of the callback from it: a YAML error disables the plugin.
    doc = yaml.safe_load(dr.DOCUMENTATION)
    assert doc["name"] == "deploy_report" and doc["options"]["report_dir"]["default"] == "./reports"


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
    # Nothing changed, nothing deployed.
    ([ev("lock")], {"ok": 4, "changed": 0}, ("unchanged", None, [], 0)),
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
    assert report["hosts"]["web3"]["events"] == [] and report["hosts"]["web3"]["outcome"] == "unchanged"
    assert report["counts"] == {"live": 0, "switched_back": 0, "failed": 1, "unreachable": 0, "ok": 1, "unchanged": 1}
    assert report["fleet"]["events"] == [] and report["fleet"]["switch"] is None
    json.dumps(report)

    summary = dr.render_summary(report)
    assert summary.splitlines() == [
        "DEPLOY REPORT: FAILED (flag_rollout.yml)",
        "hosts: 1 failed, 1 ok, 1 unchanged",
        "web1: FAILED",
        "  - stage s: apply (changed A)",
        "  - stage s: revert",
        "  reverted: restored s",
        "  stopped: gate | failed",
        "web2: OK",
        '  - flags A "0" -> "1"',
        "web3: UNCHANGED",
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
    """The task of a result as the callback gets it: delegate_to and run_once already templated
    (a looped task keeps its delegate_to template; each item's result says its own)."""

    def __init__(self, name, action, no_log=False, delegate_to=None, run_once=None, delegate_facts=None):
        self.name, self.resolved_action, self.action, self.no_log = name, action, action, no_log
        self.delegate_to, self.run_once, self.delegate_facts = delegate_to, run_once, delegate_facts
        self._uuid = "uuid-%s" % name

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
    assert summary.startswith("DEPLOY REPORT: FAILED (deploy.yml)\nhosts: 1 failed\nweb1: FAILED\n")
    assert "  - backup /b/app.dump (5 bytes, 0.5s)" in summary
    assert "  stopped: health_gate: down" in summary
    assert "report: %s" % (tmp_path / "reports" / reports[0]) in summary
    assert SECRET not in "\n".join(display.lines)


def test_the_report_path_is_named_to_the_play_when_the_run_starts(tmp_path):
    callback = dr.CallbackModule(display=FakeDisplay())
    callback._plugin_options = {"report_dir": str(tmp_path / "reports")}
    callback.v2_playbook_on_start(SimpleNamespace(_file_name="/x/playbooks/deploy.yml"))
    named = os.environ[dr.REPORT_FILE_ENV]
    assert os.path.dirname(named) == str(tmp_path / "reports")
    assert json.loads(open(named).read())["outcome"] == "running"  # what a run killed before its end leaves
    assert stat.S_IMODE(os.stat(named).st_mode) == 0o600
    # A second run started in the same second into the same directory takes another name.
    other = dr.CallbackModule(display=FakeDisplay())
    other._plugin_options = {"report_dir": str(tmp_path / "reports")}
    other._started = callback._started
    other.v2_playbook_on_start(SimpleNamespace(_file_name="/x/playbooks/rollback.yml"))
    assert os.environ[dr.REPORT_FILE_ENV] == named[:-len(".json")] + "-1.json"
    callback.v2_playbook_on_stats(FakeStats({"web1": {"ok": 1}}))
    report = json.loads(open(named).read())
    assert report["outcome"] == "ok" and report["files"] == [named, named[:-len("json")] + "md"]


def test_callback_warns_when_the_report_dir_cannot_be_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    display = FakeDisplay()
    callback = dr.CallbackModule(display=display)
    callback._plugin_options = {"report_dir": str(blocker / "reports")}
    callback.v2_playbook_on_stats(FakeStats({"web1": {"ok": 1}}))
    assert any(line.startswith("WARNING: deploy_report: cannot write the report into") for line in display.lines)
    assert display.lines[-1].startswith("DEPLOY REPORT: OK")


# Fleet work: delegation, run_once, delegate_facts, a peer switched back. The callback is fed
# the events ansible sends (v2_playbook_on_play_start once per serial batch, item results of
# a loop before the loop's result, a run_once task's result once, from the batch's first host).

class FakeInventory(object):
    def __init__(self, hosts):
        self.hosts = hosts

    def get_hosts(self, pattern, order=None):
        return [SimpleNamespace(name=name) for name in self.hosts]


class FakePlay(object):
    """A play as v2_playbook_on_play_start gets it: the inventory restricted to the batch."""

    def __init__(self, batch, name="Blue-green deploy", uuid="play-1"):
        self.hosts, self.order, self._uuid, self.name = ["app"], None, uuid, name
        self._vm = SimpleNamespace(_inventory=FakeInventory(batch))

    def get_name(self):
        return self.name

    def get_variable_manager(self):
        return self._vm


ROUTER = dict(delegate_to="r1")


def new_callback(tmp_path):
    display = FakeDisplay()
    callback = dr.CallbackModule(display=display)
    callback._plugin_options = {"report_dir": str(tmp_path / "reports")}
    callback.v2_playbook_on_start(SimpleNamespace(_file_name="/x/playbooks/deploy.yml"))
    return callback, display


def finish(callback, display, tmp_path, stats):
    callback.v2_playbook_on_stats(FakeStats(stats))
    files = sorted(os.listdir(str(tmp_path / "reports")))
    report = json.loads((tmp_path / "reports" / files[0]).read_text())
    markdown = (tmp_path / "reports" / files[1]).read_text()
    return report, markdown, display.lines[-1]


def switch(callback, host, live, previous, ms, name="Send traffic to the new color", **task):
    callback.v2_runner_on_ok(fake_result(host, FakeTask(name, "prodready.deploy.router_switch", **dict(ROUTER, **task)), {
        "changed": True, "live": live, "previous_live": previous, "switch_ms": ms, "servers_state": {}}))


def record_state(callback, host, version, color, previous, action="deploy", result="success", reason=None, **task):
    audit = {"action": action, "result": result, "version": version}
    if reason:
        audit["reason"] = reason
    callback.v2_runner_on_ok(fake_result(host, FakeTask("Record the state", "prodready.deploy.deploy_state", **task), {
        "changed": True, "state": {"host": task.get("delegate_to") or host, "live_version": version, "live_color": color,
                                   "previous_version": previous}, "audit_line": audit}))


def fail(callback, host, msg, name="Fail with the reason"):
    callback.v2_runner_on_failed(fake_result(host, FakeTask(name, "ansible.builtin.fail"), {"msg": msg}))


def test_a_delegated_task_is_listed_under_the_host_it_acted_for_via_the_delegate(tmp_path):
    callback, display = new_callback(tmp_path)
    callback.v2_playbook_on_play_start(FakePlay(["h1", "h2"]))
    for host in ("h1", "h2"):
        switch(callback, host, host + "-green", host + "-blue", 3.5)
    for host in ("h1", "h2"):
        record_state(callback, host, "1.1.0", "green", "1.0.0")
    report, markdown, summary = finish(callback, display, tmp_path, {"h1": {"ok": 2, "changed": 2}, "h2": {"ok": 2, "changed": 2}})

    assert sorted(report["hosts"]) == ["h1", "h2"]  # nothing under the router
    for host in ("h1", "h2"):
        entry = report["hosts"][host]
        assert (entry["outcome"], entry["live_version"]) == ("live", "1.1.0")
        switches = [e for e in entry["events"] if e["kind"] == "router_switch"]
        assert [(e["live"], e["via"], e["direction"], e.get("by")) for e in switches] == [(host + "-green", "r1", "forward", None)]
        assert switches[0]["text"] == "router %s-blue -> %s-green in 3.5 ms (via r1)" % (host, host)
    assert report["counts"]["live"] == 2 and report["outcome"] == "ok"
    assert report["fleet"]["events"] == []
    assert "hosts: 2 live on 1.1.0" in summary.splitlines()
    assert "h1: LIVE on 1.1.0" in summary.splitlines()
    assert "## h1: live on 1.1.0" in markdown


def fleet_deploy(callback, batch=("h1", "h2")):
    """blue_green's fleet mode up to the gate: the backup run_once on db1, handed to every host
    with delegate_facts (a looped set_fact), one fleet switch, one fleet gate."""
    callback.v2_playbook_on_play_start(FakePlay(list(batch)))
    first = batch[0]
    callback.v2_runner_on_ok(fake_result(first, FakeTask("Back up the database", "prodready.deploy.pg_backup",
                                                         delegate_to="db1", run_once=True), {
        "changed": True, "path": "/b/pre-1.1.0.dump", "size_bytes": 911, "duration_s": 0.12}))
    handoff = FakeTask("Hand the deploy's backup to every host", "ansible.builtin.set_fact", delegate_to="{{ item }}",
                       run_once=True, delegate_facts=True)
    for host in batch:
        callback.v2_runner_item_on_ok(fake_result(first, FakeTask(handoff.name, handoff.action, delegate_to=host,
                                                                  run_once=True, delegate_facts=True), {}))
    callback.v2_runner_on_ok(fake_result(first, handoff, {"changed": False, "results": [
        {"item": host, "ansible_facts": {"_blue_green_fleet_backup": {"path": "/b/pre-1.1.0.dump", "host": "db1"}}}
        for host in batch]}))
    switch(callback, first, ["%s-green" % h for h in batch], ["%s-blue" % h for h in batch], 212,
           name="Move the whole fleet's traffic at once", run_once=True)


def fleet_gate(callback, host, passed):
    callback.v2_runner_on_ok(fake_result(host, FakeTask("Gate through the router", "prodready.deploy.health_gate",
                                                        run_once=True), {
        "passed": passed, "reason": "" if passed else "error rate 100.0% > 1.0%", "samples": 120,
        "error_rate": 0.0 if passed else 1.0, "latency_ms": {"p95": 10.5}, "failed_when_result": False}))


def test_run_once_acts_for_the_whole_batch_and_is_listed_once_in_the_fleet_section(tmp_path):
    callback, display = new_callback(tmp_path)
    fleet_deploy(callback)
    fleet_gate(callback, "h1", True)
    for host in ("h1", "h2"):
        record_state(callback, host, "1.1.0", "green", "1.0.0")
    report, markdown, summary = finish(callback, display, tmp_path, {"h1": {"ok": 5, "changed": 3}, "h2": {"ok": 3, "changed": 1}})

    fleet = report["fleet"]
    assert [e["kind"] for e in fleet["events"]] == ["backup", "router_switch", "gate"]
    assert all(e["hosts"] == ["h1", "h2"] for e in fleet["events"])
    assert fleet["backup"]["path"] == "/b/pre-1.1.0.dump" and fleet["backup"]["host"] == "db1"
    assert fleet["backup"]["handed_to"] == ["h1", "h2"]
    assert (fleet["switch"]["live"], fleet["switch"]["switch_ms"], fleet["switch"]["host"]) == (["h1-green", "h2-green"], 212, "r1")
    assert fleet["switch_back"] is None
    assert fleet["gate"]["passed"] is True and fleet["gate"]["samples"] == 120
    # Not under the first host, not copied to each host: each host points at the fleet entries.
    for host in ("h1", "h2"):
        entry = report["hosts"][host]
        assert [e["kind"] for e in entry["events"]] == ["state"]
        assert entry["fleet_events"] == [0, 1, 2]
        assert (entry["outcome"], entry["live_version"]) == ("live", "1.1.0")
    assert summary.count("fleet switch: h1-green, h2-green live at once, 212 ms (via r1; for h1, h2)") == 1
    assert "  - backup /b/pre-1.1.0.dump (911 bytes, 0.12s) on db1, handed to h1, h2" in summary.splitlines()
    assert summary.splitlines()[1] == "hosts: 2 live on 1.1.0"
    assert "## Fleet" in markdown and markdown.count("fleet switch: h1-green, h2-green live at once, 212 ms") == 1


def test_a_fleet_switch_back_switches_every_host_of_the_batch_back(tmp_path):
    callback, display = new_callback(tmp_path)
    fleet_deploy(callback)
    fleet_gate(callback, "h1", False)
    for host in ("h1", "h2"):
        fail(callback, host, "health gate failed: error rate 100.0% > 1.0%", name="Fail every host when the fleet's gate failed")
    switch(callback, "h1", ["h1-blue", "h2-blue"], ["h1-green", "h2-green"], 150, name="Switch the whole fleet back at once",
           run_once=True)
    for host in ("h1", "h2"):
        fail(callback, host, "deploy of app 1.1.0 on %s stopped in phase gate_live: health gate failed. Traffic: switched back" % host)
    stats = dict((host, {"ok": 6, "changed": 2, "failures": 1, "rescued": 1}) for host in ("h1", "h2"))
    report, markdown, summary = finish(callback, display, tmp_path, stats)

    fleet = report["fleet"]
    assert [(e["kind"], e.get("direction")) for e in fleet["events"]] == [
        ("backup", None), ("router_switch", "forward"), ("gate", None), ("router_switch", "back")]
    assert fleet["switch_back"]["live"] == ["h1-blue", "h2-blue"] and fleet["switch_back"]["hosts"] == ["h1", "h2"]
    assert fleet["gate"]["passed"] is False
    for host in ("h1", "h2"):
        entry = report["hosts"][host]
        assert entry["outcome"] == "switched_back"
        assert entry["switched_back"]["fleet"] is True
        assert entry["switched_back"]["reason"].endswith("health gate failed: error rate 100.0% > 1.0%")
        assert entry["stopped_reason"].startswith("deploy of app 1.1.0 on %s stopped" % host)  # its own message
    assert report["outcome"] == "failed" and summary.splitlines()[1] == "hosts: 2 switched back"
    assert "  - fleet switch back: h1-blue, h2-blue live at once, 150 ms (via r1; for h1, h2)" in summary.splitlines()
    assert "  - fleet health gate FAILED: 120 samples, error rate 100.0%, p95 10.5 ms (error rate 100.0% > 1.0%) (for h1, h2)" \
        in summary.splitlines()
    assert "## h1: switched back" in markdown and "h1: SWITCHED BACK" in summary.splitlines()


def test_a_fleet_switch_back_after_one_hosts_failure_fails_that_host_and_switches_the_others_back(tmp_path):
    callback, display = new_callback(tmp_path)
    fleet_deploy(callback, batch=("h1", "h2", "h3"))
    fail(callback, "h2", "cache gate failed: hit ratio 10.0% < 60.0%", name="Gate the cache")
    # h2's rescue: the fleet switch back runs once, from h2, for the whole batch.
    switch(callback, "h2", ["h1-blue", "h2-blue", "h3-blue"], ["h1-green", "h2-green", "h3-green"], 140,
           name="Switch the whole fleet back at once", run_once=True)
    fail(callback, "h2", "deploy of app 1.1.0 on h2 stopped in phase cache: cache gate failed")
    report, markdown, summary = finish(callback, display, tmp_path, {
        "h1": {"ok": 5}, "h2": {"ok": 5, "failures": 1, "rescued": 1}, "h3": {"ok": 5}})
    assert report["fleet"]["switch_back"]["failed_hosts"] == ["h2"]
    for host in ("h1", "h3"):
        back = report["hosts"][host]["switched_back"]
        assert report["hosts"][host]["outcome"] == "switched_back"
        assert (back["fleet"], back["by"], back["reason"]) == (True, "h2", "h2: cache gate failed: hit ratio 10.0% < 60.0%")
    h2 = report["hosts"]["h2"]
    assert (h2["outcome"], h2["stopped_reason"]) == ("failed", "deploy of app 1.1.0 on h2 stopped in phase cache: cache gate failed")
    assert h2["reverted"] == ["traffic back to h1-blue, h2-blue, h3-blue"]
    assert summary.splitlines()[1] == "hosts: 2 switched back, 1 failed"


def rolling_fleet_revert(callback):
    """blue_green rolling, serial 1: h1 goes live; h2 fails its gate through the router, switches
    itself back, then switches h1 back from h2 (fleet_revert_host.yml: the router via r1, the
    state delegated to h1)."""
    callback.v2_playbook_on_play_start(FakePlay(["h1"]))
    switch(callback, "h1", "h1-green", "h1-blue", 3.1)
    record_state(callback, "h1", "1.1.0", "green", "1.0.0")
    callback.v2_playbook_on_play_start(FakePlay(["h2"]))
    switch(callback, "h2", "h2-green", "h2-blue", 2.9)
    callback.v2_runner_on_failed(fake_result("h2", FakeTask("Gate the new color through the router", "prodready.deploy.health_gate"), {
        "passed": False, "reason": "p95 900 ms > 500 ms", "samples": 50, "error_rate": 0.0, "latency_ms": {"p95": 900.0},
        "msg": "health gate failed: p95 900 ms > 500 ms"}))
    switch(callback, "h2", "h2-blue", "h2-green", 2.0, name="Switch traffic back to the previous color")
    reason = "h2 failed in phase gate_live: health gate failed: p95 900 ms > 500 ms"
    switch(callback, "h2", "h1-blue", "h1-green", 2.2, name="Switch traffic back on h1")
    record_state(callback, "h2", "1.0.0", "blue", "1.1.0", action="fleet_revert", result="reverted", reason=reason,
                 delegate_to="h1")
    callback.v2_runner_on_ok(fake_result("h2", FakeTask("Mark as reverted: h1", "ansible.builtin.set_fact", delegate_to="h1",
                                                        delegate_facts=True), {"ansible_facts": {"_blue_green_fleet_reverted": True}}))
    fail(callback, "h2", "deploy of app 1.1.0 on h2 stopped in phase gate_live: health gate failed: p95 900 ms > 500 ms. "
                         "Traffic: switched back to blue (1.0.0). Fleet: switched back h1.")


def test_a_host_switched_back_by_a_peer_is_switched_back_and_the_peer_says_why_it_failed(tmp_path):
    callback, display = new_callback(tmp_path)
    rolling_fleet_revert(callback)
    report, markdown, summary = finish(callback, display, tmp_path, {
        "h1": {"ok": 2, "changed": 2, "failures": 0}, "h2": {"ok": 6, "changed": 4, "failures": 1, "rescued": 1}})

    h1, h2 = report["hosts"]["h1"], report["hosts"]["h2"]
    assert h1["outcome"] == "switched_back"  # its play recap is ok: it is not "ok"
    assert h1["switched_back"]["by"] == "h2" and h1["switched_back"]["via"] == "r1"
    assert h1["switched_back"]["to"] == "1.0.0"
    assert h1["switched_back"]["reason"] == "h2 failed in phase gate_live: health gate failed: p95 900 ms > 500 ms"
    assert h1["stopped_reason"] is None
    # The switch back of h1 is under h1, said to be run by h2 through the router.
    back = [e for e in h1["events"] if e["kind"] == "router_switch" and e["direction"] == "back"]
    assert [(e["live"], e["by"], e["via"]) for e in back] == [("h1-blue", "h2", "r1")]
    assert back[0]["text"] == "switch back: router h1-green -> h1-blue in 2.2 ms (by h2, via r1)"
    assert [(e.get("action"), e.get("by")) for e in h1["events"] if e["kind"] == "state"] == [("deploy", None), ("fleet_revert", "h2")]
    # h2 failed, with its own message; its own switch back is what it reverted; h1's work is not under h2.
    assert h2["outcome"] == "failed"
    assert h2["stopped_reason"].startswith("deploy of app 1.1.0 on h2 stopped in phase gate_live")
    assert h2["reverted"] == ["traffic back to h2-blue"]
    assert not any("h1" in to_text_(e.get("live")) for e in h2["events"])
    assert not any(e.get("action") == "fleet_revert" for e in h2["events"])
    assert report["counts"]["switched_back"] == 1 and report["counts"]["failed"] == 1
    lines = summary.splitlines()
    assert lines[1] == "hosts: 1 switched back, 1 failed"
    assert "h1: SWITCHED BACK to 1.0.0" in lines and "h2: FAILED" in lines
    assert "  switched back: by h2 via r1: h2 failed in phase gate_live: health gate failed: p95 900 ms > 500 ms" in lines
    assert "## h1: switched back to 1.0.0" in markdown and "## h2: failed" in markdown


def to_text_(value):
    return json.dumps(value)


def test_hosts_switched_back_with_their_peers_in_the_same_batch(tmp_path):
    # main.yml's "Switch back when another host of the play failed": h1 runs fleet_revert.yml for
    # itself (its own state, delegate_to itself) and then fails "reverted with its peers".
    callback, display = new_callback(tmp_path)
    callback.v2_playbook_on_play_start(FakePlay(["h1", "h2"]))
    for host in ("h1", "h2"):
        switch(callback, host, host + "-green", host + "-blue", 3.0)
    record_state(callback, "h1", "1.1.0", "green", "1.0.0")
    fail(callback, "h2", "deploy of app 1.1.0 on h2 stopped in phase gate_live: boom")
    switch(callback, "h2", "h2-blue", "h2-green", 2.0)
    switch(callback, "h1", "h1-blue", "h1-green", 2.0, name="Switch traffic back on h1")
    record_state(callback, "h1", "1.0.0", "blue", "1.1.0", action="fleet_revert", result="reverted",
                 reason="h2 failed in this play", delegate_to="h1")
    fail(callback, "h1", "app 1.1.0 on h1 was switched back to 1.0.0 (blue): h2 failed in this play",
         name="Fail this host, reverted with its peers")
    report, markdown, summary = finish(callback, display, tmp_path, {
        "h1": {"ok": 4, "changed": 4, "failures": 1}, "h2": {"ok": 4, "changed": 3, "failures": 1, "rescued": 1}})
    h1, h2 = report["hosts"]["h1"], report["hosts"]["h2"]
    assert (h1["outcome"], h1["switched_back"]["by"], h1["switched_back"]["reason"]) == ("switched_back", None, "h2 failed in this play")
    assert h1["stopped_reason"] == "app 1.1.0 on h1 was switched back to 1.0.0 (blue): h2 failed in this play"
    assert (h2["outcome"], h2["stopped_reason"]) == ("failed", "deploy of app 1.1.0 on h2 stopped in phase gate_live: boom")
    assert "  switched back: with its peers: h2 failed in this play" in summary.splitlines()


def test_facts_set_with_delegate_facts_are_the_delegated_hosts(tmp_path):
    callback, display = new_callback(tmp_path)
    callback.v2_playbook_on_play_start(FakePlay(["h1", "h2"]))
    task = FakeTask("Tell every host", "ansible.builtin.set_fact", delegate_to="{{ item }}", run_once=True, delegate_facts=True)
    for host in ("h1", "h2"):
        callback.v2_runner_item_on_ok(fake_result("h1", FakeTask(task.name, task.action, delegate_to=host, run_once=True,
                                                                 delegate_facts=True), {}))
    callback.v2_runner_on_ok(fake_result("h1", task, {"results": [
        {"item": host, "ansible_facts": {"prodready_report": {"kind": "note", "text": "slot of " + host}}} for host in ("h1", "h2")]}))
    # Without delegate_facts, a delegated set_fact sets the task host's facts.
    callback.v2_runner_on_ok(fake_result("h2", FakeTask("Own note", "ansible.builtin.set_fact", delegate_to="h1"), {
        "ansible_facts": {"prodready_report": {"text": "own note of h2"}}}))
    report, markdown, summary = finish(callback, display, tmp_path, {"h1": {"ok": 1}, "h2": {"ok": 1}})
    assert [e["text"] for e in report["hosts"]["h1"]["events"]] == ["slot of h1"]
    assert [(e["text"], e.get("by")) for e in report["hosts"]["h2"]["events"]] == [
        ("slot of h2 (by h1)", "h1"), ("own note of h2 (via h1)", None)]
    assert report["fleet"]["events"] == []


def test_a_failed_run_once_task_stops_every_host_of_its_batch_and_skips_unreachable_ones(tmp_path):
    callback, display = new_callback(tmp_path)
    callback.v2_playbook_on_play_start(FakePlay(["h1", "h2", "h3"]))
    callback.v2_runner_on_unreachable(fake_result("h3", FakeTask("Take the deploy lock", "prodready.deploy.deploy_lock"),
                                                  {"msg": "ssh: no route to host"}))
    callback.v2_runner_on_failed(fake_result("h1", FakeTask("Back up the database", "prodready.deploy.pg_backup",
                                                            delegate_to="db1", run_once=True), {"msg": "pg_dump: disk full"}))
    report, markdown, summary = finish(callback, display, tmp_path, {
        "h1": {"ok": 1, "failures": 1}, "h2": {"ok": 1}, "h3": {"unreachable": 1}})
    failure = report["fleet"]["events"][0]
    assert (failure["kind"], failure["hosts"], failure["via"]) == ("failure", ["h1", "h2"], "db1")
    for host in ("h1", "h2"):
        assert (report["hosts"][host]["outcome"], report["hosts"][host]["stopped_reason"]) == ("failed", "pg_dump: disk full")
    assert report["hosts"]["h3"]["outcome"] == "unreachable"
    assert summary.splitlines()[1] == "hosts: 2 failed, 1 unreachable"


@pytest.mark.parametrize("switches, expected", [
    # Prefixed server names (one backend for the fleet): the servers h1's own switch moved away
    # from are h1's; h3 switching them back is h1's switch back, run by h3.
    ([("h1", "h1-green", "h1-blue"), ("h3", "h1-blue", "h1-green")], ("h1", "back")),
    # Bare color names (a router per host), two peers moved away from "blue": not told apart,
    # the switch stays with the host that ran it.
    ([("h1", "green", "blue"), ("h2", "green", "blue"), ("h3", "blue", "green")], ("h3", "forward")),
    # Bare names, and h3 switched "blue" itself: its own switch back.
    ([("h1", "green", "blue"), ("h3", "green", "blue"), ("h3", "blue", "green")], ("h3", "back")),
    # The same server again (blue_green's finalize drops the backup server): no direction.
    ([("h1", "h1-green", "h1-blue"), ("h1", "h1-green", "h1-green")], ("h1", None)),
])
def test_a_switch_back_of_servers_is_their_owners_only_when_unambiguous(switches, expected):
    log = [{"kind": "router_switch", "module": "router_switch", "status": "changed", "live": live, "previous_live": previous,
            "text": "t", "_ctx": {"host": host, "delegate": "r1", "batch": 0}} for host, live, previous in switches]
    log[-1]["mark"] = True
    host_events, fleet = dr.attribute_events(log, [{"play": "p", "hosts": ["h1", "h2", "h3"]}])
    found = [(host, e["direction"]) for host, events in host_events.items() for e in events if e.get("mark")]
    assert found == [expected]


def test_delegated_to_a_host_outside_the_play_stays_with_the_task_host():
    log = [{"kind": "state", "module": "deploy_state", "status": "changed", "text": "state: x",
            "_ctx": {"host": "h1", "delegate": "db1", "batch": 0}},
           {"kind": "state", "module": "deploy_state", "status": "changed", "text": "state: y",
            "_ctx": {"host": "h1", "delegate": "h2", "batch": 0}}]
    host_events, fleet = dr.attribute_events(log, [{"play": "p", "hosts": ["h1", "h2"]}])
    assert [(e["text"], e.get("via")) for e in host_events["h1"]] == [("state: x (via db1)", "db1")]
    assert [(e["text"], e.get("by")) for e in host_events["h2"]] == [("state: y (by h1)", "h1")]
    assert fleet == []


def test_play_hosts_are_the_batch_or_nothing_when_unreadable():
    assert dr._play_hosts(FakePlay(["h1", "h2"])) == ["h1", "h2"]
    assert dr._play_hosts(SimpleNamespace(hosts=["app"])) == []


def test_a_router_read_is_not_reported_as_a_switch():
    read = dr._summarize_router_switch({"observed": True, "live": ["h1-green"], "previous_live": ["h1-green"],
                                        "switch_ms": 0.0, "changed": False})
    assert read == {"kind": "router_read", "serving": ["h1-green"], "text": "router read: serving h1-green"}
    switch = dr._summarize_router_switch({"live": "green", "previous_live": "blue", "switch_ms": 512.0})
    assert switch["kind"] == "router_switch" and switch["text"] == "router blue -> green in 512.0 ms"


def test_who_launched_the_run_and_its_awx_job_are_in_the_summary_and_the_markdown():
    launch = dr.launch_of({"awx_user_name": "alice", "awx_job_id": 42, "awx_url": "https://awx.example/",
                           "awx_job_template_name": "deploy prod"})
    assert launch == {"launched_by": "alice", "job": {"id": "42", "url": "https://awx.example/#/jobs/playbook/42",
                                                      "template": "deploy prod"}}
    assert dr.launch_of({"tower_job_id": 7})["job"] == {"id": "7", "url": None, "template": None}
    assert dr.launch_of({})["job"] is None and dr.launch_of({})["launched_by"]  # the controller's login
    report = dr.build_report(dict(playbooks=["deploy.yml"], **launch), {}, {})
    assert "launched by alice (AWX job 42 https://awx.example/#/jobs/playbook/42)" in dr.render_summary(report)
    markdown = dr.render_markdown(report)
    assert "- launched by: alice" in markdown and "- AWX job: 42 (deploy prod) https://awx.example/#/jobs/playbook/42" in markdown
