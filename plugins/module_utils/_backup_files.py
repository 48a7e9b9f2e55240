# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of pg_backup: backup names, manifests, reuse and retention. No I/O here.

A backup is a file (or a directory for the `directory` format) plus a JSON manifest beside
it named ``<backup>.manifest.json``. The manifest is written last: a backup without a
valid manifest is incomplete and is never listed, reused, restored as `latest` or counted
by retention.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import fnmatch
import hashlib
import os
import re

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_VERSION = 1
FORMATS = ("custom", "directory", "plain", "tar")
SCOPES = ("full", "schema", "data")
FORMAT_EXTENSIONS = {"custom": ".dump", "directory": ".dir", "tar": ".tar", "plain": ".sql"}
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"

# Keys a manifest must carry, with their types, for the backup to be usable.
REQUIRED_MANIFEST_KEYS = {
    "manifest_version": int,
    "name": str,
    "db": str,
    "format": str,
    "scope": str,
    "sha256": str,
    "size_bytes": int,
    "finished": str,
    "finished_epoch": (int, float),
    "verified": bool,
}


def validate_label(label):
    """Return `label` if usable in a file name, else raise ProdreadyError naming the rule."""
    if label is None:
        return None
    if not LABEL_RE.match(label):
        raise ProdreadyError(
            "label: %r is not a valid label; use 1-100 characters from A-Z a-z 0-9 . _ - "
            "starting with a letter or digit" % (label,))
    return label


def safe_name_part(value):
    """A database name made safe for a file name (anything unusual becomes `_`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", value) or "_"


def backup_extension(fmt, gzip=False):
    """File extension of a backup: .dump, .dir, .tar, .sql or .sql.gz."""
    if fmt not in FORMAT_EXTENSIONS:
        raise ProdreadyError("format: %r is not one of %s" % (fmt, ", ".join(FORMATS)))
    ext = FORMAT_EXTENSIONS[fmt]
    if fmt == "plain" and gzip:
        ext += ".gz"
    return ext


def backup_name(db, scope, fmt, when, label=None, gzip=False):
    """Name of a new backup: ``<db>_<scope>[_<label>]_<UTC timestamp><ext>``.

    `when` is a timezone-aware or naive-UTC datetime. Sorting names of one db and label
    sorts them by time, and the name alone tells what the file holds.
    """
    parts = [safe_name_part(db), scope]
    if label:
        parts.append(validate_label(label))
    parts.append(when.strftime(TIMESTAMP_FORMAT))
    return "_".join(parts) + backup_extension(fmt, gzip)


def unique_name(name, existing):
    """`name`, or `name` with `-2`, `-3`... before the extension if already in `existing`."""
    if name not in existing:
        return name
    stem, dot, ext = name.partition(".")
    n = 2
    while True:
        candidate = "%s-%d%s%s" % (stem, n, dot, ext)
        if candidate not in existing:
            return candidate
        n += 1


def temp_name(name, token):
    """Hidden temporary name in the same directory; renamed to `name` when complete."""
    return ".%s.tmp-%s" % (name, token)


def manifest_name(name):
    """Name of the manifest beside the backup `name`."""
    return name + MANIFEST_SUFFIX


def is_manifest_name(name):
    """True for a manifest file name (hidden temporary files excluded)."""
    return name.endswith(MANIFEST_SUFFIX) and not name.startswith(".")


def backup_name_of_manifest(name):
    """The backup name a manifest file name belongs to."""
    return name[:-len(MANIFEST_SUFFIX)]


def infer_format(name):
    """(format, gzip) of a backup made without a manifest, from its extension, or None."""
    if name.endswith(".sql.gz"):
        return ("plain", True)
    for fmt, ext in FORMAT_EXTENSIONS.items():
        if name.endswith(ext):
            return (fmt, False)
    if name.endswith((".backup", ".pgdump")):
        return ("custom", False)
    return None


def utc_datetime(epoch):
    """The naive UTC datetime of a POSIX time (what backup_name and swap_db_names stamp)."""
    return datetime.datetime.utcfromtimestamp(epoch)


def iso_utc(epoch):
    """ISO 8601 UTC timestamp (seconds) of a POSIX time."""
    return utc_datetime(epoch).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_manifest(name, db, fmt, scope, sha256, size_bytes, started_epoch, finished_epoch,
                   verified, label=None, gzip=False, compress=None, tables=None,
                   exclude_tables=None, server_version=None, pg_dump_version=None,
                   row_counts=None, alembic_revision=None, verify_method=None,
                   sha256_method="file", jobs=None):
    """The manifest dict written beside a backup (see the pg_backup RETURN `manifest`)."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "name": name,
        "db": db,
        "label": label,
        "format": fmt,
        "gzip": bool(gzip),
        "compress": compress,
        "scope": scope,
        "tables": list(tables or []),
        "exclude_tables": list(exclude_tables or []),
        "jobs": jobs,
        "sha256": sha256,
        "sha256_method": sha256_method,
        "size_bytes": int(size_bytes),
        "server_version": server_version,
        "pg_dump_version": pg_dump_version,
        "started": iso_utc(started_epoch),
        "finished": iso_utc(finished_epoch),
        "started_epoch": round(started_epoch, 3),
        "finished_epoch": round(finished_epoch, 3),
        "duration_s": round(finished_epoch - started_epoch, 3),
        "row_counts": dict(row_counts or {}),
        "alembic_revision": alembic_revision,
        "verified": bool(verified),
        "verify_method": verify_method,
    }


