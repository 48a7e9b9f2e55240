# -*- coding: utf-8 -*-
"""Unit tables for _process_manager: the color's files byte for byte (and read back by
supervisor's own parser), masking, supervisord's address, the managers' states, the probe's
verdict, the wait loop's next step and the failure message."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _process_manager as pm
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

SECRET = "s3cr3t-Passw0rd"


def spec(**overrides):
    base = dict(name="myapp", color="green", version="1.2.0",
                command="/srv/myapp/releases/1.2.0/.venv/bin/python -m myapp --port 8102",
                directory="/srv/myapp/releases/1.2.0",
                environment={"APP_ENV_FILE": "/srv/myapp/shared/.env",
                             "DATABASE_URL": "postgresql://app:%s@db/app" % SECRET},
                log_file="/srv/myapp/logs/green.log", stop_timeout=15, colors_dir="/srv/myapp/colors")
    base.update(overrides)
    return base


# ---------------------------------------------------------------- supervisor program file

def test_supervisor_program_bytes():
    assert pm.render_supervisor_program(spec()) == (
        b"; Managed by prodready.deploy.color_process; edits are overwritten.\n"
        b"; myapp color green: release 1.2.0\n"
        b"[program:myapp-green]\n"
        b"command = /srv/myapp/releases/1.2.0/.venv/bin/python -m myapp --port 8102\n"
        b"directory = /srv/myapp/releases/1.2.0\n"
        b'environment = APP_ENV_FILE="/srv/myapp/shared/.env",DATABASE_URL="postgresql://app:s3cr3t-Passw0rd@db/app"\n'
        b"autostart = true\n"
        b"autorestart = unexpected\n"
        b"startsecs = 1\n"
        b"startretries = 0\n"
        b"stopsignal = TERM\n"
        b"stopwaitsecs = 15\n"
        b"stopasgroup = true\n"
        b"killasgroup = true\n"
        b"redirect_stderr = true\n"
        b"stdout_logfile = /srv/myapp/logs/green.log\n"
        b"stdout_logfile_maxbytes = 10MB\n")


def test_supervisor_program_without_environment_version_or_log():
    text = pm.render_supervisor_program(spec(environment={}, version="", log_file=None)).decode()
    assert "; myapp color green\n" in text
    assert "environment" not in text and "stdout_logfile" not in text


@pytest.mark.parametrize("value, item", [
    ("plain", 'K="plain"'),
    ("", 'K=""'),
    ("50% off", 'K="50%% off"'),                      # supervisor %-expands the line
    ("%(ENV_HOME)s", 'K="%%(ENV_HOME)s"'),
    ("a,b=c d", 'K="a,b=c d"'),                        # commas and = inside quotes
    ('say "hi" now', "K='say \"hi\" now'"),            # no escape character: the other quote
    ("it's", 'K="it\'s"'),
    ("back\\slash", 'K="back\\slash"'),                # no escape character: kept as is
    ("x#1;y", 'K="x#1;y"'),                            # not after whitespace: no comment
    ("ünïcode", 'K="ünïcode"'),
])
def test_supervisor_environment_quoting(value, item):
    line = pm.render_supervisor_program(spec(environment={"K": value})).decode().splitlines()[5]
    assert line == "environment = " + item


@pytest.mark.parametrize("value, why", [
    ('a"bXb\'c', "holds both ' and \""),
    ('"X"', "starts or ends with a quote character"),
    ("X'", "starts or ends with a quote character"),
    ("X ;b", "';' or '#' after whitespace"),
    ("a\t#X", "';' or '#' after whitespace"),
    ("X %(here)s", "%(here)s"),
])
def test_supervisor_refuses_values_it_would_change_naming_the_variable_not_the_value(value, why):
    with pytest.raises(ProdreadyError) as err:
        pm.render_supervisor_program(spec(environment={"DB_PASSWORD": value.replace("X", SECRET)}))
    assert why in str(err.value) and "DB_PASSWORD" in str(err.value)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("option, value, why", [
    ("command", "run --greeting 'hi ;there'", "';' or '#' after whitespace"),
    ("command", "run\nrm -rf /", "line break"),
    ("directory", "/srv/app ", "whitespace"),
    ("log_file", "/srv/%(here)s/x.log", "%(here)s"),
])
def test_supervisor_refuses_settings_it_would_change(option, value, why):
    with pytest.raises(ProdreadyError) as err:
        pm.render_supervisor_program(spec(**{option: value}))
    assert str(err.value).startswith(option) and why in str(err.value)


def test_supervisor_reads_back_exactly_what_was_meant(tmp_path):
    """The rendered file through supervisor's own parser: same environment, command, paths."""
    options = pytest.importorskip("supervisor.options")
    environment = {"A": 'say "hi" now', "B": "50% off, 'really' x#1;y", "C": "", "D": "a,b=c",
                   "E": "%(ENV_HOME)s", "PASSWORD": SECRET + "%%"}
    release = tmp_path / "my release"
    release.mkdir()
    wanted = spec(environment=environment, directory=str(release), log_file=str(tmp_path / "green.log"),
                  command="/usr/bin/env python3 -c 'print(\"50%\")'")
    parser = options.UnhosedConfigParser()
    parser.read_string(pm.render_supervisor_program(wanted).decode())
    parser.expand_here(str(tmp_path))
    server = options.ServerOptions()
    server.here = str(tmp_path)
    config = server.processes_from_section(parser, "program:myapp-green", "myapp-green")[0]
    assert config.environment == environment
    assert config.command == wanted["command"]
    assert config.directory == str(release) and config.stdout_logfile == str(tmp_path / "green.log")
    assert (config.startsecs, config.startretries, config.stopwaitsecs) == (1, 0, 15)
    assert config.stopasgroup and config.killasgroup


