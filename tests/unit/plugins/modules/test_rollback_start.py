# -*- coding: utf-8 -*-
"""Unit tests of the rollback_start module: docs agree with the code, the plan, the lock, and a
real HTTP answer for the probe (the haproxy switch itself is router_switch's, tested there and
end to end by tests/integration/test_rollback.py)."""

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.prodready.deploy.plugins.modules import rollback_start

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations"}


def run_main(capsys, args, check=False):
    with patch_module_args(dict(args, _ansible_check_mode=check)):
        with pytest.raises(SystemExit):
            rollback_start.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def version_server():
    """A color that answers /health with {"version": <server.version>}."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"status": "healthy", "version": self.server.version}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.version = "1.0.0"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_documented_options_match_argument_spec():
    doc = yaml.safe_load(rollback_start.DOCUMENTATION)
    options = doc["options"]
    spec = rollback_start.argument_spec()
    assert set(options) == set(spec)
    for name, opt in spec.items():
        assert options[name].get("type", "str") == opt.get("type", "str"), name
        assert options[name].get("default") == opt.get("default"), name
        assert options[name].get("choices") == opt.get("choices"), name
        assert bool(options[name].get("required", False)) == bool(opt.get("required", False)), name
        assert options[name].get("aliases") == opt.get("aliases"), name
    for task in yaml.safe_load(rollback_start.EXAMPLES):
        module_args = task.get("prodready.deploy.rollback_start")
        assert module_args is None or set(module_args) <= set(options), task["name"]


@pytest.mark.parametrize("state, to, expected", [
    # the previous version, on the idle color that ran it
    ({"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0",
      "colors": {"blue": "1.0.0", "green": "1.1.0"}}, "", ("1.0.0", "blue", False)),
    # a version no color ran: the first idle color
    ({"live_color": "blue", "live_version": "1.1.0", "previous_version": "1.0.0", "colors": {"blue": "1.1.0"}},
     "0.9.0", ("0.9.0", "green", False)),
    # already live
    ({"live_color": "blue", "live_version": "1.0.0", "previous_version": "0.9.0"}, "1.0.0", ("1.0.0", "blue", True)),
    # nothing recorded to go back to
    ({"live_color": "blue", "live_version": "1.0.0"}, "", ("", "", False)),
    ({}, "", ("", "", False)),
])
def test_plan(state, to, expected):
    assert rollback_start.plan(state, to, {"blue": 8101, "green": 8102}) == expected


LIVE = {"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0",
        "colors": {"blue": "1.0.0", "green": "1.1.0"}}


@pytest.mark.parametrize("state, to, expected", [
    # a chosen backup without rollback_to: the live version on the idle color (started there
    # before traffic stops), not a noop
    (LIVE, "", ("1.1.0", "blue", False)),
    (LIVE, "1.1.0", ("1.1.0", "blue", False)),
    # with another version: the rollback as without it
    (LIVE, "1.0.0", ("1.0.0", "blue", False)),
    # nothing live: nothing to restore under
    ({}, "", ("", "", False)),
])
def test_plan_of_a_restore_in_place(state, to, expected):
    assert rollback_start.plan(state, to, {"blue": 8101, "green": 8102}, in_place=True) == expected


def test_a_restore_in_place_is_planned_without_probing_or_switching(capsys, tmp_path):
    (tmp_path / "state.json").write_text(json.dumps(LIVE))
    result = run_main(capsys, dict(state_path=str(tmp_path / "state.json"), lock_path=str(tmp_path / "deploy.lock"),
                                   run_id="r1", colors={"blue": {"port": 1}, "green": {"port": 2}}, switch=False,
                                   db_rollback="restore", restore_in_place=True), check=True)
    assert (result["target"], result["color"], result["noop"], result["in_place"]) == ("1.1.0", "blue", False, True)
    assert result["warm"] is False and result["probe_reason"] == "" and result["switched"] is False


def test_a_restore_in_place_needs_db_rollback_restore(capsys, tmp_path):
    result = run_main(capsys, dict(state_path=str(tmp_path / "state.json"), lock_path=str(tmp_path / "deploy.lock"),
                                   run_id="r1", colors={"blue": {"port": 1}, "green": {"port": 2}}, switch=False,
                                   restore_in_place=True))
    assert result["failed"] is True
    assert result["msg"] == "restore_in_place: needs db_rollback restore (a backup restored under the live release), " \
        "got db_rollback none"


@pytest.mark.parametrize("server, prefix, color", [
    ("h1-blue", "h1-", "blue"), ("blue", "", "blue"), (None, "h1-", None), ("other", "h1-", "other"),
])
def test_color_of(server, prefix, color):
    assert rollback_start.color_of(server, prefix) == color


@pytest.mark.parametrize("db, state, allowed", [
    ("none", {}, True),
    ("downgrade", {"db_revisions_before": ["0001"]}, True),
    ("downgrade", {"db_revisions_before": []}, False),  # the role refuses it: nothing may change
    ("restore", {"db_revisions_before": ["0001"], "backup_path": "/b"}, False),  # traffic stops first
])
def test_db_allows_switch(db, state, allowed):
    assert rollback_start.db_allows_switch(db, state) is allowed


@pytest.mark.parametrize("colors, message", [
    ({}, "colors: give at least two colors"),
    ({"blue": {"port": "x"}}, "colors: blue needs a port (a number), got {'port': 'x'}"),
    ({"blue": 8101}, "colors: blue needs a port"),
    ({"blue": {"port": 70000}}, "colors: the port of blue must be 1 to 65535, got 70000"),
])
def test_bad_colors_are_refused_naming_the_color(capsys, tmp_path, colors, message):
    result = run_main(capsys, dict(state_path=str(tmp_path / "state.json"), lock_path=str(tmp_path / "deploy.lock"),
                                   run_id="r1", colors=colors, switch=False))
    assert result["failed"] is True and message in result["msg"]


@pytest.mark.parametrize("args, message", [
    (dict(), "admin_socket, admin_address: one is required to switch haproxy (switch=true, router=haproxy)"),
    (dict(admin_socket="/x.sock", admin_address="lb1:9999"),
     "parameters are mutually exclusive: admin_socket|admin_address"),
    (dict(admin_address="lb1"), "admin_address: 'lb1' is not host:port"),
    (dict(admin_socket="/x.sock", backend="be;x"), "backend: 'be;x' is not a haproxy name"),
    (dict(admin_socket="/x.sock", server_prefix="h 1-"), "server_prefix: 'h 1-blue' is not a haproxy name"),
])
def test_switch_options_are_refused_naming_the_option(capsys, tmp_path, args, message):
    result = run_main(capsys, dict(state_path=str(tmp_path / "state.json"), lock_path=str(tmp_path / "deploy.lock"),
                                   run_id="r1", colors={"blue": {"port": 1}, "green": {"port": 2}}, **args))
    assert result["failed"] is True
    assert result["msg"].startswith(message)


def test_nothing_deployed_takes_no_lock(capsys, tmp_path):
    result = run_main(capsys, dict(state_path=str(tmp_path / "state.json"), lock_path=str(tmp_path / "deploy.lock"),
                                   run_id="r1", colors={"blue": {"port": 1}, "green": {"port": 2}}, switch=False))
    assert result["state_found"] is False and result["locked"] is False and result["changed"] is False
    assert not (tmp_path / "deploy.lock").exists()
    assert not set(result) - set(yaml.safe_load(rollback_start.RETURN)) - COMMON_RESULT_KEYS


def test_warm_color_found_under_the_lock_and_cold_one_told_why(capsys, tmp_path, version_server):
    port = version_server.server_address[1]
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0",
                                 "colors": {"blue": "1.0.0", "green": "1.1.0"}}))
    args = dict(state_path=str(state), lock_path=str(tmp_path / "deploy.lock"), run_id="r1", switch=False,
                colors={"blue": {"port": port}, "green": {"port": 1}})
    result = run_main(capsys, args)
    assert result["locked"] is True and result["holder"]["run_id"] == "r1"
    assert json.loads((tmp_path / "deploy.lock").read_text())["run_id"] == "r1"
    assert (result["target"], result["color"], result["noop"], result["warm"]) == ("1.0.0", "blue", False, True)
    assert result["switched"] is False and result["switch"] is None and result["probe_reason"] == ""

    version_server.version = "1.1.0"  # the idle color now runs something else: cold
    again = run_main(capsys, dict(args, run_id="r1"))  # the same run: the lock is re-entrant
    assert again["warm"] is False and "1.0.0" in again["probe_reason"] and "1.1.0" in again["probe_reason"]

    other = run_main(capsys, dict(args, run_id="r2"))  # another run: the lock is held
    assert other["failed"] is True and "is held by" in other["msg"]


def test_without_a_run_id_one_is_drawn_returned_and_holds_the_lock(capsys, tmp_path, version_server):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0"}))
    args = dict(state_path=str(state), lock_path=str(tmp_path / "deploy.lock"), switch=False,
                colors={"blue": {"port": version_server.server_address[1]}, "green": {"port": 1}})
    first = run_main(capsys, args)
    assert re.fullmatch(r"rollback-\d{8}T\d{6}-\d+", first["run_id"]), first["run_id"]
    assert json.loads((tmp_path / "deploy.lock").read_text())["run_id"] == first["run_id"]
    assert isinstance(first["started_at"], float) and first["started_at"] <= time.time()
    (tmp_path / "deploy.lock").unlink()
    second = run_main(capsys, args)
    assert second["run_id"] != first["run_id"]  # each run its own


def test_check_mode_probes_but_takes_no_lock(capsys, tmp_path, version_server):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0"}))
    result = run_main(capsys, dict(state_path=str(state), lock_path=str(tmp_path / "deploy.lock"), run_id="r1",
                                   colors={"blue": {"port": version_server.server_address[1]}, "green": {"port": 1}},
                                   admin_socket=str(tmp_path / "no.sock")), check=True)
    assert result["warm"] is True and result["locked"] is False and result["switched"] is False
    assert not (tmp_path / "deploy.lock").exists()


def test_a_failed_switch_releases_the_lock(capsys, tmp_path, version_server):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0"}))
    result = run_main(capsys, dict(state_path=str(state), lock_path=str(tmp_path / "deploy.lock"), run_id="r1",
                                   colors={"blue": {"port": version_server.server_address[1]}, "green": {"port": 1}},
                                   admin_socket=str(tmp_path / "no.sock")))
    assert result["failed"] is True
    assert "admin_socket: cannot run" in result["msg"] and "no.sock" in result["msg"]
    assert result["locked"] is False
    assert not (tmp_path / "deploy.lock").exists()


@pytest.mark.parametrize("option", ["db_rollback", "db"])
def test_no_switch_before_a_restore(capsys, tmp_path, version_server, option):
    """db_rollback (or its deprecated alias db) restore: the warm color is found and the lock
    taken, but traffic does not move (the admin socket, which does not exist, is never used)."""
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0"}))
    result = run_main(capsys, {"state_path": str(state), "lock_path": str(tmp_path / "deploy.lock"), "run_id": "r1",
                               "colors": {"blue": {"port": version_server.server_address[1]}, "green": {"port": 1}},
                               "admin_socket": str(tmp_path / "no.sock"), option: "restore"})
    assert not result.get("failed"), result.get("msg")
    assert result["warm"] is True and result["locked"] is True and result["switched"] is False


def test_a_bad_db_rollback_is_refused_naming_the_option(capsys, tmp_path):
    result = run_main(capsys, dict(state_path=str(tmp_path / "state.json"), lock_path=str(tmp_path / "deploy.lock"),
                                   run_id="r1", colors={"blue": {"port": 1}, "green": {"port": 2}}, switch=False,
                                   db="drop"))
    assert result["failed"] is True
    assert "db_rollback" in result["msg"] and "drop" in result["msg"]


@pytest.mark.parametrize("args, message", [
    (dict(to="1.0 rc"), "to: '1.0 rc' is not a version"),
    (dict(to="-1"), "to: '-1' is not a version"),
    (dict(db_rollback="restore", router="nginx"), "db_rollback: restore needs router haproxy"),
    (dict(db_rollback="downgrade", has_database=False), "db_rollback: downgrade needs the app's database"),
])
def test_a_bad_request_is_refused_before_the_lock_naming_the_option(capsys, tmp_path, args, message):
    (tmp_path / "state.json").write_text(json.dumps({"live_version": "1.1.0", "previous_version": "1.0.0"}))
    result = run_main(capsys, dict(state_path=str(tmp_path / "state.json"), lock_path=str(tmp_path / "deploy.lock"),
                                   run_id="r1", colors={"blue": {"port": 1}, "green": {"port": 2}}, switch=False,
                                   **args))
    assert result["failed"] is True and result["msg"].startswith(message), result["msg"]
    assert not (tmp_path / "deploy.lock").exists()


def test_a_failed_switch_over_tcp_names_the_admin_address(capsys, tmp_path, version_server):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0"}))
    result = run_main(capsys, dict(state_path=str(state), lock_path=str(tmp_path / "deploy.lock"), run_id="r1",
                                   colors={"blue": {"port": version_server.server_address[1]}, "green": {"port": 1}},
                                   admin_address="ipv4@127.0.0.1:%d" % port))
    assert result["failed"] is True and result["locked"] is False
    assert result["msg"].startswith("admin_address: cannot run 'show servers state be_app' on haproxy's admin "
                                    "address 127.0.0.1:%d: " % port)


PENDING = {"run_id": "rollback-killed", "to": "1.0.0", "color": "blue", "from_version": "1.1.0",
           "from_color": "green", "db": "downgrade", "started_at": "2026-12-07T10:00:00Z"}


@pytest.mark.parametrize("pending, to, run_id, taken_up", [
    (PENDING, "", "rollback-next", True),            # nothing asked: the killed rollback's target
    (PENDING, "1.0.0", "rollback-next", True),       # the same target asked
    (PENDING, "0.9.0", "rollback-next", False),      # another target: a rollback of its own
    (PENDING, "", "rollback-killed", False),         # this run's own intent
    (dict(PENDING, to=""), "", "rollback-next", False),
    ("garbage", "", "rollback-next", False),
    (None, "", "rollback-next", False),
])
def test_a_rollback_a_killed_run_left_is_taken_up_when_it_aims_the_same_way(pending, to, run_id, taken_up):
    state = {"live_version": "1.0.0", "pending_rollback": pending}
    assert (rollback_start.interrupted(state, to, run_id) is not None) == taken_up


def test_the_intent_keeps_what_the_first_run_rolled_back_from():
    state = {"live_version": "1.0.0", "live_color": "blue"}  # reconciled: the killed run's target serves
    taken_up = rollback_start.intent(PENDING, "rollback-next", "1.0.0", "blue", state, "downgrade", 0)
    assert (taken_up["from_version"], taken_up["from_color"], taken_up["run_id"]) == ("1.1.0", "green", "rollback-next")
    fresh = rollback_start.intent(None, "rollback-1", "1.0.0", "blue", {"live_version": "1.1.0", "live_color": "green"},
                                  "none", 0)
    assert fresh == {"run_id": "rollback-1", "to": "1.0.0", "color": "blue", "from_version": "1.1.0",
                     "from_color": "green", "db": "none", "started_at": "1970-01-01T00:00:00Z"}


def test_how_a_killed_rollback_is_taken_up_is_said():
    after = rollback_start.resume_text(PENDING, True, "1.0.0", "blue")
    assert after.startswith("a rollback 1.1.0 -> 1.0.0 (run rollback-killed, database downgrade) was interrupted after "
                            "its switch: 1.0.0 serves on blue; its remaining steps run again")
    assert rollback_start.resume_text(PENDING, False, "1.0.0", "blue").endswith("before its switch: it is run again")


def test_a_killed_restore_keeps_the_database_it_restored_into():
    killed = dict(PENDING, db="restore", restore_db="app_restore_20261207T190000Z")
    state = {"live_version": "1.1.0", "live_color": "green"}
    taken_up = rollback_start.intent(killed, "rollback-next", "1.0.0", "blue", state, "restore", 0)
    assert taken_up["restore_db"] == "app_restore_20261207T190000Z"
    # another database rollback this time: nothing to take up
    assert "restore_db" not in rollback_start.intent(killed, "rollback-next", "1.0.0", "blue", state, "none", 0)
    text = rollback_start.resume_text(killed, False, "1.0.0", "blue")
    assert text.endswith("before its switch: it is run again with the database it restored "
                         "(app_restore_20261207T190000Z), not restored again")
