#!/usr/bin/env python
"""Benchmark: invalidate 1M Redis keys by pattern (among 2M), ours vs redis-cli | xargs.

    .venv/bin/python bench/bench_redis_invalidate.py [--keys 1000000] [--rounds 1]

Uses the sandbox Redis, database 10 only, and deletes its keys at the end. For each method
the same 1M `bench:inv:prod_*` keys (among 1M `bench:inv:keep_*` others) are created,
deleted, and checked: every pattern key gone, every other key still there.

Methods:
- ours:      redis_cache_check's scan_unlink(), as the module runs it: SCAN COUNT 1000 pages
             and their UNLINK run server-side by a Lua script (EVALSHA, pages until a 2 ms
             budget is spent per call), the keys never travel;
- raw:       its fallback where scripting is not allowed (scan_unlink_raw): each page's keys
             UNLINKed in the same round trip as the next SCAN, the reply's bytes reused as
             the UNLINK command (no key decoded in Python);
- ours-pipe: the same pipeline through redis-py's parser (every key decoded, re-encoded);
- baseline:  the runbooks' `redis-cli --scan --pattern P | xargs redis-cli unlink`
             (redis-cli's default SCAN COUNT, 10);
- py-naive:  redis-py `scan_iter(count=1000)` then one UNLINK per 1000 keys, without the
             pipelining (what a quick script would do), to show what the pipeline buys.

While each method runs, a separate process sends PING in a loop and records the longest
round trip ("stall"): the time another client waits while the deletion runs. The same
loop over an idle second gives the noise floor of the machine. Two load-independent
figures go beside it: the server's own CPU seconds spent per method (INFO cpu), and our
commands the server logged as slow (SLOWLOG, its threshold, usually 10 ms).

Prints the ratios (baseline time / ours) measured in this one run. Passwords go through
the REDISCLI_AUTH environment variable, never argv.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".build" / "collections"))
sys.path.insert(0, str(ROOT / "scripts"))

import redis  # noqa: E402
import sandbox as sandbox_script  # noqa: E402
from ansible_collections.prodready.deploy.plugins.module_utils import _redis  # noqa: E402

DB = 10
PATTERN = "bench:inv:prod_*"
CLIENT_NAME = "prodready-bench-invalidate"
SLOWLOG_MS = None
PING_LOOP = r"""
import json, sys, time, redis
r = redis.Redis(host=sys.argv[1], port=int(sys.argv[2]), password=sys.stdin.readline().strip(), db=int(sys.argv[4]))
stop = sys.argv[3]
import os
r.ping()
print("ready", flush=True)
worst, count, started = 0.0, 0, time.perf_counter()
while not os.path.exists(stop):
    t = time.perf_counter()
    r.ping()
    worst = max(worst, time.perf_counter() - t)
    count += 1
    time.sleep(0.001)  # a steady client, not a spinning one that steals a CPU from the benchmark
