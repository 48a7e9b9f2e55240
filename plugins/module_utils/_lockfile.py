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
    return record


def age_s(record, now):
    """Seconds since the lock was taken (never negative, clocks may disagree)."""
    return max(0.0, float(now) - float(record["since_epoch"]))


def is_stale(record, now, stale_after):
    """True when the lock is older than `stale_after` seconds."""
    return age_s(record, now) > float(stale_after)


def decide(record, run_id, now, stale_after, break_stale, force, gone=False):
    """What an acquirer with `run_id` does about the lock `record` found in place; `gone`:
    its holder's controller process is known to be gone (see _lock_io.holder_gone)."""
    if record.get("run_id") == run_id:
        return OURS
    if force:
        return FORCE
    if gone:
        return TAKEOVER
    if is_stale(record, now, stale_after):
        return BREAK_STALE if break_stale else STALE
    return WAIT


def describe(record):
    """``<owner> (run <id>)``, how messages name a holder."""
    return "%s (run %s)" % (record.get("owner"), record.get("run_id"))


def held_message(path, record, now, waited):
    """The failure message when the lock stayed held by another run."""
    return ("deploy lock %s is held by %s since %s (%d s ago); waited %.1f s"
            % (path, describe(record), record.get("since"), int(age_s(record, now)), waited))


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


def gone_reason(record):
    """Why a lock whose holder is gone was taken over, in words."""
    controller = record.get("controller") or {}
    return ("its holder %s is gone: ansible-playbook pid %s on %s no longer runs"
            % (describe(record), controller.get("pid"), controller.get("host")))


def _number(value):
    value = float(value)
    return "%d" % value if value == int(value) else "%s" % value
