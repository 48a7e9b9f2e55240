# -*- coding: utf-8 -*-
"""Unit tables for _statefile: parsing, merging, audit lines."""

import json

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _statefile
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError


@pytest.mark.parametrize("data, expected", [
    (None, {}),
    (b"", {}),
    (b"  \n", {}),
    (b"{}", {}),
    (b'{"live_color": "blue", "versions": {"blue": "1.0"}}',
     {"live_color": "blue", "versions": {"blue": "1.0"}}),
])
def test_parse_state_ok(data, expected):
    assert _statefile.parse_state(data, "/s/state.json") == expected


@pytest.mark.parametrize("data, fragment", [
    (b'{"live_color": "blue"', "not valid JSON"),
    (b"[1, 2]", "JSON list, not an object"),
    (b'"blue"', "JSON str, not an object"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_parse_state_refuses_corrupt(data, fragment):
    with pytest.raises(ProdreadyError) as err:
        _statefile.parse_state(data, "/s/state.json")
    assert "/s/state.json" in str(err.value)
    assert fragment in str(err.value)
    assert "refusing to overwrite" in str(err.value)


@pytest.mark.parametrize("state, update, expected, changed", [
    ({}, {}, {}, False),
    ({"a": 1}, {"a": 1}, {"a": 1}, False),
    ({"a": 1}, {"a": 2}, {"a": 2}, True),
    ({"a": 1}, {"b": None}, {"a": 1}, False),
    ({"a": 1, "b": 2}, {"b": None}, {"a": 1}, True),
    ({"v": {"blue": "1", "green": "2"}}, {"v": {"blue": "3"}}, {"v": {"blue": "3"}}, True),
    ({"v": {"blue": "1"}}, {"v": {"blue": "1"}}, {"v": {"blue": "1"}}, False),
    ({}, {"l": [1, 2]}, {"l": [1, 2]}, True),
])
def test_merge_update(state, update, expected, changed):
    before = json.dumps(state, sort_keys=True)
    new, was_changed = _statefile.merge_update(state, update)
    assert new == expected
    assert was_changed is changed
    assert json.dumps(state, sort_keys=True) == before  # input untouched


def test_merge_update_copies_values():
    update = {"v": {"blue": "1"}}
    new, _changed = _statefile.merge_update({}, update)
    update["v"]["blue"] = "2"
    assert new == {"v": {"blue": "1"}}


@pytest.mark.parametrize("epoch, text", [
    (0, "1970-01-01T00:00:00Z"),
    (1795689667.9, "2026-11-26T10:41:07Z"),
])
def test_iso_utc(epoch, text):
    assert _statefile.iso_utc(epoch) == text


def test_audit_line_added_keys_win():
    line = _statefile.build_audit_line({"action": "switch", "user": "mallory"}, 0, "deploy", "web1")
    assert line == {"action": "switch", "time": "1970-01-01T00:00:00Z", "user": "deploy",
                    "host": "web1"}


def test_render_audit_line_is_one_line():
    data = _statefile.render_audit_line({"msg": "two\nlines", "to": "green"})
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data) == {"msg": "two\nlines", "to": "green"}


def test_render_state_round_trips():
    state = {"b": 1, "a": {"x": None}}
    assert _statefile.parse_state(_statefile.render_state(state), "p") == state


@pytest.mark.parametrize("update, problem", [
    ({"colors": {"blue": "1.0.0", "green": None}, "live_version": "1.0.0", "history": ["1.0.0"],
      "last_failure": None, "my_own_key": 3}, ""),
    ({"colors": "notadict"}, "update.colors: must map each color to the version it runs (or null), got 'notadict'"),
    ({"colors": {"blue": 1}}, "update.colors: must map each color to the version it runs (or null), got {'blue': 1}"),
    ({"live_version": 1.1}, "update.live_version: must be text, got 1.1"),
    ({"db_revisions_before": "0002"}, "update.db_revisions_before: must be a list, got '0002'"),
    ({"last_rollback": "yes"}, "update.last_rollback: must be a mapping, got 'yes'"),
])
def test_check_update_names_the_key_whose_value_has_the_wrong_shape(update, problem):
    assert _statefile.check_update(update) == problem


def test_an_audit_line_says_who_launched_the_run_and_its_job_beside_the_module_login(monkeypatch):
    from ansible_collections.prodready.deploy.plugins.module_utils import _state_io

    monkeypatch.setenv("PRODREADY_LAUNCHED_BY", "alice")
    monkeypatch.setenv("PRODREADY_JOB_ID", "42")
    monkeypatch.setenv("PRODREADY_JOB_URL", "https://awx.example/#/jobs/playbook/42")
    line = _state_io.audit_line({"action": "deploy", "launched_by": "mallory-claims"}, now=0)
    assert line["user"] == _state_io.login_name() and line["launched_by"] == "mallory-claims"  # an event's own word wins
    assert line["job"] == {"id": "42", "url": "https://awx.example/#/jobs/playbook/42"}
    monkeypatch.delenv("PRODREADY_JOB_ID")
    assert "job" not in _state_io.audit_line({"action": "deploy"}, now=0)
    assert _state_io.audit_line({"action": "deploy"}, now=0)["launched_by"] == "alice"
