"""redis_cache_check: docs agree with the spec; returned keys are documented; input checks."""

import pytest
import redis
import yaml

from ansible_collections.prodready.deploy.plugins.doc_fragments.redis import ModuleDocFragment
from ansible_collections.prodready.deploy.plugins.modules import redis_cache_check
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

DOC = yaml.safe_load(redis_cache_check.DOCUMENTATION)
RETURN = yaml.safe_load(redis_cache_check.RETURN)


def documented_options():
    options = dict(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"])
    assert "prodready.deploy.redis" in DOC["extends_documentation_fragment"]
    options.update(DOC["options"])
    return options


def params(**overrides):
    values = dict((name, spec.get("default")) for name, spec in redis_cache_check.argument_spec().items())
    values.update(overrides)
    return values


@pytest.fixture(autouse=True)
def pipelined_invalidation(monkeypatch):
    # The module's scan_unlink() runs a Lua script, or without scripting talks RESP on the
    # connection's socket; FakeRedis has neither: here the same pages go through redis-py's
    # pipeline API, which it implements. Both real paths are tested against the sandbox
    # Redis (tests/integration/test_redis_cache_check.py), the socket parser in test_redis.py.
    from ansible_collections.prodready.deploy.plugins.module_utils import _redis
    monkeypatch.setattr(_redis, "scan_unlink", lambda client, pattern, batch=1000:
                        _redis.scan_unlink_pipelined(client, pattern, batch))


class FakePipeline(object):
    def __init__(self, client):
        self.client, self.calls = client, []

    def execute_command(self, *args, **options):
        self.calls.append(args)

    def execute(self):
        return [self.client.execute_command(*args) for args in self.calls]


class FakeRedis(object):
    """Just enough of redis.Redis for check(): keys in a dict, SCAN in one page."""

    def __init__(self, keys, db=3):
        self.keys = dict(keys)
        self.connection_pool = type("Pool", (), {"connection_kwargs": {"db": db}})()
        self.flushed = False

    def ping(self):
        return True

    def info(self, section):
        return {"server": {"redis_version": "7.0.15"},
                "memory": {"used_memory": 500, "maxmemory": 1000, "total_system_memory": 4000},
                "stats": {"keyspace_hits": 10, "keyspace_misses": 0, "evicted_keys": 0}}[section]

    def dbsize(self):
        return len(self.keys)

    def flushdb(self, asynchronous=False):
        self.keys.clear()
        self.flushed = True

    def pipeline(self, transaction=True):
        return FakePipeline(self)

    def register_script(self, source):
        # As a server whose ACL forbids scripting.
        def denied(args=None):
            raise redis.exceptions.ResponseError("NOPERM this user has no permissions to run the 'evalsha' command")
        return denied

    def execute_command(self, *args, **options):
        import fnmatch
        if args[0] == "SCAN":
            pattern = args[3]
            return 0, [k.encode() for k in self.keys if fnmatch.fnmatchcase(k, pattern)]
        if args[0] == "UNLINK":
            gone = [k.decode() for k in args[1:] if k.decode() in self.keys]
            for key in gone:
                del self.keys[key]
            return len(gone)
        raise AssertionError(args)


def test_documented_options_match_argument_spec():
    spec = redis_cache_check.argument_spec()
    options = documented_options()
    assert set(options) == set(spec)
    for name, entry in spec.items():
        doc = options[name]
        assert doc["type"] == entry["type"], name
        assert doc.get("default") == entry.get("default"), name
        assert doc.get("choices") == entry.get("choices"), name
        assert doc.get("elements") == entry.get("elements"), name
    assert spec["login_password"]["no_log"] is True and spec["url"]["no_log"] is True


def test_examples_use_only_documented_options():
    options = documented_options()
    for task in yaml.safe_load(redis_cache_check.EXAMPLES):
        assert set(task["prodready.deploy.redis_cache_check"]) <= set(options), task["name"]


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(invalidate=["prod_*"], key_patterns=["prod_*", "user_*"], max_memory_ratio=0.9),
    dict(flush=True, confirm_flush=3, max_ping_ms=100),
])
def test_every_returned_key_is_documented(overrides):
    result = redis_cache_check.check(FakeRedis({"prod_1": 1, "user_1": 1}), params(**overrides))
    assert set(result) - {"changed"} == set(RETURN), set(result) ^ set(RETURN)


