# -*- coding: utf-8 -*-
"""The start of a deploy, pure: checks of the request, the host model's directories, the idle
color, the no-op rule and the plan sentence."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _deploy_plan as dp
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

TWO = {"blue": 8101, "green": 8102}


@pytest.mark.parametrize("version", ["1.0.0", "2", "1.4.0rc1", "1.0.0+build.7", "v1_2-3", "A"])
def test_release_versions_are_accepted(version):
    dp.check_version(version)


@pytest.mark.parametrize("version", ["", ".1", "-1", "1.0 0", "1/0", "../x", "1.0\n", "é1"])
def test_other_versions_are_refused_naming_the_option(version):
    with pytest.raises(ProdreadyError, match=r"^version: .* is not a release version"):
        dp.check_version(version)


@pytest.mark.parametrize("colors, strategy, ports", [
    ({"blue": {"port": 8101}, "green": {"port": 8102}}, "blue_green", TWO),
    ({"blue": {"port": "8101"}, "green": {"port": 8102}}, "blue_green", TWO),  # a templated port is text
    ({"blue": {"port": 8101}}, "restart", {"blue": 8101}),
])
def test_color_ports(colors, strategy, ports):
    assert dp.color_ports(colors, strategy) == ports


@pytest.mark.parametrize("colors, strategy, message", [
    ([8101, 8102], "blue_green", "colors: must be a dict of color -> {port: N}, got [8101, 8102]"),
    ({"blue": {"port": 8101}}, "blue_green", "colors: strategy blue_green needs at least 2 colors with their ports, "
                                             "got 1 (blue)"),
    ({}, "restart", "colors: strategy restart needs at least 1 colors with their ports, got 0 (none)"),
    ({"blue": 8101, "green": {"port": 8102}}, "blue_green", "colors: blue needs {port: N} with N a number, got 8101"),
    ({"blue": {"port": "x"}, "green": {"port": 1}}, "blue_green", "colors: blue needs {port: N} with N a number"),
    ({"blue": {"port": True}, "green": {"port": 1}}, "blue_green", "colors: blue needs {port: N}"),
    ({"blue": {"port": -1}, "green": {"port": 1}}, "blue_green", "colors: the port of blue must be 1 to 65535, got -1"),
    ({"blue": {"port": "8101\n"}, "green": {"port": 1}}, "blue_green", "colors: blue needs {port: N}"),
    ({"blue": {"port": 70000}, "green": {"port": 1}}, "blue_green", "colors: the port of blue must be 1 to 65535, "
                                                                    "got 70000"),
    ({"blue": {"port": 1}, "gr een": {"port": 2}}, "blue_green", "colors: 'gr een' is not a color name"),
    ({"blue": {"port": 1}, "green\n": {"port": 2}}, "blue_green", "colors: 'green\\n' is not a color name"),
    ({"blue": {"port": 1}, "green": {"port": 1}}, "blue_green", "colors: two colors share a port (blue 1, green 1)"),
])
def test_bad_colors_are_refused_naming_the_entry(colors, strategy, message):
    with pytest.raises(ProdreadyError) as caught:
        dp.color_ports(colors, strategy)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("value, mode", [("0755", 0o755), ("700", 0o700), ("02750", 0o2750), (0o750, 0o750),
                                         (493, 0o755)])
def test_modes(value, mode):
    assert dp.parse_mode(value, "directories[0]", "/x") == mode


@pytest.mark.parametrize("value", ["u=rwx", "0855", "75", True, None, 0o17777, "0o755", "0755\n"])
def test_bad_modes_are_refused_naming_the_entry(value):
    with pytest.raises(ProdreadyError, match=r"^directories\[0\]: the mode of /x must be octal like '0755', got "):
        dp.parse_mode(value, "directories[0]", "/x")


def test_host_model_directories():
    assert dp.wanted_directories("/srv/app", None, None) == [
        ("/srv/app", 0o755, "app_root"), ("/srv/app/releases", 0o755, "app_root"),
        ("/srv/app/artifacts", 0o755, "app_root"), ("/srv/app/shared", 0o700, "app_root"),
        ("/srv/app/backups", 0o700, "backup_dir")]
    assert dp.wanted_directories("/srv/app", "/var/backups/app", None)[-1] == ("/var/backups/app", 0o700, "backup_dir")


def test_given_directories_replace_the_host_model():
    assert dp.wanted_directories("/srv/app", None, [{"path": "/srv/app/", "mode": "0750"}]) == [
        ("/srv/app", 0o750, "directories")]
    assert dp.wanted_directories("/srv/app", None, []) == []
    with pytest.raises(ProdreadyError, match=r"^directories\[1\].path: must be an absolute path, got 'rel'"):
        dp.wanted_directories("/srv/app", None, [{"path": "/a", "mode": "0755"}, {"path": "rel", "mode": "0755"}])


@pytest.mark.parametrize("names, live, strategy, restart_color, idle", [
    (TWO, None, "blue_green", "", "blue"),           # first deploy: the first sorted color
    (["green", "blue"], None, "blue_green", "", "blue"),
    (TWO, "blue", "blue_green", "", "green"),        # the other one
    (TWO, "green", "blue_green", "", "blue"),
    (TWO, "red", "blue_green", "", "blue"),          # a live color that is not configured: as a first deploy
    (TWO, "blue", "blue_green", "green", "green"),   # restart_color means nothing to blue_green
    (TWO, "green", "blue_green", "green", "blue"),
    ({"a": 1, "b": 2, "c": 3}, "a", "blue_green", "", "b"),
    (TWO, "green", "restart", "", "green"),          # restart in place: the live color
    (TWO, None, "restart", "", "blue"),
    (TWO, "green", "restart", "blue", "blue"),       # an explicit color wins
    ({"solo": 9000}, None, "restart", "", "solo"),
    ({"solo": 9000}, "red", "restart", "", "solo"),
])
def test_idle_color(names, live, strategy, restart_color, idle):
    assert dp.idle_color(names, live, strategy, restart_color) == idle


@pytest.mark.parametrize("state_version, version, served, noop", [
    ("1.1.0", "1.1.0", "1.1.0", True),
    ("1.1.0", "1.1.0", "1.0.0", False),   # state.json says so, the color does not: deploy
    ("1.1.0", "1.1.0", None, False),      # the color does not answer
    ("1.0.0", "1.1.0", "1.1.0", False),   # serves it, but the state was never finalized
    ("1.0.0", "1.1.0", "1.0.0", False),   # an upgrade
    (None, "1.1.0", None, False),         # first deploy
    (None, "", None, False),
])
def test_noop(state_version, version, served, noop):
    assert dp.is_noop(state_version, version, served) is noop


@pytest.mark.parametrize("args, text", [
    (("app", "1.1.0", "blue", "1.0.0", "green", 8102, False, "blue_green", "haproxy"),
     "app 1.0.0 -> 1.1.0: start green (port 8102), gate it, switch haproxy from blue"),
    (("shop", "1.0.0", None, None, "blue", 8101, False, "blue_green", "nginx"),
     "shop nothing -> 1.0.0: start blue (port 8101), gate it, switch nginx to it (nothing is live)"),
    (("app", "1.1.0", "blue", "1.1.0", "green", 8102, True, "blue_green", "haproxy"),
     "app 1.1.0 -> 1.1.0: already live on blue, which serves it: nothing to do"),
    (("app", "1.1.0", "blue", "1.0.0", "green", 8102, False, "blue_green", "none"),
     "app 1.0.0 -> 1.1.0: start green (port 8102), gate it on its own port (no router to switch)"),
    (("app", "1.1.0", "blue", "1.0.0", "blue", 8101, False, "restart", "haproxy"),
     "app 1.0.0 -> 1.1.0: restart in place on blue (port 8101): maintenance on, drain, stop 1.0.0, migrate, "
     "start 1.1.0, gate it, maintenance off"),
    (("app", "1.0.0", None, None, "blue", 8101, False, "restart", "haproxy"),
     "app nothing -> 1.0.0: restart in place on blue (port 8101): migrate, start 1.0.0, gate it"),
    (("app", "1.1.0", "blue", "1.1.0", "green", 8102, False, "blue_green", "haproxy",
      "blue serves 1.0.0, not 1.1.0 as state.json says"),
     "app 1.1.0 -> 1.1.0: start green (port 8102), gate it, switch haproxy from blue; observed: blue serves 1.0.0, "
     "not 1.1.0 as state.json says"),
])
def test_plan_text(args, text):
    assert dp.plan_text(*args) == text


@pytest.mark.parametrize("live, state_version, served, error, text", [
    ("blue", "1.0.0", "1.0.0", None, ""),
    (None, None, None, None, ""),
    ("blue", "1.0.0", "0.9.0", None, "blue serves 0.9.0, not 1.0.0 as state.json says"),
    ("blue", None, "0.9.0", None, "blue serves 0.9.0, not nothing as state.json says"),
    ("blue", "1.0.0", None, "GET http://127.0.0.1:8101/health: connection refused",
     "blue gave no version (GET http://127.0.0.1:8101/health: connection refused)"),
])
def test_observed_text(live, state_version, served, error, text):
    assert dp.observed_text(live, state_version, served, error) == text


@pytest.mark.parametrize("history, version, live, keep, pruned", [
    (["1.0", "1.1", "1.2", "1.3"], "1.4", "1.3", 2, ["1.0", "1.1", "1.2"]),  # keep 1.3 (live) and 1.4 (new)
    (["1.0", "1.1", "1.2", "1.3"], "1.4", "1.3", 5, []),
    (["1.0", "1.1", "1.2", "1.3"], "1.4", "1.3", 0, []),  # 0 keeps everything
    (["1.0", "1.1", "1.2", "1.3"], "1.1", "1.3", 2, ["1.0", "1.2"]),  # a redeploy of 1.1 makes it the newest
    (["1.0", "1.1", "1.2"], "1.3", "1.0", 1, ["1.1", "1.2"]),  # the live one stays however old
    (["../x", "1.0", 3, "1.1"], "1.2", "1.1", 1, ["1.0"]),  # not a version: never touched
    (None, "1.0", None, 1, []),
])
def test_releases_to_prune(history, version, live, keep, pruned):
    assert dp.releases_to_prune(history, version, live, keep) == pruned
