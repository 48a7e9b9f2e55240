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
  - Fleet work is attributed to the host it acted for. A task delegated to a host outside the
    play (a router, a backup host) is listed under the task's host, the delegate named
    (C(via r1)). A task delegated to another host of the play (a peer switched back from the
    failing host), a router switch back of a peer's servers, and facts set with
    C(delegate_facts) are listed under that host, the host that ran them named (C(by h3)).
    A C(run_once) task acted for its whole batch, so it is listed once, in the C(fleet) section,
    with the hosts it acted for (the fleet backup, the fleet switch and its switch back, the
    fleet gate).
  - Each host ends with an outcome, counted in the summary line of the run - C(live) (the new
    version, or the rollback target, serves), C(switched_back) (a peer's failure switched it
    back - a C(deploy_state) audit C(action=fleet_revert), a fleet switch back, or a switch back
    of its servers run by a peer), C(failed) (its own failure, with its message),
    C(unreachable), C(ok) (changed something, deployed nothing) or C(unchanged).
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
      - The file names are chosen when the run starts and the JSON report's path is put in the
        controller's environment as C(PRODREADY_REPORT_FILE), so that the run summaries the roles
        return with M(ansible.builtin.set_stats) (C(deploy_result), C(rollback_result),
        C(flag_rollout_result), C(exec_result)) name the report written at the end of the run.
      - Under AWX or C(ansible-runner), the default lands in the job's private data directory,
        which is deleted when the job ends; give a persistent directory instead (a volume mounted
        into the execution environment, for example C(/var/lib/prodready/reports)).
    type: path
    default: ./reports
    env:
      - name: PRODREADY_REPORT_DIR
    ini:
      - section: callback_deploy_report
        key: report_dir
  notify_webhooks:
    description:
      - Webhooks the summary is posted to at the end of the run (not in check mode) - a list of
        URLs (JSON), C(slack=<url>) (a Slack-compatible message, its C(text) the summary) or C(json=<url>)
        (the summary, the outcome, the hosts' outcomes and the report files' paths), or dicts
        with C(url), C(format) and C(headers). The extra variable C(deploy_notify_webhooks)
        (same forms; from an AWX survey or credential) adds to it.
      - A webhook that does not take it after O(notify_retries) tries is a warning; the run's
        result never changes. Output names a webhook by its scheme and host only (a Slack
        webhook's path is its secret).
    type: list
    elements: raw
    default: []
    env:
      - name: PRODREADY_NOTIFY_WEBHOOKS
    ini:
      - section: callback_deploy_report
        key: notify_webhooks
  notify_timeout:
    description: Seconds each try of a webhook may take.
    type: float
    default: 5
    env:
      - name: PRODREADY_NOTIFY_TIMEOUT
    ini:
      - section: callback_deploy_report
        key: notify_timeout
  notify_retries:
    description: Tries per webhook (1 s apart) on a connection error, a timeout, HTTP 408, 429 or 5xx.
    type: int
    default: 3
    env:
      - name: PRODREADY_NOTIFY_RETRIES
    ini:
      - section: callback_deploy_report
        key: notify_retries
"""

import datetime
import getpass
import json
import os
import tempfile

from ansible import context
from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import open_url
from ansible.plugins.callback import CallbackBase

from ansible_collections.prodready.deploy.plugins.plugin_utils import _notify

COLLECTION_PREFIX = "prodready.deploy."
REPORT_VERSION = 2
CENSORED = "censored (no_log)"
SET_FACT_ACTIONS = ("set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact")
REPORT_FACTS = ("flag_rollout_event", "prodready_report")
# Internal entry: a set_fact handed a dict with a `path` to hosts (the fleet backup handed to
# every host with delegate_facts). Matched with the backups of the run, never reported itself.
HANDOFF = "_handoff"
# Host outcomes, in the order the summary line counts them.
OUTCOMES = ("live", "switched_back", "failed", "unreachable", "ok", "unchanged")
OUTCOME_WORDS = {"live": "live", "switched_back": "switched back", "failed": "failed",
                 "unreachable": "unreachable", "ok": "ok", "unchanged": "unchanged"}
GOOD_OUTCOMES = ("live", "ok", "unchanged")
# The controller environment variable naming the JSON report of the run, set when it starts
# (the roles' set_stats summaries read it: app_report_file).
REPORT_FILE_ENV = "PRODREADY_REPORT_FILE"
# deploy_state audit actions whose success means the host serves the version in its state.
LIVE_ACTIONS = ("deploy", "rollback")


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


def _servers(value):
    """Router server name(s) of a router_switch result (`live`, `previous_live`) as a set."""
    if isinstance(value, (list, tuple)):
        return frozenset(to_text(item) for item in value if item)
    return frozenset([to_text(value)]) if value else frozenset()


def _servers_text(value, empty):
    if isinstance(value, (list, tuple)):
        return ", ".join(to_text(item) for item in value) or empty
    return to_text(value) if value else empty


def _changed_flags(data):
    changed = data.get("changed_flags") or []
    previous = data.get("previous") or {}
    current = data.get("current") or {}
    return dict((name, {"previous": previous.get(name), "current": current.get(name)}) for name in changed)


def _summarize_router_switch(data):
    if data.get("observed"):
        # state=observed: the router read before a plan, not a switch.
        return {"kind": "router_read", "serving": data.get("live"),
                "text": "router read: serving %s" % _servers_text(data.get("live"), "nothing")}
    event = _pick(data, ("previous_live", "live", "switch_ms", "reloaded"))
    event["kind"] = "router_switch"
    if "live" not in data and data.get("msg"):
        # A failed switch whose failure the task masked (failed_when: false), as the fleet
        # switch of the blue_green role does before it fails every host itself.
        event.update(switch_failed=True, msg=to_text(data["msg"]))
        event["text"] = "router switch FAILED: %s" % event["msg"]
        return event
    event["text"] = "router %s -> %s" % (_servers_text(data.get("previous_live"), "none"),
                                         _servers_text(data.get("live"), "?"))
    if "switch_ms" in data:
        event["text"] += " in %s ms" % data["switch_ms"]
    return event


def _summarize_deploy_state(data):
    state = data.get("state") or {}
    audit = data.get("audit_line") if isinstance(data.get("audit_line"), dict) else {}
    event = {"kind": "state", "live_color": state.get("live_color"), "live_version": state.get("live_version"),
             "previous_version": state.get("previous_version")}
    if state.get("host"):
        event["state_host"] = to_text(state["host"])
    event.update(_pick(audit, ("action", "result", "version", "reason")))
    event["text"] = "state: live %s (%s)%s" % (
        state.get("live_version") or "nothing", state.get("live_color") or "no color",
        ", previous %s" % state["previous_version"] if state.get("previous_version") else "")
    if audit.get("action"):
        # (the audit's reason is kept in `reason`; the host's stopped / switched back lines say it)
        event["text"] += "; audit %s%s" % (audit["action"], " %s" % audit["result"] if audit.get("result") else "")
    return event


def summarize_module(module, data):
    """Whitelisted facts of one result of a collection module, or None when the module is not
    one the report knows. Returns a dict with `kind`, the kept fields and `text` (one line)."""
    if module == "pg_backup":
        event = _pick(data, ("path", "size_bytes", "duration_s", "reused", "verified", "sha256",
                             "target_db", "swap_window_s", "pruned"))
        event["kind"] = "backup"
        mode = ((data.get("invocation") or {}).get("module_args") or {}).get("mode")
        if mode == "verify":
            # A check of a backup already taken (backup.yml's run), not a second backup.
            event["kind"] = "backup_verified"
            event["text"] = "backup verified: %s" % data.get("path", "?")
        elif "path" in data:
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
        # A check that could not run (Redis unreachable) has no verdict: its failure is the verdict.
        event["passed"] = bool(data.get("passed", not data.get("failed", False)))
        event["text"] = "cache gate %s%s%s" % ("passed" if event["passed"] else "FAILED",
                                               ": %s" % ", ".join(measured) if measured else "",
                                               " (%s)" % (data.get("reason") or data.get("msg"))
                                               if data.get("reason") or (data.get("failed") and data.get("msg")) else "")
        return event
    if module == "router_switch":
        return _summarize_router_switch(data)
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
        return _summarize_deploy_state(data)
    if module == "release_exec":
        # Never the output: a command may print what the report must not keep.
        event = _pick(data, ("version", "rc", "duration_s", "timed_out"))
        event["kind"] = "exec"
        event["text"] = "exec in %s: %s" % (data.get("version") or "?", "not run (check mode)" if data.get("rc") is None else (
            "rc %s in %s s%s" % (data["rc"], data.get("duration_s", "?"), " (timed out)" if data.get("timed_out") else "")))
        return event
    return None


def _fact_events(data):
    """Report entries set as facts: flag_rollout's audit entries (stage transitions) and any
    `prodready_report` dict or list of dicts. A fact that is a dict with a `path` (a backup
    handed to hosts) gives an internal HANDOFF entry, matched with the run's backups later."""
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
    paths = sorted(set(to_text(value["path"]) for name, value in facts.items()
                       if name not in REPORT_FACTS and isinstance(value, dict) and value.get("path")
                       and isinstance(value["path"], str)))
    if paths:
        events.append({"kind": HANDOFF, "paths": paths, "text": ""})
    return events


def failure_message(data):
    """The failure's own words: for a looped task (ansible's "One or more items failed"), the
    message of its first failed item, with the item count when more than one failed. A
    message given as lines (a debug that fails, showing a table) is its first line."""
    msg = data.get("msg") or "failed"
    msg = to_text(msg[0] if isinstance(msg, list) and msg else msg)
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
    items are read one by one (each event of an item has `_item`, its index, which the
    callback replaces by the item's own delegate). Returns a list of dicts, each with kind,
    task, module, status and text. Nothing of a result hidden with no_log is kept but the fact
    that it happened.
    """
    module = module_name(action)
    if status == "skipped":
        return []
    items = data.get("results") if isinstance(data.get("results"), list) else None
    if items is not None and module is not None:
        events = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or item.get("skipped"):
                continue
            item_status = "failed" if item.get("failed") else ("changed" if item.get("changed") else "ok")
            if status == "ignored" and item_status == "failed":
                item_status = "ignored"
            for event in events_from_result(action, task_name, item, item_status):
                event["_item"] = index
                events.append(event)
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


# --- Who a result acted for --------------------------------------------------------------

class _Switches(object):
    """The router switches of the run so far: each host's own switch to its new servers (so a
    later switch back of those servers run by a peer is known as that host's), and the fleet
    switches (run_once, a list of servers)."""

    def __init__(self):
        self.forward = {}   # host -> (servers made live, servers live before) of its last switch
        self.claims = {}    # host -> every server it switched for itself
        self.fleet = []     # (servers made live, servers live before) of each fleet switch

    def host_switch(self, event, host):
        """(the host the switch acted for, direction: forward, back or None)."""
        live, before = _servers(event.get("live")), _servers(event.get("previous_live"))
        if event.get("switch_failed") or event.get("status") not in ("ok", "changed") or not live:
            return host, None
        target = host
        if not live & self.claims.get(host, frozenset()):
            # Servers this host never switched, that one peer's own switch moved away from: the
            # peer's switch back, run by this host (blue_green's fleet revert).
            owners = [peer for peer, (made, was) in self.forward.items() if peer != host and live <= was]
            if len(owners) == 1:
                target = owners[0]
        own = self.forward.get(target)
        if own and live <= own[1] and live != own[0]:
            return target, "back"
        if own and live == own[0]:
            return target, None
        self.forward[target] = (live, before)
        self.claims[target] = self.claims.get(target, frozenset()) | live | before
        return target, "forward"

    def fleet_switch(self, event):
        live, before = _servers(event.get("live")), _servers(event.get("previous_live"))
        if event.get("switch_failed") or event.get("status") not in ("ok", "changed") or not live:
            return None
        if any(live <= was and live != made for made, was in self.fleet):
            return "back"
        self.fleet.append((live, before))
        return "forward"


def _failed_first(failures, batch_hosts):
    """The hosts of a batch whose own failure led to a fleet switch back: those that failed
    before it, except in a task that failed on every host of the batch (a fleet decision, such
    as blue_green's "fail every host when the fleet's gate failed")."""
    by_task = {}
    for host, task in failures:
        by_task.setdefault(task, set()).add(host)
    everyone = set(batch_hosts)
    return sorted(set(host for hosts in by_task.values() if not everyone <= hosts for host in hosts))


def _suffix(event):
    parts = []
    if event.get("by"):
        parts.append("by %s" % event["by"])
    if event.get("via"):
        parts.append("via %s" % event["via"])
    return " (%s)" % ", ".join(parts) if parts else ""


def _fleet_text(event):
    kind, text = event.get("kind"), to_text(event.get("text"))
    if kind == "router_switch" and event.get("module") == "router_switch":
        if event.get("switch_failed"):
            text = "fleet switch FAILED: %s" % event.get("msg")
        else:
            text = "fleet switch%s: %s live at once%s" % (
                " back" if event.get("direction") == "back" else "", _servers_text(event.get("live"), "?"),
                ", %s ms" % event["switch_ms"] if event.get("switch_ms") is not None else "")
    elif kind == "gate":
        text = "fleet " + text
    elif kind == "backup" and event.get("path"):
        text += " on %s" % (event.get("via") or event.get("by"))
        if event.get("handed_to"):
            return text + ", handed to %s" % ", ".join(event["handed_to"])
    where = ["via %s" % event["via"]] if event.get("via") and kind != "backup" else []
    where.append("for %s" % ", ".join(event.get("hosts") or []))
    return "%s (%s)" % (text, "; ".join(where))


def attribute_events(log, batches=None):
    """Who each recorded event acted for.

    log: the events in the order the callback recorded them, each with `_ctx`: the task's
    `host` (its inventory_hostname), `delegate` (delegate_to when another host), `run_once`,
    `delegate_facts`, `batch` (index in `batches`) and `exclude` (hosts unreachable by then).
    batches: the serial batches of the run, each {play, hosts}.

    Returns (host_events, fleet_events). A run_once event acted for its batch: it is a fleet
    event with `hosts`, `by` (the host that ran it) and `via` (its delegate). Any other event
    goes to one host: the delegate when the delegate is a host of the same play (a peer: its
    state, its processes) or when facts were delegated, the owner of the servers a router
    switch moved back, the host of the state a deploy_state wrote, else the task's host. `by`
    names the task's host when that is another host, `via` the delegate when it is not the host
    acted for. Router switches get `direction` (forward, back); a switch back gets `cause`: the
    last failure of the run before it.
    """
    batches = batches or []
    play_hosts = {}
    for batch in batches:
        play_hosts.setdefault(batch.get("play"), set()).update(batch.get("hosts") or [])
    seen = set((event.get("_ctx") or {}).get("host") for event in log) - set([None])
    host_events, fleet = {}, []
    switches = _Switches()
    backups = {}
    last_failure = None
    batch_failures = {}  # batch -> [(host, task)] of the failures in it not ignored
    for seq, original in enumerate(log):
        event = dict(original)
        ctx = event.pop("_ctx", None) or {}
        event["_seq"] = seq
        host = ctx.get("host")
        delegate = ctx.get("delegate") if ctx.get("delegate") != host else None
        # delegate_facts: the facts are the delegate's, also when it is the task's own host
        facts_to = ctx.get("delegate") if ctx.get("delegate_facts") else None
        batch = batches[ctx["batch"]] if isinstance(ctx.get("batch"), int) and 0 <= ctx["batch"] < len(batches) else {}
        peers = play_hosts.get(batch.get("play")) or seen
        batch_hosts = [name for name in batch.get("hosts") or [] if name not in (ctx.get("exclude") or [])] or [host]
        kind, module = event.get("kind"), event.get("module")
        if kind == HANDOFF:
            targets = [facts_to] if facts_to else (batch_hosts if ctx.get("run_once") else [host])
            for path in event.get("paths") or []:
                if path in backups:
                    backups[path]["handed_to"] = sorted(set(backups[path].get("handed_to", [])) | set(targets))
            continue
        if kind == "failure" and event.get("status") == "failed":
            last_failure = "%s: %s" % (host, event.get("msg"))
            batch_failures.setdefault(ctx.get("batch"), []).append((host, event.get("task")))
        if ctx.get("run_once") and not facts_to:
            event.update(hosts=list(batch_hosts), by=host)
            if delegate:
                event["via"] = delegate
            if kind == "router_switch" and module == "router_switch":
                event["direction"] = switches.fleet_switch(event)
                if event["direction"] == "back":
                    if last_failure:
                        event["cause"] = last_failure
                    event["failed_hosts"] = _failed_first(batch_failures.get(ctx.get("batch"), []), batch_hosts)
            if kind == "backup" and event.get("path"):
                backups[event["path"]] = event
            fleet.append(event)
            continue
        target = host
        if kind == "failure":
            pass  # the host whose run stopped
        elif module == "set_fact":
            target = facts_to or host
        elif kind == "router_switch" and module == "router_switch":
            target, event["direction"] = switches.host_switch(event, host)
            if event["direction"] == "back" and target != host and last_failure:
                event["cause"] = last_failure
        elif event.get("state_host") and event["state_host"] in peers:
            target = event["state_host"]
        elif delegate and delegate in peers:
            target = delegate
        if target != host:
            event["by"] = host
        if delegate and delegate != target:
            event["via"] = delegate
        if event.get("direction") == "back":
            event["text"] = "switch back: " + to_text(event.get("text"))
        event["text"] = to_text(event.get("text")) + _suffix(event)
        if kind == "backup" and event.get("path"):
            backups[event["path"]] = event
        host_events.setdefault(target, []).append(event)
    for event in fleet:
        event["text"] = _fleet_text(event)
        if event.get("handed_to"):
            event["hosts"] = sorted(set(event["hosts"]) | set(event["handed_to"]))
    return host_events, fleet


# --- Outcomes --------------------------------------------------------------------------------

def _timeline(events, fleet_events):
    merged = [(event.get("_seq", index), 0, event) for index, event in enumerate(events)]
    merged += [(event.get("_seq", len(events) + index), 1, event) for index, event in enumerate(fleet_events)]
    return [(event, bool(from_fleet)) for dummy, from_fleet, event in sorted(merged, key=lambda item: (item[0], item[1]))]


def _switched_back(event, from_fleet, host):
    """The switch back an event means for `host` (who, via what, to what, why), or None."""
    if event.get("kind") == "state" and event.get("action") == "fleet_revert" and event.get("status") != "failed":
        return {"by": event.get("by"), "via": event.get("via"), "to": event.get("live_version"),
                "reason": event.get("reason"), "fleet": False}
    if event.get("module") == "router_switch" and event.get("direction") == "back":
        if from_fleet and host in (event.get("failed_hosts") or []):
            return None  # the host whose failure it was: its own switch back
        if from_fleet or (event.get("by") and event["by"] != host):
            # (a fleet switch back's servers are every host's: the fleet section lists them)
            return {"by": event.get("by"), "via": event.get("via"),
                    "to": None if from_fleet else _servers_text(event.get("live"), None),
                    "reason": event.get("cause"), "fleet": from_fleet}
    return None


def host_summary(events, stats, fleet_events=(), host=None):
    """Outcome of one host.

    events: the host's own events (attribute_events); stats: its play recap counts;
    fleet_events: the run's fleet events, those whose `hosts` hold `host` count for it.

    `outcome`: `unreachable`; `switched_back` when the last switch that concerned the host was
    a switch back for a peer's failure (a deploy_state fleet_revert, a fleet switch back, a
    switch back of its servers by a peer); `failed` (a failure left in the stats, or a fleet
    task's failure that stopped it); `live` (its last switch or deploy_state deploy/rollback
    success moved it to a version); `ok` (changed something); `unchanged`.
    `stopped_reason`: its last failure that was not ignored; `reverted`: the flag_rollout
    revert entries and its own switch back; `switched_back`: by, via, to, reason, fleet;
    `live_version`: the version its last deploy_state recorded.
    """
    stats = stats or {}
    covering = [event for event in fleet_events if host is not None and host in (event.get("hosts") or [])]
    failures = [e for e in events if e.get("kind") == "failure" and e.get("status") == "failed"]
    fleet_failures = [e for e in covering if e.get("kind") == "failure" and e.get("status") == "failed"]
    if stats.get("rescued"):
        fleet_failures = []
    position = None  # forward, back (by a peer or the fleet), self (its own switch back)
    switched_back, live_version = None, None
    reverted = []
    for event, from_fleet in _timeline(events, covering):
        kind = event.get("kind")
        if kind == "stage" and event.get("action") == "revert":
            # flag_rollout's revert entry ends with "; cause: <the failure>", which stopped_reason holds
            reverted.append(to_text(event.get("result") or event.get("text")).split("; cause: ")[0])
        if kind == "state" and event.get("live_version"):
            live_version = event["live_version"]
        back = _switched_back(event, from_fleet, host)
        if back is not None:
            if position == "back" and switched_back:
                back = dict((key, back.get(key) or switched_back.get(key)) for key in set(back) | set(switched_back))
            position, switched_back = "back", back
        elif kind == "state" and event.get("action") in LIVE_ACTIONS and event.get("result") == "success":
            position, switched_back = "forward", None
        elif kind == "router_switch" and event.get("status") in ("ok", "changed"):
            if event.get("direction") == "forward" or (event.get("module") == "rollback_start" and event.get("switched")):
                position, switched_back = "forward", None
            elif event.get("direction") == "back":
                position = "self"
                reverted.append("traffic back to %s" % _servers_text(event.get("live"), "?"))
    if stats.get("unreachable"):
        outcome = "unreachable"
    elif position == "back":
        outcome = "switched_back"
    elif stats.get("failures") or fleet_failures:
        outcome = "failed"
    elif position == "forward":
        outcome = "live"
    elif stats.get("changed") or any(e.get("status") == "changed" for e in events):
        outcome = "ok"
    else:
        outcome = "unchanged"
    stopped = failures[-1]["msg"] if failures else (fleet_failures[-1]["msg"] if fleet_failures else None)
    return {
        "outcome": outcome,
        "stopped_reason": stopped if outcome not in GOOD_OUTCOMES else None,
        "reverted": reverted,
        "switched_back": switched_back if outcome == "switched_back" else None,
        "live_version": live_version,
        "changed": sum(1 for e in events if e.get("status") == "changed"),
    }


def _fleet_summary(fleet_events):
    """The fleet-level facts: first backup taken, last fleet switch and switch back, last gate."""
    def last(predicate):
        found = [event for event in fleet_events if predicate(event)]
        return found[-1] if found else None

    def keep(event, keys):
        if event is None:
            return None
        picked = _pick(event, keys)
        picked.update(hosts=event.get("hosts"), host=event.get("via") or event.get("by"))
        return picked

    backups = [e for e in fleet_events if e.get("kind") == "backup" and e.get("path")]
    switch_keys = ("live", "previous_live", "switch_ms", "status", "switch_failed", "msg", "cause", "failed_hosts")
    return {
        "backup": keep(backups[0] if backups else None,
                       ("path", "size_bytes", "duration_s", "reused", "sha256", "handed_to")),
        "switch": keep(last(lambda e: e.get("module") == "router_switch" and e.get("direction") != "back"),
                       switch_keys),
        "switch_back": keep(last(lambda e: e.get("module") == "router_switch" and e.get("direction") == "back"),
                            switch_keys),
        "gate": keep(last(lambda e: e.get("kind") == "gate"),
                     ("gate", "passed", "reason", "samples", "errors", "error_rate", "p95_ms", "hit_ratio")),
    }


def outcome_counts(hosts):
    """{outcome: number of hosts}, every outcome of OUTCOMES."""
    counts = dict((outcome, 0) for outcome in OUTCOMES)
    for entry in hosts.values():
        counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
    return counts


def counts_text(report):
    """One line: the hosts counted by outcome, e.g. "2 live on 1.4.0, 1 switched back, 1 failed"."""
    counts = report.get("counts") or {}
    versions = sorted(set(to_text(entry.get("live_version")) for entry in report.get("hosts", {}).values()
                          if entry.get("outcome") == "live" and entry.get("live_version")))
    parts = []
    for outcome in OUTCOMES:
        if counts.get(outcome):
            word = OUTCOME_WORDS[outcome]
            if outcome == "live" and versions:
                word += " on %s" % ", ".join(versions)
            parts.append("%d %s" % (counts[outcome], word))
    return ", ".join(parts) or "no host"


def _strip_internal(events):
    for event in events:
        event.pop("_seq", None)


def build_report(run, host_events, host_stats, fleet_events=None):
    """The report dict: run (playbooks, started, finished), per host its summary and events, the
    fleet section (events that acted for a whole batch), and the hosts counted by outcome."""
    fleet_events = list(fleet_events or [])
    hosts = {}
    for host in sorted(set(host_events) | set(host_stats)):
        events = host_events.get(host, [])
        entry = host_summary(events, host_stats.get(host), fleet_events, host)
        entry["stats"] = host_stats.get(host, {})
        entry["events"] = events
        entry["fleet_events"] = [index for index, event in enumerate(fleet_events) if host in (event.get("hosts") or [])]
        hosts[host] = entry
    for entry in hosts.values():
        _strip_internal(entry["events"])
    _strip_internal(fleet_events)
    report = {"report_version": REPORT_VERSION}
    report.update(run)
    report["hosts"] = hosts
    report["fleet"] = dict(_fleet_summary(fleet_events), events=fleet_events)
    report["counts"] = outcome_counts(hosts)
    report["outcome"] = "ok" if all(h["outcome"] in GOOD_OUTCOMES for h in hosts.values()) else "failed"
    return report


# --- Renderings ------------------------------------------------------------------------------

def _host_title(entry, upper=False):
    outcome = entry["outcome"]
    title = OUTCOME_WORDS.get(outcome, outcome)
    title = title.upper() if upper else title
    if outcome == "live" and entry.get("live_version"):
        title += " on %s" % entry["live_version"]
    back = entry.get("switched_back") or {}
    if outcome == "switched_back" and back.get("to"):
        title += " to %s" % back["to"]
    return title


def _switched_back_text(back):
    who = "fleet switch back" if back.get("fleet") else ("by %s" % back["by"] if back.get("by") else "with its peers")
    if back.get("via"):
        who += " via %s" % back["via"]
    return "%s%s" % (who, ": %s" % to_text(back["reason"]).strip() if back.get("reason") else "")


def launch_of(extra_vars):
    """Who launched the run and its AWX job, from the play's extra variables (AWX sets
    awx_user_name and awx_job_id; awx_url, the AWX address, is the operator's): the launching
    user falls back to the controller's login name."""
    extra = extra_vars or {}
    who = extra.get("awx_user_name") or extra.get("tower_user_name")
    if not who:
        try:
            who = getpass.getuser()
        except Exception:  # neither the environment nor the password database knows the uid
            who = None
    job_id = extra.get("awx_job_id") or extra.get("tower_job_id")
    job = None
    if job_id:
        base = to_text(extra.get("awx_url") or "").rstrip("/")
        job = {"id": to_text(job_id), "url": "%s/#/jobs/playbook/%s" % (base, job_id) if base else None,
               "template": extra.get("awx_job_template_name") or extra.get("tower_job_template_name")}
    return {"launched_by": to_text(who) if who else None, "job": job}


def render_summary(report, max_lines=12):
    """Short human summary: the hosts counted by outcome, the fleet section, then one block per
    host, what happened and why it stopped."""
    check = " -- CHECK MODE, what would have been done" if report.get("check_mode") else ""
    lines = ["DEPLOY REPORT: %s (%s)%s" % (report.get("outcome", "?").upper(), ", ".join(report.get("playbooks") or []), check)]
    lines.append("hosts: %s" % counts_text(report))
    fleet = (report.get("fleet") or {}).get("events") or []
    notable = [e for e in fleet if e.get("kind") != "failure"]
    if notable:
        lines.append("fleet:")
        if len(notable) > max_lines:
            lines.append("  ... %d earlier entries in the report files" % (len(notable) - max_lines))
            notable = notable[-max_lines:]
        lines += ["  - %s" % event.get("text") for event in notable]
    for host, entry in sorted(report.get("hosts", {}).items()):
        lines.append("%s: %s" % (host, _host_title(entry, upper=True)))
        notable = [e for e in entry["events"] if e.get("kind") != "failure"]
        if len(notable) > max_lines:
            lines.append("  ... %d earlier entries in the report files" % (len(notable) - max_lines))
            notable = notable[-max_lines:]
        for event in notable:
            lines.append("  - %s" % event.get("text"))
        if entry.get("switched_back"):
            lines.append("  switched back: %s" % _switched_back_text(entry["switched_back"]))
        if entry.get("reverted"):
            lines.append("  reverted: %s" % " | ".join(entry["reverted"]))
        if entry.get("stopped_reason"):
            lines.append("  stopped: %s" % entry["stopped_reason"])
    job = report.get("job") or {}
    if report.get("launched_by") or job:
        lines.append("launched by %s%s" % (report.get("launched_by") or "?", (" (AWX job %s%s)" % (
            job.get("id"), (" " + job["url"]) if job.get("url") else "")) if job else ""))
    if report.get("files"):
        lines.append("report: %s" % ", ".join(report["files"]))
    return "\n".join(lines)


def _md_cell(text):
    return to_text(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report):
    """The report as Markdown: run header with the hosts counted by outcome, the fleet section,
    then per host its outcome and a table of events."""
    out = ["# Deploy report", ""]
    out.append("- outcome: **%s**" % report.get("outcome"))
    out.append("- hosts: %s" % counts_text(report))
    out.append("- playbooks: %s" % ", ".join(report.get("playbooks") or []))
    if report.get("check_mode"):
        out.append("- **check mode**: nothing was changed, the entries say what would have been done")
    out.append("- started: %s, finished: %s" % (report.get("started"), report.get("finished")))
    if report.get("launched_by"):
        out.append("- launched by: %s" % report["launched_by"])
    job = report.get("job") or {}
    if job:
        out.append("- AWX job: %s%s%s" % (job.get("id"), (" (%s)" % job["template"]) if job.get("template") else "",
                                          (" %s" % job["url"]) if job.get("url") else ""))
    fleet = (report.get("fleet") or {}).get("events") or []
    if fleet:
        out += ["", "## Fleet", "", "Tasks run once for a whole batch (`run_once`), listed once.", "",
                "| time | kind | status | for hosts | what |", "|---|---|---|---|---|"]
        for event in fleet:
            out.append("| %s | %s | %s | %s | %s |" % (event.get("time", ""), event.get("kind"), event.get("status"),
                                                       _md_cell(", ".join(event.get("hosts") or [])),
                                                       _md_cell(event.get("text"))))
    for host, entry in sorted(report.get("hosts", {}).items()):
        out += ["", "## %s: %s" % (host, _host_title(entry)), ""]
        if entry.get("switched_back"):
            out += ["Switched back: %s" % _md_cell(_switched_back_text(entry["switched_back"])), ""]
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


def _stamp():
    return _utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _delegate_of(task):
    """The host a task (or a loop item) was delegated to, None when not delegated or still a
    template (a looped task's own delegate_to: each item says its own)."""
    delegate = getattr(task, "delegate_to", None)
    if not delegate or not isinstance(delegate, str) or "{{" in delegate or "{%" in delegate:
        return None
    return to_text(delegate)


def _play_hosts(play):
    """The hosts of the batch a play starts (ansible restricts the inventory to the serial
    batch before it sends v2_playbook_on_play_start), or [] when they cannot be read."""
    try:
        inventory = play.get_variable_manager()._inventory  # pylint: disable=protected-access
        return [to_text(host.name) for host in inventory.get_hosts(play.hosts, order=getattr(play, "order", None))]
    except (AttributeError, TypeError, KeyError, AnsibleError):
        return []


class CallbackModule(CallbackBase):
    """Collects this collection's results per host and writes the deploy report at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "prodready.deploy.deploy_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display=display)
        self._log = []
        self._batches = []
        self._item_delegates = {}
        self._unreachable = set()
        self._playbooks = []
        self._started = _utcnow()
        self._extra_webhooks = None
        self._launch = launch_of({})
        self._paths = None

    @staticmethod
    def _parts(result):
        task = getattr(result, "task", None) or result._task
        host = getattr(result, "host", None) or result._host
        data = getattr(result, "result", None)
        if data is None:
            data = result._result
        return task, host, data

    def _batch_of(self, host):
        """Index of the current batch, which now holds `host` (when the inventory could not be
        read at play start, the batch is the hosts seen in it)."""
        if not self._batches:
            self._batches.append({"play": None, "name": None, "hosts": []})
        batch = self._batches[-1]
        if host not in batch["hosts"]:
            batch["hosts"].append(host)
        return len(self._batches) - 1

    def _record(self, result, status):
        task, host, data = self._parts(result)
        name = to_text(host.get_name())
        batch = self._batch_of(name)
        delegates = self._item_delegates.pop((name, getattr(task, "_uuid", id(task))), [])
        action = getattr(task, "resolved_action", None) or task.action
        if (task.no_log is True) and isinstance(data, dict):
            data = dict(data, _ansible_no_log=True)
        events = events_from_result(action, to_text(task.get_name()), data, status)
        stamp = _stamp()
        context_ = {"host": name, "run_once": bool(getattr(task, "run_once", False)),
                    "delegate_facts": bool(getattr(task, "delegate_facts", False)),
                    "batch": batch, "exclude": sorted(self._unreachable)}
        for event in events:
            item = event.pop("_item", None)
            delegate = delegates[item] if item is not None and item < len(delegates) else _delegate_of(task)
            event["time"] = stamp
            event["_ctx"] = dict(context_, delegate=delegate)
            self._log.append(event)

    def _record_item(self, result):
        """A loop item: remember its own delegate (the looped task's result does not say it)."""
        task, host, dummy = self._parts(result)
        key = (to_text(host.get_name()), getattr(task, "_uuid", id(task)))
        self._item_delegates.setdefault(key, []).append(_delegate_of(task))

    def v2_playbook_on_start(self, playbook):
        self._playbooks.append(os.path.basename(to_text(playbook._file_name)))
        if self._paths is None:
            self._reserve_paths()

    def _report_dir(self):
        return os.path.abspath(os.path.expanduser(self.get_option("report_dir")))

    def _reserve_paths(self):
        """Name the report files now, and tell the play (REPORT_FILE_ENV in the controller's
        environment, inherited by the workers that template its tasks): the run summaries the
        roles return with set_stats name the report before it is written. The JSON file is
        created at once (O_EXCL), so that runs started in the same second into the same
        directory never share a name; until the run ends it says the run is still running."""
        report_dir = self._report_dir()
        stamp = self._started.strftime("%Y%m%dT%H%M%SZ")
        try:
            if not os.path.isdir(report_dir):
                os.makedirs(report_dir, 0o700)
            for count in range(1000):
                base = os.path.join(report_dir, "deploy-report-%s%s" % (stamp, "-%d" % count if count else ""))
                try:
                    fd = os.open(base + ".json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    continue
                with os.fdopen(fd, "w") as handle:
                    handle.write(json.dumps({"outcome": "running", "started": self._started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                             "playbooks": self._playbooks, "version": REPORT_VERSION}) + "\n")
                self._paths = (base + ".json", base + ".md")
                os.environ[REPORT_FILE_ENV] = self._paths[0]
                return
        except (IOError, OSError):
            return  # said at the end, when writing fails

    def v2_playbook_on_play_start(self, play):
        if self._extra_webhooks is None:
            try:
                extra = play.get_variable_manager().extra_vars
            except Exception:  # no variable manager (a test double): the options alone
                extra = {}
            self._extra_webhooks = extra.get("deploy_notify_webhooks") or []
            self._launch = launch_of(extra)
        # Sent once per serial batch, the inventory restricted to the batch.
        self._batches.append({"play": to_text(getattr(play, "_uuid", None) or id(play)),
                              "name": to_text(play.get_name()) if hasattr(play, "get_name") else None,
                              "hosts": _play_hosts(play)})

    def v2_runner_item_on_ok(self, result):
        self._record_item(result)

    def v2_runner_item_on_failed(self, result):
        self._record_item(result)

    def v2_runner_item_on_skipped(self, result):
        self._record_item(result)

    def v2_runner_on_ok(self, result):
        task, host, data = self._parts(result)
        self._record(result, "changed" if data.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        task, host, data = self._parts(result)
        self._item_delegates.pop((to_text(host.get_name()), getattr(task, "_uuid", id(task))), None)
        self._batch_of(to_text(host.get_name()))

    def v2_runner_on_unreachable(self, result):
        task, host, data = self._parts(result)
        name = to_text(host.get_name())
        msg = "unreachable: %s" % to_text(data.get("msg", ""))
        self._log.append({"kind": "failure", "status": "failed", "task": to_text(task.get_name()), "module": None,
                          "msg": msg, "time": _stamp(), "text": msg,
                          "_ctx": {"host": name, "batch": self._batch_of(name), "delegate": None}})
        self._unreachable.add(name)

    def v2_playbook_on_stats(self, stats):
        finished = _utcnow()
        host_stats = dict((host, stats.summarize(host)) for host in stats.processed)
        host_events, fleet_events = attribute_events(self._log, self._batches)
        report = build_report({
            "playbooks": self._playbooks,
            "started": self._started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finished": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_s": round((finished - self._started).total_seconds(), 3),
            "check_mode": bool(context.CLIARGS.get("check", False)),
            "launched_by": self._launch["launched_by"],
            "job": self._launch["job"],
        }, host_events, host_stats, fleet_events)
        report_dir = self._report_dir()
        try:
            if not os.path.isdir(report_dir):
                os.makedirs(report_dir, 0o700)
            # The names taken and given to the play when the run started.
            json_path, md_path = self._paths or report_paths(report_dir, self._started.strftime("%Y%m%dT%H%M%SZ"))
            report["files"] = [json_path, md_path]
            write_private(json_path, json.dumps(report, indent=2, sort_keys=True, default=to_text) + "\n")
            write_private(md_path, render_markdown(report))
        except (IOError, OSError) as e:
            report.pop("files", None)
            self._display.warning("deploy_report: cannot write the report into %s: %s" % (report_dir, to_text(e)))
        summary = render_summary(report)
        self._display.display(summary)
        if not report.get("check_mode"):
            self._notify(report, summary)

    def _option(self, name, default):
        """The option's value; `default` where the options were set without it (a callback
        built by hand, as the unit tests do)."""
        try:
            return self.get_option(name)
        except KeyError:
            return default

    def _notify(self, report, summary):
        """Post the summary to the webhooks; a failure is a warning, never the run's result."""
        try:
            hooks = (_notify.targets(self._option("notify_webhooks", []), "notify_webhooks")
                     + _notify.targets(self._extra_webhooks, "deploy_notify_webhooks"))
        except _notify.ConfigError as e:
            self._display.warning("deploy_report: no notification sent: %s" % to_text(e))
            return
        for fmt, url, headers in hooks:
            ok, tries, problem = _notify.post(url, _notify.payload(fmt, report, summary), headers,
                                              float(self._option("notify_timeout", 5)),
                                              int(self._option("notify_retries", 3)), 1.0, _open)
            if ok:
                self._display.display("deploy_report: notified %s (%s)" % (_notify.redact(url), fmt))
            else:
                self._display.warning("deploy_report: the webhook %s (%s) did not take the report after %d tries (%s);"
                                      " the run's result is unchanged" % (_notify.redact(url), fmt, tries, problem))


def _open(url, data, headers, timeout):
    """POST for _notify.post: the HTTP status (open_url raises on 4xx/5xx with the code)."""
    response = open_url(url, data=data, headers=headers, method="POST", timeout=timeout, follow_redirects="safe")
    try:
        return response.getcode()
    finally:
        response.close()
