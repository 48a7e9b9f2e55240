# -*- coding: utf-8 -*-
"""feature_flag through real ansible-playbook: env files on disk and the sandbox Redis (db 6)."""

import os
import stat
import uuid

import pytest
import redis
import yaml

from helpers import run_module, run_playbook

from ansible_collections.prodready.deploy.plugins.modules import feature_flag

REDIS_DB = 6  # this module's tests own Redis db 6; keys carry a per-test prefix as well
COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations",
                      "_stdout", "skipped", "exception"}

ORIGINAL = (u"# app settings\r\n"
            u"DATABASE_URL=postgres://app:db-s3cret@127.0.0.1/app\r\n"
            u"\r\n"
            u"export ENABLE_PO_QUERY_OPTIMIZATION=false  # week 2\r\n"
            u"GREETING='héllo wörld'\r\n"
            u"ENABLE_PO_CACHING=false\r\n"
            u"ENABLE_PO_CACHING=true\r\n"
            u"LAST=1").encode("utf-8")


def documented_return_keys():
    return set(yaml.safe_load(feature_flag.RETURN))


@pytest.fixture
def env_file(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(ORIGINAL)
    os.chmod(str(path), 0o640)
    if os.geteuid() == 0:
        os.chown(str(path), 65534, 65534)  # not the user running ansible: must be kept
    return path


@pytest.fixture
def redis_conn(sandbox):
    svc = sandbox["services"]["redis"]
    password = sandbox["secrets"]["redis_password"]
    client = redis.Redis(host=svc["host"], port=svc["port"], password=password, db=REDIS_DB,
                         decode_responses=True)
    prefix = "feature_flag-test:%s:" % uuid.uuid4().hex[:12]
    args = dict(login_host=svc["host"], login_port=svc["port"], login_password=password,
                db=REDIS_DB)
    yield client, prefix, args, password
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


# ---------------------------------------------------------------- env_file

def test_env_file_edit_then_idempotent_then_revert(env_file, tmp_path):
    before_stat = env_file.stat()
    flags = {"ENABLE_PO_QUERY_OPTIMIZATION": True, "ENABLE_PO_CACHING": True,
             "ENABLE_CACHE_METRICS": "on and off", "LAST": None}
    result = run_module("feature_flag", dict(path=str(env_file), flags=flags, backup=True),
                        diff=True)
    assert not result.get("failed"), result["_stdout"]
    expected = (u"# app settings\r\n"
                u"DATABASE_URL=postgres://app:db-s3cret@127.0.0.1/app\r\n"
                u"\r\n"
                u"export ENABLE_PO_QUERY_OPTIMIZATION=true  # week 2\r\n"
                u"GREETING='héllo wörld'\r\n"
                u"ENABLE_PO_CACHING=true\r\n"
                u"ENABLE_CACHE_METRICS='on and off'").encode("utf-8")
    assert env_file.read_bytes() == expected
    assert result["changed"] is True and result["restart_required"] is True
    assert result["previous"] == {"ENABLE_PO_QUERY_OPTIMIZATION": "false",
                                  "ENABLE_PO_CACHING": "true",
                                  "ENABLE_CACHE_METRICS": None, "LAST": "1"}
    assert result["current"] == {"ENABLE_PO_QUERY_OPTIMIZATION": "true",
                                 "ENABLE_PO_CACHING": "true",
                                 "ENABLE_CACHE_METRICS": "on and off", "LAST": None}
    # (order: the order of `flags` as Ansible hands it over; the test helper sorts keys)
    assert sorted(result["changed_flags"]) == ["ENABLE_CACHE_METRICS", "ENABLE_PO_CACHING",
                                               "ENABLE_PO_QUERY_OPTIMIZATION", "LAST"]
    assert result["removed_duplicates"] == [{"name": "ENABLE_PO_CACHING", "line": 7,
                                             "value": "true"}]
    # the diff shows exactly the changed lines, never the rest of the file (its secrets)
    assert result["diff"]["before"] == ("export ENABLE_PO_QUERY_OPTIMIZATION=false  # week 2\n"
                                        "ENABLE_PO_CACHING=false\nENABLE_PO_CACHING=true\n"
                                        "LAST=1\n")
    assert result["diff"]["after"] == ("export ENABLE_PO_QUERY_OPTIMIZATION=true  # week 2\n"
                                       "ENABLE_PO_CACHING=true\n"
                                       "ENABLE_CACHE_METRICS='on and off'\n")
    assert "+export ENABLE_PO_QUERY_OPTIMIZATION=true  # week 2" in result["_stdout"]
    assert "db-s3cret" not in result["_stdout"]
    # backup holds the original; mode and owner kept
    assert open(result["backup_file"], "rb").read() == ORIGINAL
    after_stat = env_file.stat()
    assert stat.S_IMODE(after_stat.st_mode) == 0o640
    assert (after_stat.st_uid, after_stat.st_gid) == (before_stat.st_uid, before_stat.st_gid)
    assert not [n for n in os.listdir(str(tmp_path)) if n.endswith(".tmp")]
    assert not set(result) - documented_return_keys() - COMMON_RESULT_KEYS

    # second run: nothing changes, not even the inode
    inode = env_file.stat().st_ino
    again = run_module("feature_flag", dict(path=str(env_file), flags=flags, backup=True),
                       diff=True)
    assert again["changed"] is False and again["changed_flags"] == []
    assert again["restart_required"] is False and "backup_file" not in again
    assert env_file.read_bytes() == expected and env_file.stat().st_ino == inode

    # feeding `previous` back restores the original, except the removed duplicate
    revert = run_module("feature_flag", dict(path=str(env_file), flags=result["previous"]))
    assert revert["changed"] is True
    assert env_file.read_bytes() == ORIGINAL.replace(
        b"ENABLE_PO_CACHING=false\r\nENABLE_PO_CACHING=true\r\n", b"ENABLE_PO_CACHING=true\r\n")


def test_playbook_registers_previous_and_reverts_through_a_template(env_file, tmp_path):
    """The flag_rollout pattern: register the result, later pass `{{ r.previous }}` back
    (nulls must survive templating so that added flags are removed again)."""
    playbook = tmp_path / "rollout.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "tasks": [
            {"name": "stage", "prodready.deploy.feature_flag": {
                "path": str(env_file),
                "flags": {"ENABLE_PO_CACHING": False, "ENABLE_CACHE_METRICS": True}},
             "register": "stage"},
            {"name": "revert", "prodready.deploy.feature_flag": {
                "path": str(env_file), "flags": "{{ stage.previous }}"},
             "register": "revert"},
            {"name": "check", "ansible.builtin.assert": {"that": [
                "stage is changed", "revert is changed",
                "revert.current == stage.previous",
                "stage.previous.ENABLE_CACHE_METRICS is none"]}},
        ]}]))
    proc = run_playbook(playbook)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert env_file.read_bytes() == ORIGINAL.replace(
        b"ENABLE_PO_CACHING=false\r\nENABLE_PO_CACHING=true\r\n", b"ENABLE_PO_CACHING=true\r\n")


