"""Benchmark pg_backup against bare pg_dump on the same ~200 MB database, same run.

    .venv/bin/python bench/bench_pg_backup.py [--rows 2000000] [--rounds 3] [--keep-db]

Creates the database `bench_backup` on the sandbox PostgreSQL (as superuser), fills it
with generate_series, then alternates, `--rounds` times:
  A  bare `pg_dump -Fc -f FILE bench_backup`
  B  pg_backup format=custom, verify on (dump + pg_restore --list + sha256 + manifest)
  C  pg_backup format=directory jobs=2
and prints the median times and the ratios B/A (target <= 1.10) and C/B. B and C run the
module's code in this process (no ansible-playbook start-up); the time of one full
`ansible-playbook` task is printed beside, for reference. Drops the database at the end.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".build" / "collections"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

import psycopg2  # noqa: E402
import sandbox as sandbox_script  # noqa: E402  scripts/sandbox.py

from ansible_collections.prodready.deploy.plugins.modules import pg_backup  # noqa: E402

DB = "bench_backup"


def sandbox():
    """The running sandbox's PostgreSQL (PRODREADY_SANDBOX_DIR, default .sandbox) and its superuser password."""
    desc = sandbox_script.load()
    return desc["services"]["postgres"], desc["secrets"]["postgres_superuser_password"]


def admin(pg, password, db="postgres"):
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["superuser"],
                            password=password, dbname=db)
    conn.autocommit = True
    return conn


def create_db(pg, password, rows):
    conn = admin(pg, password)
    cur = conn.cursor()
    cur.execute("DROP DATABASE IF EXISTS %s" % DB)
    cur.execute("CREATE DATABASE %s" % DB)
    conn.close()
    conn = admin(pg, password, DB)
    cur = conn.cursor()
    cur.execute("""CREATE TABLE events (id bigint PRIMARY KEY, account int, kind text,
                   payload text, note text, created timestamptz)""")
    cur.execute("""INSERT INTO events SELECT i, i %% 9973, 'kind-' || (i %% 17), md5(i::text) ||
                   md5((i * 7)::text), md5((i * 13)::text), now() - (i || ' s')::interval
                   FROM generate_series(1, %s) i""", (rows,))
    cur.execute("CREATE INDEX ON events (account)")
    cur.execute("VACUUM ANALYZE events")
    cur.execute("SELECT pg_size_pretty(pg_database_size(%s)), pg_database_size(%s)", (DB, DB))
    size = cur.fetchone()
    conn.close()
    return size


def drop_db(pg, password):
    conn = admin(pg, password)
    conn.cursor().execute("DROP DATABASE IF EXISTS %s" % DB)
    conn.close()


class BenchModule(object):
    """The parts of AnsibleModule pg_backup.run() uses, for an in-process run."""

    def __init__(self, params):
        self.params = dict((k, v.get("default")) for k, v in pg_backup.argument_spec().items())
        self.params.update(params)
        self.check_mode = False

    def warn(self, msg):
        print("warning:", msg)

    def get_bin_path(self, name, required=False, opt_dirs=None):
        for d in opt_dirs or []:
            if os.path.exists(os.path.join(d, name)):
                return os.path.join(d, name)
        return shutil.which(name)

    def run_command(self, argv, environ_update=None):
        env = dict(os.environ)
        env.update(environ_update or {})
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def cpu_now():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn):
    """(wall seconds, CPU seconds of this process and its children, result of fn)."""
    cpu0, start = cpu_now(), time.perf_counter()
    out = fn()
    return time.perf_counter() - start, cpu_now() - cpu0, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1100000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    pg, password = sandbox()
    print("creating %s with %d rows..." % (DB, args.rows), flush=True)
    size = create_db(pg, password, args.rows)
    print("database size: %s" % size[0], flush=True)
    conn_params = dict(db=DB, login_host=pg["host"], login_port=pg["port"],
                       login_user=pg["superuser"], login_password=password)
    work = Path(tempfile.mkdtemp(prefix="bench-pg-backup-"))
    env = dict(os.environ, PGPASSWORD=password)
    times = {"bare": [], "custom": [], "directory": []}
    cpu = {"bare": [], "custom": [], "directory": []}
    sizes = {}
    try:
        for round_no in range(args.rounds):
            bare_file = work / ("bare-%d.dump" % round_no)
            t, c, unused = timed(lambda: subprocess.run(
                [pg["bin_dir"] + "/pg_dump", "-Fc", "-h", pg["host"], "-p", str(pg["port"]),
                 "-U", pg["superuser"], "-f", str(bare_file), DB], env=env, check=True))
            times["bare"].append(t)
            cpu["bare"].append(c)
            sizes["bare"] = bare_file.stat().st_size
            bare_file.unlink()
            for fmt, extra in (("custom", {}), ("directory", {"jobs": 2})):
                dest = work / ("%s-%d" % (fmt, round_no))
                module = BenchModule(dict(conn_params, dest_dir=str(dest), format=fmt,
                                          verify=True, **extra))
                t, c, result = timed(lambda: pg_backup.run(module))
                times[fmt].append(t)
                cpu[fmt].append(c)
                sizes[fmt] = result["size_bytes"]
                shutil.rmtree(str(dest))
            print("round %d: bare %.2fs  custom %.2fs  directory(jobs=2) %.2fs"
                  % (round_no + 1, times["bare"][-1], times["custom"][-1], times["directory"][-1]),
                  flush=True)

        from helpers import run_module
        dest = work / "playbook"
        t_play, unused, result = timed(lambda: run_module("pg_backup", dict(conn_params, dest_dir=str(dest))))
        if result.get("failed"):
            print("ansible-playbook run failed: %s" % result.get("msg"))
        best = dict((k, min(v)) for k, v in times.items())
        med = dict((k, statistics.median(v)) for k, v in times.items())
        cpu_best = dict((k, min(v)) for k, v in cpu.items())
        print()
        print("database: %s, %d rows; dump sizes: bare %d B, custom %d B, directory %d B"
              % (size[0], args.rows, sizes["bare"], sizes["custom"], sizes["directory"]))
        for title, table in (("best wall", best), ("median wall", med), ("best CPU", cpu_best)):
            print("%-11s of %d rounds: bare pg_dump -Fc %.2fs | pg_backup custom+verify %.2fs | "
                  "pg_backup directory jobs=2 %.2fs" % (title, args.rounds, table["bare"],
                                                        table["custom"], table["directory"]))
        print("RATIO pg_backup(custom, verify) / pg_dump -Fc = %.3f best wall, %.3f median wall, "
              "%.3f CPU (target <= 1.10)" % (best["custom"] / best["bare"],
                                             med["custom"] / med["bare"],
                                             cpu_best["custom"] / cpu_best["bare"]))
        print("RATIO pg_backup(directory, jobs=2) / pg_backup(custom) = %.3f best wall, "
              "%.3f median wall" % (best["directory"] / best["custom"],
                                    med["directory"] / med["custom"]))
        print("reference: one ansible-playbook task (custom, verify) took %.2fs end to end "
              "(includes Ansible start-up)" % t_play)
    finally:
        shutil.rmtree(str(work), ignore_errors=True)
        if not args.keep_db:
            drop_db(pg, password)


if __name__ == "__main__":
    main()
