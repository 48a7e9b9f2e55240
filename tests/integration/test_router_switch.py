# -*- coding: utf-8 -*-
"""router_switch through real ansible-playbook against private haproxy and nginx instances.

The sandbox's haproxy and nginx are shared with the demo and other tests, so each test here
starts its own router (and tiny color servers: two, or two per simulated app host for a
backend shared by the fleet) on ports 29600-29699 in its own temp dir. haproxy's runtime API
listens on a UNIX socket, on a TCP address (level admin) and on a TCP address at level
operator (whose `set server` haproxy refuses).
"""

import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import yaml

from apptools import private_nginx_conf
from helpers import run_module, run_playbook

from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy_runtime
from ansible_collections.prodready.deploy.plugins.modules import router_switch

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations",
                      "_stdout", "skipped", "exception", "diff", "rc"}

COLOR_SERVER = r'''
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
color, port, health = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code = health if self.path == "/health" else 200
        if self.path == "/health":  # the color is its version, for rollback_start's probe
            body = ('{"status": "ok", "version": "%s"}' % color).encode()
        else:
            body = ("%s\n" % color).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.handle_error = lambda self, request, address: None  # health checks reset
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def free_ports(count):
    """`count` ports that are free now, from this xdist worker's slice of 29600-29699 (12
    ports: a test needs at most 6 color servers, the front and two admin addresses)."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    first = 29600 + (worker % 8) * 12
    found = []
    for port in range(first, first + 12):
        with socket.socket() as sock:
            # As the servers bind (haproxy and http.server set SO_REUSEADDR): a port whose
            # last connections are in TIME_WAIT is free for them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    pytest.fail("no free port in 29600-29699")


def wait_port(port, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail("%s did not listen on %d" % (what, port))


def get_color(port):
    """The color answering a request on a new connection through the router."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip()
    finally:
        conn.close()


def wait_color(port, color, tries=100):
    """Requests until `color` answers (nginx's old workers finish their connections first)."""
    seen = None
    for _attempt in range(tries):
        try:
            seen = get_color(port)
        except (OSError, http.client.HTTPException) as exc:
            seen = (0, repr(exc))
        if seen == (200, color):
            return seen
        time.sleep(0.05)
    return seen


class LoadLoop(threading.Thread):
    """Keep-alive requests through the router until stopped (bounded), counting failures."""

    def __init__(self, port, limit=200000):
        super().__init__(daemon=True)
        self.port, self.limit = port, limit
        self.ok, self.failures, self.colors = 0, [], set()
        self.stop = threading.Event()

    def run(self):
        conn = None
        while not self.stop.is_set() and self.ok + len(self.failures) < self.limit:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read().decode().strip()
                if resp.status == 200:
                    self.ok += 1
                    self.colors.add(body)
                else:
                    self.failures.append("HTTP %d" % resp.status)
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()


@pytest.fixture
def colors(tmp_path):
    """Starts color servers; yields start(healths) -> {color: port}; kills them at the end."""
    procs = []

    def start(healths, ports=None):
        ports = ports or free_ports(len(healths))
        out = {}
        for (color, health), port in zip(sorted(healths.items()), ports):
            procs.append(subprocess.Popen([sys.executable, "-c", COLOR_SERVER, color, str(port),
                                           str(health)]))
            start.procs[color] = procs[-1]
            out[color] = port
        for color, port in out.items():
            wait_port(port, color)
        return out

    start.procs = {}  # {color: its latest process}
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


HAPROXY_CFG = """global
    stats socket %(sock)s mode 600 level admin
    stats socket ipv4@127.0.0.1:%(admin_port)d level admin
    stats socket ipv4@127.0.0.1:%(operator_port)d level operator
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    option redispatch
    retries 2
frontend fe
    bind 127.0.0.1:%(front)d
    default_backend be_app
backend be_app
    option httpchk GET /health
    http-check expect status 200
    default-server inter 200ms fall 2 rise 1
%(servers)s
"""


@pytest.fixture
def haproxy(colors):
    """A private haproxy with one server per color; start(healths, live) -> dict describing it.
    The servers of `live` (default: blue) are ready, the others `disabled` (maint)."""
    workdir = tempfile.mkdtemp(prefix="rs-hap-", dir="/tmp")  # short: UNIX socket path limit
    started = []

    def start(healths, live=("blue",)):
        ports = colors(healths)
        front, admin_port, operator_port = free_ports(3)
        sock = os.path.join(workdir, "admin.sock")
        cfg = os.path.join(workdir, "haproxy.cfg")
        pid = os.path.join(workdir, "haproxy.pid")
        servers = "\n".join("    server %s 127.0.0.1:%d check%s" % (name, port, "" if name in live else " disabled")
                            for name, port in sorted(ports.items()))
        with open(cfg, "w") as fh:
            fh.write(HAPROXY_CFG % dict(sock=sock, admin_port=admin_port, operator_port=operator_port,
                                        front=front, servers=servers))
        subprocess.run(["haproxy", "-D", "-f", cfg, "-p", pid], check=True)
        started.append(pid)
        wait_port(front, "haproxy")
        wait_port(admin_port, "haproxy's admin address")
        assert wait_color(front, sorted(live)[0], tries=200)[0] == 200
        return dict(port=front, admin_socket=sock, admin_address="ipv4@127.0.0.1:%d" % admin_port,
                    operator_address="127.0.0.1:%d" % operator_port, ports=ports)

    yield start
    for pid in started:
        with open(pid) as fh:
            for line in fh.read().split():
                try:
                    os.kill(int(line), signal.SIGTERM)
                except OSError:
                    pass
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def nginx(colors, tmp_path):
    """A private nginx proxying to the include's upstream (blue at start)."""
    started = []

    def start():
        ports = colors({"blue": 200, "green": 200})
        front = free_ports(len(ports) + 1)[-1]
        for sub in ("logs", "tmp"):
            (tmp_path / sub).mkdir()
        servers = dict((c, "127.0.0.1:%d" % p) for c, p in ports.items())
        include = tmp_path / "upstream.conf"
        include.write_text("upstream app_live {\n    server %s;\n    keepalive 16;\n}\n"
                           % servers["blue"])
        conf = tmp_path / "nginx.conf"
        conf.write_text(private_nginx_conf(tmp_path, include, front))
        subprocess.run(["nginx", "-p", str(tmp_path), "-c", str(conf)], check=True)
        started.append(tmp_path / "nginx.pid")
        wait_port(front, "nginx")
        args = dict(router="nginx", servers=servers, upstream_include=str(include),
                    nginx_prefix=str(tmp_path), nginx_conf=str(conf))
        return dict(port=front, args=args, include=include)

    yield start
    for pid in started:
        try:
            os.kill(int(pid.read_text().strip()), signal.SIGQUIT)
        except (OSError, ValueError):
            pass


# ---------------------------------------------------------------- haproxy

def test_haproxy_switch_idempotent_and_back(haproxy):
    router = haproxy({"blue": 200, "green": 200})
    args = dict(router="haproxy", admin_socket=router["admin_socket"], backend="be_app")
    result = run_module("router_switch", dict(args, live="green"))
    assert not result.get("failed"), result["_stdout"]
    assert result["changed"] and result["previous_live"] == "blue" and result["live"] == "green"
    assert set(result) - COMMON_RESULT_KEYS <= set(yaml.safe_load(router_switch.RETURN))
    assert result["servers_state"]["blue"]["admin_state"] == "drain"
    assert result["servers_state"]["green"]["status"] == "UP"
    assert result["reloaded"] is False and result["switch_ms"] > 0
    assert [get_color(router["port"]) for _i in range(5)] == [(200, "green")] * 5

    again = run_module("router_switch", dict(args, live="green"))
    assert again["changed"] is False and again["previous_live"] == "green"

    check = run_module("router_switch", dict(args, live="blue", old_state="maint"), check=True)
    assert check["changed"] and check["previous_live"] == "green"
    assert get_color(router["port"]) == (200, "green")

    back = run_module("router_switch", dict(args, live="blue", old_state="maint"))
    assert back["changed"] and back["servers_state"]["green"]["admin_state"] == "maint"
    assert [get_color(router["port"]) for _i in range(5)] == [(200, "blue")] * 5


def test_haproxy_unhealthy_color_refused_traffic_stays(haproxy):
    router = haproxy({"blue": 200, "green": 503})
    result = run_module("router_switch", dict(router="haproxy", live="green", wait_timeout=2,
                                              admin_socket=router["admin_socket"]))
    assert result["failed"]
    assert "server be_app/green did not become UP within" in result["msg"]
    assert "L7STS code 503" in result["msg"] and "Service Unavailable" in result["msg"]
    assert "Traceback" not in result["_stdout"]
    assert result["servers_state"]["green"]["admin_state"] == "maint"
    assert result["servers_state"]["blue"]["admin_state"] == "ready"
    assert [get_color(router["port"]) for _i in range(5)] == [(200, "blue")] * 5


def test_haproxy_unknown_server_and_socket(haproxy, tmp_path):
    router = haproxy({"blue": 200, "green": 200})
    result = run_module("router_switch", dict(router="haproxy", live="red",
                                              admin_socket=router["admin_socket"]))
    assert result["failed"] and "server red is not in haproxy backend be_app" in result["msg"]
    result = run_module("router_switch", dict(router="haproxy", live="blue",
                                              admin_socket=str(tmp_path / "none.sock")))
    assert result["failed"] and "admin_socket: cannot run" in result["msg"]


def _switch_playbook(tmp_path, args, count):
    tasks = [{"name": "switch %d" % n, "prodready.deploy.router_switch":
              dict(args, live=("green", "blue")[n % 2])} for n in range(count)]
    pb = tmp_path / "switches.yml"
    pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                   "connection": "local", "tasks": tasks}]))
    return pb


def test_haproxy_five_switches_under_load_zero_failures(haproxy, tmp_path):
    router = haproxy({"blue": 200, "green": 200})
    pb = _switch_playbook(tmp_path, dict(router="haproxy", admin_socket=router["admin_socket"]),
                          5)
    load = LoadLoop(router["port"])
    load.start()
    try:
        proc = run_playbook(pb)
    finally:
        load.stop.set()
        load.join(30)
    print("haproxy: %d requests ok, %d failed during 5 switches" % (load.ok, len(load.failures)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load.failures == []
    assert load.ok > 0 and load.colors == {"blue", "green"}
    assert get_color(router["port"]) == (200, "green")


# ---------------------------------------------------------------- haproxy over TCP, shared backend, fleet

HOSTS2 = ["h1-blue", "h1-green", "h2-blue", "h2-green"]
HOSTS3 = HOSTS2 + ["h3-blue", "h3-green"]


def read_back(router):
    """{server: admin state} and {server: status} of be_app, as haproxy reports them now."""
    states = _haproxy_runtime.RuntimeApi(router["admin_socket"]).states("be_app")
    return (dict((name, srv["admin_state"]) for name, srv in states.items()),
            dict((name, srv["status"]) for name, srv in states.items()))


def answers(port, count):
    """The colors answering `count` requests on new connections through the router."""
    return [get_color(port) for _i in range(count)]


def wait_status(router, server, status, tries=100):
    for _attempt in range(tries):
        if read_back(router)[1].get(server) == status:
            return True
        time.sleep(0.05)
    return False


def test_haproxy_switch_over_the_tcp_admin_address(haproxy):
    router = haproxy({"blue": 200, "green": 200})
    args = dict(router="haproxy", admin_address=router["admin_address"])
    result = run_module("router_switch", dict(args, live="green"))
    assert not result.get("failed"), result["_stdout"]
    assert result["changed"] and result["previous_live"] == "blue"
    assert read_back(router)[0] == {"blue": "drain", "green": "ready"}
    assert answers(router["port"], 5) == [(200, "green")] * 5
    # haproxy's own spelling, without the family prefix, works the same
    back = run_module("router_switch", dict(router="haproxy", live="blue",
                                            admin_address=router["admin_address"].split("@")[1]))
    assert back["changed"] and read_back(router)[0] == {"blue": "ready", "green": "drain"}

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    refused = run_module("router_switch", dict(router="haproxy", live="green",
                                               admin_address="127.0.0.1:%d" % dead))
    assert refused["failed"] and refused["msg"].startswith(
        "admin_address: cannot run 'show servers state be_app' on haproxy's admin address 127.0.0.1:%d: " % dead)


def test_haproxy_refusals_of_a_batch_are_named_per_command(haproxy):
    """A runtime API at level operator answers `Permission denied` to each `set server` of
    the batch; the switch fails naming them and nothing changed."""
    router = haproxy({"blue": 200, "green": 200})
    result = run_module("router_switch", dict(router="haproxy", live="green",
                                              admin_address=router["operator_address"]))
    assert result["failed"]
    assert result["msg"] == ("haproxy refused to make green ready: set server be_app/green state ready: "
                             "Permission denied (is the stats socket declared with level admin?)")
    assert read_back(router)[0] == {"blue": "ready", "green": "maint"}


def test_shared_backend_switching_one_host_leaves_the_other_host_as_it_was(haproxy):
    router = haproxy(dict.fromkeys(HOSTS2, 200), live=("h1-blue", "h2-blue"))
    base = dict(router="haproxy", admin_socket=router["admin_socket"])
    h1 = dict(base, servers={"h1-blue": None, "h1-green": None})
    h2 = dict(base, servers={"h2-blue": "127.0.0.1:%d" % router["ports"]["h2-blue"], "h2-green": ""})
    # host 2 deploys first and keeps its previous color as a runtime backup server
    first = run_module("router_switch", dict(h2, live="h2-green", keep_previous_as_backup=True))
    assert not first.get("failed"), first["_stdout"]
    assert first["previous_live"] == "h2-blue"
    assert set(first["servers_state"]) == {"h2-blue", "h2-green", "prodready-backup-h2-blue"}
    assert first["backup_server"]["name"] == "prodready-backup-h2-blue"
    host2_before = dict((k, v) for k, v in read_back(router)[0].items() if "h2" in k)
    assert host2_before == {"h2-blue": "drain", "h2-green": "ready", "prodready-backup-h2-blue": "ready"}

    result = run_module("router_switch", dict(h1, live="h1-green"))
    assert not result.get("failed"), result["_stdout"]
    assert result["changed"] and result["previous_live"] == "h1-blue"
    assert set(result["servers_state"]) == {"h1-blue", "h1-green"} and result["backup_server"] is None
    admin = read_back(router)[0]
    assert dict((k, v) for k, v in admin.items() if "h2" in k) == host2_before
    assert (admin["h1-blue"], admin["h1-green"]) == ("drain", "ready")
    assert set(body for _code, body in answers(router["port"], 12)) == {"h1-green", "h2-green"}

    # h2-green also being ready does not make host 1 "not live"; a check of host 1 changes nothing
    again = run_module("router_switch", dict(h1, live="h1-green"))
    assert again["changed"] is False and again["previous_live"] == "h1-green"
    # host 1's switch without a backup server deletes none of host 2's
    assert read_back(router)[0]["prodready-backup-h2-blue"] == "ready"


def test_fleet_atomic_switch_of_three_hosts_under_load_zero_failures(haproxy):
    router = haproxy(dict.fromkeys(HOSTS3, 200), live=("h1-blue", "h2-blue", "h3-blue"))
    greens = ["h1-green", "h2-green", "h3-green"]
    args = dict(router="haproxy", admin_address=router["admin_address"], servers=dict.fromkeys(HOSTS3))
    loads = [LoadLoop(router["port"]) for _i in range(4)]
    for load in loads:
        load.start()
    try:
        result = run_module("router_switch", dict(args, live=greens))
        back = run_module("router_switch", dict(args, live=result.get("previous_live")))
    finally:
        for load in loads:
            load.stop.set()
        for load in loads:
            load.join(30)
    ok = sum(load.ok for load in loads)
    failures = sum((load.failures for load in loads), [])
    seen = set().union(*(load.colors for load in loads))
    print("fleet-atomic: switch_ms %s (3 servers), back %s; %d requests ok, %d failed"
          % (result.get("switch_ms"), back.get("switch_ms"), ok, len(failures)))
    assert not result.get("failed"), result["_stdout"]
    assert not back.get("failed"), back["_stdout"]
    assert result["live"] == greens and result["previous_live"] == ["h1-blue", "h2-blue", "h3-blue"]
    assert result["backup_server"] == [] and result["switch_ms"] > 0
    assert back["previous_live"] == greens
    assert failures == []
    assert ok > 0 and seen == set(HOSTS3)
    assert read_back(router)[0] == dict(dict.fromkeys(greens, "drain"),
                                        **dict.fromkeys(result["previous_live"], "ready"))


def test_fleet_switch_with_one_server_never_up_puts_every_one_back(haproxy):
    healths = dict(dict.fromkeys(HOSTS3, 200), **{"h2-green": 503})
    router = haproxy(healths, live=("h1-blue", "h2-blue", "h3-blue"))
    greens = ["h1-green", "h2-green", "h3-green"]
    result = run_module("router_switch", dict(router="haproxy", admin_socket=router["admin_socket"],
                                              servers=dict.fromkeys(HOSTS3), live=greens, wait_timeout=2))
    assert result["failed"]
    assert result["msg"].startswith("haproxy: 1 of 3 servers did not become UP within ")
    assert "be_app/h2-green status DOWN, check L7STS code 503" in result["msg"]
    assert "be_app/h1-green" not in result["msg"] and "be_app/h3-green" not in result["msg"]
    assert "(h1-green maint, h2-green maint, h3-green maint)" in result["msg"]
    assert result["previous_live"] == ["h1-blue", "h2-blue", "h3-blue"]
    assert read_back(router)[0] == dict(dict.fromkeys(greens, "maint"),
                                        **dict.fromkeys(["h1-blue", "h2-blue", "h3-blue"], "ready"))
    assert set(body for _code, body in answers(router["port"], 9)) == {"h1-blue", "h2-blue", "h3-blue"}


def test_maint_then_ready_in_one_batch_each(haproxy):
    router = haproxy(dict.fromkeys(HOSTS2, 200), live=("h1-blue", "h2-blue"))
    base = dict(router="haproxy", admin_address=router["admin_address"])
    # host 1 only: host 2 keeps serving
    h1 = run_module("router_switch", dict(base, state="maint", servers={"h1-blue": None, "h1-green": None}))
    assert not h1.get("failed"), h1["_stdout"]
    assert h1["changed"] and h1["previous_live"] == ["h1-blue"] and h1["live"] == []
    assert read_back(router)[0] == {"h1-blue": "maint", "h1-green": "maint", "h2-blue": "ready",
                                    "h2-green": "maint"}
    assert set(answers(router["port"], 6)) == {(200, "h2-blue")}

    # the whole backend, as the rollback does before a restore: haproxy answers 503
    before = datetime.datetime.utcnow()
    off = run_module("router_switch", dict(base, state="maint"))
    after = datetime.datetime.utcnow()
    assert off["changed"] and off["previous_live"] == ["h2-blue"]
    at = datetime.datetime.strptime(off["at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert before <= at <= after
    assert set(read_back(router)[0].values()) == {"maint"}
    assert set(code for code, _body in answers(router["port"], 6)) == {503}
    assert run_module("router_switch", dict(base, state="maint"), check=True)["changed"] is False

    check = run_module("router_switch", dict(base, state="ready", live=["h1-blue", "h2-blue"]), check=True)
    assert check["changed"] and read_back(router)[0]["h1-blue"] == "maint"
    on = run_module("router_switch", dict(base, state="ready", live=["h1-blue", "h2-blue"]))
    assert not on.get("failed"), on["_stdout"]
    assert on["changed"] and on["live"] == ["h1-blue", "h2-blue"]
    assert read_back(router)[0] == {"h1-blue": "ready", "h1-green": "maint", "h2-blue": "ready",
                                    "h2-green": "maint"}
    assert set(body for _code, body in answers(router["port"], 8)) == {"h1-blue", "h2-blue"}


def test_maint_with_live_checks_the_next_server_up_first_so_ready_needs_no_check(haproxy, colors):
    """A restore's traffic stop names the server that serves after it: haproxy must hold it UP
    before traffic stops (else nothing stops); drained meanwhile, it is UP the moment it is made
    ready (wait_timeout 0: a single look), so the 503 window holds no health check. Here, as a
    restore's cold target, it was last checked DOWN and started while in maint. (Out of plain
    maint, haproxy shows a server UP 1/3 before its first check, even a dead one: the switch
    must wait for that check.)"""
    router = haproxy({"h1-blue": 200, "h1-green": 200, "h2-blue": 200, "h2-green": 503}, live=("h1-blue",))
    base = dict(router="haproxy", admin_address=router["admin_address"])
    bad = run_module("router_switch", dict(base, state="maint", live="h2-green", wait_timeout=1))
    assert bad.get("failed") and bad["msg"].startswith(
        "haproxy: traffic was not stopped: be_app/h2-green, which must take the traffic after the maintenance, "
        "is not UP within "), bad["msg"]
    assert "check L7STS code 503" in bad["msg"]
    assert read_back(router)[0] == {"h1-blue": "ready", "h1-green": "maint", "h2-blue": "maint", "h2-green": "maint"}
    assert set(answers(router["port"], 4)) == {(200, "h1-blue")}

    # h1-green stopped, checked DOWN, put in maint, then started again (a cold target)
    api = _haproxy_runtime.RuntimeApi(router["admin_socket"])
    colors.procs["h1-green"].kill()
    colors.procs["h1-green"].wait()
    api.set_state("be_app", "h1-green", "drain")
    assert wait_status(router, "h1-green", "DOWN")
    api.set_state("be_app", "h1-green", "maint")
    colors({"h1-green": 200}, ports=[router["ports"]["h1-green"]])

    off = run_module("router_switch", dict(base, state="maint", live="h1-green"))
    assert not off.get("failed"), off["_stdout"]
    assert off["checked_up"] == ["h1-green"] and off["previous_live"] == ["h1-blue"]
    assert read_back(router)[0] == {"h1-blue": "maint", "h1-green": "drain", "h2-blue": "maint", "h2-green": "maint"}
    assert set(code for code, _body in answers(router["port"], 4)) == {503}
    on = run_module("router_switch", dict(base, state="ready", live="h1-green", wait_timeout=0))
    assert not on.get("failed"), on.get("msg")
    assert set(answers(router["port"], 4)) == {(200, "h1-green")}


def test_rollback_start_switches_its_colors_over_the_admin_address(haproxy, tmp_path):
    """rollback_start on host 1 of a shared backend (servers h1-blue, h1-green: server_prefix
    h1-): its colors switch, host 2's servers stay as they were."""
    router = haproxy(dict.fromkeys(HOSTS2, 200), live=("h1-blue", "h2-blue"))
    state = tmp_path / "state.json"
    # each color server answers its server name as its version
    state.write_text(json.dumps({"live_color": "blue", "live_version": "h1-blue", "previous_version": "h1-green",
                                 "colors": {"blue": "h1-blue", "green": "h1-green"}}))
    audit = tmp_path / "audit.log"
    result = run_module("rollback_start", dict(
        state_path=str(state), lock_path=str(tmp_path / "deploy.lock"), run_id="r1", audit_log=str(audit),
        colors={"blue": {"port": router["ports"]["h1-blue"]}, "green": {"port": router["ports"]["h1-green"]}},
        admin_address=router["admin_address"], backend="be_app", server_prefix="h1-", wait_timeout=5))
    assert not result.get("failed"), result["_stdout"]
    assert result["warm"] and result["switched"] and result["color"] == "green"
    assert result["switch"]["live"] == "h1-green" and result["switch"]["previous_live"] == "h1-blue"
    assert set(result["switch"]["servers_state"]) == {"h1-blue", "h1-green"}
    assert read_back(router)[0] == {"h1-blue": "drain", "h1-green": "ready", "h2-blue": "ready",
                                    "h2-green": "maint"}
    line = json.loads(audit.read_text().splitlines()[-1])
    assert (line["color"], line["previous_live"]) == ("green", "blue")


# ---------------------------------------------------------------- nginx

def test_nginx_switch_idempotent_diff(nginx):
    router = nginx()
    result = run_module("router_switch", dict(router["args"], live="green"), diff=True)
    assert not result.get("failed"), result["_stdout"]
    assert result["changed"] and result["reloaded"] and result["previous_live"] == "blue"
    assert result["servers_state"] == {}
    assert router["args"]["servers"]["blue"] in result["diff"]["before"]
    assert router["args"]["servers"]["green"] in result["diff"]["after"]
    assert wait_color(router["port"], "green") == (200, "green")
    assert router["include"].read_text() == (
        "upstream app_live {\n    server %s;\n    keepalive 16;\n}\n"
        % router["args"]["servers"]["green"])
    again = run_module("router_switch", dict(router["args"], live="green"))
    assert again["changed"] is False and again["reloaded"] is False


def test_nginx_broken_include_refused_and_restored(nginx):
    router = nginx()
    before = router["include"].read_bytes()
    servers = dict(router["args"]["servers"], green="not a host")
    result = run_module("router_switch", dict(router["args"], servers=servers, live="green"))
    assert result["failed"] and "nginx -t refused the upstream for green" in result["msg"]
    assert "previous include was restored" in result["msg"]
    assert "invalid" in result["msg"] or "host not found" in result["msg"]
    assert router["include"].read_bytes() == before
    assert [get_color(router["port"]) for _i in range(3)] == [(200, "blue")] * 3


def test_nginx_five_switches_under_load_reported(nginx, tmp_path):
    router = nginx()
    pb = _switch_playbook(tmp_path, router["args"], 5)
    load = LoadLoop(router["port"])
    load.start()
    try:
        proc = run_playbook(pb)
    finally:
        load.stop.set()
        load.join(30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # nginx's graceful reload closes idle keep-alive connections: reported, not asserted.
    print("nginx: %d requests ok, %d failed during 5 switches (reload): %s"
          % (load.ok, len(load.failures), sorted(set(load.failures))[:3]))
    assert load.ok > 0
    assert wait_color(router["port"], "green") == (200, "green")
