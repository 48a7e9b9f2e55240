# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""state.json and audit.log on disk: read the state, append one audit line.

Shared by deploy_state and rollback_start; parsing and rendering are _statefile's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import getpass
import os
import pwd
import socket
import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _atomic
from ansible_collections.prodready.deploy.plugins.module_utils import _reconcile
from ansible_collections.prodready.deploy.plugins.module_utils import _statefile

NEW_AUDIT_MODE = 0o600


def login_name():
    """The login name of the user running the module (environment, then the password db)."""
    try:
        return getpass.getuser()
    except Exception:  # getuser raises OSError/KeyError when neither env nor pwd knows
        try:
            return pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            return str(os.getuid())


def read_state_file(path, create):
    """(state dict, os.stat or None) of the state file; errors name the file."""
    if os.path.isdir(path):
        raise ProdreadyError("path: %s is a directory, not a state file" % path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
            st = os.fstat(handle.fileno())
    except (IOError, OSError) as exc:
        if not os.path.exists(path):
            if not create:
                raise ProdreadyError("path: the state file %s does not exist (create=false)"
                                     % path)
            parent = os.path.dirname(path) or "."
            if not os.path.isdir(parent):
                raise ProdreadyError("path: cannot create %s: directory %s does not exist"
                                     % (path, parent))
            return {}, None
        raise ProdreadyError("path: cannot read %s: %s" % (path, to_native(exc)))
    return _statefile.parse_state(data, path), st


def append_audit(path, line_bytes):
    """Append one line to the audit log with a single O_APPEND write (0600 when created)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, NEW_AUDIT_MODE)
    except OSError as exc:
        raise ProdreadyError("audit_log: cannot open %s: %s" % (path, to_native(exc)))
    try:
        written = os.write(fd, line_bytes)
        if written != len(line_bytes):
            raise ProdreadyError("audit_log: short write to %s (%d of %d bytes)"
                                 % (path, written, len(line_bytes)))
        os.fsync(fd)
    except OSError as exc:
        raise ProdreadyError("audit_log: cannot append to %s: %s" % (path, to_native(exc)))
    finally:
        os.close(fd)


def launch_context(environ=None):
    """Who launched the run and which AWX job it is, as the roles put them in the task's
    environment (deploy_begin's and rollback_start's RV environment): {launched_by, job: {id, url}}, the keys
    present only when known."""
    environ = os.environ if environ is None else environ
    context = {}
    if environ.get("PRODREADY_LAUNCHED_BY"):
        context["launched_by"] = environ["PRODREADY_LAUNCHED_BY"]
    if environ.get("PRODREADY_JOB_ID"):
        context["job"] = dict(id=environ["PRODREADY_JOB_ID"], url=environ.get("PRODREADY_JOB_URL") or None)
    return context


def audit_line(event, now=None):
    """The audit record of `event`: the event plus time (`now`, default now), user (the login
    that ran the module) and host, and who launched the run and its job when the roles say so."""
    line = dict(launch_context(), **(event or {}))
    return _statefile.build_audit_line(line, now if now else time.time(), login_name(), socket.gethostname())


def audit(path, event, now=None):
    """Append `event` (plus time, user and host) to the audit log at `path`; returns the line."""
    line = audit_line(event, now)
    append_audit(path, _statefile.render_audit_line(line))
    return line


def write_reconciled(path, st, state, decision, audit_log, check_mode, new_mode=0o640):
    """Apply a _reconcile decision: state.json takes decision["update"] (atomically, written
    only when it changes) and its event goes to `audit_log`; in check mode nothing is written.
    Returns (the state as it is now, whether the file changed)."""
    new_state, changed = write_update(path, st, state, decision["update"], check_mode, new_mode)
    if not check_mode and decision["event"] and audit_log:
        audit(audit_log, decision["event"])
    return new_state, changed


def reconcile_with_router(who, warn, router, observed, names, state, st, path, run_id, version_of, audit_log,
                          check_mode):
    """Observe, then act (_reconcile), as deploy_begin and rollback_start (`who`) do before
    they plan: what the router read `observed` serves of this host's servers `names` ({color:
    router name}) against `state` (state.json at `path`, stat `st`); state.json corrected and the
    decision audited (write_reconciled), its text warned (`warn`).

    Returns (decision, (serving, backups, seen), the state to plan on, whether state.json
    changed); decision None when the read holds none of this host's servers (warned, the
    state taken as it is)."""
    if _reconcile.none_present(router, observed, names):
        warn("%s: the router read holds none of this host's servers (%s): state.json is taken as it is"
             % (who, ", ".join(sorted(names.values()))))
        return None, None, state, False
    colors = _reconcile.observed_colors(router, observed, names)
    decision = _reconcile.reconcile(state, colors[0], colors[1], colors[2], run_id, version_of,
                                    checked=router == "haproxy")
    if decision["text"]:
        warn("%s: %s" % (who, decision["text"]))
    new_state, changed = write_reconciled(path, st, state, decision, audit_log, check_mode)
    return decision, colors, new_state, changed


def write_update(path, st, state, update, check_mode, new_mode=0o640):
    """state.json at `path` (read as `state`, stat `st`) takes `update` (a key set to None is
    removed), atomically and only when it changes; nothing is written in check mode. Returns
    (the state as it is now, whether the file changed)."""
    new_state, changed = _statefile.merge_update(state, update)
    if changed and not check_mode:
        _atomic.write_atomic(path, _statefile.render_state(new_state), st, new_mode, "state_path")
    return new_state, changed and not check_mode
