# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The script alembic_migrate runs under the application's own interpreter.

READER_SOURCE is written to a 0600 temp file and run as ``<python> reader.py`` with the
request as JSON on stdin; it writes its answer as JSON to the request's `result_path`
(not stdout, which env.py and logging may write to). It needs only alembic and
sqlalchemy in that interpreter. The database URL comes from the environment variable
named by `url_env_var`, never from argv; it is set on the Config as `sqlalchemy.url`.

Actions: `state` (revisions graph, heads, current), `sql` (offline SQL of a move),
`migrate` (upgrade/downgrade online, then the current revision again, also on failure),
`analyze` (resolve table names in the database and, with `execute`, ANALYZE them: on the
same URL and driver as the migration, in autocommit, one table at a time).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

READER_SOURCE = r'''
import contextlib
import io
import json
import os
import sys


def describe(exc):
    """One line naming the error: the DBAPI error for database failures."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return "%s: %s" % (type(orig if orig is not None else exc).__name__, text)


def make_config(req):
    from alembic.config import Config
    cfg = Config(req["config"], output_buffer=io.StringIO())
    if req.get("script_location"):
        cfg.set_main_option("script_location", req["script_location"])
    url = os.environ.get(req["url_env_var"]) or cfg.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: %s is not set and %s has no sqlalchemy.url"
                           % (req["url_env_var"], req["config"]))
    # Config values go through configparser interpolation: a literal % must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg, url


def read_graph(cfg):
    from alembic.script import ScriptDirectory
    script = ScriptDirectory.from_config(cfg)
    revisions = []
    for rev in script.walk_revisions():
        down = rev.down_revision
        if down is None:
            down = []
        elif isinstance(down, str):
            down = [down]
        revisions.append({"revision": rev.revision, "down_revisions": list(down),
                          "message": (rev.doc or "").strip()})
    return script, revisions, sorted(script.get_heads())


def read_current(url, version_table):
    import sqlalchemy
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.pool import NullPool
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": version_table})
            return sorted(ctx.get_current_heads())
    finally:
        engine.dispose()


def offline_sql(cfg, req):
    from alembic import command
    buf = cfg.output_buffer
    buf.seek(0)
    buf.truncate()
    current = req.get("current") or []
    target = req.get("target") or "base"
    with contextlib.redirect_stdout(sys.stderr):
        if req["direction"] == "upgrade":
            start = current[0] if len(current) == 1 else None
            command.upgrade(cfg, "%s:%s" % (start, target) if start else target, sql=True)
        else:
            command.downgrade(cfg, "%s:%s" % (",".join(current), target), sql=True)
    return buf.getvalue()


# The table a name resolves to (quote_ident: the name is valid SQL as returned) and whether
# ANALYZE applies to it (tables, partitioned tables, materialized views, foreign tables).
RESOLVE_SQL = (
    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind IN ('r', 'p', 'm', 'f') "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass("
    "CASE WHEN CAST(:schema AS text) IS NULL THEN '' ELSE quote_ident(CAST(:schema AS text)) || '.' END "
    "|| quote_ident(CAST(:name AS text)))")
# Where CREATE TABLE of an unqualified name puts the table (check mode: not created yet).
PREDICT_SQL = "SELECT quote_ident(coalesce(CAST(:schema AS text), current_schema())) || '.' || quote_ident(CAST(:name AS text))"


class Notices(object):
    """WARNINGs the server sends while ANALYZE runs (it skips a table the user may not
    analyze with a WARNING, not an error). SQLAlchemy's psycopg2 and psycopg dialects take
    the server's notices off the connection and log them at INFO; a handler on that logger
    collects them, and whatever a driver leaves in `connection.notices` is read too."""

    LOGGER = "sqlalchemy.dialects.postgresql"

    def __init__(self, conn):
        import logging
        self.dbapi = getattr(conn.connection, "dbapi_connection", None) or getattr(conn.connection, "connection", None)
        self.received = []
        self.logger = logging.getLogger(self.LOGGER)
        self.level = self.logger.level
        self.handler = logging.Handler(logging.INFO)
        self.handler.emit = lambda record: self.received.append(record.getMessage())
        self.logger.addHandler(self.handler)
        if not self.logger.isEnabledFor(logging.INFO):
            self.logger.setLevel(logging.INFO)

    def take(self):
        """The WARNING lines received since the last call, one line each."""
        left = getattr(self.dbapi, "notices", None)
        found = self.received + (list(left) if isinstance(left, list) else [])
        if isinstance(left, list):
            del left[:]
        self.received = []
        return [" ".join(n.split()) for n in found if n.lstrip().startswith("WARNING")]

    def close(self):
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)


def analyze(url, req):
    """Resolve req["tables"] ([schema or None, name] pairs) and ANALYZE them with `execute`.

    Never raises: a failure of the whole step is `analyze_error`, of one table an `errors` item.
    """
    import time
    import sqlalchemy
    from sqlalchemy.pool import NullPool
    out = {"analyzed": [], "skipped": [], "errors": []}
    started = time.time()
    try:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        if engine.dialect.name != "postgresql":
            raise RuntimeError("ANALYZE of the migrated tables is done on PostgreSQL only, this "
                               "database is %s" % engine.dialect.name)
        try:
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                notices = Notices(conn)
                try:
                    analyze_each(conn, notices, req, out)
                finally:
                    notices.close()
        finally:
            engine.dispose()
    except Exception as exc:
        out["analyze_error"] = describe(exc)
    out["seconds"] = round(time.time() - started, 3)
    return out


def analyze_each(conn, notices, req, out):
    """Resolve each table and (with `execute`) ANALYZE it, recording errors per table."""
    import sqlalchemy
    for schema, name in req["tables"]:
        params = {"schema": schema, "name": name}
        row = conn.execute(sqlalchemy.text(RESOLVE_SQL), params).first()
        if row is None and not req.get("execute"):
            row = (conn.execute(sqlalchemy.text(PREDICT_SQL), params).scalar(), True)
        if row is None or not row[1]:
            out["skipped"].append(row[0] if row else ".".join(p for p in (schema, name) if p))
            continue
        table = row[0]
        if table in out["analyzed"] or any(e["table"] == table for e in out["errors"]):
            continue
        if not req.get("execute"):
            out["analyzed"].append(table)
            continue
        try:
            notices.take()
            conn.execute(sqlalchemy.text("ANALYZE " + table))
            warned = notices.take()
        except Exception as exc:
            out["errors"].append({"table": table, "error": describe(exc)})
            if hasattr(conn, "rollback"):  # SQLAlchemy 2 keeps a transaction state even in autocommit
                conn.rollback()
            continue
        if warned:
            out["errors"].append({"table": table, "error": "; ".join(warned)})
        else:
            out["analyzed"].append(table)


def run(req, result):
    cfg, url = make_config(req)
    if req["action"] == "analyze":
        result["stage"] = "analyze"
        result.update(analyze(url, req))
        result.pop("stage")
        return
    result["stage"] = "scripts"
    script, revisions, heads = read_graph(cfg)
    result.update(revisions=revisions, heads=heads)
    action = req["action"]
    if action in ("sql", "migrate") and req.get("with_sql", action == "sql"):
        result["stage"] = "offline sql"
        try:
            result["sql"] = offline_sql(cfg, req)
        except Exception as exc:
            if action == "sql":
                raise
            result["sql_error"] = describe(exc)
    if action == "migrate":
        from alembic import command
        result["stage"] = "migrate"
        try:
            with contextlib.redirect_stdout(sys.stderr):
                if req["direction"] == "upgrade":
                    command.upgrade(cfg, req["target"] or "base")
                else:
                    command.downgrade(cfg, req["target"] or "base")
        except Exception as exc:
            result["migrate_error"] = describe(exc)
    result["stage"] = "current"
    result["current"] = read_current(url, req.get("version_table") or "alembic_version")
    result.pop("stage")


def main():
    req = json.load(sys.stdin)
    project = req.get("project_dir")
    if project:
        os.chdir(project)
        sys.path.insert(0, project)
    result = {"ok": False}
    try:
        run(req, result)
        result["ok"] = True
    except BaseException as exc:
        result["error"] = describe(exc)
    with open(req["result_path"], "w") as fh:
        json.dump(result, fh)


main()
'''
