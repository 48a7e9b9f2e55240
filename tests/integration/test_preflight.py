"""preflight_check and playbooks/preflight.yml against the sandbox: seed a problem for every
kind of check, assert the report lists EVERY one of them (not the first), fix them all and
assert the same checklist passes.

One module-scoped scenario (three ansible runs) serves every assertion. It uses its own
database (created and dropped here, as superuser), its own temp dir, its own ports; Redis
is only PINGed, with a wrong password and then the right one.
"""

import os
import re
import socket
import subprocess

import pytest

from apptools import create_app_db, drop_db, free_port, superuser_conn
from helpers import ROOT, run_module, run_playbook

TABLES = [
    # runbook 002's six
    "reconciliation_logs", "positions", "users", "audit_logs", "signals", "approvals",
    # runbook 003's four
    "portfolio_state", "portfolio_positions", "instance_heartbeat", "leadership_history",
]
INDEXES = ["idx_po_buyer_company_id", "idx_po_seller_company_id", "idx_po_product_id",
           "idx_po_status", "idx_po_created_at"]  # runbook 004's five
MISSING_TABLES = ["signals", "leadership_history"]
MISSING_INDEXES = ["idx_po_buyer_company_id", "idx_po_seller_company_id", "idx_po_product_id"]
# plpgsql is installed in every database; pg_trgm is offered by the server (contrib) but not
# installed in the new database until the fix step runs CREATE EXTENSION.
EXTENSIONS = ["plpgsql", "pg_trgm"]
INDEX_COLUMNS = dict(zip(INDEXES, ["buyer_company_id", "seller_company_id", "product_id", "status",
                                   "created_at"]))
TOOL = "prodready-preflight-tool"
WRONG_REDIS_PASSWORD = "wrong-Redis-pw-4411"

SEEDED_ENV = (
    "DATABASE_URL=postgresql://app:pw@db/app\n"
    "JWT_SECRET_KEY=<CHANGE_IN_PRODUCTION>\n"
    "CACHE_PREFIX=\n"
    "APP_ENV=production\n"
    "LOG_LEVEL=DEBUG\n"
    "DEBUG=true\n"
)
CLEAN_ENV = (
    "DATABASE_URL=postgresql://app:pw@db/app\n"
    "REDIS_URL=redis://cache:6379/0\n"
    "JWT_SECRET_KEY=3f1c9a7e5b2d\n"
    "CACHE_PREFIX=prod_\n"
    "APP_ENV=production\n"
    "LOG_LEVEL=INFO\n"
    "DEBUG=false\n"
)


def make_cert(path, days):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(path) + ".key", "-out", str(path), "-days", str(days),
                    "-subj", "/CN=preflight.test"], check=True, capture_output=True)


def sql(sandbox, db, *statements):
    conn = superuser_conn(sandbox, db)
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.close()


def create_schema(sandbox, db, tables, indexes):
    statements = ["CREATE TABLE IF NOT EXISTS %s (id serial PRIMARY KEY)" % t for t in tables]
    statements.append("CREATE TABLE IF NOT EXISTS purchase_orders (id serial PRIMARY KEY, "
                      "buyer_company_id int, seller_company_id int, product_id int, status text, "
                      "created_at timestamptz)")
    statements += ["CREATE INDEX IF NOT EXISTS %s ON purchase_orders (%s)" % (i, INDEX_COLUMNS[i])
                   for i in indexes]
    sql(sandbox, db, *statements)


def checklist(sandbox, db, root, redis_password, minimums):
    """The module's arguments: every kind of check, as a runbook checklist would ask."""
    pg = sandbox["services"]["postgres"]
    redis = sandbox["services"]["redis"]
    return dict(
        min_cpu_count=minimums["cpu"], min_mem_mb=minimums["mem"],
        disk=[{"path": str(root), "min_free_mb": minimums["disk"], "max_used_percent": 100}],
        binaries=["sh", TOOL],
        env_file=str(root / ".env"),
        env_required=["DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY", "CACHE_PREFIX"],
        env_expected={"APP_ENV": "production", "LOG_LEVEL": "INFO"},
        env_forbidden={"DEBUG": [True, "1", "yes", "on"]},
        secret_files=[str(root / ".env"), str(root / "database_config.json")],
        postgres=dict(db=db, login_host=pg["host"], login_port=pg["port"], login_user=pg["app_user"],
                      login_password=sandbox["secrets"]["app_db_password"], tables=TABLES, indexes=INDEXES,
                      extensions=EXTENSIONS),
        redis=dict(login_host=redis["host"], login_port=redis["port"], login_password=redis_password),
        tls_certs=[{"path": str(root / "tls.pem"), "min_days": 14, "warn_days": 30}],
        ports_free=[minimums["free_port"]],
        ports_bind_address="127.0.0.1",
        ports_listening=["127.0.0.1:%d" % minimums["listen_port"]],
    )