print(json.dumps({"max_ms": worst * 1000.0, "pings": count, "seconds": time.perf_counter() - started}))
"""


class PingLoop(object):
    """A PING loop in another process (no GIL shared with the deletion)."""

    def __init__(self, host, port, password, tmpdir):
        self.stop_file = Path(tmpdir) / ("stop-%d" % os.getpid())
        if self.stop_file.exists():
            self.stop_file.unlink()
        self.proc = subprocess.Popen([sys.executable, "-c", PING_LOOP, host, str(port), str(self.stop_file), str(DB)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.proc.stdin.write(password + "\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ready":  # connected and answered a first PING
            raise SystemExit("the PING loop could not connect to Redis")

    def finish(self):
        self.stop_file.touch()
        out = self.proc.communicate(timeout=30)[0]
        self.stop_file.unlink()
        return json.loads(out)


_FILL_LUA = """
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do redis.call('SET', ARGV[1] .. i, ARGV[4]) end
return 1
"""


def fill(r, prefix, count, chunk=10000):
    """Create `count` keys `<prefix><i>` with 16-byte values, 10k per server-side call."""
    script = r.register_script(_FILL_LUA)
    for start in range(0, count, chunk):
        script(args=[prefix, start, min(start + chunk, count) - 1, "x" * 16])


def count_keys(r, pattern):
    return _redis.scan_count(r, pattern, 5000)


def run_ours(r, params, budget_ms=_redis.DEFAULT_BUDGET_MS):
    return _redis.scan_unlink(r, PATTERN, 1000, budget_ms=budget_ms)


def run_naive(r):
    batch = []
    for key in r.scan_iter(match=PATTERN, count=1000):
        batch.append(key)
        if len(batch) == 1000:
            r.unlink(*batch)
            batch = []
    if batch:
        r.unlink(*batch)


def run_redis_cli(params):
    # redis-cli 7.0 has no --count: its --scan uses SCAN's default COUNT (10).
    cli = "redis-cli -h %s -p %d -n %d" % (params["host"], params["port"], DB)
    scan = cli + " --scan --pattern '%s'" % PATTERN
    env = dict(os.environ, REDISCLI_AUTH=params["password"])
    subprocess.run(["bash", "-c", "set -o pipefail; %s | xargs %s unlink > /dev/null" % (scan, cli)],
                   env=env, check=True)


def slow_commands_since(r, last_id, client_name):
    """Our commands the server logged as slow (SLOWLOG, >= slowlog-log-slower-than) since last_id."""
    entries = [e for e in r.slowlog_get(128) if e["id"] > last_id]
    return [e for e in entries if (e.get("client_name") or b"") in (client_name, client_name.encode())]


def measure(name, action, r, params, keys, tmpdir):
    fill(r, "bench:inv:prod_", keys)
    assert count_keys(r, PATTERN) == keys
    before = r.slowlog_get(1)
    last_id = before[0]["id"] if before else -1
    loop = PingLoop(params["host"], params["port"], params["password"], tmpdir)
    cpu_before = server_cpu(r)
    try:
        started = time.perf_counter()
        action()
        seconds = time.perf_counter() - started
    finally:
        stall = loop.finish()
    cpu = server_cpu(r) - cpu_before
    # Read before the verification below, whose own SCANs would be counted too.
    slow = slow_commands_since(r, last_id, CLIENT_NAME)
    left = count_keys(r, PATTERN)
    kept = count_keys(r, "bench:inv:keep_*")
    if left != 0 or kept != keys:
        raise SystemExit("%s: %d pattern keys left, %d of %d other keys kept" % (name, left, kept, keys))
    slowest = max([e["duration"] / 1000.0 for e in slow] or [0.0])
    print("%-10s %7.2f s  %7.0f keys/s  redis CPU %5.2f s  longest PING %6.1f ms (%d pings)  "
          "slowlog: %d of our commands >= %s ms, slowest %.1f ms"
          % (name, seconds, keys / seconds, cpu, stall["max_ms"], stall["pings"], len(slow), SLOWLOG_MS, slowest),
          flush=True)
    return dict(seconds=seconds, cpu=cpu, stall_ms=stall["max_ms"], pings=stall["pings"], slow=len(slow),
                slowest_ms=slowest)


def server_cpu(r):
    """CPU seconds the Redis server has used (user + system), all threads."""
    cpu = r.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _terminate(signum, frame):
    raise SystemExit("interrupted by signal %d" % signum)  # so the cleanup in main() runs


def main():
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000000, help="keys to delete (and as many to keep)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--raw", action="store_true", help="also run the fallback without scripting")
    parser.add_argument("--extra", action="store_true", help="also run raw, ours-pipe and py-naive")
    parser.add_argument("--budget-ms", type=float, default=_redis.DEFAULT_BUDGET_MS,
                        help="ours: the time one script call may hold Redis (the module's default: %(default)s)")
    opts = parser.parse_args()

    info = sandbox_script.load()
    svc = info["services"]["redis"]
    params = dict(host=svc["host"], port=svc["port"], password=info["secrets"]["redis_password"])
    r = redis.Redis(host=params["host"], port=params["port"], password=params["password"], db=DB,
                    client_name=CLIENT_NAME)
    global SLOWLOG_MS
    SLOWLOG_MS = int(r.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]) / 1000.0
    if r.dbsize():
        raise SystemExit("Redis db %d is not empty: it belongs to this benchmark, clean it first" % DB)
    memory = r.info("memory")
    need = opts.keys * 2 * 110  # ~110 bytes per small key with its dict entry, measured on Redis 7
    if memory["maxmemory"] and memory["used_memory"] + need > 0.8 * memory["maxmemory"]:
        raise SystemExit("not enough room under maxmemory for %d keys; lower --keys" % (2 * opts.keys))

    tmpdir = ROOT / ".bench-tmp"
    tmpdir.mkdir(exist_ok=True)
    results = {"ours": [], "raw": [], "ours-pipe": [], "redis-cli": [], "py-naive": []}
    methods = [("ours", lambda: run_ours(r, params, opts.budget_ms)), ("redis-cli", lambda: run_redis_cli(params))]
    if opts.raw or opts.extra:
        methods.insert(1, ("raw", lambda: _redis.scan_unlink_raw(r, PATTERN, 1000)))
    if opts.extra:
        methods += [("ours-pipe", lambda: _redis.scan_unlink_pipelined(r, PATTERN, 1000)),
                    ("py-naive", lambda: run_naive(r))]
    try:
        print("redis %s, db %d: %d keys matching %s among %d"
              % (r.info("server")["redis_version"], DB, opts.keys, PATTERN, 2 * opts.keys), flush=True)
        fill(r, "bench:inv:keep_", opts.keys)
        idle = PingLoop(params["host"], params["port"], params["password"], tmpdir)
        time.sleep(1.0)
        floor = idle.finish()
        print("idle       longest PING %6.1f ms over 1 s (noise floor of this machine)" % floor["max_ms"])
        for round_number in range(opts.rounds):
            # Alternate the order, so neither method always runs on a warmer server.
            for name, action in (methods if round_number % 2 == 0 else list(reversed(methods))):
                results[name].append(measure(name, action, r, params, opts.keys, tmpdir))
    finally:
        _redis.scan_unlink(r, "bench:inv:*", 5000)
        left = r.dbsize()
        print("cleanup: db %d holds %d keys" % (DB, left))

    def best(name):
        return min(x["seconds"] for x in results[name])

    ours = best("ours")
    print("")
    print("ratio redis-cli --scan | xargs unlink / ours:  %.2fx (target >= 2x, best of %d rounds each)"
          % (best("redis-cli") / ours, opts.rounds))
    if results["raw"]:
        print("ratio redis-cli / raw (no scripting):          %.2fx" % (best("redis-cli") / best("raw")))
        cpu_ratio = min(x["cpu"] for x in results["raw"]) / min(x["cpu"] for x in results["ours"])
        print("redis CPU per run, raw / ours:                 %.2fx" % cpu_ratio)
        print("longest PING during raw: %.1f ms" % max(x["stall_ms"] for x in results["raw"]))
    if opts.extra:
        print("ratio redis-cli / ours-pipe (redis-py parser): %.2fx" % (best("redis-cli") / best("ours-pipe")))
        print("ratio py-naive / ours:                         %.2fx" % (best("py-naive") / ours))
    print("redis CPU per run, redis-cli / ours:           %.2fx (work the method costs the server, "
          "independent of machine load)" % (min(x["cpu"] for x in results["redis-cli"]) /
                                            min(x["cpu"] for x in results["ours"])))
    print("longest PING during ours: %.1f ms (target <= 50 ms), during redis-cli: %.1f ms, idle floor %.1f ms"
          % (max(x["stall_ms"] for x in results["ours"]), max(x["stall_ms"] for x in results["redis-cli"]),
             floor["max_ms"]))
    print("slowlog, our commands slower than %s ms during ours: %d (slowest %.1f ms)"
          % (SLOWLOG_MS, sum(x["slow"] for x in results["ours"]), max(x["slowest_ms"] for x in results["ours"])))


if __name__ == "__main__":
    main()
