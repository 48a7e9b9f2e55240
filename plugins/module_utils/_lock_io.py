# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The deploy lock file on disk: read, create exclusively, break, acquire and release.

Shared by deploy_lock and rollback_start; the decisions and messages are _lockfile's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import getpass
import os
import socket
import tempfile
import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _lockfile
from ansible_collections.prodready.deploy.plugins.module_utils import _state_io

POLL_S = 0.2
LOCK_MODE = 0o600


def default_owner():
    """``<login name>@<host name>`` of the user running the module."""
    try:
        user = getpass.getuser()
    except Exception:  # neither the environment nor the password database knows the uid
        user = str(os.getuid())
    return "%s@%s" % (user, socket.gethostname())


def read_lock(path):
    """The record in the lock file, or None when there is no lock."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
            mtime = os.fstat(handle.fileno()).st_mtime
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise ProdreadyError("path: cannot read the lock file %s: %s" % (path, to_native(exc)))
    return _lockfile.parse_record(data, mtime)


def create_lock(path, record):
    """Create the lock file holding `record` if it does not exist; True when created."""
    data = _lockfile.render_record(record)
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    except OSError as exc:
        raise ProdreadyError("path: cannot create a file in %s: %s" % (directory, to_native(exc)))
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), LOCK_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # link() is atomic and exclusive, and the lock appears with its content complete.
            os.link(tmp, path)
            return True
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
        return _create_excl(path, data)
    except (IOError, OSError) as exc:
        raise ProdreadyError("path: cannot create the lock file %s: %s" % (path, to_native(exc)))
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _create_excl(path, data):
    """O_CREAT|O_EXCL creation, for filesystems without hard links."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, LOCK_MODE)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def take_away(path, record):
    """Remove the lock judged breakable (`record`); False when it changed meanwhile.

    The file is renamed aside first and compared: if another run replaced it in the
    meantime, its lock is put back (link fails if yet another run took the path).
    """
    aside = "%s.broken.%d.%s" % (path, os.getpid(), int(time.time() * 1000))
    try:
        os.rename(path, aside)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise ProdreadyError("path: cannot remove the lock file %s: %s" % (path, to_native(exc)))
    moved = read_lock(aside)
    same = moved is not None and (moved.get("run_id"), moved.get("since_epoch")) == (
        record.get("run_id"), record.get("since_epoch"))
    if not same:
        try:
            os.link(aside, path)
        except OSError:
            pass
    try:
        os.unlink(aside)
    except OSError:
        pass
    return same


def holder_gone(record, hostname=None):
    """True when the lock's holder is provably gone: the controller it names ran on this host
    and its ansible-playbook process no longer exists. A holder on another controller, or a
    record without one, is never judged gone here (its age still applies)."""
    controller = record.get("controller")
    if not isinstance(controller, dict) or controller.get("host") != (hostname or socket.gethostname()):
        return False
    try:
        pid = int(controller.get("pid"))
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.ESRCH
    return False


def acquire(path, run_id, owner=None, timeout=0.0, stale_after=3600.0, break_stale=False, force=False,
            check_mode=False, clock=time.time, monotonic=time.monotonic, sleep=time.sleep, controller=None,
            heartbeat_timeout=_lockfile.HEARTBEAT_TIMEOUT):
    """Take the lock at `path` for `run_id` (or predict it in check mode), waiting up to
    `timeout` s for another run's; a holder whose controller is gone, or silent for more than
    `heartbeat_timeout` s, is taken over. Returns deploy_lock's result dict, raises
    ProdreadyError (with the same keys as details) when the lock stays held."""
    mine = _lockfile.make_record(owner or default_owner(), run_id, clock(),
                                 socket.gethostname(), os.getpid(), controller)
    started = monotonic()
    broke = None
    while True:
        waited = monotonic() - started
        record = read_lock(path)
        if record is None:
            if check_mode:
                return dict(changed=True, holder=mine, acquired=True, waited_s=round(waited, 3),
                            broke_stale=broke)
            if create_lock(path, mine):
                return dict(changed=True, holder=read_lock(path) or mine, acquired=True,
                            waited_s=round(waited, 3), broke_stale=broke)
            continue  # another run won the race: look at its lock
        now = clock()
        gone = holder_gone(record)
        action = _lockfile.decide(record, run_id, now, stale_after, break_stale, force,
                                  gone=gone, heartbeat_timeout=heartbeat_timeout)
        if action == _lockfile.OURS:
            return dict(changed=broke is not None, holder=record, acquired=True,
                        waited_s=round(waited, 3), broke_stale=broke)
        if action in (_lockfile.BREAK_STALE, _lockfile.FORCE, _lockfile.TAKEOVER):
            if action == _lockfile.TAKEOVER:
                record = dict(record, takeover=_lockfile.gone_reason(record, now, heartbeat_timeout, gone))
            if check_mode:
                return dict(changed=True, holder=mine, acquired=True, waited_s=round(waited, 3),
                            broke_stale=record)
            if take_away(path, record):
                broke = record
            continue
        if action == _lockfile.STALE:
            raise ProdreadyError(_lockfile.stale_message(path, record, now, stale_after),
                                 holder=record, acquired=False, waited_s=round(waited, 3),
                                 broke_stale=None)
        if waited >= timeout:
            raise ProdreadyError(_lockfile.held_message(path, record, now, waited),
                                 holder=record, acquired=False, waited_s=round(waited, 3),
                                 broke_stale=None)
        sleep(min(POLL_S, max(0.0, timeout - waited)) or POLL_S)


def announce_takeover(warn, path, broken, audit_log, run_id):
    """Say (`warn`) and audit (a `lock_takeover` line in `audit_log`, when one is given) that
    this run took the lock at `path` over from `broken`, the holder record acquire() returned
    in `broke_stale`. Returns the reason given."""
    why = broken.get("takeover") or "stale since %s" % broken.get("since")
    warn("deploy lock %s taken over from %s: %s" % (path, _lockfile.describe(broken), why))
    if audit_log:
        _state_io.audit(audit_log, dict(action="lock_takeover", run_id=run_id, holder=broken, reason=why))
    return why


def release(path, run_id, force=False, check_mode=False):
    """Release the lock at `path` held by `run_id` (another run's only with `force`; or
    predict it in check mode); returns deploy_lock's result dict."""
    record = read_lock(path)
    if record is None:
        return dict(changed=False, holder=None, acquired=False, waited_s=0.0, broke_stale=None)
    ours = record.get("run_id") == run_id
    if not ours and not force:
        raise ProdreadyError(_lockfile.release_refused_message(path, record, run_id),
                             holder=record, acquired=False, waited_s=0.0, broke_stale=None)
    if not check_mode:
        if ours:
            try:
                os.unlink(path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise ProdreadyError("path: cannot remove the lock file %s: %s"
                                         % (path, to_native(exc)))
        else:
            take_away(path, record)
    return dict(changed=True, holder=None, acquired=False, waited_s=0.0,
                broke_stale=None if ours else record)
