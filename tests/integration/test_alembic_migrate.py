"""alembic_migrate with the sample app's real migrations on the sandbox's PostgreSQL.

Releases are built by examples/app/build.py (variants base, good, bad-migration) and
unpacked into tmp dirs; the app's interpreter is the project venv's python.
"""

import json
import os
import subprocess
import sys
import tarfile
import threading

import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))

from _pg_testdb import TestDb  # noqa: E402
from helpers import ROOT, run_module  # noqa: E402

from ansible_collections.prodready.deploy.plugins.modules import alembic_migrate as module_src  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
DOCUMENTED = set(yaml.safe_load(module_src.RETURN)) | {
    "changed", "failed", "msg", "invocation", "warnings", "_stdout", "exception"}


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """{variant: unpacked release dir} of the sample app."""
    out = {}
    base = tmp_path_factory.mktemp("releases")
    for version, variant in (("1.0.0", "base"), ("1.1.0", "good"), ("1.9.0", "bad-migration")):
        dist = base / ("dist-" + variant)
        proc = subprocess.run([PYTHON, str(ROOT / "examples" / "app" / "build.py"), "--version",
                               version, "--variant", variant, "--out", str(dist)],
                              capture_output=True, text=True, check=True)
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        target = base / variant
        with tarfile.open(info["path"]) as tar:
            tar.extractall(str(target), filter="data")
        out[variant] = str(target)
    return out


@pytest.fixture
def db(sandbox):
    testdb = TestDb(sandbox, "alm")
    try:
        yield testdb
    finally:
        testdb.close()


def run(args, **kw):
    result = run_module("alembic_migrate", args, **kw)
    undocumented = set(result) - DOCUMENTED
    assert not undocumented, "returned but not documented in RETURN: %s" % undocumented
    assert "Traceback" not in result["_stdout"]
    return result


def ok(result):
    assert not result.get("failed"), result.get("msg")
    return result


def version(db):
    if db.query("SELECT to_regclass('alembic_version')")[0][0] is None:
        return None
    rows = db.query("SELECT version_num FROM alembic_version")
    return rows[0][0] if rows else None


def tables(db):
    return sorted(r[0] for r in db.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))


def test_fresh_database_to_head_then_unchanged(db, releases):
    args = db.params(project_path=releases["good"], python=PYTHON)
    first = ok(run(args))
    assert first["changed"] is True
    assert (first["current_before"], first["current_after"], first["direction"]) == (None, "0003", "upgrade")
    assert [p["revision"] for p in first["pending"]] == ["0001", "0002", "0003"]
    assert all(p["message"] for p in first["pending"])
    assert first["heads"] == ["0003"] and "CREATE TABLE" in first["sql"]
    assert version(db) == "0003"
    again = ok(run(args))
    assert (again["changed"], again["direction"], again["pending"]) == (False, "none", [])
    assert again["current_before"] == again["current_after"] == "0003"


def test_check_mode_lists_pending_and_sql_and_changes_nothing(db, releases):
    ok(run(db.params(project_path=releases["base"], python=PYTHON)))
    before_tables, before_schema = tables(db), db.schema()
    preview = ok(run(dict(config=os.path.join(releases["good"], "alembic.ini"), python=PYTHON,
                          database_url=db.url()), check=True))
    assert preview["changed"] is True
    assert preview["pending"] == [{"revision": "0003", "message": preview["pending"][0]["message"]}]
    assert "ALTER TABLE" in preview["sql"] and "0002 -> 0003" in preview["sql"]
    assert preview["current_after"] == "0002"
    assert version(db) == "0002" and tables(db) == before_tables and db.schema() == before_schema
    assert db.password not in preview["_stdout"]


def test_downgrade_refused_then_allowed(db, releases):
    args = db.params(project_path=releases["good"], python=PYTHON)
    ok(run(args))
    refused = run(dict(args, revision="0002"))
    assert refused["failed"]
    assert refused["msg"].startswith("revision: moving from 0003 down to 0002 is a downgrade")
    assert "allow_downgrade" in refused["msg"]
    assert version(db) == "0003"
    allowed = ok(run(dict(args, revision="-1", allow_downgrade=True)))
    assert (allowed["direction"], allowed["current_after"]) == ("downgrade", "0002")
    assert [p["revision"] for p in allowed["pending"]] == ["0003"]
    assert version(db) == "0002"