def strip_path(manifest):
    """A manifest as returned to the user: the dict read from disk minus the `path` added to it."""
    return dict((k, v) for k, v in manifest.items() if k != "path")


def manifest_problems(manifest):
    """List of what is wrong with a manifest dict (empty when it is usable)."""
    if not isinstance(manifest, dict):
        return ["manifest is not a JSON object"]
    problems = []
    for key, typ in sorted(REQUIRED_MANIFEST_KEYS.items()):
        if key not in manifest:
            problems.append("missing key %s" % key)
        elif not isinstance(manifest[key], typ) or (typ is int and isinstance(manifest[key], bool)):
            problems.append("key %s has type %s" % (key, type(manifest[key]).__name__))
    if not problems:
        if manifest["manifest_version"] > MANIFEST_VERSION:
            problems.append("manifest_version %d is newer than this module (%d)"
                            % (manifest["manifest_version"], MANIFEST_VERSION))
        if manifest["format"] not in FORMATS:
            problems.append("unknown format %r" % manifest["format"])
        if manifest["scope"] not in SCOPES:
            problems.append("unknown scope %r" % manifest["scope"])
        if not re.match(r"^[0-9a-f]{64}$", manifest["sha256"]):
            problems.append("sha256 is not 64 hex digits")
    return problems


def newest_first(manifests):
    """Manifests sorted newest first (by finished time, then name for a stable order)."""
    return sorted(manifests, key=lambda m: (m["finished_epoch"], m["name"]), reverse=True)


def same_backup_request(manifest, request):
    """True when an existing manifest was made with the same db/format/scope/tables as `request`."""
    keys = ("db", "format", "scope", "gzip")
    if any(manifest.get(k) != request.get(k) for k in keys):
        return False
    return (sorted(manifest.get("tables") or []) == sorted(request.get("tables") or [])
            and sorted(manifest.get("exclude_tables") or []) == sorted(request.get("exclude_tables") or []))


def find_reusable(manifests, request):
    """The newest verified manifest with the request's label and parameters, or None.

    Raises ProdreadyError when the label is already used by a backup of the same database
    made with other parameters: reusing it would silently hand back something else.
    """
    label = request.get("label")
    if not label:
        return None
    same_label = [m for m in newest_first(manifests)
                  if m.get("label") == label and m.get("db") == request.get("db")]
    for m in same_label:
        if not same_backup_request(m, request):
            raise ProdreadyError(
                "label: %r is already used by backup %s (format %s, scope %s, tables %s); "
                "use another label or the same backup parameters"
                % (label, m["name"], m["format"], m["scope"], m.get("tables") or "all"))
    for m in same_label:
        if m.get("verified"):
            return m
    return None


def resolve_src(manifests, src, db=None):
    """Manifest a restore/verify `src` of `latest` or a label refers to, or None.

    `latest` is the newest verified backup (of `db` when given); a label is the newest
    verified backup with that label. A path is not resolved here (returns None).
    """
    candidates = [m for m in newest_first(manifests) if m.get("verified")
                  and (db is None or m.get("db") == db)]
    if src == "latest":
        return candidates[0] if candidates else None
    for m in candidates:
        if m.get("label") == src:
            return m
    return None


