# -*- coding: utf-8 -*-
"""router_switch through real ansible-playbook against private haproxy and nginx instances.

The sandbox's haproxy and nginx are shared with the demo and other tests, so each test here
starts its own router (and two tiny color servers) on ports 29600-29699 in its own temp dir.
"""

import http.client
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
        body = ("%s\n" % color).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def free_ports(count):
    """`count` ports that are free now, from this xdist worker's slice of 29600-29699."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    first = 29600 + (worker % 8) * 12
    found = []
    for port in range(first, first + 12):
        with socket.socket() as sock:
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
        seen = get_color(port)
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

    def start(healths):
        ports = free_ports(len(healths))
        out = {}
        for (color, health), port in zip(sorted(healths.items()), ports):
            procs.append(subprocess.Popen([sys.executable, "-c", COLOR_SERVER, color, str(port),
                                           str(health)]))
            out[color] = port
        for color, port in out.items():
            wait_port(port, color)
        return out

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.fixture
def haproxy(colors):
    """A private haproxy: blue ready, green in maintenance; the dict describes it."""
    workdir = tempfile.mkdtemp(prefix="rs-hap-", dir="/tmp")  # short: UNIX socket path limit
    started = []

    def start(healths):
        ports = colors(healths)
        front = free_ports(len(ports) + 1)[-1]
        sock = os.path.join(workdir, "admin.sock")
        cfg = os.path.join(workdir, "haproxy.cfg")
        pid = os.path.join(workdir, "haproxy.pid")
        with open(cfg, "w") as fh:
            fh.write("""global
    stats socket %s mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    option redispatch
    retries 2
frontend fe
    bind 127.0.0.1:%d
    default_backend be_app
backend be_app
    option httpchk GET /health
    http-check expect status 200
    default-server inter 200ms fall 2 rise 1
    server blue 127.0.0.1:%d check
    server green 127.0.0.1:%d check disabled
""" % (sock, front, ports["blue"], ports["green"]))
        subprocess.run(["haproxy", "-D", "-f", cfg, "-p", pid], check=True)
        started.append(pid)
        wait_port(front, "haproxy")
        assert wait_color(front, "blue") == (200, "blue")
        return dict(port=front, admin_socket=sock, ports=ports)

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
