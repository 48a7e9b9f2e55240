"""alembic_migrate: docs agree with the code; run() on a tiny Alembic project with SQLite.

The tiny project is like many real ones: relative `script_location`, empty
`sqlalchemy.url`, an env.py that reads the URL from the config or an env variable.
PostgreSQL behaviour (lock, sample app) is covered in tests/integration.
"""

import os
import sqlite3
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _db_modules_helpers import FakeModule, assert_documented, assert_spec_matches_docs  # noqa: E402
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError  # noqa: E402
from ansible_collections.prodready.deploy.plugins.modules import alembic_migrate  # noqa: E402

VENV_PYTHON = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".venv", "bin", "python")

ENV_PY = '''
import os
from alembic import context
from sqlalchemy import engine_from_config, pool
config = context.config
url = config.get_main_option("sqlalchemy.url") or os.environ["APP_DB_URL"]
def offline():
    context.configure(url=url, literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
def online():
    eng = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                             poolclass=pool.NullPool)
    with eng.connect() as conn:
        context.configure(connection=conn, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
offline() if context.is_offline_mode() else online()
'''

REVISION = '''"""{msg}"""
from alembic import op
revision = "{rev}"
down_revision = {down!r}
branch_labels = None
depends_on = None
def upgrade():
    op.execute("{up}")
def downgrade():
    op.execute("{downsql}")
'''


def make_project(root, revisions):
    root.mkdir(parents=True, exist_ok=True)
    (root / "alembic.ini").write_text("[alembic]\nscript_location = migrations\nsqlalchemy.url =\n")
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "migrations" / "env.py").write_text(ENV_PY)
    for rev, down, msg, up, downsql in revisions:
        (versions / ("%s.py" % rev)).write_text(REVISION.format(rev=rev, down=down, msg=msg, up=up,
                                                                downsql=downsql))


TWO = [("r1", None, "create t", "CREATE TABLE t (id INTEGER)", "DROP TABLE t"),
       ("r2", "r1", "create u", "CREATE TABLE u (id INTEGER)", "DROP TABLE u")]


@pytest.fixture
def project(tmp_path):
    make_project(tmp_path / "app", TWO)
    return tmp_path


def module_for(project, check_mode=False, **params):
    base = dict(project_path=str(project / "app"), python=os.path.abspath(VENV_PYTHON),
                database_url="sqlite:///%s" % (project / "db.sqlite"), url_env_var="APP_DB_URL",
                lock=False)
    base.update(params)
    return FakeModule(base, alembic_migrate.argument_spec(), check_mode=check_mode)


def tables(project):
    con = sqlite3.connect(str(project / "db.sqlite"))
    try:
        return sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    finally:
        con.close()


def test_argument_spec_matches_documentation():
    assert_spec_matches_docs(alembic_migrate, alembic_migrate.argument_spec())


def test_database_url_is_no_log():
    assert alembic_migrate.argument_spec()["database_url"]["no_log"] is True


def test_upgrade_then_idempotent_then_downgrade(project):
    preview = alembic_migrate.run(module_for(project, check_mode=True))
    assert preview["changed"] is True
    assert [p["revision"] for p in preview["pending"]] == ["r1", "r2"]
    assert "CREATE TABLE t" in preview["sql"] and "CREATE TABLE u" in preview["sql"]
    assert_documented(alembic_migrate, preview)
    assert not os.path.exists(project / "db.sqlite") or tables(project) == []

    first = alembic_migrate.run(module_for(project))
    assert (first["changed"], first["current_before"], first["current_after"]) == (True, None, "r2")
    assert first["direction"] == "upgrade"
    assert tables(project) == ["alembic_version", "t", "u"]
    assert_documented(alembic_migrate, first)

    again = alembic_migrate.run(module_for(project))
    assert (again["changed"], again["direction"], again["pending"]) == (False, "none", [])

    with pytest.raises(ProdreadyError, match="moving from r2 down to r1 is a downgrade"):
        alembic_migrate.run(module_for(project, revision="r1"))
    assert tables(project) == ["alembic_version", "t", "u"]

    down = alembic_migrate.run(module_for(project, revision="-1", allow_downgrade=True))
    assert (down["current_after"], down["direction"]) == ("r1", "downgrade")
    assert tables(project) == ["alembic_version", "t"]


def test_failing_revision_names_revision_and_error(tmp_path):
    make_project(tmp_path / "app", TWO + [("r3", "r2", "broken", "INSERT INTO nowhere VALUES (1)", "")])
    with pytest.raises(ProdreadyError) as info:
        alembic_migrate.run(module_for(tmp_path))
    msg = str(info.value)
    assert msg.startswith("migration r3 (broken) failed during upgrade to r3")
    assert "no such table: nowhere" in msg
    assert msg.endswith("the database is at r2")
    assert info.value.details["current_after"] == "r2"
    assert info.value.details["failed_revision"] == "r3"


