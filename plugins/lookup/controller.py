# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: controller
short_description: The controller running this play - its host name and the ansible-playbook process
version_added: 0.1.0
description:
  - Returns one dict, C(host) (the controller's host name), C(pid) (the process id of the
    C(ansible-playbook) run, not of the worker templating the task) and C(user).
  - The deploy lock records it, so that a later run can judge the lock - stale when that
    process is gone on the same host - instead of trusting its age alone.
author:
  - prodready.deploy maintainers (@prodready)
"""

EXAMPLES = r"""
- name: Who runs this play
  ansible.builtin.debug:
    msg: "{{ lookup('prodready.deploy.controller') }}"
"""

RETURN = r"""
_raw:
  description: One dict with C(host), C(pid) and C(user).
  type: list
  elements: dict
"""

import getpass
import multiprocessing
import os
import socket

from ansible.plugins.lookup import LookupBase


def playbook_pid():
    """The pid of the ansible-playbook process: a task is templated in a worker process that
    multiprocessing forked from it (its parent), or in that process itself."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid else os.getpid()


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        try:
            user = getpass.getuser()
        except Exception:  # neither the environment nor the password database knows the uid
            user = str(os.getuid())
        return [dict(host=socket.gethostname(), pid=playbook_pid(), user=user)]
