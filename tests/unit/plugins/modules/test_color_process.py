# -*- coding: utf-8 -*-
"""Unit tests of color_process: docs agree with the code, options are checked before
anything is touched, and the start flow (against a scripted process manager and a fake
clock) fails at once when the process dies, at the timeout when it never answers, and
changes nothing for a color that already serves. The real supervisord is driven by
tests/integration/test_color_process.py."""

import json
import os
import stat

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.prodready.deploy.plugins.module_utils import _process_io
from ansible_collections.prodready.deploy.plugins.module_utils import _process_manager as pm
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.modules import color_process

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations", "diff", "exception"}
SECRET = "s3cr3t-Passw0rd"


def run_main(capsys, args, check=False):
    with patch_module_args(dict(args, _ansible_check_mode=check)):
        with pytest.raises(SystemExit):
            color_process.main()
    return json.loads(capsys.readouterr().out)


def test_documented_options_match_argument_spec():
    doc = yaml.safe_load(color_process.DOCUMENTATION)

    def compare(options, spec):
        assert set(options) == set(spec)
        for name, opt in spec.items():
            assert options[name].get("type", "str") == opt.get("type", "str"), name
            assert options[name].get("default") == opt.get("default"), name
            assert options[name].get("choices") == opt.get("choices"), name
            assert bool(options[name].get("required", False)) == bool(opt.get("required", False)), name
            if "options" in opt:
                compare(options[name]["suboptions"], opt["options"])

    compare(doc["options"], color_process.argument_spec())
    for task in yaml.safe_load(color_process.EXAMPLES):
        args = task["prodready.deploy.color_process"]
        assert set(args) <= set(doc["options"]), task["name"]
        assert set(args.get("probe", {})) <= set(doc["options"]["probe"]["suboptions"]), task["name"]


@pytest.mark.parametrize("args, message", [
    (dict(process_manager="supervisor"), "log_file is required with supervisor (state=started)"),
    (dict(process_manager="systemd"), "systemd_colors_dir is required with systemd (state=started)"),
    (dict(log_file="/l", port=70000), "port must be 1 to 65535, got 70000"),
    (dict(log_file="/l", name="my app"), "name must be letters, digits"),
    (dict(log_file="/l", color="green:1"), "color must be letters, digits"),
    (dict(log_file="/l", probe={"url": "https://x/health"}), "probe.url must be an http:// URL"),
    (dict(log_file="/l", probe={"url": "http://x/health", "version_path": "a..b"}), "probe.version_path 'a..b'"),
    (dict(log_file="/l", probe={"url": "http://x/", "wait_interval": 0}), "probe.timeout and probe.wait_interval"),
    (dict(log_file="/l", start_timeout=0), "start_timeout must be greater than 0"),
    (dict(log_file="/l", environment={"PW": SECRET + " ;x"}), "environment: the value of PW has ';'"),
])
def test_bad_options_are_refused_before_anything_is_touched(capsys, tmp_path, args, message):
    base = dict(name="myapp", color="green", process_manager="supervisor", command="run", directory=str(tmp_path),
                supervisor_conf_dir=str(tmp_path), supervisor_config=str(tmp_path / "missing.conf"))
    result = run_main(capsys, dict(base, **args))
    assert result["failed"] is True and message in result["msg"], result["msg"]
    assert os.listdir(str(tmp_path)) == [] and SECRET not in json.dumps(result)


def test_stop_without_supervisord_says_where_it_looked(capsys, tmp_path):
    config = tmp_path / "supervisord.conf"
    config.write_text("[supervisorctl]\nserverurl = unix://%s/nope.sock\n" % tmp_path)
    result = run_main(capsys, dict(name="myapp", color="blue", state="stopped", process_manager="supervisor",
                                   supervisor_config=str(config)))
    assert result["failed"] is True
    assert result["msg"].startswith("supervisor_config: cannot reach supervisord at unix://%s/nope.sock (read from %s)"
                                    % (tmp_path, config))


# ---------------------------------------------------------------- flows against a scripted manager

class Clock(object):
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(seconds, 0.01)


