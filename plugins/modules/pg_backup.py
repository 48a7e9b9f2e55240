# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pg_backup
short_description: Back up, verify, restore, list and prune PostgreSQL backups
version_added: "1.0.0"
description:
  - Dumps a PostgreSQL database with C(pg_dump) in the custom, directory, plain (optionally
    gzipped) or tar format, for the whole database, its schema, its data or chosen tables.
  - Writes to a hidden temporary name and renames only when the dump is complete and
    verified; files are 0600 in a 0700 directory, and a JSON manifest beside each backup
    records the sha256, sizes, server version, scope, label, timings and row counts.
  - A verified backup with the same O(label) is reused (C(changed=false)), so re-running a
    deploy does not dump twice.
  - Restores with C(pg_restore) or C(psql -v ON_ERROR_STOP=1) after checking the sha256,
    into the same or another database, and returns row counts after the restore.
  - Lists backups newest first and prunes them by count and age, never deleting the newest
    verified one.
  - Passwords never go on a command line; child programs get a 0600 E(PGPASSFILE).
author:
  - prodready.deploy maintainers (@prodready)
extends_documentation_fragment:
  - prodready.deploy.postgres
attributes:
  check_mode:
    support: full
    description: Returns the path it would write, the backups it would prune or the restore it would run, and changes nothing.
  diff_mode:
    support: none
    description: Nothing is edited in place.
