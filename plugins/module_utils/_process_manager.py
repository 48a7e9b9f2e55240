# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic of a color's process (no I/O), for color_process.

- the files that define a color: the supervisor program file, or systemd's per-color
  environment file and start script plus the app's template unit, rendered byte for byte,
  and the same files with the environment's values masked for ``--diff``;
- what the process manager's words mean (supervisor's ``getProcessInfo``, ``systemctl
  show``): a phase the wait loop understands, the word to report and why a process died;
- the probe's verdict on one HTTP answer (the version read from JSON or plain text);
- the wait loop's next step, the failure message, a log tail, and the listening sockets
  of a port in ``/proc/net/tcp``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import configparser
import json
import re
import shlex

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _http_verdict as verdict

MANAGED = "Managed by prodready.deploy.color_process; edits are overwritten."
MASK = "********"
MASK_CHANGED = "******** (changed)"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LOG_TAIL_LINES = 10
LOG_LINE_CHARS = 300

# Phases: what the process manager's state means to the wait loop and to a stop.
UP = "up"                  # supervisor RUNNING, systemd active (running)
STARTING = "starting"      # supervisor STARTING, systemd activating (start)
RESTARTING = "restarting"  # crashed, the manager will start it again (BACKOFF, auto-restart)
STOPPING = "stopping"
DEAD = "dead"              # exited or given up (EXITED, FATAL, failed)
STOPPED = "stopped"        # not running: stopped on request or never started
ABSENT = "absent"          # the process manager does not know the program

RUNNING_PHASES = (UP, STARTING, RESTARTING, STOPPING)  # a stop has something to stop

# The wait loop's next step (next_step()).
WAIT = "wait"
SERVING = "serving"
DIED = "died"
TIMEOUT = "timeout"

_SUPERVISOR_PHASES = {
    "RUNNING": UP, "STARTING": STARTING, "BACKOFF": RESTARTING, "STOPPING": STOPPING,
    "EXITED": DEAD, "FATAL": DEAD, "UNKNOWN": DEAD, "STOPPED": STOPPED,
}


# ---------------------------------------------------------------- validation

def check_name(option, value):
    """`value` as a program or unit name part, or ProdreadyError naming `option`."""
    if not NAME_RE.match(value or ""):
        raise ProdreadyError("%s must be letters, digits, '_', '.' or '-' (not first), got %r" % (option, value))
    return value


def check_environment(environment):
    """The environment as {name: text}: booleans written true/false, numbers as text.

    Errors name the variable, never its value (it may be a secret).
    """
    checked = {}
    for key in sorted(environment or {}):
        value = environment[key]
        if not ENV_KEY_RE.match(str(key)):
            raise ProdreadyError("environment: %r is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)" % (key,))
        if value is None:
            raise ProdreadyError("environment: %s has no value (null); give an empty string for an empty value" % key)
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif not isinstance(value, str):
            raise ProdreadyError("environment: %s must be text, a number or a boolean, got a %s"
                                 % (key, type(value).__name__))
        if re.search(r"[\r\n\x00]", value):
            raise ProdreadyError("environment: the value of %s holds a line break or NUL byte, which a "
                                 "process manager's file cannot carry" % key)
        checked[key] = value
    return checked


# ---------------------------------------------------------------- supervisor program file

def program_name(name, color):
    """The supervisor program (and group) name of a color: ``<name>-<color>``."""
    return "%s-%s" % (name, color)


def _supervisor_line(key, value, option):
    """``key = value`` for a supervisor file; `value` escaped for supervisor's %-expansion.

    Python's configparser, which supervisor uses, cuts a line at ``;`` or ``#`` after
    whitespace (an inline comment) and loses leading and trailing spaces: such values are
    refused rather than silently changed.
    """
    if re.search(r"[\r\n\x00]", value):
        raise ProdreadyError("%s holds a line break or NUL byte, which a supervisor program file cannot carry"
                             % option)
    if value != value.strip():
        raise ProdreadyError("%s starts or ends with whitespace, which supervisor would drop" % option)
    line = "%s = %s" % (key, value.replace("%", "%%"))
    if re.search(r"\s[;#]", line):
        raise ProdreadyError("%s has ';' or '#' after whitespace, which supervisor reads as the start of a "
                             "comment" % option)
    if "%(here)s" in line:
        raise ProdreadyError("%s holds the text %%(here)s, which supervisor replaces by its own directory" % option)
    return line


