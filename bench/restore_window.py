#!/usr/bin/env python
"""Benchmark: the 503 window of a restore rollback against a bare pg_restore of the same backup.

    .venv/bin/python bench/restore_window.py [--rows 300000] [--rounds 2] [--slot s7]

Deploys the sample app 1.0.0 then 1.1.0 behind haproxy slot --slot (the sandbox must be
up), with --rows extra rows in the database so that the restore takes a measurable time.
Each round: deploy 1.1.0 (it takes the pre-deploy backup), then `rollback.yml
-e rollback_db=restore` while a thread requests the router every 5 ms, then a bare
`pg_restore` of the same backup file into a scratch database, in the same run. Prints the
router's 503 window (first to last 503 seen, and the rollback's own `unavailable_s`), the
bare restore's time, and the window minus the bare restore (issue 14's bar: window <=
bare pg_restore + 1 s; the restore now runs before traffic stops, so the window is the
swap, the stop of the release rolled back from and the switch). Nothing is asserted.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import demo_app  # noqa: E402
import sandbox as sandbox_script  # noqa: E402
from apptools import create_app_db, drop_db, retire_test_slot_app, superuser_conn  # noqa: E402
from bluegreen_tools import deploy, haproxy_slot_vars, host_vars, read_state, write_inventory  # noqa: E402
from helpers import run_playbook  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class Window503(object):
    """Requests the router every 5 ms; keeps the time of the first and the last 503."""

    def __init__(self, url):
        self.url, self.first, self.last, self.count = url, None, None, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        session = requests.Session()
        while not self.stop.is_set():
            try:
                status = session.get(self.url, timeout=5).status_code
            except requests.RequestException:
                status = 599
            if status >= 500:
                now = time.monotonic()
                self.first = self.first or now
                self.last, self.count = now, self.count + 1
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)

    @property
    def seconds(self):
        return (self.last - self.first) if self.first else 0.0


def fill(sandbox, db, rows):
    conn = superuser_conn(sandbox, db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_ballast (id bigserial PRIMARY KEY, body text)")
        cur.execute("INSERT INTO bench_ballast (body) SELECT md5(g::text) || md5((g * 7)::text) "
                    "FROM generate_series(1, %s) g", (rows,))
        cur.execute("ALTER TABLE bench_ballast OWNER TO %s" % sandbox["services"]["postgres"]["app_user"])
    conn.close()


def bare_restore(sandbox, path):
    """Seconds of `pg_restore` of `path` into a new scratch database (dropped afterwards)."""
    pg = sandbox["services"]["postgres"]
    scratch = create_app_db(sandbox, "bench_bare_")
    env = dict(PGPASSWORD=sandbox["secrets"]["app_db_password"], PATH="/usr/bin:/bin")
    started = time.monotonic()
    subprocess.run([str(PG_BIN / "pg_restore"), "-h", pg["host"], "-p", str(pg["port"]), "-U", pg["app_user"],
                    "-d", scratch, "--no-owner", path], check=True, env=env, capture_output=True)
    seconds = time.monotonic() - started
    drop_db(sandbox, scratch)
    return seconds


def print_window_tasks(path):
    """The tasks from the one that stops traffic to the one that sends it back, with their times."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    inside = False
    for line in lines:
        name = line.get("task", "")
        inside = inside or "Stop traffic" in name
        if inside:
            print("      %6.3f s  %s  (%s)" % (line.get("seconds", 0.0), name, line.get("action")))
        if inside and "Send traffic to the target color" in name:
            break


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--slot", default="s7")
    parser.add_argument("--times", action="store_true",
                        help="print the rollback's tasks between traffic off and the switch, with their wall times")
    args = parser.parse_args()
    sandbox = sandbox_script.load()
    base = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    db = create_app_db(sandbox, "bench_rw_")
    app = "benchrw"
    demo_app.ensure_wheels()
    app_python = demo_app.ensure_venv(ROOT / ".cache" / "test-app-venv", ROOT / "examples" / "app" / "requirements.txt")
    dist = base / "dist"
    for version in ("1.0.0", "1.1.0"):
        demo_app.build(version, "good" if version == "1.1.0" else "base", dist)
    slot = haproxy_slot_vars(sandbox, args.slot)
    hv = host_vars(sandbox, app, base / "srv", dist, db, slot["ports"], app + "_", app_python, **slot["router"])
    inventory = write_inventory(base / "hosts.yml", {"h1": hv})
    url = slot["router"]["app_router_url"] + "/health"
    try:
        first = deploy(inventory, "1.0.0")
        assert first.returncode == 0, first.output[-3000:]
        fill(sandbox, db, args.rows)
        print("restore rollback window vs bare pg_restore (%d ballast rows)" % args.rows)
        for round_no in range(1, args.rounds + 1):
            up = deploy(inventory, "1.1.0")
            assert up.returncode == 0, up.output[-3000:]
            backup = read_state(base / "srv")["backup_path"]
            times = base / ("times-%d.jsonl" % round_no)
            env = {"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "bench" / "callbacks"),
                   "ANSIBLE_CALLBACKS_ENABLED": "task_times", "PRODREADY_TASK_TIMES": str(times)} if args.times else None
            with Window503(url) as window:
                started = time.monotonic()
                proc = run_playbook(ROOT / "playbooks" / "rollback.yml", inventory=inventory, timeout=1200, env=env,
                                    extra_vars={"deploy_hosts": "all", "rollback_to": "1.0.0", "rollback_db": "restore"})
                total = time.monotonic() - started
                time.sleep(0.3)
            assert proc.returncode == 0, proc.output[-3000:]
            unavailable = read_state(base / "srv")["last_rollback"]["unavailable_s"]
            bare = bare_restore(sandbox, backup)
            print("  round %d: 503 seen for %.2f s (%d answers), unavailable_s %.2f; bare pg_restore %.2f s; "
                  "window - bare = %+.2f s (bar <= +1 s); rollback total %.1f s"
                  % (round_no, window.seconds, window.count, unavailable, bare, window.seconds - bare, total))
            if args.times:
                print_window_tasks(times)
            print("    " + json.dumps({"window_s": round(window.seconds, 3), "unavailable_s": unavailable,
                                       "bare_restore_s": round(bare, 3)}))
    finally:
        retire_test_slot_app(sandbox, app, ROOT, sandbox["services"]["haproxy"]["slots"][args.slot]["backend"])
        conn = superuser_conn(sandbox)
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (db + "%",))
            names = [row[0] for row in cur.fetchall()]
        conn.close()
        for name in names:
            drop_db(sandbox, name)


if __name__ == "__main__":
    main()
