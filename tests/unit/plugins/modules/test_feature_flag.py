# -*- coding: utf-8 -*-
"""Unit tests of the feature_flag module: docs agree with the code, the redis plan, file I/O."""

import json
import os
import stat

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.prodready.deploy.plugins.modules import feature_flag
from ansible_collections.prodready.deploy.plugins.doc_fragments import redis as redis_fragment
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations"}


def run_main(capsys, args, check=False, diff=False):
    """Run main() in process like Ansible would; return the parsed JSON result."""
    module_args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(module_args):
        with pytest.raises(SystemExit):
            feature_flag.main()
    return json.loads(capsys.readouterr().out)


class FakePipeline(object):
    def __init__(self, server):
        self.server = server
        self.calls = []

    def __getattr__(self, name):
        def queue(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self
        return queue

    def execute(self):
        return [getattr(self.server, name)(*args, **kwargs) for name, args, kwargs in self.calls]


class FakeRedis(object):
    """Just enough of redis.Redis (decode_responses=True) for feature_flag's calls."""

    def __init__(self):
        self.data = {}
        self.expiry = {}
        self.writes = []

    def pipeline(self, transaction=True):
        return FakePipeline(self)

    def get(self, key):
        return self.data.get(key)

    def mget(self, keys):
        return [self.data.get(k) for k in keys]

    def ttl(self, key):
        if key not in self.data:
            return -2
        return self.expiry.get(key, -1)

    def set(self, key, value, ex=None):
        self.writes.append(("set", key, value, ex))
        self.data[key] = value
        self.expiry.pop(key, None)
        if ex:
            self.expiry[key] = ex
        return True

    def delete(self, key):
        self.writes.append(("delete", key))
        self.expiry.pop(key, None)
        return int(self.data.pop(key, None) is not None)

    def expire(self, key, seconds):
        self.writes.append(("expire", key, seconds))
        if key in self.data:
            self.expiry[key] = seconds
            return True
        return False

    def hmget(self, key, names):
        return [self.data.get(key, {}).get(n) for n in names]

    def hset(self, key, mapping):
        self.writes.append(("hset", key, dict(mapping)))
        self.data.setdefault(key, {}).update(mapping)
        return len(mapping)

    def hdel(self, key, *names):
        self.writes.append(("hdel", key, names))
        fields = self.data.get(key, {})
        for name in names:
            fields.pop(name, None)
        if key in self.data and not fields:
            del self.data[key]
            self.expiry.pop(key, None)
        return len(names)


class FakeModule(object):
    def __init__(self, params, check_mode=False, diff=False):
        spec = feature_flag.argument_spec()
        self.params = dict((k, v.get("default")) for k, v in spec.items())
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff


# ---------------------------------------------------------------- docs agree with the code

def _doc_options():
    doc = yaml.safe_load(feature_flag.DOCUMENTATION)
    options = dict(doc["options"])
    options.update(yaml.safe_load(redis_fragment.ModuleDocFragment.DOCUMENTATION)["options"])
    return doc, options


def test_documented_options_match_argument_spec():
    doc, options = _doc_options()
    assert "prodready.deploy.redis" in doc["extends_documentation_fragment"]
    spec = feature_flag.argument_spec()
    assert set(options) == set(spec)
    for name, opt in spec.items():
        assert options[name].get("type", "str") == opt.get("type", "str"), name
        assert options[name].get("default") == opt.get("default"), name
        assert options[name].get("choices") == opt.get("choices"), name
        assert bool(options[name].get("required", False)) == bool(opt.get("required", False)), name


def test_examples_parse_and_use_only_documented_options():
    options = _doc_options()[1]
    for task in yaml.safe_load(feature_flag.EXAMPLES):
        args = task.get("prodready.deploy.feature_flag")
        if args is not None:
            assert set(args) <= set(options), task["name"]


def _documented_return_keys():
    return set(yaml.safe_load(feature_flag.RETURN))


def test_every_returned_key_is_documented_env_file(tmp_path, capsys):
    env = tmp_path / ".env"
    env.write_text("A=1\nA=2\n")
    result = run_main(capsys, dict(path=str(env), flags={"A": "3", "B": True}, backup=True),
                      diff=True)
    assert result["changed"] is True and "backup_file" in result and "diff" in result
    undocumented = set(result) - _documented_return_keys() - COMMON_RESULT_KEYS
    assert not undocumented
    assert {"previous", "current", "changed_flags", "restart_required", "removed_duplicates",
            "env_file", "backup_file", "diff"} <= set(result)


def test_every_returned_key_is_documented_redis(monkeypatch):
    monkeypatch.setattr(feature_flag, "connect", lambda params: FakeRedis())
    module = FakeModule(dict(backend="redis", key_prefix="t:", flags={"A": "1"}, ttl=60),
                        diff=True)
    result = feature_flag.run(module)
    assert "diff" in result
    assert not set(result) - _documented_return_keys() - COMMON_RESULT_KEYS


def test_documented_return_keys_are_all_produced(tmp_path, capsys):
    env = tmp_path / ".env"
    env.write_text("A=1\nA=2\n")
    result = run_main(capsys, dict(path=str(env), flags={"A": "3"}, backup=True), diff=True)
    assert _documented_return_keys() <= set(result)


# ---------------------------------------------------------------- env_file through main()

def test_check_mode_predicts_and_writes_nothing(tmp_path, capsys):
    env = tmp_path / ".env"
    env.write_bytes(b"A=1\n")
    before = env.stat()
    result = run_main(capsys, dict(path=str(env), flags={"A": "2"}), check=True, diff=True)
    assert result["changed"] is True
    assert result["current"] == {"A": "2"} and result["previous"] == {"A": "1"}
    assert result["diff"]["before"] == "A=1\n" and result["diff"]["after"] == "A=2\n"
    assert env.read_bytes() == b"A=1\n"
    assert env.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(os.listdir(str(tmp_path))) == [".env"]


def test_check_mode_missing_file_with_create_writes_nothing(tmp_path, capsys):
    env = tmp_path / ".env"
    result = run_main(capsys, dict(path=str(env), flags={"A": "1"}, create=True), check=True)
    assert result["changed"] is True and not env.exists()


def test_create_makes_a_0600_file(tmp_path, capsys):
    env = tmp_path / ".env"
    result = run_main(capsys, dict(path=str(env), flags={"A": "1"}, create=True))
    assert result["changed"] is True
    assert env.read_bytes() == b"A=1\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_create_with_no_flags_makes_an_empty_file_once(tmp_path, capsys):
    env = tmp_path / ".env"
    assert run_main(capsys, dict(path=str(env), flags={}, create=True))["changed"] is True
    assert env.read_bytes() == b""
    assert run_main(capsys, dict(path=str(env), flags={}, create=True))["changed"] is False


def test_symlink_is_followed_and_kept(tmp_path, capsys):
    target = tmp_path / "shared.env"
    target.write_text("A=1\n")
    link = tmp_path / ".env"
    link.symlink_to(target)
    result = run_main(capsys, dict(path=str(link), flags={"A": "2"}))
    assert result["env_file"] == str(target)
    assert link.is_symlink() and target.read_text() == "A=2\n"


@pytest.mark.parametrize("args,message", [
    (dict(flags={"A": "1"}), "path"),
    (dict(path="/nonexistent-dir/.env", flags={"A": "1"}),
     "path: the env file /nonexistent-dir/.env does not exist (create=false)"),
    (dict(path="/nonexistent-dir/.env", flags={"A": "1"}, create=True),
     "directory /nonexistent-dir does not exist"),
    (dict(path="/tmp", flags={"A": "1"}), "is a directory"),
    (dict(path="/tmp/x.env", flags={"A": "1"}, ttl=5), "ttl applies to backend=redis only"),
    (dict(path="/tmp/x.env", flags={"A": "1"}, key_prefix="x"), "key_prefix applies to backend=redis"),
    (dict(backend="redis", flags={"A": "1"}), "backend is redis but any of the following are missing: key_prefix, hash_key"),
    (dict(backend="redis", key_prefix="a", hash_key="b", flags={"A": "1"}), "mutually exclusive"),
    (dict(backend="redis", key_prefix="a", ttl=0, flags={"A": "1"}), "ttl must be a number of seconds greater than 0"),
    (dict(backend="redis", key_prefix="a", ttl="soon", flags={"A": "1"}), "ttl must be a whole number of seconds greater than 0, got 'soon'"),
    (dict(backend="redis", key_prefix="a", ttl={"B": 5}, flags={"A": "1"}), "ttl names B, which is not in flags (A)"),
    (dict(backend="redis", key_prefix="a", ttl={"A": -5}, flags={"A": "1"}), "ttl of flag A must be a number of seconds greater than 0, got -5"),
    (dict(backend="redis", hash_key="h", ttl={"A": 5, "B": 6}, flags={"A": "1", "B": "2"}),
     "ttl per flag (A=5, B=6) needs key_prefix: with hash_key the whole hash expires"),
    (dict(backend="redis", key_prefix="a", path="/x", flags={"A": "1"}), "path applies to backend=env_file only"),
    (dict(backend="nosuch", path="/x", flags={"A": "1"}), "backend"),
    (dict(path="/tmp/x.env", flags={"A B": "1"}), "flag name 'A B' is not a valid"),
    (dict(path="/tmp/x.env", flags={"A": "x\ny"}), "value of flag A contains a line break"),
])
def test_bad_input_fails_with_a_clear_message(capsys, args, message):
    result = run_main(capsys, args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert "Traceback" not in json.dumps(result)


def test_not_utf8_is_refused(tmp_path, capsys):
    env = tmp_path / ".env"
    env.write_bytes(b"A=\xff\n")
    result = run_main(capsys, dict(path=str(env), flags={"A": "1"}))
    assert result["failed"] and "is not UTF-8 text (invalid byte at offset 2)" in result["msg"]
    assert env.read_bytes() == b"A=\xff\n"


# ---------------------------------------------------------------- write_atomic

def test_write_atomic_keeps_mode_and_owner(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    os.chmod(str(path), 0o640)
    if os.geteuid() == 0:
        os.chown(str(path), 65534, 65534)
    st = os.stat(str(path))
    feature_flag.write_atomic(str(path), b"new", st)
    after = os.stat(str(path))
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (st.st_uid, st.st_gid)
    assert after.st_ino != st.st_ino  # replaced by rename, not rewritten in place
    assert os.listdir(str(tmp_path)) == ["f"]


def test_write_atomic_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"old")

    def failing_rename(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(feature_flag.os, "rename", failing_rename)
    with pytest.raises(ProdreadyError) as err:
        feature_flag.write_atomic(str(path), b"new", os.stat(str(path)))
    assert "cannot write %s: [Errno 28] No space left on device" % path in str(err.value)
    assert path.read_bytes() == b"old"
    assert os.listdir(str(tmp_path)) == ["f"]


# ---------------------------------------------------------------- redis plan (pure)

@pytest.mark.parametrize("old,targets,ttls,ttl,hash_mode,expected", [
    # value change, plain SET
    ({"A": "0"}, {"A": "1"}, {"A": -1}, None, False, ({"A": "1"}, [], [], False, ["A"])),
    # same value, no ttl asked: nothing, whatever the key's expiry
    ({"A": "1"}, {"A": "1"}, {"A": 30}, None, False, ({}, [], [], False, [])),
    ({"A": "1"}, {"A": "1"}, {"A": -1}, None, False, ({}, [], [], False, [])),
    # same value, ttl asked, key persistent: EXPIRE only
    ({"A": "1"}, {"A": "1"}, {"A": -1}, 3600, False, ({}, [], ["A"], False, ["A"])),
    # same value, ttl asked, key already expiring: left alone (not extended)
    ({"A": "1"}, {"A": "1"}, {"A": 12}, 3600, False, ({}, [], [], False, [])),
    # removal
    ({"A": "1", "B": None}, {"A": None, "B": None}, {"A": -1, "B": -2}, None, False,
     ({}, ["A"], [], False, ["A"])),
    # hash: field change with ttl expires the hash
    ({"A": "0"}, {"A": "1"}, {None: 50}, 60, True, ({"A": "1"}, [], [], True, ["A"])),
    # hash: no change, hash persistent, ttl asked: expire the hash
    ({"A": "1"}, {"A": "1"}, {None: -1}, 60, True, ({}, [], [], True, [])),
    # hash: no change, hash already expiring: nothing
    ({"A": "1"}, {"A": "1"}, {None: 50}, 60, True, ({}, [], [], False, [])),
    # hash: no ttl asked: expiry never touched
    ({"A": "0"}, {"A": "1"}, {None: -1}, None, True, ({"A": "1"}, [], [], False, ["A"])),
    # hash absent, removal of an absent field: nothing
    ({"A": None}, {"A": None}, {None: -2}, 60, True, ({}, [], [], False, [])),
])
def test_plan_redis(old, targets, ttls, ttl, hash_mode, expected):
    per_flag = feature_flag.flag_ttls(ttl, list(targets), hash_mode)
    assert feature_flag.plan_redis(old, targets, ttls, per_flag, hash_mode) == expected


@pytest.mark.parametrize("ttl, names, hash_mode, expected", [
    (None, ["A", "B"], False, {"A": None, "B": None}),
    (60, ["A", "B"], False, {"A": 60, "B": 60}),
    ("60", ["A"], False, {"A": 60}),
    ({"A": 3600}, ["A", "B"], False, {"A": 3600, "B": None}),
    ({"A": 60, "B": 60}, ["A", "B"], True, {"A": 60, "B": 60}),
])
def test_flag_ttls(ttl, names, hash_mode, expected):
    assert feature_flag.flag_ttls(ttl, names, hash_mode) == expected


def test_per_flag_ttl_plan_expires_only_the_named_flag():
    ttls = feature_flag.flag_ttls({"LIMIT": 3600}, ["LIMIT", "MODE"], False)
    plan = feature_flag.plan_redis({"LIMIT": None, "MODE": "a"}, {"LIMIT": "1", "MODE": "a"},
                                   {"LIMIT": -2, "MODE": -1}, ttls, False)
    assert plan == ({"LIMIT": "1"}, [], [], False, ["LIMIT"])  # MODE keeps no expiry: none asked for it


def test_run_redis_check_mode_writes_nothing(monkeypatch):
    server = FakeRedis()
    server.data["t:A"] = "0"
    monkeypatch.setattr(feature_flag, "connect", lambda params: server)
    module = FakeModule(dict(backend="redis", key_prefix="t:", flags={"A": True, "B": 1}),
                        check_mode=True)
    result = feature_flag.run(module)
    assert result["changed"] is True
    assert result["previous"] == {"A": "0", "B": None}
    assert result["current"] == {"A": "true", "B": "1"}
    assert server.writes == []


def test_run_redis_state_absent_and_revert(monkeypatch):
    server = FakeRedis()
    server.data["h"] = {"A": "1", "OTHER": "x"}
    monkeypatch.setattr(feature_flag, "connect", lambda params: server)
    module = FakeModule(dict(backend="redis", hash_key="h", flags={"A": "z"}, state="absent"))
    result = feature_flag.run(module)
    assert result["previous"] == {"A": "1"} and result["current"] == {"A": None}
    assert server.data["h"] == {"OTHER": "x"}
    revert = FakeModule(dict(backend="redis", hash_key="h", flags=result["previous"]))
    feature_flag.run(revert)
    assert server.data["h"] == {"A": "1", "OTHER": "x"}


def test_empty_key_prefix_is_accepted(capsys, monkeypatch):
    """Runbook 001's `SET emergency_rate_limit 1 EX 3600`: the flag name is the key."""
    server = FakeRedis()
    monkeypatch.setattr(feature_flag, "connect", lambda params: server)
    result = run_main(capsys, dict(backend="redis", key_prefix="", ttl=3600,
                                   flags={"emergency_rate_limit": 1}))
    assert result["changed"] is True, result
    assert server.writes == [("set", "emergency_rate_limit", "1", 3600)]
