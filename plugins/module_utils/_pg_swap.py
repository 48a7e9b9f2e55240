# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup's restore with ``swap``: replace a database without ever restoring over it.

The backup is restored into a fresh database ``<db>_restore_<stamp>`` created like the
one it replaces (owner, encoding, locale), its row counts are checked against the
manifest, and then, in one short window: new connections to ``db`` are refused, its
sessions terminated, its last row counts taken, it is renamed ``<db>_replaced_<stamp>``
(kept, never dropped) and the fresh database takes its name. A failed restore or a
count mismatch drops the fresh copy and leaves ``db`` untouched; a failure during the
renames puts the original name back. Connections for the swap go to ``postgres`` or
``template1``, never to the database being renamed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_files as bf
from ansible_collections.prodready.deploy.plugins.module_utils import _pg_client as client
from ansible_collections.prodready.deploy.plugins.module_utils import _pg_restore
from ansible_collections.prodready.deploy.plugins.module_utils._postgres import ClientEnv, connect

SWAP_TERMINATE_TIMEOUT_S = 15.0


# ----------------------------------------------------------------------------- the server


def swap_connection(params):
    """Autocommit connection for the swap: never to the database being renamed."""
    first_error = None
    for name in ("postgres", "template1"):
        try:
            return connect(params, db=name, autocommit=True)
        except ProdreadyError as exc:
            first_error = first_error or exc
    raise first_error


def database_settings(conn, name):
    """Owner, encoding, collate, ctype and allow-connections of `name`, or None if missing."""
    cur = conn.cursor()
    cur.execute("SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, "
                "datctype, datallowconn FROM pg_database WHERE datname = %s", (name,))
    row = cur.fetchone()
    cur.close()
    if row is None:
        return None
    return dict(owner=row[0], encoding=row[1], collate=row[2], ctype=row[3], allow=row[4])


def session_pids(conn, name):
    """Backend pids connected to `name`, except this connection's."""
    cur = conn.cursor()
    cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid()", (name,))
    pids = [row[0] for row in cur.fetchall()]
    cur.close()
    return pids


def execute_sql(conn, statement, what):
    """Execute one composed statement; ProdreadyError naming `what` on failure."""
    cur = conn.cursor()
    try:
        cur.execute(statement)
    except Exception as exc:
        raise ProdreadyError("%s: %s" % (what, to_native(exc).strip()))
    finally:
        cur.close()


def create_like(conn, fresh, settings):
    """CREATE DATABASE `fresh` with the owner, encoding and locale of the one it replaces."""
    from psycopg2 import sql
    execute_sql(conn, sql.SQL(
        "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}"
    ).format(sql.Identifier(fresh), sql.Identifier(settings["owner"]),
             sql.Literal(settings["encoding"]), sql.Literal(settings["collate"]),
             sql.Literal(settings["ctype"])), "cannot create the restore database %s" % fresh)


def drop_quietly(conn, name):
    """Drop a database this run created (a failed restore's fresh db); errors are ignored."""
    from psycopg2 import sql
    try:
        execute_sql(conn, sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)),
                    "drop %s" % name)
    except ProdreadyError:
        pass


def terminate_sessions(conn, name, keep_pid):
    """Terminate every session of `name` but `keep_pid` and wait until they are gone."""
    deadline = time.time() + SWAP_TERMINATE_TIMEOUT_S
    terminated = set()
    cur = conn.cursor()
    try:
        while True:
            pids = [pid for pid in session_pids(conn, name) if pid != keep_pid]
            if not pids:
                return len(terminated)
            if time.time() > deadline:
                raise ProdreadyError("swap: %d session(s) of %s still connected after %.0f s "
                                     "(pids %s)" % (len(pids), name, SWAP_TERMINATE_TIMEOUT_S,
                                                    ", ".join(str(x) for x in pids[:10])))
            for pid in pids:
                try:
                    # pg_terminate_backend(pid, timeout) waits for the backend to exit (PG 14+)
                    cur.execute("SELECT pg_terminate_backend(%s, 1000)", (pid,))
                except Exception as exc:
                    raise ProdreadyError("swap: cannot terminate session %s of %s (the login "
                                         "role needs to own it, be superuser or have "
                                         "pg_signal_backend): %s"
                                         % (pid, name, to_native(exc).strip()))
                terminated.add(pid)
    finally:
        cur.close()


# ----------------------------------------------------------------------------- the swap


