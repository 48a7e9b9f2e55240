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
