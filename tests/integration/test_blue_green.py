"""playbooks/deploy.yml with the blue_green role, end to end in the sandbox.

The scenario runs in order on one simulated host (its own app root, database, colors and
haproxy backend `be_test`), the way an operator's deploy days follow each other:
first deploy, idempotent re-run, an upgrade with a migration under load, a release that
crashes (rejected before the switch), one that errors under traffic (switched back, its
migration downgraded), one whose migration fails, and a deploy that finds the lock held.
"""

import collections
import json
import re
import time
from pathlib import Path

import pytest
import requests
import yaml

import demo_app
from apptools import create_app_db, drop_db, retire_test_slot_app, superuser_conn
from bluegreen_tools import LoadLoop, backup_servers as slot_backup_servers
from helpers import ROOT, run_playbook

# One worker runs the whole scenario, in order (pytest-xdist --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("blue_green")]


@pytest.fixture(scope="module")
def bg(sandbox, tmp_path_factory):
    base = tmp_path_factory.mktemp("bluegreen")
    name = create_app_db(sandbox, "t_bg_")
    pg = sandbox["services"]["postgres"]
    demo_app.ensure_wheels()
    dist = base / "dist"
    artifacts = {
        "1.0.0": "base", "1.1.0": "good", "1.2.0": "crash", "1.2.1": "errors", "1.2.2": "bad-migration",
        "1.2.3": "leaky",
    }
    for version, variant in artifacts.items():
        demo_app.build(version, variant, dist)
    secret = sandbox["secrets"]
    db_url = "postgresql+psycopg2://%s:%s@%s:%s/%s" % (pg["app_user"], secret["app_db_password"],
                                                       pg["host"], pg["port"], name)
    haproxy = sandbox["services"]["haproxy"]
    sup = sandbox["services"]["supervisor"]
    app_root = base / "srv" / "bgtest"
    host_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
        "app_name": "bgtest",
        "app_root": str(app_root),
        "blue_green_artifact_src": str(dist) + "/sampleapp-{{ blue_green_version }}.tar.gz",
        "blue_green_pip_extra_args": f"--no-index --find-links {ROOT}/.cache/wheels",
        "app_start_command": "{{ app_venv }}/bin/python -m sampleapp --port {{ app_port }}",
        "app_colors": {"blue": {"port": haproxy["test_servers"]["blue"]},
                       "green": {"port": haproxy["test_servers"]["green"]}},
        "app_process_manager": "supervisor",
        "app_supervisor_conf_dir": sup["programs_dir"],
        "app_supervisorctl": str(ROOT / ".venv" / "bin" / "supervisorctl"),
        "app_supervisor_config": sup["config"],
        "app_router": "haproxy",
        "app_haproxy_admin_socket": haproxy["admin_socket"],
        "app_haproxy_backend": haproxy["test_backend"],
        "app_router_url": f"http://127.0.0.1:{haproxy['test_port']}",
        "app_database": {"db": name, "login_host": pg["host"], "login_port": pg["port"],
                         "login_user": pg["app_user"], "login_password": secret["app_db_password"]},
        "app_database_url": db_url,
        "blue_green_shared_env": {
            "DATABASE_URL": db_url,
            "REDIS_URL": demo_app.redis_url(sandbox, 9),
            "CACHE_PREFIX": "bg_",
            "DEBUG": "false",
        },
        "blue_green_row_count_tables": ["purchase_orders"],
        # Behaviour, not speed: latency limits stay far above what a loaded CI machine shows.
        "blue_green_gate_idle": {"requests": 30, "concurrency": 4, "max_error_rate": 0.0,
                                 "max_latency_ms": {"p95": 10000}},
        "blue_green_gate_live": {"requests": 120, "concurrency": 4, "max_error_rate": 0.01,
                                 "max_latency_ms": {"p95": 10000}},
        "blue_green_db_rollback": "downgrade",
        "app_start_timeout": 90,
    }
    inventory = base / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"bg1": host_vars}}}))
    state = {"inventory": inventory, "app_root": app_root, "db": name,
             "router": host_vars["app_router_url"], "sandbox": sandbox}
    yield state
    retire_test_slot_app(sandbox, "bgtest", ROOT)
    drop_db(sandbox, name)