def test_mask_supervisor_program_marks_changed_values_only():
    before = pm.render_supervisor_program(spec()).decode()
    after = pm.render_supervisor_program(spec(environment={"APP_ENV_FILE": "/srv/myapp/shared/.env",
                                                           "DATABASE_URL": "postgresql://app:new@db/app",
                                                           "NEW_FLAG": "1"})).decode()
    masked_after = pm.mask_supervisor_program(after, before)
    assert ('environment = APP_ENV_FILE="********",DATABASE_URL="******** (changed)",'
            'NEW_FLAG="******** (changed)"') in masked_after
    masked_before = pm.mask_supervisor_program(before)
    assert 'environment = APP_ENV_FILE="********",DATABASE_URL="********"' in masked_before
    for text in (masked_before, masked_after):
        assert SECRET not in text and "new@db" not in text and "/srv/myapp/shared/.env" not in text
    assert masked_after.splitlines()[3:5] == after.splitlines()[3:5]  # the rest is shown as it is


def test_mask_supervisor_program_hides_an_unreadable_environment_whole():
    text = "[program:x]\nenvironment = A=\"unterminated,%s\n" % SECRET
    assert pm.mask_supervisor_program(text) == "[program:x]\nenvironment = ********\n"


# ---------------------------------------------------------------- systemd files

def test_systemd_env_file_bytes_with_escapes():
    data = pm.render_systemd_env(spec(environment={"A": 'q"uote', "B": "$HOME and `cmd` \\n", "C": "50%", "D": ""}))
    assert data == (b"# Managed by prodready.deploy.color_process; edits are overwritten.\n"
                    b"# myapp color green: release 1.2.0\n"
                    b'A="q\\"uote"\n'
                    b'B="\\$HOME and \\`cmd\\` \\\\n"\n'
                    b'C="50%"\n'
                    b'D=""\n')


def test_systemd_script_bytes():
    assert pm.render_systemd_script(spec(directory="/srv/my app/1.2.0")) == (
        b"#!/bin/sh\n"
        b"# Managed by prodready.deploy.color_process; edits are overwritten.\n"
        b"cd '/srv/my app/1.2.0' || exit 1\n"
        b"exec /srv/myapp/releases/1.2.0/.venv/bin/python -m myapp --port 8102 >> /srv/myapp/logs/green.log 2>&1\n")
    assert pm.render_systemd_script(spec(log_file=None)).endswith(b"--port 8102\n")


def test_systemd_unit_bytes():
    assert pm.render_systemd_unit(spec(colors_dir="/srv/my%app/colors/")) == (
        b"# Managed by prodready.deploy.color_process; edits are overwritten.\n"
        b"[Unit]\n"
        b"Description=myapp (%i color)\n"
        b"After=network-online.target\n"
        b"\n"
        b"[Service]\n"
        b"Type=simple\n"
        b"EnvironmentFile=/srv/my%%app/colors/%i.env\n"
        b"ExecStart=/srv/my%%app/colors/%i.sh\n"
        b"KillMode=control-group\n"
        b"KillSignal=SIGTERM\n"
        b"TimeoutStopSec=15\n"
        b"Restart=on-failure\n"
        b"RestartSec=2\n"
        b"\n"
        b"[Install]\n"
        b"WantedBy=multi-user.target\n")