def test_bad_migration_leaves_previous_revision(db, releases):
    ok(run(db.params(project_path=releases["good"], python=PYTHON)))
    bad = run(db.params(project_path=releases["bad-migration"], python=PYTHON))
    assert bad["failed"] and bad["failed_revision"] == "0004_bad"
    assert bad["msg"].startswith("migration 0004_bad (")
    assert 'column "shipped_at" of relation "purchase_orders" does not exist' in bad["msg"]
    assert bad["msg"].endswith("the database is at 0003")
    assert (bad["current_before"], bad["current_after"]) == ("0003", "0003")
    assert version(db) == "0003"
    assert "shipments" not in tables(db)


def test_concurrent_runs_migrate_once(db, releases):
    args = db.params(project_path=releases["good"], python=PYTHON, lock_timeout=120)
    results = [None] * 4

    def worker(i):
        results[i] = run_module("alembic_migrate", args)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for r in results:
        ok(r)
    assert sorted(r["changed"] for r in results) == [False, False, False, True]
    assert all(r["current_after"] == "0003" for r in results)
    assert version(db) == "0003"


def test_database_url_with_special_password_never_shown(db, releases):
    r = ok(run(dict(project_path=releases["base"], python=PYTHON, database_url=db.url(),
                    url_env_var="DATABASE_URL"), verbosity=3))
    assert r["current_after"] == "0002"
    assert db.password not in r["_stdout"] and db.url() not in r["_stdout"]


@pytest.mark.parametrize("change,message", [
    (dict(db="t_db_does_not_exist"), 'database "t_db_does_not_exist" does not exist'),
    (dict(login_password="wrong-password"), "password authentication failed"),
    (dict(login_host="127.0.0.1", login_port=1), "cannot connect to PostgreSQL"),
    (dict(revision="deadbeef"), "revision: unknown revision 'deadbeef' (this project has: 0001, 0002, 0003)"),
    (dict(project_path="/nonexistent"), "project_path: /nonexistent is not a directory"),
    (dict(project_path=None, config="/tmp/none/alembic.ini"), "config: /tmp/none/alembic.ini does not exist"),
    (dict(lock=False, login_password="wrong-password"), "password authentication failed"),
])
def test_bad_input(db, releases, change, message):
    args = db.params(project_path=releases["good"], python=PYTHON)
    args.update(change)
    args = dict((k, v) for k, v in args.items() if v is not None)
    r = run(args)
    assert r["failed"] and message in r["msg"], r["msg"]
    assert db.password not in r["_stdout"]


def test_missing_alembic_ini(db, releases, tmp_path):
    r = run(db.params(project_path=str(tmp_path), python=PYTHON))
    assert r["failed"] and r["msg"] == "config: %s/alembic.ini does not exist (no alembic.ini)" % tmp_path


def analyzed_tables(db):
    """{schema-qualified table: whether ANALYZE ran on it} (autovacuum's analyses not counted)."""
    return dict(db.query("SELECT quote_ident(schemaname) || '.' || quote_ident(relname), "
                         "last_analyze IS NOT NULL FROM pg_stat_user_tables"))


def test_analyze_refreshes_statistics_of_the_tables_the_upgrade_touched_only(db, releases):
    ok(run(db.params(project_path=releases["base"], python=PYTHON)))
    assert not any(analyzed_tables(db).values())
    args = dict(project_path=releases["good"], python=PYTHON, database_url=db.url(), analyze=True)

    preview = ok(run(args, check=True))
    assert preview["analyzed"] == ["public.purchase_orders"] and preview["analyze_error"] is None
    assert not any(analyzed_tables(db).values())

    done = ok(run(args))
    assert (done["changed"], done["current_after"]) == (True, "0003")
    assert done["analyzed"] == ["public.purchase_orders"]
    assert done["analyze_error"] is None and not done.get("warnings")
    assert 0 < done["analyze_s"] < done["duration_s"]
    stats = analyzed_tables(db)
    assert [t for t, analyzed in stats.items() if analyzed] == ["public.purchase_orders"]
    assert stats["public.companies"] is False and stats["public.alembic_version"] is False
    assert db.password not in done["_stdout"]

    again = ok(run(args))
    assert (again["changed"], again["analyzed"], again["analyze_s"]) == (False, [], 0.0)


