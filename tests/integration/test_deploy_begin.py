# -*- coding: utf-8 -*-
"""deploy_begin through real ansible-playbook: the host model on disk, the deploy lock, and the
live color's version asked from a real HTTP server (tests/integration/health_server.py)."""

import json
import os
import socket
import stat
import time

import pytest
import yaml

from health_server import HealthServer
from helpers import run_module

from ansible_collections.prodready.deploy.plugins.modules import deploy_begin
from ansible_collections.prodready.deploy.plugins.module_utils import _lockfile

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations",
                      "_stdout", "skipped", "exception"}


@pytest.fixture(scope="module")
def server():
    srv = HealthServer().start()
    yield srv
    srv.stop()


def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def begin(tmp_path, server, check=False, **overrides):
    """deploy_begin on app root tmp_path/app, blue = the health server, green = a closed port."""
    args = dict(app_root=str(tmp_path / "app"), backup_dir=str(tmp_path / "backups"), run_id="run-A",
                owner="alice@laptop", version="1.4.0", health_path="/fast",
                colors={"blue": {"port": server.port}, "green": {"port": closed_port()}})
    args.update(overrides)
    return run_module("deploy_begin", args, check=check)


def live(tmp_path, color, version):
    """A state.json saying `color` runs `version` (the app root made by a first run)."""
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "state.json").write_text(json.dumps(
        {"live_color": color, "live_version": version, "colors": {color: version}}))


def test_first_deploy_makes_the_host_model_takes_the_lock_and_starts_on_the_first_color(tmp_path, server):
    app = tmp_path / "app"
    result = begin(tmp_path, server, version="1.0.0")
    assert not result.get("failed"), result["_stdout"]
    assert set(result) - COMMON_RESULT_KEYS == set(yaml.safe_load(deploy_begin.RETURN))
    modes = {str(p): stat.S_IMODE(os.stat(str(p)).st_mode) for p in (
        app, app / "releases", app / "artifacts", app / "shared", tmp_path / "backups")}
    assert modes == {str(app): 0o755, str(app / "releases"): 0o755, str(app / "artifacts"): 0o755,
                     str(app / "shared"): 0o700, str(tmp_path / "backups"): 0o700}
    assert sorted(result["created"]) == sorted(modes) and result["changed"] is True
    assert result["locked"] is True and json.loads((app / "deploy.lock").read_text())["run_id"] == "run-A"
    assert (result["state_found"], result["live_color"], result["idle_color"], result["noop"]) == (
        False, None, "blue", False)
    assert result["plan"] == ("app nothing -> 1.0.0: start blue (port %d), gate it, switch haproxy to it "
                              "(nothing is live)" % server.port)


def test_a_second_run_while_the_lock_is_held_fails_naming_the_holder(tmp_path, server):
    assert begin(tmp_path, server)["locked"] is True
    other = begin(tmp_path, server, run_id="run-B", owner="bob@ci", lock_timeout=0.5)
    assert other["failed"] is True and other["locked"] is False
    assert other["msg"].startswith("deploy lock %s is held by alice@laptop (run run-A) since "
                                   % (tmp_path / "app" / "deploy.lock")), other["msg"]
    assert other["holder"]["run_id"] == "run-A"
    assert json.loads((tmp_path / "app" / "deploy.lock").read_text())["owner"] == "alice@laptop"


def test_a_stale_lock_is_broken_only_with_break_stale(tmp_path, server):
    (tmp_path / "app").mkdir()
    dead = _lockfile.make_record("bob@ci", "run-dead", time.time() - 600, "web1", 1)
    (tmp_path / "app" / "deploy.lock").write_bytes(_lockfile.render_record(dead))
    refused = begin(tmp_path, server, stale_after=300)
    assert refused["failed"] and "is stale" in refused["msg"] and "break_stale: true" in refused["msg"]
    broke = begin(tmp_path, server, stale_after=300, break_stale=True)
    assert broke["locked"] is True and broke["broke_stale"]["run_id"] == "run-dead"
    assert json.loads((tmp_path / "app" / "deploy.lock").read_text())["run_id"] == "run-A"