def test_systemd_unit_refuses_whitespace_in_the_colors_dir():
    with pytest.raises(ProdreadyError, match="systemd_colors_dir '/srv/my app' holds whitespace"):
        pm.render_systemd_unit(spec(colors_dir="/srv/my app"))


def test_mask_env_file():
    before = pm.render_systemd_env(spec()).decode()
    after = pm.render_systemd_env(spec(environment={"APP_ENV_FILE": "/srv/myapp/shared/.env",
                                                    "DATABASE_URL": "x"})).decode()
    assert pm.mask_env_file(after, before).splitlines()[2:] == ['APP_ENV_FILE="********"',
                                                                'DATABASE_URL="******** (changed)"']
    assert SECRET not in pm.mask_env_file(before)


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("environment, expected", [
    ({}, {}),
    ({"B": True, "A": False, "N": 3, "F": 0.5, "S": "x"}, {"A": "false", "B": "true", "F": "0.5", "N": "3", "S": "x"}),
])
def test_check_environment(environment, expected):
    assert pm.check_environment(environment) == expected


@pytest.mark.parametrize("environment, message", [
    ({"1BAD": "x"}, "environment: '1BAD' is not a valid variable name"),
    ({"A-B": "x"}, "environment: 'A-B' is not a valid variable name"),
    ({"NONE": None}, "environment: NONE has no value (null)"),
    ({"L": [1]}, "environment: L must be text, a number or a boolean, got a list"),
    ({"PW": SECRET + "\n"}, "environment: the value of PW holds a line break"),
])
def test_check_environment_refuses(environment, message):
    with pytest.raises(ProdreadyError) as err:
        pm.check_environment(environment)
    assert str(err.value).startswith(message) and SECRET not in str(err.value)


@pytest.mark.parametrize("value, ok", [("myapp", True), ("my_app.v2-x", True), ("-x", False), ("a:b", False),
                                       ("a b", False), ("", False), (None, False)])
def test_check_name(value, ok):
    if ok:
        assert pm.check_name("name", value) == value
    else:
        with pytest.raises(ProdreadyError, match="^name must be"):
            pm.check_name("name", value)


# ---------------------------------------------------------------- supervisord's address

@pytest.mark.parametrize("config, expected", [
    ("[supervisorctl]\nserverurl = unix:///run/supervisor.sock ; a comment\n",
     dict(url="unix:///run/supervisor.sock", username=None, password=None)),
    ("[unix_http_server]\nfile = %(here)s/s.sock\n[supervisorctl]\nusername = ops\npassword = pw\n",
     dict(url="unix:///etc/supervisor/s.sock", username="ops", password="pw")),
    ("[inet_http_server]\nport = 127.0.0.1:9001\n", dict(url="http://127.0.0.1:9001", username=None, password=None)),
    ("[inet_http_server]\nport = :9002\n", dict(url="http://localhost:9002", username=None, password=None)),
    ("[supervisord]\n", dict(url="http://localhost:9001", username=None, password=None)),
    ("[supervisorctl]\nserverurl = unix://%(ENV_RUNDIR)s/s.sock\n",
     dict(url="unix:///var/run/s.sock", username=None, password=None)),
])
def test_supervisor_server(config, expected):
    assert pm.supervisor_server(config, "/etc/supervisor", {"RUNDIR": "/var/run"}) == expected


@pytest.mark.parametrize("config, message", [
    ("[supervisorctl]\nserverurl = unix://%(ENV_NOPE)s/s\n", "serverurl = unix://%(ENV_NOPE)s/s cannot be expanded"),
    ("[supervisorctl]\nserverurl = ftp://x\n", "serverurl 'ftp://x' is neither unix:// nor http://"),
    ("no section\n", "cannot be parsed"),
])
def test_supervisor_server_refuses(config, message):
    with pytest.raises(ProdreadyError) as err:
        pm.supervisor_server(config, "/etc", {})
    assert str(err.value).startswith("supervisor_config: ") and message in str(err.value)


# ---------------------------------------------------------------- states

