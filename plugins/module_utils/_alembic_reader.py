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
`migrate` (upgrade/downgrade online, then the current revision again, also on failure).
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


def run(req, result):
    cfg, url = make_config(req)
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
