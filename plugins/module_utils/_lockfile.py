# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic of the deploy lock file (no I/O): the record, its age, decisions, messages."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.prodready.deploy.plugins.module_utils._statefile import iso_utc

# What to do about a lock file found in place (see decide()).
OURS = "ours"            # held by this run: nothing to do (re-entrant)
WAIT = "wait"            # held by another run, fresh: wait or fail
BREAK_STALE = "break"    # held by another run, stale, break_stale set: break it
STALE = "stale"          # held by another run, stale, break_stale not set: fail
FORCE = "force"          # held by another run, force set: take it
TAKEOVER = "takeover"    # held by another run whose controller process is gone: take it over

# Seconds without a heartbeat after which a lock naming its controller is taken over (see
# is_silent()); 0 turns the heartbeat judgement off (age alone, stale_after, applies).
HEARTBEAT_TIMEOUT = 900.0


def make_record(owner, run_id, epoch, host, pid, controller=None):
    """The lock record written to the file. `controller` ({host, pid, user} of the
    ansible-playbook run) lets a later run judge the lock by its holder, not by its age."""
    record = dict(owner=owner, run_id=run_id, since=iso_utc(epoch), since_epoch=float(epoch),
                  host=host, pid=pid)
    if controller:
        record["controller"] = dict(controller)
    return record


def render_record(record):
    """The bytes of the lock file."""
    return (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")


def parse_record(data, mtime):
    """The record held by lock file bytes `data`.

    A file that is not a JSON object (truncated by a crash, edited by hand) is still a held
    lock: it is reported with owner ``unknown`` and its modification time `mtime` as
    ``since``, so staleness still applies to it.

    The file's modification time is the holder's heartbeat: every module of the run touches
    it while it runs (_lock_io.beat), so ``beat_epoch`` (never before ``since``) is when the
    holder was last seen alive.
    """
    try:
        record = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict):
        return dict(owner="unknown (unreadable lock file)", run_id=None, since=iso_utc(mtime),
                    since_epoch=float(mtime), host=None, pid=None)
    try:
        record["since_epoch"] = float(record.get("since_epoch"))
    except (TypeError, ValueError):
        record["since_epoch"] = float(mtime)
    if not record.get("since"):
        record["since"] = iso_utc(record["since_epoch"])
    record["beat_epoch"] = max(record["since_epoch"], float(mtime))
    record["heartbeat"] = iso_utc(record["beat_epoch"])
    return record


def age_s(record, now):
    """Seconds since the lock was taken (never negative, clocks may disagree)."""
    return max(0.0, float(now) - float(record["since_epoch"]))


def is_stale(record, now, stale_after):
    """True when the lock is older than `stale_after` seconds."""
    return age_s(record, now) > float(stale_after)


def silence_s(record, now):
    """Seconds since the holder's last heartbeat (never negative)."""
    return max(0.0, float(now) - float(record.get("beat_epoch", record["since_epoch"])))


def is_silent(record, now, heartbeat_timeout):
    """True when the lock's holder stopped beating: the record names its controller (a run
    that beats) and its last heartbeat is older than `heartbeat_timeout` s (0: never)."""
    if not heartbeat_timeout or not isinstance(record.get("controller"), dict):
        return False
    return silence_s(record, now) > float(heartbeat_timeout)


def decide(record, run_id, now, stale_after, break_stale, force, gone=False,
           heartbeat_timeout=HEARTBEAT_TIMEOUT):
    """What an acquirer with `run_id` does about the lock `record` found in place; `gone`:
    its holder's controller process is known to be gone (see _lock_io.holder_gone); a holder
    silent for more than `heartbeat_timeout` s is taken over the same way."""
    if record.get("run_id") == run_id:
        return OURS
    if force:
        return FORCE
    if gone or is_silent(record, now, heartbeat_timeout):
        return TAKEOVER
    if heartbeat_timeout and isinstance(record.get("controller"), dict):
        return WAIT  # a holder that beats is alive, however long its deploy takes
    if is_stale(record, now, stale_after):
        return BREAK_STALE if break_stale else STALE
    return WAIT


def describe(record):
    """``<owner> (run <id>)``, how messages name a holder."""
    return "%s (run %s)" % (record.get("owner"), record.get("run_id"))


def held_message(path, record, now, waited):
    """The failure message when the lock stayed held by another run."""
    return ("deploy lock %s is held by %s since %s (%d s ago%s); waited %.1f s"
            % (path, describe(record), record.get("since"), int(age_s(record, now)),
               _beat_words(record, now), waited))


def _beat_words(record, now):
    """``, controller web1 pid 42, last heartbeat 3 s ago`` for a record that names its
    controller; empty for one that does not."""
    controller = record.get("controller")
    if not isinstance(controller, dict):
        return ""
    return (", controller %s pid %s, last heartbeat %d s ago"
            % (controller.get("host"), controller.get("pid"), int(silence_s(record, now))))


def stale_message(path, record, now, stale_after):
    """The failure message for a stale lock that break_stale does not allow to break."""
    return ("deploy lock %s is stale: held by %s since %s (%d s ago, more than stale_after=%s s);"
            " check that run is really gone, then set break_stale: true to break it"
            % (path, describe(record), record.get("since"), int(age_s(record, now)),
               _number(stale_after)))


def release_refused_message(path, record, run_id):
    """The failure message when a run tries to release a lock another run holds."""
    return ("deploy lock %s is held by %s, not by this run (%s); not releasing it "
            "(force: true releases it, which is dangerous while that run is alive)"
            % (path, describe(record), run_id))


def gone_reason(record, now=None, heartbeat_timeout=HEARTBEAT_TIMEOUT, gone=True):
    """Why a lock whose holder is gone (`gone`: its process is known gone) or silent (no
    heartbeat for more than `heartbeat_timeout` s at `now`) was taken over, in words."""
    controller = record.get("controller") or {}
    if gone:
        return ("its holder %s is gone: ansible-playbook pid %s on %s no longer runs"
                % (describe(record), controller.get("pid"), controller.get("host")))
    return ("its holder %s (ansible-playbook pid %s on %s) is silent: its last heartbeat was %s,"
            " %d s ago, more than heartbeat_timeout=%s s"
            % (describe(record), controller.get("pid"), controller.get("host"), record.get("heartbeat"),
               int(silence_s(record, now)), _number(heartbeat_timeout)))


def _number(value):
    value = float(value)
    return "%d" % value if value == int(value) else "%s" % value
