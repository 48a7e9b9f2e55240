"""playbooks/rollback.yml with the rollback role, end to end in the sandbox (haproxy slot s1).

One module-scoped deployment (1.0.0, then 1.1.0 with a migration) on one simulated host with
its own app root and database; the tests then run in order, the way an operator's bad days
follow each other: a --check preview, an instant rollback to the warm color under load, a
rollback_to a version whose color is cold (started from releases/), a downgrade rollback,
and, after deploying 1.1.0 again, a restore rollback with its 503 window and the rows it
discards. Refusals need no deployment.
"""

import json
import re
import time

import pytest
import redis
import requests
import yaml

import demo_app
from apptools import create_app_db, drop_db, retire_test_slot_app, superuser_conn
from bluegreen_tools import LoadLoop
from helpers import ROOT, run_module, run_playbook

pytestmark = [pytest.mark.xdist_group("rollback_s1")]

SLOT = "s1"
APP = "rbtest"
REDIS_DB = 9  # shared with other app tests; this app's keys carry the prefix rb_


@pytest.fixture(scope="module")
def rb(sandbox, tmp_path_factory):
    base = tmp_path_factory.mktemp("rollback")
    name = create_app_db(sandbox, "t_rb_")
    pg = sandbox["services"]["postgres"]
    haproxy = sandbox["services"]["haproxy"]
    slot = haproxy["slots"][SLOT]
    sup = sandbox["services"]["supervisor"]
    demo_app.ensure_wheels()
    dist = base / "dist"
    for version, variant in (("1.0.0", "base"), ("1.1.0", "good")):
        demo_app.build(version, variant, dist)
    url = "postgresql+psycopg2://%s:%s@%s:%s/%s" % (pg["app_user"], sandbox["secrets"]["app_db_password"],
                                                    pg["host"], pg["port"], name)
    app_root = base / "srv" / APP
    host_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
        "app_name": APP,
        "app_root": str(app_root),
        "blue_green_artifact_src": str(dist) + "/sampleapp-{{ blue_green_version }}.tar.gz",
        "blue_green_pip_extra_args": f"--no-index --find-links {ROOT}/.cache/wheels",
        "app_start_command": "{{ app_venv }}/bin/python -m sampleapp --port {{ app_port }}",
        "app_colors": {c: {"port": p} for c, p in slot["servers"].items()},
        "app_process_manager": "supervisor",
        "app_supervisor_conf_dir": sup["programs_dir"],
        "app_supervisorctl": str(ROOT / ".venv" / "bin" / "supervisorctl"),
        "app_supervisor_config": sup["config"],
        "app_router": "haproxy",
        "app_haproxy_admin_socket": haproxy["admin_socket"],
        "app_haproxy_backend": slot["backend"],
        "app_router_url": "http://127.0.0.1:%d" % slot["port"],
        "app_database": {"db": name, "login_host": pg["host"], "login_port": pg["port"],
                         "login_user": pg["app_user"], "login_password": sandbox["secrets"]["app_db_password"]},
        "app_database_url": url,
        "blue_green_shared_env": {"DATABASE_URL": url, "REDIS_URL": demo_app.redis_url(sandbox, REDIS_DB),
                                  "CACHE_PREFIX": "rb_", "DEBUG": "false"},
        "blue_green_row_count_tables": ["purchase_orders"],
        "blue_green_gate_idle": {"requests": 10, "concurrency": 2, "max_error_rate": 0.0},
        "blue_green_gate_live": {"requests": 20, "concurrency": 2, "max_error_rate": 0.01},
        "app_start_timeout": 30,
        "app_redis": {"login_host": sandbox["services"]["redis"]["host"],
                      "login_port": sandbox["services"]["redis"]["port"],
                      "login_password": sandbox["secrets"]["redis_password"], "db": REDIS_DB},
    }
    inventory = base / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"rb1": host_vars}}}))
    state = {"inventory": inventory, "app_root": app_root, "db": name, "sandbox": sandbox,
             "router": host_vars["app_router_url"], "base": base}
    try:
        for version in ("1.0.0", "1.1.0"):
            proc = playbook(state, "deploy.yml", app_version=version)
            assert proc.returncode == 0, proc.output[-3000:]
        yield state
    finally:
        retire_test_slot_app(sandbox, APP, ROOT, backend=slot["backend"])
        conn = superuser_conn(sandbox)
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (name + "%",))
            names = [row[0] for row in cur.fetchall()]
        conn.close()
        for db in names:
            drop_db(sandbox, db)


