"""The sample app and its release variants behave as the tests and the demo need."""

import json
import signal
import tarfile
import time

import psycopg2
import pytest
import redis
import requests

from apptools import alembic, superuser_conn

EXPECTED_TABLES = {
    # runbook 002
    "reconciliation_logs", "positions", "users", "audit_logs", "signals", "approvals",
    # runbook 003
    "portfolio_state", "portfolio_positions", "instance_heartbeat", "leadership_history",
    # runbook 004
    "purchase_orders", "companies", "products",
}
PO_INDEXES = {"idx_po_buyer_company_id", "idx_po_seller_company_id", "idx_po_product_id",
              "idx_po_status", "idx_po_created_at"}


def query(sandbox, db, sql):
    conn = superuser_conn(sandbox, db)
    with conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    conn.close()
    return rows


def revision(sandbox, db):
    return query(sandbox, db, "SELECT version_num FROM alembic_version")[0][0]


@pytest.fixture
def migrated(sandbox, app_python, release_dir, fresh_db):
    release = release_dir("1.1.0", "good")
    proc = alembic(app_python, release, fresh_db["url"], "upgrade", "head")
    assert proc.returncode == 0, proc.stderr
    return fresh_db


def test_build_is_reproducible_and_selects_variant_revisions(tmp_path):
    import demo_app

    first = demo_app.build("9.9.9", "errors", tmp_path / "a")
    second = demo_app.build("9.9.9", "errors", tmp_path / "b")
    assert first["sha256"] == second["sha256"]
    assert first["revisions"] == ["0001_initial", "0002_po_indexes", "0003_po_notes", "0004_audit_events"]
    with tarfile.open(first["path"]) as tar:
        release = json.load(tar.extractfile("RELEASE.json"))
        assert release == {"name": "sampleapp", "version": "9.9.9", "variant": "errors"}
    other = demo_app.build("9.9.9", "good", tmp_path / "c")
    assert other["sha256"] != first["sha256"]