def _supervisor_env_item(key, value):
    """``KEY="value"`` as supervisor's ``environment`` parser (shlex, non-POSIX) reads it back.

    That parser has no escape character and strips quote characters from both ends of
    every value, so a value is quoted with the quote it does not contain, and values that
    hold both quotes or start or end with one cannot be written.
    """
    if value[:1] in ("'", '"') or value[-1:] in ("'", '"'):
        raise ProdreadyError("environment: the value of %s starts or ends with a quote character, which "
                             "supervisor strips" % key)
    quote = '"' if '"' not in value else "'"
    if quote in value:
        raise ProdreadyError("environment: the value of %s holds both ' and \", which supervisor's "
                             "environment setting cannot quote" % key)
    if re.search(r"\s[;#]", value):
        raise ProdreadyError("environment: the value of %s has ';' or '#' after whitespace, which supervisor "
                             "reads as the start of a comment" % key)
    if "%(here)s" in value:
        raise ProdreadyError("environment: the value of %s holds the text %%(here)s, which supervisor replaces "
                             "by its own directory" % key)
    return "%s=%s%s%s" % (key, quote, value, quote)


def render_supervisor_program(spec):
    """Bytes of the supervisor program file of a color.

    `spec` keys: name, color, version, command, directory, environment, log_file,
    stop_timeout.
    """
    environment = spec["environment"]
    program = program_name(spec["name"], spec["color"])
    lines = ["; " + MANAGED,
             "; %s color %s%s" % (spec["name"], spec["color"],
                                  ": release %s" % spec["version"] if spec.get("version") else ""),
             "[program:%s]" % program,
             _supervisor_line("command", spec["command"], "command"),
             _supervisor_line("directory", spec["directory"], "directory")]
    if environment:
        items = ",".join(_supervisor_env_item(k, environment[k]) for k in sorted(environment))
        lines.append(_supervisor_line("environment", items, "environment"))
    lines += ["autostart = true",
              "autorestart = unexpected",
              # 1 s: a process that dies at once ends FATAL instead of crash-looping;
              # color_process probes the app instead of trusting this delay.
              "startsecs = 1",
              "startretries = 0",
              "stopsignal = TERM",
              "stopwaitsecs = %d" % spec["stop_timeout"],
              "stopasgroup = true",
              "killasgroup = true",
              "redirect_stderr = true"]
    if spec.get("log_file"):
        lines += [_supervisor_line("stdout_logfile", spec["log_file"], "log_file"),
                  "stdout_logfile_maxbytes = 10MB"]
    return ("\n".join(lines) + "\n").encode("utf-8")


def supervisor_env_items(value):
    """{KEY: quoted value as written} of an ``environment`` setting, split like supervisor does.

    None when it cannot be split (a file edited by hand): --diff then masks the whole line.
    """
    lexer = shlex.shlex(value)
    lexer.wordchars += "/.+-():"
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    items = {}
    for index in range(0, len(tokens), 4):
        triple = tokens[index:index + 3]
        if len(triple) != 3 or triple[1] != "=":
            return None
        items[triple[0]] = triple[2]
    return items


