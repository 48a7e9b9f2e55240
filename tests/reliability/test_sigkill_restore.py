"""SIGKILL of the controller in the middle of a restore rollback (haproxy slot s7).

Two cases, under one request loop through haproxy each: the controller killed after the stop
of the release rolled back from (traffic off, the restored database not swapped in yet), and
right after the swap (the restored database in place, traffic still off). The next rollback
takes the killed one up: it uses the database the killed run restored into (its intent,
state.json pending_rollback.restore_db: no second pg_restore), swaps it in unless that was
done (pg_backup finds the swap by the mark it left on the replaced database), reports the rows
that swap discarded, and gives the traffic to the target. Requests fail only with the router's
503, from the killed run's traffic stop to the next run's switch.
"""

import pytest

from apptools import superuser_conn
from bluegreen_tools import LoadLoop, db_revision, deploy, read_audit, read_state, served_version, slot_app
from helpers import ROOT, run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("switch_back_failure")]

SLOT = "s7"
APP = "restorekill"
TASK = "TASK [prodready.deploy.rollback : "
CASES = [("before_the_swap", TASK + "Remember it stopped"),
         ("after_the_swap", TASK + "Remember the database was rolled back")]
ARGS = {"deploy_hosts": "all", "rollback_to": "1.0.0", "rollback_db": "restore"}


@pytest.fixture(scope="module")
def app(sandbox, tmp_path_factory, app_python):
    with slot_app(sandbox, tmp_path_factory.mktemp("restorekill"), app_python, APP, SLOT,
                  {"1.0.0": "base", "1.1.0": "good"}) as app:
        yield app


def databases(app, kind):
    """The names of the app database's `<db>_<kind>_*` copies (restore, replaced)."""
    conn = superuser_conn(app["sandbox"])
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY datname",
                    ("%s\\_%s\\_%%" % (app["db"], kind),))
        names = [row[0] for row in cur.fetchall()]
    conn.close()
    return names


def write_orders(app, count):
    conn = superuser_conn(app["sandbox"], app["db"])
    with conn.cursor() as cur:
        cur.execute("INSERT INTO purchase_orders (buyer_company_id, seller_company_id, product_id) "
                    "SELECT 1, 2, 1 FROM generate_series(1, %s)", (count,))
    conn.close()


@pytest.mark.parametrize("case, banner", CASES, ids=[case for case, _b in CASES])
def test_a_restore_killed_half_way_is_taken_up_without_a_second_restore(app, case, banner):
    root = app["root"]
    up = deploy(app["inventory"], "1.1.0")  # its pre-deploy backup, the database at 0003
    assert up.returncode == 0, up.output[-3000:]
    write_orders(app, 4)  # written after the backup: the restore discards them
    replaced_before = databases(app, "replaced")
    with LoadLoop(app["url"] + "/health") as load:
        cut = run_playbook(ROOT / "playbooks" / "rollback.yml", inventory=app["inventory"], timeout=600,
                           extra_vars=ARGS, kill_at=banner)
        assert cut.returncode != 0 and "PLAY RECAP" not in cut.output, cut.output[-3000:]
        left = read_state(root)
        restored = left["pending_rollback"]["restore_db"]
        swapped = databases(app, "replaced")[len(replaced_before):]
        # Killed before its swap: the restored database waits under its own name; after it:
        # it has the app database's name, the replaced one is kept.
        assert (databases(app, "restore"), len(swapped)) == (([restored], 0) if case == "before_the_swap" else ([], 1))
        proc = run_playbook(ROOT / "playbooks" / "rollback.yml", inventory=app["inventory"], timeout=600,
                            extra_vars=ARGS)
    assert proc.returncode == 0, proc.output[-3000:]
    assert ("database restore) was interrupted before its switch: it is run again with the database it restored "
            "(%s), not restored again" % restored) in proc.flat
    # Only the router's 503 of the restore window, which spans the two runs.
    assert load.ok > 0 and set(load.failed) <= {503}, load.failed[:10]
    # One restore, one swap: no restored copy left, one replaced database more than before.
    assert databases(app, "restore") == []
    assert len(databases(app, "replaced")) == len(replaced_before) + 1
    assert served_version(app["url"]) == "1.0.0" and db_revision(app["sandbox"], app["db"]) == "0002"
    state = read_state(root)
    assert state["live_version"] == "1.0.0" and "pending_rollback" not in state
    assert state["last_rollback"]["from"] == "1.1.0" and state["last_rollback"]["discarded_rows"] == {"purchase_orders": 4}
    line = [e for e in read_audit(root) if e.get("action") == "rollback" and e.get("step") == "database"][-1]
    assert line["discarded_rows"] == {"purchase_orders": 4} and line["replaced_db"] == databases(app, "replaced")[-1]
    if case == "after_the_swap":
        assert "database swapped by the interrupted run" in proc.flat
    assert not (root / "deploy.lock").exists()