def playbook(rb, name, check=False, inventory=None, **extra):
    proc = run_playbook(ROOT / "playbooks" / name, inventory=inventory or rb["inventory"], check=check,
                        extra_vars=dict({"deploy_hosts": "all"}, **extra))
    return proc


def rollback(rb, check=False, **extra):
    return playbook(rb, "rollback.yml", check=check, **extra)


def served(rb):
    return requests.get(rb["router"] + "/health", timeout=5).json()["version"]


def state(rb):
    return json.loads((rb["app_root"] / "state.json").read_text())


def audit(rb):
    return [json.loads(line) for line in (rb["app_root"] / "audit.log").read_text().splitlines()]


def revision(rb):
    conn = superuser_conn(rb["sandbox"], rb["db"])
    with conn.cursor() as cur:
        cur.execute("SELECT version_num FROM alembic_version")
        rev = cur.fetchone()[0]
    conn.close()
    return rev


def recap_changed(output):
    match = re.search(r"rb1\s+:\s+ok=\d+\s+changed=(\d+)", output)
    assert match, output[-3000:]
    return int(match.group(1))


def test_refuses_when_nothing_was_deployed(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"rb1": {
        "ansible_connection": "local", "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
        "app_name": "nothing", "app_root": str(tmp_path / "srv")}}}}))
    proc = playbook({}, "rollback.yml", inventory=inventory)
    assert proc.returncode != 0
    assert "nothing to roll back to, there is no %s/srv/state.json" % tmp_path in proc.output


def test_refuses_when_there_is_no_previous_version(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    (root / "state.json").write_text(json.dumps({"live_color": "blue", "live_version": "1.0.0",
                                                 "previous_version": None, "colors": {"blue": "1.0.0"}}))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"rb1": {
        "ansible_connection": "local", "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
        "app_name": "nothing", "app_root": str(root)}}}}))
    proc = playbook({}, "rollback.yml", inventory=inventory)
    assert proc.returncode != 0
    assert "nothing to roll back to" in proc.output and "rollback_to=VERSION" in proc.flat
    assert not (root / "deploy.lock").exists()  # the lock was released
    assert json.loads((root / "state.json").read_text())["live_version"] == "1.0.0"


def test_check_mode_changes_nothing(rb):
    before = {p: (rb["app_root"] / p).read_bytes() for p in ("state.json", "audit.log")}
    proc = rollback(rb, check=True)
    assert proc.returncode == 0, proc.output[-3000:]
    assert "1.1.0 (green) -> 1.0.0" in proc.output or "1.1.0 (blue) -> 1.0.0" in proc.flat
    assert "switch haproxy to it at once" in proc.output and "check mode: nothing will be changed" in proc.flat
    assert {p: (rb["app_root"] / p).read_bytes() for p in before} == before
    assert served(rb) == "1.1.0"


def test_warm_rollback_is_instant_with_zero_failed_requests(rb):
    live_before = state(rb)["live_color"]
    with LoadLoop(rb["router"] + "/health") as load:
        time.sleep(0.3)
        proc = rollback(rb)
        time.sleep(0.3)
    assert proc.returncode == 0, proc.output[-3000:]
    assert load.failed == [] and load.ok > 50, (load.failed[:10], load.ok)
    assert {"1.0.0", "1.1.0"} <= load.versions
    assert served(rb) == "1.0.0"
    st = state(rb)
    assert st["live_version"] == "1.0.0" and st["live_color"] != live_before
    assert st.get("previous_version") is None and st["last_rollback"]["from"] == "1.1.0"  # null removes the key
    steps = [e.get("step") for e in audit(rb) if e.get("action") == "rollback"]
    assert steps[-3:] == ["switch", "verify", "finalize"]
    assert "no downtime" in proc.flat


def test_second_rollback_without_a_target_refuses(rb):
    proc = rollback(rb)
    assert proc.returncode != 0
    assert "nothing to roll back to" in proc.output and "last rollback 1.1.0 -> 1.0.0" in proc.flat
    assert served(rb) == "1.0.0"


