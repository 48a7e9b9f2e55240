# -*- coding: utf-8 -*-
"""One concept, one option name, across the modules; one entry-point shape for all of them.

The old names keep working as deprecated aliases (Ansible warns about them), mean exactly
what the new names mean, and a bad value is refused naming the option whichever name gave it.
"""

import importlib
import inspect
import json
import os
import sys

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

sys.path.insert(0, os.path.dirname(__file__))

from _argspec import deprecated_aliases_used, validated  # noqa: E402
from ansible_collections.prodready.deploy.plugins.module_utils._options import (  # noqa: E402
    ALIASES_REMOVED_IN, COLLECTION_NAME)

MODULES = ["alembic_migrate", "color_process", "deploy_begin", "deploy_lock", "deploy_state", "feature_flag",
           "health_gate", "pg_backup", "preflight_check", "redis_cache_check", "release_build", "rollback_start",
           "router_switch"]


def load(name):
    return importlib.import_module("ansible_collections.prodready.deploy.plugins.modules." + name)


def run_main(capsys, name, args, check=False):
    """The module's main() as Ansible runs it; its JSON result."""
    with patch_module_args(dict(args, _ansible_check_mode=check)):
        with pytest.raises(SystemExit):
            load(name).main()
    return json.loads(capsys.readouterr().out)


def all_options(spec, prefix=""):
    """(dotted name, entry) of every option and suboption of an argument_spec."""
    for name, entry in spec.items():
        yield prefix + name, entry
        if entry.get("options"):
            yield from all_options(entry["options"], prefix + name + ".")


# (module, canonical name, old name now a deprecated alias, a value, the other required options)
RENAMED = [
    ("health_gate", "request_timeout", "timeout", 0.5, dict(url="http://127.0.0.1:9/health")),
    ("health_gate", "ca_cert", "ca_path", "/etc/ssl/internal-ca.pem", dict(url="https://127.0.0.1:9/health")),
    ("preflight_check", "fail_on_breach", "fail_on_error", False, dict()),
    ("deploy_lock", "lock_timeout", "timeout", 120.0, dict(path="/srv/app/deploy.lock", run_id="r1")),
    ("rollback_start", "db_rollback", "db", "downgrade",
     dict(state_path="/srv/app/state.json", lock_path="/srv/app/deploy.lock", run_id="r1",
          colors={"blue": {"port": 8101}, "green": {"port": 8102}})),
]


@pytest.mark.parametrize("name", MODULES)
def test_every_module_has_one_entry_point_shape(name):
    """argument_spec(), validate(params) and run(module), then a main() that calls them."""
    module = load(name)
    assert list(inspect.signature(module.argument_spec).parameters) == []
    assert list(inspect.signature(module.validate).parameters) == ["params"]
    assert list(inspect.signature(module.run).parameters) == ["module"]
    assert "run(module)" in inspect.getsource(module.main)


@pytest.mark.parametrize("name, new, old, value, required", RENAMED)
def test_the_old_name_is_an_alias_meaning_the_same(name, new, old, value, required):
    """Checked on ansible-core's argument validation: a module run in this process reports its
    deprecations to the controller's display once controller code is imported (as other tests do)."""
    module = load(name)
    by_new = validated(module, dict(required, **{new: value}))
    by_old = validated(module, dict(required, **{old: value}))
    assert by_new[new] == by_old[new] == value
    assert deprecated_aliases_used(module, dict(required, **{new: value})) == []
    assert deprecated_aliases_used(module, dict(required, **{old: value})) == [old]


@pytest.mark.parametrize("name, new, old, value, required", RENAMED)
def test_the_alias_is_declared_and_documented_as_deprecated(name, new, old, value, required):
    module = load(name)
    entry = module.argument_spec()[new]
    assert old in entry["aliases"]
    assert dict(name=old, version=ALIASES_REMOVED_IN, collection_name=COLLECTION_NAME) in entry["deprecated_aliases"]
    doc = yaml.safe_load(module.DOCUMENTATION)["options"][new]
    assert old in doc["aliases"]
    sentence = "C(%s) is a deprecated alias, to be removed in %s." % (old, ALIASES_REMOVED_IN)
    assert any(line.startswith(sentence) for line in doc["description"]), doc["description"]
    assert old not in yaml.safe_load(module.DOCUMENTATION)["options"]


