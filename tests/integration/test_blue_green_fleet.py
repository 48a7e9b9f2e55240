"""blue_green on a fleet: `serial` batches, and a failing batch reverts the hosts before it.

Three simulated hosts (own app roots, colors and haproxy slots s3, s4, s5) share one
database. 1.0.0 goes everywhere at once; then 1.1.0 (with a migration) one host per batch:
the third host's release is refused, so hosts one and two, already live on 1.1.0, are
switched back to 1.0.0 and the migration is downgraded once. Last, on the first host
only, a release that errors under traffic is reverted with `blue_green_db_rollback:
restore`: the pre-deploy backup is restored into a fresh database swapped in by rename.
"""

import json
from pathlib import Path

import pytest

import demo_app
from apptools import create_app_db, drop_db, retire_test_slot_app, superuser_conn
from bluegreen_tools import (db_revision, deploy, haproxy_slot_vars, host_vars, read_audit, read_state, recap,
                             served_version, write_inventory)
from helpers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("blue_green_fleet")]

HOSTS = {"h1": "s3", "h2": "s4", "h3": "s5"}


@pytest.fixture(scope="module")
def fleet(sandbox, tmp_path_factory, app_python):
    base = tmp_path_factory.mktemp("bgfleet")
    db = create_app_db(sandbox, "t_bgf_")
    demo_app.ensure_wheels()
    dist = base / "dist"
    for version, variant in {"1.0.0": "base", "1.1.0": "good", "1.2.1": "errors"}.items():
        demo_app.build(version, variant, dist)
    hosts, routers, roots = {}, {}, {}
    for host, slot in HOSTS.items():
        slot_vars = haproxy_slot_vars(sandbox, slot)
        roots[host] = base / host
        routers[host] = slot_vars["router"]["app_router_url"]
        hosts[host] = host_vars(sandbox, "bgf" + host, roots[host], dist, db, slot_vars["ports"], "bgf%s_" % host, app_python,
                                **slot_vars["router"])
    # On the third host, 1.1.0's artifact does not match its expected checksum.
    hosts["h3"]["blue_green_artifact_sha256"] = "{{ '0' * 64 if blue_green_version == '1.1.0' else '' }}"
    inventory = write_inventory(base / "hosts.yml", hosts)
    first = deploy(inventory, "1.0.0")
    yield {"inventory": inventory, "routers": routers, "roots": roots, "db": db, "sandbox": sandbox, "first": first}
    for host, slot in HOSTS.items():
        retire_test_slot_app(sandbox, "bgf" + host, ROOT, sandbox["services"]["haproxy"]["slots"][slot]["backend"])
    conn = superuser_conn(sandbox)
    with conn.cursor() as cur:  # the databases a restore swapped out (kept by pg_backup)
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (db + "\\_%",))
        others = [row[0] for row in cur.fetchall()]
    conn.close()
    for name in [db] + others:
        drop_db(sandbox, name)


@pytest.fixture(scope="module")
def failed_rollout(fleet):
    # The hosts that went live stop their previous color (blue_green_old_color stop): switched
    # back, they bring it back first from its own definition (color_process state resumed).
    return deploy(fleet["inventory"], "1.1.0", deploy_serial=1, blue_green_old_color="stop")


def record_of(fleet, host):
    """The deploy's record a host's state.json names (kept on the play's first host, h1)."""
    ref = read_state(fleet["roots"][host])["deploy_record"]
    assert ref["host"] == "h1" and ref["path"].startswith(str(fleet["roots"]["h1"] / "backups") + "/"), ref
    return json.loads(Path(ref["path"]).read_text())


def test_first_deploy_reaches_every_host_and_its_record_is_kept_once(fleet):
    assert fleet["first"].returncode == 0, fleet["first"].output[-4000:]
    assert {host: served_version(url) for host, url in fleet["routers"].items()} == dict.fromkeys(HOSTS, "1.0.0")
    assert db_revision(fleet["sandbox"], fleet["db"]) == "0002"
    # One record for the deploy, on h1 beside its backup, naming every host with its color;
    # each host's state names it and carries the same run id.
    record = record_of(fleet, "h1")
    assert all(record_of(fleet, host) == record for host in HOSTS)
    states = {host: read_state(fleet["roots"][host]) for host in HOSTS}
    assert record["hosts"] == {host: st["live_color"] for host, st in states.items()}
    assert {st["run_id"] for st in states.values()} == {record["run_id"]}
    assert (record["version"], record["result"], record["db_revisions"]) == ("1.0.0", "live", ["0002"])
    assert not any((fleet["roots"][host] / "backups").exists() and list((fleet["roots"][host] / "backups").glob("deploy-*"))
                   for host in ("h2", "h3"))


