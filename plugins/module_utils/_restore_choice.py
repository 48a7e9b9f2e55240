# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which backup a rollback restores when the operator names one (the rollback role's
``rollback_backup``): pure logic, no I/O. The caller lists ``app_backup_dir`` on the backup
host (pg_backup ``mode: list``) and, for a path, says whether it exists.

A chosen backup must be one the database can be replaced with: in ``app_backup_dir``, of
the app's database, verified, full (no schema- or data-only dump, no table selection). Its
alembic revision (from its manifest) must be the one the release that will run on it needs,
when both are known: restored in place, the live release; with ``rollback_to`` the state's
``previous_version``, the revisions recorded before the last deploy. Every refusal names
``rollback_backup`` and says what is wrong, before anything is touched.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import posixpath

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_files as bf

OPTION = "rollback_backup"
# Labels named in the refusal of an unknown one.
LABELS_SHOWN = 5


def is_path(wanted):
    """True when `wanted` is given as a path (it holds a /), not as a label."""
    return "/" in (wanted or "")


def unusable(manifest):
    """Why the backup of `manifest` cannot replace its database ('' when it can)."""
    if not manifest.get("verified"):
        return "it is not verified (its manifest says verified: false)"
    if manifest.get("scope") != "full":
        return "it is a %s-only dump (scope %s), not a full backup" % (manifest.get("scope"), manifest.get("scope"))
    if manifest.get("tables"):
        return "it holds only the tables %s" % ", ".join(manifest["tables"])
    if manifest.get("exclude_tables"):
        return "it leaves out the tables %s" % ", ".join(manifest["exclude_tables"])
    return ""


def labels_newest_first(backups, db=None):
    """The labels of the backups that could be restored (of `db` when given), newest first, once each."""
    labels = []
    for manifest in bf.newest_first(backups):
        label = manifest.get("label")
        if label and label not in labels and not unusable(manifest) and (not db or manifest.get("db") == db):
            labels.append(label)
    return labels


def _labels_text(backups, db):
    labels = labels_newest_first(backups, db)
    if not labels:
        return "there is no labelled backup%s there" % (" of database %s" % db if db else "")
    more = len(labels) - LABELS_SHOWN
    return "labels there, newest first: %s%s" % (", ".join(labels[:LABELS_SHOWN]),
                                                 " (and %d older)" % more if more > 0 else "")


def _check_manifest(manifest, db, shown):
    if db and manifest.get("db") != db:
        raise ProdreadyError("%s: %s is a backup of database %s (its manifest says so), not of %s, this app's "
                             "database (app_database.db)" % (OPTION, shown, manifest.get("db"), db))
    problem = unusable(manifest)
    if problem:
        raise ProdreadyError("%s: %s cannot replace the database: %s" % (OPTION, shown, problem))


def choose_backup(wanted, backups, backup_dir, db=None, exists=False):
    """The backup `wanted` names, as dict(path, label, manifest, warnings), or ProdreadyError.

    `wanted` is a label (the newest usable backup with it) or an absolute path in
    `backup_dir`; `backups` are the manifests listed there (each with its `path`); `exists`
    says whether a path that has no manifest exists. Such a file (a hand-made dump) is
    restored after a warning: neither its database nor its checksum can be checked.
    """
    wanted = (wanted or "").strip()
    if not wanted:
        raise ProdreadyError("%s: empty; give a backup label or the path of a backup in app_backup_dir" % OPTION)
    directory = posixpath.normpath(backup_dir or "/")
    if not is_path(wanted):
        labelled = [m for m in bf.newest_first(backups) if m.get("label") == wanted]
        if not labelled:
            raise ProdreadyError("%s: no backup labelled %r in app_backup_dir %s; %s"
                                 % (OPTION, wanted, directory, _labels_text(backups, db)))
        ours = [m for m in labelled if not db or m.get("db") == db]
        usable = [m for m in ours if not unusable(m)]
        if not usable:
            shown = (ours or labelled)[0]
            _check_manifest(shown, db, "%r (%s)" % (wanted, shown["path"]))
        return dict(path=usable[0]["path"], label=wanted, manifest=usable[0], warnings=[])
    if not posixpath.isabs(wanted):
        raise ProdreadyError("%s: %r is neither a label nor an absolute path; give the full path of a backup in "
                             "app_backup_dir %s" % (OPTION, wanted, directory))
    path = posixpath.normpath(wanted)
    name = posixpath.basename(path)
    if posixpath.dirname(path) != directory:
        raise ProdreadyError("%s: %s is not in app_backup_dir %s; only the backups kept there are restored "
                             "(copy it there with its manifest)" % (OPTION, path, directory))
    if name.startswith("."):
        raise ProdreadyError("%s: %s is the temporary file of a backup that never finished" % (OPTION, path))
    if bf.is_manifest_name(name):
        raise ProdreadyError("%s: %s is a manifest; give the backup beside it, %s"
                             % (OPTION, path, path[:-len(bf.MANIFEST_SUFFIX)]))
    listed = [m for m in backups if posixpath.normpath(m["path"]) == path]
    if listed:
        _check_manifest(listed[0], db, path)
        return dict(path=path, label=listed[0].get("label"), manifest=listed[0], warnings=[])
    if not exists:
        raise ProdreadyError("%s: %s does not exist; %s" % (OPTION, path, _labels_text(backups, db)))
    return dict(path=path, label=None, manifest=None, warnings=[
        "%s: %s has no manifest: its database and its checksum cannot be checked, it is restored as it is"
        % (OPTION, path)])