options:
  mode:
    description:
      - C(backup) dumps O(db) into O(dest_dir).
      - C(restore) restores O(src) into O(target_db) (default O(db)).
      - C(verify) checks O(src) (sha256 against its manifest, C(pg_restore --list), gzip integrity).
      - C(list) returns the backups in O(dest_dir), newest first.
      - C(prune) deletes backups in O(dest_dir) beyond O(keep) / O(keep_days).
    type: str
    default: backup
    choices: [ backup, restore, verify, list, prune ]
  dest_dir:
    description:
      - Directory holding the backups. Created 0700 when missing (mode C(backup)).
      - Required for O(mode=backup), O(mode=list), O(mode=prune), and to resolve O(src) C(latest) or a label.
    type: path
  format:
    description:
      - C(custom) is C(pg_dump -Fc); C(directory) is C(pg_dump -Fd) (parallel with O(jobs));
        C(plain) is SQL text (gzipped when O(compress) > 0); C(tar) is C(pg_dump -Ft).
    type: str
    default: custom
    choices: [ custom, directory, plain, tar ]
  compress:
    description:
      - Compression level 0-9. For C(custom) and C(directory) it is passed to C(pg_dump -Z)
        (unset = pg_dump's default). For C(plain), a level above 0 gzips the SQL (C(.sql.gz)).
        Not supported by C(tar).
    type: int
  jobs:
    description:
      - Parallel jobs. Backup - C(directory) format only. Restore - C(custom) and C(directory)
        formats (C(pg_restore -j)); not combinable with O(single_transaction).
    type: int
  scope:
    description:
      - C(full) (schema and data), C(schema) (C(--schema-only)) or C(data) (C(--data-only)).
    type: str
    default: full
    choices: [ full, schema, data ]
  tables:
    description:
      - Dump only these tables (C(pg_dump -t)), e.g. C(public.orders).
    type: list
    elements: str
    default: []
  exclude_tables:
    description:
      - Tables left out of the dump (C(pg_dump -T)).
    type: list
    elements: str
    default: []
  clean:
    description:
      - Plain format backup - add C(DROP) statements (C(pg_dump --clean)), so replaying the
        file with C(psql) replaces existing objects (runbook 000's full dump).
      - Restore of C(custom), C(directory) or C(tar) - C(pg_restore --clean).
    type: bool
    default: false
  if_exists:
    description:
      - With O(clean), use C(DROP ... IF EXISTS) (C(--if-exists)).
    type: bool
    default: true
  no_owner:
    description:
      - Do not set object ownership (C(pg_dump -O) for plain backups, C(pg_restore -O) for
        restores), for restoring as another role.
    type: bool
    default: false
  label:
    description:
      - A name for this backup, for example C(pre-1.4.0). A verified backup of the same
        database with this label and the same parameters is reused instead of dumping again.
      - A label already used with other parameters (format, scope, tables) is an error.
    type: str
  verify:
    description:
      - Verify the backup before it gets its final name - C(pg_restore --list) for the
        archive formats, a full gzip integrity check for C(.sql.gz), the dump-complete
        trailer for plain SQL. The sha256 is always recorded.
    type: bool
    default: true
  row_count_tables:
    description:
      - Tables whose row counts are recorded in the manifest, counted in the same snapshot
        that pg_dump dumps, and counted again after a restore.
    type: list
    elements: str
    default: []
  src:
    description:
      - Backup to restore or verify - a path, C(latest) (newest verified backup of O(db) in
        O(dest_dir)) or a label.
      - A path without a manifest (for example a cron C(pg_dump | gzip) file) is restored
        after a structural check; its sha256 cannot be checked.
    type: str
  target_db:
    description:
      - Database to restore into. Defaults to O(db).
    type: str
  create_target:
    description:
      - Create O(target_db) (from C(template0)) when it does not exist. Without it, a
        missing target database is an error.
    type: bool
    default: false
  single_transaction:
    description:
      - Restore in one transaction (C(--single-transaction)); a failure leaves the target
        untouched.
    type: bool
    default: false
  swap:
    description:
      - Restore - replace the existing database O(target_db) (default O(db)) without ever
        restoring over it. The backup is restored into a fresh database
        C(<db>_restore_<stamp>) (same owner, encoding and locale), its row counts are checked
        against the manifest, and then, in one short step, new connections to the database
        are refused, its sessions are terminated, it is renamed to C(<db>_replaced_<stamp>)
        (kept, never dropped) and the fresh database takes its name.
      - The database is unavailable only during that step; RV(swap_window_s) measures it.
        Stop the application's writes first (router in maintenance), or the rows they write
        after the backup are discarded - RV(row_count_delta) counts them.
      - A failed restore or a row count mismatch drops the fresh database and leaves O(db)
        untouched. A failure during the renames puts the original name back.
      - The login role must own the database (or be a superuser) and may need
        C(pg_signal_backend) to terminate other roles' sessions. Database-level settings
        (C(ALTER DATABASE ... SET), C(GRANT CONNECT)) are not carried over.
      - Not combinable with O(clean) or O(create_target).
    type: bool
    default: false
  keep:
    description:
      - Prune - keep the newest O(keep) backups.
    type: int
  keep_days:
    description:
      - Prune - keep backups younger than O(keep_days) days. With O(keep), a backup matching
        either rule is kept. The newest verified backup is always kept.
    type: float
  bin_dir:
    description:
      - Directory of C(pg_dump), C(pg_restore) and C(psql). Default - C(/usr/lib/postgresql/15/bin)
        when present, then E(PATH). pg_dump's major version must be at least the server's.
    type: path
notes:
  - The sha256 of a C(directory) backup is the sha256 of the lines C(<relative path> NUL <sha256 of file>),
    one per file, sorted by path.
  - Row counts are taken in a snapshot exported to pg_dump (C(--snapshot)), so they match
    the dump exactly.
seealso:
  - module: prodready.deploy.alembic_migrate
"""

EXAMPLES = r"""
- name: Back up before deploying 1.4.0 (reused when the deploy is re-run)
  prodready.deploy.pg_backup:
    db: app
    login_host: db.internal
    login_user: app
    login_password: "{{ vault_app_db_password }}"
    dest_dir: /var/backups/app
    label: pre-1.4.0
    row_count_tables: [orders, customers]

- name: Runbook 000 - full plain dump with DROP statements
  prodready.deploy.pg_backup:
    db: app
    dest_dir: /var/backups/app
    format: plain
    clean: true

- name: Runbook 000 - one table, data only
  prodready.deploy.pg_backup:
    db: app
    dest_dir: /var/backups/app
    format: plain
    scope: data
    tables: [market_structure_results]

- name: Runbook 000 - schema only, for rollback reference
  prodready.deploy.pg_backup:
    db: app
    dest_dir: /var/backups/app
    format: plain
    scope: schema

- name: Runbook 002 - daily gzipped SQL dump
  prodready.deploy.pg_backup:
    db: bot_production
    dest_dir: /backups
    format: plain
    compress: 6

- name: Parallel dump of a large database
  prodready.deploy.pg_backup:
    db: app
    dest_dir: /var/backups/app
    format: directory
    jobs: 4

- name: Restore the pre-deploy backup into a fresh database
  prodready.deploy.pg_backup:
    mode: restore
    db: app
    dest_dir: /var/backups/app
    src: pre-1.4.0
    target_db: app_restored
    create_target: true
    jobs: 4

- name: Roll the database back to the pre-deploy backup, swapped in by rename
  prodready.deploy.pg_backup:
    mode: restore
    db: app
    dest_dir: /var/backups/app
    src: pre-1.4.0
    swap: true
  register: restored
  # restored.swap_window_s: seconds the database was unavailable
  # restored.replaced_db: the old database, kept as app_replaced_<stamp>

- name: Verify the newest backup
  prodready.deploy.pg_backup:
    mode: verify
    db: app
    dest_dir: /var/backups/app
    src: latest

- name: List backups
  prodready.deploy.pg_backup:
    mode: list
    dest_dir: /var/backups/app
  register: backups

- name: Runbook 002 - keep 7 days of backups
  prodready.deploy.pg_backup:
    mode: prune
    db: bot_production
    dest_dir: /backups
    keep_days: 7
"""

RETURN = r"""
path:
  description: Path of the backup written, reused, verified or restored.
  returned: modes backup, restore, verify
  type: str
  sample: /var/backups/app/app_full_pre-1.4.0_20261102T101500Z.dump
manifest:
  description: The backup's manifest (written beside it as C(<path>.manifest.json)); null for a restored file without one.
  returned: modes backup, restore, verify
  type: dict
  sample: {"db": "app", "label": "pre-1.4.0", "format": "custom", "scope": "full", "sha256": "9f86d0...",
           "size_bytes": 10240, "server_version": "15.18", "started": "2026-11-02T10:15:00Z",
           "finished": "2026-11-02T10:15:03Z", "duration_s": 3.1, "row_counts": {"orders": 1200},
           "alembic_revision": "a1b2c3", "verified": true, "verify_method": "pg_restore --list"}
size_bytes:
  description: Size of the backup in bytes (sum of files for the directory format).
  returned: modes backup, restore, verify
  type: int
  sample: 10240
sha256:
  description: sha256 of the backup (see notes for the directory format).
  returned: modes backup, restore, verify
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
duration_s:
  description: Seconds the module spent (dump + verify, or restore).
  returned: always
  type: float
  sample: 3.2
reused:
  description: True when an existing verified backup with the same label was returned instead of dumping.
  returned: mode backup
  type: bool
  sample: false
verified:
  description: True when the backup passed verification (sha256 and structure).
  returned: modes backup, restore, verify
  type: bool
  sample: true
pruned:
  description: Paths deleted by prune (that would be deleted, in check mode).
  returned: mode prune
  type: list
  elements: str
  sample: [/backups/app_full_20261025T020000Z.sql.gz]
kept:
  description: Paths kept by prune.
  returned: mode prune
  type: list
  elements: str
  sample: [/backups/app_full_20261102T020000Z.sql.gz]
backups:
  description: Backups in O(dest_dir) (of O(db) when set), newest first, each the manifest plus C(path).
  returned: modes list, prune
  type: list
  elements: dict
  sample: [{"path": "/backups/app_full_20261102T020000Z.dump", "label": null, "format": "custom", "verified": true}]
row_counts:
  description: Row counts of O(row_count_tables) - in the dump's snapshot (backup) or in the target database after a restore.
  returned: modes backup, restore
  type: dict
  sample: {"orders": 1200}
row_counts_match:
  description: After a restore, whether every row count equals the one recorded in the manifest (null without recorded counts).
  returned: mode restore
  type: bool
  sample: true
target_db:
  description: Database restored into.
  returned: mode restore
  type: str
  sample: app_restored
created_target:
  description: Whether the target database was created (would be, in check mode).
  returned: mode restore
  type: bool
  sample: false
restore_db:
  description: With O(swap), the fresh database the backup was restored into before it took the name of RV(target_db).
  returned: mode restore with O(swap)
  type: str
  sample: app_restore_20261102T101500Z
replaced_db:
  description: With O(swap), the name the replaced database now has (kept, never dropped).
  returned: mode restore with O(swap)
  type: str
  sample: app_replaced_20261102T101500Z
swap_window_s:
  description: With O(swap), seconds between refusing new connections to the database and the restored one taking its name (null in check mode).
  returned: mode restore with O(swap)
  type: float
  sample: 0.042
terminated_sessions:
  description: With O(swap), sessions of the replaced database terminated for the rename (that would be, in check mode).
  returned: mode restore with O(swap)
  type: int
  sample: 3
replaced_row_counts:
  description: With O(swap), row counts of the same tables in the replaced database, taken inside the swap window (after the last write).
  returned: mode restore with O(swap)
  type: dict
  sample: {"orders": 1212}
row_count_delta:
  description:
    - With O(swap), per table, rows in the replaced database minus rows restored.
    - A positive number is rows written after the backup that the restore discarded (a negative one, rows deleted after it that came back).
  returned: mode restore with O(swap)
  type: dict
  sample: {"orders": 12}
state:
  description: Added by Ansible for RV(path) - C(file) or C(directory) (the directory format).
  returned: when path exists
  type: str
  sample: file
mode:
  description: Added by Ansible for RV(path) - its permissions.
  returned: when path exists
  type: str
  sample: "0600"
owner:
  description: Added by Ansible for RV(path) - owner name.
  returned: when path exists
  type: str
  sample: postgres
group:
  description: Added by Ansible for RV(path) - group name.
  returned: when path exists
  type: str
  sample: postgres
uid:
  description: Added by Ansible for RV(path) - owner id.
  returned: when path exists
  type: int
  sample: 999
gid:
  description: Added by Ansible for RV(path) - group id.
  returned: when path exists
  type: int
  sample: 999
size:
  description: Added by Ansible for RV(path) - size of the file or directory entry in bytes (see RV(size_bytes) for the backup size).
  returned: when path exists
  type: int
  sample: 10240
executed_commands:
  description: Commands run (or that would run, in check mode), as argv lists. They never hold a password.
  returned: always
  type: list
  elements: list
  sample: [["/usr/lib/postgresql/15/bin/pg_dump", "--format=custom", "--file=/backups/.x.tmp-1", "--dbname=app"]]
"""

import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_files as bf
from ansible_collections.prodready.deploy.plugins.module_utils._postgres import (
    DB_ERRORS, HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR, ClientEnv, connect, describe_target, find_client_bin,
    postgres_connection_argument_spec)

CHUNK = 1024 * 1024
STDERR_LIMIT = 4000
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"


# ----------------------------------------------------------------------------- files


class HashingWriter(object):
    """File-like object that writes through to `fh` and hashes/counts what it writes."""

    def __init__(self, fh):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self):
        self.fh.flush()


def sha256_file(path):
    """(sha256 hex, size) of one file, read once in 1 MiB chunks."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def sha256_tree(path):
    """(sha256, total size) of a directory backup: sha256 of sorted `relpath NUL sha` lines."""
    entries = []
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            entries.append((os.path.relpath(full, path), full))
    outer = hashlib.sha256()
    total = 0
    for rel, full in sorted(entries):
        digest, size = sha256_file(full)
        total += size
        outer.update(("%s\0%s\n" % (rel, digest)).encode("utf-8"))
    return outer.hexdigest(), total


def checksum(path):
    """(sha256, size) of a backup file or directory."""
    if os.path.isdir(path):
        return sha256_tree(path)
    return sha256_file(path)


def restrict_tree(path):
    """chmod 0700 directories and 0600 files under a directory backup."""
    os.chmod(path, 0o700)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700)
        for name in files:
            os.chmod(os.path.join(root, name), 0o600)


def remove_path(path):
    """Delete a backup file or directory; missing is fine."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def write_json_atomic(path, data):
    """Write JSON to `path` through a 0600 temp file in the same directory + rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_manifests(dest_dir, warn=None):
    """Valid manifests in dest_dir, each with `path` (the backup) added. Invalid ones are warned about."""
    result = []
    if not dest_dir or not os.path.isdir(dest_dir):
        return result
    for name in sorted(os.listdir(dest_dir)):
        if not bf.is_manifest_name(name):
            continue
        mpath = os.path.join(dest_dir, name)
        try:
            with open(mpath) as fh:
                manifest = json.load(fh)
        except (IOError, OSError, ValueError) as exc:
            if warn:
                warn("ignoring unreadable manifest %s: %s" % (mpath, to_native(exc)))
            continue
        problems = bf.manifest_problems(manifest)
        if problems:
            if warn:
                warn("ignoring invalid manifest %s: %s" % (mpath, "; ".join(problems)))
            continue
        backup_path = os.path.join(dest_dir, bf.backup_name_of_manifest(name))
        if not os.path.lexists(backup_path):
            if warn:
                warn("manifest %s has no backup beside it" % mpath)
            continue
        manifest = dict(manifest, path=backup_path)
        result.append(manifest)
    return result


def load_manifest_for(path):
    """The manifest beside a backup path, or None when there is none."""
    mpath = path + bf.MANIFEST_SUFFIX
    if not os.path.exists(mpath):
        return None
    try:
        with open(mpath) as fh:
            manifest = json.load(fh)
    except (IOError, OSError, ValueError) as exc:
        raise ProdreadyError("manifest %s is unreadable: %s" % (mpath, to_native(exc)))
    problems = bf.manifest_problems(manifest)
    if problems:
        raise ProdreadyError("manifest %s is invalid: %s" % (mpath, "; ".join(problems)))
    return dict(manifest, path=path)


# ----------------------------------------------------------------------------- runner


class Runner(object):
    """Runs PostgreSQL client programs with argv lists, records them, never a shell."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.executed = []
        self._bins = {}

    def bin(self, name):
        if name not in self._bins:
            self._bins[name] = find_client_bin(self.module, name, self.params.get("bin_dir"))
        return self._bins[name]

    def record(self, argv):
        self.executed.append(bf.redact_argv(argv, [self.params.get("login_password")]))

    def run(self, argv, client_env, what):
        """run_command with the client's environment; raise ProdreadyError on failure."""
        self.record(argv)
        rc, out, err = self.module.run_command(argv, environ_update=client_env.updates)
        if rc != 0:
            raise ProdreadyError("%s failed (rc=%d): %s" % (what, rc, tail(err or out)),
                                 executed_commands=self.executed)
        return out


def tail(text, limit=STDERR_LIMIT):
    """Last `limit` characters of a program's error output, stripped."""
    text = to_native(text or "").strip()
    return text[-limit:] if len(text) > limit else text


def connection_argv(params, db):
    """Non-secret connection arguments; host/port/user also go by environment."""
    return ["--dbname=%s" % db]


# ----------------------------------------------------------------------------- database reads


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


def client_major(runner, name):
    """(version string, major int) of a client program, from `<name> --version`."""
    rc, out, err = runner.module.run_command([runner.bin(name), "--version"])
    if rc != 0:
        raise ProdreadyError("%s --version failed: %s" % (runner.bin(name), tail(err)))
    match = re.search(r"\(PostgreSQL\)\s+([0-9]+(?:\.[0-9]+)*)", out) or \
        re.search(r"([0-9]+(?:\.[0-9]+)*)", out)
    if not match:
        return out.strip(), None
    return match.group(1), int(match.group(1).split(".")[0])


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


def check_trailer(path, last_bytes):
    if PLAIN_TRAILER not in last_bytes:
        raise ProdreadyError("backup %s failed verification: the SQL does not end with "
                             "'PostgreSQL database dump complete' (truncated dump?)" % path)


def verify_backup(runner, path, manifest, client_env, fmt=None, is_gzip=False):
    """Full verification of an existing backup: sha256 against the manifest, then structure.

    Returns (sha256, size, method). A mismatching checksum raises ProdreadyError.
    """
    if not os.path.lexists(path):
        raise ProdreadyError("src: backup %s does not exist" % path)
    digest, size = checksum(path)
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


# ----------------------------------------------------------------------------- backup


def prepare_dest_dir(module, dest_dir, create):
    """Make sure dest_dir exists (0700 when created) and is writable."""
    if os.path.exists(dest_dir) and not os.path.isdir(dest_dir):
        raise ProdreadyError("dest_dir: %s exists and is not a directory" % dest_dir)
    if not os.path.isdir(dest_dir):
        if not create:
            parent = os.path.dirname(os.path.abspath(dest_dir))
            while parent and not os.path.exists(parent):
                parent = os.path.dirname(parent)
            if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
                raise ProdreadyError("dest_dir: %s cannot be created: %s is not a writable "
                                     "directory" % (dest_dir, parent))
            return
        try:
            os.makedirs(dest_dir, 0o700)
            os.chmod(dest_dir, 0o700)
        except OSError as exc:
            raise ProdreadyError("dest_dir: cannot create %s: %s" % (dest_dir, to_native(exc)))
    if not os.access(dest_dir, os.W_OK | os.X_OK):
        raise ProdreadyError("dest_dir: %s is not writable" % dest_dir)
    if os.stat(dest_dir).st_mode & 0o077:
        module.warn("dest_dir %s is accessible by group or others (mode %o); backups are "
                    "0600 but 0700 is recommended for the directory"
                    % (dest_dir, os.stat(dest_dir).st_mode & 0o777))


def dump_argv(runner, p, target_path, snapshot):
    fmt = p["format"]
    argv = [runner.bin("pg_dump"), "--format=%s" % fmt]
    if fmt == "directory" and p.get("jobs"):
        argv.append("--jobs=%d" % p["jobs"])
    if fmt in ("custom", "directory") and p.get("compress") is not None:
        argv.append("--compress=%d" % p["compress"])
    if p["scope"] == "schema":
        argv.append("--schema-only")
    elif p["scope"] == "data":
        argv.append("--data-only")
    for table in p["tables"]:
        argv.append("--table=%s" % table)
    for table in p["exclude_tables"]:
        argv.append("--exclude-table=%s" % table)
    if fmt == "plain" and p["clean"]:
        argv.append("--clean")
        if p["if_exists"]:
            argv.append("--if-exists")
    if fmt == "plain" and p["no_owner"]:
        argv.append("--no-owner")
    if snapshot:
        argv.append("--snapshot=%s" % snapshot)
    if target_path:
        argv.append("--file=%s" % target_path)
    argv += connection_argv(p, p["db"])
    return argv


def validate_backup_params(p):
    fmt = p["format"]
    if p.get("jobs") is not None:
        if p["jobs"] < 1:
            raise ProdreadyError("jobs: must be >= 1, got %d" % p["jobs"])
        if fmt != "directory":
            raise ProdreadyError("jobs: parallel dumps need format=directory (format is %s)" % fmt)
    if p.get("compress") is not None:
        if not 0 <= p["compress"] <= 9:
            raise ProdreadyError("compress: must be 0-9, got %d" % p["compress"])
        if fmt == "tar" and p["compress"] > 0:
            raise ProdreadyError("compress: the tar format cannot be compressed; use custom, "
                                 "directory or plain")
    bf.validate_label(p.get("label"))
    for name in p["row_count_tables"]:
        bf.split_table_name(name)


def do_backup(module, runner):
    p = module.params
    started = time.time()
    validate_backup_params(p)
    dest_dir = p["dest_dir"]
    gzip_plain = p["format"] == "plain" and bool(p.get("compress"))
    request = dict(db=p["db"], label=p.get("label"), format=p["format"], scope=p["scope"],
                   gzip=gzip_plain, tables=p["tables"], exclude_tables=p["exclude_tables"])
    prepare_dest_dir(module, dest_dir, create=not module.check_mode)

    with ClientEnv(p) as client_env:
        existing = read_manifests(dest_dir, module.warn)
        reusable = bf.find_reusable(existing, request)
        if reusable is not None:
            try:
                digest, size, method = verify_backup(runner, reusable["path"], reusable, client_env)
            except ProdreadyError as exc:
                module.warn("backup %s with label %s is not reusable (%s); dumping again"
                            % (reusable["path"], p["label"], exc))
            else:
                return dict(changed=False, reused=True, path=reusable["path"],
                            manifest=strip_path(reusable), size_bytes=size, sha256=digest,
                            verified=True, row_counts=reusable.get("row_counts") or {},
                            duration_s=round(time.time() - started, 3),
                            executed_commands=runner.executed)

        conn = connect(p)
        try:
            version, major = server_info(conn)
            dump_version, dump_major = client_major(runner, "pg_dump")
            if dump_major is not None and dump_major < major:
                raise ProdreadyError(
                    "pg_dump %s (%s) is older than the server (%s); set bin_dir to the "
                    "PostgreSQL %d client programs" % (dump_version, runner.bin("pg_dump"),
                                                       version, major))
            revision = alembic_revision(conn)
            now = time.time()
            names = set(os.listdir(dest_dir)) if os.path.isdir(dest_dir) else set()
            name = bf.unique_name(bf.backup_name(p["db"], p["scope"], p["format"],
                                                 _utc(now), p.get("label"), gzip_plain), names)
            final = os.path.join(dest_dir, name)
            if module.check_mode:
                argv = dump_argv(runner, p, final, None)
                runner.record(argv)
                return dict(changed=True, reused=False, path=final, manifest=None,
                            size_bytes=0, sha256=None, verified=False, row_counts={},
                            duration_s=round(time.time() - started, 3),
                            executed_commands=runner.executed)

            snapshot, counts = None, {}
            if p["row_count_tables"]:
                # Count in the very snapshot pg_dump dumps, so counts match the backup.
                conn.rollback()
                conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
                cur = conn.cursor()
                cur.execute("SELECT pg_export_snapshot()")
                snapshot = cur.fetchone()[0]
                cur.close()
                counts = count_rows(conn, p["row_count_tables"])

            tmp = os.path.join(dest_dir, bf.temp_name(name, "%d" % os.getpid()))
            try:
                digest, size = run_dump(module, runner, p, tmp, snapshot, gzip_plain, client_env)
            except BaseException:
                remove_path(tmp)
                raise
        finally:
            conn.close()

        try:
            method = None
            if p["verify"]:
                method = verify_structure(runner, tmp, p["format"], gzip_plain, client_env)
            if os.path.lexists(final):
                raise ProdreadyError("refusing to overwrite %s" % final)
            os.rename(tmp, final)
        except BaseException:
            remove_path(tmp)
            raise
        finished = time.time()
        manifest = bf.build_manifest(
            name=name, db=p["db"], fmt=p["format"], scope=p["scope"], sha256=digest,
            size_bytes=size, started_epoch=started, finished_epoch=finished,
            verified=bool(p["verify"]), label=p.get("label"), gzip=gzip_plain,
            compress=p.get("compress"), tables=p["tables"], exclude_tables=p["exclude_tables"],
            server_version=version, pg_dump_version=dump_version, row_counts=counts,
            alembic_revision=revision, verify_method=method,
            sha256_method="directory-tree" if p["format"] == "directory" else "file",
            jobs=p.get("jobs"))
        try:
            write_json_atomic(final + bf.MANIFEST_SUFFIX, manifest)
        except (IOError, OSError) as exc:
            remove_path(final)
            raise ProdreadyError("cannot write manifest for %s: %s" % (final, to_native(exc)))
        return dict(changed=True, reused=False, path=final, manifest=manifest, size_bytes=size,
                    sha256=digest, verified=bool(p["verify"]), row_counts=counts,
                    duration_s=round(finished - started, 3), executed_commands=runner.executed)


def _utc(epoch):
    import datetime
    return datetime.datetime.utcfromtimestamp(epoch)


def strip_path(manifest):
    return dict((k, v) for k, v in manifest.items() if k != "path")


def run_dump(module, runner, p, tmp, snapshot, gzip_plain, client_env):
    """Run pg_dump into `tmp`; returns (sha256, size). Plain output is streamed and hashed once."""
    old_umask = os.umask(0o077)
    try:
        if p["format"] != "plain":
            argv = dump_argv(runner, p, tmp, snapshot)
            runner.run(argv, client_env, "pg_dump of %s" % describe_target(p))
            if p["format"] == "directory":
                restrict_tree(tmp)
            else:
                os.chmod(tmp, 0o600)
            return checksum(tmp)
        return dump_plain_streamed(runner, p, tmp, snapshot, gzip_plain, client_env)
    finally:
        os.umask(old_umask)


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


def dump_plain_streamed(runner, p, tmp, snapshot, gzip_plain, client_env):
    """pg_dump plain SQL into a FIFO; a thread gzips (optionally) and hashes it into `tmp`."""
    def pump(src):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw:
            writer = HashingWriter(raw)
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
        runner.run(dump_argv(runner, p, fifo.path, snapshot), client_env,
                   "pg_dump of %s" % describe_target(p))
    finally:
        fifo.finish()
    if fifo.error is not None or fifo.result is None:
        raise ProdreadyError("writing the dump of %s to %s failed: %s"
                             % (describe_target(p), tmp, to_native(fifo.error or "no data")))
    return fifo.result


def copy_stream(src, dst):
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            break
        dst.write(chunk)


# ----------------------------------------------------------------------------- src resolution


def resolve_backup(module, src):
    """(path, manifest-or-None) of a restore/verify `src`: a path, `latest` or a label."""
    p = module.params
    if src is None:
        raise ProdreadyError("src: required for mode %s (a path, `latest` or a label)" % p["mode"])
    if os.path.sep in src or os.path.lexists(src):
        path = os.path.abspath(src)
        if not os.path.lexists(path):
            raise ProdreadyError("src: backup %s does not exist" % path)
        return path, load_manifest_for(path)
    if not p.get("dest_dir"):
        raise ProdreadyError("src: %r is not a path; set dest_dir to resolve `latest` or a label"
                             % src)
    if not os.path.isdir(p["dest_dir"]):
        raise ProdreadyError("dest_dir: %s does not exist" % p["dest_dir"])
    manifests = read_manifests(p["dest_dir"], module.warn)
    manifest = bf.resolve_src(manifests, src, p.get("db"))
    if manifest is None:
        raise ProdreadyError("src: no verified backup %s in %s%s" % (
            "(latest)" if src == "latest" else "with label %r" % src, p["dest_dir"],
            " for db %s" % p["db"] if p.get("db") else ""))
    return manifest["path"], manifest


def infer_or_fail(path):
    inferred = bf.infer_format(os.path.basename(path.rstrip(os.path.sep)))
    if os.path.isdir(path):
        return "directory", False
    if inferred is None:
        raise ProdreadyError("src: %s has no manifest and its format cannot be inferred from "
                             "the extension (.dump, .dir, .tar, .sql, .sql.gz)" % path)
    return inferred


# ----------------------------------------------------------------------------- verify mode


def do_verify(module, runner):
    started = time.time()
    path, manifest = resolve_backup(module, module.params["src"])
    with ClientEnv(module.params) as client_env:
        fmt, is_gzip = (None, False) if manifest else infer_or_fail(path)
        digest, size, method = verify_backup(runner, path, manifest, client_env, fmt, is_gzip)
    if manifest is None:
        module.warn("%s has no manifest: its structure was checked but its sha256 cannot be "
                    "compared with a recorded one" % path)
    return dict(changed=False, path=path, manifest=strip_path(manifest) if manifest else None,
                sha256=digest, size_bytes=size, verified=True,
                duration_s=round(time.time() - started, 3), executed_commands=runner.executed)


# ----------------------------------------------------------------------------- restore


def database_exists(conn, name):
    cur = conn.cursor()
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    found = cur.fetchone() is not None
    cur.close()
    return found


def restore_argv(runner, p, path, fmt, target):
    if fmt == "plain":
        argv = [runner.bin("psql"), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
                "--dbname=%s" % target]
        if p["single_transaction"]:
            argv.append("--single-transaction")
        return argv
    argv = [runner.bin("pg_restore"), "--dbname=%s" % target, "--exit-on-error"]
    if p.get("jobs"):
        argv.append("--jobs=%d" % p["jobs"])
    if p["single_transaction"]:
        argv.append("--single-transaction")
    if p["clean"]:
        argv.append("--clean")
        if p["if_exists"]:
            argv.append("--if-exists")
    if p["no_owner"]:
        argv.append("--no-owner")
    argv.append(path)
    return argv


def check_restore_jobs(p, path, fmt):
    """Refuse `jobs` values pg_restore cannot honour for this backup."""
    if p.get("jobs") is not None:
        if p["jobs"] < 1:
            raise ProdreadyError("jobs: must be >= 1, got %d" % p["jobs"])
        if fmt not in ("custom", "directory"):
            raise ProdreadyError("jobs: parallel restore needs a custom or directory backup "
                                 "(%s is %s)" % (path, fmt))
        if p["single_transaction"]:
            raise ProdreadyError("jobs: cannot be combined with single_transaction "
                                 "(pg_restore restriction)")


def run_restore(runner, argv, path, fmt, is_gzip, client_env, target):
    """Run the restore command built by restore_argv (plain SQL through psql, else pg_restore)."""
    if fmt == "plain" and is_gzip:
        run_psql_restore(runner, argv, path, client_env, target)
    elif fmt == "plain":
        runner.run(argv, client_env, "psql restore of %s into %s (ON_ERROR_STOP=1)"
                   % (path, target))
    else:
        runner.run(argv, client_env, "pg_restore of %s into %s" % (path, target))


def do_restore(module, runner):
    p = module.params
    if p["swap"]:
        return do_restore_swap(module, runner)
    started = time.time()
    target = p.get("target_db") or p.get("db")
    if not target:
        raise ProdreadyError("target_db: set target_db or db for mode restore")
    path, manifest = resolve_backup(module, p["src"])
    fmt, is_gzip = (manifest["format"], manifest.get("gzip", False)) if manifest \
        else infer_or_fail(path)
    check_restore_jobs(p, path, fmt)

    with ClientEnv(p) as client_env:
        digest, size, method = verify_backup(runner, path, manifest, client_env, fmt, is_gzip)
        if manifest is None:
            module.warn("%s has no manifest: its sha256 cannot be checked" % path)
        conn = maintenance_connection(p, target)
        try:
            exists = database_exists(conn, target)
            created = False
            if not exists:
                if not p["create_target"]:
                    raise ProdreadyError("target_db: database %s does not exist; set "
                                         "create_target: true to create it" % target)
                created = True
                if not module.check_mode:
                    from psycopg2 import sql
                    cur = conn.cursor()
                    try:
                        cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                            sql.Identifier(target)))
                    except Exception as exc:
                        raise ProdreadyError("target_db: cannot create database %s: %s"
                                             % (target, to_native(exc).strip()))
        finally:
            conn.close()

        argv = restore_argv(runner, p, path, fmt, target)
        if fmt == "plain" and not is_gzip:
            argv.append("--file=%s" % path)
        if module.check_mode:
            runner.record(argv)
            return dict(changed=True, path=path, target_db=target, created_target=created,
                        manifest=strip_path(manifest) if manifest else None, sha256=digest,
                        size_bytes=size, verified=True, row_counts={}, row_counts_match=None,
                        duration_s=round(time.time() - started, 3),
                        executed_commands=runner.executed)
        run_restore(runner, argv, path, fmt, is_gzip, client_env, target)

    tables = list((manifest or {}).get("row_counts", {}).keys()) or p["row_count_tables"]
    counts, match = {}, None
    if tables:
        conn = connect(p, db=target)
        try:
            counts = count_rows(conn, tables)
        finally:
            conn.close()
        expected = (manifest or {}).get("row_counts") or {}
        if expected:
            match = all(counts.get(k) == v for k, v in expected.items())
    return dict(changed=True, path=path, target_db=target, created_target=created,
                manifest=strip_path(manifest) if manifest else None, sha256=digest,
                size_bytes=size, verified=True, row_counts=counts, row_counts_match=match,
                duration_s=round(time.time() - started, 3), executed_commands=runner.executed)