def test_analyze_after_a_fresh_install_covers_every_created_table(db, releases):
    args = db.params(project_path=releases["good"], python=PYTHON, analyze=True)
    preview = ok(run(args, check=True))
    created = ["public." + t for t in ("users", "signals", "approvals", "positions", "audit_logs",
                                       "reconciliation_logs", "portfolio_state", "portfolio_positions",
                                       "instance_heartbeat", "leadership_history", "companies",
                                       "products", "purchase_orders")]
    assert preview["analyzed"] == created  # predicted: the tables do not exist yet
    assert tables(db) == []

    done = ok(run(args))
    assert done["analyzed"] == created
    stats = analyzed_tables(db)
    assert sorted(t for t, analyzed in stats.items() if analyzed) == sorted(created)
    assert stats["public.alembic_version"] is False
    assert db.query("SELECT reltuples FROM pg_class WHERE relname = 'companies'")[0][0] == 2


# A project whose migration writes to a table the migrating role may not analyze, and
# creates a mixed-case table in its own schema.
FOREIGN_ENV_PY = '''
import os
from alembic import context
from sqlalchemy import create_engine, pool
url = os.environ["DATABASE_URL"]
if context.is_offline_mode():
    context.configure(url=url, literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with create_engine(url, poolclass=pool.NullPool).connect() as conn:
        context.configure(connection=conn, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
'''
FOREIGN_REVISION = '''"""write to the ledger"""
from alembic import op
revision = "w1"
down_revision = None
def upgrade():
    op.execute('CREATE SCHEMA sales')
    op.execute('CREATE TABLE sales."Orders" (id int)')
    op.execute('INSERT INTO sales."Orders" VALUES (1), (2)')
    op.execute("INSERT INTO ledger VALUES (1)")
def downgrade():
    pass
'''


@pytest.fixture
def writer(db):
    """A second login role that may write to `ledger` (owned by the database owner) but
    not ANALYZE it. Yields its database URL."""
    from urllib.parse import quote
    from _pg_testdb import superuser_conn
    role = db.role + "_w"
    password = "Wr:%s" % db.password
    conn = superuser_conn(db.sandbox)
    conn.cursor().execute('CREATE ROLE "%s" LOGIN PASSWORD %%s' % role, (password,))
    conn.close()
    db.execute("CREATE TABLE ledger (id int)")
    db.execute('GRANT INSERT ON ledger TO "%s"' % role)
    db.execute('GRANT CREATE ON SCHEMA public TO "%s"' % role)
    db.execute('GRANT CREATE ON DATABASE "%s" TO "%s"' % (db.name, role))
    pg = db.sandbox["services"]["postgres"]
    try:
        yield "postgresql+psycopg2://%s:%s@%s:%s/%s" % (role, quote(password, safe=""), pg["host"],
                                                        pg["port"], db.name)
    finally:
        conn = superuser_conn(db.sandbox, db.name)
        conn.cursor().execute('DROP OWNED BY "%s"' % role)
        conn.close()
        conn = superuser_conn(db.sandbox)
        conn.cursor().execute('DROP ROLE "%s"' % role)
        conn.close()


def test_analyze_refused_on_one_table_is_a_warning_and_the_migration_stands(db, writer, tmp_path):
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    (tmp_path / "migrations" / "env.py").write_text(FOREIGN_ENV_PY)
    (tmp_path / "migrations" / "versions" / "w1.py").write_text(FOREIGN_REVISION)
    result = ok(run(dict(project_path=str(tmp_path), python=PYTHON, database_url=writer, analyze=True)))
    assert (result["changed"], result["current_after"]) == (True, "w1")
    assert result["analyzed"] == ['sales."Orders"']
    assert result["analyze_error"].startswith("public.ledger: WARNING:")
    assert "ledger" in result["analyze_error"][len("public.ledger"):]
    assert any(w.startswith("analyze: statistics not refreshed: public.ledger: WARNING:")
               and "The migration itself succeeded" in w for w in result["warnings"])
    stats = analyzed_tables(db)
    assert stats == {'sales."Orders"': True, "public.ledger": False, "public.alembic_version": False}
    assert db.query("SELECT count(*) FROM ledger")[0][0] == 1
