# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: restore_choice
short_description: The backup a rollback restores when the operator names one, or why it cannot
version_added: 0.1.0
description:
  - The C(rollback) role's choice of C(rollback_backup), a backup label or the absolute path of a
    backup in C(app_backup_dir), among the backups M(prodready.deploy.pg_backup) C(mode=list)
    found there.
  - Refused, with a message naming C(rollback_backup) - an unknown label (the labels there are
    listed, newest first), a path outside the directory or missing, a backup of another database,
    one not verified or not full (schema- or data-only, selected tables), or one whose alembic
    revision is not the one of the release that will run on it (restored in place, the live
    release; with C(rollback_to) the previous version, the revisions recorded before the last deploy).
  - A path without a manifest (a hand-made dump) is accepted with a warning.
author:
  - prodready.deploy maintainers (@prodready)
positional: listing, backup_dir
options:
  _input:
    description: The label or the absolute path asked for.
    type: str
    required: true
  listing:
    description: The registered result of M(prodready.deploy.pg_backup) C(mode=list) of the directory (a failed one,
      or one without C(backups), is said).
    type: dict
    required: true
  backup_dir:
    description: The directory the backups are kept in (C(app_backup_dir)).
    type: str
    required: true
  db:
    description: The app's database; a backup of another one is refused. Empty - not checked.
    type: str
    default: ""
  exists:
    description: Whether the path asked for exists (a C(stat) on the backup host); only read for a path without a manifest.
    type: bool
    default: false
  state:
    description: The host's C(state.json) (C(db_revisions), C(db_revisions_before), C(previous_version)).
    type: dict
    default: {}
  target:
    description: The version that will run on the restored database.
    type: str
    default: ""
  in_place:
    description: Whether the version stays (the live release is restarted on the restored database).
    type: bool
    default: false
  trees:
    description: How many alembic trees the app has (C(app_alembic)); the revision is checked with one.
    type: int
    default: 1
"""

EXAMPLES = r"""
- name: Choose the backup to restore
  ansible.builtin.set_fact:
    choice: >-
      {{ rollback_backup | prodready.deploy.restore_choice(listing=backups, backup_dir=app_backup_dir,
         db=app_database.db, state=state, target=state.live_version, in_place=true) }}

- name: Refuse it
  ansible.builtin.fail:
    msg: "{{ choice.problem }}"
  when: choice.problem | length > 0
"""

RETURN = r"""
_value:
  description:
    - C(path), C(label) (V(null) for a path without one), C(db) (the manifest's), C(revisions) (the
      alembic revisions after the restore, one per tree; V([]) when not known), C(warnings) (list),
      C(problem) (the refusal, V('') when there is none).
  type: dict
"""

from ansible_collections.prodready.deploy.plugins.module_utils import _restore_choice


def restore_choice(wanted, listing, backup_dir, db="", exists=False, state=None, target="", in_place=False, trees=1):
    """The backup `wanted` names, planned for the restore (see _restore_choice.plan_restore)."""
    listing = listing or {}
    # Registered with failed_when false, a failed listing is one without `backups`.
    if listing.get("failed") or "backups" not in listing:
        return dict(path=None, label=None, db=None, revisions=[], warnings=[],
                    problem="%s: the backups in app_backup_dir %s could not be listed: %s"
                    % (_restore_choice.OPTION, backup_dir, listing.get("msg") or "?"))
    return _restore_choice.plan_restore(wanted, listing.get("backups") or [], backup_dir, db or None, bool(exists),
                                        state or {}, target or "", bool(in_place), int(trees))


class FilterModule(object):
    def filters(self):
        return {"restore_choice": restore_choice}