# ----------------------------------------------------------------------------- restore with swap

SWAP_TERMINATE_TIMEOUT_S = 15.0


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
            replaced_counts = count_rows(counter, tables) if tables else {}
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
        # The replaced database stays for inspection and manual recovery: let it be opened.
        execute_sql(conn, sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
            sql.Identifier(replaced)), "swap: cannot allow connections to %s" % replaced)
        return round(window, 4), terminated, replaced_counts
    finally:
        if not counter.closed:
            counter.close()


def do_restore_swap(module, runner):
    """Restore into a fresh database, verify it, then swap it in by rename."""
    p = module.params
    started = time.time()
    target = p.get("target_db") or p.get("db")
    if not target:
        raise ProdreadyError("target_db: set target_db or db (the database to replace) for swap")
    if p["clean"]:
        raise ProdreadyError("clean: not used with swap (the backup is restored into a fresh "
                             "database); remove clean")
    if p["create_target"]:
        raise ProdreadyError("create_target: not used with swap (swap replaces an existing "
                             "database); restore without swap to create %s" % target)
    path, manifest = resolve_backup(module, p["src"])
    fmt, is_gzip = (manifest["format"], manifest.get("gzip", False)) if manifest \
        else infer_or_fail(path)
    check_restore_jobs(p, path, fmt)
    fresh, replaced = bf.swap_db_names(target, _utc(started))
    expected = (manifest or {}).get("row_counts") or {}
    tables = list(expected.keys()) or p["row_count_tables"]

    with ClientEnv(p) as client_env:
        digest, size, method = verify_backup(runner, path, manifest, client_env, fmt, is_gzip)
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
            argv = restore_argv(runner, p, path, fmt, fresh)
            if fmt == "plain" and not is_gzip:
                argv.append("--file=%s" % path)
            result = dict(changed=True, path=path, target_db=target, created_target=False,
                          manifest=strip_path(manifest) if manifest else None, sha256=digest,
                          size_bytes=size, verified=True, restore_db=fresh, replaced_db=replaced)
            if module.check_mode:
                runner.record(argv)
                result.update(row_counts={}, row_counts_match=None, swap_window_s=None,
                              terminated_sessions=sessions, replaced_row_counts={},
                              row_count_delta={}, duration_s=round(time.time() - started, 3),
                              executed_commands=runner.executed)
                return result

            create_like(conn, fresh, settings)
            try:
                run_restore(runner, argv, path, fmt, is_gzip, client_env, fresh)
                counts, match = {}, None
                if tables:
                    check = connect(p, db=fresh)
                    try:
                        counts = count_rows(check, tables)
                    finally:
                        check.close()
                if expected:
                    match = all(counts.get(k) == v for k, v in expected.items())
                    if not match:
                        raise ProdreadyError(
                            "swap: the restored copy's row counts %s differ from the backup "
                            "manifest's %s; %s was not replaced" % (counts, expected, target))
                else:
                    module.warn("%s has no recorded row counts: the restored copy was not "
                                "checked against them before the swap" % path)
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
    result.update(row_counts=counts, row_counts_match=match, swap_window_s=window,
                  terminated_sessions=terminated, replaced_row_counts=replaced_counts,
                  row_count_delta=bf.row_count_delta(replaced_counts, counts),
                  duration_s=round(time.time() - started, 3), executed_commands=runner.executed)
    return result


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


