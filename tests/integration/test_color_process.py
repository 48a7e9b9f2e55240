# -*- coding: utf-8 -*-
"""color_process through real ansible against the sandbox's supervisord: a color starts and
serves its version, restarts on a new one, changes nothing when it already serves, fails at
once when its command dies and at the timeout when it never answers, stops with its whole
process group and a closed port, keeps its secrets out of the output, and check mode
touches nothing. (systemd: unit tests of its files only, there is no systemd here.)"""

import json
import os
import stat
import subprocess
import time
import uuid

import pytest
import requests
import yaml

import wsgi_app
from apptools import free_port
from helpers import ROOT, run_module

from ansible_collections.prodready.deploy.plugins.modules import color_process

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations", "_stdout", "diff",
                      "exception"}
SECRET = "pw-%s%%x" % uuid.uuid4().hex[:8]  # a % too: supervisor needs it escaped
SECRET_HEAD = SECRET.partition("%")[0]       # what a display could show of it, before the %
PYTHON = str(ROOT / ".venv" / "bin" / "python")

# A parent that forks a child in its own process group; the child holds the port and
# answers, and with "stubborn" ignores SIGTERM (the parent obeys it).
FORKER_PY = '''\
import os, signal, socket, sys
port = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    if len(sys.argv) > 2:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(5)
    print("child %d listens on %d" % (os.getpid(), port), flush=True)
    while True:
        conn, _ = server.accept()
        conn.recv(1024)
        conn.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nforker")
        conn.close()
print("parent %d waits for child %d" % (os.getpid(), pid), flush=True)
os.waitpid(pid, 0)
'''


@pytest.fixture
def color(sandbox, tmp_path):
    """One app color under the sandbox's supervisord: its args factory, its port; the
    program is stopped and unloaded afterwards."""
    sup = sandbox["services"]["supervisor"]
    name = "cp" + uuid.uuid4().hex[:8]
    port = free_port()
    (tmp_path / "logs").mkdir()

    def release(version):
        path = tmp_path / "releases" / version
        path.mkdir(parents=True, exist_ok=True)
        (path / "app.py").write_text(wsgi_app.APP_PY)
        (path / "VERSION").write_text(version + "\n")
        (path / "forker.py").write_text(FORKER_PY)
        return path

    def args(version="1.0.0", **overrides):
        path = release(version)
        base = dict(name=name, color="green", process_manager="supervisor",
                    command="%s %s/app.py %d" % (PYTHON, path, port), directory=str(path),
                    environment={"DATABASE_URL": "postgresql://app:%s@127.0.0.1/app" % SECRET,
                                 "APP_GREETING": "hello, world"},
                    log_file=str(tmp_path / "logs" / "green.log"), version=version, port=port,
                    start_timeout=30, stop_timeout=5,
                    supervisor_conf_dir=sup["programs_dir"], supervisor_config=sup["config"],
                    probe={"url": "http://127.0.0.1:%d/healthz" % port, "version_path": "build.version"})
        base.update(overrides)
        return base

    info = dict(name=name, program="%s-green" % name, port=port, args=args, release=release,
                program_file=os.path.join(sup["programs_dir"], "%s-green.conf" % name),
                url="http://127.0.0.1:%d/healthz" % port, log=tmp_path / "logs" / "green.log")
    yield info
    ctl = [PYTHON.replace("python", "supervisorctl"), "-c", sup["config"]]
    subprocess.run(ctl + ["stop", info["program"]], capture_output=True, check=False)
    if os.path.exists(info["program_file"]):
        os.unlink(info["program_file"])
    subprocess.run(ctl + ["update", info["program"]], capture_output=True, check=False)


def served_version(url):
    return requests.get(url, timeout=2).json()["build"]["version"]


def supervisor_pid(sandbox, program):
    out = subprocess.run([PYTHON.replace("python", "supervisorctl"), "-c", sandbox["services"]["supervisor"]["config"],
                          "pid", program], capture_output=True, text=True, check=False).stdout.strip()
    return int(out) if out.isdigit() and out != "0" else None


