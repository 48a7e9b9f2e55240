# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic of deploy_status: what a host runs, who holds its lock, its last deploys,
and the table playbooks/status.yml prints (no I/O)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

# Audit lines that are a deploy, a rollback or a revert of one (not the steps in between).
RUN_ACTIONS = ("deploy", "rollback", "fleet_revert")
REASON_MAX = 300


def parse_audit(text):
    """The JSON objects of audit log `text`, oldest first; a line that is not one (cut by a
    crash, edited by hand) is skipped."""
    lines = []
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


def is_run(line):
    """True for the audit line that ends a deploy, a rollback or a fleet revert (its outcome)."""
    action = line.get("action")
    if action == "deploy" or action == "fleet_revert":
        return True
    return action == "rollback" and (line.get("step") == "finalize" or line.get("result") == "failed")


def last_runs(lines, count):
    """The last `count` runs of the audit `lines` (oldest first), newest first, each with its
    time, action, result, version, what it went from, user (who launched it, else the login it
    ran as), run id and reason (cut short)."""
    runs = [line for line in lines if is_run(line)][::-1][:max(0, int(count))]
    out = []
    for line in runs:
        reason = line.get("reason")
        if isinstance(reason, str) and len(reason) > REASON_MAX:
            reason = reason[:REASON_MAX - 3] + "..."
        out.append(dict(time=line.get("time"), action=line.get("action"), result=line.get("result"),
                        version=line.get("version"),
                        from_version=line.get("from_version") or line.get("previous_version"),
                        # who launched the run (an AWX user) before the login it ran as
                        user=line.get("launched_by") or line.get("user"), run_id=line.get("run_id"),
                        reason=reason, restore=line.get("restore")))
    return out


def lock_view(record, now):
    """The lock holder as an operator reads it (None: no lock): who, which run, since when, how
    long ago, the last heartbeat and its controller."""
    if not record:
        return None
    since_epoch = float(record.get("since_epoch") or now)
    beat_epoch = float(record.get("beat_epoch") or since_epoch)
    return dict(owner=record.get("owner"), run_id=record.get("run_id"), since=record.get("since"),
                age_s=int(max(0.0, now - since_epoch)), heartbeat=record.get("heartbeat"),
                heartbeat_age_s=int(max(0.0, now - beat_epoch)), controller=record.get("controller"))


def colors_view(state, ports, answers):
    """One entry per color (sorted): its port, its role (live or idle), the version state.json
    records for it, and what it answers now (`answers`: color -> dict(version, error), or
    missing when not asked)."""
    live = state.get("live_color")
    recorded = state.get("colors") or {}
    out = []
    for color in sorted(ports):
        answer = answers.get(color)
        out.append(dict(color=color, port=ports[color], role="live" if color == live else "idle",
                        recorded_version=recorded.get(color),
                        answers=None if answer is None else (answer.get("version") if not answer.get("error") else None),
                        error=None if answer is None else answer.get("error")))
    return out


def summarize(state, ports, answers, lock, runs, now):
    """The status of one host: live color and version, every color, the lock, the last runs,
    an interrupted run's intent, the last rollback and restore."""
    colors = colors_view(state, ports, answers)
    idle = [c for c in colors if c["role"] == "idle"]
    pending = state.get("pending") or None
    pending_rollback = state.get("pending_rollback") or None
    return dict(
        deployed=bool(state), live_color=state.get("live_color"), live_version=state.get("live_version"),
        previous_version=state.get("previous_version"), deployed_at=state.get("deployed_at"),
        idle_color=idle[0]["color"] if idle else None, idle_version=idle[0]["answers"] if idle else None,
        colors=colors, lock=lock_view(lock, now), last_runs=runs, db_revisions=state.get("db_revisions"),
        pending=dict((k, pending.get(k)) for k in ("run_id", "version", "color", "started_at")) if pending else None,
        pending_rollback=pending_rollback, last_rollback=state.get("last_rollback"),
        last_restore=state.get("last_restore"))


def _color_cell(entry):
    """``green 1.4.0`` / ``green down`` / ``green 1.4.0?`` (answers another version than
    recorded), for the table."""
    if entry is None:
        return "-"
    if entry["error"] or entry["answers"] is None:
        seen = "down" if entry["error"] else (entry["recorded_version"] or "-")
    else:
        seen = entry["answers"]
        if entry["recorded_version"] and entry["recorded_version"] != seen:
            seen += " (recorded %s)" % entry["recorded_version"]
    return "%s %s" % (entry["color"], seen)


def _lock_cell(lock):
    if not lock:
        return "free"
    return "%s (run %s, %d s, beat %d s ago)" % (lock["owner"], lock["run_id"], lock["age_s"], lock["heartbeat_age_s"])


def _run_cell(run):
    if not run:
        return "-"
    words = "%s %s %s" % (run.get("time") or "?", run.get("action"), run.get("result") or "")
    if run.get("from_version"):
        words += " %s -> %s" % (run["from_version"], run.get("version") or "?")
    elif run.get("version"):
        words += " " + run["version"]
    return words.strip()


def table(statuses):
    """The text table of hosts' statuses (host -> summarize()), one row per host, then each
    host's last runs and anything interrupted: the lines playbooks/status.yml prints."""
    headers = ("host", "live", "idle", "lock", "last run")
    rows = []
    for host in sorted(statuses):
        st = statuses[host]
        live = next((c for c in st["colors"] if c["role"] == "live"), None)
        idle = next((c for c in st["colors"] if c["role"] == "idle"), None)
        rows.append((host, _color_cell(live) if st["deployed"] else "never deployed", _color_cell(idle),
                     _lock_cell(st["lock"]), _run_cell((st["last_runs"] or [None])[0])))
    widths = [max(len(str(row[i])) for row in rows + [headers]) for i in range(len(headers))]
    line = "  ".join("%-*s" % (widths[i], headers[i]) for i in range(len(headers))).rstrip()
    lines = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join("%-*s" % (widths[i], row[i]) for i in range(len(row))).rstrip())
    for host in sorted(statuses):
        st = statuses[host]
        if st["pending"]:
            lines.append("%s: a deploy of %s (run %s, %s) was interrupted: the next run reconciles it"
                         % (host, st["pending"]["version"], st["pending"]["run_id"], st["pending"]["started_at"]))
        if st["pending_rollback"]:
            lines.append("%s: a rollback to %s (run %s) was interrupted: rollback.yml takes it up"
                         % (host, st["pending_rollback"].get("to"), st["pending_rollback"].get("run_id")))
        for run in st["last_runs"]:
            lines.append("%s: %s%s%s" % (host, _run_cell(run), (" by " + run["user"]) if run.get("user") else "",
                                         (": " + run["reason"]) if run.get("reason") else ""))
    return lines
