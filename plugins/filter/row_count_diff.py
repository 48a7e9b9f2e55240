# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: row_count_diff
short_description: The tables whose restored row counts differ from a backup's manifest
version_added: 0.1.0
description:
  - Compares the row counts a backup's manifest recorded (taken in the dump's snapshot, so the
    live database at backup time) with the row counts counted after a restore, table by table.
  - Returns one entry per table that differs, sorted by table name, with a sentence saying it; a table the manifest counted
    but the restore did not has V(null) as C(restored), a table counted only after the restore
    has V(null) as C(backup). An empty list means every count matches.
  - The restore drill of C(playbooks/backup.yml) fails with these entries.
author:
  - prodready.deploy maintainers (@prodready)
positional: restored
options:
  _input:
    description: The manifest's row counts, a dict of table name to rows.
    type: dict
    required: true
  restored:
    description: The row counts after the restore, a dict of table name to rows.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Fail when the restore does not hold the rows the backup recorded
  ansible.builtin.fail:
    msg: "row counts differ: {{ _diff | map(attribute='text') | join('; ') }}"
  vars:
    _diff: "{{ restored.manifest.row_counts | prodready.deploy.row_count_diff(restored.row_counts) }}"
  when: _diff | length > 0
"""

RETURN = r"""
_value:
  description:
    - The differing tables, each a dict with C(table), C(backup), C(restored) and C(text), the sentence
      the drill prints (for example V(orders) then V(backup 3, restored 2); V(none) for a table not counted).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError


def _rows(count):
    return "none" if count is None else count


def row_count_diff(backup, restored):
    """[{table, backup, restored, text}] of the tables whose counts differ, sorted by table."""
    for name, value in (("input", backup), ("restored", restored)):
        if not isinstance(value, dict):
            raise AnsibleFilterError("row_count_diff: %s must be a dict of table -> row count, got %s"
                                     % (name, type(value).__name__))
    out = []
    for table in sorted(set(backup) | set(restored)):
        expected, actual = backup.get(table), restored.get(table)
        if expected != actual:
            out.append(dict(table=table, backup=expected, restored=actual,
                            text="%s: backup %s, restored %s" % (table, _rows(expected), _rows(actual))))
    return out


class FilterModule(object):
    def filters(self):
        return {"row_count_diff": row_count_diff}