def test_rollback_to_a_cold_version_starts_it_from_releases(rb):
    # The cache the release wrote goes with it (runbooks 001/002's FLUSHDB, by pattern here):
    # this app's keys (prefix rb_) are deleted, another app's keys in the same db stay.
    rd = rb["sandbox"]["services"]["redis"]
    cache = redis.Redis(host=rd["host"], port=rd["port"], password=rb["sandbox"]["secrets"]["redis_password"],
                        db=REDIS_DB)
    cache.mset({"rb_po:%d" % i: "cached" for i in range(250)})
    cache.set("other_app:kept", "yes")
    # the 1.1.0 color was stopped by the previous rollback (rollback_old_color stop)
    proc = rollback(rb, rollback_to="1.1.0", rollback_cache_invalidate=["rb_*"])
    assert proc.returncode == 0, proc.output[-3000:]
    assert "start 1.1.0 from releases/" in proc.flat
    assert served(rb) == "1.1.0"
    assert [e.get("step") for e in audit(rb) if e.get("action") == "rollback"][-5:] == [
        "start", "switch", "cache", "verify", "finalize"]
    invalidated = [e for e in audit(rb) if e.get("step") == "cache"][-1]
    assert invalidated["patterns"] == ["rb_*"] and invalidated["deleted"]["rb_*"] >= 250, invalidated
    assert list(cache.scan_iter("rb_po:*")) == [] and cache.get("other_app:kept") == b"yes"
    cache.delete("other_app:kept")
    again = rollback(rb, rollback_to="1.1.0")  # already live: nothing to do
    assert again.returncode == 0 and recap_changed(again.output) == 0, again.output[-2000:]


def test_downgrade_rollback_moves_the_revision_back(rb):
    st = state(rb)
    assert revision(rb) == st["db_revisions"][0] != st["db_revisions_before"][0]
    proc = rollback(rb, rollback_to="1.0.0", rollback_db="downgrade")
    assert proc.returncode == 0, proc.output[-3000:]
    assert served(rb) == "1.0.0"
    assert revision(rb) == st["db_revisions_before"][0]
    assert state(rb)["db_revisions"] == st["db_revisions_before"]


def test_restore_rollback_reports_the_503_window_and_discarded_rows(rb):
    proc = playbook(rb, "deploy.yml", app_version="1.1.0")
    assert proc.returncode == 0, proc.output[-3000:]
    st = state(rb)
    manifest = json.loads(open(st["backup_path"] + ".manifest.json").read())
    conn = superuser_conn(rb["sandbox"], rb["db"])
    with conn.cursor() as cur:  # rows written after the backup: the restore discards them
        cur.execute("SELECT count(*) FROM purchase_orders")
        now_rows = cur.fetchone()[0]
        cur.execute("INSERT INTO purchase_orders (buyer_company_id, seller_company_id, product_id) "
                    "SELECT 1, 2, 1 FROM generate_series(1, 5)")
    conn.close()
    written_after = now_rows + 5 - manifest["row_counts"]["purchase_orders"]
    with LoadLoop(rb["router"] + "/health") as load:
        time.sleep(0.3)
        proc = rollback(rb, rollback_db="restore")
        time.sleep(0.3)
    assert proc.returncode == 0, proc.output[-3000:]
    assert served(rb) == "1.0.0"
    assert revision(rb) == st["db_revisions_before"][0]
    assert 503 in load.failed  # writes were stopped: clients got 503 during the swap
    last = state(rb)["last_rollback"]
    assert last["db"] == "restore" and last["unavailable_s"] > 0
    assert last["discarded_rows"] == {"purchase_orders": written_after}
    assert last["replaced_db"].startswith(rb["db"] + "_replaced_")
    db_event = [e for e in audit(rb) if e.get("step") == "database"][-1]
    assert db_event["swap_window_s"] > 0 and db_event["discarded_rows"] == {"purchase_orders": written_after}
    assert "rows written after the backup, discarded" in proc.output and "503 for" in proc.flat


def po_ids(rb):
    conn = superuser_conn(rb["sandbox"], rb["db"])
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM purchase_orders ORDER BY id")
        ids = [row[0] for row in cur.fetchall()]
    conn.close()
    return ids


