# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup's PostgreSQL client side: the programs it runs and what it reads from the server.

- ``Runner`` runs ``pg_dump``, ``pg_restore`` and ``psql`` with argv lists (never a
  shell) through ``module.run_command`` and records them, redacted, for
  ``executed_commands``; ``client_major`` reads a program's version;
- dumps: ``run_dump`` writes the archive formats directly and streams plain SQL through
  a FIFO (``Fifo``) into a thread that gzips it (optionally) and hashes it on the fly,
  so the file is read once; ``export_snapshot`` lets row counts be taken in the very
  snapshot pg_dump dumps;
- restores: ``run_restore``, with gzipped SQL decompressed into psql through a FIFO;
- verification: ``verify_backup`` (sha256 against the manifest, then structure) and
  ``verify_structure`` (``pg_restore --list``, gzip integrity, the dump trailer);
- the server: version, Alembic revision, row counts, whether a database exists,
  creating one, and a maintenance connection.

The argv themselves are built by ``_pg_programs`` (pure).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import os
import shutil
import tempfile
import threading

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_files as bf
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_store as store
from ansible_collections.prodready.deploy.plugins.module_utils._pg_programs import (
    check_trailer, dump_argv, exit_text, parse_client_version, tail)
from ansible_collections.prodready.deploy.plugins.module_utils._postgres import (
    DB_ERRORS, connect, describe_target, find_client_bin)

CHUNK = store.CHUNK


# ----------------------------------------------------------------------------- runner


class Runner(object):
    """Runs PostgreSQL client programs with argv lists, records them, never a shell."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.executed = []
        self._bins = {}

    def bin(self, name):
        """Path of the client program `name` (bin_dir, the versioned directories, PATH), looked up once."""
        if name not in self._bins:
            self._bins[name] = find_client_bin(self.module, name, self.params.get("bin_dir"))
        return self._bins[name]

    def record(self, argv):
        """Add `argv` to the executed commands, the password redacted."""
        self.executed.append(bf.redact_argv(argv, [self.params.get("login_password")]))

    def run(self, argv, client_env, what):
        """run_command with the client's environment; raise ProdreadyError on failure."""
        self.record(argv)
        rc, out, err = self.module.run_command(argv, environ_update=client_env.updates)
        if rc != 0:
            raise ProdreadyError("%s failed (%s)" % (what, exit_text(rc, err or out)),
                                 executed_commands=self.executed)
        return out


def client_major(runner, name):
    """(version string, major int) of a client program, from `<name> --version`."""
    rc, out, err = runner.module.run_command([runner.bin(name), "--version"])
    if rc != 0:
        raise ProdreadyError("%s --version failed: %s" % (runner.bin(name), tail(err)))
    return parse_client_version(out)


# ----------------------------------------------------------------------------- the server


def server_info(conn):
    """(server_version string, server major int)."""
    cur = conn.cursor()
    cur.execute("SHOW server_version")
    version = cur.fetchone()[0]
    cur.execute("SHOW server_version_num")
    major = int(cur.fetchone()[0]) // 10000
    cur.close()
    return version, major


def alembic_revision(conn):
    """Current alembic revision(s) of the database, joined by `,`, or None."""
    cur = conn.cursor()
    try:
        cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not cur.fetchone()[0]:
            return None
        cur.execute("SELECT version_num FROM alembic_version ORDER BY version_num")
        revs = [r[0] for r in cur.fetchall()]
    except DB_ERRORS:
        conn.rollback()  # e.g. no privilege on the table: the revision is just unknown
        return None
    finally:
        cur.close()
    return ",".join(revs) or None


def count_rows(conn, tables):
    """{table: row count} for the given `table` / `schema.table` names."""
    from psycopg2 import sql
    counts = {}
    cur = conn.cursor()
    for name in tables:
        schema, table = bf.split_table_name(name)
        ident = sql.Identifier(schema, table) if schema else sql.Identifier(table)
        try:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(ident))
        except Exception as exc:
            raise ProdreadyError("row_count_tables: cannot count rows of %s: %s"
                                 % (name, to_native(exc).strip()))
        counts[name] = cur.fetchone()[0]
    cur.close()
    return counts


def user_tables(conn):
    """Every ordinary table outside PostgreSQL's own schemas: `table` in schema public (as
    row_count_tables names them), `schema.table` elsewhere."""
    cur = conn.cursor()
    try:
        cur.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                    "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2")
        return [table if schema == "public" else "%s.%s" % (schema, table) for schema, table in cur.fetchall()]
    finally:
        cur.close()


