# -*- coding: utf-8 -*-
"""Unit tests of _haproxy_runtime.RuntimeApi over real sockets (TCP and UNIX) against a small
server that answers as haproxy 2.6 does; the switch itself is tested against a real haproxy
in tests/integration/test_router_switch.py."""

import os
import socket
import socketserver
import threading

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy_runtime
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

SERVERS_STATE = (
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n"
    "3 be 1 blue 127.0.0.1 2 %d 1\n3 be 2 green 127.0.0.1 2 %d 1\n\n")
STAT = "# pxname,svname,status,check_status\nbe,BACKEND,UP,\nbe,blue,UP,L7OK\nbe,green,UP,L7OK\n\n"
ADMIN_BITS = {"ready": 0, "drain": 8, "maint": 1}


class FakeHaproxy(object):
    """Answers runtime-API lines like haproxy: `;`-separated commands, each answer followed by
    an empty line; `garble` answers set commands with text that cannot be split."""

    def __init__(self):
        self.lines = []
        self.admin = {"blue": "ready", "green": "maint"}
        self.garble = False

    def answer(self, line):
        self.lines.append(line)
        out = []
        for command in line.split(";"):
            words = command.split()
            if words[:3] == ["show", "servers", "state"]:
                out.append(SERVERS_STATE % (ADMIN_BITS[self.admin["blue"]], ADMIN_BITS[self.admin["green"]]))
            elif words[:2] == ["show", "stat"]:
                out.append(STAT)
            elif words[:2] == ["set", "server"] and self.garble:
                return "Unknown command.\n"
            elif words[:2] == ["set", "server"]:
                server = words[2].split("/")[1]
                if server not in self.admin:
                    out.append("No such server.\n\n")
                else:
                    self.admin[server] = words[4]
                    out.append("\n")
        return "".join(out)


def serve(server_class, address, fake):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline().decode().rstrip("\n")
            self.wfile.write(fake.answer(line).encode())

    server = server_class(address, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def tcp():
    fake = FakeHaproxy()
    server = serve(socketserver.ThreadingTCPServer, ("127.0.0.1", 0), fake)
    fake.address = "ipv4@127.0.0.1:%d" % server.server_address[1]
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def unix(tmp_path):
    fake = FakeHaproxy()
    fake.path = str(tmp_path / "admin.sock")
    server = serve(socketserver.ThreadingUnixStreamServer, fake.path, fake)
    yield fake
    server.shutdown()
    server.server_close()


def test_one_line_for_a_batch_and_each_refusal_named(tcp):
    api = _haproxy_runtime.RuntimeApi(address=tcp.address)
    refused = api.set_states("be", [("green", "ready"), ("red", "drain"), ("blue", "drain")])
    assert tcp.lines == ["set server be/green state ready;set server be/red state drain;"
                         "set server be/blue state drain"]
    assert refused == ["set server be/red state drain: No such server."]
    assert tcp.admin == {"blue": "drain", "green": "ready"}
    states = api.states("be")
    assert states["green"]["admin_state"] == "ready" and states["green"]["status"] == "UP"


def test_an_answer_that_cannot_be_split_is_judged_by_the_states_read_back(unix):
    unix.garble = True
    api = _haproxy_runtime.RuntimeApi(unix.path)
    refused = api.set_states("be", [("green", "ready"), ("blue", "ready")])
    assert refused == ["set server be/green state ready: Unknown command."]  # blue already was
    with pytest.raises(ProdreadyError) as err:
        api.set_state("be", "green", "ready")
    assert str(err.value) == "haproxy: set server be/green state ready: Unknown command."


def test_a_tcp_address_nothing_listens_on_is_named():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = _haproxy_runtime.RuntimeApi(address="127.0.0.1:%d" % port)
    with pytest.raises(ProdreadyError) as err:
        api.states("be_app")
    assert str(err.value).startswith("admin_address: cannot run 'show servers state be_app' on haproxy's "
                                     "admin address 127.0.0.1:%d: " % port)


def test_ipv6_loopback_address():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    fake = FakeHaproxy()
    try:
        server = serve(type("V6", (socketserver.ThreadingTCPServer,), {"address_family": socket.AF_INET6}),
                       ("::1", 0), fake)
    except OSError:
        pytest.skip("no ::1 on this machine")
    try:
        api = _haproxy_runtime.RuntimeApi(address="[::1]:%d" % server.server_address[1])
        assert api.where == ("admin_address", "admin address [::1]:%d" % server.server_address[1])
        assert api.set_states("be", [("green", "drain")]) == []
        assert fake.admin["green"] == "drain"
    finally:
        server.shutdown()
        server.server_close()


def test_a_unix_socket_that_is_missing_is_named(tmp_path):
    api = _haproxy_runtime.RuntimeApi(str(tmp_path / "none.sock"))
    with pytest.raises(ProdreadyError) as err:
        api.command("show info")
    assert str(err.value).startswith("admin_socket: cannot run 'show info' on haproxy's admin socket %s: "
                                     % os.path.join(str(tmp_path), "none.sock"))


@pytest.mark.parametrize("kw", [dict(), dict(socket_path="/x", address="lb1:1")])
def test_one_of_socket_and_address(kw):
    with pytest.raises(ProdreadyError) as err:
        _haproxy_runtime.RuntimeApi(**kw)
    assert str(err.value) == "admin_socket, admin_address: give one of them"