class FakeManager(object):
    """Plays observations: `before` until it is started, then `after` (the last one of each
    repeats); a stop makes it STOPPED. Records what the flow asked."""

    def __init__(self, tmp_path, before, after, stale=False):
        self.label = "myapp-green"
        self.program_file = str(tmp_path / "myapp-green.conf")
        self.states, self.after = list(before), list(after)
        self.stale = stale
        self.calls = []
        self.spec = None

    def wanted_files(self):
        return [dict(path=self.program_file, data=pm.render_supervisor_program(self.spec), mode=0o600,
                     mask=pm.mask_supervisor_program, option="supervisor_conf_dir")]

    def observe(self):
        phase, word, pid = self.states[0] if len(self.states) == 1 else self.states.pop(0)
        return dict(phase=phase, word=word, detail="exit status 1" if phase == pm.DEAD else "", pid=pid)

    def definition_stale(self, planned):
        self.calls.append("reread")
        return self.stale

    def apply(self):
        self.calls.append("apply")

    def start(self):
        self.calls.append("start")
        self.states = self.after

    def stop(self, deadline):
        self.calls.append("stop")
        self.states = [(pm.STOPPED, "STOPPED", None)]
        return self.observe()

    def log_mark(self):
        return 0

    def log_tail(self, mark):
        return ["booting", "fatal: no database"]

    def death_detail(self, observed, restarted):
        return "; ".join(part for part in (observed["detail"], "restarted" if restarted else "") if part)


class FakeProbe(object):
    url = "http://127.0.0.1:8102/health"
    timeout = 2.0

    def __init__(self, answers):
        self.answers = list(answers)

    def probe(self, timeout=None):
        ok = self.answers[0] if len(self.answers) == 1 else self.answers.pop(0)
        if ok:
            return dict(ok=True, status=200, version="1.2.0", error=None)
        return dict(ok=False, status=None, version=None, error="connection refused")


def flow_spec(tmp_path, **overrides):
    spec = dict(name="myapp", color="green", version="1.2.0", command="run", directory=str(tmp_path),
                environment={"DATABASE_URL": "postgresql://app:%s@db/app" % SECRET}, log_file=None, port=None,
                start_timeout=5.0, stop_timeout=15, probe_interval=0.1, colors_dir=None)
    spec.update(overrides)
    return spec


STOPPED = [(pm.STOPPED, "STOPPED", None)]


def start(tmp_path, before, after, answers, check_mode=False, restart=False, stale=False, **overrides):
    clock = Clock()
    manager = FakeManager(tmp_path, before, after, stale)
    manager.spec = flow_spec(tmp_path, **overrides)
    try:
        result = _process_io.start_color(manager, manager.spec, FakeProbe(answers), check_mode, restart,
                                         clock=clock, sleep=clock.sleep)
        error = None
    except ProdreadyError as exc:
        result, error = exc.details, exc
    return manager, clock, result, error


def test_start_waits_for_running_and_the_version(tmp_path):
    manager, clock, result, error = start(
        tmp_path, [(pm.ABSENT, "not loaded", None)],
        [(pm.STARTING, "STARTING", 42), (pm.STARTING, "STARTING", 42), (pm.UP, "RUNNING", 42)], [False, True])
    assert error is None
    assert manager.calls == ["reread", "apply", "start"]
    assert result["actions"] == ["write", "start"] and result["changed"] is True
    assert result["state"] == "RUNNING" and result["pid"] == 42
    assert result["probe"]["ok"] and result["probe"]["attempts"] == 3 and result["probe"]["version"] == "1.2.0"
    assert clock.now - 100.0 == pytest.approx(0.2)
    assert stat.S_IMODE(os.stat(manager.program_file).st_mode) == 0o600
    assert set(result) - COMMON_RESULT_KEYS <= set(yaml.safe_load(color_process.RETURN))


def test_a_process_that_dies_fails_at_once_not_at_the_timeout(tmp_path):
    manager, clock, result, error = start(
        tmp_path, STOPPED, [(pm.STARTING, "STARTING", 42), (pm.DEAD, "FATAL", None)], [False], start_timeout=60)
    assert str(error) == ("myapp-green (1.2.0) did not stay up: FATAL (exit status 1); probe: connection refused; "
                          "last log lines: booting | fatal: no database")
    assert clock.now - 100.0 < 0.5
    assert result["log_tail"] == ["booting", "fatal: no database"] and result["state"] == "FATAL"
    assert "stop" not in manager.calls  # nothing left to stop
    assert set(result) - COMMON_RESULT_KEYS <= set(yaml.safe_load(color_process.RETURN))