def count_every_table_in(params, db):
    """{schema.table: row count} of every user table of database `db`."""
    conn = connect(params, db=db)
    try:
        return count_rows(conn, user_tables(conn))
    finally:
        conn.close()


def count_rows_in(params, db, tables):
    """Row counts of `tables` in database `db`, on a connection of its own."""
    conn = connect(params, db=db)
    try:
        return count_rows(conn, tables)
    finally:
        conn.close()


def export_snapshot(conn):
    """Export the snapshot of a new read-only REPEATABLE READ transaction on `conn`; its id.

    pg_dump ``--snapshot=<id>`` then dumps exactly what `conn` sees, so row counts taken
    on `conn` match the backup.
    """
    conn.rollback()
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    cur = conn.cursor()
    cur.execute("SELECT pg_export_snapshot()")
    snapshot = cur.fetchone()[0]
    cur.close()
    return snapshot


def maintenance_connection(params, target):
    """An autocommit connection to check/create `target`: db, then postgres, then template1."""
    candidates = []
    for name in (params.get("db"), "postgres", "template1"):
        if name and name not in candidates:
            candidates.append(name)
    first_error = None
    for name in candidates:
        try:
            return connect(params, db=name, autocommit=True)
        except ProdreadyError as exc:
            first_error = first_error or exc
    raise first_error


def database_exists(conn, name):
    """Whether database `name` exists."""
    cur = conn.cursor()
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    found = cur.fetchone() is not None
    cur.close()
    return found


def create_database(conn, name):
    """CREATE DATABASE `name` from template0 (autocommit `conn`); ProdreadyError naming it on failure."""
    from psycopg2 import sql
    cur = conn.cursor()
    try:
        cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    except Exception as exc:
        raise ProdreadyError("target_db: cannot create database %s: %s"
                             % (name, to_native(exc).strip()))


# ----------------------------------------------------------------------------- verify


def verify_structure(runner, path, fmt, is_gzip, client_env):
    """Check a backup can be read back; returns the method used. Raises on failure."""
    if fmt in ("custom", "directory", "tar"):
        argv = [runner.bin("pg_restore"), "--list", path]
        runner.record(argv)
        rc, out, err = runner.module.run_command(argv, environ_update=client_env.updates)
        if rc != 0 or not out.strip():
            raise ProdreadyError("backup %s failed verification: pg_restore --list: %s"
                                 % (path, tail(err) or "empty table of contents"))
        return "pg_restore --list"
    if is_gzip:
        try:
            last = b""
            with gzip.open(path, "rb") as fh:
                while True:
                    chunk = fh.read(CHUNK)
                    if not chunk:
                        break
                    last = (last + chunk)[-512:]
        except (IOError, OSError, EOFError, ValueError) as exc:
            raise ProdreadyError("backup %s failed verification: gzip integrity: %s"
                                 % (path, to_native(exc)))
        check_trailer(path, last)
        return "gzip integrity + dump trailer"
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 512))
        check_trailer(path, fh.read())
    return "dump trailer"


def verify_backup(runner, path, manifest, client_env, fmt=None, is_gzip=False):
    """Full verification of an existing backup: sha256 against the manifest, then structure.

    Returns (sha256, size, method). A mismatching checksum raises ProdreadyError.
    """
    if not os.path.lexists(path):
        raise ProdreadyError("src: backup %s does not exist" % path)
    digest, size = store.checksum(path)
    if manifest is not None:
        if digest != manifest["sha256"]:
            raise ProdreadyError(
                "backup %s failed verification: sha256 mismatch (manifest %s, file %s); "
                "refusing to use it" % (path, manifest["sha256"], digest),
                sha256=digest, verified=False)
        if size != manifest["size_bytes"]:
            raise ProdreadyError("backup %s failed verification: size %d differs from the "
                                 "manifest's %d" % (path, size, manifest["size_bytes"]),
                                 verified=False)
        fmt, is_gzip = manifest["format"], manifest.get("gzip", False)
    method = verify_structure(runner, path, fmt, is_gzip, client_env)
    return digest, size, ("sha256 + " + method) if manifest is not None else method


# ----------------------------------------------------------------------------- streaming


