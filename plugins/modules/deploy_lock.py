# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: deploy_lock
short_description: Take or release a per-app deploy lock on a host
version_added: 0.1.0
description:
  - Makes sure only one deploy runs at a time for an application on a host. The lock is a
    file holding a JSON record (C(owner), C(run_id), C(since) in ISO 8601 UTC, C(since_epoch),
    C(host), C(pid)), mode C(0600).
  - The file is created atomically and exclusively (written to a temporary file, then
    hard-linked to O(path), which fails when the lock exists; C(O_CREAT|O_EXCL) where hard
    links are not supported), so of two runs racing for the lock exactly one wins.
  - Taking a lock this run (same O(run_id)) already holds changes nothing, so the lock task
    can run again in a later play of the same run.
  - A lock held by another run is waited for, polling every 0.2 seconds, up to O(lock_timeout);
    then the module fails naming the holder, its run and since when it holds the lock.
  - A lock older than O(stale_after) seconds is stale (its run most likely died). It is only
    broken with O(break_stale=true); otherwise the module fails and says so.
  - A lock that names its O(controller) is judged by its holder rather than its age; it is
    taken over at once (RV(broke_stale) with its C(takeover) reason) when that controller
    ran on this host and its ansible-playbook process is gone, or when its heartbeat is older
    than O(heartbeat_timeout). The heartbeat is the lock file's modification time; every
    module of this collection touches it while it works for the run that holds the lock
    (the roles name the lock and the run in the environment variables C(PRODREADY_LOCK_FILE)
    and C(PRODREADY_LOCK_RUN_ID) of their tasks).
author:
  - prodready.deploy maintainers (@prodready)
options:
  path:
    description:
      - The lock file, for example C(/srv/app/deploy.lock). Its directory must exist.
    type: path
    required: true
  state:
    description:
      - V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  run_id:
    description:
      - Identifies this run, the same for every task of the run (the blue_green role uses one
        id per playbook run). Only the run that took the lock releases it.
    type: str
    required: true
  owner:
    description:
      - Who holds the lock, shown to whoever waits for it.
      - Defaults to C(<login name>@<host name>) of the user running the module.
    type: str
  lock_timeout:
    description:
      - Seconds to wait for a lock held by another run before failing. V(0) fails at once.
      - The same option as in M(prodready.deploy.deploy_begin), M(prodready.deploy.rollback_start)
        and M(prodready.deploy.alembic_migrate).
      - C(timeout) is a deprecated alias, to be removed in 2.0.0.
    type: float
    default: 0
    aliases: [timeout]
  stale_after:
    description:
      - Seconds after which a lock held by another run is considered stale.
    type: float
    default: 3600
  break_stale:
    description:
      - Break a stale lock (older than O(stale_after)) and take it. The old holder's record
        is returned in RV(broke_stale).
    type: bool
    default: false
  controller:
    description:
      - The controller running the play, as the lookup C(prodready.deploy.controller) returns
        it (C(host), C(pid) of ansible-playbook, C(user)), recorded in the lock so that a
        later run can judge it by its holder (see O(heartbeat_timeout)).
    type: dict
  heartbeat_timeout:
    description:
      - Seconds without a heartbeat after which a lock that names its controller is taken
        over. V(0) judges such locks by their age only (O(stale_after)).
      - While a step runs on one host only (a migration, a backup), the locks of the other
        hosts are not touched; give more than the longest such step.
    type: float
    default: 900
  force:
    description:
      - Take (O(state=present)) or release (O(state=absent)) a lock held by another run,
        whatever its age.
      - Dangerous; two deploys may then run at once. Use it only after checking that the
        holder is gone.
    type: bool
    default: false
extends_documentation_fragment:
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Reports whether the lock would be taken or released, waits (read only) like
      a real run for a held lock and fails the same way, and creates or removes nothing.
  diff_mode:
    support: none
    description: No diff is shown; RV(holder) tells who holds the lock.
  action_group:
    support: full
    membership: [prodready.deploy.deploy, prodready.deploy.lock]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) and C(group/prodready.deploy.lock) set this module's options.
notes:
  - Release the lock in an C(always) section so that a failed deploy does not leave it held.
  - A lock broken by O(break_stale) or O(force) is first renamed aside and checked to be the
    one judged stale, so a lock another run has just taken is not removed.