def swap_in(p, conn, target, fresh, replaced, tables):
    """Refuse connections, terminate, count, rename target -> replaced and fresh -> target.

    Returns (seconds the target was unavailable, sessions terminated, replaced row counts).
    On a failure before the second rename the original name is put back.
    """
    from psycopg2 import sql
    counter = connect(p, db=target)  # opened before connections are refused: counts the last rows
    try:
        counter_pid = counter.get_backend_pid()
        began = time.perf_counter()
        execute_sql(conn, sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
            sql.Identifier(target)), "swap: cannot refuse new connections to %s" % target)
        renamed = False
        try:
            terminated = terminate_sessions(conn, target, counter_pid)
            counter.rollback()
            replaced_counts = client.count_rows(counter, tables) if tables else {}
            counter.close()
            terminate_sessions(conn, target, None)
            execute_sql(conn, sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(target), sql.Identifier(replaced)),
                "swap: cannot rename %s to %s" % (target, replaced))
            renamed = True
            execute_sql(conn, sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(fresh), sql.Identifier(target)),
                "swap: cannot rename %s to %s" % (fresh, target))
            window = time.perf_counter() - began
        except ProdreadyError as exc:
            current = target
            if renamed:
                try:
                    execute_sql(conn, sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(replaced), sql.Identifier(target)), "rename back")
                except ProdreadyError as back:
                    current = replaced
                    exc = ProdreadyError("%s; renaming %s back to %s failed too: %s"
                                         % (exc, replaced, target, back))
            try:
                execute_sql(conn, sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
                    sql.Identifier(current)), "allow connections")
            except ProdreadyError:
                pass
            raise ProdreadyError("%s (%s was left in place under its own name)" % (exc, current)
                                 if current == target else str(exc))
        # The replaced database stays for inspection and manual recovery: let it be opened. Its
        # comment names the database that took its place, so that a run killed right after
        # this swap is not restored twice (swap_prepared finds it).
        execute_sql(conn, sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
            sql.Identifier(replaced)), "swap: cannot allow connections to %s" % replaced)
        execute_sql(conn, sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(replaced), sql.Literal(replaced_mark(fresh))),
            "swap: cannot mark %s as replaced by %s" % (replaced, fresh))
        return round(window, 4), terminated, replaced_counts
    finally:
        if not counter.closed:
            counter.close()


def replaced_mark(fresh):
    """The comment a swap leaves on the database it replaced: which restored database took
    its name."""
    return "prodready: replaced by the restored database %s" % fresh


def replaced_by(conn, fresh):
    """The name of the database a swap replaced with the restored database `fresh` (its
    comment says so), or None."""
    with conn.cursor() as cur:
        cur.execute("SELECT d.datname FROM pg_database d JOIN pg_shdescription s ON s.objoid = d.oid "
                    "AND s.classoid = 'pg_database'::regclass WHERE s.description = %s "
                    "ORDER BY d.oid DESC LIMIT 1", (replaced_mark(fresh),))
        row = cur.fetchone()
    return row[0] if row else None


def discarded_after(module, p, replaced, target):
    """Rows of every table of `replaced` beyond `target`'s, counted after the window (nothing
    writes to the replaced database any more); None (and a warning) when they cannot be."""
    try:
        return bf.discarded_rows(client.count_every_table_in(p, replaced), client.count_every_table_in(p, target))
    except ProdreadyError as exc:
        module.warn("swap: could not compare every table of %s with %s: %s" % (replaced, target, exc))
        return None


def swap_prepared(module, runner):
    """Mode `restore` with `swap` and `restored_db`: the backup was restored into that database
    by an earlier call (`swap_later`) while the application still served; only the swap runs
    now, the short step for which the application's writes are stopped."""
    p = module.params
    started = time.time()
    target = p.get("target_db") or p.get("db")
    fresh = p["restored_db"]
    replaced = bf.swap_db_names(target, bf.utc_datetime(started))[1]
    tables = p["row_count_tables"]
    conn = swap_connection(p)
    try:
        if database_settings(conn, target) is None:
            raise ProdreadyError("target_db: database %s does not exist, there is nothing to swap" % target)
        if fresh != target and database_settings(conn, fresh) is None:
            done = replaced_by(conn, fresh)
            if done:
                # An earlier run swapped it in and was killed before it said so: nothing to redo,
                # only what that swap discarded to report.
                result = dict(changed=False, path=None, target_db=target, created_target=False, manifest=None,
                              sha256=None, size_bytes=None, verified=None, restore_db=fresh, replaced_db=done,
                              swapped=True, already_swapped=True, row_counts={}, row_counts_match=None,
                              swap_window_s=None, terminated_sessions=0, replaced_row_counts={}, row_count_delta={},
                              discarded_rows=None if module.check_mode else discarded_after(module, p, done, target),
                              duration_s=round(time.time() - started, 3), executed_commands=runner.executed)
                return result
        if fresh == target or database_settings(conn, fresh) is None:
            raise ProdreadyError("restored_db: database %s does not exist (or is the target); restore into it first "
                                 "with swap_later: true" % fresh)
        if database_settings(conn, replaced) is not None:
            raise ProdreadyError("swap: database %s already exists; retry in a second" % replaced)
        result = dict(changed=True, path=None, target_db=target, created_target=False, manifest=None, sha256=None,
                      size_bytes=None, verified=None, restore_db=fresh, replaced_db=replaced, swapped=True,
                      already_swapped=False)
        counts = client.count_rows_in(p, fresh, tables) if tables else {}
        if module.check_mode:
            result.update(row_counts=counts, row_counts_match=None, swap_window_s=None, discarded_rows=None,
                          terminated_sessions=len(session_pids(conn, target)), replaced_row_counts={},
                          row_count_delta={}, duration_s=round(time.time() - started, 3),
                          executed_commands=runner.executed)
            return result
        window, terminated, replaced_counts = swap_in(p, conn, target, fresh, replaced, tables)
    finally:
        conn.close()
    result.update(discarded_rows=discarded_after(module, p, replaced, target), row_counts=counts,
                  row_counts_match=None, swap_window_s=window, terminated_sessions=terminated,
                  replaced_row_counts=replaced_counts, row_count_delta=bf.row_count_delta(replaced_counts, counts),
                  duration_s=round(time.time() - started, 3), executed_commands=runner.executed)
    return result