def listening(port):
    return any(f"{port:04X}" == line.split()[1].rsplit(":", 1)[1] and line.split()[3] == "0A"
               for table in ("/proc/net/tcp", "/proc/net/tcp6") if os.path.exists(table)
               for line in open(table).read().splitlines()[1:])


def test_a_color_starts_serves_its_version_and_keeps_its_secrets(sandbox, color):
    result = run_module("color_process", color["args"]("1.0.0"), diff=True)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] and result["actions"] == ["write", "reload", "start"]
    assert result["state"] == "RUNNING" and result["pid"] == supervisor_pid(sandbox, color["program"])
    assert result["probe"]["ok"] and result["probe"]["version"] == "1.0.0"
    assert served_version(color["url"]) == "1.0.0"
    assert set(result) - COMMON_RESULT_KEYS == set(yaml.safe_load(color_process.RETURN)) - {"log_tail"}
    # the program file: 0600, the secret in it (escaped for supervisor), and nowhere in the output
    assert stat.S_IMODE(os.stat(color["program_file"]).st_mode) == 0o600
    text = open(color["program_file"]).read()
    assert SECRET.replace("%", "%%") in text and "stopasgroup = true" in text and "killasgroup = true" in text
    assert SECRET not in json.dumps(result) and SECRET_HEAD not in result["_stdout"]
    # the process got the exact value
    environ = open("/proc/%d/environ" % result["pid"], "rb").read().split(b"\0")
    assert ("DATABASE_URL=postgresql://app:%s@127.0.0.1/app" % SECRET).encode() in environ
    assert b"APP_GREETING=hello, world" in environ
    # the supervisor-side start is short: startsecs = 1 plus the app's own start
    assert result["elapsed_s"] < 5, result["elapsed_s"]


def test_a_new_version_restarts_the_color_and_the_same_one_changes_nothing(sandbox, color):
    first = run_module("color_process", color["args"]("1.0.0"))
    assert not first.get("failed"), first.get("msg")

    again = run_module("color_process", color["args"]("1.0.0"))
    assert again["changed"] is False and again["actions"] == [] and again["pid"] == first["pid"]

    upgraded = run_module("color_process", color["args"]("1.1.0"))
    assert not upgraded.get("failed"), upgraded.get("msg")
    assert upgraded["changed"] and upgraded["actions"] == ["write", "stop", "reload", "start"]
    assert upgraded["pid"] != first["pid"] and served_version(color["url"]) == "1.1.0"

    restarted = run_module("color_process", color["args"]("1.1.0", state="restarted"))
    assert restarted["changed"] and restarted["actions"] == ["stop", "start"]
    assert restarted["pid"] != upgraded["pid"] and served_version(color["url"]) == "1.1.0"


def test_check_mode_reports_and_changes_nothing(sandbox, color):
    first = run_module("color_process", color["args"]("1.0.0"))
    before = open(color["program_file"], "rb").read()
    args = color["args"]("1.1.0")
    args["environment"]["DATABASE_URL"] = "postgresql://app:other-%s@127.0.0.1/app" % SECRET
    predicted = run_module("color_process", args, check=True, diff=True)
    assert predicted["changed"] and predicted["actions"] == ["write", "stop", "reload", "start"]
    assert predicted["files_changed"] == [color["program_file"]]
    assert open(color["program_file"], "rb").read() == before
    assert supervisor_pid(sandbox, color["program"]) == first["pid"] and served_version(color["url"]) == "1.0.0"
    assert 'DATABASE_URL="******** (changed)"' in predicted["_stdout"]
    assert "; %s color green: release 1.1.0" % color["name"] in predicted["_stdout"]
    assert SECRET_HEAD not in predicted["_stdout"]