@pytest.mark.parametrize("info, expected", [
    (None, (pm.ABSENT, "not loaded", "")),
    ({"statename": "RUNNING", "pid": 42}, (pm.UP, "RUNNING", "")),
    ({"statename": "STARTING"}, (pm.STARTING, "STARTING", "")),
    ({"statename": "BACKOFF", "spawnerr": "Exited too quickly (process log may have details)"},
     (pm.RESTARTING, "BACKOFF", "exited too quickly")),
    ({"statename": "FATAL", "spawnerr": "Exited too quickly (process log may have details)", "exitstatus": 0},
     (pm.DEAD, "FATAL", "exited too quickly")),
    ({"statename": "FATAL", "spawnerr": "can't find command '/nope'"}, (pm.DEAD, "FATAL", "can't find command '/nope'")),
    ({"statename": "EXITED", "exitstatus": 1, "spawnerr": "Bad exit code 1"}, (pm.DEAD, "EXITED", "exit status 1")),
    ({"statename": "STOPPED"}, (pm.STOPPED, "STOPPED", "")),
    ({"statename": "STOPPING"}, (pm.STOPPING, "STOPPING", "")),
    ({"statename": "UNKNOWN"}, (pm.DEAD, "UNKNOWN", "")),
])
def test_supervisor_state(info, expected):
    assert pm.supervisor_state(info) == expected


SUPERVISORD_LOG = """\
2026-12-06 22:30:01,000 WARN exited: myapp-green (exit status 2; not expected)
2026-12-06 22:30:02,000 INFO spawned: 'myapp-green-old' with pid 7
2026-12-06 22:30:02,500 WARN exited: myapp-green-old (exit status 9; not expected)
2026-12-06 22:30:03,000 WARN exited: myapp-green (exit status 3; not expected)
2026-12-06 22:30:04,000 INFO gave up: myapp-green entered FATAL state, too many start retries too quickly
"""


@pytest.mark.parametrize("log, program, reason", [
    (SUPERVISORD_LOG, "myapp-green", "exit status 3"),
    (SUPERVISORD_LOG, "myapp-green-old", "exit status 9"),
    ("x INFO exited: a.b (terminated by SIGKILL; not expected)\n", "a.b", "terminated by SIGKILL"),
    ("x INFO exited: aXb (exit status 1; not expected)\n", "a.b", ""),   # the name is literal, not a regex
    ("", "myapp-green", ""),
])
def test_exit_reason(log, program, reason):
    assert pm.exit_reason(log, program) == reason


SHOW = "LoadState=loaded\nActiveState={active}\nSubState={sub}\nMainPID={pid}\nExecMainCode={code}\n" \
       "ExecMainStatus={status}\nResult={result}\nNeedDaemonReload=no\n"


@pytest.mark.parametrize("values, expected", [
    (dict(active="active", sub="running", pid=42, code=0, status=0, result="success"),
     (pm.UP, "active (running)", "")),
    (dict(active="activating", sub="start", pid=42, code=0, status=0, result="success"),
     (pm.STARTING, "activating (start)", "")),
    (dict(active="activating", sub="auto-restart", pid=0, code=1, status=3, result="exit-code"),
     (pm.RESTARTING, "activating (auto-restart)", "exit status 3; result exit-code")),
    (dict(active="failed", sub="failed", pid=0, code=2, status=9, result="signal"),
     (pm.DEAD, "failed (failed)", "killed by signal 9; result signal")),
    (dict(active="inactive", sub="dead", pid=0, code=1, status=0, result="success"),
     (pm.STOPPED, "inactive (dead)", "")),
    (dict(active="deactivating", sub="stop-sigterm", pid=42, code=0, status=0, result="success"),
     (pm.STOPPING, "deactivating (stop-sigterm)", "")),
])
def test_systemd_state(values, expected):
    assert pm.systemd_state(pm.parse_systemctl_show(SHOW.format(**values))) == expected


def test_systemd_state_of_a_missing_unit():
    assert pm.systemd_state(pm.parse_systemctl_show("LoadState=not-found\nActiveState=inactive\n"))[0] == pm.ABSENT


# ---------------------------------------------------------------- probe