def test_env_file_check_mode_reports_and_writes_nothing(env_file):
    mtime = env_file.stat().st_mtime_ns
    result = run_module("feature_flag", dict(path=str(env_file), flags={"NEW_FLAG": False},
                                             backup=True), check=True, diff=True)
    assert result["changed"] is True and result["changed_flags"] == ["NEW_FLAG"]
    assert result["current"] == {"NEW_FLAG": "false"} and result["previous"] == {"NEW_FLAG": None}
    assert result["diff"]["after"] == "NEW_FLAG=false\n"
    assert "+NEW_FLAG=false" in result["_stdout"]
    assert "backup_file" not in result
    assert env_file.read_bytes() == ORIGINAL and env_file.stat().st_mtime_ns == mtime
    assert sorted(os.listdir(str(env_file.parent))) == [".env"]


def test_env_file_create_new_file_is_0600(tmp_path):
    path = tmp_path / "new.env"
    result = run_module("feature_flag", dict(path=str(path), flags={"A": "1"}, create=True))
    assert result["changed"] is True
    assert path.read_bytes() == b"A=1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("args,message", [
    (dict(backend="consul", path="/tmp/x.env", flags={"A": "1"}),
     "value of backend must be one of: env_file, redis, got: consul"),
    (dict(path="@ENV@", flags={"MY FLAG": "1"}),
     "flags: flag name 'MY FLAG' is not a valid environment variable name"),
    (dict(path="@ENV@", flags={"A": "line1\nline2"}),
     "flags: the value of flag A contains a line break"),
    (dict(path="@MISSING@", flags={"A": "1"}),
     "path: the env file @MISSING@ does not exist (create=false); fix the path or set "
     "create: true to create it"),
])
def test_bad_input_clear_messages(env_file, tmp_path, args, message):
    missing = str(tmp_path / "missing" / ".env")
    args = dict(args, path=args["path"].replace("@ENV@", str(env_file))
                .replace("@MISSING@", missing))
    result = run_module("feature_flag", args)
    assert result["failed"] is True
    assert message.replace("@MISSING@", missing) in result["msg"]
    assert "Traceback" not in result["_stdout"]
    assert env_file.read_bytes() == ORIGINAL
    assert not os.path.exists(missing)