@pytest.fixture(scope="module")
def scenario(sandbox, tmp_path_factory):
    root = tmp_path_factory.mktemp("preflight")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    module_env = {"PATH": "%s:%s" % (bin_dir, os.environ.get("PATH", "/usr/bin:/bin"))}
    db = create_app_db(sandbox, "t_preflight_")
    busy = socket.socket()
    listener = socket.socket()
    try:
        # ---- seed one problem per check kind
        create_schema(sandbox, db, [t for t in TABLES if t not in MISSING_TABLES],
                      [i for i in INDEXES if i not in MISSING_INDEXES])
        env = root / ".env"
        env.write_text(SEEDED_ENV)
        env.chmod(0o644)
        config = root / "database_config.json"
        config.write_text('{"password": "x"}\n')
        config.chmod(0o640)
        make_cert(root / "tls.pem", 5)
        busy.bind(("127.0.0.1", free_port()))
        busy.listen(1)
        closed_port = free_port()
        impossible = dict(cpu=4096, mem=1 << 30, disk=1 << 40,
                          free_port=busy.getsockname()[1], listen_port=closed_port)
        seeded_args = checklist(sandbox, db, root, WRONG_REDIS_PASSWORD, impossible)
        seeded = run_module("preflight_check", seeded_args, module_env=module_env, verbosity=3)

        role_vars = dict(
            preflight_hosts="localhost", ansible_connection="local", preflight_environment="prod",
            preflight_min_cpu_count=1, preflight_min_mem_mb=1, preflight_recommended_cpu_count=0,
            preflight_recommended_mem_mb=0, preflight_app_root=str(root), preflight_env_file=str(env),
            preflight_env_required=seeded_args["env_required"],
            preflight_env_expected=seeded_args["env_expected"],
            preflight_secret_files=seeded_args["secret_files"],
            preflight_postgres=dict((k, v) for k, v in seeded_args["postgres"].items()
                                    if k not in ("tables", "indexes", "extensions")),
            preflight_postgres_tables=TABLES, preflight_postgres_indexes=INDEXES,
            preflight_tls_certs=seeded_args["tls_certs"],
            preflight_ports_free=seeded_args["ports_free"], preflight_ports_bind_address="127.0.0.1")
        playbook = run_playbook(ROOT / "playbooks" / "preflight.yml", extra_vars=role_vars)

        # ---- fix every problem, run the same checklist (in check mode: it only reads)
        create_schema(sandbox, db, MISSING_TABLES, MISSING_INDEXES)
        sql(sandbox, db, "CREATE EXTENSION IF NOT EXISTS pg_trgm")
        env.write_text(CLEAN_ENV)
        env.chmod(0o600)
        config.chmod(0o600)
        make_cert(root / "tls.pem", 90)
        tool = bin_dir / TOOL
        tool.write_text("#!/bin/sh\nexit 0\n")
        tool.chmod(0o755)
        busy.close()
        listener.bind(("127.0.0.1", closed_port))
        listener.listen(1)
        sane = dict(cpu=1, mem=64, disk=1, free_port=impossible["free_port"], listen_port=closed_port)
        clean = run_module("preflight_check", checklist(sandbox, db, root, sandbox["secrets"]["redis_password"],
                                                        sane), module_env=module_env, check=True)
        yield dict(seeded=seeded, playbook=playbook, clean=clean, root=root, db=db,
                   free_port=impossible["free_port"], closed_port=closed_port)
    finally:
        busy.close()
        listener.close()
        drop_db(sandbox, db)


def expected_failures(s):
    root = s["root"]
    return set(
        ["cpu_count", "mem_mb", "disk %s" % root, "binary %s" % TOOL]
        + ["env %s" % n for n in ("REDIS_URL", "JWT_SECRET_KEY", "CACHE_PREFIX", "LOG_LEVEL", "DEBUG")]
        + ["file %s/.env" % root, "file %s/database_config.json" % root]
        + ["table %s" % t for t in MISSING_TABLES] + ["index %s" % i for i in MISSING_INDEXES]
        + ["extension pg_trgm"]
        + ["redis redis://127.0.0.1:%s/0" % s["redis_port"], "tls %s/tls.pem" % root,
           "port 127.0.0.1:%d free" % s["free_port"], "port 127.0.0.1:%d listening" % s["closed_port"]])


