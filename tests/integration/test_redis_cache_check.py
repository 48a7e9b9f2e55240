"""redis_cache_check against the sandbox Redis (db 11 and 12 only, keys prefixed `rcc:`).

db 11 holds the invalidation and hit-ratio keys (each test its own prefix); db 12 is only
flushed by the flush test. Hit and miss counters are server-wide in Redis, so the
hit-ratio test allows a little traffic from other tests running at the same time.
"""

import os
import re
import time

import pytest
import redis

from ansible_collections.prodready.deploy.plugins.modules import redis_cache_check
from ansible_collections.prodready.deploy.plugins.module_utils import _redis
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from helpers import run_module


@pytest.fixture(scope="module")
def conn(sandbox):
    svc = sandbox["services"]["redis"]
    return dict(host=svc["host"], port=svc["port"], password=sandbox["secrets"]["redis_password"])


def client(conn, db):
    return redis.Redis(host=conn["host"], port=conn["port"], password=conn["password"], db=db)


def args(conn, db=11, **extra):
    """Module arguments; the password comes from REDIS_PASSWORD (see env()), not the playbook."""
    values = {"login_host": conn["host"], "login_port": conn["port"], "db": db}
    values.update(extra)
    return values


def env(conn):
    return {"REDIS_PASSWORD": conn["password"]}


def delete_prefix(r, prefix):
    for key in r.scan_iter(match=prefix + "*", count=1000):
        r.unlink(key)


def fill(r, pattern, count, chunk=10000):
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        pipe.set(pattern % i, "v")
        if i % chunk == chunk - 1:
            pipe.execute()
    pipe.execute()


def count_keys(r, pattern):
    return len(set(r.scan_iter(match=pattern, count=1000)))


def module_params(conn, db=11, **extra):
    values = dict((name, spec.get("default")) for name, spec in redis_cache_check.argument_spec().items())
    values.update(login_host=conn["host"], login_port=conn["port"], login_password=conn["password"], db=db)
    values.update(extra)
    return values


def test_ping_version_and_memory(conn):
    result = run_module("redis_cache_check", args(conn, max_ping_ms=1000, max_memory_ratio=0.99),
                        env=env(conn), verbosity=3)
    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True and result["changed"] is False and result["db"] == 11
    assert result["ping_ms"] > 0 and result["version"].startswith("7.")
    assert result["maxmemory"] == int(list(client(conn, 11).config_get("maxmemory").values())[0])
    assert 0 < result["memory_ratio"] < 0.99
    assert result["hit_ratio"] is None and result["window_s"] == 0
    assert conn["password"] not in result["_stdout"]


def test_memory_ratio_breach_names_value_and_limit(conn):
    result = run_module("redis_cache_check", args(conn, max_memory_ratio=0.0), env=env(conn))
    assert result["failed"] is True and result["passed"] is False
    assert result["msg"].startswith("redis_cache_check failed on redis://%s:%s/11: memory " % (conn["host"], conn["port"]))
    assert "of maxmemory > 0.0% (" in result["msg"]


def test_hit_ratio_over_a_window_counts_only_the_window(conn, monkeypatch):
    r = client(conn, 11)
    prefix = "rcc:hits:"
    delete_prefix(r, prefix)
    for i in range(10):
        r.set(prefix + str(i), "v")
    for dummy in range(50):  # 500 hits BEFORE the window: lifetime counters would include them
        r.mget([prefix + str(i) for i in range(10)])

    def traffic(seconds):
        pipe = r.pipeline(transaction=False)
        for n in range(900):
            pipe.get(prefix + str(n % 10))
        for n in range(100):
            pipe.get(prefix + "absent:" + str(n))
        pipe.execute()
        time.sleep(0.05)

    monkeypatch.setattr(redis_cache_check, "_sleep", traffic)
    try:
        result = redis_cache_check.check(_redis.connect(module_params(conn)),
                                         module_params(conn, min_hit_ratio=0.8, min_samples=1000, window=0.05))
        assert result["passed"] is True
        # Exact unless another test hit the server in the same few milliseconds.
        assert 900 <= result["hits"] < 950 and 100 <= result["misses"] < 150
        assert 0.85 < result["hit_ratio"] < 0.91
        assert result["window_s"] >= 0.05
        with pytest.raises(ProdreadyError) as err:
            redis_cache_check.check(_redis.connect(module_params(conn)),
                                    module_params(conn, min_hit_ratio=0.95, min_samples=100, window=0.05))
        assert err.value.details["passed"] is False
        assert "hit ratio 9" in str(err.value) and "% < 95.0% (9" in str(err.value)
    finally:
        delete_prefix(r, prefix)


