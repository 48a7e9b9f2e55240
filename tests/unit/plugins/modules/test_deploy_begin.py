# -*- coding: utf-8 -*-
"""Unit tests of the deploy_begin module: docs agree with the code, options are refused before
anything is touched, the directories and their modes, the lock released after a failure. The
real HTTP answers and ansible-playbook runs are tests/integration/test_deploy_begin.py's."""

import json
import os
import socket
import stat

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.prodready.deploy.plugins.modules import deploy_begin

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations"}
COLORS = {"blue": {"port": 8101}, "green": {"port": 8102}}


def run_main(capsys, args, check=False):
    with patch_module_args(dict(args, _ansible_check_mode=check)):
        with pytest.raises(SystemExit):
            deploy_begin.main()
    return json.loads(capsys.readouterr().out)


def closed_port():
    """A port nothing listens on (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def mode_of(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_documented_options_match_argument_spec():
    doc = yaml.safe_load(deploy_begin.DOCUMENTATION)

    def compare(options, spec):
        assert set(options) == set(spec)
        for name, opt in spec.items():
            assert options[name].get("type", "str") == opt.get("type", "str"), name
            assert options[name].get("default") == opt.get("default"), name
            assert options[name].get("choices") == opt.get("choices"), name
            assert options[name].get("elements") == opt.get("elements"), name
            assert bool(options[name].get("required", False)) == bool(opt.get("required", False)), name
            if "options" in opt:
                compare(options[name]["suboptions"], opt["options"])

    compare(doc["options"], deploy_begin.argument_spec())
    for task in yaml.safe_load(deploy_begin.EXAMPLES):
        module_args = task.get("prodready.deploy.deploy_begin")
        assert module_args is None or set(module_args) <= set(doc["options"]), task["name"]


@pytest.mark.parametrize("args, message", [
    (dict(version="1.0 0"), "version: '1.0 0' is not a release version"),
    (dict(version=""), "version: '' is not a release version"),
    (dict(lock_timeout=-1), "lock_timeout: must be 0 or more, got -1.0"),
    (dict(stale_after=0), "stale_after: must be more than 0 seconds, got 0.0"),
    (dict(probe_timeout=0), "probe_timeout: must be more than 0 seconds, got 0.0"),
    (dict(run_id=" "), "run_id: must not be empty"),
    (dict(keep_releases=-1), "keep_releases: must be 0 or more, got -1"),
    (dict(app_root="srv/app"), "app_root: must be an absolute path, got 'srv/app'"),
    (dict(colors={"blue": {"port": 8101}}), "colors: strategy blue_green needs at least 2 colors"),
    (dict(colors={"blue": {"port": "x"}, "green": {"port": 1}}), "colors: blue needs {port: N} with N a number"),
    (dict(strategy="restart", restart_color="red"), "restart_color: 'red' is not one of the colors (blue, green)"),
    (dict(bind_host="127.0.0.1/x"), "bind_host: '127.0.0.1/x' is not a host name or an address"),
    (dict(health_path="health"), "health_path: must be a URL path starting with /"),
    (dict(version_path="a..b"), "version_path: 'a..b' is not a dotted JSON path"),
    (dict(directories=[{"path": "/x", "mode": "u=rwx"}]), "directories[0]: the mode of /x must be octal like"),
    (dict(directories=[], backup_dir="/b"), "parameters are mutually exclusive: directories|backup_dir"),
])
def test_bad_options_are_refused_before_anything_is_touched(capsys, tmp_path, args, message):
    base = dict(app_root=str(tmp_path / "app"), run_id="r1", version="1.1.0", colors=COLORS)
    result = run_main(capsys, dict(base, **args))
    assert result["failed"] is True
    assert result["msg"].startswith(message), result["msg"]
    assert os.listdir(str(tmp_path)) == []


def test_first_deploy_makes_the_host_model_and_takes_the_lock(capsys, tmp_path):
    root = tmp_path / "srv" / "app"
    args = dict(app_root=str(root), backup_dir=str(tmp_path / "backups" / "app"), run_id="r1", version="1.0.0",
                colors=COLORS, owner="alice@laptop")
    result = run_main(capsys, args)
    assert not result.get("failed"), result
    assert set(result) - COMMON_RESULT_KEYS == set(yaml.safe_load(deploy_begin.RETURN))
    assert result["created"] == [str(tmp_path / "srv"), str(root), str(root / "releases"), str(root / "artifacts"),
                                 str(root / "shared"), str(tmp_path / "backups"), str(tmp_path / "backups" / "app")]
    assert [mode_of(p) for p in result["created"]] == [0o755, 0o755, 0o755, 0o755, 0o700, 0o700, 0o700]
    assert result["changed"] is True and result["locked"] is True
    assert json.loads((root / "deploy.lock").read_text())["owner"] == "alice@laptop"
    assert (result["state"], result["state_found"], result["live_color"], result["served_version"]) == ({}, False,
                                                                                                        None, None)
    assert (result["idle_color"], result["idle_port"], result["noop"]) == ("blue", 8101, False)
    assert result["plan"] == "app nothing -> 1.0.0: start blue (port 8101), gate it, switch haproxy to it (nothing is live)"

    # Again, same run: nothing to create, the lock is already this run's.
    again = run_main(capsys, args)
    assert again["changed"] is False and again["created"] == [] and again["locked"] is True


def test_modes_are_set_on_existing_directories(capsys, tmp_path):
    shared = tmp_path / "app" / "shared"
    shared.mkdir(parents=True)
    shared.chmod(0o755)
    args = dict(app_root=str(tmp_path / "app"), run_id="r1", version="1.0.0", colors=COLORS)
    predicted = run_main(capsys, args, check=True)
    assert predicted["modes_fixed"] == [str(shared)] and predicted["changed"] is True
    assert mode_of(shared) == 0o755
    result = run_main(capsys, args)
    assert result["modes_fixed"] == [str(shared)] and mode_of(shared) == 0o700


def test_given_directories_replace_the_host_model(capsys, tmp_path):
    args = dict(app_root=str(tmp_path), run_id="r1", version="1.0.0", colors=COLORS,
                directories=[{"path": str(tmp_path / "rel" / "a"), "mode": 0o750}])
    result = run_main(capsys, args)
    assert result["created"] == [str(tmp_path / "rel"), str(tmp_path / "rel" / "a")]
    assert sorted(os.listdir(str(tmp_path))) == ["deploy.lock", "rel"] and mode_of(tmp_path / "rel") == 0o750


def test_a_file_in_the_way_is_named(capsys, tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "shared").write_text("not a directory")
    result = run_main(capsys, dict(app_root=str(tmp_path / "app"), run_id="r1", version="1.0.0", colors=COLORS))
    in_the_way = tmp_path / "app" / "shared"
    assert result["failed"] and result["msg"] == "app_root: %s exists and is not a directory" % in_the_way
    assert result["locked"] is False and not (tmp_path / "app" / "deploy.lock").exists()


def test_a_corrupt_state_releases_the_lock_it_took(capsys, tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    result = run_main(capsys, dict(app_root=str(tmp_path), run_id="r1", version="1.0.0", colors=COLORS,
                                   directories=[]))
    assert result["failed"] and result["msg"].startswith("state_path: %s is not valid JSON" % (tmp_path / "state.json"))
    assert result["locked"] is False and result["holder"] is None
    assert not (tmp_path / "deploy.lock").exists()


def test_a_lock_this_run_held_before_is_kept_after_a_failure(capsys, tmp_path):
    args = dict(app_root=str(tmp_path), run_id="r1", version="1.0.0", colors=COLORS, directories=[])
    assert run_main(capsys, args)["locked"] is True
    (tmp_path / "state.json").write_text("[]")
    result = run_main(capsys, args)
    assert result["failed"] and "holds a JSON list, not an object" in result["msg"]
    assert json.loads((tmp_path / "deploy.lock").read_text())["run_id"] == "r1"


def test_a_live_color_that_does_not_answer_is_said(capsys, tmp_path):
    port = closed_port()
    (tmp_path / "state.json").write_text(json.dumps({"live_color": "blue", "live_version": "1.1.0"}))
    colors = {"blue": {"port": port}, "green": {"port": 8102}}
    result = run_main(capsys, dict(app_root=str(tmp_path), run_id="r1", version="1.1.0", colors=colors,
                                   directories=[], probe_timeout=0.5))
    assert result["noop"] is False and result["served_version"] is None and result["served_status"] is None
    assert result["probe_error"] == "GET http://127.0.0.1:%d/health: connection refused" % port
    assert result["plan"] == ("app 1.1.0 -> 1.1.0: start green (port 8102), gate it, switch haproxy from blue; observed: "
                              "blue gave no version (GET http://127.0.0.1:%d/health: connection refused)" % port)


def test_a_live_color_that_is_not_configured_is_not_asked(capsys, tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"live_color": "red", "live_version": "1.0.0"}))
    result = run_main(capsys, dict(app_root=str(tmp_path), run_id="r1", version="1.1.0", colors=COLORS,
                                   directories=[]))
    assert result["idle_color"] == "blue" and result["served_version"] is None
    assert result["probe_error"] == "the live color 'red' of %s is not one of the colors (blue, green)" % (
        tmp_path / "state.json")


def test_old_releases_beyond_keep_releases_are_pruned_under_the_lock_but_not_the_live_one(capsys, tmp_path):
    releases = tmp_path / "releases"
    for version in ("0.9", "1.0", "1.1", "1.2", "notes"):
        (releases / version / ".venv").mkdir(parents=True)
    (tmp_path / "state.json").write_text(json.dumps({"live_color": "red", "live_version": "0.9",
                                                     "history": ["0.9", "1.0", "1.1", "1.2"]}))
    args = dict(app_root=str(tmp_path), run_id="r1", version="1.3", colors=COLORS, directories=[], keep_releases=2)
    would = run_main(capsys, args, check=True)
    assert would["pruned"] == ["1.0", "1.1"] and (releases / "1.0").is_dir()  # check mode: said, not done
    result = run_main(capsys, args)
    # Kept: the last two of the history with 1.3 as its newest (1.2, 1.3), the live 0.9, and
    # what the history never named.
    assert result["pruned"] == ["1.0", "1.1"] and result["changed"] is True
    assert sorted(os.listdir(str(releases))) == ["0.9", "1.2", "notes"]
    assert run_main(capsys, args)["pruned"] == []  # nothing left to prune


def test_check_mode_creates_nothing_and_takes_no_lock(capsys, tmp_path):
    root = tmp_path / "app"
    result = run_main(capsys, dict(app_root=str(root), run_id="r1", version="1.0.0", colors=COLORS), check=True)
    assert result["changed"] is True and result["locked"] is False and result["holder"] is None
    assert result["created"] == [str(root)] + [str(root / d) for d in ("releases", "artifacts", "shared", "backups")]
    assert os.listdir(str(tmp_path)) == []
    assert result["idle_color"] == "blue" and result["plan"].startswith("app nothing -> 1.0.0: start blue")


def test_check_mode_warns_about_a_lock_another_run_holds(capsys, tmp_path, monkeypatch):
    # Once a controller-side test of the session has imported Ansible's controller code,
    # module warnings go to its display instead of the result: run as a module would.
    from ansible.module_utils import _internal  # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(_internal, "is_controller", False)
    args = dict(app_root=str(tmp_path), run_id="r1", version="1.0.0", colors=COLORS, directories=[], owner="alice")
    assert run_main(capsys, args)["locked"] is True
    result = run_main(capsys, dict(args, run_id="r2"), check=True)
    assert not result.get("failed") and result["locked"] is False and result["holder"]["run_id"] == "r1"
    assert "deploy lock %s is held by alice (run r1)" % (tmp_path / "deploy.lock") in json.dumps(result["warnings"])


def test_a_router_on_another_host_that_serves_both_colors_gets_a_repair_plan(capsys, tmp_path):
    """router_observed (read on the router host): both of this host's servers take traffic and
    an interrupted run's backup server is left; the state's live color keeps the traffic, the
    plan says what the role sends the router (nothing here reaches it)."""
    port = closed_port()
    (tmp_path / "state.json").write_text(json.dumps({"live_color": "blue", "live_version": "1.0.0"}))
    up = {"admin_state": "ready", "operational_state": "running", "status": "UP"}
    observed = {"servers_state": {"h1-blue": up, "h1-green": up, "prodready-backup-h1-blue": up, "h2-green": up}}
    result = run_main(capsys, dict(app_root=str(tmp_path), run_id="r2", version="1.1.0",
                                   colors={"blue": {"port": port}, "green": {"port": port + 1}}, directories=[],
                                   probe_timeout=0.5, router_observed=observed,
                                   router_names={"blue": "h1-blue", "green": "h1-green"}))
    assert result["router_repair"] == "blue" and result["router_repaired"] is False
    assert result["router_repair_plan"] == {"live": "h1-blue", "servers": ["h1-blue", "h1-green"]}
    assert result["idle_color"] == "green"  # never the color that keeps the traffic
    assert "the router sends traffic to blue and green at once" in result["reconciled"]
    assert result["observed"]["backup_servers"] == ["prodready-backup-h1-blue"]
    audit = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert audit[-1]["action"] == "reconcile" and audit[-1]["repair"] == "blue"