def is_protected(manifest, protect):
    """True when a pattern of `protect` names the backup: a glob over its label
    (``pre-*``) or its path (a pattern with a ``/``)."""
    for pattern in protect or ():
        if os.path.sep in pattern:
            if fnmatch.fnmatchcase(manifest.get("path") or "", pattern):
                return True
        elif manifest.get("label") and fnmatch.fnmatchcase(manifest["label"], pattern):
            return True
    return False


def select_prune(manifests, keep=None, keep_days=None, now_epoch=None, protect=()):
    """Split manifests into (kept, pruned), both newest first.

    A backup is kept when it is one of the `keep` newest, or younger than `keep_days`
    days (a union, as restic's keep rules), and the newest verified backup is always kept.
    A backup `protect` names (``is_protected``) is always kept and not counted by `keep`.
    With neither `keep` nor `keep_days`, nothing is pruned.
    """
    ordered = newest_first(manifests)
    if keep is None and keep_days is None:
        return ordered, []
    if keep is not None and keep < 0:
        raise ProdreadyError("keep: must be >= 0, got %d" % keep)
    if keep_days is not None and keep_days < 0:
        raise ProdreadyError("keep_days: must be >= 0, got %s" % keep_days)
    newest_verified = next((m for m in ordered if m.get("verified")), None)
    kept, pruned = [], []
    index = -1
    for m in ordered:
        if is_protected(m, protect):
            kept.append(m)
            continue
        index += 1
        by_count = keep is not None and index < keep
        by_age = keep_days is not None and now_epoch is not None and \
            (now_epoch - m["finished_epoch"]) < keep_days * 86400.0
        if by_count or by_age or m is newest_verified:
            kept.append(m)
        else:
            pruned.append(m)
    return kept, pruned


def redact_argv(argv, secrets):
    """argv with every secret value replaced by `********` (for executed_commands)."""
    out = []
    for arg in argv:
        for secret in secrets:
            if secret:
                arg = arg.replace(secret, "********")
        out.append(arg)
    return out


def split_table_name(name):
    """(schema, table) of `schema.table` or `table` (schema None)."""
    if not name or name.count(".") > 1 or name.startswith(".") or name.endswith("."):
        raise ProdreadyError("row_count_tables: %r is not `table` or `schema.table`" % (name,))
    if "." in name:
        schema, table = name.split(".", 1)
        return schema, table
    return None, name


# PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes, silently: two long names
# could then collide, so swap names are shortened here, with a hash keeping them distinct.
PG_MAX_IDENTIFIER = 63


def swap_db_names(db, when):
    """(fresh, replaced) database names of a restore-with-swap of `db` started at `when`.

    The backup is restored into `<db>_restore_<stamp>`, and `db` is then renamed to
    `<db>_replaced_<stamp>` (kept, never dropped). Names longer than 63 bytes would be
    truncated by PostgreSQL, so `db` is shortened and suffixed with a short hash of it.
    """
    if not db:
        raise ProdreadyError("db: the database to replace is required for a swap")
    stamp = when.strftime(TIMESTAMP_FORMAT)
    names = []
    for kind in ("restore", "replaced"):
        suffix = "_%s_%s" % (kind, stamp)
        base = db
        if len((base + suffix).encode("utf-8")) > PG_MAX_IDENTIFIER:
            digest = hashlib.sha256(db.encode("utf-8")).hexdigest()[:6]
            room = PG_MAX_IDENTIFIER - len(suffix) - len(digest) - 1
            head = db.encode("utf-8")[:room].decode("utf-8", "ignore")
            base = "%s_%s" % (head, digest)
        names.append(base + suffix)
    return names[0], names[1]


def discarded_rows(replaced, restored):
    """{table: rows a restore discarded}, over every table: rows in the `replaced` database
    beyond those in the `restored` one, and every row of a table the restore does not have
    (made after the backup). Tables with nothing discarded are left out."""
    out = {}
    for name in sorted(replaced):
        lost = replaced[name] - restored.get(name, 0)
        if lost > 0:
            out[name] = lost
    return out


def row_count_delta(before, after):
    """{table: rows in `before` minus rows in `after`} for tables counted in both.

    For a restore-with-swap, `before` is the replaced database (just before the swap) and
    `after` the restored one: a positive number is rows written after the backup that the
    restore discards; a negative one, rows deleted after the backup that it brings back.
    """
    return dict((name, before[name] - after[name]) for name in sorted(before) if name in after)