def test_a_lock_whose_controller_stopped_beating_is_taken_over_and_audited(tmp_path, server):
    """A run on another controller died: its lock is judged by its heartbeat, not its age."""
    (tmp_path / "app").mkdir()
    lock = tmp_path / "app" / "deploy.lock"
    silent = _lockfile.make_record("bob@ci", "run-silent", time.time() - 120, "web1", 1,
                                   {"host": "controller-2", "pid": 4242, "user": "bob"})
    lock.write_bytes(_lockfile.render_record(silent))
    os.utime(str(lock), (time.time() - 61, time.time() - 61))
    held = begin(tmp_path, server, heartbeat_timeout=300)
    assert held["failed"] and "controller controller-2 pid 4242, last heartbeat 6" in held["msg"], held["msg"]
    taken = begin(tmp_path, server, heartbeat_timeout=60, audit_log=str(tmp_path / "audit.log"))
    assert taken["locked"] is True and taken["broke_stale"]["run_id"] == "run-silent", taken
    assert "is silent: its last heartbeat was" in taken["broke_stale"]["takeover"]
    assert any("taken over from bob@ci (run run-silent)" in w for w in taken["warnings"])
    audit = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert audit[-1]["action"] == "lock_takeover" and "more than heartbeat_timeout=60 s" in audit[-1]["reason"]
    assert json.loads(lock.read_text())["run_id"] == "run-A"


def test_the_live_color_serving_the_version_is_a_noop(tmp_path, server):
    live(tmp_path, "blue", "1.4.0")
    result = begin(tmp_path, server)
    assert (result["noop"], result["live_color"], result["served_version"], result["served_status"]) == (
        True, "blue", "1.4.0", 200)
    assert result["probe_error"] is None and result["state"]["colors"] == {"blue": "1.4.0"}
    assert result["plan"] == "app 1.4.0 -> 1.4.0: already live on blue, which serves it: nothing to do"


def test_the_live_color_serving_another_version_is_no_noop(tmp_path, server):
    live(tmp_path, "blue", "1.4.0")
    result = begin(tmp_path, server, health_path="/old-version")
    assert (result["noop"], result["served_version"], result["idle_color"]) == (False, "1.3.0", "green")
    assert result["plan"].endswith("gate it, switch haproxy from blue; observed: blue serves 1.3.0, not 1.4.0 "
                                   "as state.json says")


def test_an_upgrade_starts_the_other_color(tmp_path, server):
    live(tmp_path, "blue", "1.4.0")
    result = begin(tmp_path, server, version="1.5.0", router="nginx", name="shop")
    assert (result["noop"], result["served_version"], result["idle_color"]) == (False, "1.4.0", "green")
    assert result["plan"] == "shop 1.4.0 -> 1.5.0: start green (port %d), gate it, switch nginx from blue" % (
        result["idle_port"])


@pytest.mark.parametrize("version_path", ["", "version"])
def test_a_plain_text_version_endpoint(tmp_path, server, version_path):
    live(tmp_path, "blue", "1.3.2")
    result = begin(tmp_path, server, version="1.3.2", health_path="/version", version_path=version_path)
    assert (result["noop"], result["served_version"]) == (True, "1.3.2"), result


def test_a_nested_json_version_and_an_unhealthy_answer(tmp_path, server):
    live(tmp_path, "blue", "2.0.1")
    nested = begin(tmp_path, server, version="2.0.1", health_path="/meta", version_path="build.info.version")
    assert (nested["noop"], nested["served_version"]) == (True, "2.0.1")
    down = begin(tmp_path, server, version="2.0.1", health_path="/down")
    assert (down["noop"], down["served_version"], down["served_status"]) == (False, None, 503)
    assert down["probe_error"] == "GET http://127.0.0.1:%d/down: status 503" % server.port


def test_check_mode_creates_nothing_takes_no_lock_and_plans_the_same(tmp_path, server):
    predicted = begin(tmp_path, server, check=True, version="1.0.0")
    assert not predicted.get("failed"), predicted["_stdout"]
    assert predicted["changed"] is True and predicted["locked"] is False and len(predicted["created"]) == 5
    assert os.listdir(str(tmp_path)) == []
    real = begin(tmp_path, server, version="1.0.0")
    assert (predicted["plan"], predicted["idle_color"], sorted(predicted["created"])) == (
        real["plan"], real["idle_color"], sorted(real["created"]))

    live(tmp_path, "blue", "1.4.0")
    checked = begin(tmp_path, server, check=True, run_id="run-B")
    assert checked["changed"] is False and checked["noop"] is True and checked["locked"] is False
    assert checked["holder"]["run_id"] == "run-A"  # the real run's lock, left alone
    assert json.loads((tmp_path / "app" / "deploy.lock").read_text())["run_id"] == "run-A"