def test_a_chosen_backup_is_restored_in_place_with_the_version_unchanged(rb):
    # The night's backup (runbook 002's cron dump, made by pg_backup with its manifest) at the
    # live schema; then rows written after it, which the restore discards.
    st = state(rb)
    label = "nightly-%d" % time.time()
    db = yaml.safe_load(rb["inventory"].read_text())["all"]["hosts"]["rb1"]["app_database"]
    taken = run_module("pg_backup", dict(db, dest_dir=str(rb["app_root"] / "backups"), label=label,
                                         row_count_tables=["purchase_orders"]))
    assert not taken.get("failed"), taken.get("msg")
    rows_of_backup = po_ids(rb)
    conn = superuser_conn(rb["sandbox"], rb["db"])
    with conn.cursor() as cur:
        cur.execute("INSERT INTO purchase_orders (buyer_company_id, seller_company_id, product_id) "
                    "SELECT 1, 2, 1 FROM generate_series(1, 5)")
    conn.close()
    assert len(po_ids(rb)) == len(rows_of_backup) + 5

    # An unknown label: refused before anything changes, naming rollback_backup and the labels there.
    files = {p: (rb["app_root"] / p).read_bytes() for p in ("state.json",)}
    proc = rollback(rb, rollback_backup="pre-9.9.9-nope")
    assert proc.returncode != 0
    assert "rollback_backup: no backup labelled 'pre-9.9.9-nope' in app_backup_dir" in proc.flat, proc.output[-2000:]
    assert "labels there, newest first: %s" % label in proc.flat and "Traffic: untouched" in proc.flat
    assert {p: (rb["app_root"] / p).read_bytes() for p in files} == files
    assert len(po_ids(rb)) == len(rows_of_backup) + 5 and served(rb) == st["live_version"]
    assert not (rb["app_root"] / "deploy.lock").exists()

    # --check: the plan, nothing changed.
    audit_before = (rb["app_root"] / "audit.log").read_bytes()
    proc = rollback(rb, check=True, rollback_backup=label)
    assert proc.returncode == 0, proc.output[-3000:]
    assert "restore in place of %s" % APP in proc.flat and "(the version stays)" in proc.flat
    assert "database: restore from %s (rollback_backup %s: rollback_db restore implied)" % (taken["path"], label) \
        in proc.flat
    assert (rb["app_root"] / "audit.log").read_bytes() == audit_before
    assert {p: (rb["app_root"] / p).read_bytes() for p in files} == files

    with LoadLoop(rb["router"] + "/health") as load:
        time.sleep(0.3)
        started = time.monotonic()
        proc = rollback(rb, rollback_backup=label)
        took = time.monotonic() - started
        time.sleep(0.3)
    assert proc.returncode == 0, proc.output[-3000:]
    # The same version, now on the other color (started there before traffic stopped); the
    # rows are the backup's.
    after = state(rb)
    assert served(rb) == st["live_version"] and load.versions == {st["live_version"]}
    for key in ("live_version", "previous_version", "db_revisions", "backup_path"):
        assert after.get(key) == st.get(key), key
    moved_to = "blue" if st["live_color"] == "green" else "green"
    assert after["live_color"] == moved_to
    assert after["colors"] == dict(st["colors"], **{moved_to: st["live_version"], st["live_color"]: None})
    assert po_ids(rb) == rows_of_backup
    # The window: clients got 503 from the router (maintenance), nothing else failed.
    assert load.failed and set(load.failed) == {503}, load.failed[:10]
    restore = after["last_restore"]
    assert restore["backup"] == taken["path"] and restore["label"] == label and restore["version"] == st["live_version"]
    assert restore["discarded_rows"] == {"purchase_orders": 5} and restore["unavailable_s"] > 0
    assert restore["replaced_db"].startswith(rb["db"] + "_replaced_")
    lines = [e for e in audit(rb) if e.get("run_id") == restore["run_id"]]
    # The start before traffic stopped (out of the window); the lines of the window are written
    # once traffic is back.
    assert [e["step"] for e in lines] == ["start", "switch", "traffic_off", "database", "verify", "finalize"]
    assert lines[0]["color"] == moved_to and lines[1]["color"] == moved_to
    # ... and the playbook started it before it stopped traffic
    assert proc.output.index("Start the color and wait until it serves") < proc.output.index("Stop traffic (")
    assert lines[3]["backup"] == taken["path"] and lines[3]["discarded_rows"] == {"purchase_orders": 5}
    assert lines[-1]["restore"] == "in_place" and lines[-1]["backup_label"] == label
    assert "restored in place on rb1" in proc.flat and "discarded: {\"purchase_orders\": 5}" in proc.flat
    print("restore in place: playbook %.1f s, 503 for %.2f s, %d requests failed (503), %d ok"
          % (took, restore["unavailable_s"], len(load.failed), load.ok))

    # The next deploy of the same version has nothing to do.
    proc = playbook(rb, "deploy.yml", app_version=st["live_version"])
    assert proc.returncode == 0 and recap_changed(proc.output) == 0, proc.output[-3000:]