def test_migrations_create_runbook_tables_and_po_indexes(sandbox, migrated):
    db = migrated["name"]
    tables = {r[0] for r in query(sandbox, db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert EXPECTED_TABLES <= tables
    indexes = {r[0] for r in query(sandbox, db, "SELECT indexname FROM pg_indexes "
                                                "WHERE tablename = 'purchase_orders' AND indexname LIKE 'idx_po_%'")}
    assert indexes == PO_INDEXES
    assert revision(sandbox, db) == "0003"
    columns = {r[0] for r in query(sandbox, db, "SELECT column_name FROM information_schema.columns "
                                                "WHERE table_name = 'purchase_orders'")}
    assert "notes" in columns


def test_good_release_serves_health_ready_metrics_cache_and_flags(sandbox, migrated, release_dir, run_app):
    url, proc = run_app(release_dir("1.1.0", "good"), migrated["url"],
                        env_lines=["ENABLE_PO_CACHING=true", "ENABLE_PO_CACHING=false", "ADMIN_TOKEN=s3cret"])
    health = requests.get(url + "/health", timeout=5).json()
    assert health == {"status": "healthy", "version": "1.1.0", "variant": "good", "positions": 0,
                      "maintenance": False}
    assert requests.get(url + "/api/v1/health", timeout=5).json()["version"] == "1.1.0"
    assert requests.get(url + "/version", timeout=5).text.strip() == "1.1.0"
    ready = requests.get(url + "/ready", timeout=5)
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "redis": "ok"}

    created = requests.post(url + "/api/purchase-orders", json={
        "buyer_company_id": 1, "seller_company_id": 2, "product_id": 1, "quantity": 3}, timeout=5)
    assert created.status_code == 201
    po_id = created.json()["id"]
    first = requests.get(f"{url}/api/purchase-orders/{po_id}", timeout=5).json()
    second = requests.get(f"{url}/api/purchase-orders/{po_id}", timeout=5).json()
    assert first == second and first["quantity"] == 3
    port = url.rsplit(":", 1)[1]
    rd = sandbox["services"]["redis"]
    cache = redis.Redis(host=rd["host"], port=rd["port"], db=7, password=sandbox["secrets"]["redis_password"])
    assert cache.exists(f"t{port}_po:{po_id}") == 1
    metrics = requests.get(url + "/metrics", timeout=5).text
    assert "cache_hits_total 1" in metrics and "cache_misses_total 1" in metrics
    assert 'http_requests_total{path="/health",status="200"} 2' in metrics  # start probe + ours

    # The last assignment in .env wins; runtime flags come from Redis.
    cache.set("flags:EMERGENCY_RATE_LIMIT", "100", ex=60)
    flags = requests.get(url + "/api/flags", timeout=5).json()
    assert flags["env_file"]["ENABLE_PO_CACHING"] == "false"
    assert flags["redis"]["EMERGENCY_RATE_LIMIT"] == "100"
    cache.delete("flags:EMERGENCY_RATE_LIMIT", f"t{port}_po:{po_id}")

    assert requests.get(url + "/api/admin/performance-metrics", timeout=5).status_code == 401
    perf = requests.get(url + "/api/admin/performance-metrics",
                        headers={"Authorization": "Bearer s3cret"}, timeout=5).json()
    assert perf["cache_hit_ratio"] == 0.5

    proc.send_signal(signal.SIGTERM)
    # uvicorn finishes in-flight work, then re-raises SIGTERM so supervisors see why it exited.
    assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
    log = proc.log_path.read_text()
    assert "Recovery successful: loaded 0 positions" in log
    assert "shutting down gracefully" in log


def test_health_answers_while_ready_reports_a_dead_database(sandbox, release_dir, run_app):
    bad_url = "postgresql+psycopg2://app:wrong@127.0.0.1:%d/app" % sandbox["services"]["postgres"]["port"]
    url = run_app(release_dir("1.1.0", "good"), bad_url)[0]
    health = requests.get(url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["positions"] is None
    ready = requests.get(url + "/ready", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("error")


def test_crash_variant_exits_at_start(migrated, release_dir, run_app):
    proc = run_app(release_dir("1.2.0", "crash"), migrated["url"], wait=False)[1]
    assert proc.wait(timeout=30) == 3
    assert "refusing to start (crash variant)" in proc.log_path.read_text()


def test_slow_variant_adds_latency(migrated, release_dir, run_app):
    url = run_app(release_dir("1.2.0", "slow"), migrated["url"])[0]
    started = time.perf_counter()
    assert requests.get(url + "/health", timeout=10).json()["variant"] == "slow"
    # A lower bound set by the app's own sleep: cannot pass by chance on a slow machine.
    assert time.perf_counter() - started >= 0.6


def test_errors_variant_fails_half_the_requests_after_its_first_150(sandbox, release_dir, run_app, fresh_db, app_python):
    release = release_dir("1.2.0", "errors")
    assert alembic(app_python, release, fresh_db["url"], "upgrade", "head").returncode == 0
    assert revision(sandbox, fresh_db["name"]) == "0004_audit"
    url = run_app(release, fresh_db["url"])[0]
    statuses = [requests.get(url + "/health", timeout=5).status_code for attempt in range(189)]
    assert statuses[:149] == [200] * 149  # the start probe was request 1 of 190
    assert statuses[149:].count(500) == 20 and statuses[149:].count(200) == 20


def test_bad_migration_fails_half_way_and_leaves_previous_revision(sandbox, app_python, release_dir, fresh_db):
    release = release_dir("1.2.0", "bad-migration")
    proc = alembic(app_python, release, fresh_db["url"], "upgrade", "head")
    assert proc.returncode != 0
    assert "shipped_at" in proc.stderr
    assert revision(sandbox, fresh_db["name"]) == "0003"
    tables = {r[0] for r in query(sandbox, fresh_db["name"], "SELECT tablename FROM pg_tables")}
    assert "shipments" not in tables


def test_release_downgrade_drops_the_expand_migration(sandbox, app_python, release_dir, fresh_db):
    release = release_dir("1.2.0", "errors")
    assert alembic(app_python, release, fresh_db["url"], "upgrade", "head").returncode == 0
    proc = alembic(app_python, release, fresh_db["url"], "downgrade", "0003")
    assert proc.returncode == 0, proc.stderr
    tables = {r[0] for r in query(sandbox, fresh_db["name"], "SELECT tablename FROM pg_tables")}
    assert "audit_events" not in tables and revision(sandbox, fresh_db["name"]) == "0003"


@pytest.mark.xdist_group("demo_slot")
def test_demo_install_serves_through_both_routers(sandbox):
    """The foundation demo's path: 1.0.0 as blue, /health through haproxy and nginx."""
    import demo_app

    demo_app.reset()  # the demo may have left the slot on a newer schema
    result = demo_app.install("1.0.0", "base", "blue")
    assert result["health"]["version"] == "1.0.0"
    for port in (sandbox["services"]["haproxy"]["port"], sandbox["services"]["nginx"]["port"]):
        body = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert body["version"] == "1.0.0"
    env_file = sandbox["apps_dir"] + "/sampleapp/shared/.env"
    import os
    assert oct(os.stat(env_file).st_mode & 0o777) == "0o600"
    with psycopg2.connect(host="127.0.0.1", port=sandbox["services"]["postgres"]["port"], user="app",
                          dbname="app", password=sandbox["secrets"]["app_db_password"]) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT version_num FROM alembic_version")
            assert cur.fetchone()[0] == "0002"


def test_maintenance_file_refuses_new_work_while_health_answers(sandbox, migrated, release_dir, run_app, tmp_path):
    """Runbook 003-06: MAINTENANCE_FILE present -> 503 to new work; /health says so; the drain is visible."""
    flag = tmp_path / "maintenance"
    url = run_app(release_dir("1.1.0", "good"), migrated["url"], env_lines=[f"MAINTENANCE_FILE={flag}"])[0]
    order = {"buyer_company_id": 1, "seller_company_id": 2, "product_id": 1, "quantity": 1}
    assert requests.get(url + "/health", timeout=5).json()["maintenance"] is False
    assert requests.post(url + "/api/purchase-orders", json=order, timeout=5).status_code == 201

    # Open positions (in the database) are what a drain waits for.
    conn = superuser_conn(sandbox, migrated["name"])
    with conn.cursor() as cur:
        cur.execute("INSERT INTO portfolio_positions (symbol, status, quantity) VALUES ('NIFTY', 'open', 1), "
                    "('BANKNIFTY', 'open', 2), ('GOLD', 'closed', 1)")
    flag.write_text("deploy\n")
    refused = requests.post(url + "/api/purchase-orders", json=order, timeout=5)
    assert refused.status_code == 503 and refused.json()["error"] == "maintenance"
    assert refused.headers["Retry-After"] == "30"
    health = requests.get(url + "/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["maintenance"] is True and health.json()["positions"] == 2
    assert requests.get(url + "/api/purchase-orders", timeout=5).status_code == 200  # reads still served

    with conn.cursor() as cur:
        cur.execute("UPDATE portfolio_positions SET status = 'closed'")
    conn.close()
    flag.unlink()
    health = requests.get(url + "/health", timeout=5).json()
    assert health["maintenance"] is False and health["positions"] == 0
    assert requests.post(url + "/api/purchase-orders", json=order, timeout=5).status_code == 201