@pytest.mark.parametrize("params,message", [
    (dict(project_path="/nonexistent/app"), "project_path: /nonexistent/app is not a directory"),
    (dict(project_path=None, config="/nonexistent/alembic.ini"),
     "config: /nonexistent/alembic.ini does not exist"),
    (dict(python="/nonexistent/python"), "python: /nonexistent/python is not an executable"),
    (dict(revision="zzz"), "revision: unknown revision 'zzz' (this project has: r1, r2)"),
    (dict(python="/bin/true"), "alembic state under /bin/true exited with rc=0"),
    (dict(project_path=None), "config: set config (path of alembic.ini) or project_path"),
    (dict(database_url=None), "database_url: set database_url or the connection options (db, ...)"),
    (dict(revision=" "), "revision: must not be empty"),
    (dict(url_env_var="APP-DB"), "url_env_var: 'APP-DB' is not an environment variable name"),
    (dict(version_table=""), "version_table: must not be empty"),
    (dict(lock_timeout=-1), "lock_timeout: must be 0 or more, got -1"),
])
def test_bad_input(project, params, message):
    with pytest.raises(ProdreadyError) as info:
        alembic_migrate.run(module_for(project, **params))
    assert message in str(info.value)


def test_missing_alembic_ini(project):
    os.unlink(project / "app" / "alembic.ini")
    with pytest.raises(ProdreadyError, match="config: .*/app/alembic.ini does not exist"):
        alembic_migrate.run(module_for(project))


def test_script_location_override(project):
    os.rename(project / "app" / "migrations", project / "app" / "db_migrations")
    result = alembic_migrate.run(module_for(project, script_location="db_migrations"))
    assert result["current_after"] == "r2"


def test_analyze_off_by_default_and_on_sqlite_a_warning_not_a_failure(project):
    plain = alembic_migrate.run(module_for(project, revision="r1"))
    assert (plain["analyzed"], plain["analyze_s"], plain["analyze_error"]) == ([], 0.0, None)

    module = module_for(project, analyze=True)
    result = alembic_migrate.run(module)
    assert (result["changed"], result["current_after"]) == (True, "r2")
    assert result["analyzed"] == []
    assert "ANALYZE of the migrated tables is done on PostgreSQL only, this database is sqlite" \
        in result["analyze_error"]
    assert module.warnings == ["analyze: statistics not refreshed: %s. The migration itself succeeded; "
                               "autovacuum will analyze later" % result["analyze_error"]]
    assert_documented(alembic_migrate, result)

    again = module_for(project, analyze=True)
    unchanged = alembic_migrate.run(again)
    assert (unchanged["changed"], unchanged["analyzed"], again.warnings) == (False, [], [])


class FakeReader(object):
    """Answers the `analyze` action as the reader script would; records the requests."""

    def __init__(self, answer=None, error=None):
        self.answer = answer or {}
        self.error = error
        self.requests = []

    def call(self, action, **extra):
        self.requests.append(dict(extra, action=action))
        if self.error:
            raise ProdreadyError(self.error)
        return dict(self.answer, ok=True)


# The offline SQL of r1 -> r3 where r3 is already applied on another branch: only r2 counts.
MOVE_SQL = """BEGIN;
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);
-- Running upgrade r1 -> r2
CREATE TABLE "Orders" (id int);
CREATE INDEX ix ON sales.items (id);
INSERT INTO alembic_version (version_num) VALUES ('r2');
COMMIT;
-- Running upgrade r1 -> r3
ALTER TABLE elsewhere ADD c int;
"""


@pytest.mark.parametrize("check_mode", [False, True])
def test_analyze_asks_for_the_tables_of_the_applied_revisions(project, check_mode):
    module = module_for(project, check_mode=check_mode, analyze=True)
    reader = FakeReader({"analyzed": ['public."Orders"', "sales.items"], "errors": []})
    out = alembic_migrate.analyze_tables(module, reader, MOVE_SQL, ["r2"], None)
    assert reader.requests == [{"action": "analyze", "tables": [[None, "Orders"], ["sales", "items"]],
                                "execute": not check_mode}]
    assert (out["analyzed"], out["analyze_error"], module.warnings) == (['public."Orders"', "sales.items"], None, [])
    assert out["analyze_s"] >= 0


@pytest.mark.parametrize("sql,sql_error,reader,analyzed,error", [
    # nothing touched: the database is not asked
    ("UPDATE alembic_version SET version_num = 'r2';", None, FakeReader(), [], None),
    # no offline SQL from env.py: the tables are unknown
    (None, "NotImplementedError: offline", FakeReader(), [],
     "the offline SQL of the migration could not be rendered, so the tables it touched are unknown "
     "(NotImplementedError: offline)"),
    # the reader could not run at all
    ("UPDATE t SET a = 1;", None, FakeReader(error="alembic analyze ... exited with rc=1: boom"), [],
     "alembic analyze ... exited with rc=1: boom"),
    # no connection: the whole step failed
    ("UPDATE t SET a = 1;", None, FakeReader({"analyze_error": "OperationalError: no route"}), [],
     "OperationalError: no route"),
    # one table refused, the others analyzed
    ("UPDATE t SET a = 1; UPDATE u SET a = 1;", None,
     FakeReader({"analyzed": ["public.u"], "errors": [
         {"table": "public.t", "error": 'WARNING: permission denied to analyze "t", skipping it'}]}),
     ["public.u"], 'public.t: WARNING: permission denied to analyze "t", skipping it'),
])
def test_analyze_failures_are_warnings(project, sql, sql_error, reader, analyzed, error):
    module = module_for(project, analyze=True)
    out = alembic_migrate.analyze_tables(module, reader, sql, ["r2"], sql_error)
    assert (out["analyzed"], out["analyze_error"]) == (analyzed, error)
    assert module.warnings == ([] if error is None else [
        "analyze: statistics not refreshed: %s. The migration itself succeeded; autovacuum will "
        "analyze later" % error])