# ----------------------------------------------------------------------------- list / prune


def listing(module):
    p = module.params
    if not os.path.isdir(p["dest_dir"]):
        raise ProdreadyError("dest_dir: %s does not exist or is not a directory" % p["dest_dir"])
    manifests = read_manifests(p["dest_dir"], module.warn)
    if p.get("db"):
        manifests = [m for m in manifests if m["db"] == p["db"]]
    return bf.newest_first(manifests)


def do_list(module, runner):
    started = time.time()
    backups = listing(module)
    return dict(changed=False, backups=backups, duration_s=round(time.time() - started, 3),
                executed_commands=runner.executed)


def do_prune(module, runner):
    p = module.params
    started = time.time()
    if p.get("keep") is None and p.get("keep_days") is None:
        raise ProdreadyError("keep: set keep and/or keep_days for mode prune")
    backups = listing(module)
    kept, pruned = bf.select_prune(backups, p.get("keep"), p.get("keep_days"), time.time())
    if not module.check_mode:
        for m in pruned:
            try:
                # Manifest first: a half-deleted backup must not look complete.
                os.unlink(m["path"] + bf.MANIFEST_SUFFIX)
                remove_path(m["path"])
            except OSError as exc:
                raise ProdreadyError("cannot delete backup %s: %s" % (m["path"], to_native(exc)))
    return dict(changed=bool(pruned), pruned=[m["path"] for m in pruned],
                kept=[m["path"] for m in kept], backups=kept,
                duration_s=round(time.time() - started, 3), executed_commands=runner.executed)


