# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: deploy_state
short_description: Update a host's deploy state.json and append to its audit.log
version_added: 0.1.0
description:
  - "Merges keys into the JSON object of a deploy state file (C(state.json), holding for
    example the live color, the version per color, the previous version, the backup path and
    the alembic revision before the deploy), returns the state before and after, and
    optionally appends one event to an audit log as one JSON line."
  - The state file is written atomically (a temporary file in the same directory, C(fsync),
    then a rename). A new file gets mode C(0640); an existing file keeps its mode and owner.
    A file that is not a JSON object is never overwritten; the module fails naming the file
    and the JSON error.
  - The audit line is the O(audit) event plus C(time) (ISO 8601 UTC), C(user) (the login name
    of the user running the module) and C(host) (the host name), written with one
    C(O_APPEND) write so that concurrent writers never interleave lines. The audit log is
    created with mode C(0600) when missing.
author:
  - prodready.deploy maintainers (@prodready)
options:
  path:
    description:
      - The state file (C(state.json)).
    type: path
    required: true
  update:
    description:
      - Keys merged into the state at the top level. A value replaces the key's value whole;
        a V(null) value removes the key.
    type: dict
    default: {}
  audit_log:
    description:
      - The audit log file, one JSON object per line. Required with O(audit).
    type: path
  audit:
    description:
      - An event to append to O(audit_log), for example the action, the colors, the version
        and the result. The keys C(time), C(user) and C(host) are set by the module.
      - When given, a line is appended on every run, so the task always reports a change.
    type: dict
  release_lock:
    description:
      - After the state and the audit line are written, release the deploy lock this run
        holds, as M(prodready.deploy.deploy_lock) V(state=absent) does (the end of a deploy
        in one call). A lock held by another run is an error naming its holder; no lock file
        is fine.
    type: dict
    suboptions:
      path:
        description: The lock file.
        type: path
        required: true
      run_id:
        description: The run that holds it.
        type: str
        required: true
  create:
    description:
      - Treat a missing state file as an empty object C({}); it is created when O(update)
        gives it content.
      - With V(false) a missing state file is an error.
    type: bool
    default: true
extends_documentation_fragment:
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Reports the state the file would have and the audit line that would be
      appended, and writes nothing (no audit line either).
  diff_mode:
    support: full
    description: Shows the state file before and after, as indented JSON.
  action_group:
    support: full
    membership: [prodready.deploy.deploy]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) sets this module's options.
notes:
  - Do not put secrets in the state or the audit event; both files are meant to be read by
    operators.
"""

EXAMPLES = r"""
- name: Record the switch to green with version 1.4.0
  prodready.deploy.deploy_state:
    path: /srv/app/state.json
    update:
      live_color: green
      versions: {blue: 1.3.2, green: 1.4.0}
      previous_version: 1.3.2
    audit_log: /srv/app/audit.log
    audit:
      action: switch
      from: blue
      to: green
      version: 1.4.0
      result: ok
  register: deploy_state

- name: Read the state without changing it
  prodready.deploy.deploy_state:
    path: /srv/app/state.json
    create: false
  register: current

- name: Forget the recorded backup path
  prodready.deploy.deploy_state:
    path: /srv/app/state.json
    update:
      backup_path:
"""

RETURN = r"""
lock_released:
  description: V(true) when O(release_lock) removed this run's lock (in check mode, would).
  returned: when O(release_lock) is given
  type: bool
  sample: true
state:
  description: The state after the task (in check mode, the state it would have).
  returned: always
  type: dict
  sample: {"live_color": "green", "versions": {"blue": "1.3.2", "green": "1.4.0"}}
previous:
  description: The state before the task (V({}) when the file did not exist).
  returned: always
  type: dict
  sample: {"live_color": "blue", "versions": {"blue": "1.3.2"}}
audit_line:
  description:
    - The record appended to O(audit_log) (in check mode, the one that would be appended),
      V(null) without O(audit).
  returned: always
  type: dict
  sample: {"action": "switch", "to": "green", "time": "2026-11-26T10:41:07Z", "user": "deploy",
           "host": "web1"}
diff:
  description: With C(--diff) and a state change, the state file before and after.
  returned: in diff mode, when the state changes
  type: dict
  contains:
    before:
      description: The state as it was, indented JSON.
      type: str
    after:
      description: The state as it is now, indented JSON.
      type: str
    before_header:
      description: The state file.
      type: str
    after_header:
      description: The state file.
      type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _atomic
from ansible_collections.prodready.deploy.plugins.module_utils import _lock_io
from ansible_collections.prodready.deploy.plugins.module_utils import _state_io
from ansible_collections.prodready.deploy.plugins.module_utils import _statefile

NEW_STATE_MODE = 0o640


def argument_spec():
    """The module's options."""
    return dict(
        path=dict(type="path", required=True),
        update=dict(type="dict", default={}),
        audit_log=dict(type="path"),
        audit=dict(type="dict"),
        create=dict(type="bool", default=True),
        release_lock=dict(type="dict", options=dict(
            path=dict(type="path", required=True),
            run_id=dict(type="str", required=True),
        )),
    )


def validate(params):
    """Refuse values the spec alone does not catch, naming the option and the value."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    if params["audit"] is not None and not params["audit_log"]:
        raise ProdreadyError("audit: an audit event needs audit_log, the file to append it to")
    if params["audit_log"] and os.path.isdir(params["audit_log"]):
        raise ProdreadyError("audit_log: %s is a directory, not a file" % params["audit_log"])
    problem = _statefile.check_update(params["update"])
    if problem:
        raise ProdreadyError(problem)


def write_atomic(path, data, st):
    """Write bytes `data` to `path` atomically, keeping mode and owner (0640 when new)."""
    _atomic.write_atomic(path, data, st, NEW_STATE_MODE, "path")


def run(module):
    """The module's work for `module.params`; returns the result dict."""
    params = module.params
    validate(params)
    path = params["path"]
    previous, st = _state_io.read_state_file(path, params["create"])
    state, state_changed = _statefile.merge_update(previous, params["update"])
    # A missing file reads as {}; it is created only when there is something to write.
    write_needed = state_changed
    audit_line = None
    if params["audit"] is not None:
        audit_line = _state_io.audit_line(params["audit"])
    # No `path` key: AnsibleModule would add file attributes to the result (and a `state`).
    result = dict(changed=write_needed or audit_line is not None, state=state,
                  previous=previous, audit_line=audit_line)
    if module._diff and write_needed:
        result["diff"] = dict(before=_statefile.render_state(previous).decode("utf-8")
                              if st is not None else "",
                              after=_statefile.render_state(state).decode("utf-8"),
                              before_header=path if st is not None else "%s (absent)" % path,
                              after_header=path)
    if not module.check_mode:
        if write_needed:
            write_atomic(path, _statefile.render_state(state), st)
        if audit_line is not None:
            _state_io.append_audit(params["audit_log"], _statefile.render_audit_line(audit_line))
    if params["release_lock"]:
        lock = params["release_lock"]
        try:
            released = _lock_io.release(lock["path"], lock["run_id"], check_mode=module.check_mode)
        except ProdreadyError as exc:  # the state and audit line are written: say the lock is what failed
            exc.msg = ("release_lock.path: " + exc.msg[len("path: "):] if exc.msg.startswith("path: ")
                       else "release_lock: " + exc.msg)
            exc.details.update(result)
            raise
        result["lock_released"] = released["changed"]
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_by=dict(audit=["audit_log"]))
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)


if __name__ == "__main__":
    main()
