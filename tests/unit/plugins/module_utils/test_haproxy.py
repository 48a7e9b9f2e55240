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
    assert _haproxy.plan_backups(backups, None) == (["prodready-backup-blue", "prodready-backup-red"], False, False)
    assert _haproxy.plan_backups(backups, "blue") == (["prodready-backup-red"], False, False)
    assert _haproxy.plan_backups(backups, "red") == (["prodready-backup-blue"], False, True)
    assert _haproxy.plan_backups(backups, "green") == (sorted(backups), True, False)
    assert _haproxy.plan_backups({}, "green") == ([], True, False)


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
                  check_desc="Layer4 connection problem", restore_to="maint")
    msg = _haproxy.not_up_message("be_app", "green", server, 3.04)
    assert msg.startswith("haproxy: server be_app/green did not become UP within 3.0 s")
    assert "status DOWN" in msg and "L4CON" in msg and "Connection refused" in msg
    assert "put back to maint" in msg


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
