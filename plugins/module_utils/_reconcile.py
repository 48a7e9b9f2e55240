# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Observe, then act: what the router serves against what state.json says (pure logic).

state.json is a record of what a run did; a run killed between its switch and its record, a
switch that could not go back, or a hand on the router makes it wrong. deploy_begin and
rollback_start read the router first (router_switch state=observed) and decide here what is
really live, what state.json must say, and what the router needs to be put in line: leftover
runtime backup servers removed, a second serving color drained, traffic given back to the live
color when none serves. The color that serves traffic is never the one a run starts on.

The intent a deploy records before its switch (state.json ``pending``: the run id, the color
and version it switches to, and the record its finalize would write) lets the next run say
which run was interrupted and where, and adopt that run's record (its backup, the revisions
before its migrations) when its switch had happened.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy


def observed_colors(router, observed, names):
    """(serving, backups, seen) from a router_switch state=observed result `observed`.

    `names` maps each color to the router's name for it: the haproxy server, or with nginx
    the address (host:port) the upstream points at when it serves. serving: the colors that take
    new traffic, sorted; backups: this host's runtime backup servers left in the backend;
    seen: color -> words for its state in the router (haproxy), for the messages."""
    by_name = dict((name, color) for color, name in names.items())
    if router == "nginx":
        address = observed.get("upstream_address")
        return ([by_name[address]] if address in by_name else []), [], {}
    states = observed.get("servers_state") or {}
    serving, seen = [], {}
    for color, name in sorted(names.items()):
        server = states.get(name)
        if server is None:
            seen[color] = "not in the backend"
            continue
        seen[color] = "%s/%s" % (server.get("admin_state"), server.get("status") or server.get("operational_state"))
        if server.get("admin_state") == "ready" and _haproxy.is_up(server):
            serving.append(color)
    backups = sorted(name for name in states
                     if name.startswith(_haproxy.BACKUP_PREFIX) and name[len(_haproxy.BACKUP_PREFIX):] in by_name)
    return serving, backups, seen


def none_present(router, observed, names):
    """True when a haproxy backend read holds none of this host's servers: the read was of
    another router or backend (hosts of one batch behind different routers), so it says
    nothing about this host and must not be reconciled with."""
    if router != "haproxy":
        return False
    states = observed.get("servers_state") or {}
    return not any(name in states for name in names.values())


def pending_of(state, run_id, key="pending"):
    """The intent an interrupted run recorded under `key` (``pending``: a deploy's,
    ``pending_rollback``: a rollback's); None when there is none, or it is this run's."""
    pending = state.get(key)
    if not isinstance(pending, dict) or not pending.get("run_id") or pending.get("run_id") == run_id:
        return None
    return pending


def _said(state):
    color = state.get("live_color") or ""
    return "%s (%s)" % (color, state.get("live_version") or "?") if color else "nothing is live"


