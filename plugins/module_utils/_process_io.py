# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A color's process on the host: its files, its process manager, its probe, its port.

The decisions and texts are _process_manager's; this half does the I/O:

- ``Supervisor`` talks to supervisord through its XML-RPC interface, on the socket that
  supervisorctl would use (read from supervisord's configuration). One call takes about
  1 ms where a ``supervisorctl`` run takes 0.14 s (a Python start-up) and 0.1 s of CPU
  that the starting app needs, and it returns what supervisorctl does not print: the pid,
  the exit status and the spawn error. ``Systemd`` runs ``systemctl``/``journalctl``.
- ``HttpProbe`` is a plain ``http.client`` GET, one request at a time on a fresh
  connection; its answer is judged by _process_manager, which reads the version with
  health_gate's JSON paths (``_http_verdict``, pure: it imports no HTTP client).
- ``start_color``/``stop_color`` are the flows color_process runs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import signal
import socket
import stat
import time

from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves import xmlrpc_client
from ansible.module_utils.six.moves.urllib.parse import quote, urlsplit

from ansible_collections.prodready.deploy.plugins.module_utils._atomic import write_atomic
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _process_manager as pm

POLL_S = 0.05
STOP_GRACE_S = 5.0          # after stop_timeout: the manager's own kill and reaping
RPC_TIMEOUT_S = 15.0
MAX_BODY_BYTES = 65536
LOG_READ_BYTES = 16384

# supervisor's xmlrpc fault codes (supervisor/xmlrpc.py)
BAD_NAME, SPAWN_ERROR, ALREADY_STARTED, NOT_RUNNING = 10, 50, 60, 70
SETTLE_S = 1.0  # how long a crashed start may stay in BACKOFF before its state is reported
ALREADY_ADDED, STILL_RUNNING, CANT_REREAD = 90, 91, 92


# ---------------------------------------------------------------- files

def read_file(path):
    """(bytes, os.stat result) of `path`, (None, None) when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read(), os.fstat(handle.fileno())
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None, None
        raise ProdreadyError("cannot read %s: %s" % (path, to_native(exc)))


def plan_files(wanted):
    """Each wanted file (dict path, data, mode, mask, option) with what is on disk:
    ``before`` (bytes or None), ``changed`` (content), ``mode_changed``."""
    planned = []
    for item in wanted:
        before, st = read_file(item["path"])
        item = dict(item, before=before, changed=before != item["data"],
                    mode_changed=st is not None and stat.S_IMODE(st.st_mode) != item["mode"])
        planned.append(item)
    return planned


def write_files(planned):
    """Write the changed files atomically with their mode; fix the mode of the others."""
    for item in planned:
        directory = os.path.dirname(item["path"])
        if not os.path.isdir(directory):
            raise ProdreadyError("%s: the directory %s does not exist" % (item["option"], directory))
        if item["changed"]:
            write_atomic(item["path"], item["data"], None, item["mode"], option=item["option"])
        elif item["mode_changed"]:
            os.chmod(item["path"], item["mode"])


def file_diffs(planned):
    """--diff entries of the files that change, the environment's values masked."""
    diffs = []
    for item in planned:
        if not (item["changed"] or item["mode_changed"]):
            continue
        before = item["before"].decode("utf-8", "replace") if item["before"] is not None else ""
        after = item["data"].decode("utf-8")
        if item["mask"] is not None:
            after = item["mask"](after, before if item["before"] is not None else None)
            before = item["mask"](before) if before else before
        diffs.append(dict(before=before, after=after, before_header=item["path"], after_header=item["path"]))
    return diffs


def ensure_directory(path, option):
    """Create `path` (0755) when missing."""
    if not os.path.isdir(path):
        try:
            os.makedirs(path, 0o755)
        except OSError as exc:
            raise ProdreadyError("%s: cannot create the directory %s: %s" % (option, path, to_native(exc)))


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read_tail(path, offset):
    """The last lines of `path` written after byte `offset` (all of it when it shrank:
    rotated or truncated)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            start = offset if offset <= size else 0
            handle.seek(max(start, size - LOG_READ_BYTES))
            return pm.tail_lines(handle.read())
    except (IOError, OSError):
        return []


# ---------------------------------------------------------------- processes and ports

def process_group(pid):
    """The process group of `pid` (None when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[2])
    except (IOError, OSError, IndexError, ValueError):
        return None


def group_members(pgid):
    """Live (not zombie) processes of process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (IOError, OSError):
            continue
        if len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
            members.append(int(entry))
    return members


def finish_group(pgid, deadline, clock, sleep):
    """Wait until process group `pgid` is empty; at `deadline` kill what is left.
    Returns the pids that had to be killed."""
    while group_members(pgid) and clock() < deadline:
        sleep(POLL_S)
    left = group_members(pgid)
    if left:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
        end = clock() + 2.0
        while group_members(pgid) and clock() < end:
            sleep(POLL_S)
    return left


def port_listeners(port):
    """Socket inodes listening on TCP `port` (IPv4 and IPv6, any address)."""
    inodes = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                inodes += pm.listening_inodes(handle.read(), port)
        except (IOError, OSError):
            continue
    return inodes


def socket_holders(inodes):
    """``pid (command)`` of the processes holding the sockets `inodes`."""
    wanted = set("socket:[%s]" % inode for inode in inodes)
    holders = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % entry)
            if not any(os.readlink("/proc/%s/fd/%s" % (entry, fd)) in wanted for fd in fds):
                continue
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except (IOError, OSError):
            continue
        holders.append("%s (%s)" % (entry, command[:120]))
    return holders


def wait_port_closed(port, deadline, label, clock, sleep):
    """Wait until nothing listens on `port`; at `deadline` fail naming who still does."""
    while port_listeners(port) and clock() < deadline:
        sleep(POLL_S)
    inodes = port_listeners(port)
    if inodes:
        holders = socket_holders(inodes)
        raise ProdreadyError("port %d is still open after %s stopped: held by %s"
                             % (port, label, ", ".join(holders) or "a process this user cannot see"))


# ---------------------------------------------------------------- the probe

class HttpProbe(object):
    """GET the color's health URL once per call, judged by _process_manager.judge_probe; with
    a readiness URL, a color that reports the version serves only once that one answers 2xx
    too (an app may report its version before its database pool or cache is ready)."""

    def __init__(self, url, timeout, expect_version, version_path, ready_url=None):
        self.url, self.timeout = url, timeout
        self.host, self.port, self.target = self._split("probe.url", url)
        self.ready_url = ready_url or None
        self.ready_target = None
        if self.ready_url:
            host, port, self.ready_target = self._split("probe.ready_url", ready_url)
            if (host, port) != (self.host, self.port):
                raise ProdreadyError("probe.ready_url %r must be on the color's own port, like probe.url %r"
                                     % (ready_url, url))
        self.expect_version, self.version_path = expect_version, version_path
        if version_path:
            pm.parse_json_path(version_path)  # a bad path fails before anything starts

    @staticmethod
    def _split(option, url):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ProdreadyError("%s must be an http:// URL with a host (the color's own port), got %r"
                                 % (option, url))
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise ProdreadyError("%s %r is not a valid URL: %s" % (option, url, exc))
        return parts.hostname, port, (parts.path or "/") + ("?" + parts.query if parts.query else "")

    def _get(self, target, timeout):
        """(status, body text, error) of one GET on a new connection."""
        conn = http_client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", target, headers={"User-Agent": "prodready-color-process",
                                                 "Accept": "*/*", "Connection": "close"})
            response = conn.getresponse()
            return response.status, response.read(MAX_BODY_BYTES).decode("utf-8", "replace"), None
        except socket.timeout:
            return None, "", "timed out after %s s" % timeout
        except (OSError, http_client.HTTPException) as exc:
            error = "connection refused" if getattr(exc, "errno", None) == errno.ECONNREFUSED else (
                "%s: %s" % (type(exc).__name__, to_native(exc)))
            return None, "", error
        finally:
            conn.close()

    def probe(self, timeout=None):
        """dict(ok, status, version, error) of one look (one or two requests)."""
        timeout = timeout or self.timeout
        status, body, error = self._get(self.target, timeout)
        if error:
            return dict(ok=False, status=None, version=None, error=error)
        ok, version, reason = pm.judge_probe(status, body, self.expect_version, self.version_path)
        if ok and self.ready_target:
            ready_status, ready_body, ready_error = self._get(self.ready_target, timeout)
            ok, reason = pm.judge_ready(self.ready_url, ready_status, ready_body, ready_error)
        return dict(ok=ok, status=status, version=version, error=reason or None)


# ---------------------------------------------------------------- supervisor

class _UnixConnection(http_client.HTTPConnection):
    def __init__(self, path, timeout):
        http_client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except Exception:
            sock.close()
            raise
        self.sock = sock


class _Transport(xmlrpc_client.Transport):
    """XML-RPC over supervisord's unix socket (or its http port), one kept connection."""

    def __init__(self, unix_path, timeout):
        xmlrpc_client.Transport.__init__(self)
        self.unix_path, self.timeout = unix_path, timeout

    def make_connection(self, host):
        if self._connection[1] is not None and self._connection[0] == host:
            return self._connection[1]
        chost, self._extra_headers, dummy = self.get_host_info(host)
        if self.unix_path:
            conn = _UnixConnection(self.unix_path, self.timeout)
        else:
            conn = http_client.HTTPConnection(chost, timeout=self.timeout)
        self._connection = host, conn
        return conn


class Supervisor(object):
    """A color as a supervisor program ``<name>-<color>`` defined by one program file."""

    def __init__(self, spec, clock=time.monotonic, sleep=time.sleep):
        self.spec, self.clock, self.sleep = spec, clock, sleep
        self.program = pm.program_name(spec["name"], spec["color"])
        self.label = self.program
        self.program_file = os.path.join(spec["supervisor_conf_dir"], self.program + ".conf")
        self._proxy = None
        self._reloaded = None

    def definition_files(self):
        """The files an earlier start wrote, which a resume needs."""
        return [self.program_file]

    def wanted_files(self):
        return [dict(path=self.program_file, data=pm.render_supervisor_program(self.spec), mode=0o600,
                     mask=pm.mask_supervisor_program, option="supervisor_conf_dir")]

    def _rpc(self):
        if self._proxy is None:
            config = self.spec["supervisor_config"]
            data, dummy = read_file(config)
            if data is None:
                raise ProdreadyError("supervisor_config: %s does not exist" % config)
            server = pm.supervisor_server(data.decode("utf-8", "replace"), os.path.dirname(os.path.abspath(config)),
                                          os.environ)
            self._server = server["url"]
            auth = ""
            if server["username"]:
                auth = "%s:%s@" % (quote(server["username"], safe=""), quote(server["password"] or "", safe=""))
            if server["url"].startswith("unix://"):
                transport = _Transport(server["url"][len("unix://"):], RPC_TIMEOUT_S)
                uri = "http://%slocalhost/RPC2" % auth
            else:
                transport = _Transport(None, RPC_TIMEOUT_S)
                uri = "http://%s%s/RPC2" % (auth, server["url"][len("http://"):].rstrip("/"))
            self._proxy = xmlrpc_client.ServerProxy(uri, transport=transport)
        return self._proxy

    def call(self, method, *args):
        """supervisor.<method>(*args); xmlrpc Faults are the caller's, transport errors say where."""
        proxy = self._rpc()
        try:
            return getattr(proxy.supervisor, method)(*args)
        except xmlrpc_client.Fault:
            raise
        except (OSError, http_client.HTTPException, xmlrpc_client.ProtocolError) as exc:
            raise ProdreadyError("supervisor_config: cannot reach supervisord at %s (read from %s): %s; is it "
                                 "running?" % (self._server, self.spec["supervisor_config"], to_native(exc)))

    def observe(self):
        """dict(phase, word, detail, pid) of the program now."""
        try:
            info = self.call("getProcessInfo", self.program)
        except xmlrpc_client.Fault as fault:
            if fault.faultCode != BAD_NAME:
                raise ProdreadyError("supervisord: getProcessInfo %s: %s" % (self.program, fault.faultString))
            info = None
        phase, word, detail = pm.supervisor_state(info)
        return dict(phase=phase, word=word, detail=detail, pid=(info or {}).get("pid") or None)

    def definition_stale(self, planned):
        """Whether supervisord runs another definition than the program file's (reread)."""
        try:
            self._reloaded = self.call("reloadConfig")[0]
        except xmlrpc_client.Fault as fault:
            raise ProdreadyError("supervisord cannot reread its configuration (%s): %s"
                                 % (self.spec["supervisor_config"], fault.faultString))
        added, changed = self._reloaded[0], self._reloaded[1]
        return self.program in added or self.program in changed

    def apply(self):
        """Load the program file's definition, as ``supervisorctl update <program>`` does."""
        added, changed = self._reloaded[0], self._reloaded[1]
        if self.program in changed:
            try:
                self.call("removeProcessGroup", self.program)
            except xmlrpc_client.Fault as fault:
                raise ProdreadyError("supervisord: cannot unload the old definition of %s: %s"
                                     % (self.program, fault.faultString))
        if self.program in changed or self.program in added:
            try:
                self.call("addProcessGroup", self.program)
            except xmlrpc_client.Fault as fault:
                if fault.faultCode != ALREADY_ADDED:
                    raise ProdreadyError("supervisord: cannot load %s: %s" % (self.program_file, fault.faultString))
        elif self.observe()["phase"] == pm.ABSENT:
            raise ProdreadyError("supervisord does not load %s: supervisor_conf_dir is not among the [include] files "
                                 "of %s" % (self.program_file, self.spec["supervisor_config"]))

    def start(self):
        try:
            self.call("startProcess", self.program, False)
        except xmlrpc_client.Fault as fault:
            # A spawn error shows in the state the wait loop reads; autostart may have won the race.
            if fault.faultCode not in (ALREADY_STARTED, SPAWN_ERROR):
                raise ProdreadyError("supervisord: cannot start %s: %s" % (self.program, fault.faultString))

    def stop(self, deadline):
        """Ask supervisord to stop the program and wait until it did (supervisord kills the
        group after stopwaitsecs)."""
        try:
            self.call("stopProcess", self.program, False)
        except xmlrpc_client.Fault as fault:
            if fault.faultCode not in (NOT_RUNNING, BAD_NAME):
                raise ProdreadyError("supervisord: cannot stop %s: %s" % (self.program, fault.faultString))
        while self.clock() < deadline:
            observed = self.observe()
            if observed["phase"] not in pm.RUNNING_PHASES:
                return observed
            self.sleep(POLL_S)
        observed = self.observe()
        if observed["phase"] in pm.RUNNING_PHASES:
            raise ProdreadyError("%s did not stop within stop_timeout %s s: %s"
                                 % (self.label, self.spec["stop_timeout"], observed["word"]))
        return observed

    def log_mark(self):
        return file_size(self.spec["log_file"])

    def log_tail(self, mark):
        return read_tail(self.spec["log_file"], mark)

    def death_detail(self, observed, restarted):
        """The state's detail, with the exit status from supervisord's log when the state
        lost it (died before startsecs, or restarted after a crash)."""
        detail = observed["detail"]
        if restarted or "exited too quickly" in detail:
            try:
                reason = pm.exit_reason(self.call("readLog", -LOG_READ_BYTES, 0), self.program)
            except (xmlrpc_client.Fault, ProdreadyError):
                reason = ""
            if reason and reason not in detail:
                detail = "; ".join(part for part in (detail, reason) if part)
            if restarted:
                detail = "; ".join(part for part in ("restarted by supervisor", detail) if part)
        return detail


# ---------------------------------------------------------------- systemd

class Systemd(object):
    """A color as an instance ``<name>@<color>`` of the app's template unit, with its
    environment file and start script in systemd_colors_dir."""

    PROPERTIES = ("LoadState", "ActiveState", "SubState", "MainPID", "ExecMainCode", "ExecMainStatus",
                  "Result", "NeedDaemonReload")

    def __init__(self, spec, module, clock=time.monotonic, sleep=time.sleep):
        self.spec, self.module, self.clock, self.sleep = spec, module, clock, sleep
        self.unit = pm.unit_name(spec["name"], spec["color"])
        self.label = "%s@%s" % (spec["name"], spec["color"])
        colors_dir = spec.get("colors_dir") or ""
        self.program_file = os.path.join(colors_dir, spec["color"] + ".env")
        self.unit_file = os.path.join(spec["systemd_unit_dir"], "%s@.service" % spec["name"])
        self.systemctl = module.get_bin_path("systemctl", required=True)
        self._stale = False

    def definition_files(self):
        """The files an earlier start wrote, which a resume needs."""
        colors_dir = self.spec.get("colors_dir") or ""
        return [self.unit_file, self.program_file, os.path.join(colors_dir, self.spec["color"] + ".sh")]

    def wanted_files(self):
        colors_dir = self.spec["colors_dir"]
        return [dict(path=self.program_file, data=pm.render_systemd_env(self.spec), mode=0o600,
                     mask=pm.mask_env_file, option="systemd_colors_dir"),
                dict(path=os.path.join(colors_dir, self.spec["color"] + ".sh"), data=pm.render_systemd_script(self.spec),
                     mode=0o700, mask=None, option="systemd_colors_dir"),
                dict(path=self.unit_file, data=pm.render_systemd_unit(self.spec), mode=0o644, mask=None,
                     option="systemd_unit_dir")]

    def _systemctl(self, *args):
        rc, out, err = self.module.run_command([self.systemctl] + list(args))
        return rc, out, err

    def observe(self):
        argv = ["show", self.unit]
        for prop in self.PROPERTIES:
            argv += ["-p", prop]
        rc, out, err = self._systemctl(*argv)
        if rc != 0:
            raise ProdreadyError("systemctl show %s failed (rc %d): %s" % (self.unit, rc, (err or out).strip()))
        props = pm.parse_systemctl_show(out)
        self._stale = self._stale or props.get("NeedDaemonReload") == "yes"
        phase, word, detail = pm.systemd_state(props)
        pid = int(props.get("MainPID") or 0) or None
        return dict(phase=phase, word=word, detail=detail, pid=pid)

    def definition_stale(self, planned):
        self._stale = self._stale or any(item["changed"] and item["path"] == self.unit_file for item in planned)
        return self._stale

    def apply(self):
        if self._stale:
            rc, out, err = self._systemctl("daemon-reload")
            if rc != 0:
                raise ProdreadyError("systemctl daemon-reload failed (rc %d): %s" % (rc, (err or out).strip()))

    def start(self):
        # A unit that fails at once shows in the state the wait loop reads, with its journal.
        self._systemctl("start", "--no-block", self.unit)

    def stop(self, deadline):
        rc, out, err = self._systemctl("stop", self.unit)
        observed = self.observe()
        if rc != 0 and observed["phase"] in pm.RUNNING_PHASES:
            raise ProdreadyError("systemctl stop %s failed (rc %d): %s" % (self.unit, rc, (err or out).strip()))
        return observed

    def log_mark(self):
        return file_size(self.spec["log_file"]) if self.spec.get("log_file") else time.time()

    def log_tail(self, mark):
        if self.spec.get("log_file"):
            return read_tail(self.spec["log_file"], mark)
        journalctl = self.module.get_bin_path("journalctl")
        if not journalctl:
            return []
        rc, out, err = self.module.run_command([journalctl, "--no-pager", "-o", "cat", "-n", str(pm.LOG_TAIL_LINES),
                                                "-u", self.unit, "--since", "@%d" % int(mark)])
        return pm.tail_lines(out.encode("utf-8")) if rc == 0 else []

    def death_detail(self, observed, restarted):
        if restarted:
            return "; ".join(part for part in ("restarted by systemd", observed["detail"]) if part)
        return observed["detail"]


# ---------------------------------------------------------------- the flows

def stop_color(manager, spec, check_mode, actions, clock=time.monotonic, sleep=time.sleep):
    """Stop the color (its whole process group) if it runs, then wait for its port to close.
    Returns the last observation."""
    observed = manager.observe()
    if observed["phase"] in pm.RUNNING_PHASES:
        actions.append("stop")
        if check_mode:
            return observed
        leader = observed["pid"] if observed["pid"] and process_group(observed["pid"]) == observed["pid"] else None
        began = clock()
        observed = manager.stop(began + spec["stop_timeout"] + STOP_GRACE_S)
        # A child that ignores SIGTERM outlives a parent that obeys it: the manager then
        # says stopped while the child still holds the port. Its group gets the rest of
        # stop_timeout, then SIGKILL.
        if leader and finish_group(leader, began + spec["stop_timeout"], clock, sleep):
            actions.append("kill group")
    if spec.get("port") and not check_mode:
        wait_port_closed(spec["port"], clock() + spec["stop_timeout"], manager.label, clock, sleep)
    return observed


def _probe_record(prober):
    return dict(url=prober.url if prober else None, ok=None, status=None, version=None, error=None, attempts=0,
                elapsed_s=None)


def start_color(manager, spec, prober, check_mode, restart, clock=time.monotonic, sleep=time.sleep, resume=False):
    """Write the color's files, (re)start it when needed and wait until it serves. With
    `resume`, the files an earlier start wrote are used as they are (none is written).

    Returns the result dict; raises ProdreadyError with the same keys when it does not come up.
    """
    began = clock()
    if resume:
        missing = [path for path in manager.definition_files() if not os.path.exists(path)]
        if missing:
            raise ProdreadyError("state=resumed: %s has no definition to start (%s missing): start it with "
                                 "state=started and its command" % (manager.label, ", ".join(missing)))
    planned = [] if resume else plan_files(manager.wanted_files())
    result = dict(changed=False, actions=[], program_file=manager.program_file, probe=_probe_record(prober),
                  files_changed=[item["path"] for item in planned if item["changed"] or item["mode_changed"]],
                  diff=file_diffs(planned))
    content_changed = any(item["changed"] for item in planned)
    observed = manager.observe()
    if result["files_changed"]:
        result["changed"] = True
        result["actions"].append("write")
    if not check_mode:
        if spec.get("log_file"):
            ensure_directory(os.path.dirname(spec["log_file"]), "log_file")
        if spec.get("colors_dir"):
            ensure_directory(spec["colors_dir"], "systemd_colors_dir")
        write_files(planned)
    # supervisor: the definition supervisord runs differs from the file (reread); systemd:
    # the unit changed. In check mode nothing is reread: a changed file stands for it.
    reload = content_changed if check_mode else manager.definition_stale(planned)
    needed = restart or content_changed or reload or observed["phase"] != pm.UP
    if not needed and prober is not None:
        answer = prober.probe()
        result["probe"].update(answer, attempts=1)
        needed = not answer["ok"]
    if not needed:
        result.update(state=observed["word"], pid=observed["pid"], elapsed_s=round(clock() - began, 3))
        return result

    result["changed"] = True
    if check_mode:
        if observed["phase"] in pm.RUNNING_PHASES:
            result["actions"].append("stop")
        result["actions"] += (["reload"] if reload else []) + ["start"]
        result.update(state=observed["word"], pid=observed["pid"], elapsed_s=round(clock() - began, 3))
        return result

    stop_color(manager, spec, False, result["actions"], clock, sleep)
    mark = manager.log_mark()
    manager.apply()
    if reload:
        result["actions"].append("reload")
    manager.start()
    result["actions"].append("start")
    return _wait_serving(manager, spec, prober, result, mark, began, clock, sleep)


def _wait_serving(manager, spec, prober, result, mark, began, clock, sleep):
    started = clock()
    deadline = started + spec["start_timeout"]
    first_pid = None
    while True:
        observed = manager.observe()
        first_pid = first_pid or observed["pid"]
        probe_ok = None
        if prober is not None and observed["phase"] in (pm.UP, pm.STARTING):
            answer = prober.probe(max(0.05, min(prober.timeout, deadline - clock())))
            result["probe"].update(answer, attempts=result["probe"]["attempts"] + 1)
            probe_ok = answer["ok"]
            if probe_ok:
                result["probe"]["elapsed_s"] = round(clock() - started, 3)
        step = pm.next_step(observed["phase"], observed["pid"], first_pid, probe_ok, clock() - started,
                            spec["start_timeout"])
        if step == pm.SERVING:
            result.update(state=observed["word"], pid=observed["pid"], elapsed_s=round(clock() - began, 3))
            return result
        if step != pm.WAIT:
            break
        sleep(max(0.0, min(spec["probe_interval"], deadline - clock())))

    if step == pm.DIED and observed["phase"] == pm.RESTARTING:
        # BACKOFF: supervisor gives up a moment later (FATAL, startretries spent) or starts it
        # again; wait that moment, so the message names the state it settles in.
        settle = clock() + SETTLE_S
        while observed["phase"] == pm.RESTARTING and clock() < settle:
            sleep(0.05)
            observed = manager.observe()
    restarted = bool(first_pid and observed["pid"] and observed["pid"] != first_pid)
    detail = manager.death_detail(observed, restarted)
    log_tail = manager.log_tail(mark)
    who = "%s (%s)" % (manager.label, spec["version"]) if spec.get("version") else manager.label
    word = observed["word"] + (" pid %s" % observed["pid"] if observed["pid"] and step == pm.TIMEOUT else "")
    stopped = observed["phase"] in pm.RUNNING_PHASES
    if stopped:  # a color that does not serve is not left running or crash-looping
        observed = stop_color(manager, dict(spec, port=None), False, result["actions"], clock, sleep)
    message = pm.start_failure_message(who, step, word, detail, result["probe"]["error"], log_tail,
                                       spec["start_timeout"], stopped)
    result.update(state=observed["word"], pid=observed["pid"], log_tail=log_tail, elapsed_s=round(clock() - began, 3))
    raise ProdreadyError(message, **result)