def test_a_failing_batch_switches_the_earlier_batches_back(fleet, failed_rollout):
    out = failed_rollout.flat
    assert failed_rollout.returncode != 0
    # Batches ran one host at a time, and the first two went live before the third failed.
    for host in ("h1", "h2"):
        events = [(e["action"], e["result"], e.get("version")) for e in read_audit(fleet["roots"][host])]
        assert events[-2:] == [("deploy", "success", "1.1.0"), ("fleet_revert", "reverted", "1.1.0")], events
    # One run id for the whole deploy, batch after batch, in every host's audit lines.
    run_ids = {e["run_id"] for host in HOSTS for e in read_audit(fleet["roots"][host])
               if e.get("version") == "1.1.0" and e["action"] in ("deploy", "fleet_revert")}
    assert len(run_ids) == 1 and "" not in run_ids, run_ids
    assert "stopped in phase release" in out and "refusing to build a release from it" in out
    assert "Fleet: switched back h1, h2, database rolled back by downgrade from h1." in out
    # Every router serves the previous version again, on the previous schema.
    assert {host: served_version(url) for host, url in fleet["routers"].items()} == dict.fromkeys(HOSTS, "1.0.0")
    assert db_revision(fleet["sandbox"], fleet["db"]) == "0002"
    for host in ("h1", "h2"):
        st = read_state(fleet["roots"][host])
        assert (st["live_version"], st["live_color"]) == ("1.0.0", "blue"), st
        assert st["last_failure"]["phase"] == "fleet" and "h3 failed in phase release" in st["last_failure"]["reason"]
    assert read_state(fleet["roots"]["h3"])["live_version"] == "1.0.0"
    assert recap(failed_rollout.output)["h3"]["failed"] == 1
    # The 1.1.0 deploy's record lists the two hosts that went live and says it was reverted.
    record = record_of(fleet, "h1")
    assert (record["version"], record["result"], sorted(record["hosts"])) == ("1.1.0", "reverted", ["h1", "h2"]), record
    assert record["run_id"] in run_ids and "h3 failed in phase release" in record["reason"]


def test_the_fleet_rerun_of_the_live_version_changes_nothing(fleet, failed_rollout):
    proc = deploy(fleet["inventory"], "1.0.0")
    assert proc.returncode == 0, proc.output[-4000:]
    assert {host: counts["changed"] for host, counts in recap(proc.output).items()} == dict.fromkeys(HOSTS, 0)
    assert proc.output.count("which serves it: nothing to do") == 3


def query(fleet, sql, db=None):
    conn = superuser_conn(fleet["sandbox"], db or fleet["db"])
    with conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


def test_restore_rollback_swaps_the_backup_in_and_reports_the_window(fleet, failed_rollout, app_python, tmp_path):
    query(fleet, "INSERT INTO companies (name) VALUES ('kept-by-the-backup')")
    # A client writes to a table outside blue_green_row_count_tables after the backup (before
    # the live gate): the restore discards the row and must say so.
    pg = fleet["sandbox"]["services"]["postgres"]
    dsn = "host=%s port=%s dbname=%s user=%s password=%s" % (
        pg["host"], pg["port"], fleet["db"], pg["app_user"], fleet["sandbox"]["secrets"]["app_db_password"])
    hook = tmp_path / "write_after_the_backup.yml"
    hook.write_text(json.dumps([{
        "name": "A client writes after the backup", "no_log": True,
        "ansible.builtin.command": {"argv": [str(app_python), "-c", (
            "import os, psycopg2; c = psycopg2.connect(os.environ['DSN']); c.autocommit = True; "
            "c.cursor().execute(\"INSERT INTO companies (name) VALUES ('written-after-the-backup')\")")]},
        "environment": {"DSN": dsn}}]))
    proc = deploy(fleet["inventory"], "1.2.1", deploy_hosts="h1", blue_green_db_rollback="restore",
                  blue_green_hooks={"before_gate_live": str(hook)},
                  blue_green_gate_live={"requests": 200, "concurrency": 4, "max_error_rate": 0.01,
                                        "max_latency_ms": {"p95": 10000}})
    out = proc.flat
    assert proc.returncode != 0
    assert "stopped in phase gate_live" in out
    assert "switched back to blue (1.0.0)" in out
    assert "swapped in by rename, unavailable" in out and "pre-1.2.1" in out
    assert served_version(fleet["routers"]["h1"]) == "1.0.0"
    assert db_revision(fleet["sandbox"], fleet["db"]) == "0002"
    assert query(fleet, "SELECT to_regclass('audit_events')") == [(None,)]
    assert query(fleet, "SELECT count(*) FROM companies WHERE name = 'kept-by-the-backup'") == [(1,)]
    failure = read_audit(fleet["roots"]["h1"])[-1]
    assert failure["result"] == "failed" and failure["db_rollback"] == "restore"
    restore = failure["restore"]
    assert float(restore["window_s"]) >= 0 and restore["replaced_db"].startswith(fleet["db"] + "_replaced_")
    # The row written after the backup is counted as discarded (companies is not a counted
    # table), in the audit line and in the failure message; it is still in the replaced database.
    assert restore["discarded_rows"]["companies"] == 1, restore
    assert '"companies": 1' in out
    assert query(fleet, "SELECT count(*) FROM companies WHERE name = 'written-after-the-backup'") == [(0,)]
    assert query(fleet, "SELECT count(*) FROM companies WHERE name = 'written-after-the-backup'",
                 db=restore["replaced_db"]) == [(1,)]
    # The replaced database is kept, with the migration the restore undid.
    assert query(fleet, "SELECT version_num FROM alembic_version", db=restore["replaced_db"]) != [("0002",)]