# ----------------------------------------------------------------------------- main


MODES = {"backup": do_backup, "restore": do_restore, "verify": do_verify, "list": do_list,
         "prune": do_prune}


def run(module):
    """Dispatch on `mode`; returns the result dict."""
    return MODES[module.params["mode"]](module, Runner(module))


def argument_spec():
    spec = postgres_connection_argument_spec()
    spec.update(
        mode=dict(type="str", default="backup", choices=list(MODES)),
        dest_dir=dict(type="path"),
        format=dict(type="str", default="custom", choices=list(bf.FORMATS)),
        compress=dict(type="int"),
        jobs=dict(type="int"),
        scope=dict(type="str", default="full", choices=list(bf.SCOPES)),
        tables=dict(type="list", elements="str", default=[]),
        exclude_tables=dict(type="list", elements="str", default=[]),
        clean=dict(type="bool", default=False),
        if_exists=dict(type="bool", default=True),
        no_owner=dict(type="bool", default=False),
        label=dict(type="str"),
        verify=dict(type="bool", default=True),
        row_count_tables=dict(type="list", elements="str", default=[]),
        src=dict(type="str"),
        target_db=dict(type="str"),
        create_target=dict(type="bool", default=False),
        single_transaction=dict(type="bool", default=False),
        swap=dict(type="bool", default=False),
        keep=dict(type="int", no_log=False),
        keep_days=dict(type="float", no_log=False),
        bin_dir=dict(type="path"),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[
            ("mode", "backup", ("db", "dest_dir")),
            ("mode", "restore", ("src",)),
            ("mode", "verify", ("src",)),
            ("mode", "list", ("dest_dir",)),
            ("mode", "prune", ("dest_dir",)),
            ("mode", "prune", ("keep", "keep_days"), True),
        ],
    )
    if not HAS_PSYCOPG2 and module.params["mode"] in ("backup", "restore"):
        module.fail_json(msg=missing_required_lib("psycopg2"),
                         exception=to_native(PSYCOPG2_IMPORT_ERROR))
    try:
        module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)
    except DB_ERRORS as e:
        module.fail_json(msg="pg_backup %s: database error: %s"
                         % (module.params["mode"], to_native(e).strip()))
    except (IOError, OSError) as e:
        module.fail_json(msg="pg_backup %s: %s" % (module.params["mode"], to_native(e)))


if __name__ == "__main__":
    main()
