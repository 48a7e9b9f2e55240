#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: redis_cache_check
short_description: Check and manage the Redis cache around a deploy
version_added: 0.1.0
description:
  - Pings Redis and measures the latency; measures the hit ratio and the evictions over a
    window of seconds (from C(INFO stats) deltas, not lifetime counters); compares memory
    with C(maxmemory); counts keys per pattern with C(SCAN).
  - Invalidates keys by pattern with C(SCAN) and pipelined C(UNLINK) in batches, never
    C(KEYS), so the server is never blocked; flushes the database only with a confirmation.
  - Order of a run is ping, then the actions (O(invalidate), O(flush)), then the
    measurements, so RV(pattern_counts) shows what is left after an invalidation.
  - A hit ratio over fewer lookups than O(min_samples) is V(inconclusive) and fails; no
    data is never a pass.
  - Replaces the runbooks' C(redis-cli ping), C(redis-cli INFO stats), C(KEYS "prod_*")
    and C(FLUSHDB).
author:
  - prodready.deploy maintainers (@prodready)
extends_documentation_fragment:
  - prodready.deploy.redis
  - prodready.deploy.platform
options:
  max_ping_ms:
    description:
      - Highest acceptable PING round trip, in ms (median of three).
    type: float
  window:
    description:
      - Seconds over which RV(hits), RV(misses) and RV(evicted_keys) are measured.
      - Used only when O(min_hit_ratio) or O(max_evicted_keys) is set.
    type: float
    default: 5.0
  min_hit_ratio:
    description:
      - Lowest acceptable C(keyspace_hits / (hits + misses)) within O(window), a fraction.
      - Redis counts hits and misses for the whole server, all databases together.
    type: float
  min_samples:
    description:
      - Fewest hits + misses within O(window) for the hit ratio to mean anything; fewer is
        V(inconclusive) and fails the check.
    type: int
    default: 100
  max_memory_ratio:
    description:
      - Highest acceptable C(used_memory / maxmemory), a fraction. Without a C(maxmemory)
        the system memory is the limit.
    type: float
  max_evicted_keys:
    description:
      - Most keys Redis may evict within O(window).
    type: int
  key_patterns:
    description:
      - Glob patterns whose keys are counted with C(SCAN) into RV(pattern_counts).
    type: list
    elements: str
    default: []
  invalidate:
    description:
      - Glob patterns (for example V(prod_*)) whose keys are deleted with C(SCAN) + C(UNLINK).
      - In check mode nothing is deleted and RV(deleted) is the number that would be.
      - A pattern made only of C(*) is refused, use O(flush) for that.
    type: list
    elements: str
    default: []
  batch_size:
    description:
      - C(SCAN COUNT) hint and the most keys per C(UNLINK). Larger is faster; each batch is
        one short server command.
    type: int
    default: 1000
  flush:
    description:
      - Delete every key of the selected database (C(FLUSHDB ASYNC)). Needs O(confirm_flush).
    type: bool
    default: false
  confirm_flush:
    description:
      - Must equal the selected database number for O(flush) to run, so a flush of the
        wrong database is refused.
    type: int
  fail_on_breach:
    description:
      - Fail the task when a threshold is breached. V(false) only reports (RV(passed) tells).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Measurements run as usual; O(invalidate) and O(flush) delete nothing and return in RV(deleted) the number of keys they would delete.
  diff_mode:
    support: none
    description: Nothing is edited in place.

  action_group:
    support: full
    membership: [prodready.deploy.deploy, prodready.deploy.redis]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) and C(group/prodready.deploy.redis) set this module's options."""

EXAMPLES = r"""
- name: Cache gate after the switch (runbook 000's redis-cli ping and INFO stats)
  prodready.deploy.redis_cache_check:
    login_host: cache.internal
    login_password: "{{ vault_redis_password }}"
    max_ping_ms: 20
    window: 30
    min_hit_ratio: 0.8
    min_samples: 500
    max_memory_ratio: 0.9
    max_evicted_keys: 0

- name: Invalidate the product cache (instead of KEYS "prod_*" | xargs DEL)
  prodready.deploy.redis_cache_check:
    url: "rediss://cache.internal:6380/2"
    ca_cert: /etc/ssl/internal-ca.pem
    invalidate: ["prod_*", "catalog:*"]
    key_patterns: ["prod_*"]
  register: invalidated
  environment:
    REDIS_PASSWORD: "{{ vault_redis_password }}"

- name: Flush db 4, explicitly confirmed
  prodready.deploy.redis_cache_check:
    login_port: 6379
    db: 4
    flush: true
    confirm_flush: 4
"""