# ---------------------------------------------------------------- redis

def test_redis_key_prefix_ttl_idempotent_revert_no_password_at_vvv(redis_conn):
    client, prefix, conn, password = redis_conn
    client.set(prefix + "ENABLE_PO_CACHING", "false")  # persistent, to be overwritten
    flags = {"emergency_rate_limit": 1, "ENABLE_PO_CACHING": True}
    args = dict(conn, backend="redis", key_prefix=prefix, flags=flags, ttl=3600)
    result = run_module("feature_flag", args, diff=True, verbosity=3)
    assert not result.get("failed"), result["_stdout"][-3000:]
    assert password not in result["_stdout"]
    assert result["changed"] is True and result["restart_required"] is False
    assert result["previous"] == {"emergency_rate_limit": None, "ENABLE_PO_CACHING": "false"}
    assert result["current"] == {"emergency_rate_limit": "1", "ENABLE_PO_CACHING": "true"}
    assert client.get(prefix + "emergency_rate_limit") == "1"
    assert client.get(prefix + "ENABLE_PO_CACHING") == "true"
    for key in ("emergency_rate_limit", "ENABLE_PO_CACHING"):
        assert 3500 < client.ttl(prefix + key) <= 3600
    assert result["diff"]["after"] == ("%semergency_rate_limit=1\n%sENABLE_PO_CACHING=true\n"
                                       % (prefix, prefix)) or \
        result["diff"]["after"] == ("%sENABLE_PO_CACHING=true\n%semergency_rate_limit=1\n"
                                    % (prefix, prefix))
    assert not set(result) - documented_return_keys() - COMMON_RESULT_KEYS

    client.expire(prefix + "ENABLE_PO_CACHING", 100)
    again = run_module("feature_flag", args)
    assert again["changed"] is False and again["changed_flags"] == []
    assert client.ttl(prefix + "ENABLE_PO_CACHING") <= 100  # an idempotent run does not extend

    revert = run_module("feature_flag", dict(conn, backend="redis", key_prefix=prefix,
                                             flags=result["previous"]))
    assert revert["changed"] is True
    assert client.exists(prefix + "emergency_rate_limit") == 0
    assert client.get(prefix + "ENABLE_PO_CACHING") == "false"
    assert client.ttl(prefix + "ENABLE_PO_CACHING") == -1  # no ttl given: persistent