def test_a_command_that_exits_at_once_fails_fast_with_its_status_and_log(sandbox, color):
    release = color["release"]("2.0.0")
    (release / "crash.py").write_text("import sys\nprint('booting 2.0.0', flush=True)\n"
                                      "print('cannot open database', flush=True)\nsys.exit(3)\n")
    began = time.monotonic()
    result = run_module("color_process", color["args"]("2.0.0", command="%s %s/crash.py" % (PYTHON, release)))
    assert result["failed"] and time.monotonic() - began < 20
    assert result["elapsed_s"] < 15, result["elapsed_s"]  # not the start_timeout (30): it died, no wait
    assert result["msg"].startswith("%s (2.0.0) did not stay up: FATAL (exited too quickly; exit status 3); "
                                    "probe: connection refused; last log lines: " % color["program"]), result["msg"]
    assert result["msg"].endswith("booting 2.0.0 | cannot open database")
    assert result["log_tail"] == ["booting 2.0.0", "cannot open database"]
    assert result["state"] == "FATAL" and SECRET not in json.dumps(result)


def test_a_process_that_never_answers_fails_at_the_timeout_naming_the_probe_error(sandbox, color):
    release = color["release"]("2.0.0")
    (release / "deaf.py").write_text("import time\nprint('up, but not listening', flush=True)\ntime.sleep(600)\n")
    result = run_module("color_process", color["args"]("2.0.0", command="%s %s/deaf.py" % (PYTHON, release),
                                                       start_timeout=2))
    assert result["failed"]
    assert 2 <= result["elapsed_s"] < 6, result["elapsed_s"]
    assert result["msg"].startswith("%s (2.0.0) did not answer within start_timeout 2 s: RUNNING pid "
                                    % color["program"]), result["msg"]
    assert "probe: connection refused; last log lines: up, but not listening; the color was stopped" in result["msg"]
    assert result["state"] == "STOPPED" and supervisor_pid(sandbox, color["program"]) is None


def test_a_wrong_version_fails_naming_what_the_probe_read(sandbox, color):
    result = run_module("color_process", color["args"]("1.0.0", start_timeout=2,
                                                       probe={"url": color["url"], "version_path": "build.version",
                                                              "expect_version": "9.9.9"}))
    assert result["failed"] and 'probe: version is "1.0.0", expected "9.9.9"' in result["msg"]
    assert result["probe"]["version"] == "1.0.0" and result["probe"]["status"] == 200


def test_a_color_that_reports_its_version_serves_only_once_its_readiness_path_answers(sandbox, color):
    probe = {"url": color["url"], "version_path": "build.version",
             "ready_url": "http://127.0.0.1:%d/readyz" % color["port"]}
    result = run_module("color_process", color["args"]("1.0.0", start_timeout=2, probe=probe))
    assert result["failed"], result
    assert ("probe: readiness http://127.0.0.1:%d/readyz answered 503: warming up" % color["port"]) in result["msg"]
    assert result["probe"]["version"] == "1.0.0" and result["state"] == "STOPPED"
    (color["release"]("1.0.0") / "READY").write_text("")
    result = run_module("color_process", color["args"]("1.0.0", probe=probe))
    assert not result.get("failed"), result["msg"]
    assert result["probe"]["ok"] and requests.get(probe["ready_url"], timeout=2).status_code == 200


def test_a_stopped_color_resumes_from_its_own_definition_and_none_is_refused(sandbox, color):
    args = color["args"]("1.0.0")
    resume = {k: v for k, v in args.items() if k not in ("command", "directory", "environment")}
    resume["state"] = "resumed"
    refused = run_module("color_process", resume)
    assert refused["failed"] and refused["msg"].startswith(
        "state=resumed: %s has no definition to start (%s missing)" % (color["program"], color["program_file"]))
    assert not run_module("color_process", args).get("failed")
    stopped = run_module("color_process", dict(resume, state="stopped"))
    assert stopped["state"] == "STOPPED", stopped.get("msg")
    mode = os.stat(color["program_file"]).st_mtime_ns
    resumed = run_module("color_process", resume)
    assert not resumed.get("failed"), resumed.get("msg")
    assert resumed["actions"] == ["start"] and resumed["probe"]["version"] == "1.0.0"
    assert served_version(color["url"]) == "1.0.0" and os.stat(color["program_file"]).st_mtime_ns == mode
    again = run_module("color_process", resume)
    assert again["changed"] is False