RETURN = r"""
passed:
  description: Whether every threshold was met.
  returned: always
  type: bool
  sample: true
reason:
  description:
    - Every breached threshold with the measured value and the limit, separated by C(; ),
      or V(passed). Starts with V(inconclusive) when there were too few lookups.
  returned: always
  type: str
  sample: "hit ratio 72.0% < 80.0% (720 hits, 280 misses in 30 s)"
breaches:
  description: The breached thresholds, one sentence each.
  returned: always
  type: list
  elements: str
  sample: []
db:
  description: The database number used.
  returned: always
  type: int
  sample: 0
ping_ms:
  description: PING round trip in ms (median of three).
  returned: always
  type: float
  sample: 0.21
version:
  description: Redis server version.
  returned: always
  type: str
  sample: "7.0.15"
hit_ratio:
  description: hits / (hits + misses) within the window; V(null) without a window or lookups.
  returned: always
  type: float
  sample: 0.9
hits:
  description: C(keyspace_hits) within the window (server-wide); V(null) without a window.
  returned: always
  type: int
  sample: 900
misses:
  description: C(keyspace_misses) within the window (server-wide); V(null) without a window.
  returned: always
  type: int
  sample: 100
window_s:
  description: Measured length of the window in seconds; V(0) when no window was needed.
  returned: always
  type: float
  sample: 5.0
evicted_keys:
  description: Keys evicted within the window; V(null) without a window.
  returned: always
  type: int
  sample: 0
used_memory:
  description: C(used_memory) in bytes.
  returned: always
  type: int
  sample: 1141568
maxmemory:
  description: C(maxmemory) in bytes, V(0) when unlimited.
  returned: always
  type: int
  sample: 1073741824
memory_ratio:
  description: used_memory / maxmemory (or system memory when maxmemory is 0); V(null) if unknown.
  returned: always
  type: float
  sample: 0.001
pattern_counts:
  description: Number of keys per pattern of O(key_patterns), counted after the actions.
  returned: always
  type: dict
  sample: {"prod_*": 0}
deleted:
  description:
    - Keys deleted per pattern of O(invalidate), and under C(flush) the keys flushed.
    - In check mode, the numbers that would be deleted.
  returned: always
  type: dict
  sample: {"prod_*": 100000}
flushed:
  description: Whether the database was flushed (in check mode, whether it would be).
  returned: always
  type: bool
  sample: false
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _redis
from ansible_collections.prodready.deploy.plugins.module_utils import _stats


def argument_spec():
    spec = _redis.redis_connection_argument_spec()
    spec.update(
        max_ping_ms=dict(type="float"),
        window=dict(type="float", default=5.0),
        min_hit_ratio=dict(type="float"),
        min_samples=dict(type="int", default=100),
        max_memory_ratio=dict(type="float"),
        max_evicted_keys=dict(type="int", no_log=False),
        key_patterns=dict(type="list", elements="str", default=[], no_log=False),
        invalidate=dict(type="list", elements="str", default=[]),
        batch_size=dict(type="int", default=1000),
        flush=dict(type="bool", default=False),
        confirm_flush=dict(type="int"),
        fail_on_breach=dict(type="bool", default=True),
    )
    return spec


def validate(params):
    """Check option values before connecting (bad input fails with the option's name)."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    _stats.validate_fraction("min_hit_ratio", params.get("min_hit_ratio"))
    _stats.validate_fraction("max_memory_ratio", params.get("max_memory_ratio"))
    for name in ("max_ping_ms", "max_evicted_keys", "min_samples"):
        if params.get(name) is not None and params[name] < 0:
            raise ProdreadyError("%s must be 0 or greater, got %s" % (name, params[name]))
    if params["window"] <= 0:
        raise ProdreadyError("window must be greater than 0 seconds, got %s" % params["window"])
    if params["batch_size"] < 1:
        raise ProdreadyError("batch_size must be 1 or greater, got %s" % params["batch_size"])
    for pattern in params["key_patterns"]:
        _redis.validate_pattern(pattern, "key_patterns")
    for pattern in params["invalidate"]:
        _redis.validate_pattern(pattern, "invalidate")
        if _redis.matches_everything(pattern):
            raise ProdreadyError("invalidate pattern %r matches every key: use flush with confirm_flush "
                                 "to empty a database" % pattern)


def _sleep(seconds):
    # Kept as a module function so the integration test can run its traffic in the window.
    time.sleep(seconds)


def measure_ping(client, rounds=3):
    """Median PING round trip in ms."""
    times = []
    for dummy in range(rounds):
        started = time.perf_counter()
        client.ping()
        times.append((time.perf_counter() - started) * 1000.0)
    return round(sorted(times)[len(times) // 2], 3)


def measure_window(client, window):
    """hits, misses, evicted_keys as INFO stats deltas over ``window`` seconds, and its length."""
    before = client.info("stats")
    started = time.perf_counter()
    _sleep(window)
    after = client.info("stats")
    elapsed = time.perf_counter() - started
    return dict(
        hits=int(after["keyspace_hits"]) - int(before["keyspace_hits"]),
        misses=int(after["keyspace_misses"]) - int(before["keyspace_misses"]),
        evicted_keys=int(after["evicted_keys"]) - int(before["evicted_keys"]),
        window_s=round(elapsed, 3),
    )


def check(client, params, check_mode=False):
    """Actions then measurements on a connected client (a real one or a test's fake);
    returns the result dict, raises ProdreadyError on a breach (unless fail_on_breach is false)."""
    db = _redis.selected_db(client)
    result = dict(changed=False, db=db, passed=None, reason="", breaches=[], hit_ratio=None, hits=None,
                  misses=None, window_s=0.0, evicted_keys=None, pattern_counts={}, deleted={},
                  flushed=False, memory_ratio=None)
    result["ping_ms"] = measure_ping(client)
    result["version"] = str(client.info("server").get("redis_version"))

    if params["flush"]:
        if params.get("confirm_flush") is None or params["confirm_flush"] != db:
            raise ProdreadyError(
                "flush of Redis db %d refused: set confirm_flush: %d to confirm (got %s)"
                % (db, db, "nothing" if params.get("confirm_flush") is None else params["confirm_flush"]),
                db=db, flushed=False)
    batch = params["batch_size"]
    for pattern in params["invalidate"]:
        if check_mode:
            result["deleted"][pattern] = _redis.scan_count(client, pattern, batch)
        else:
            result["deleted"][pattern] = _redis.scan_unlink(client, pattern, batch)
    if params["flush"]:
        size = int(client.dbsize())
        if not check_mode:
            client.flushdb(asynchronous=True)
        result["deleted"]["flush"] = size
        result["flushed"] = True
    result["changed"] = any(count > 0 for count in result["deleted"].values())

    memory = client.info("memory")
    result["used_memory"] = int(memory.get("used_memory", 0))
    result["maxmemory"] = int(memory.get("maxmemory", 0))
    figures = dict(used_memory=result["used_memory"], maxmemory=result["maxmemory"],
                   total_system_memory=int(memory.get("total_system_memory", 0)))
    ratio = _stats.memory_ratio(figures)[0]
    result["memory_ratio"] = round(ratio, 6) if ratio is not None else None

    for pattern in params["key_patterns"]:
        result["pattern_counts"][pattern] = _redis.scan_count(client, pattern, batch)

    if params.get("min_hit_ratio") is not None or params.get("max_evicted_keys") is not None:
        window = measure_window(client, params["window"])
        result.update(window)
        figures.update(window)
        ratio = _stats.hit_ratio(window["hits"], window["misses"])
        result["hit_ratio"] = round(ratio, 6) if ratio is not None else None
    else:
        figures.update(hits=0, misses=0, evicted_keys=None)

    breaches = []
    if params.get("max_ping_ms") is not None and result["ping_ms"] > params["max_ping_ms"]:
        breaches.append("ping %s ms > %s ms" % (_stats.format_ms(result["ping_ms"]),
                                                _stats.format_ms(params["max_ping_ms"])))
    breaches += _stats.cache_breaches(figures, min_hit_ratio=params.get("min_hit_ratio"),
                                      min_samples=params["min_samples"],
                                      max_memory_ratio=params.get("max_memory_ratio"),
                                      max_evicted_keys=params.get("max_evicted_keys"))
    result["breaches"] = breaches
    result["passed"] = not breaches
    result["reason"] = "; ".join(breaches) if breaches else "passed"
    if breaches and params["fail_on_breach"]:
        raise ProdreadyError("redis_cache_check failed on %s: %s"
                             % (_redis.describe_target(params), result["reason"]), **result)
    return result


def run(module):
    """Validate `module.params`, connect, then check(); returns the result dict."""
    validate(module.params)
    return check(_redis.connect(module.params), module.params, module.check_mode)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=_redis.REDIS_MUTUALLY_EXCLUSIVE,
        required_if=[["flush", True, ["confirm_flush"]]],
    )
    if not _redis.HAS_REDIS:
        module.fail_json(msg=missing_required_lib("redis"), exception=_redis.REDIS_IMPORT_ERROR)
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)
    except _redis.redis.exceptions.RedisError as e:  # e.g. the server went away mid-run
        module.fail_json(msg="redis_cache_check on %s failed: %s"
                         % (_redis.describe_target(module.params), _redis.explain_redis_error(e)))


if __name__ == "__main__":
    main()
