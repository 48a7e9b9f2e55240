# -*- coding: utf-8 -*-
"""Every option that takes a duration, a count, a size, a port or a rate refuses a negative
value before anything is touched, naming the option (issue: `alembic_migrate lock_timeout:
-1` was accepted)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from test_option_names import MODULES, all_options, load, run_main  # noqa: E402

COLORS = {"blue": {"port": 8101}, "green": {"port": 8102}}

# Each module's smallest valid request (paths under /nonexistent, replaced by a directory of
# the test's that does not exist: the value under test must be refused before they are
# looked at, and a module that did not would leave nothing outside the test's directory).
BASE = {
    "alembic_migrate": dict(project_path="/nonexistent/app", database_url="postgresql://u@127.0.0.1:9/db"),
    "color_process": dict(name="app", color="blue", port=8101, command="/bin/true", state="started",
                          directory="/nonexistent/app", supervisor_conf_dir="/nonexistent/conf.d"),
    "deploy_begin": dict(app_root="/nonexistent/app", run_id="r1", version="1.0.0", colors=COLORS),
    "deploy_lock": dict(path="/nonexistent/deploy.lock", run_id="r1"),
    "deploy_state": dict(path="/nonexistent/state.json"),
    "feature_flag": dict(flags={"ENABLE_X": "true"}, backend="redis", key_prefix="app:flags:", login_host="127.0.0.1",
                         login_port=6379),
    "health_gate": dict(url="http://127.0.0.1:9/health", requests=5),
    "pg_backup": dict(mode="backup", dest_dir="/nonexistent/backups", db="app", login_host="127.0.0.1"),
    "preflight_check": dict(),
    "redis_cache_check": dict(login_host="127.0.0.1", login_port=6379),
    "release_build": dict(path="/nonexistent/releases/1.0.0", version="1.0.0", artifact_type="pip",
                          pip_requirement="sampleapp==1.0.0"),
    "rollback_start": dict(state_path="/nonexistent/state.json", lock_path="/nonexistent/deploy.lock",
                           colors=COLORS, switch=False),
    "router_switch": dict(router="haproxy", admin_socket="/nonexistent/admin.sock", backend="be_app",
                          live="blue", servers={"blue": "127.0.0.1:8101", "green": "127.0.0.1:8102"}),
}

# Options that a negative value may legitimately have: none so far.
NEGATIVE_ALLOWED = set()

CASES = [(name, option) for name in MODULES for option, entry in all_options(load(name).argument_spec())
         if entry.get("type") in ("int", "float") and "." not in option
         and (name, option) not in NEGATIVE_ALLOWED]
# Suboptions: one of each kind, given inside their parent.
NESTED = [
    ("color_process", dict(probe={"url": "http://127.0.0.1:8101/health", "timeout": -1}), "probe.timeout: must be 0 or more"),
    ("preflight_check", dict(tls_certs=[{"path": "/nonexistent/c.pem", "min_days": -1}]),
     "tls_certs[0].min_days: must be 0 or more"),
]


def test_every_module_has_a_base_request():
    assert sorted(BASE) == sorted(MODULES)


# What the request needs besides when this option is given.
WITH = {("health_gate", "duration"): dict(requests=None), ("health_gate", "max_regression"): dict(baseline={"p95": 10})}


def in_tmp(args, tmp_path):
    """`args` with /nonexistent replaced by a missing directory under `tmp_path`."""
    missing = str(tmp_path / "missing")
    return {key: value.replace("/nonexistent", missing) if isinstance(value, str) else value
            for key, value in args.items()}


@pytest.mark.parametrize("name, option", CASES, ids=["%s.%s" % case for case in CASES])
def test_a_negative_value_is_refused_naming_the_option(capsys, tmp_path, name, option):
    args = in_tmp(dict(BASE[name], **WITH.get((name, option), {})), tmp_path)
    args = {key: value for key, value in dict(args, **{option: -1}).items() if value is not None}
    result = run_main(capsys, name, args)
    assert result.get("failed") is True, result
    assert option in result["msg"] and "-1" in result["msg"], result["msg"]
    assert not (tmp_path / "missing").exists()  # refused before anything was made


@pytest.mark.parametrize("name, args, message", NESTED)
def test_a_negative_suboption_is_refused_naming_it(capsys, tmp_path, name, args, message):
    result = run_main(capsys, name, in_tmp(dict(BASE[name], **args), tmp_path))
    assert result.get("failed") is True and result["msg"].startswith(message), result
