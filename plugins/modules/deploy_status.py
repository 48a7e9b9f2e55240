# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: deploy_status
short_description: What a host runs, who holds its deploy lock, and its last deploys (read-only)
version_added: 0.1.0
description:
  - Reads a host's deploy state (C(state.json)), its deploy lock and the end of its audit log,
    and asks each color which version it answers with; changes nothing.
  - Returns the live color and version, every color with the version C(state.json) records
    and the version it answers with now, the lock holder (owner, run, age, last heartbeat,
    controller), the last O(history) deploys, rollbacks and fleet reverts (newest first, with
    who ran them and why one failed), and what an interrupted deploy or rollback left.
  - C(playbooks/status.yml) runs it on every host and prints one table, or JSON.
author:
  - prodready.deploy maintainers (@prodready)
options:
  state_path:
    description:
      - The host's deploy state file (C(state.json)). Missing means never deployed (not an error).
    type: path
    required: true
  lock_path:
    description:
      - The deploy lock file. Missing means nobody holds the lock.
    type: path
  audit_log:
    description:
      - The audit log (one JSON object per line); only its last 1 MiB is read.
    type: path
  history:
    description:
      - How many of the last deploys, rollbacks and fleet reverts to return.
    type: int
    default: 5
  colors:
    description:
      - "The colors and their ports, for example C({blue: {port: 8101}, green: {port: 8102}}).
        Each is asked its version at O(health_path); empty asks none."
    type: dict
    default: {}
  bind_host:
    description:
      - The address the colors listen on.
    type: str
    default: 127.0.0.1
  health_path:
    description:
      - The path each color answers on with its version.
    type: str
    default: /health
  version_path:
    description:
      - Where the version is in the health answer (a dotted JSON path; empty reads the body as
        plain text).
    type: str
    default: version
  probe_timeout:
    description:
      - Seconds to wait for each color's answer.
    type: float
    default: 2
extends_documentation_fragment:
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
  action_group:
    support: full
    membership: [prodready.deploy.deploy]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) sets this module's options.
notes:
  - A color that answers another version than C(state.json) records is shown with both, and
    one that does not answer as down; neither is an error (this module reports, it does not judge).
seealso:
  - module: prodready.deploy.deploy_state
  - module: prodready.deploy.deploy_lock
"""

EXAMPLES = r"""
- name: What runs here
  prodready.deploy.deploy_status:
    state_path: /srv/app/state.json
    lock_path: /srv/app/deploy.lock
    audit_log: /srv/app/audit.log
    colors: {blue: {port: 8101}, green: {port: 8102}}
    history: 3
  register: status

- name: Fail when a deploy is in progress
  ansible.builtin.assert:
    that: status.status.lock is none
    fail_msg: "{{ status.status.lock.owner }} is deploying (run {{ status.status.lock.run_id }})"
"""

RETURN = r"""
status:
  description: The host's status.
  returned: always
  type: dict
  contains:
    deployed:
      description: V(false) when there is no C(state.json) (never deployed).
      type: bool
    live_color:
      description: The live color C(state.json) records.
      type: str
    live_version:
      description: The live version C(state.json) records.
      type: str
    previous_version:
      description: The version a rollback goes back to by default.
      type: str
    idle_color:
      description: The first color that is not live.
      type: str
    idle_version:
      description: The version the idle color answers with now (V(null) when it does not answer).
      type: str
    colors:
      description:
        - One entry per color (sorted) - C(color), C(port), C(role) (live or idle),
          C(recorded_version) (C(state.json)), C(answers) (the version it answers with now,
          V(null) when down or not asked), C(error) (why it did not answer).
      type: list
      elements: dict
    lock:
      description:
        - The lock holder (V(null) when free) - C(owner), C(run_id), C(since), C(age_s),
          C(heartbeat), C(heartbeat_age_s), C(controller).
      type: dict
    last_runs:
      description:
        - The last O(history) deploys, rollbacks and fleet reverts, newest first - C(time),
          C(action), C(result), C(version), C(from_version), C(user), C(run_id), C(reason).
      type: list
      elements: dict
    db_revisions:
      description: The alembic revisions the live release runs on, as recorded.
      type: list
      elements: str
    pending:
      description: The intent of an interrupted deploy (C(run_id), C(version), C(color), C(started_at)), else V(null).
      type: dict
    pending_rollback:
      description: The intent of an interrupted rollback, else V(null).
      type: dict
    last_rollback:
      description: The last rollback's record in C(state.json).
      type: dict
    last_restore:
      description: The last restore in place's record in C(state.json).
      type: dict
  sample: {"deployed": true, "live_color": "green", "live_version": "1.4.0", "idle_color": "blue",
           "idle_version": "1.3.2", "lock": null,
           "last_runs": [{"time": "2026-12-07T10:41:07Z", "action": "deploy", "result": "success",
                          "version": "1.4.0", "from_version": "1.3.2", "user": "alice"}]}
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError, option_named
from ansible_collections.prodready.deploy.plugins.module_utils import _deploy_plan
from ansible_collections.prodready.deploy.plugins.module_utils import _lock_io
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _process_io
from ansible_collections.prodready.deploy.plugins.module_utils import _state_io
from ansible_collections.prodready.deploy.plugins.module_utils import _status

AUDIT_TAIL_BYTES = 1024 * 1024


def argument_spec():
    """The module's options."""
    return dict(
        state_path=dict(type="path", required=True),
        lock_path=dict(type="path"),
        audit_log=dict(type="path"),
        history=dict(type="int", default=5),
        colors=dict(type="dict", default={}),
        bind_host=dict(type="str", default="127.0.0.1"),
        health_path=dict(type="str", default="/health"),
        version_path=dict(type="str", default="version"),
        probe_timeout=dict(type="float", default=2),
    )


def read_tail(path, size=AUDIT_TAIL_BYTES):
    """The last `size` bytes of `path` as text, from the first whole line ('' when missing)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            handle.seek(max(0, end - size))
            data = handle.read()
    except (IOError, OSError) as exc:
        if not os.path.exists(path):
            return ""
        raise ProdreadyError("audit_log: cannot read %s: %s" % (path, to_native(exc)))
    if end > size:
        data = data.split(b"\n", 1)[-1]  # the first line is cut
    return data.decode("utf-8", "replace")


def ask(p, port):
    """dict(version, error) of the color at `port`."""
    url = "http://%s:%d%s" % (p["bind_host"], port, p["health_path"])
    answer = _process_io.HttpProbe(url, p["probe_timeout"], "", p["version_path"]).probe()
    return dict(version=answer["version"], error=answer["error"])


def run(module):
    """The module's work for `module.params`; returns the result dict."""
    p = module.params
    problem = _options.negative_option(p, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    ports = _deploy_plan.color_ports(p["colors"], _deploy_plan.RESTART) if p["colors"] else {}
    state, lock = {}, None
    if os.path.exists(p["state_path"]):
        with option_named("state_path"):
            state = _state_io.read_state_file(p["state_path"], True)[0]
    if p["lock_path"]:
        with option_named("lock_path"):
            lock = _lock_io.read_lock(p["lock_path"])
    runs = _status.last_runs(_status.parse_audit(read_tail(p["audit_log"])), p["history"]) if p["audit_log"] else []
    answers = dict((color, ask(p, port)) for color, port in ports.items())
    status = _status.summarize(state, ports, answers, lock, runs, time.time())
    return dict(changed=False, status=status)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)


if __name__ == "__main__":
    main()