def restore_swap(module, runner):
    """Mode `restore` with `swap`: restore into a fresh database, verify it, swap it in by rename
    (with `swap_later`, stop before the swap; with `restored_db`, only swap)."""
    p = module.params
    if p.get("restored_db"):
        return swap_prepared(module, runner)
    started = time.time()
    target = p.get("target_db") or p.get("db")
    path, manifest, fmt, is_gzip = _pg_restore.source(module)
    fresh, replaced = bf.swap_db_names(target, bf.utc_datetime(started))
    expected = (manifest or {}).get("row_counts") or {}
    tables = list(expected.keys()) or p["row_count_tables"]

    with ClientEnv(p) as client_env:
        digest, size, dummy = client.verify_backup(runner, path, manifest, client_env, fmt, is_gzip)
        if manifest is None:
            module.warn("%s has no manifest: its sha256 cannot be checked" % path)
        conn = swap_connection(p)
        try:
            settings = database_settings(conn, target)
            if settings is None:
                raise ProdreadyError("target_db: database %s does not exist, there is nothing to "
                                     "swap; restore without swap (create_target: true) instead"
                                     % target)
            for name in (fresh, replaced):
                if database_settings(conn, name) is not None:
                    raise ProdreadyError("swap: database %s already exists; retry in a second"
                                         % name)
            sessions = len(session_pids(conn, target))
            argv = _pg_restore.restore_command(runner, p, path, fmt, is_gzip, fresh)
            later = bool(p.get("swap_later"))
            result = dict(changed=True, path=path, target_db=target, created_target=False,
                          manifest=bf.strip_path(manifest) if manifest else None, sha256=digest,
                          size_bytes=size, verified=True, restore_db=fresh, replaced_db=None if later else replaced,
                          swapped=not later)
            if module.check_mode:
                runner.record(argv)
                result.update(row_counts={}, row_counts_match=None, swap_window_s=None, discarded_rows=None,
                              terminated_sessions=sessions, replaced_row_counts={},
                              row_count_delta={}, duration_s=round(time.time() - started, 3),
                              executed_commands=runner.executed)
                return result

            create_like(conn, fresh, settings)
            try:
                client.run_restore(runner, argv, path, fmt, is_gzip, client_env, fresh)
                counts, match = {}, None
                if tables:
                    counts = client.count_rows_in(p, fresh, tables)
                if expected:
                    match = all(counts.get(k) == v for k, v in expected.items())
                    if not match:
                        raise ProdreadyError(
                            "swap: the restored copy's row counts %s differ from the backup "
                            "manifest's %s; %s was not replaced" % (counts, expected, target))
                else:
                    module.warn("%s has no recorded row counts: the restored copy was not "
                                "checked against them before the swap" % path)
                if later:
                    result.update(row_counts=counts, row_counts_match=match, swap_window_s=None, discarded_rows=None,
                                  terminated_sessions=0, replaced_row_counts={}, row_count_delta={},
                                  duration_s=round(time.time() - started, 3), executed_commands=runner.executed)
                    return result
                window, terminated, replaced_counts = swap_in(p, conn, target, fresh, replaced,
                                                              tables)
            except Exception:
                # Drop the copy only while the original still holds its name.
                if database_settings(conn, target) is not None and \
                        database_settings(conn, fresh) is not None:
                    drop_quietly(conn, fresh)
                raise
        finally:
            conn.close()
        # After the window: every table of both, so that rows written after the backup anywhere
        # are counted, not only in row_count_tables.
        discarded = discarded_after(module, p, replaced, target)
    result.update(discarded_rows=discarded, row_counts=counts, row_counts_match=match, swap_window_s=window,
                  terminated_sessions=terminated, replaced_row_counts=replaced_counts,
                  row_count_delta=bf.row_count_delta(replaced_counts, counts),
                  duration_s=round(time.time() - started, 3), executed_commands=runner.executed)
    return result