def same_revisions(left, right):
    """Whether two alembic revision records (`a,b` strings or lists; None or '' = base) name the same heads."""
    def heads(value):
        parts = value if isinstance(value, (list, tuple)) else (value or "").split(",")
        return sorted(p.strip() for p in parts if p and p.strip())
    return heads(left) == heads(right)


def revisions_after(chosen, state, target, in_place, trees):
    """(revisions the database is at after the restore, warnings), or ProdreadyError when the
    backup's revision is known not to be the one of the release that will run on it.

    The release's revisions are known restored in place (the live ones, `db_revisions`) and
    for the state's `previous_version` (`db_revisions_before`); the backup's from its
    manifest, for an app with one alembic tree. An empty list: not known, not verified.
    """
    manifest = chosen.get("manifest") or {}
    # pg_backup records None when the database had no alembic_version table: base.
    known = "alembic_revision" in manifest
    revision = manifest.get("alembic_revision")
    if in_place:
        needed, release = state.get("db_revisions") or [], "the live release %s" % target
    elif target and target == state.get("previous_version"):
        needed, release = state.get("db_revisions_before") or [], "release %s" % target
    else:
        needed, release = [], ""
    shown = chosen.get("label") or chosen.get("path")
    if trees != 1 or not known:
        if trees == 0:
            return [], []
        return needed, ["%s: the alembic revision of %s is not known (%s): %s is started on it unchecked"
                        % (OPTION, shown, "no manifest" if not chosen.get("manifest") else
                           "more than one alembic tree" if trees > 1 else "not in its manifest",
                           release or "release %s" % target)]
    if needed and not same_revisions(revision, needed[0]):
        hint = "pick a backup taken at %s" % needed[0]
        if in_place and same_revisions(revision, (state.get("db_revisions_before") or [None])[0]) \
                and state.get("previous_version"):
            hint = ("it is the schema %s ran on: -e rollback_to=%s restores it with that release, or %s"
                    % (state["previous_version"], state["previous_version"], hint))
        raise ProdreadyError("%s: %s was taken at alembic revision %s, but %s runs on %s: it would start on a "
                             "schema it does not know; %s" % (OPTION, shown, revision or "base (no alembic_version)",
                                                              release, needed[0] or "base", hint))
    return [revision], []


def plan_restore(wanted, backups, backup_dir, db, exists, state, target, in_place, trees):
    """The restore of a chosen backup as the rollback role runs it: dict(path, label, db,
    revisions, warnings, problem). `problem` is the refusal ('' when there is none)."""
    try:
        chosen = choose_backup(wanted, backups, backup_dir, db, exists)
        revisions, warnings = revisions_after(chosen, state, target, in_place, trees)
    except ProdreadyError as exc:
        return dict(path=None, label=None, db=None, revisions=[], warnings=[], problem=str(exc))
    return dict(path=chosen["path"], label=chosen["label"], db=(chosen["manifest"] or {}).get("db"),
                revisions=revisions, warnings=chosen["warnings"] + warnings, problem="")