@pytest.mark.parametrize("status, body, expect, path, verdict", [
    (200, '{"version": "1.2.0"}', "1.2.0", "version", (True, "1.2.0", "")),
    (200, '{"build": {"version": "1.2.0"}}', "1.2.0", "build.version", (True, "1.2.0", "")),
    (200, '{"items": [{"v": 2}]}', "2", "items[0].v", (True, "2", "")),
    (200, '{"items": [{"v": 2.0}]}', "2", "items.0.v", (True, "2", "")),
    (200, '{"version": "1.1.0"}', "1.2.0", "version", (False, "1.1.0", 'version is "1.1.0", expected "1.2.0"')),
    (200, '{"status": "ok"}', "1.2.0", "version", (False, None, "version field version is missing")),
    (200, "1.2.0\n", "1.2.0", "version", (True, "1.2.0", "")),                # plain text body
    (200, '{"version": "1.2.0"}', '{"version": "1.2.0"}', "", (True, '{"version": "1.2.0"}', "")),  # empty path
    (200, '{"status": "ok"}', None, "version", (True, None, "")),             # any 200 will do
    (503, '{"version": "1.2.0"}', "1.2.0", "version", (False, None, "status 503")),
])
def test_judge_probe(status, body, expect, path, verdict):
    assert pm.judge_probe(status, body, expect, path) == verdict


@pytest.mark.parametrize("path", ["a..b", "a[x]", "*", "a.b[0"])
def test_bad_version_path(path):
    with pytest.raises(ProdreadyError, match="probe.version_path"):
        pm.parse_json_path(path)


# ---------------------------------------------------------------- wait loop

@pytest.mark.parametrize("phase, pid, first, probe_ok, elapsed, step", [
    (pm.UP, 42, 42, True, 0.3, pm.SERVING),
    (pm.UP, 42, 42, None, 0.3, pm.SERVING),        # no probe asked
    (pm.UP, 42, 42, False, 0.3, pm.WAIT),
    (pm.STARTING, 42, 42, True, 0.3, pm.WAIT),     # the manager must say it runs too
    (pm.UP, 42, 42, False, 5.0, pm.TIMEOUT),
    (pm.STARTING, 42, 42, None, 5.0, pm.TIMEOUT),
    (pm.DEAD, None, 42, None, 0.1, pm.DIED),       # at once, not at the timeout
    (pm.RESTARTING, None, 42, None, 0.1, pm.DIED),
    (pm.STOPPED, None, None, None, 0.1, pm.DIED),
    (pm.UP, 43, 42, True, 0.3, pm.DIED),           # restarted after a crash
])
def test_next_step(phase, pid, first, probe_ok, elapsed, step):
    assert pm.next_step(phase, pid, first, probe_ok, elapsed, 5.0) == step


def test_failure_messages():
    assert pm.start_failure_message("myapp-green (1.2.0)", pm.DIED, "EXITED", "exit status 1", "connection refused",
                                    ["Traceback", "boom"], 60, False) == (
        "myapp-green (1.2.0) did not stay up: EXITED (exit status 1); probe: connection refused; "
        "last log lines: Traceback | boom")
    assert pm.start_failure_message("myapp-green", pm.TIMEOUT, "RUNNING pid 7", "", 'version is "1", expected "2"',
                                    [], 2.5, True) == (
        'myapp-green did not answer within start_timeout 2.5 s: RUNNING pid 7; probe: version is "1", '
        'expected "2"; last log lines: none; the color was stopped')


def test_tail_lines():
    data = b"".join(b"line %d\n" % i for i in range(30)) + b"\n  \n" + b"x" * 400 + b"\n\xff\n"
    lines = pm.tail_lines(data)
    assert len(lines) == 10 and lines[0] == "line 22"
    assert lines[-2] == "x" * 300 + "..." and lines[-1] == "\ufffd"


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1FB6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 00000000:1FB6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0
   2: 0100007F:1FB6 0100007F:D0D0 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0
   3: 0100007F:1FB7 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0 100 0 0 10 0
"""


def test_listening_inodes():
    assert pm.listening_inodes(PROC_NET_TCP, 8118) == ["111", "222"]   # 0x1FB6; 333 is a connection
    assert pm.listening_inodes(PROC_NET_TCP, 9999) == []


@pytest.mark.parametrize("status, body, error, verdict", [
    (200, "ready", None, (True, "")),
    (204, "", None, (True, "")),
    (503, "database pool warming\nmore", None, (False, "readiness http://c:1/ready answered 503: database pool warming")),
    (404, "", None, (False, "readiness http://c:1/ready answered 404")),
    (None, "", "connection refused", (False, "readiness http://c:1/ready: connection refused")),
])
def test_judge_ready_wants_2xx_and_says_what_it_got(status, body, error, verdict):
    assert pm.judge_ready("http://c:1/ready", status, body, error) == verdict