def deploy(bg, version, **extra):
    proc = run_playbook(ROOT / "playbooks" / "deploy.yml", inventory=bg["inventory"],
                        extra_vars=dict({"app_version": version, "deploy_hosts": "all"}, **extra))
    return proc


def recap_changed(output):
    match = re.search(r"bg1\s+:\s+ok=\d+\s+changed=(\d+)", output)
    assert match, output[-3000:]
    return int(match.group(1))


def backup_servers(bg):
    return slot_backup_servers(bg["sandbox"], bg["sandbox"]["services"]["haproxy"]["test_backend"])


def served_version(bg):
    return requests.get(bg["router"] + "/health", timeout=5).json()["version"]


def db_revision(bg):
    conn = superuser_conn(bg["sandbox"], bg["db"])
    with conn.cursor() as cur:
        cur.execute("SELECT version_num FROM alembic_version")
        rev = cur.fetchone()[0]
    conn.close()
    return rev


def tables(bg):
    conn = superuser_conn(bg["sandbox"], bg["db"])
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        names = {r[0] for r in cur.fetchall()}
    conn.close()
    return names


def state(bg):
    return json.loads((bg["app_root"] / "state.json").read_text())


def audit(bg):
    return [json.loads(line) for line in (bg["app_root"] / "audit.log").read_text().splitlines()]


def test_first_deploy_serves_the_version_through_the_router(bg):
    proc = deploy(bg, "1.0.0")
    assert proc.returncode == 0, proc.output[-4000:]
    assert served_version(bg) == "1.0.0"
    assert db_revision(bg) == "0002"
    st = state(bg)
    assert st["live_version"] == "1.0.0" and st["live_color"] == "blue"
    assert (bg["app_root"] / "releases" / "1.0.0" / ".release.json").exists()
    assert oct((bg["app_root"] / "shared" / ".env").stat().st_mode & 0o777) == "0o600"
    last = audit(bg)[-1]
    assert last["action"] == "deploy" and last["result"] == "success" and last["version"] == "1.0.0"
    assert "1.0.0 is live on bg1" in proc.flat


def test_rerun_of_the_live_version_changes_nothing(bg):
    before = (bg["app_root"] / "state.json").read_bytes()
    proc = deploy(bg, "1.0.0")
    assert proc.returncode == 0, proc.output[-4000:]
    assert recap_changed(proc.output) == 0
    assert "which serves it: nothing to do" in proc.flat
    assert (bg["app_root"] / "state.json").read_bytes() == before


def test_upgrade_with_migration_under_load_fails_no_request(bg):
    with LoadLoop(bg["router"] + "/health") as load:
        time.sleep(0.5)
        proc = deploy(bg, "1.1.0")
        time.sleep(0.5)
    assert proc.returncode == 0, proc.output[-4000:]
    assert served_version(bg) == "1.1.0"
    assert db_revision(bg) == "0003"
    assert load.failed == [], f"{len(load.failed)} failed of {load.ok + len(load.failed)}: {load.failed[:10]}"
    assert load.versions == {"1.0.0", "1.1.0"} and load.ok > 50
    st = state(bg)
    assert st["live_color"] == "green" and st["previous_version"] == "1.0.0"
    backup = Path(st["backup_path"])
    assert backup.exists() and "pre-1.1.0" in backup.name
    # The previous color was a backup server of the router from the switch to the end.
    assert "prodready-backup-blue" in proc.flat and backup_servers(bg) == []
    # The previous color stays warm for an instant rollback.
    assert requests.get("http://127.0.0.1:%d/health" % bg["sandbox"]["services"]["haproxy"]["test_servers"]["blue"],
                        timeout=5).json()["version"] == "1.0.0"