def test_a_process_restarted_after_a_crash_counts_as_dead(tmp_path):
    manager, clock, result, error = start(
        tmp_path, STOPPED, [(pm.UP, "RUNNING", 42), (pm.UP, "RUNNING", 43)], [False])
    assert str(error) == ("myapp-green (1.2.0) did not stay up: RUNNING (restarted); probe: connection refused; "
                          "last log lines: booting | fatal: no database; the color was stopped")
    assert manager.calls[-1] == "stop"


def test_a_process_that_never_answers_fails_at_the_timeout_and_is_stopped(tmp_path):
    manager, clock, result, error = start(tmp_path, STOPPED, [(pm.UP, "RUNNING", 42)], [False], start_timeout=2.0)
    assert str(error) == ("myapp-green (1.2.0) did not answer within start_timeout 2 s: RUNNING pid 42; "
                          "probe: connection refused; last log lines: booting | fatal: no database; "
                          "the color was stopped")
    assert 2.0 <= clock.now - 100.0 < 2.2
    assert manager.calls[-1] == "stop" and result["state"] == "STOPPED" and result["pid"] is None


def test_a_serving_color_with_the_same_definition_is_left_alone(tmp_path):
    first = start(tmp_path, STOPPED, [(pm.UP, "RUNNING", 42)], [True])
    assert first[3] is None
    manager, clock, result, error = start(tmp_path, [(pm.UP, "RUNNING", 42)], [], [True])
    assert error is None and result["changed"] is False and result["actions"] == []
    assert manager.calls == ["reread"] and result["probe"]["attempts"] == 1


@pytest.mark.parametrize("restart, stale, answers, actions", [
    (True, False, [True], ["stop", "start"]),             # restarted: even when it serves
    (False, True, [True], ["stop", "reload", "start"]),   # supervisord runs an older definition
    (False, False, [False, True], ["stop", "start"]),     # runs, but not this version
])
def test_a_running_color_is_restarted_when_it_must(tmp_path, restart, stale, answers, actions):
    start(tmp_path, STOPPED, [(pm.UP, "RUNNING", 41)], [True])
    manager, clock, result, error = start(tmp_path, [(pm.UP, "RUNNING", 41)], [(pm.UP, "RUNNING", 42)], answers,
                                          restart=restart, stale=stale)
    assert error is None and result["changed"] is True and result["actions"] == actions


def test_check_mode_predicts_and_touches_nothing(tmp_path):
    manager, clock, result, error = start(tmp_path, [(pm.UP, "RUNNING", 41)], [], [True], check_mode=True)
    assert error is None and result["changed"] is True
    assert result["actions"] == ["write", "stop", "reload", "start"]
    assert result["files_changed"] == [manager.program_file] and not os.path.exists(manager.program_file)
    assert manager.calls == []
    diff = result["diff"][0]
    assert diff["before"] == "" and 'DATABASE_URL="******** (changed)"' not in diff["after"]
    assert 'DATABASE_URL="********"' in diff["after"] and SECRET not in json.dumps(result)


def test_a_file_with_a_wrong_mode_gets_0600_back_without_a_restart(tmp_path):
    start(tmp_path, STOPPED, [(pm.UP, "RUNNING", 42)], [True])
    program_file = tmp_path / "myapp-green.conf"
    os.chmod(str(program_file), 0o644)
    manager, clock, result, error = start(tmp_path, [(pm.UP, "RUNNING", 42)], [], [True])
    assert result["changed"] is True and result["actions"] == ["write"] and "start" not in manager.calls
    assert stat.S_IMODE(program_file.stat().st_mode) == 0o600


def test_stop_is_idempotent(tmp_path):
    manager = FakeManager(tmp_path, [(pm.UP, "RUNNING", None)], [])
    actions = []
    clock = Clock()
    spec = flow_spec(tmp_path)
    assert _process_io.stop_color(manager, spec, False, actions, clock, clock.sleep)["word"] == "STOPPED"
    assert actions == ["stop"]
    again = []
    _process_io.stop_color(manager, spec, False, again, clock, clock.sleep)
    assert again == [] and manager.calls == ["stop"]