@pytest.mark.parametrize("name", MODULES)
def test_one_name_per_concept(name):
    """fail_on_breach is the only name of "fail when the verdict is bad", ca_cert of the CA bundle,
    lock_timeout of the wait for a lock, version_path of where a JSON body holds the version; an
    old name lives on only as a deprecated alias."""
    spec = load(name).argument_spec()
    names = dict(all_options(spec))
    for option, entry in names.items():
        leaf = option.split(".")[-1]
        assert leaf not in ("fail_on_error", "ca_path", "ca_file", "cafile"), option
        assert "version" not in leaf or leaf in ("version", "version_path", "version_table", "expect_version"), option
        deprecated = set(d["name"] for d in entry.get("deprecated_aliases") or [])
        assert deprecated <= set(entry.get("aliases") or []), option
    if name in ("deploy_lock", "deploy_begin", "rollback_start", "alembic_migrate"):
        assert "lock_timeout" in spec and "timeout" not in spec
    if "db" in spec:
        # a database: its name (PostgreSQL) or number (Redis), never a rollback mode
        assert spec["db"]["type"] in ("str", "int") and "choices" not in spec["db"], name


@pytest.mark.parametrize("name, args, message", [
    ("deploy_lock", dict(path="/tmp/l", run_id="r1", lock_timeout=-1), "lock_timeout: must be 0 or more, got -1"),
    ("deploy_lock", dict(path="/tmp/l", run_id="r1", timeout=-1), "lock_timeout: must be 0 or more, got -1"),
    ("health_gate", dict(url="http://127.0.0.1:9/", request_timeout=0),
     "request_timeout must be greater than 0 seconds, got 0"),
    ("health_gate", dict(url="http://127.0.0.1:9/", timeout=0), "request_timeout must be greater than 0 seconds, got 0"),
    ("health_gate", dict(url="https://127.0.0.1:9/", ca_cert="/nonexistent/ca.pem"),
     "ca_cert '/nonexistent/ca.pem' cannot be used as a CA bundle"),
    ("health_gate", dict(url="https://127.0.0.1:9/", ca_path="/nonexistent/ca.pem"),
     "ca_cert '/nonexistent/ca.pem' cannot be used as a CA bundle"),
    ("preflight_check", dict(fail_on_breach="sometimes"), "fail_on_breach"),
    ("preflight_check", dict(fail_on_error="sometimes"), "fail_on_breach"),
    ("rollback_start", dict(state_path="/nonexistent/state.json", lock_path="/tmp/l", run_id="r1", switch=False,
                            colors={"blue": {"port": 1}, "green": {"port": 2}}, db_rollback="drop"),
     "value of db_rollback must be one of: none, downgrade, restore, got: drop"),
    ("rollback_start", dict(state_path="/nonexistent/state.json", lock_path="/tmp/l", run_id="r1", switch=False,
                            colors={"blue": {"port": 1}, "green": {"port": 2}}, db="drop"),
     "value of db_rollback must be one of: none, downgrade, restore, got: drop"),
])
def test_a_bad_value_is_refused_naming_the_option_by_either_name(capsys, name, args, message):
    result = run_main(capsys, name, args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert "Traceback" not in result["msg"]


@pytest.mark.parametrize("name, params, message", [
    ("deploy_state", dict(path="/tmp/s.json", update={}, audit_log=None, audit={"a": 1}, create=True),
     "audit: an audit event needs audit_log"),
    ("deploy_state", dict(path="/tmp/s.json", update={}, audit_log="/", audit={"a": 1}, create=True),
     "audit_log: / is a directory, not a file"),
    ("feature_flag", dict(backend="env_file", flags={"A": 1}, path="/tmp/.env", key_prefix="x:", hash_key=None, ttl=None),
     "key_prefix applies to backend=redis only"),
    ("feature_flag", dict(backend="redis", flags={"A": 1}, path=None, key_prefix="x:", hash_key=None, ttl=0),
     "ttl must be a number of seconds greater than 0, got 0"),
    ("feature_flag", dict(backend="env_file", flags={"BAD-NAME": 1}, path="/tmp/.env", key_prefix=None, hash_key=None,
                          ttl=None), "BAD-NAME"),
])
def test_validate_names_the_option(name, params, message):
    from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
    with pytest.raises(ProdreadyError) as err:
        load(name).validate(params)
    assert message in str(err.value)