def test_a_release_that_crashes_is_rejected_before_the_switch(bg):
    proc = deploy(bg, "1.2.0")
    assert proc.returncode != 0
    assert "stopped in phase start" in proc.flat
    assert "refusing to start (crash variant)" in proc.flat  # the app's own last log line
    assert "Traffic: untouched, still on green" in proc.flat
    assert served_version(bg) == "1.1.0"
    assert db_revision(bg) == "0003"
    assert state(bg)["live_version"] == "1.1.0"
    failure = audit(bg)[-1]
    assert failure["result"] == "failed" and failure["phase"] == "start"


def test_a_downgrade_that_leaves_tables_behind_falls_back_to_the_pre_deploy_backup(bg):
    """1.2.3 migrates (a po_cache table whose downgrade is empty) then crashes at start: the
    downgrade "succeeds" but the schema differs from the pre-deploy dump, so the pre-deploy
    backup is restored instead, and a retry of a release with the same migration would not
    meet the table (DuplicateTable)."""
    proc = deploy(bg, "1.2.3")
    assert proc.returncode != 0
    assert "stopped in phase start" in proc.flat
    assert "the downgrade left the schema different from the pre-deploy dump (extra: " in proc.flat, proc.flat[-3000:]
    assert "extra: CREATE TABLE public.po_cache (" in proc.flat
    assert "so the pre-deploy backup was restored instead" in proc.flat
    assert "po_cache" not in tables(bg) and db_revision(bg) == "0003"
    assert served_version(bg) == "1.1.0"
    failure = audit(bg)[-1]
    assert failure["restore"]["replaced_db"] and failure["schema_differences"]


def test_errors_after_the_switch_switch_back_and_downgrade(bg):
    with LoadLoop(bg["router"] + "/health") as load:
        proc = deploy(bg, "1.2.1")
    assert proc.returncode != 0
    assert "stopped in phase gate_live" in proc.flat
    assert "error rate" in proc.flat
    assert "switched back to green (1.1.0)" in proc.flat
    assert "rolled back by downgrade to 0003" in proc.flat
    assert served_version(bg) == "1.1.0"
    assert db_revision(bg) == "0003"
    assert "audit_events" not in tables(bg)
    failure = audit(bg)[-1]
    assert failure["phase"] == "gate_live" and failure["schema_differences"] == []
    # During the bad release's gate window, clients see its 500s. Once haproxy's health checks
    # mark it DOWN, the previous color, a runtime backup server since the switch, answers:
    # no 503 from the router, no connection error, no 502. After the switch back all is 200
    # and the backup server is gone.
    unexpected = [code for code in load.failed if code != 500]
    assert unexpected == [], collections.Counter(load.failed)
    assert backup_servers(bg) == []
    assert all(requests.get(bg["router"] + "/health", timeout=5).status_code == 200 for attempt in range(20))


def test_a_failing_migration_leaves_the_database_and_traffic_as_they_were(bg):
    proc = deploy(bg, "1.2.2")
    assert proc.returncode != 0
    # The failure names the migration that failed (the loop's first failed item), not
    # Ansible's "One or more items failed".
    head = "stopped in phase migrate (Migrate the database): "
    assert head in proc.flat, proc.output[-3000:]
    reason = proc.flat.split(head, 1)[1][:600]
    assert "0004_bad" in reason and not reason.startswith("One or more items failed"), reason
    assert served_version(bg) == "1.1.0"
    assert db_revision(bg) == "0003"
    assert "shipments" not in tables(bg)


def test_a_second_deploy_fails_while_the_lock_is_held(bg):
    lock = bg["app_root"] / "deploy.lock"
    lock.write_text(json.dumps({"owner": "alice@laptop", "run_id": "other-run", "since": "2026-11-26T10:00:00Z",
                                "since_epoch": time.time(), "host": "laptop", "pid": 1}))
    try:
        proc = deploy(bg, "1.1.0")
    finally:
        lock.unlink()
    assert proc.returncode != 0
    assert "alice@laptop" in proc.flat
    assert served_version(bg) == "1.1.0"
