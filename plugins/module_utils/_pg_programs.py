# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL client programs' side of pg_backup that needs no I/O.

The argv of ``pg_dump``, ``pg_restore`` and ``psql`` built from the module's options
(never a password: ``_postgres.ClientEnv`` passes it by a 0600 file), the options a
restore cannot honour for a given backup, a client's version read from its
``--version`` text, the trailer that ends a complete plain SQL dump, and the tail of a
program's error output for messages. ``_pg_client`` runs the programs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import signal

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

STDERR_LIMIT = 4000
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"


def tail(text, limit=STDERR_LIMIT):
    """Last `limit` characters of a program's error output, stripped."""
    text = to_native(text or "").strip()
    return text[-limit:] if len(text) > limit else text


# Signals a client program is killed by when a limit is hit, and what that limit is.
SIGNAL_CAUSES = {
    "SIGXFSZ": "the file size limit (ulimit -f) was exceeded",
    "SIGXCPU": "the CPU time limit (ulimit -t) was exceeded",
    "SIGKILL": "killed (out of memory, or by an operator)",
    "SIGSEGV": "crashed",
    "SIGPIPE": "its output was closed",
    "SIGTERM": "terminated",
}


def exit_text(rc, output):
    """Why a client program failed, from its return code and output: a negative `rc` is the
    signal that killed it (run_command's convention), named with its usual cause."""
    if rc is not None and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = "signal %d" % -rc
        cause = SIGNAL_CAUSES.get(name)
        what = "killed by %s%s" % (name, (": " + cause) if cause else "")
    else:
        what = "rc=%s" % rc
    text = tail(output)
    return "%s; %s" % (what, text) if text else "%s, no output" % what


def parse_client_version(text):
    """(version string, major int) of a client's ``--version`` output; (text, None) when it has no number."""
    match = re.search(r"\(PostgreSQL\)\s+([0-9]+(?:\.[0-9]+)*)", text) or \
        re.search(r"([0-9]+(?:\.[0-9]+)*)", text)
    if not match:
        return text.strip(), None
    return match.group(1), int(match.group(1).split(".")[0])


def connection_argv(db):
    """Non-secret connection arguments; host/port/user go by environment."""
    return ["--dbname=%s" % db]


def dump_argv(pg_dump, p, target_path, snapshot):
    """argv of `pg_dump` (the program's path) for the module options `p`.

    `target_path` is the file, directory or FIFO it writes (``--file``); `snapshot` an
    exported snapshot to dump in (``--snapshot``), or None.
    """
    fmt = p["format"]
    argv = [pg_dump, "--format=%s" % fmt]
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
    argv += connection_argv(p["db"])
    return argv


def restore_program(fmt):
    """The program that restores a backup of format `fmt`: psql for plain SQL, else pg_restore."""
    return "psql" if fmt == "plain" else "pg_restore"


def restore_argv(program, p, path, fmt, target):
    """argv restoring the backup `path` (format `fmt`) into database `target`.

    `program` is the path of ``restore_program(fmt)``. Plain SQL runs through psql with
    ``ON_ERROR_STOP=1`` and gets its input later (``--file``, a file or a FIFO); the
    archive formats go to pg_restore, which stops at the first error.
    """
    if fmt == "plain":
        argv = [program, "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
                "--dbname=%s" % target]
        if p["single_transaction"]:
            argv.append("--single-transaction")
        return argv
    argv = [program, "--dbname=%s" % target, "--exit-on-error"]
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


def check_trailer(path, last_bytes):
    """Raise unless `last_bytes` (the end of a plain SQL dump) hold pg_dump's completion trailer."""
    if PLAIN_TRAILER not in last_bytes:
        raise ProdreadyError("backup %s failed verification: the SQL does not end with "
                             "'PostgreSQL database dump complete' (truncated dump?)" % path)