def test_check_mode_counts_and_deletes_nothing():
    client = FakeRedis({"prod_1": 1, "prod_2": 1, "user_1": 1})
    result = redis_cache_check.check(client, params(invalidate=["prod_*"], flush=True, confirm_flush=3),
                                     check_mode=True)
    assert result["deleted"] == {"prod_*": 2, "flush": 3}
    assert result["changed"] is True
    assert len(client.keys) == 3 and not client.flushed


def test_invalidate_deletes_only_the_pattern():
    client = FakeRedis({"prod_1": 1, "prod_2": 1, "user_1": 1})
    result = redis_cache_check.check(client, params(invalidate=["prod_*"], key_patterns=["prod_*"]))
    assert result["deleted"] == {"prod_*": 2} and result["pattern_counts"] == {"prod_*": 0}
    assert list(client.keys) == ["user_1"]


def test_nothing_to_delete_is_not_a_change():
    result = redis_cache_check.check(FakeRedis({"user_1": 1}), params(invalidate=["prod_*"]))
    assert result["changed"] is False and result["deleted"] == {"prod_*": 0}


@pytest.mark.parametrize("confirm", [None, 0, 4])
def test_flush_refused_without_matching_confirmation(confirm):
    client = FakeRedis({"k": 1}, db=3)
    with pytest.raises(ProdreadyError) as err:
        redis_cache_check.check(client, params(flush=True, confirm_flush=confirm))
    assert "flush of Redis db 3 refused: set confirm_flush: 3 to confirm" in str(err.value)
    assert client.keys == {"k": 1}


@pytest.mark.parametrize("overrides, fragment", [
    (dict(min_hit_ratio=1.5), "min_hit_ratio must be a fraction between 0 and 1"),
    (dict(max_memory_ratio=1.5), "max_memory_ratio must be a fraction between 0 and 1"),
    (dict(max_ping_ms=-1), "max_ping_ms: must be 0 or more, got -1"),
    (dict(max_evicted_keys=-3), "max_evicted_keys: must be 0 or more, got -3"),
    (dict(min_samples=-1), "min_samples: must be 0 or more, got -1"),
    (dict(window=0), "window must be greater than 0 seconds"),
    (dict(batch_size=0), "batch_size must be 1 or greater"),
    (dict(invalidate=[""]), "invalidate must hold non-empty glob patterns"),
    (dict(invalidate=["*"]), "invalidate pattern '*' matches every key: use flush"),
    (dict(key_patterns=[""]), "key_patterns must hold non-empty glob patterns"),
])
def test_bad_input_is_a_clear_error(overrides, fragment):
    with pytest.raises(ProdreadyError) as err:
        redis_cache_check.validate(params(**overrides))
    assert fragment in str(err.value)


def test_breach_raises_with_figures():
    client = FakeRedis({})
    with pytest.raises(ProdreadyError) as err:
        redis_cache_check.check(client, params(max_memory_ratio=0.4, login_port=26379))
    assert str(err.value) == ("redis_cache_check failed on redis://localhost:26379/0: "
                              "memory 50.0% of maxmemory > 40.0% (500 of 1000 bytes)")
    assert err.value.details["passed"] is False and err.value.details["used_memory"] == 500


def test_report_only_does_not_raise():
    result = redis_cache_check.check(FakeRedis({}), params(max_memory_ratio=0.4, fail_on_breach=False))
    assert result["passed"] is False and result["breaches"] == ["memory 50.0% of maxmemory > 40.0% (500 of 1000 bytes)"]


def test_run_validates_then_connects_then_checks(monkeypatch):
    from types import SimpleNamespace
    from ansible_collections.prodready.deploy.plugins.module_utils import _redis
    client = FakeRedis({"prod_1": 1, "user_1": 1})
    connected = []
    monkeypatch.setattr(_redis, "connect", lambda values: connected.append(values) or client)
    with pytest.raises(ProdreadyError, match="window must be greater than 0 seconds, got 0"):
        redis_cache_check.run(SimpleNamespace(params=params(window=0), check_mode=False))
    assert connected == []
    result = redis_cache_check.run(SimpleNamespace(params=params(invalidate=["prod_*"]), check_mode=True))
    assert len(connected) == 1 and result["deleted"] == {"prod_*": 1} and len(client.keys) == 2
