"""A restore rollback of a release whose background worker writes on (haproxy slot s7).

The `worker` variant forks a worker process that writes a row per second into
worker_heartbeats and re-creates that table when it finds it gone, as the workers of a real
third-party app do. Its database is restored to the pre-deploy backup (which has no such
table). The release rolled back from must be stopped with its whole process group before the
restored database takes the name: afterwards no process of it is left, the restored database
never gets the table back, and the worker's rows (written after the backup) are reported as
discarded and kept in the replaced database. The 503 window is the documented cost.
"""

import errno
import os
import time

import psycopg2
import pytest

from apptools import superuser_conn
from bluegreen_tools import LoadLoop, read_audit, read_state, served_version, slot_app
from helpers import ROOT, run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("switch_back_failure")]

SLOT = "s7"
APP = "workers"
TABLE = "worker_heartbeats"


@pytest.fixture(scope="module")
def app(sandbox, tmp_path_factory, app_python):
    with slot_app(sandbox, tmp_path_factory.mktemp("workers"), app_python, APP, SLOT, {"1.0.0": "base", "1.1.0": "worker"},
                  first=("1.0.0", "1.1.0")) as app:
        yield app


def heartbeats(sandbox, db):
    """(rows, distinct writer pids) of worker_heartbeats in `db`, or None without the table."""
    conn = superuser_conn(sandbox, db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), array_agg(DISTINCT pid) FROM %s" % TABLE)
            return cur.fetchone()
    except psycopg2.errors.UndefinedTable:
        return None
    finally:
        conn.close()


def running(pid):
    """True while `pid` is a live process (a zombie waiting to be reaped is not)."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, limit=15.0):
    deadline = time.monotonic() + limit
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.2)
    return predicate()


def test_the_release_rolled_back_from_stops_with_its_worker_before_the_restored_database_takes_the_name(app):
    sandbox, db = app["sandbox"], app["db"]
    # The worker writes: its table exists (created by it, not by a migration) and grows.
    assert wait_for(lambda: (heartbeats(sandbox, db) or (0,))[0] >= 2)
    rows, pids = heartbeats(sandbox, db)
    assert len(pids) == 1 and running(pids[0])
    worker = pids[0]

    with LoadLoop(app["url"] + "/health") as load:
        proc = run_playbook(ROOT / "playbooks" / "rollback.yml", inventory=app["inventory"], timeout=900,
                            extra_vars={"deploy_hosts": "all", "rollback_to": "1.0.0", "rollback_db": "restore"})
    assert proc.returncode == 0, proc.output[-3000:]
    assert served_version(app["url"]) == "1.0.0"
    # The only failures are the documented window's 503s (the router in maintenance).
    assert set(load.failed) <= {503}, load.failed[:10]
    # No process of 1.1.0 is left: the worker went with its process group.
    assert not running(worker)
    # The restored database is the backup's: no worker table, and none comes back.
    time.sleep(3)
    assert heartbeats(sandbox, db) is None
    # The worker's rows, written after the backup, are reported discarded and kept.
    last = read_state(app["root"])["last_rollback"]
    assert last["discarded_rows"].get(TABLE, 0) >= rows, last
    kept = heartbeats(sandbox, last["replaced_db"])
    assert kept is not None and kept[0] == last["discarded_rows"][TABLE] and kept[1] == [worker]
    database = [line for line in read_audit(app["root"]) if line.get("step") == "database"][-1]
    assert database["discarded_rows"][TABLE] == last["discarded_rows"][TABLE]
    assert TABLE in proc.flat and "discarded" in proc.flat
