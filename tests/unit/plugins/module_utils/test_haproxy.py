# -*- coding: utf-8 -*-
"""Unit tables for _haproxy: runtime API answers, switch decisions, nginx include."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

SERVERS_STATE = (
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n"
    "3 be_app 1 blue 127.0.0.1 2 0 1\n"
    "3 be_app 2 green 127.0.0.1 0 5 1\n"
    "3 be_app 3 nochk 127.0.0.1 2 8 1\n\n")
STAT = (
    "# pxname,svname,status,check_status,last_chk,check_desc\n"
    "be_app,BACKEND,UP,,,\n"
    "be_app,blue,UP,L7OK,HTTP status check returned code 200,Layer7 check passed\n"
    "be_app,green,MAINT,,,\n"
    "be_app,nochk,DRAIN,,,\n"
    "other,blue,DOWN,L4CON,Connection refused,Layer4 connection problem\n\n")


def srv(admin="ready", status="UP", op="running"):
    return dict(admin_state=admin, operational_state=op, status=status, check_status="L7OK",
                last_chk="", check_desc="")


@pytest.mark.parametrize("bits, name", [(0, "ready"), (1, "maint"), (5, "maint"), (4, "ready"), (8, "drain"),
                                        (16, "drain"), (9, "maint"), (0x20, "maint")])
def test_admin_state_name(bits, name):
    assert _haproxy.admin_state_name(bits) == name


def test_parse_and_merge():
    admin = _haproxy.parse_servers_state(SERVERS_STATE, "be_app")
    assert admin == {"blue": {"admin_state": "ready", "operational_state": "running"},
                     "green": {"admin_state": "maint", "operational_state": "stopped"},
                     "nochk": {"admin_state": "drain", "operational_state": "running"}}
    stat = _haproxy.parse_stat(STAT, "be_app")
    assert set(stat) == {"blue", "green", "nochk"}
    assert stat["blue"]["last_chk"] == "HTTP status check returned code 200"
    merged = _haproxy.merge_states(admin, stat)
    assert merged["green"]["status"] == "MAINT" and merged["blue"]["check_status"] == "L7OK"


@pytest.mark.parametrize("text", ["Can't find backend.\n\n", ""])
def test_parse_servers_state_errors(text):
    with pytest.raises(ProdreadyError) as err:
        _haproxy.parse_servers_state(text, "be_x")
    assert "be_x" in str(err.value)


def test_parse_stat_error():
    with pytest.raises(ProdreadyError):
        _haproxy.parse_stat("Unknown command.\n", "be_app")


@pytest.mark.parametrize("server, up", [
    (srv(), True),
    (srv(status="UP 1/2"), False),
    (srv(status="DOWN"), False),
    (srv(status="no check"), True),
    (srv(status="no check", admin="maint"), False),
    (srv(status="no check", op="stopped"), False),
    (srv(status="DRAIN"), False),
])
def test_is_up(server, up):
    assert _haproxy.is_up(server) is up


@pytest.mark.parametrize("states, live, already, previous", [
    ({"blue": srv(), "green": srv("maint", "MAINT")}, "blue", True, "blue"),
    ({"blue": srv(), "green": srv("drain", "DRAIN")}, "blue", True, "blue"),
    ({"blue": srv(), "green": srv("maint", "MAINT")}, "green", False, "blue"),
    ({"blue": srv(), "green": srv()}, "blue", False, "green"),
    ({"blue": srv(status="DOWN"), "green": srv("maint", "MAINT")}, "blue", False, None),
    ({"blue": srv("maint", "MAINT"), "green": srv("maint", "MAINT")}, "blue", False, None),
])
def test_already_and_previous(states, live, already, previous):
    assert _haproxy.already_live(states, live) is already
    assert _haproxy.previous_live(states, live) == previous


def test_plan_old_skips_servers_already_there():
    states = {"blue": srv(), "green": srv(), "red": srv("maint", "MAINT")}
    assert _haproxy.plan_old(states, "green", "maint") == [("blue", "maint")]
    assert _haproxy.plan_old(states, "green", "drain") == [("blue", "drain"), ("red", "drain")]


def test_split_and_plan_backups():
    states = {"blue": srv(), "green": srv(), "prodready-backup-blue": srv(),
              "prodready-backup-red": srv("maint", "MAINT")}
    colors, backups = _haproxy.split_backups(states)
    assert set(colors) == {"blue", "green"}
    assert set(backups) == {"prodready-backup-blue", "prodready-backup-red"}


@pytest.mark.parametrize("keep, expected", [
    (None, (["prodready-backup-blue", "prodready-backup-red"], [], [])),
    ("blue", (["prodready-backup-red"], [], [])),
    ("red", (["prodready-backup-blue"], [], ["prodready-backup-red"])),
    ("green", (["prodready-backup-blue", "prodready-backup-red"], ["green"], [])),
    # a list (fleet switch): one backup server per previous server
    (["blue", "green"], (["prodready-backup-red"], ["green"], [])),
    (["blue", "red"], ([], [], ["prodready-backup-red"])),
    ([], (["prodready-backup-blue", "prodready-backup-red"], [], [])),
])
def test_plan_backups(keep, expected):
    backups = {"prodready-backup-blue": srv(), "prodready-backup-red": srv("maint", "MAINT")}
    assert _haproxy.plan_backups(backups, keep) == expected


def test_plan_backups_without_any():
    assert _haproxy.plan_backups({}, "green") == ([], ["green"], [])
    assert _haproxy.plan_backups({}, None) == ([], [], [])


# A backend shared by two app hosts, each with two colors, and runtime backup servers of both.
SHARED = {"h1-blue": srv(), "h1-green": srv("maint", "MAINT"), "h2-blue": srv("drain", "DRAIN"),
          "h2-green": srv(), "prodready-backup-h1-blue": srv("maint", "MAINT"),
          "prodready-backup-h2-blue": srv()}


@pytest.mark.parametrize("names, colors, backups", [
    (None, ["h1-blue", "h1-green", "h2-blue", "h2-green"],
     ["prodready-backup-h1-blue", "prodready-backup-h2-blue"]),
    (["h1-blue", "h1-green"], ["h1-blue", "h1-green"], ["prodready-backup-h1-blue"]),
    (["h2-green"], ["h2-green"], []),
    (["h1-green", "h3-blue"], ["h1-green"], []),  # unknown names: check_scope's business
])
def test_in_scope(names, colors, backups):
    in_colors, in_backups = _haproxy.in_scope(SHARED, names)
    assert sorted(in_colors) == colors and sorted(in_backups) == backups


@pytest.mark.parametrize("names, live, message", [
    (["h1-blue", "h1-green"], ["h1-green"], None),
    (None, "h2-green", None),
    (["h1-blue", "h3-blue"], "h1-blue",
     "servers: h3-blue is not in haproxy backend be_app (servers: h1-blue, h1-green, h2-blue, h2-green)"),
    (["h3-blue", "h3-green"], None, "servers: h3-blue, h3-green are not in haproxy backend be_app"),
    (None, ["h1-green", "h9-green"], "live: server h9-green is not in haproxy backend be_app"),
    # a runtime backup server is not a server a switch may name
    (None, "prodready-backup-h2-blue", "live: server prodready-backup-h2-blue is not in"),
])
def test_check_scope(names, live, message):
    if message is None:
        _haproxy.check_scope(SHARED, "be_app", names, live)
        return
    with pytest.raises(ProdreadyError) as err:
        _haproxy.check_scope(SHARED, "be_app", names, live)
    assert str(err.value).startswith(message)


def test_check_scope_empty_backend():
    with pytest.raises(ProdreadyError) as err:
        _haproxy.check_scope({}, "be_x", None, "blue")
    assert str(err.value) == "backend: haproxy backend be_x has no servers, or does not exist"


# The scoped decisions of a switch of host 1 in SHARED: host 2's servers play no part.
H1 = _haproxy.in_scope(SHARED, ["h1-blue", "h1-green"])[0]
ALL = _haproxy.in_scope(SHARED, None)[0]


@pytest.mark.parametrize("states, live, already, previous", [
    (H1, "h1-green", False, "h1-blue"),
    (H1, "h1-blue", True, "h1-blue"),       # h2-green is ready too, but not in scope
    (H1, ["h1-green"], False, ["h1-blue"]),
    (ALL, "h1-blue", False, "h2-green"),  # without servers: the whole backend
    (ALL, ["h1-green", "h2-green"], False, ["h1-blue", "h2-green"]),
    (ALL, ["h1-blue", "h2-green"], True, ["h1-blue", "h2-green"]),
    ({"a": srv("maint", "MAINT"), "b": srv("maint", "MAINT")}, ["a", "b"], False, []),
    ({"a": srv(), "b": srv(status="DOWN")}, ["a", "b"], False, ["a"]),
])
def test_scoped_already_and_previous(states, live, already, previous):
    assert _haproxy.already_live(states, live) is already
    assert _haproxy.previous_live(states, live) == previous


@pytest.mark.parametrize("states, live, old_state, ready, old", [
    (H1, "h1-green", "drain", [("h1-green", "ready")], [("h1-blue", "drain")]),
    (H1, ["h1-green"], "maint", [("h1-green", "ready")], [("h1-blue", "maint")]),
    (ALL, ["h1-green", "h2-green"], "drain", [("h1-green", "ready")],
     [("h1-blue", "drain")]),  # h2-blue is already draining
    (ALL, ["h1-green", "h2-green"], "maint", [("h1-green", "ready")],
     [("h1-blue", "maint"), ("h2-blue", "maint")]),
])
def test_plan_ready_and_old(states, live, old_state, ready, old):
    assert _haproxy.plan_ready(states, _haproxy.live_names(live)) == ready
    assert _haproxy.plan_old(states, live, old_state) == old


def test_plan_maint_and_restore():
    assert _haproxy.plan_maint(SHARED) == [("h1-blue", "maint"), ("h2-blue", "maint"),
                                           ("h2-green", "maint"), ("prodready-backup-h2-blue", "maint")]
    restore_to = {"a": "maint", "b": "ready", "c": "drain"}
    assert _haproxy.plan_restore(restore_to) == [("a", "maint"), ("c", "drain")]
    # as read after the failure: c's `ready` was refused, it is still draining
    now = {"a": srv(), "b": srv(), "c": srv("drain", "DRAIN")}
    assert _haproxy.plan_restore(restore_to, now) == [("a", "maint")]


@pytest.mark.parametrize("plan, limit, lines", [
    ([], 100, []),
    ([("a", "ready")], 100, ["set server be/a state ready"]),
    ([("a", "ready"), ("b", "drain")], 100, ["set server be/a state ready;set server be/b state drain"]),
    ([("a", "ready"), ("b", "drain"), ("c", "maint")], 60,
     ["set server be/a state ready;set server be/b state drain", "set server be/c state maint"]),
    ([("a", "ready"), ("b", "drain")], 10, ["set server be/a state ready", "set server be/b state drain"]),
])
def test_batch_lines(plan, limit, lines):
    assert _haproxy.batch_lines("be", plan, limit) == lines


# Answers of haproxy 2.6.12 to lines of `;`-separated commands, as read from the socket.
@pytest.mark.parametrize("text, count, answers", [
    ("\n", 1, [""]),
    ("No such server.\n\n", 1, ["No such server."]),
    ("\n\n", 2, ["", ""]),
    ("No such server.\n\n\nNo such server.\n\n'set server <srv> state' expects 'ready', 'drain' and "
     "'maint'.\n\n\n", 5,
     ["No such server.", "", "No such server.", "'set server <srv> state' expects 'ready', 'drain' and 'maint'.",
      ""]),
    # the empty line after the last answer is missing in some error cases
    ("New server registered.\n\n\nOnly servers in maintenance mode can be deleted.\n", 3,
     ["New server registered.", "", "Only servers in maintenance mode can be deleted."]),
    ("Permission denied\n\nPermission denied\n\n", 2, ["Permission denied", "Permission denied"]),
    # not as many answers as commands: cannot be told apart
    ("\n", 2, None),
    ("", 1, None),
    ("Unknown command.\n", 3, None),
])
def test_split_answers(text, count, answers):
    assert _haproxy.split_answers(text, count) == answers


def test_refused_names_each_command():
    plan = [("a", "ready"), ("b", "drain"), ("c", "maint")]
    assert _haproxy.refused("be", plan, ["", "No such server.", ""]) == \
        ["set server be/b state drain: No such server."]
    assert _haproxy.refused("be", plan, ["", "", ""]) == []


@pytest.mark.parametrize("text, parsed", [
    ("127.0.0.1:9999", ("any", "127.0.0.1", 9999)),
    ("ipv4@127.0.0.1:9999", ("ipv4", "127.0.0.1", 9999)),
    ("IPV4@lb1.example.org:9999", ("ipv4", "lb1.example.org", 9999)),
    ("tcp@lb1:1", ("any", "lb1", 1)),
    ("[::1]:9999", ("ipv6", "::1", 9999)),
    ("ipv6@[::1]:9999", ("ipv6", "::1", 9999)),
    ("ipv6@::1:9999", ("ipv6", "::1", 9999)),
    (" lb1:9999 ", ("any", "lb1", 9999)),
])
def test_parse_admin_address(text, parsed):
    assert _haproxy.parse_admin_address(text) == parsed


@pytest.mark.parametrize("text, fragment", [
    ("lb1", "is not host:port"),
    ("::1:9999", "an IPv6 address goes in brackets"),
    ("lb1:http", "needs a host and a port from 1 to 65535"),
    ("lb1:0", "needs a host and a port"),
    ("lb1:70000", "needs a host and a port"),
    (":9999", "needs a host"),
    ("unix@/run/haproxy.sock", "a UNIX socket goes in admin_socket"),
    ("udp@lb1:9999", "has an address prefix"),
    ("ipv4@[::1]:9999", "puts an IPv6 address after ipv4@"),
    ("", "is not host:port"),
])
def test_parse_admin_address_errors(text, fragment):
    with pytest.raises(ProdreadyError) as err:
        _haproxy.parse_admin_address(text)
    assert str(err.value).startswith("admin_address: ") and fragment in str(err.value)


@pytest.mark.parametrize("host, port, text", [("127.0.0.1", 9, "127.0.0.1:9"), ("::1", 9, "[::1]:9"),
                                              ("lb1", 80, "lb1:80")])
def test_format_address(host, port, text):
    assert _haproxy.format_address(host, port) == text


@pytest.mark.parametrize("name, ok", [("h1-blue", True), ("app_1.blue:2", True), ("a;b", False),
                                      ("a b", False), ("a/b", False), ("", False), ("x\ny", False),
                                      (3, False), (None, False)])
def test_check_name(name, ok):
    if ok:
        _haproxy.check_name("servers", name)
        return
    with pytest.raises(ProdreadyError) as err:
        _haproxy.check_name("servers", name)
    assert str(err.value).startswith("servers: ") and "is not a haproxy name" in str(err.value)


def test_iso_utc():
    assert _haproxy.iso_utc(0) == "1970-01-01T00:00:00.000000Z"
    assert _haproxy.iso_utc(1796117400.25) == "2026-12-01T09:30:00.250000Z"


def test_servers_state_address():
    text = ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
            "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
            "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
            "srv_fqdn srv_port\n"
            "3 be 1 blue 127.0.0.1 2 8 1 1 5 15 3 3 6 0 0 0 - 39101\n"
            "3 be 3 prodready-backup-blue 127.0.0.1 2 0 1 1 0 1 0 0 0 0 0 0 - 39101\n")
    servers = _haproxy.parse_servers_state(text, "be")
    assert servers["blue"] == {"admin_state": "drain", "operational_state": "running",
                               "address": "127.0.0.1:39101"}
    assert servers["prodready-backup-blue"]["admin_state"] == "ready"


def test_not_up_message_names_server_status_and_check():
    server = dict(srv(status="DOWN"), check_status="L4CON", last_chk="Connection refused",
                  check_desc="Layer4 connection problem")
    msg = _haproxy.not_up_message("be_app", {"green": server}, 3.04, {"green": "maint"})
    assert msg.startswith("haproxy: server be_app/green did not become UP within 3.0 s: status DOWN, "
                          "check L4CON (Connection refused, Layer4 connection problem)")
    assert "put back to maint" in msg


def test_not_up_message_of_a_fleet_names_each_server_not_up():
    down = dict(srv(status="DOWN"), check_status="L7STS", check_code="503", last_chk="Service Unavailable")
    msg = _haproxy.not_up_message("be", {"h2-green": down}, 2.0,
                                  {"h1-green": "maint", "h2-green": "maint", "h3-green": "drain"})
    assert msg.startswith("haproxy: 1 of 3 servers did not become UP within 2.0 s: be/h2-green status "
                          "DOWN, check L7STS code 503 (Service Unavailable)")
    assert "h1-green" not in msg.split(";")[0]
    assert "put back to its previous state (h1-green maint, h2-green maint, h3-green drain)" in msg


def test_render_and_read_upstream():
    text = _haproxy.render_upstream("app_live", "127.0.0.1:8001", 16)
    assert text == "upstream app_live {\n    server 127.0.0.1:8001;\n    keepalive 16;\n}\n"
    assert _haproxy.upstream_address(text) == "127.0.0.1:8001"
    assert _haproxy.upstream_address("") is None
    assert _haproxy.color_of("127.0.0.1:8001", {"blue": "127.0.0.1:8001"}) == "blue"
    assert _haproxy.color_of("127.0.0.1:9", {"blue": "127.0.0.1:8001"}) is None


@pytest.mark.parametrize("address, ok", [
    ("127.0.0.1:8001", True), ("unix:/run/app.sock", True), ("not a host", True),
    ("1.2.3.4:80; } server { listen 80", False), ("a\nb", False), ("", False),
])
def test_check_nginx_address(address, ok):
    if ok:
        _haproxy.check_nginx_address("blue", address)
    else:
        with pytest.raises(ProdreadyError):
            _haproxy.check_nginx_address("blue", address)
