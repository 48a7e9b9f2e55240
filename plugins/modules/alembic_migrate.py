# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: alembic_migrate
short_description: Bring a database to an Alembic revision, declaratively and once per fleet
version_added: 0.1.0
description:
  - Runs the target application's own Alembic migrations with the application's own
    interpreter (O(python)), so the imports of its C(env.py) and migrations resolve.
  - Reads the state (current revision, heads, revisions) through Alembic's Python API in
    that interpreter, as JSON, never by scraping CLI output.
  - Declarative - at the target revision it reports C(changed=false); it upgrades or
    downgrades as needed, and refuses a downgrade unless O(allow_downgrade=true).
  - Holds a PostgreSQL advisory lock for the whole migration, so hosts of a fleet that
    all run it migrate exactly once; the others wait, then find nothing pending.
  - A failing migration fails the task with the revision id and the database error; with
    C(transaction_per_migration) in C(env.py) the database stays at the last revision that committed.
  - With O(analyze=true), refreshes the planner statistics of the tables the applied revisions
    touched (C(ANALYZE)), found in the offline SQL of those revisions.
author:
  - prodready.deploy maintainers (@prodready)
extends_documentation_fragment:
  - prodready.deploy.postgres
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Returns the pending revisions, the offline SQL preview and, with O(analyze=true), the
      tables that would be analyzed; the database is not changed.
  diff_mode:
    support: none
    description: Nothing is edited.
  action_group:
    support: full
    membership: [prodready.deploy.deploy, prodready.deploy.postgres]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) and C(group/prodready.deploy.postgres) set this module's options.
options:
  project_path:
    description:
      - Directory of the application's Alembic project (holding C(alembic.ini)). Migrations
        run with this as the working directory and on C(sys.path).
      - One of O(project_path) and O(config) is required.
    type: path
  config:
    description:
      - Path of the C(alembic.ini). Default - C(<project_path>/alembic.ini). A relative
        C(script_location) in it is resolved from the directory of this file (or O(project_path)).
    type: path
  script_location:
    description:
      - Override the C(script_location) of the config (set through the Config API).
    type: str
  python:
    description:
      - The application's interpreter (for example C(/srv/app/releases/1.4.0/venv/bin/python)),
        which must have alembic and sqlalchemy. Default - the interpreter running this module.
    type: path
  database_url:
    description:
      - SQLAlchemy URL of the database. Passed to the migrations by environment (as
        O(url_env_var)) and set as C(sqlalchemy.url) on the Config; never on a command line.
      - Default - built from the connection options (O(db), O(login_host)...) as a
        C(postgresql+psycopg2) URL. One of O(database_url) and O(db) is required.
      - Read from the E(PRODREADY_DATABASE_URL) environment variable when not set (and that
        variable is not empty). Not E(DATABASE_URL), which applications read for themselves
        and which would otherwise win over an explicit O(db).
    type: str
  url_env_var:
    description:
      - Name of the environment variable the application's C(env.py) reads the URL from.
    type: str
    default: DATABASE_URL
  revision:
    description:
      - Target - C(head), C(heads), C(base), a revision id (or unique prefix), or C(-N) /
        C(+N) relative to the current revision.
    type: str
    default: head
  allow_downgrade:
    description:
      - Allow moving to an older revision. Without it, a downgrade is refused with a message
        naming the current and the target revisions.
    type: bool
    default: false
  lock:
    description:
      - Hold a PostgreSQL advisory lock (on a dedicated connection) from reading the state
        until the migration ends, so concurrent runs migrate once. Not taken in check mode.
    type: bool
    default: true
  lock_timeout:
    description:
      - Seconds to wait for the lock before failing.
    type: float
    default: 300
  version_table:
    description:
      - Alembic version table name, if C(env.py) sets a non-default one.
    type: str
    default: alembic_version
  analyze:
    description:
      - After a migration that changed the database (upgrade or downgrade), run C(ANALYZE) on
        every table the applied revisions created, altered, indexed or wrote rows to, so the
        planner has statistics of the new schema at once rather than when autovacuum gets to
        it (runbook 000 step 13, runbook 001 step 16).
      - The tables are read from the offline SQL (C(alembic upgrade --sql), returned as RV(sql))
        of exactly the revisions applied - C(CREATE TABLE), C(ALTER TABLE),
        C(CREATE [UNIQUE] INDEX ... ON), C(INSERT INTO), C(UPDATE), C(DELETE FROM),
        C(MERGE INTO), C(COPY ... FROM), also inside C(WITH) and PL/pgSQL C(DO) blocks. Tables
        dropped again, temporary tables, views, the version table and tables named only in
        dynamic SQL (C(EXECUTE)) are left out.
      - C(ANALYZE) runs after the lock is released, in O(python) on the same URL and driver as the
        migration (passed by environment, never argv), one table at a time in autocommit.
      - A failure (offline SQL that C(env.py) cannot render, no connection, a table the user may
        not analyze) is a warning and RV(analyze_error); it never fails the task. A migration that
        fails is not followed by C(ANALYZE).
      - PostgreSQL only.
    type: bool
    default: false