def test_too_few_samples_is_inconclusive_not_a_pass(conn):
    result = run_module("redis_cache_check", args(conn, min_hit_ratio=0.5, min_samples=10 ** 9, window=0.3),
                        env=env(conn))
    assert result["failed"] is True and result["passed"] is False
    assert result["reason"].startswith("inconclusive: ")
    # The window is measured (0.3 s asked; a loaded machine may sleep a little longer).
    assert re.search(r"hits\+misses in \d+(\.\d)? s < min_samples 1000000000$", result["reason"]), result["reason"]
    report = run_module("redis_cache_check", args(conn, min_hit_ratio=0.5, min_samples=10 ** 9, window=0.2,
                                                  max_evicted_keys=10 ** 9, fail_on_breach=False), env=env(conn))
    assert report.get("failed") is not True and report["passed"] is False
    assert isinstance(report["evicted_keys"], int) and isinstance(report["hits"], int)


def test_invalidate_100k_keys_leaves_other_keys_untouched(conn):
    r = client(conn, 11)
    delete_prefix(r, "rcc:inv:")
    fill(r, "rcc:inv:prod_%d", 100000)
    fill(r, "rcc:inv:product_%d", 1000)   # shares a prefix with the pattern, must survive
    fill(r, "rcc:inv:user_%d", 1000)
    r.set(b"rcc:inv:prod_\xff\xfe", "binary key name")
    pattern = "rcc:inv:prod_*"
    try:
        check = run_module("redis_cache_check", args(conn, invalidate=[pattern], key_patterns=[pattern]),
                           env=env(conn), check=True)
        assert check["changed"] is True and check["deleted"] == {pattern: 100001}
        assert check["pattern_counts"] == {pattern: 100001}
        assert count_keys(r, pattern) == 100001   # check mode deleted nothing

        done = run_module("redis_cache_check", args(conn, invalidate=[pattern], key_patterns=[pattern]),
                          env=env(conn))
        assert done["changed"] is True and done["deleted"] == {pattern: 100001}
        assert done["pattern_counts"] == {pattern: 0}
        assert count_keys(r, pattern) == 0
        assert count_keys(r, "rcc:inv:product_*") == 1000 and count_keys(r, "rcc:inv:user_*") == 1000

        again = run_module("redis_cache_check", args(conn, invalidate=[pattern]), env=env(conn))
        assert again["changed"] is False and again["deleted"] == {pattern: 0}
    finally:
        delete_prefix(r, "rcc:inv:")


def test_flush_needs_confirmation_of_the_db_number(conn):
    r = client(conn, 12)
    r.set("rcc:flush:a", "1")
    r.set("rcc:flush:b", "2")
    missing = run_module("redis_cache_check", args(conn, db=12, flush=True), env=env(conn))
    assert missing["failed"] is True and "confirm_flush" in missing["msg"]
    wrong = run_module("redis_cache_check", args(conn, db=12, flush=True, confirm_flush=11), env=env(conn))
    assert wrong["failed"] is True
    assert wrong["msg"] == "flush of Redis db 12 refused: set confirm_flush: 12 to confirm (got 11)"
    assert r.exists("rcc:flush:a", "rcc:flush:b") == 2
    size = r.dbsize()
    check = run_module("redis_cache_check", args(conn, db=12, flush=True, confirm_flush=12), env=env(conn), check=True)
    assert check["changed"] is True and check["flushed"] is True and check["deleted"] == {"flush": size}
    assert r.exists("rcc:flush:a", "rcc:flush:b") == 2
    done = run_module("redis_cache_check", args(conn, db=12, flush=True, confirm_flush=12), env=env(conn))
    assert done["changed"] is True and done["flushed"] is True
    assert r.dbsize() == 0


def test_url_with_embedded_password_is_never_shown(conn):
    url = "redis://:%s@%s:%s/11" % (conn["password"], conn["host"], conn["port"])
    result = run_module("redis_cache_check", {"url": url, "key_patterns": ["rcc:none:*"]}, verbosity=3)
    assert result.get("failed") is not True, result.get("msg")
    assert result["db"] == 11 and result["pattern_counts"] == {"rcc:none:*": 0}
    assert conn["password"] not in result["_stdout"]


