# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: status_table
short_description: The hosts' deploy status as the lines of a text table
version_added: 0.1.0
description:
  - One row per host (live color and version, idle color and what it answers, the lock holder,
    the last run), then each host's interrupted runs and last deploys, rollbacks and reverts;
    what C(playbooks/status.yml) prints.
author:
  - prodready.deploy maintainers (@prodready)
options:
  _input:
    description: Host name -> the C(status) that M(prodready.deploy.deploy_status) returned.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Print the table
  ansible.builtin.debug:
    msg: "{{ {'web1': web1_status.status} | prodready.deploy.status_table }}"
"""

RETURN = r"""
_value:
  description: The lines of the table.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.prodready.deploy.plugins.module_utils import _status


def status_table(statuses):
    """The lines of the status table of `statuses` (host -> deploy_status's status)."""
    if not isinstance(statuses, dict):
        raise AnsibleFilterError("status_table: expects a dict of host -> status, got %s" % type(statuses).__name__)
    return _status.table(statuses)


class FilterModule(object):
    def filters(self):
        return {"status_table": status_table}