def test_redis_ttl_per_flag(redis_conn):
    """Runbook 001's emergency rate limit expires in an hour; the flag set beside it does not."""
    client, prefix, conn, password = redis_conn
    args = dict(conn, backend="redis", key_prefix=prefix, flags={"emergency_rate_limit": 100, "MODE": "safe"},
                ttl={"emergency_rate_limit": 3600})
    result = run_module("feature_flag", args)
    assert not result.get("failed"), result["_stdout"][-3000:]
    assert result["changed"] is True
    assert 3500 < client.ttl(prefix + "emergency_rate_limit") <= 3600
    assert client.ttl(prefix + "MODE") == -1
    assert run_module("feature_flag", args)["changed"] is False

    refused = run_module("feature_flag", dict(conn, backend="redis", hash_key=prefix + "h",
                                              flags={"A": 1, "B": 2}, ttl={"A": 60, "B": 120}))
    assert refused["failed"] is True
    assert "ttl per flag (A=60, B=120) needs key_prefix" in refused["msg"]
    assert client.exists(prefix + "h") == 0


def test_redis_hash_key_ttl_check_mode_and_revert(redis_conn):
    client, prefix, conn, password = redis_conn
    hash_key = prefix + "flags"
    client.hset(hash_key, mapping={"ENABLE_PO_CACHING": "false", "OTHER": "kept"})
    conn = dict(conn)
    # From the environment this time: the controller's (inherited by a local module). A task's
    # `environment:` would not do: Ansible prefixes it to the module's shell command, visible
    # in `ps` and printed at -vvv.
    del conn["login_password"]
    args = dict(conn, backend="redis", hash_key=hash_key, ttl=600,
                flags={"ENABLE_PO_CACHING": True, "ENABLE_CACHE_METRICS": "yes"})
    env = {"REDIS_PASSWORD": password}

    check = run_module("feature_flag", args, check=True, env=env, verbosity=3)
    assert not check.get("failed"), check["_stdout"][-3000:]
    assert password not in check["_stdout"]
    assert check["changed"] is True
    assert check["current"] == {"ENABLE_PO_CACHING": "true", "ENABLE_CACHE_METRICS": "yes"}
    assert client.hgetall(hash_key) == {"ENABLE_PO_CACHING": "false", "OTHER": "kept"}
    assert client.ttl(hash_key) == -1

    result = run_module("feature_flag", args, env=env)
    assert result["changed"] is True
    assert result["previous"] == {"ENABLE_PO_CACHING": "false", "ENABLE_CACHE_METRICS": None}
    assert client.hgetall(hash_key) == {"ENABLE_PO_CACHING": "true", "OTHER": "kept",
                                        "ENABLE_CACHE_METRICS": "yes"}
    assert 500 < client.ttl(hash_key) <= 600  # the TTL covers the whole hash

    assert run_module("feature_flag", args, env=env)["changed"] is False

    revert = run_module("feature_flag", dict(conn, backend="redis", hash_key=hash_key,
                                             flags=result["previous"]), env=env)
    assert revert["changed"] is True
    assert client.hgetall(hash_key) == {"ENABLE_PO_CACHING": "false", "OTHER": "kept"}


def test_redis_wrong_password_is_a_clear_failure(redis_conn):
    client, prefix, conn, password = redis_conn
    wrong = "not-the-" + uuid.uuid4().hex
    args = dict(conn, login_password=wrong, backend="redis", key_prefix=prefix,
                flags={"A": "1"})
    result = run_module("feature_flag", args, verbosity=3)
    assert result["failed"] is True
    assert "cannot connect to Redis at redis://127.0.0.1:%s/%d" % (conn["login_port"], REDIS_DB) \
        in result["msg"]
    assert "authentication failed" in result["msg"] or "WRONGPASS" in result["msg"]
    assert wrong not in result["_stdout"] and password not in result["_stdout"]
    assert "Traceback" not in result["_stdout"]
    assert client.exists(prefix + "A") == 0