"""

EXAMPLES = r"""
- name: Take the deploy lock of the app, waiting up to 2 minutes for another deploy
  prodready.deploy.deploy_lock:
    path: /srv/app/deploy.lock
    run_id: "{{ deploy_run_id }}"
    owner: "{{ lookup('env', 'USER') }}@{{ lookup('pipe', 'hostname') }}"
    lock_timeout: 120
  register: lock

- name: Release it (in an always section)
  prodready.deploy.deploy_lock:
    path: /srv/app/deploy.lock
    run_id: "{{ deploy_run_id }}"
    state: absent

- name: Break a lock left by a run that died more than 30 minutes ago
  prodready.deploy.deploy_lock:
    path: /srv/app/deploy.lock
    run_id: "{{ deploy_run_id }}"
    stale_after: 1800
    break_stale: true
"""

RETURN = r"""
holder:
  description:
    - The lock record after the task (in check mode, the one it would have), V(null) when the
      lock is released.
  returned: always
  type: dict
  contains:
    owner:
      description: Who holds the lock.
      type: str
    run_id:
      description: The run holding the lock.
      type: str
    since:
      description: When the lock was taken, ISO 8601 UTC.
      type: str
    since_epoch:
      description: The same, seconds since the epoch.
      type: float
    host:
      description: The host name of the holder.
      type: str
    pid:
      description: The process id of the module that took the lock.
      type: int
    controller:
      description: The controller of the run (C(host), ansible-playbook C(pid), C(user)), when O(controller) named it.
      type: dict
    heartbeat:
      description:
        - The holder's last heartbeat (the lock file's modification time), ISO 8601 UTC; never
          before C(since).
      type: str
    beat_epoch:
      description: The same, seconds since the epoch.
      type: float
  sample: {"owner": "deploy@ci-runner-3", "run_id": "20261126T104107-8f2c", "host": "web1",
           "since": "2026-11-26T10:41:07Z", "since_epoch": 1795689667.2, "pid": 4711}
acquired:
  description: V(true) when this run holds the lock after the task.
  returned: always
  type: bool
  sample: true
waited_s:
  description: Seconds spent waiting for another run's lock.
  returned: always
  type: float
  sample: 0.0
broke_stale:
  description:
    - The record of the stale (or, with O(force), held) lock that was broken, else V(null).
  returned: always
  type: dict
  sample: {"owner": "deploy@old", "run_id": "20261125T000000-aaaa", "host": "web1",
           "since": "2026-11-25T00:00:00Z", "since_epoch": 1795564800.0, "pid": 99}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _lock_io
from ansible_collections.prodready.deploy.plugins.module_utils import _lockfile
from ansible_collections.prodready.deploy.plugins.module_utils._options import renamed_from


def argument_spec():
    """The module's options."""
    return dict(
        path=dict(type="path", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        run_id=dict(type="str", required=True),
        owner=dict(type="str"),
        lock_timeout=renamed_from(dict(type="float", default=0), "timeout"),
        stale_after=dict(type="float", default=3600),
        break_stale=dict(type="bool", default=False),
        controller=dict(type="dict"),
        heartbeat_timeout=dict(type="float", default=_lockfile.HEARTBEAT_TIMEOUT),
        force=dict(type="bool", default=False),
    )


def validate(params):
    """Refuse values the types alone do not catch, naming the option and the value."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    if not params["run_id"].strip():
        raise ProdreadyError("run_id: must not be empty")
    if params["lock_timeout"] < 0:
        raise ProdreadyError("lock_timeout: must be 0 or more seconds, got %s" % params["lock_timeout"])
    if params["stale_after"] <= 0:
        raise ProdreadyError("stale_after: must be more than 0 seconds, got %s"
                             % params["stale_after"])
    directory = os.path.dirname(params["path"]) or "."
    if os.path.isdir(params["path"]):
        raise ProdreadyError("path: %s is a directory, not a lock file" % params["path"])
    if not os.path.isdir(directory):
        raise ProdreadyError("path: the directory %s of the lock file does not exist"
                             % directory)


take_away = _lock_io.take_away


def run(module):
    """The module's work for `module.params`; returns the result dict."""
    params = module.params
    validate(params)
    if params["state"] == "present":
        return _lock_io.acquire(params["path"], params["run_id"], owner=params["owner"], timeout=params["lock_timeout"],
                                stale_after=params["stale_after"], break_stale=params["break_stale"],
                                force=params["force"], check_mode=module.check_mode, controller=params["controller"],
                                heartbeat_timeout=params["heartbeat_timeout"])
    return _lock_io.release(params["path"], params["run_id"], force=params["force"], check_mode=module.check_mode)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)


if __name__ == "__main__":
    main()