@pytest.mark.parametrize("stubborn", [False, True], ids=["child obeys SIGTERM", "child ignores SIGTERM"])
def test_stop_ends_the_whole_process_group_and_closes_the_port(sandbox, color, stubborn):
    release = color["release"]("3.0.0")
    command = "%s %s/forker.py %d%s" % (PYTHON, release, color["port"], " stubborn" if stubborn else "")
    started = run_module("color_process", color["args"]("3.0.0", command=command, stop_timeout=2,
                                                        probe={"url": color["url"], "version_path": "",
                                                               "expect_version": "forker"}))
    assert not started.get("failed"), started.get("msg")
    pgid = started["pid"]
    group = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgrp(p) == pgid]
    assert len(group) == 2  # the parent and its child

    stopped = run_module("color_process", dict(name=color["name"], color="green", state="stopped",
                                               process_manager="supervisor", port=color["port"], stop_timeout=2,
                                               supervisor_config=sandbox["services"]["supervisor"]["config"]))
    assert not stopped.get("failed"), stopped.get("msg")
    assert stopped["changed"] and stopped["state"] == "STOPPED" and stopped["pid"] is None
    assert stopped["actions"] == (["stop", "kill group"] if stubborn else ["stop"])
    assert not listening(color["port"])
    assert [p for p in group if os.path.exists("/proc/%d" % p) and _state(p) != "Z"] == []
    assert os.path.exists(color["program_file"])  # the definition stays

    again = run_module("color_process", dict(name=color["name"], color="green", state="stopped",
                                             process_manager="supervisor", port=color["port"],
                                             supervisor_config=sandbox["services"]["supervisor"]["config"]))
    assert again["changed"] is False and again["actions"] == []


def test_stop_fails_when_another_process_keeps_the_port(sandbox, color):
    squatter = subprocess.Popen([PYTHON, "-c", "import socket, time\ns = socket.socket()\n"
                                 "s.bind(('127.0.0.1', %d))\ns.listen(1)\ntime.sleep(60)" % color["port"]])
    try:
        deadline = time.monotonic() + 5
        while not listening(color["port"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        result = run_module("color_process", dict(name=color["name"], color="green", state="stopped",
                                                  process_manager="supervisor", port=color["port"], stop_timeout=1,
                                                  supervisor_config=sandbox["services"]["supervisor"]["config"]))
        assert result["failed"]
        assert result["msg"].startswith("port %d is still open after %s stopped: held by %d (%s -c import socket"
                                        % (color["port"], color["program"], squatter.pid, PYTHON)), result["msg"]
    finally:
        squatter.kill()
        squatter.wait()


def _stat_fields(pid):
    try:
        return open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    except OSError:
        return ["", "", ""]


def _pgrp(pid):
    value = _stat_fields(pid)[2]
    return int(value) if value.isdigit() else None


def _state(pid):
    return _stat_fields(pid)[0]


def test_a_program_dir_supervisord_does_not_include_is_named(sandbox, color, tmp_path):
    elsewhere = tmp_path / "not-included"
    elsewhere.mkdir()
    result = run_module("color_process", color["args"]("1.0.0", supervisor_conf_dir=str(elsewhere)))
    assert result["failed"]
    assert result["msg"] == ("supervisord does not load %s/%s.conf: supervisor_conf_dir is not among the [include] "
                             "files of %s" % (elsewhere, color["program"], sandbox["services"]["supervisor"]["config"]))