def mask_supervisor_program(text, before_text=None):
    """A program file's text with every environment value masked, for --diff.

    With `before_text` (the file being replaced), values that differ from it are marked
    ``(changed)``, so a diff shows that a secret changed without showing it.
    """
    before = _supervisor_env_of(before_text) if before_text is not None else None
    lines = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "environment":
            items = supervisor_env_items(value.strip())
            if items is None:
                line = "environment = %s" % MASK
            else:
                line = "environment = " + ",".join(
                    '%s="%s"' % (k, MASK if before is None or before.get(k) == items[k] else MASK_CHANGED)
                    for k in items)
        lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def _supervisor_env_of(text):
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "environment":
            return supervisor_env_items(value.strip()) or {}
    return {}


# ---------------------------------------------------------------- systemd files

def unit_name(name, color):
    """The systemd unit of a color: an instance of the app's template unit."""
    return "%s@%s.service" % (name, color)


def _env_file_value(value):
    """A value for systemd's EnvironmentFile: double quotes, with \\ " ` $ escaped."""
    return '"%s"' % re.sub(r'([\\"`$])', r"\\\1", value)


def render_systemd_env(spec):
    """Bytes of the color's environment file (systemd ``EnvironmentFile``, mode 0600)."""
    environment = spec["environment"]
    lines = ["# " + MANAGED,
             "# %s color %s%s" % (spec["name"], spec["color"],
                                  ": release %s" % spec["version"] if spec.get("version") else "")]
    lines += ["%s=%s" % (k, _env_file_value(environment[k])) for k in sorted(environment)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def render_systemd_script(spec):
    """Bytes of the color's start script: into the release, then exec the command (its
    output appended to log_file when set, else left to the journal)."""
    for option in ("command", "directory", "log_file"):
        if re.search(r"[\r\n\x00]", spec.get(option) or ""):
            raise ProdreadyError("%s holds a line break or NUL byte" % option)
    run = "exec %s" % spec["command"]
    if spec.get("log_file"):
        run += " >> %s 2>&1" % shlex.quote(spec["log_file"])
    lines = ["#!/bin/sh", "# " + MANAGED,
             "cd %s || exit 1" % shlex.quote(spec["directory"]), run]
    return ("\n".join(lines) + "\n").encode("utf-8")


def render_systemd_unit(spec):
    """Bytes of the app's template unit ``<name>@.service``, shared by its colors (no secret).

    ``KillMode=control-group`` stops every process the color started, not only the main one.
    """
    colors_dir = spec["colors_dir"]
    if re.search(r"\s", colors_dir):
        raise ProdreadyError("systemd_colors_dir %r holds whitespace, which unit files cannot carry unquoted"
                             % colors_dir)
    colors_dir = colors_dir.rstrip("/").replace("%", "%%")
    lines = ["# " + MANAGED,
             "[Unit]",
             "Description=%s (%%i color)" % spec["name"],
             "After=network-online.target",
             "",
             "[Service]",
             "Type=simple",
             "EnvironmentFile=%s/%%i.env" % colors_dir,
             "ExecStart=%s/%%i.sh" % colors_dir,
             "KillMode=control-group",
             "KillSignal=SIGTERM",
             "TimeoutStopSec=%d" % spec["stop_timeout"],
             "Restart=on-failure",
             "RestartSec=2",
             "",
             "[Install]",
             "WantedBy=multi-user.target"]
    return ("\n".join(lines) + "\n").encode("utf-8")


def mask_env_file(text, before_text=None):
    """An environment file's text with every value masked (``(changed)`` where it differs
    from `before_text`), for --diff."""
    before = {}
    for line in (before_text or "").splitlines():
        key, sep, dummy = line.partition("=")
        if sep and not line.startswith("#"):
            before[key] = line
    lines = []
    for line in text.splitlines():
        key, sep, dummy = line.partition("=")
        if sep and not line.startswith("#"):
            changed = before_text is not None and before.get(key) != line
            line = '%s="%s"' % (key, MASK_CHANGED if changed else MASK)
        lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


# ---------------------------------------------------------------- supervisord's address

def supervisor_server(config_text, config_dir, environ):
    """Where supervisorctl would reach supervisord, read from supervisord's configuration.

    ``[supervisorctl] serverurl`` (and its username/password), else the ``[unix_http_server]``
    socket, else the ``[inet_http_server]`` port, else supervisor's default. ``%(here)s`` and
    ``%(ENV_X)s`` are expanded as supervisor does. Returns dict(url, username, password).
    """
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    try:
        parser.read_string(config_text)
    except configparser.Error as exc:
        raise ProdreadyError("supervisor_config: cannot be parsed: %s" % exc)

    def get(section, key):
        if not parser.has_option(section, key):
            return None
        value = parser.get(section, key).replace("%(here)s", config_dir)
        expansions = dict(("ENV_%s" % k, v) for k, v in environ.items())
        try:
            return value % expansions
        except (KeyError, ValueError, TypeError) as exc:
            raise ProdreadyError("supervisor_config: [%s] %s = %s cannot be expanded: %s" % (section, key, value, exc))

    url = get("supervisorctl", "serverurl")
    if not url:
        if get("unix_http_server", "file"):
            url = "unix://" + get("unix_http_server", "file")
        elif get("inet_http_server", "port"):
            port = get("inet_http_server", "port")
            url = "http://" + ("localhost" + port if port.startswith(":") else port)
        else:
            url = "http://localhost:9001"
    if not url.startswith(("unix://", "http://")):
        raise ProdreadyError("supervisor_config: serverurl %r is neither unix:// nor http://" % url)
    return dict(url=url, username=get("supervisorctl", "username"), password=get("supervisorctl", "password"))


# ---------------------------------------------------------------- process manager states

def supervisor_state(info):
    """(phase, word, detail) of supervisor's getProcessInfo dict (None: not loaded).

    `word` is supervisor's state name, `detail` why it is not running when it says.
    """
    if info is None:
        return ABSENT, "not loaded", ""
    word = info.get("statename") or "UNKNOWN"
    phase = _SUPERVISOR_PHASES.get(word, DEAD)
    details = []
    spawnerr = info.get("spawnerr") or ""
    if word == "EXITED":
        details.append("exit status %s" % info.get("exitstatus", 0))
    if spawnerr.startswith("Exited too quickly"):
        details.append("exited too quickly")
    elif spawnerr and not spawnerr.startswith("Bad exit code"):
        details.append(spawnerr)
    return phase, word, "; ".join(details)


def exit_reason(supervisord_log, program):
    """Why `program` last exited, from supervisord's own log (``exit status 1``,
    ``terminated by SIGKILL``); '' when the log does not say.

    Supervisor forgets the exit status of a process that died before ``startsecs``:
    its log line is the only place that keeps it.
    """
    found = re.findall(r"exited: %s \(([^;)]*)" % re.escape(program), supervisord_log or "")
    return found[-1].strip() if found else ""


def parse_systemctl_show(text):
    """``systemctl show -p ...`` output (``Key=Value`` lines) as a dict."""
    props = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def systemd_state(props):
    """(phase, word, detail) of a unit's ``systemctl show`` properties."""
    if props.get("LoadState") in ("not-found", "", None):
        return ABSENT, "not loaded", ""
    active, sub = props.get("ActiveState", ""), props.get("SubState", "")
    word = "%s (%s)" % (active, sub) if sub else active
    if active == "active":
        phase = UP
    elif active in ("activating", "reloading"):
        phase = RESTARTING if sub == "auto-restart" else STARTING
    elif active == "deactivating":
        phase = STOPPING
    elif active == "failed":
        phase = DEAD
    else:
        phase = STOPPED
    details = []
    if phase in (DEAD, RESTARTING) or (phase == STOPPED and props.get("Result", "success") != "success"):
        code, status = props.get("ExecMainCode", ""), props.get("ExecMainStatus", "")
        if code == "1" and status:
            details.append("exit status %s" % status)
        elif code in ("2", "3") and status:
            details.append("killed by signal %s" % status)
        if props.get("Result") and props.get("Result") != "success":
            details.append("result %s" % props["Result"])
    return phase, word, "; ".join(details)


# ---------------------------------------------------------------- the probe

def parse_json_path(path):
    """``build.version`` / ``items[0].version`` -> keys and indexes: health_gate's syntax, read by
    the same code (``_http_verdict``), with messages that name ``probe.version_path``."""
    return verdict.parse_json_path(path, name="probe.version_path", example="build.version")


def read_version(body, version_path):
    """(version, why not) of a response body: the field at `version_path` of a JSON object,
    else (or with an empty path) the whole body stripped, like a ``/version`` endpoint."""
    if version_path:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if isinstance(document, dict):
            node = verdict.lookup_json(document, parse_json_path(version_path))
            if node is verdict.MISSING:
                return None, "version field %s is missing" % version_path
            return verdict.canonical(node), ""
    return body.strip(), ""


def judge_probe(status, body, expect_version, version_path):
    """(ok, version seen, reason) of one answer: status 200 and, when `expect_version` is
    set, that version."""
    if status != 200:
        return False, None, "status %s" % status
    version, missing = read_version(body, version_path)
    if missing and expect_version:
        return False, None, missing
    if expect_version and version != expect_version:
        return False, version, "version is %s, expected %s" % (json.dumps(version), json.dumps(expect_version))
    return True, version, ""


def judge_ready(url, status, body, error):
    """(ok, reason) of the readiness answer of a color that already reports its version:
    any 2xx is ready; anything else says what it answered."""
    if error:
        return False, "readiness %s: %s" % (url, error)
    if status is None or not 200 <= status < 300:
        first_line = (body or "").strip().splitlines()[:1]
        return False, "readiness %s answered %s%s" % (url, status, (": " + first_line[0][:200]) if first_line else "")
    return True, ""


# ---------------------------------------------------------------- the wait loop

def next_step(phase, pid, first_pid, probe_ok, elapsed, timeout):
    """What the wait for a started color does next.

    SERVING once the manager says it runs and the probe answered (`probe_ok` None: no
    probe asked); DIED as soon as it is not running or starting any more, or its pid
    changed (the manager restarted it after a crash); TIMEOUT after `timeout` seconds;
    else WAIT.
    """
    if phase not in (UP, STARTING):
        return DIED
    if first_pid and pid and pid != first_pid:
        return DIED
    if phase == UP and probe_ok is not False:
        return SERVING
    if elapsed >= timeout:
        return TIMEOUT
    return WAIT


def _seconds(value):
    value = float(value)
    return "%d" % value if value == int(value) else "%.1f" % value


def start_failure_message(who, outcome, word, detail, probe_reason, log_lines, timeout, stopped):
    """What an operator reads when a color did not come up.

    ``myapp-green (1.2.0) did not stay up: FATAL (exited too quickly; exit status 1);
    probe: connection refused; last log lines: a | b``
    """
    state = word + (" (%s)" % detail if detail else "")
    if outcome == DIED:
        head = "%s did not stay up: %s" % (who, state)
    else:
        head = "%s did not answer within start_timeout %s s: %s" % (who, _seconds(timeout), state)
    parts = [head]
    if probe_reason:
        parts.append("probe: %s" % probe_reason)
    parts.append("last log lines: %s" % (" | ".join(log_lines) if log_lines else "none"))
    if stopped:
        parts.append("the color was stopped")
    return "; ".join(parts)


def tail_lines(data, count=LOG_TAIL_LINES):
    """The last `count` non-blank lines of log bytes `data`, each cut to LOG_LINE_CHARS."""
    lines = [line.rstrip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return [line if len(line) <= LOG_LINE_CHARS else line[:LOG_LINE_CHARS] + "..." for line in lines[-count:]]


def listening_inodes(proc_net_tcp, port):
    """Socket inodes listening on TCP `port` in a ``/proc/net/tcp`` or ``tcp6`` text."""
    inodes = []
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != "0A":  # 0A: TCP_LISTEN
            continue
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.append(fields[9])
    return inodes
