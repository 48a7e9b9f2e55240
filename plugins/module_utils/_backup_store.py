# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup store of pg_backup on disk: the I/O half beside ``_backup_files`` (pure).

- checksums of a backup file or directory (``checksum``), and ``HashingWriter`` to hash
  a stream while it is written;
- files and directories kept private (``restrict_tree``, 0600 / 0700), removed whole
  (``remove_path``), manifests written atomically (``write_json_atomic``);
- the manifests of a directory (``read_manifests``) and the one beside a backup
  (``load_manifest_for``), a restore or verify ``src`` resolved to a backup
  (``resolve_backup``: a path, ``latest`` or a label), ``dest_dir`` prepared;
- the modes that only read or delete the store: ``list_backups`` and ``prune_backups``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import shutil
import tempfile
import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_files as bf

CHUNK = 1024 * 1024


# ----------------------------------------------------------------------------- checksums


class HashingWriter(object):
    """File-like object that writes through to `fh` and hashes/counts what it writes."""

    def __init__(self, fh):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data):
        """Hash and count `data`, then write it to the underlying file."""
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self):
        """Flush the underlying file."""
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


# ----------------------------------------------------------------------------- files


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


# ----------------------------------------------------------------------------- manifests


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


def source_format(path, manifest):
    """(format, gzip) of a backup to restore or verify: its manifest's, else inferred.

    A directory is the directory format; a file without a manifest is known by its
    extension, and one the extension does not tell is refused.
    """
    if manifest is not None:
        return manifest["format"], manifest.get("gzip", False)
    inferred = bf.infer_format(os.path.basename(path.rstrip(os.path.sep)))
    if os.path.isdir(path):
        return "directory", False
    if inferred is None:
        raise ProdreadyError("src: %s has no manifest and its format cannot be inferred from "
                             "the extension (.dump, .dir, .tar, .sql, .sql.gz)" % path)
    return inferred


# ----------------------------------------------------------------------------- list / prune


def listing(module):
    """The backups of `dest_dir` (of `db` when set), newest first; a missing dir is an error."""
    p = module.params
    if not os.path.isdir(p["dest_dir"]):
        raise ProdreadyError("dest_dir: %s does not exist or is not a directory" % p["dest_dir"])
    manifests = read_manifests(p["dest_dir"], module.warn)
    if p.get("db"):
        manifests = [m for m in manifests if m["db"] == p["db"]]
    return bf.newest_first(manifests)


def list_backups(module, executed):
    """Mode `list`: the backups, newest first; nothing is changed."""
    started = time.time()
    backups = listing(module)
    return dict(changed=False, backups=backups, duration_s=round(time.time() - started, 3),
                executed_commands=executed)


def prune_backups(module, executed):
    """Mode `prune`: delete the backups beyond `keep` / `keep_days` (only name them in check mode).

    A backup's manifest is deleted before the backup, so a half-deleted one never looks
    complete.
    """
    p = module.params
    started = time.time()
    backups = listing(module)
    kept, pruned = bf.select_prune(backups, p.get("keep"), p.get("keep_days"), time.time(), p.get("protect") or ())
    if not module.check_mode:
        for m in pruned:
            try:
                os.unlink(m["path"] + bf.MANIFEST_SUFFIX)
                remove_path(m["path"])
            except OSError as exc:
                raise ProdreadyError("cannot delete backup %s: %s" % (m["path"], to_native(exc)))
    return dict(changed=bool(pruned), pruned=[m["path"] for m in pruned],
                kept=[m["path"] for m in kept], backups=kept,
                duration_s=round(time.time() - started, 3), executed_commands=executed)