@pytest.fixture(scope="module")
def failures(scenario, sandbox):
    scenario["redis_port"] = sandbox["services"]["redis"]["port"]
    return expected_failures(scenario)


def test_seeded_run_lists_every_problem_and_fails(scenario, failures):
    result = scenario["seeded"]
    assert result["failed"] is True
    assert set(c["name"] for c in result["failed_checks"]) == failures, result.get("table")
    # the message names every failure, the table has a row for each
    for name in failures:
        assert name + ": " in result["msg"], name
        assert name in result["table"], name
    assert result["msg"].startswith("preflight: %d of %d checks failed: " % (len(failures), len(result["checks"])))


def test_seeded_details_say_what_is_wrong(scenario):
    checks = dict((c["name"], c) for c in scenario["seeded"]["checks"])
    root = scenario["root"]
    assert checks["env JWT_SECRET_KEY"]["detail"] == "still a placeholder (<CHANGE_IN_PRODUCTION>)"
    assert checks["env CACHE_PREFIX"]["detail"] == "empty"
    assert checks["env REDIS_URL"]["detail"] == "missing from %s/.env" % root
    assert checks["env DEBUG"]["detail"] == "must not be true"
    assert checks["env LOG_LEVEL"]["detail"] == "must be info"
    assert checks["file %s/.env" % root]["detail"].startswith("mode 0644 is wider than 0600")
    assert checks["index idx_po_product_id"]["detail"] == "missing from schema public"
    assert checks["extension pg_trgm"]["detail"] == (
        "available but not installed in %s (CREATE EXTENSION pg_trgm)" % scenario["db"])
    assert "authentication failed" in checks["redis redis://127.0.0.1:%s/0" % scenario["redis_port"]]["detail"]
    assert "< minimum 14 days" in checks["tls %s/tls.pem" % root]["detail"]
    # what is right is reported right, in the same pass
    for name in ["table users", "index idx_po_status", "extension plpgsql", "env DATABASE_URL", "env APP_ENV", "binary sh"]:
        assert checks[name]["status"] == "ok", name
    assert [c["status"] for c in scenario["seeded"]["checks"] if c["name"].startswith("postgres ")] == ["ok"]


def test_secrets_never_appear_in_output(scenario, sandbox):
    # verbosity 3 shows the module arguments: the passwords must be masked there too
    out = scenario["seeded"]["_stdout"] + scenario["playbook"].stdout + scenario["clean"]["_stdout"]
    for secret in (sandbox["secrets"]["app_db_password"], sandbox["secrets"]["redis_password"],
                   WRONG_REDIS_PASSWORD):
        assert secret not in out


def test_clean_setup_passes_in_check_mode(scenario):
    result = scenario["clean"]
    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True and result["failed_checks"] == []
    assert result["changed"] is False
    statuses = dict((c["name"], c["status"]) for c in result["checks"])
    assert statuses["tls %s/tls.pem" % scenario["root"]] == "ok"
    assert statuses["index idx_po_buyer_company_id"] == "ok"
    assert statuses["extension pg_trgm"] == "ok"
    assert set(statuses.values()) == {"ok"}, result["table"]


def test_playbook_prints_the_table_then_fails_naming_every_failure(scenario):
    proc = scenario["playbook"]
    root = scenario["root"]
    assert proc.returncode != 0
    out = proc.stdout
    table = out[out.index("Show the preflight table, stop when a check failed"):out.index("PLAY RECAP")]
    # the role's minimums are met here; every seeded file, database, TLS and port problem is listed
    role_failures = (["env %s" % n for n in ("REDIS_URL", "JWT_SECRET_KEY", "CACHE_PREFIX", "LOG_LEVEL", "DEBUG")]
                     + ["file %s/.env" % root, "file %s/database_config.json" % root]
                     + ["table %s" % t for t in MISSING_TABLES] + ["index %s" % i for i in MISSING_INDEXES]
                     + ["tls %s/tls.pem" % root, "port 127.0.0.1:%d free" % scenario["free_port"]])
    for name in role_failures:
        assert re.search(re.escape(name) + r"\s+FAIL\s", table), name
    message = re.search(r"preflight: (\d+) of \d+ checks failed", out)
    assert message and int(message.group(1)) == len(role_failures), table
    assert "disk %s" % root in table and "cpu_count" in table
