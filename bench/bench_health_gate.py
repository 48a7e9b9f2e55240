#!/usr/bin/env python
"""Benchmark: health_gate's sampler vs ApacheBench against the sandbox nginx static file.

    .venv/bin/python bench/bench_health_gate.py [--requests 10000] [--concurrency 8]

Runs, in one go and on the same URL (sandbox["services"]["nginx"]["static_url"]):
- health_gate's sampler, built as run() builds it (make_prober, then sample(): for this
  http:// URL the single-threaded LoopSampler, C keep-alive connections, each request
  timed from its send to the kernel's arrival time of its response) at concurrency C;
- `ab -k -c C -n N` (keep-alive, like our pooled session) and `ab -c C -n N` (a new
  connection per request, as the runbooks' `ab -n 100 -c 10` does);
- the same two at concurrency 1, where both tools measure the server rather than their
  own queueing, to check that our latency measurement agrees with ab's.

Then the same comparison against an endpoint that takes 20 ms to answer (the tests' own
HTTP server, in a separate process), where the service's time dominates both clients'
overhead: there the percentiles of the two tools should agree.

Prints throughput ratios (ours / ab) and each percentile's ratio (ours / ab). ab's
percentiles come from its `-e` CSV (fractional ms), not its integer-ms summary table, and
ours are computed here with ab's definition (value at index round(n*q/100)); the module
itself reports linear interpolation, which differs by at most one sample's rank.
"""

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".build" / "collections"))
sys.path.insert(0, str(ROOT / "scripts"))

import sandbox as sandbox_script  # noqa: E402
from ansible_collections.prodready.deploy.plugins.module_utils import _http  # noqa: E402
from ansible_collections.prodready.deploy.plugins.modules import health_gate  # noqa: E402


def ab_percentile(ordered, q):
    """ab's own definition (its -e CSV): the value at index round(n * q / 100), 0-based."""
    return ordered[min(len(ordered) - 1, int(0.5 + len(ordered) * q / 100.0))]


def ours(url, requests, concurrency):
    """health_gate's sampler as run() builds it, with the percentiles computed as ab does."""
    params = dict((name, spec.get("default")) for name, spec in health_gate.argument_spec().items())
    params.update(url=url, requests=requests, concurrency=concurrency, request_timeout=10)
    urls, thresholds, expectations = health_gate.validate(params)
    prober = _http.make_prober(urls, "GET", {}, 10, expectations, concurrency=concurrency)
    try:
        samples, elapsed = prober.sample(urls, count=requests, concurrency=concurrency)
    finally:
        prober.close()
    figures = _http.aggregate(samples)  # the module's own summary (linear interpolation)
    ordered = sorted(x["latency_ms"] for x in samples if x["latency_ms"] is not None)
    sampler = "LoopSampler" if _http.loop_applies(urls, False) and isinstance(prober, _http.LeanProber) \
        else type(prober).__name__ + " threads"
    if sampler == "LoopSampler" and _http.SO_TIMESTAMPNS is None:
        sampler += " (no kernel timestamps)"
    return dict(rps=len(samples) / elapsed, p50=ab_percentile(ordered, 50), p95=ab_percentile(ordered, 95),
                p99=ab_percentile(ordered, 99), max=ordered[-1], errors=figures["errors"],
                linear_p95=figures["latency_ms"]["p95"], prober=sampler)


def ab(url, requests, concurrency, keepalive):
    with tempfile.NamedTemporaryFile(suffix=".csv") as table:
        argv = ["ab", "-q", "-c", str(concurrency), "-n", str(requests), "-e", table.name]
        if keepalive:
            argv.append("-k")
        out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
        with open(table.name) as fh:
            rows = list(csv.reader(fh))[1:]
        served = dict((int(float(row[0])), float(row[1])) for row in rows)
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    longest = float(re.search(r"100%\s+(\d+)", out).group(1))
    return dict(rps=rps, p50=served[50], p95=served[95], p99=served[99], max=max(served[99], longest), errors=failed)


SLOW_SERVER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from health_server import HealthServer
srv = HealthServer().start()
print(srv.port, flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin
"""


def line(name, figures):
    return "%-22s %9.0f req/s  p50 %7.3f  p95 %7.3f  p99 %7.3f  max %8.3f ms  errors %d" % (
        name, figures["rps"], figures["p50"], figures["p95"], figures["p99"], figures["max"], figures["errors"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=8)
    opts = parser.parse_args()
    url = sandbox_script.load()["services"]["nginx"]["static_url"]
    print("url %s, %d requests, %s CPUs, load average %.1f" % (url, opts.requests, os.cpu_count(), os.getloadavg()[0]))

    print("health_gate sampler: %s" % ours(url, 200, opts.concurrency)["prober"])  # also warms up imports
    rows = {}
    for concurrency in (opts.concurrency, 1):
        rows[("ours", concurrency)] = ours(url, opts.requests, concurrency)
        rows[("ab -k", concurrency)] = ab(url, opts.requests, concurrency, keepalive=True)
        rows[("ab", concurrency)] = ab(url, opts.requests, concurrency, keepalive=False)
        for name in ("ours", "ab -k", "ab"):
            print(line("%s c=%d" % (name, concurrency), rows[(name, concurrency)]), flush=True)

    server = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, str(ROOT / "tests" / "integration")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        slow_url = "http://127.0.0.1:%s/slow/20" % server.stdout.readline().strip()
        slow_requests = max(400, opts.requests // 10)
        print("%s, %d requests" % (slow_url, slow_requests))
        rows[("ours", "slow")] = ours(slow_url, slow_requests, opts.concurrency)
        rows[("ab", "slow")] = ab(slow_url, slow_requests, opts.concurrency, keepalive=False)
        # (ab -k does not keep connections alive with Python's http.server: ab without -k only)
        for name in ("ours", "ab"):
            print(line("%s c=%d 20ms" % (name, opts.concurrency), rows[(name, "slow")]), flush=True)
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    print("load average at the end %.1f" % os.getloadavg()[0])
    print("")
    for case in (opts.concurrency, 1, "slow"):
        mine = rows[("ours", case)]
        for name in ("ab -k", "ab"):
            if (name, case) not in rows:
                continue
            other = rows[(name, case)]
            ratios = "  ".join("%s %.2fx" % (key, mine[key] / other[key] if other[key] else float("inf"))
                               for key in ("p50", "p95", "p99"))
            label = "c=%d 20ms" % opts.concurrency if case == "slow" else "c=%d static" % case
            print("%-11s ours/%-6s throughput %.2fx   latency ours/ab: %s"
                  % (label, name, mine["rps"] / other["rps"], ratios))


if __name__ == "__main__":
    main()