def reconcile(state, serving, backups, seen, run_id, version_of, checked=True):
    """What is live and what to do about it.

    state: state.json as read; serving/backups/seen: observed_colors(); run_id: this run's;
    version_of(color): the version that color answers with now (None when it gives none);
    checked: the router health-checks its servers (haproxy), so a serving one is up; without
    (nginx), a color the router points at is adopted only when it answers.

    Returns dict(live_color, live_version, update, repair, text, event, revisions_before):
      live_color/live_version: what is really live after the decision (the color that serves
        is never given up for the record);
      update: keys state.json must take ({} when it is right);
      repair: the color the router must be put on (None: leave it), for leftover backup
        servers, a second serving color, or no color serving while the live one answers;
      text: the divergence in words ('' when the router and state.json agree);
      event: the audit event of the decision (None when nothing diverged);
      revisions_before: the revisions the live release runs on, when an interrupted run
        migrated the database without switching (its intent's db_revisions_before): the
        revisions this run must record to go back to, not the ones it finds; else None."""
    said_color = state.get("live_color") or None
    live_color, live_version = said_color, state.get("live_version") or None
    update, repair, words = {}, None, []
    pending = pending_of(state, run_id)
    if len(serving) == 1 and serving[0] != said_color and not checked and not version_of(serving[0]):
        words.append("the router points at %s, which does not answer; state.json says %s" % (serving[0], _said(state)))
    elif len(serving) == 1 and serving[0] != said_color:
        live_color = serving[0]
        served = version_of(live_color)
        live_version = served or (state.get("colors") or {}).get(live_color)
        words.append("the router serves %s (%s) but state.json says %s"
                     % (live_color, live_version or "no version", _said(state)))
        if pending and pending.get("color") == live_color and pending.get("version") == live_version:
            words.append("the run %s (started %s) was interrupted after its switch: its record is adopted"
                         % (pending["run_id"], pending.get("started_at") or "?"))
            update = dict(pending.get("record") or {})
        else:
            words.append("state.json is corrected to what the router serves")
            update = dict(live_color=live_color, live_version=live_version,
                          previous_color=said_color, previous_version=state.get("live_version"),
                          colors=dict(state.get("colors") or {}, **{live_color: live_version}))
        update.update(live_color=live_color, live_version=live_version)
        if backups:
            repair = live_color
    elif (len(serving) == 1 and pending and serving[0] == said_color == pending.get("color")
          and version_of(said_color) == pending.get("version") != state.get("live_version")):
        # The restart strategy restarts in place: same color, the new version answers.
        live_version = pending["version"]
        words.append("%s serves %s but state.json says %s: the run %s (started %s) was interrupted after its "
                     "release went live: its record is adopted"
                     % (said_color, live_version, _said(state), pending["run_id"], pending.get("started_at") or "?"))
        update = dict(pending.get("record") or {}, live_color=said_color, live_version=live_version)
        if backups:
            repair = said_color
    elif len(serving) > 1:
        keep = said_color if said_color in serving else serving[0]
        words.append("the router sends traffic to %s at once (a switch interrupted half-way, or a change by hand); "
                     "state.json says %s: %s keeps the traffic, the others are drained"
                     % (" and ".join(serving), _said(state), keep))
        live_color, repair = keep, keep
        if keep != said_color:
            live_version = version_of(keep) or (state.get("colors") or {}).get(keep)
            update = dict(live_color=keep, live_version=live_version)
    elif not serving and said_color:
        if version_of(said_color):
            words.append("the router sends no traffic to any color (%s) although state.json says %s, and %s "
                         "answers: traffic is given back to it"
                         % (", ".join("%s %s" % item for item in sorted(seen.items())) or "no server", _said(state),
                            said_color))
            repair = said_color
        else:
            words.append("the router sends no traffic to any color (%s) and %s, live in state.json, does not answer"
                         % (", ".join("%s %s" % item for item in sorted(seen.items())) or "no server", said_color))
    elif backups:
        repair = said_color
    if backups and repair:
        words.append("runtime backup server%s %s left by an interrupted run %s removed"
                     % ("s" if len(backups) > 1 else "", ", ".join(backups), "are" if len(backups) > 1 else "is"))
    carried = None
    if pending and not update:
        words.append("the run %s (started %s) was interrupted with traffic not on its new color %s (%s): it "
                     "stayed on (or went back to) %s"
                     % (pending["run_id"], pending.get("started_at") or "?", pending.get("color"),
                        pending.get("version"), live_color or "nothing"))
        record = pending.get("record") or {}
        if record.get("db_revisions") and record.get("db_revisions") != record.get("db_revisions_before"):
            words.append("its migrations may have run: the database may be at %s (before: %s, which this run "
                         "records as the revisions to go back to)"
                         % (",".join(record["db_revisions"]), ",".join(record.get("db_revisions_before") or [])
                            or "none"))
            carried = list(record.get("db_revisions_before") or [])
    if pending:
        update["pending"] = None
    text = "; ".join(words)
    event = None
    if text:
        event = dict(action="reconcile", result="adopted" if update.get("live_color") else "observed",
                     state_said=dict(live_color=said_color, live_version=state.get("live_version") or None),
                     observed=dict(serving=serving, backup_servers=backups),
                     live_color=live_color, live_version=live_version,
                     interrupted_run=(pending or {}).get("run_id"), repair=repair, message=text, run_id=run_id)
    return dict(live_color=live_color, live_version=live_version, update=update, repair=repair, text=text,
                event=event, revisions_before=carried)