class Fifo(object):
    """A named pipe in a private 0700 directory, with a thread pumping data through it.

    Lets a client program read or write a stream (`--file=<fifo>`) while it is run by
    module.run_command, so plain dumps are gzipped and hashed on the fly and gzipped SQL
    is decompressed into psql without a temporary copy.
    """

    def __init__(self, pump, reader_side):
        self.dir = tempfile.mkdtemp(prefix="prodready-fifo-")
        os.chmod(self.dir, 0o700)
        self.path = os.path.join(self.dir, "stream")
        os.mkfifo(self.path, 0o600)
        self.reader_side = reader_side  # True: our thread reads what the program writes
        self.error = None
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(pump,))
        self.thread.daemon = True
        self.thread.start()

    def _run(self, pump):
        try:
            with open(self.path, "rb" if self.reader_side else "wb") as fh:
                self.result = pump(fh)
        except (BrokenPipeError, IOError, OSError) as exc:
            if not isinstance(exc, BrokenPipeError):
                self.error = exc
        except Exception as exc:  # reported by finish()
            self.error = exc

    def finish(self):
        """Unblock the thread if the program never opened the pipe, wait for it, clean up."""
        if self.thread.is_alive():
            flags = (os.O_WRONLY if self.reader_side else os.O_RDONLY) | os.O_NONBLOCK
            try:
                os.close(os.open(self.path, flags))
            except OSError:
                pass
        self.thread.join()
        shutil.rmtree(self.dir, ignore_errors=True)


def copy_stream(src, dst):
    """Copy file-like `src` into `dst` in 1 MiB chunks."""
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            break
        dst.write(chunk)


# ----------------------------------------------------------------------------- dump


def run_dump(runner, p, tmp, snapshot, gzip_plain, client_env):
    """Run pg_dump into `tmp`; returns (sha256, size). Plain output is streamed and hashed once."""
    old_umask = os.umask(0o077)
    try:
        if p["format"] != "plain":
            argv = dump_argv(runner.bin("pg_dump"), p, tmp, snapshot)
            runner.run(argv, client_env, "pg_dump of %s" % describe_target(p))
            if p["format"] == "directory":
                store.restrict_tree(tmp)
            else:
                os.chmod(tmp, 0o600)
            return store.checksum(tmp)
        return dump_plain_streamed(runner, p, tmp, snapshot, gzip_plain, client_env)
    finally:
        os.umask(old_umask)


def dump_plain_streamed(runner, p, tmp, snapshot, gzip_plain, client_env):
    """pg_dump plain SQL into a FIFO; a thread gzips (optionally) and hashes it into `tmp`."""
    def pump(src):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw:
            writer = store.HashingWriter(raw)
            if gzip_plain:
                with gzip.GzipFile(filename="", mode="wb", fileobj=writer,
                                   compresslevel=p["compress"], mtime=0) as gz:
                    copy_stream(src, gz)
            else:
                copy_stream(src, writer)
            raw.flush()
            os.fsync(raw.fileno())
        return writer.sha.hexdigest(), writer.size

    fifo = Fifo(pump, reader_side=True)
    try:
        runner.run(dump_argv(runner.bin("pg_dump"), p, fifo.path, snapshot), client_env,
                   "pg_dump of %s" % describe_target(p))
    finally:
        fifo.finish()
    if fifo.error is not None or fifo.result is None:
        raise ProdreadyError("writing the dump of %s to %s failed: %s"
                             % (describe_target(p), tmp, to_native(fifo.error or "no data")))
    return fifo.result


# ----------------------------------------------------------------------------- restore


def run_restore(runner, argv, path, fmt, is_gzip, client_env, target):
    """Run the restore command built by restore_argv (plain SQL through psql, else pg_restore)."""
    if fmt == "plain" and is_gzip:
        run_psql_restore(runner, argv, path, client_env, target)
    elif fmt == "plain":
        runner.run(argv, client_env, "psql restore of %s into %s (ON_ERROR_STOP=1)"
                   % (path, target))
    else:
        runner.run(argv, client_env, "pg_restore of %s into %s" % (path, target))


def run_psql_restore(runner, argv, path, client_env, target):
    """Decompress a gzipped plain SQL backup into psql through a FIFO (ON_ERROR_STOP=1)."""
    def pump(dst):
        with gzip.open(path, "rb") as src:
            copy_stream(src, dst)

    fifo = Fifo(pump, reader_side=False)
    try:
        runner.run(argv + ["--file=%s" % fifo.path], client_env,
                   "psql restore of %s into %s (ON_ERROR_STOP=1)" % (path, target))
    finally:
        fifo.finish()
    if fifo.error is not None:
        raise ProdreadyError("reading %s for the restore failed: %s" % (path, to_native(fifo.error)))
