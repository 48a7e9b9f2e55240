# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup's mode ``backup``: one dump into the backup store, or the reuse of one.

The steps, in order: a verified backup with the same label and parameters is reused
(``changed=false``); else the server's version is checked against pg_dump's, row counts
are taken in a snapshot exported to pg_dump, the dump is written under a hidden
temporary name, verified, renamed to its final name, and its manifest is written last
(a backup without a manifest is never listed, reused or restored). Check mode names the
file it would write and runs nothing but reads.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_files as bf
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_store as store
from ansible_collections.prodready.deploy.plugins.module_utils import _pg_client as client
from ansible_collections.prodready.deploy.plugins.module_utils._pg_programs import dump_argv
from ansible_collections.prodready.deploy.plugins.module_utils._postgres import ClientEnv, connect


def reuse_labelled(module, runner, request, client_env, started):
    """The result of reusing a verified backup made with the same label and parameters, or None.

    A candidate that fails verification now is warned about and not reused.
    """
    reusable = bf.find_reusable(store.read_manifests(module.params["dest_dir"], module.warn), request)
    if reusable is None:
        return None
    try:
        digest, size, dummy = client.verify_backup(runner, reusable["path"], reusable, client_env)
    except ProdreadyError as exc:
        module.warn("backup %s with label %s is not reusable (%s); dumping again"
                    % (reusable["path"], module.params["label"], exc))
        return None
    return dict(changed=False, reused=True, path=reusable["path"],
                manifest=bf.strip_path(reusable), size_bytes=size, sha256=digest,
                verified=True, row_counts=reusable.get("row_counts") or {},
                duration_s=round(time.time() - started, 3),
                executed_commands=runner.executed)


def backup(module, runner):
    """Mode `backup`: dump `db` into `dest_dir` (or reuse a labelled backup); the result dict."""
    p = module.params
    started = time.time()
    dest_dir = p["dest_dir"]
    gzip_plain = p["format"] == "plain" and bool(p.get("compress"))
    request = dict(db=p["db"], label=p.get("label"), format=p["format"], scope=p["scope"],
                   gzip=gzip_plain, tables=p["tables"], exclude_tables=p["exclude_tables"])
    store.prepare_dest_dir(module, dest_dir, create=not module.check_mode)

    with ClientEnv(p) as client_env:
        reused = reuse_labelled(module, runner, request, client_env, started)
        if reused is not None:
            return reused

        conn = connect(p)
        try:
            version, major = client.server_info(conn)
            dump_version, dump_major = client.client_major(runner, "pg_dump")
            if dump_major is not None and dump_major < major:
                raise ProdreadyError(
                    "pg_dump %s (%s) is older than the server (%s); set bin_dir to the "
                    "PostgreSQL %d client programs" % (dump_version, runner.bin("pg_dump"),
                                                       version, major))
            revision = client.alembic_revision(conn)
            now = time.time()
            names = set(os.listdir(dest_dir)) if os.path.isdir(dest_dir) else set()
            name = bf.unique_name(bf.backup_name(p["db"], p["scope"], p["format"],
                                                 bf.utc_datetime(now), p.get("label"), gzip_plain), names)
            final = os.path.join(dest_dir, name)
            if module.check_mode:
                runner.record(dump_argv(runner.bin("pg_dump"), p, final, None))
                return dict(changed=True, reused=False, path=final, manifest=None,
                            size_bytes=0, sha256=None, verified=False, row_counts={},
                            duration_s=round(time.time() - started, 3),
                            executed_commands=runner.executed)

            snapshot, counts = None, {}
            if p["row_count_tables"]:
                # Count in the very snapshot pg_dump dumps, so counts match the backup.
                snapshot = client.export_snapshot(conn)
                tables = client.user_tables(conn) if p["row_count_tables"] == ["*"] else p["row_count_tables"]
                counts = client.count_rows(conn, tables)

            tmp = os.path.join(dest_dir, bf.temp_name(name, "%d" % os.getpid()))
            try:
                digest, size = client.run_dump(runner, p, tmp, snapshot, gzip_plain, client_env)
            except BaseException:
                store.remove_path(tmp)
                raise
        finally:
            conn.close()

        try:
            method = None
            if p["verify"]:
                method = client.verify_structure(runner, tmp, p["format"], gzip_plain, client_env)
            if os.path.lexists(final):
                raise ProdreadyError("refusing to overwrite %s" % final)
            os.rename(tmp, final)
        except BaseException:
            store.remove_path(tmp)
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
            store.write_json_atomic(final + bf.MANIFEST_SUFFIX, manifest)
        except (IOError, OSError) as exc:
            store.remove_path(final)
            raise ProdreadyError("cannot write manifest for %s: %s" % (final, to_native(exc)))
        return dict(changed=True, reused=False, path=final, manifest=manifest, size_bytes=size,
                    sha256=digest, verified=bool(p["verify"]), row_counts=counts,
                    duration_s=round(finished - started, 3), executed_commands=runner.executed)
