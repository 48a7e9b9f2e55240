# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup's modes ``verify`` and ``restore`` (into an existing or new database, no swap).

Both start from a stored backup (``source``: a path, ``latest`` or a label, its format
from the manifest or the extension) and check its sha256 against the manifest before
anything else. A restore then runs ``pg_restore`` or ``psql -v ON_ERROR_STOP=1`` into
``target_db`` (created from template0 with ``create_target``) and counts rows after it.
The restore that replaces a database by rename is ``_pg_swap``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_files as bf
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_store as store
from ansible_collections.prodready.deploy.plugins.module_utils import _pg_client as client
from ansible_collections.prodready.deploy.plugins.module_utils._pg_programs import (
    check_restore_jobs, restore_argv, restore_program)
from ansible_collections.prodready.deploy.plugins.module_utils._postgres import ClientEnv


def source(module):
    """(path, manifest or None, format, gzip) of the backup `src` names, checked for `jobs`."""
    p = module.params
    path, manifest = store.resolve_backup(module, p["src"])
    fmt, is_gzip = store.source_format(path, manifest)
    check_restore_jobs(p, path, fmt)
    return path, manifest, fmt, is_gzip


def restore_command(runner, p, path, fmt, is_gzip, target):
    """argv of the restore into `target`; an uncompressed SQL file is given to psql as ``--file``."""
    argv = restore_argv(runner.bin(restore_program(fmt)), p, path, fmt, target)
    if fmt == "plain" and not is_gzip:
        argv.append("--file=%s" % path)
    return argv


def verify(module, runner):
    """Mode `verify`: sha256 against the manifest (when there is one) and the structure."""
    started = time.time()
    path, manifest = store.resolve_backup(module, module.params["src"])
    with ClientEnv(module.params) as client_env:
        fmt, is_gzip = (None, False) if manifest else store.source_format(path, None)
        digest, size, dummy = client.verify_backup(runner, path, manifest, client_env, fmt, is_gzip)
    if manifest is None:
        module.warn("%s has no manifest: its structure was checked but its sha256 cannot be "
                    "compared with a recorded one" % path)
    return dict(changed=False, path=path, manifest=bf.strip_path(manifest) if manifest else None,
                sha256=digest, size_bytes=size, verified=True,
                duration_s=round(time.time() - started, 3), executed_commands=runner.executed)


def restore(module, runner):
    """Mode `restore` without swap: restore into `target_db` (created if asked); the result dict."""
    p = module.params
    started = time.time()
    target = p.get("target_db") or p.get("db")
    path, manifest, fmt, is_gzip = source(module)

    with ClientEnv(p) as client_env:
        digest, size, dummy = client.verify_backup(runner, path, manifest, client_env, fmt, is_gzip)
        if manifest is None:
            module.warn("%s has no manifest: its sha256 cannot be checked" % path)
        conn = client.maintenance_connection(p, target)
        try:
            exists = client.database_exists(conn, target)
            created = False
            if exists and p["drop_target"]:
                raise ProdreadyError("drop_target: database %s exists; drop_target drops only a database "
                                     "this restore creates (choose a new target_db)" % target)
            if not exists:
                if not p["create_target"]:
                    raise ProdreadyError("target_db: database %s does not exist; set "
                                         "create_target: true to create it" % target)
                created = True
                if not module.check_mode:
                    client.create_database(conn, target)
        finally:
            conn.close()

        argv = restore_command(runner, p, path, fmt, is_gzip, target)
        if module.check_mode:
            runner.record(argv)
            return dict(changed=True, path=path, target_db=target, created_target=created,
                        manifest=bf.strip_path(manifest) if manifest else None, sha256=digest,
                        size_bytes=size, verified=True, row_counts={}, row_counts_match=None,
                        dropped_target=p["drop_target"], duration_s=round(time.time() - started, 3),
                        executed_commands=runner.executed)
        try:
            client.run_restore(runner, argv, path, fmt, is_gzip, client_env, target)
            counts, match = count_restored(p, manifest, target)
        finally:
            if p["drop_target"]:
                drop_created(p, target)

    return dict(changed=True, path=path, target_db=target, created_target=created,
                manifest=bf.strip_path(manifest) if manifest else None, sha256=digest,
                size_bytes=size, verified=True, row_counts=counts, row_counts_match=match,
                dropped_target=p["drop_target"], duration_s=round(time.time() - started, 3),
                executed_commands=runner.executed)


def count_restored(p, manifest, target):
    """(row counts in `target` of the tables the manifest counted, else of row_count_tables;
    whether they equal the manifest's, None without recorded counts)."""
    tables = list((manifest or {}).get("row_counts", {}).keys()) or p["row_count_tables"]
    counts, match = {}, None
    if tables:
        counts = client.count_rows_in(p, target, tables)
        expected = (manifest or {}).get("row_counts") or {}
        if expected:
            match = all(counts.get(k) == v for k, v in expected.items())
    return counts, match


def drop_created(p, target):
    """Drop the database this restore created (O(drop_target)), after it was counted or
    when the restore failed; its sessions are ours only."""
    from psycopg2 import sql
    conn = client.maintenance_connection(p, target)
    try:
        cur = conn.cursor()
        try:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(target)))
        except Exception as exc:
            raise ProdreadyError("drop_target: cannot drop %s: %s" % (target, to_native(exc).strip()))
        finally:
            cur.close()
    finally:
        conn.close()