notes:
  - To bound the run time of long migrations, use the task keyword C(timeout).
  - The lock and the URL default use the connection options; when only O(database_url) is
    given, the lock connection is derived from it.
seealso:
  - module: prodready.deploy.pg_backup
"""

EXAMPLES = r"""
- name: Migrate to head with the release's own interpreter (runbook 001/002 alembic upgrade head)
  prodready.deploy.alembic_migrate:
    project_path: /srv/app/releases/1.4.0
    python: /srv/app/releases/1.4.0/venv/bin/python
    database_url: "{{ vault_database_url }}"
  register: migration

- name: Preview what would run (pending revisions and SQL)
  prodready.deploy.alembic_migrate:
    project_path: /srv/app/releases/1.4.0
    python: /srv/app/releases/1.4.0/venv/bin/python
    db: app
    login_host: db.internal
    login_user: app
    login_password: "{{ vault_app_db_password }}"
  check_mode: true

- name: Roll the schema back to the revision recorded before the deploy (runbook 002 downgrade)
  prodready.deploy.alembic_migrate:
    config: /srv/app/releases/1.3.0/alembic.ini
    python: /srv/app/releases/1.3.0/venv/bin/python
    database_url: "{{ vault_database_url }}"
    revision: "{{ migration.current_before }}"
    allow_downgrade: true

- name: Migrate, then refresh the statistics of the tables it touched (runbook 000 step 13)
  prodready.deploy.alembic_migrate:
    project_path: /srv/app/releases/1.4.0
    python: /srv/app/releases/1.4.0/venv/bin/python
    database_url: "{{ vault_database_url }}"
    analyze: true
  register: migration
"""

RETURN = r"""
current_before:
  description: Revision the database was at before (C(null) for base; several heads joined by C(,)).
  returned: always
  type: str
  sample: a1b2c3d4e5f6
current_after:
  description: Revision the database is at after the run (unchanged in check mode).
  returned: always
  type: str
  sample: f6e5d4c3b2a1
heads:
  description: Head revisions of the project's migrations.
  returned: always
  type: list
  elements: str
  sample: [f6e5d4c3b2a1]
target:
  description: The target revision(s) O(revision) resolved to (empty for base).
  returned: always
  type: list
  elements: str
  sample: [f6e5d4c3b2a1]
pending:
  description: Revisions applied (or undone for a downgrade), in the order they run; in check mode, those that would run.
  returned: always
  type: list
  elements: dict
  sample: [{"revision": "f6e5d4c3b2a1", "message": "add orders.status"}]
direction:
  description: C(none), C(upgrade) or C(downgrade).
  returned: always
  type: str
  sample: upgrade
sql:
  description: Offline SQL (C(alembic upgrade --sql)) of the move; empty when nothing is pending, null if the project's env.py cannot render offline SQL.
  returned: always
  type: str
  sample: "ALTER TABLE orders ADD COLUMN status VARCHAR(20);"
failed_revision:
  description: The revision whose migration failed.
  returned: failure of a migration
  type: str
  sample: 0badc0ffee00
analyzed:
  description:
    - Tables analyzed after the migration (O(analyze=true)), schema-qualified and quoted where SQL
      needs it, in the order the migration first touched them; in check mode, those that would be.
    - Empty when O(analyze=false), when nothing changed, and for the tables in RV(analyze_error).
  returned: always
  type: list
  elements: str
  sample: [public.purchase_orders, public.audit_events]
analyze_s:
  description: Seconds the ANALYZE step took (reading the tables from the SQL, resolving them, ANALYZE); 0 when it did not run.
  returned: always
  type: float
  sample: 0.41
analyze_error:
  description:
    - Why tables were not analyzed (also given as a warning); null when nothing failed.
      The migration is done all the same.
  returned: always
  type: str
  sample: 'public.ledger: WARNING: skipping "ledger" --- only table or database owner can analyze it'
