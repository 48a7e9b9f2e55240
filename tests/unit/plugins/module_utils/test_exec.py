# -*- coding: utf-8 -*-
"""The pure half of release_exec: which release, the command's environment, output tails."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _exec
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError


@pytest.mark.parametrize("names, expected", [
    (["1.10.0", "1.9.0", "1.2.0"], ["1.2.0", "1.9.0", "1.10.0"]),
    ([".1.1.0.build-x", "1.0.0", "not a release"], ["1.0.0"]),
    ([], []),
])
def test_releases_present_are_sorted_as_versions_without_leftovers(names, expected):
    assert _exec.releases_present(names) == expected


@pytest.mark.parametrize("version, state, expected", [
    ("1.0.0", {"live_version": "2.0.0"}, "1.0.0"),
    ("", {"live_version": "2.0.0"}, "2.0.0"),
])
def test_choose_version(version, state, expected):
    assert _exec.choose_version(version, state, "/srv/app/state.json") == expected


@pytest.mark.parametrize("version, state, message", [
    ("", {}, "version: none given, and /srv/app/state.json records no live version"),
    ("../etc", {}, "version: '../etc' is not a release name"),
])
def test_choose_version_refuses(version, state, message):
    with pytest.raises(ProdreadyError) as err:
        _exec.choose_version(version, state, "/srv/app/state.json")
    assert err.value.msg.startswith(message)


def test_unknown_release_lists_the_releases_present():
    assert _exec.unknown_release_message("9.9", "/r/9.9", ["1.0", "1.1"]) == (
        "version: 9.9 is not a release on this host: no directory /r/9.9 (releases present: 1.0, 1.1)")
    assert _exec.unknown_release_message("9.9", "/r/9.9", []).endswith("(releases present: none)")


def test_the_environment_is_the_hosts_then_the_apps_then_the_env_file_then_the_venv():
    env = _exec.command_environment({"PATH": "/usr/bin", "PYTHONHOME": "/x", "KEEP": "1", "A": "host"},
                                    {"A": "process", "B": 2}, {"B": "file", "PATH": "/evil"}, "/r/1.0/.venv")
    assert env == {"PATH": "/r/1.0/.venv/bin:/evil", "KEEP": "1", "A": "process", "B": "file",
                   "VIRTUAL_ENV": "/r/1.0/.venv"}


@pytest.mark.parametrize("data, limit, expected", [
    (b"a\nb\n", 10, ("a\nb\n", False)),
    (b"line1\nline2\nline3\n", 8, ("line3\n", True)),
    (b"x" * 20, 5, ("xxxxx", True)),
    (b"\xff\n", 10, (u"\ufffd\n", False)),
])
def test_tail_text(data, limit, expected):
    assert _exec.tail_text(data, limit) == expected


@pytest.mark.parametrize("text, count, expected", [
    ("a\nb\nc\n", 2, ["b", "c"]), ("", 5, []), ("a", 0, []), ("a\n\nb", 5, ["a", "", "b"]),
])
def test_last_lines(text, count, expected):
    assert _exec.last_lines(text, count) == expected


@pytest.mark.parametrize("rc, timed_out, lines, expected", [
    (3, False, ["boom"], "the command exited with rc 3: boom"),
    (1, False, [], "the command exited with rc 1 (nothing on stderr)"),
    (-15, True, ["a", "b"], "the command timed out after 2 s (killed, rc -15): a | b"),
])
def test_failure_message(rc, timed_out, lines, expected):
    assert _exec.failure_message(rc, timed_out, 2, lines) == expected


def test_audit_event_never_holds_an_environment():
    event = _exec.audit_event("alembic current", "1.0", "app", 0, 0.5, False)
    assert event == {"action": "exec", "command": "alembic current", "version": "1.0", "run_as": "app", "rc": 0,
                     "duration_s": 0.5, "timed_out": False, "result": "success"}
    assert _exec.audit_event("x", "1.0", "app", 0, 0.5, True)["result"] == "failed"