@pytest.mark.parametrize("extra, msg", [
    ({"login_port": 1}, "cannot connect to Redis at redis://127.0.0.1:1/11: connection failed, is the server running"),
    ({"login_password": "wrong-password"}, "cannot connect to Redis at redis://127.0.0.1:%(port)s/11: authentication failed"),
    ({"url": "redis://:wrong-password@127.0.0.1:%(port)s/11", "login_host": None, "login_port": None, "db": None},
     "cannot connect to Redis at redis://:********@127.0.0.1:%(port)s/11: authentication failed"),
    ({"max_memory_ratio": 2}, "max_memory_ratio must be a fraction between 0 and 1"),
    ({"invalidate": ["*"]}, "invalidate pattern '*' matches every key: use flush with confirm_flush"),
])
def test_bad_input_and_unreachable_redis_are_clear_messages(conn, extra, msg):
    values = args(conn, **dict((k, (v % conn if isinstance(v, str) else v)) for k, v in extra.items()))
    values = dict((k, v) for k, v in values.items() if v is not None)
    result = run_module("redis_cache_check", values, env=env(conn))
    assert result["failed"] is True
    assert result["msg"].startswith(msg % conn), result["msg"]
    assert "Traceback" not in result["_stdout"]
    assert "wrong-password" not in result["_stdout"]


@pytest.mark.parametrize("method", ["scan_unlink", "scan_unlink_raw", "scan_unlink_pipelined"])
def test_both_invalidation_paths_delete_exactly_the_pattern(conn, method):
    # scan_unlink (server-side Lua), scan_unlink_raw (its fallback without scripting: RESP
    # on the socket, reply bytes reused as UNLINK) and scan_unlink_pipelined (redis-py's
    # parser) must delete the same keys, binary names and RESP-looking bytes included.
    r = client(conn, 11)
    prefix = "rcc:path-%s:" % method
    delete_prefix(r, prefix)
    fill(r, prefix + "prod_%d", 5000)
    fill(r, prefix + "keep_%d", 500)
    r.set((prefix + "prod_").encode() + b"\xff", "binary")
    r.set((prefix + "prod_").encode() + b"\r\n$3\r\nkeep_1\r\n", "looks like RESP")
    try:
        deleted = getattr(_redis, method)(r, prefix + "prod_*", 100)
        assert deleted == 5002
        assert count_keys(r, prefix + "prod_*") == 0 and count_keys(r, prefix + "keep_*") == 500
    finally:
        delete_prefix(r, prefix)


@pytest.fixture
def acl_user(conn):
    """A Redis ACL user made for one test (ACL users are server-wide: unique name, deleted after)."""
    admin = redis.Redis(host=conn["host"], port=conn["port"], password=conn["password"])
    made = []

    def make(rules):
        name = "rcc-h6-%d-%d" % (os.getpid(), len(made))
        admin.execute_command("ACL", "SETUSER", name, "reset", "on", ">user-pw-" + name, "~rcc:acl:*", *rules)
        made.append(name)
        return name, "user-pw-" + name
    yield make
    for name in made:
        admin.execute_command("ACL", "DELUSER", name)


def test_invalidate_without_scripting_permission_uses_the_raw_path(conn, acl_user):
    user, password = acl_user(["+@all", "-@scripting"])
    r = client(conn, 11)
    delete_prefix(r, "rcc:acl:")
    fill(r, "rcc:acl:prod_%d", 3000)
    fill(r, "rcc:acl:keep_%d", 300)
    try:
        result = redis_cache_check.check(_redis.connect(module_params(conn, login_user=user, login_password=password)),
                                         module_params(conn, invalidate=["rcc:acl:prod_*"]))
        assert result["deleted"] == {"rcc:acl:prod_*": 3000} and result["changed"] is True
        assert count_keys(r, "rcc:acl:prod_*") == 0 and count_keys(r, "rcc:acl:keep_*") == 300
    finally:
        delete_prefix(r, "rcc:acl:")


def test_invalidate_without_unlink_permission_fails_with_the_servers_words(conn, acl_user):
    user, password = acl_user(["+@all", "-@scripting", "-unlink"])
    r = client(conn, 11)
    delete_prefix(r, "rcc:acl:")
    fill(r, "rcc:acl:prod_%d", 50)
    try:
        values = module_params(conn, login_user=user, login_password=password, invalidate=["rcc:acl:prod_*"])
        with pytest.raises(ProdreadyError) as err:
            redis_cache_check.check(_redis.connect(values), values)
        assert "NOPERM" in str(err.value) and "unlink" in str(err.value)
        assert count_keys(r, "rcc:acl:prod_*") == 50
    finally:
        delete_prefix(r, "rcc:acl:")