lock_wait_s:
  description: Seconds spent waiting for the advisory lock.
  returned: always
  type: float
  sample: 0.0
duration_s:
  description: Seconds the module spent.
  returned: always
  type: float
  sample: 1.9
"""

import hashlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _alembic_plan as ap
from ansible_collections.prodready.deploy.plugins.module_utils import _sql_tables as st
from ansible_collections.prodready.deploy.plugins.module_utils._alembic_reader import READER_SOURCE
from ansible_collections.prodready.deploy.plugins.module_utils._postgres import (
    DB_ERRORS, HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR, connect_kwargs, connect_kwargs_from_url, connect_with,
    describe_kwargs, postgres_connection_argument_spec, sqlalchemy_url)

LOCK_NAMESPACE = "prodready.deploy.alembic_migrate"
LOCK_POLL_S = 0.2
ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def lock_key(version_table):
    """Signed 64-bit advisory lock key, the same on every host for one version table."""
    digest = hashlib.sha256(("%s:%s" % (LOCK_NAMESPACE, version_table)).encode("utf-8")).digest()
    return struct.unpack(">q", digest[:8])[0]


class MigrationLock(object):
    """A session advisory lock on a dedicated connection, taken with a timeout."""

    def __init__(self, kwargs, key, timeout):
        self.kwargs = kwargs
        self.key = key
        self.timeout = timeout
        self.conn = None
        self.waited = 0.0

    def __enter__(self):
        self.conn = connect_with(self.kwargs, autocommit=True)
        start = time.time()
        cur = self.conn.cursor()
        while True:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
            if cur.fetchone()[0]:
                break
            if time.time() - start >= self.timeout:
                holder = self.holder(cur)
                self.conn.close()
                raise ProdreadyError(
                    "lock: another migration holds the advisory lock on %s (%s); gave up after "
                    "lock_timeout=%ss" % (describe_kwargs(self.kwargs), holder, self.timeout))
            time.sleep(LOCK_POLL_S)
        self.waited = round(time.time() - start, 3)
        cur.close()
        return self

    def holder(self, cur):
        cur.execute("SELECT a.pid, a.client_addr, a.application_name FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                    "AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
                    (self.key,))
        row = cur.fetchone()
        if not row:
            return "holder unknown"
        return "held by pid %s from %s (%s)" % (row[0], row[1] or "local socket", row[2] or "?")

    def __exit__(self, *exc_info):
        try:
            cur = self.conn.cursor()
            cur.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except Exception:
            pass  # closing the session releases the lock anyway
        finally:
            self.conn.close()
        return False


class NoLock(object):
    waited = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


class Reader(object):
    """Runs the reader script under the app's interpreter; the URL travels by environment."""

    def __init__(self, module, python, config, project_dir, url):
        self.module = module
        self.python = python
        self.config = config
        self.project_dir = project_dir
        self.url = url
        self.tmpdir = tempfile.mkdtemp(prefix="prodready-alembic-")
        os.chmod(self.tmpdir, 0o700)
        self.script = os.path.join(self.tmpdir, "reader.py")
        fd = os.open(self.script, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(READER_SOURCE)

    def close(self):
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def call(self, action, **extra):
        p = self.module.params
        result_path = os.path.join(self.tmpdir, "result-%s.json" % action)
        request = dict(action=action, config=self.config, project_dir=self.project_dir,
                       script_location=p.get("script_location"), url_env_var=p["url_env_var"],
                       version_table=p["version_table"], result_path=result_path)
        request.update(extra)
        # The URL (with its password) goes to the child by environment only, never argv.
        try:
            rc, out, err = self.module.run_command(
                [self.python, self.script], data=json.dumps(request), binary_data=True,
                cwd=self.project_dir, environ_update={p["url_env_var"]: self.url})
        except OSError as exc:
            raise ProdreadyError("python: cannot run %s: %s" % (self.python, to_native(exc)))
        if not os.path.exists(result_path):
            text = to_native(err or out).strip()
            if "No module named" in text and "alembic" in text:
                raise ProdreadyError("python: %s cannot import alembic (is it the application's "
                                     "interpreter?): %s" % (self.python, text[-500:]))
            raise ProdreadyError("alembic %s under %s exited with rc=%s: %s"
                                 % (action, self.python, rc, self.redact(text[-2000:])))
        with open(result_path) as fh:
            result = json.load(fh)
        os.unlink(result_path)
        for key in ("error", "migrate_error", "sql_error", "analyze_error"):
            if result.get(key):
                result[key] = self.redact(result[key])
        for item in result.get("errors") or []:
            item["error"] = self.redact(item["error"])
        if not result.get("ok"):
            raise ProdreadyError("alembic %s of %s failed while reading %s: %s"
                                 % (action, self.config, result.get("stage", "?"), result.get("error")))
        return result

    def redact(self, text):
        """Remove the URL (and its password) from any error text before it is returned."""
        kwargs = {}
        try:
            kwargs = connect_kwargs_from_url(self.url)
        except ProdreadyError:
            pass
        text = text.replace(self.url, "<database_url>")
        if kwargs.get("password"):
            text = text.replace(kwargs["password"], "********")
        return text


def as_str(revisions):
    return ",".join(revisions) if revisions else None


def argument_spec():
    """The module's options (the shared PostgreSQL connection options included)."""
    spec = postgres_connection_argument_spec()
    spec.update(
        project_path=dict(type="path"),
        config=dict(type="path"),
        script_location=dict(type="str"),
        python=dict(type="path"),
        database_url=dict(type="str", no_log=True, fallback=(_options.env_fallback_set, ["PRODREADY_DATABASE_URL"])),
        url_env_var=dict(type="str", default="DATABASE_URL"),
        revision=dict(type="str", default="head"),
        allow_downgrade=dict(type="bool", default=False),
        lock=dict(type="bool", default=True),
        lock_timeout=dict(type="float", default=300),
        version_table=dict(type="str", default="alembic_version"),
        analyze=dict(type="bool", default=False),
    )
    return spec


def validate(params):
    """Refuse values the spec alone does not catch, naming the option and the value, before
    any file is read or program run (resolve_paths() then checks what exists)."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    if not params.get("config") and not params.get("project_path"):
        raise ProdreadyError("config: set config (path of alembic.ini) or project_path")
    if not params.get("database_url") and not params.get("db"):
        raise ProdreadyError("database_url: set database_url or the connection options (db, ...)")
    if not (params["revision"] or "").strip():
        raise ProdreadyError("revision: must not be empty (head, base, a revision id, or -N / +N)")
    if not ENV_VAR_NAME.match(params["url_env_var"] or ""):
        raise ProdreadyError("url_env_var: %r is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
                             % params["url_env_var"])
    if not (params["version_table"] or "").strip():
        raise ProdreadyError("version_table: must not be empty")
    if params["lock_timeout"] < 0:
        raise ProdreadyError("lock_timeout: must be 0 or more seconds, got %s" % params["lock_timeout"])


def resolve_paths(module):
    """(config path, project dir, python) checked for existence, with messages naming the option."""
    p = module.params
    if p.get("project_path") and not os.path.isdir(p["project_path"]):
        raise ProdreadyError("project_path: %s is not a directory" % p["project_path"])
    config = p.get("config") or os.path.join(p["project_path"], "alembic.ini")
    if not os.path.isfile(config):
        raise ProdreadyError("config: %s does not exist (no alembic.ini)" % config)
    project_dir = p.get("project_path") or os.path.dirname(os.path.abspath(config))
    python = p.get("python") or sys.executable
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise ProdreadyError("python: %s is not an executable interpreter" % python)
    return os.path.abspath(config), os.path.abspath(project_dir), python


def database_target(module):
    """(SQLAlchemy URL, psycopg2 kwargs for the lock) from database_url or the connection options."""
    p = module.params
    if p.get("database_url"):
        url = p["database_url"]
        lock_kwargs = connect_kwargs(p) if p.get("db") else None
        if lock_kwargs is None and p["lock"]:
            lock_kwargs = connect_kwargs_from_url(url)
        return url, lock_kwargs
    return sqlalchemy_url(p), connect_kwargs(p)


def migrate(module, reader, lock_kwargs, started):
    """Plan and run the move under the lock: (result, applied steps, offline SQL error)."""
    p = module.params
    use_lock = p["lock"] and not module.check_mode
    lock = MigrationLock(lock_kwargs, lock_key(p["version_table"]), p["lock_timeout"]) \
        if use_lock else NoLock()
    with lock:
        # Read the state only once the lock is held: a host that waited now sees the
        # migration another host ran, and has nothing left to do.
        state = reader.call("state")
        graph = ap.RevisionGraph(state["revisions"])
        current = tuple(state["current"])
        target = ap.resolve_target(graph, p["revision"], current)
        planned = ap.plan(graph, current, target)
        result = dict(changed=False, current_before=as_str(current),
                      current_after=as_str(current), heads=state["heads"],
                      target=list(target), pending=planned["pending"],
                      direction=planned["direction"], sql="", lock_wait_s=lock.waited,
                      analyzed=[], analyze_s=0.0, analyze_error=None)
        if planned["direction"] == "none":
            return result, [], None
        if planned["direction"] == "downgrade" and not p["allow_downgrade"]:
            raise ProdreadyError(ap.downgrade_refusal(current, target, planned["steps"]),
                                 **dict(result, duration_s=round(time.time() - started, 3)))
        move = dict(direction=planned["direction"], current=list(current),
                    target=",".join(target) if target else None)
        if module.check_mode:
            preview = reader.call("sql", **move)
            result.update(changed=True, sql=preview.get("sql", ""))
            return result, planned["steps"], None
        outcome = reader.call("migrate", with_sql=True, **move)
        after = tuple(outcome["current"])
        result.update(changed=after != current, current_after=as_str(after),
                      sql=outcome.get("sql"), duration_s=round(time.time() - started, 3))
        if outcome.get("migrate_error"):
            failed = ap.failed_step(planned["steps"], planned["direction"], graph, after)
            message = graph.message(failed) if failed in graph.revs else ""
            raise ProdreadyError(
                "migration %s (%s) failed during %s to %s: %s; the database is at %s"
                % (failed, message, planned["direction"], ap.label(target),
                   outcome["migrate_error"], ap.label(after)),
                failed_revision=failed, **result)
        if set(after) != set(target):
            raise ProdreadyError("alembic %s to %s ended at %s without an error; check the "
                                 "project's env.py" % (planned["direction"], ap.label(target),
                                                       ap.label(after)), **result)
        return result, planned["steps"], outcome.get("sql_error")


def analyze_tables(module, reader, sql, steps, sql_error):
    """analyzed, analyze_s and analyze_error of the ANALYZE step after a move that changed
    the database (in check mode: the tables it would analyze). Never raises: statistics are
    an optimisation, their failure is a warning, not a failed migration."""
    started = time.time()
    out = dict(analyzed=[], analyze_s=0.0, analyze_error=None)
    if sql is None:
        problems = ["the offline SQL of the migration could not be rendered, so the tables it "
                    "touched are unknown (%s)" % (sql_error or "no SQL")]
    else:
        tables = st.touched_tables(ap.applied_sql(sql, steps), exclude=(module.params["version_table"],))
        if not tables:
            return out
        try:
            answer = reader.call("analyze", tables=[list(t) for t in tables],
                                 execute=not module.check_mode)
        except ProdreadyError as exc:
            answer = dict(analyze_error=str(exc))
        out["analyzed"] = answer.get("analyzed") or []
        problems = [answer["analyze_error"]] if answer.get("analyze_error") else []
        problems += ["%s: %s" % (e["table"], e["error"]) for e in answer.get("errors") or []]
    out["analyze_s"] = round(time.time() - started, 3)
    if problems:
        out["analyze_error"] = "; ".join(problems)
        module.warn("analyze: statistics not refreshed: %s. The migration itself succeeded; "
                    "autovacuum will analyze later" % out["analyze_error"])
    return out


def run(module):
    """Plan and run the migration, then ANALYZE; returns the result dict (raises ProdreadyError)."""
    started = time.time()
    validate(module.params)
    config, project_dir, python = resolve_paths(module)
    url, lock_kwargs = database_target(module)
    reader = Reader(module, python, config, project_dir, url)
    try:
        result, steps, sql_error = migrate(module, reader, lock_kwargs, started)
        # After the lock is released: hosts waiting on it need not wait for ANALYZE too.
        if module.params["analyze"] and result["changed"]:
            result.update(analyze_tables(module, reader, result["sql"], steps, sql_error))
        result["duration_s"] = round(time.time() - started, 3)
        return result
    finally:
        reader.close()


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_one_of=[("project_path", "config"), ("database_url", "db")])
    if module.params["lock"] and not module.check_mode and not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"),
                         exception=to_native(PSYCOPG2_IMPORT_ERROR))
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)
    except DB_ERRORS as e:
        module.fail_json(msg="alembic_migrate: database error on the lock connection: %s"
                         % to_native(e).strip())


if __name__ == "__main__":
    main()
