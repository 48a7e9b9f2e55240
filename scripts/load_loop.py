"""Steady keep-alive GETs through the router, counting every answer, until told to stop.

    python scripts/load_loop.py URL --out summary.json [--max-seconds 600] [--rate 50]

Stops when `<out>.stop` exists or after --max-seconds (never runs unbounded), then writes
{requests, ok, by_status, errors, versions} to --out. Router failures (connection errors,
502/503/504) are told apart from 5xx answered by an application release.
"""

import argparse
import collections
import json
import os
import time

import requests


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("url")
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=50, help="requests per second, at most")
    args = parser.parse_args(argv)
    stop_file = args.out + ".stop"
    session = requests.Session()
    by_status = collections.Counter()
    errors = collections.Counter()
    versions = collections.Counter()
    deadline = time.monotonic() + args.max_seconds
    interval = 1.0 / args.rate
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        started = time.monotonic()
        try:
            resp = session.get(args.url, timeout=5)
            by_status[resp.status_code] += 1
            if resp.status_code == 200:
                versions[resp.json().get("version", "?")] += 1
        except requests.RequestException as exc:
            errors[type(exc).__name__] += 1
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    router_failures = sum(errors.values()) + sum(n for s, n in by_status.items() if s in (502, 503, 504))
    summary = {
        "requests": sum(by_status.values()) + sum(errors.values()),
        "ok": by_status.get(200, 0),
        "by_status": {str(k): v for k, v in sorted(by_status.items())},
        "errors": dict(errors),
        "router_failures": router_failures,
        "app_5xx": sum(n for s, n in by_status.items() if s >= 500 and s not in (502, 503, 504)),
        "versions": dict(versions),
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
    if os.path.exists(stop_file):
        os.unlink(stop_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
