# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: deploy_report
type: aggregate
short_description: Per-host report of a deploy or flag rollout, as a summary, JSON and Markdown
version_added: 0.1.0
description:
  - Collects, per host, what this collection's modules and roles did during the run
    (backups taken, migrations, health and cache gates, router switches, flag changes, the
    stage transitions of the C(flag_rollout) role, and why a host stopped and what was
    reverted) and, at the end of the run, prints a short summary with one block per host and
    writes C(deploy-report-<timestamp>.json) and C(deploy-report-<timestamp>.md) into
    O(report_dir).
  - Only whitelisted result fields are kept (for example a backup's path, size and duration),
    never the tasks' arguments. Results hidden with C(no_log) are recorded as censored, without
    any value. The report files are created with mode C(0600) (they name hosts and paths).
  - Roles and playbooks can add their own entries by setting the fact C(prodready_report)
    (a dict, or a list of dicts) with M(ansible.builtin.set_fact); the C(flag_rollout) role's
    audit entries (fact C(flag_rollout_event)) are picked up the same way.
  - This is an aggregate callback, it does not replace the stdout callback. Enable it with
    C(callbacks_enabled = prodready.deploy.deploy_report) in the C([defaults]) section of
    C(ansible.cfg), or C(ANSIBLE_CALLBACKS_ENABLED=prodready.deploy.deploy_report).
author:
  - prodready.deploy maintainers (@prodready)
requirements:
  - enable in configuration (C(callbacks_enabled))
options:
  report_dir:
    description:
      - Directory where the JSON and Markdown reports are written. Created (mode C(0700))
        when missing. A relative path is relative to the directory C(ansible-playbook) runs in.
    type: path
    default: ./reports
    env:
      - name: PRODREADY_REPORT_DIR
    ini:
      - section: callback_deploy_report
        key: report_dir
"""

import datetime
import json
import os
import tempfile

from ansible import context
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.callback import CallbackBase

COLLECTION_PREFIX = "prodready.deploy."
REPORT_VERSION = 1
CENSORED = "censored (no_log)"
SET_FACT_ACTIONS = ("set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact")
REPORT_FACTS = ("flag_rollout_event", "prodready_report")


def module_name(action):
    """Short name of one of this collection's modules for a resolved action
    (`prodready.deploy.pg_backup` -> `pg_backup`), `set_fact` for set_fact, else None."""
    action = to_text(action or "")
    if action.startswith(COLLECTION_PREFIX):
        return action[len(COLLECTION_PREFIX):]
    if action in SET_FACT_ACTIONS:
        return "set_fact"
    return None


def _pick(data, keys):
    """The keys of `data` that are present, in `keys` order."""
    return dict((key, data[key]) for key in keys if key in data)


def _percent(ratio):
    try:
        return "%.1f%%" % (float(ratio) * 100)
    except (TypeError, ValueError):
        return "?"


def _changed_flags(data):
    changed = data.get("changed_flags") or []
    previous = data.get("previous") or {}
    current = data.get("current") or {}
    return dict((name, {"previous": previous.get(name), "current": current.get(name)}) for name in changed)


def summarize_module(module, data):
    """Whitelisted facts of one result of a collection module, or None when the module is not
    one the report knows. Returns a dict with `kind`, the kept fields and `text` (one line)."""
    if module == "pg_backup":
        event = _pick(data, ("path", "size_bytes", "duration_s", "reused", "verified", "sha256",
                             "target_db", "swap_window_s", "pruned"))
        event["kind"] = "backup"
        if "path" in data:
            event["text"] = "backup %s (%s bytes, %ss%s)" % (
                data["path"], data.get("size_bytes", "?"), data.get("duration_s", "?"),
                ", reused" if data.get("reused") else "")
        elif "target_db" in data:
            event["text"] = "backup restored into %s" % data["target_db"]
        else:
            event["text"] = "backups listed or pruned"
        return event
    if module == "alembic_migrate":
        event = _pick(data, ("current_before", "current_after", "direction", "failed_revision", "duration_s"))
        event["kind"] = "migration"
        event["text"] = "migration %s %s -> %s" % (
            data.get("direction", "upgrade"), data.get("current_before") or "base", data.get("current_after") or "base")
        if data.get("failed_revision"):
            event["text"] += " (failed at %s)" % data["failed_revision"]
        return event
    if module == "health_gate":
        latency = data.get("latency_ms") or {}
        event = _pick(data, ("passed", "reason", "samples", "errors", "error_rate"))
        event.update(kind="gate", gate="health_gate", p95_ms=latency.get("p95"))
        event["text"] = "health gate %s: %s samples, error rate %s, p95 %s ms%s" % (
            "passed" if data.get("passed") else "FAILED", data.get("samples", "?"), _percent(data.get("error_rate")),
            latency.get("p95", "?"), "" if data.get("passed") or not data.get("reason") else " (%s)" % data["reason"])
        return event
    if module == "redis_cache_check":
        event = _pick(data, ("passed", "reason", "hit_ratio", "hits", "misses", "ping_ms", "evicted_keys", "deleted"))
        event.update(kind="gate", gate="redis_cache_check")
        measured = []
        if data.get("hit_ratio") is not None:
            measured.append("hit ratio %s over %s lookups" % (
                _percent(data["hit_ratio"]), (data.get("hits") or 0) + (data.get("misses") or 0)))
        if data.get("ping_ms") is not None:
            measured.append("ping %s ms" % data["ping_ms"])
        event["text"] = "cache gate %s%s%s" % ("passed" if data.get("passed", True) else "FAILED",
                                               ": %s" % ", ".join(measured) if measured else "",
                                               " (%s)" % data["reason"] if data.get("reason") else "")
        return event
    if module == "router_switch":
        event = _pick(data, ("previous_live", "live", "switch_ms", "reloaded"))
        event["kind"] = "router_switch"
        event["text"] = "router %s -> %s" % (data.get("previous_live") or "none", data.get("live") or "?")
        if "switch_ms" in data:
            event["text"] += " in %s ms" % data["switch_ms"]
        return event
    if module == "feature_flag":
        flags = _changed_flags(data)
        event = {"kind": "flags", "flags": flags}
        event["text"] = "flags " + (", ".join(
            "%s %s -> %s" % (name, json.dumps(change["previous"]), json.dumps(change["current"]))
            for name, change in sorted(flags.items())) or "unchanged")
        return event
    if module == "preflight_check":
        counts = data.get("counts") or {}
        failed = [_pick(check, ("name", "detail")) for check in data.get("failed_checks") or [] if isinstance(check, dict)]
        event = {"kind": "preflight", "passed": data.get("passed"), "counts": counts, "failed_checks": failed}
        event["text"] = "preflight %s: %s ok, %s warn, %s fail%s" % (
            "passed" if data.get("passed") else "FAILED", counts.get("ok", 0), counts.get("warn", 0),
            counts.get("fail", 0), "".join("; %s: %s" % (c.get("name"), c.get("detail")) for c in failed))
        return event
    if module == "rollback_start":
        switch = data.get("switch") or {}
        event = _pick(data, ("target", "color", "warm", "switched", "noop"))
        event.update(kind="router_switch" if data.get("switched") else "rollback_plan",
                     previous_live=switch.get("previous_live"), switch_ms=switch.get("switch_ms"))
        if not data.get("state_found", True):
            event["text"] = "rollback: nothing deployed on this host"
        elif not data.get("target"):
            event["text"] = "rollback: no version to roll back to"
        elif data.get("noop"):
            event["text"] = "rollback: %s is already live" % data["target"]
        elif data.get("switched"):
            event["text"] = "rollback to %s: router %s -> %s in %s ms (warm)" % (
                data["target"], switch.get("previous_live") or "none", data.get("color"), switch.get("switch_ms", "?"))
        else:
            event["text"] = "rollback to %s: %s is %s" % (
                data["target"], data.get("color"), "warm" if data.get("warm") else "cold (%s)" % data.get("probe_reason"))
        return event
    if module == "deploy_lock":
        holder = data.get("holder") or {}
        event = {"kind": "lock", "acquired": data.get("acquired"), "owner": holder.get("owner")}
        event["text"] = "deploy lock %s" % ("taken" if data.get("acquired") else "released or held")
        return event
    if module == "deploy_state":
        state = data.get("state") or {}
        event = {"kind": "state", "live_color": state.get("live_color"), "live_version": state.get("live_version"),
                 "previous_version": state.get("previous_version")}
        event["text"] = "state: live %s (%s)%s" % (
            state.get("live_version") or "nothing", state.get("live_color") or "no color",
            ", previous %s" % state["previous_version"] if state.get("previous_version") else "")
        return event
    return None


def _fact_events(data):
    """Report entries set as facts: flag_rollout's audit entries (stage transitions) and any
    `prodready_report` dict or list of dicts."""
    facts = data.get("ansible_facts") or {}
    events = []
    entry = facts.get("flag_rollout_event")
    if isinstance(entry, dict):
        event = {"kind": "stage", "stage": entry.get("stage"), "action": entry.get("action"),
                 "result": entry.get("result"), "flags": entry.get("flags")}
        event["text"] = "stage %s: %s (%s)" % (entry.get("stage"), entry.get("action"), entry.get("result"))
        events.append(event)
    custom = facts.get("prodready_report")
    for item in (custom if isinstance(custom, list) else [custom] if isinstance(custom, dict) else []):
        if isinstance(item, dict):
            event = dict(item)
            event.setdefault("kind", "note")
            event.setdefault("text", to_text(item.get("text") or item.get("msg") or json.dumps(item, sort_keys=True)))
            events.append(event)
    return events


def failure_message(data):
    """The failure's own words: for a looped task (ansible's "One or more items failed"), the
    message of its first failed item, with the item count when more than one failed."""
    msg = to_text(data.get("msg") or "failed")
    items = data.get("results") if isinstance(data.get("results"), list) else []
    failed = [item for item in items if isinstance(item, dict) and item.get("failed")]
    if failed and not failed[0].get("_ansible_no_log"):
        msg = to_text(failed[0].get("msg") or msg)
        if len(failed) > 1:
            msg += " (and %d more failed items)" % (len(failed) - 1)
    return msg


def events_from_result(action, task_name, data, status):
    """Report events of one task result.

    action: the task's resolved action; task_name: its name; data: the result dict; status:
    ok, changed, failed, ignored (a failure with ignore_errors) or skipped. A looped task's
    items are read one by one. Returns a list of dicts, each with kind, task, module, status
    and text. Nothing of a result hidden with no_log is kept but the fact that it happened.
    """
    module = module_name(action)
    if status == "skipped":
        return []
    items = data.get("results") if isinstance(data.get("results"), list) else None
    if items is not None and module is not None:
        events = []
        for item in items:
            if not isinstance(item, dict) or item.get("skipped"):
                continue
            item_status = "failed" if item.get("failed") else ("changed" if item.get("changed") else "ok")
            if status == "ignored" and item_status == "failed":
                item_status = "ignored"
            events.extend(events_from_result(action, task_name, item, item_status))
        return events
    if data.get("_ansible_no_log") or data.get("censored"):
        if module is None or module == "set_fact":
            return []
        return [{"kind": "censored", "module": module, "task": task_name, "status": status,
                 "text": "%s: %s, %s" % (task_name, status, CENSORED)}]
    events = []
    if module == "set_fact":
        events = _fact_events(data)
    elif module is not None:
        event = summarize_module(module, data) if status not in ("failed", "ignored") or module in (
            "alembic_migrate", "health_gate", "redis_cache_check", "preflight_check") else None
        if event is not None:
            events.append(event)
    if status in ("failed", "ignored"):
        msg = failure_message(data)
        events.append({"kind": "failure", "msg": msg,
                       "text": "%s%s: %s" % ("ignored failure in " if status == "ignored" else "failed: ", task_name, msg)})
    for event in events:
        event.setdefault("module", module)
        event["task"] = task_name
        event["status"] = status
    return events


def host_summary(events, stats):
    """Outcome of one host: `failed` (a failure or unreachable left in the stats), else `ok`;
    `stopped_reason`: the last failure that was not ignored; `reverted`: the revert entries."""
    stats = stats or {}
    failures = [e for e in events if e.get("kind") == "failure" and e.get("status") == "failed"]
    outcome = "failed" if stats.get("failures") or stats.get("unreachable") else "ok"
    if stats.get("unreachable"):
        outcome = "unreachable"
    # flag_rollout's revert entry ends with "; cause: <the failure>", which stopped_reason holds
    reverted = [to_text(e.get("result") or e.get("text")).split("; cause: ")[0]
                for e in events if e.get("kind") == "stage" and e.get("action") == "revert"]
    return {
        "outcome": outcome,
        "stopped_reason": failures[-1]["msg"] if failures and outcome != "ok" else None,
        "reverted": reverted,
        "changed": sum(1 for e in events if e.get("status") == "changed"),
    }


def build_report(run, host_events, host_stats):
    """The report dict: run (playbooks, started, finished), and per host its summary and events."""
    hosts = {}
    for host in sorted(set(host_events) | set(host_stats)):
        events = host_events.get(host, [])
        entry = host_summary(events, host_stats.get(host))
        entry["stats"] = host_stats.get(host, {})
        entry["events"] = events
        hosts[host] = entry
    report = {"report_version": REPORT_VERSION}
    report.update(run)
    report["hosts"] = hosts
    report["outcome"] = "ok" if all(h["outcome"] == "ok" for h in hosts.values()) else "failed"
    return report


def render_summary(report, max_lines=12):
    """Short human summary: one block per host, what happened and why it stopped."""
    check = " -- CHECK MODE, what would have been done" if report.get("check_mode") else ""
    lines = ["DEPLOY REPORT: %s (%s)%s" % (report.get("outcome", "?").upper(), ", ".join(report.get("playbooks") or []), check)]
    for host, entry in sorted(report.get("hosts", {}).items()):
        lines.append("%s: %s" % (host, entry["outcome"].upper()))
        notable = [e for e in entry["events"] if e.get("kind") != "failure"]
        if len(notable) > max_lines:
            lines.append("  ... %d earlier entries in the report files" % (len(notable) - max_lines))
            notable = notable[-max_lines:]
        for event in notable:
            lines.append("  - %s" % event.get("text"))
        if entry.get("reverted"):
            lines.append("  reverted: %s" % " | ".join(entry["reverted"]))
        if entry.get("stopped_reason"):
            lines.append("  stopped: %s" % entry["stopped_reason"])
    if report.get("files"):
        lines.append("report: %s" % ", ".join(report["files"]))
    return "\n".join(lines)


def _md_cell(text):
    return to_text(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report):
    """The report as Markdown: run header, then per host its outcome and a table of events."""
    out = ["# Deploy report", ""]
    out.append("- outcome: **%s**" % report.get("outcome"))
    out.append("- playbooks: %s" % ", ".join(report.get("playbooks") or []))
    if report.get("check_mode"):
        out.append("- **check mode**: nothing was changed, the entries say what would have been done")
    out.append("- started: %s, finished: %s" % (report.get("started"), report.get("finished")))
    for host, entry in sorted(report.get("hosts", {}).items()):
        out += ["", "## %s: %s" % (host, entry["outcome"]), ""]
        if entry.get("stopped_reason"):
            out += ["Stopped: %s" % _md_cell(entry["stopped_reason"]), ""]
        if entry.get("reverted"):
            out += ["Reverted: %s" % _md_cell(" | ".join(entry["reverted"])), ""]
        out += ["| time | kind | status | what |", "|---|---|---|---|"]
        for event in entry["events"]:
            out.append("| %s | %s | %s | %s |" % (event.get("time", ""), event.get("kind"), event.get("status"),
                                                  _md_cell(event.get("text"))))
    return "\n".join(out) + "\n"


def report_paths(report_dir, stamp):
    """Free (json, md) paths for a run stamped `stamp`; a suffix -1, -2... when taken."""
    suffix = ""
    count = 0
    while True:
        base = os.path.join(report_dir, "deploy-report-%s%s" % (stamp, suffix))
        if not os.path.exists(base + ".json") and not os.path.exists(base + ".md"):
            return base + ".json", base + ".md"
        count += 1
        suffix = "-%d" % count


def write_private(path, text):
    """Write `text` to `path` atomically (temp file in the same directory, then rename), 0600."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".deploy-report-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class CallbackModule(CallbackBase):
    """Collects this collection's results per host and writes the deploy report at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "prodready.deploy.deploy_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display=display)
        self._events = {}
        self._playbooks = []
        self._started = _utcnow()

    @staticmethod
    def _parts(result):
        task = getattr(result, "task", None) or result._task
        host = getattr(result, "host", None) or result._host
        data = getattr(result, "result", None)
        if data is None:
            data = result._result
        return task, host, data

    def _record(self, result, status):
        task, host, data = self._parts(result)
        action = getattr(task, "resolved_action", None) or task.action
        if (task.no_log is True) and isinstance(data, dict):
            data = dict(data, _ansible_no_log=True)
        events = events_from_result(action, to_text(task.get_name()), data, status)
        stamp = _utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for event in events:
            event["time"] = stamp
        if events:
            self._events.setdefault(host.get_name(), []).extend(events)

    def v2_playbook_on_start(self, playbook):
        self._playbooks.append(os.path.basename(to_text(playbook._file_name)))

    def v2_runner_on_ok(self, result):
        task, host, data = self._parts(result)
        self._record(result, "changed" if data.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_unreachable(self, result):
        task, host, data = self._parts(result)
        self._events.setdefault(host.get_name(), []).append({
            "kind": "failure", "status": "failed", "task": to_text(task.get_name()), "module": None,
            "msg": "unreachable: %s" % to_text(data.get("msg", "")), "time": _utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "text": "unreachable: %s" % to_text(data.get("msg", ""))})

    def v2_playbook_on_stats(self, stats):
        finished = _utcnow()
        host_stats = dict((host, stats.summarize(host)) for host in stats.processed)
        report = build_report({
            "playbooks": self._playbooks,
            "started": self._started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finished": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_s": round((finished - self._started).total_seconds(), 3),
            "check_mode": bool(context.CLIARGS.get("check", False)),
        }, self._events, host_stats)
        report_dir = os.path.abspath(os.path.expanduser(self.get_option("report_dir")))
        try:
            if not os.path.isdir(report_dir):
                os.makedirs(report_dir, 0o700)
            json_path, md_path = report_paths(report_dir, self._started.strftime("%Y%m%dT%H%M%SZ"))
            report["files"] = [json_path, md_path]
            write_private(json_path, json.dumps(report, indent=2, sort_keys=True, default=to_text) + "\n")
            write_private(md_path, render_markdown(report))
        except (IOError, OSError) as e:
            report.pop("files", None)
            self._display.warning("deploy_report: cannot write the report into %s: %s" % (report_dir, to_text(e)))
        self._display.display(render_summary(report))
