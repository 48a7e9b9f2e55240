# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rollback_start
short_description: Start a rollback in one call - lock, plan, and the switch to a warm color
version_added: 0.1.0
description:
  - The first step of the C(rollback) role, in one module call so that traffic is back on a
    warm previous release within about a second of the play starting. Every module call
    costs a Python start-up and the import of Ansible's module code (about 0.5 s of CPU);
    doing the lock, the plan, the probe and the switch as four calls took over 6 s.
  - In this order, it takes the deploy lock like M(prodready.deploy.deploy_lock) (after
    checking that O(state_path) exists; when it does not, it returns RV(state_found=false)
    without locking); reads the host state like M(prodready.deploy.deploy_state); works
    out the target version (O(to), else the state's C(previous_version)) and the color for
    it (one that ran it, else an idle one); asks that color which version it serves, with
    one request (warm = it answers with the target version).
  - When the color is warm, O(switch=true) and the router is haproxy, it switches the
    backend to that color as M(prodready.deploy.router_switch) does for haproxy with
    O(prodready.deploy.router_switch#module:servers) set to the servers of O(colors)
    (C(<server_prefix><color>)) (make it
    ready, wait until haproxy's health checks say UP, drain the other colors; their runtime
    backup servers are removed; other servers of the backend, such as other hosts' colors in
    a shared backend, are left as they are) and appends the switch's audit line to
    O(audit_log).
  - It reports a change only when it switched; the lock it takes is released at the end of
    the run, so an idempotent re-run reports C(changed=false).
  - It fails only when it cannot do what it was asked (the lock is held, the runtime API does
    not answer, the color does not come up); the decisions (nothing deployed, nothing to roll
    back to, the color is cold) are returned for the caller to act on. A failure after the
    lock was taken releases the lock, and RV(locked) says so.
author:
  - prodready.deploy maintainers (@prodready)
options:
  state_path:
    description:
      - The host's deploy state file (C(state.json)).
    type: path
    required: true
  lock_path:
    description:
      - The deploy lock file (C(deploy.lock)), as M(prodready.deploy.deploy_lock) takes it.
    type: path
    required: true
  run_id:
    description:
      - Identifies this run; the same id releases the lock with M(prodready.deploy.deploy_lock).
      - Empty (the default) draws one, C(rollback-<UTC time>-<random>), returned as RV(run_id),
        so that no task has to run before the switch.
    type: str
    default: ""
  owner:
    description:
      - Who holds the lock, shown to whoever waits for it. Defaults to C(<login name>@<host name>).
    type: str
  lock_timeout:
    description:
      - Seconds to wait for a lock held by another run before failing.
    type: float
    default: 0
  force:
    description:
      - Take a lock held by another run at once (the role's C(rollback_force)). Dangerous
        while that run is alive.
    type: bool
    default: false
  to:
    description:
      - The version to roll back to. Empty means the state's C(previous_version) (the live
        version with O(restore_in_place)).
    type: str
    default: ""
  restore_in_place:
    description:
      - The caller restores a backup it chose (the C(rollback) role's C(rollback_backup)) and
        keeps the version when O(to) is empty or the live version - a restore in place. The
        target is then the live version on an idle color (the live release started there
        before traffic stops, so the 503 window holds no start), RV(in_place) is V(true)
        instead of RV(noop), and the color is not asked its version (it is started from
        C(releases/)). Needs O(db_rollback=restore).
    type: bool
    default: false
  colors:
    description:
      - "The colors and their ports, for example C({blue: {port: 8101}, green: {port: 8102}}).
        With haproxy, each color is the server C(<server_prefix><color>) of O(backend), and only
        these servers take part in the switch."
    type: dict
    required: true
  bind_host:
    description:
      - The address the colors listen on.
    type: str
    default: 127.0.0.1
  health_path:
    description:
      - The path asked for the version.
    type: str
    default: /health
  version_path:
    description:
      - JSON path of the version in the health answer, as in M(prodready.deploy.health_gate).
    type: str
    default: version
  probe_timeout:
    description:
      - Seconds to wait for the color's answer.
    type: float
    default: 2
  switch:
    description:
      - Switch the router to the target color when it is warm. Needs O(router=haproxy).
    type: bool
    default: true
  db_rollback:
    description:
      - The database rollback the caller will do after the switch (the C(rollback) role's
        C(rollback_db), the C(blue_green) role's C(blue_green_db_rollback)). The module switches
        only when it can be done (V(downgrade) needs C(db_revisions_before) in the state), so
        that a request the caller refuses changes nothing; never with V(restore), whose traffic
        stops first.
      - C(db) is a deprecated alias, to be removed in 2.0.0. (In the other modules, C(db) names a
        database.)
    type: str
    choices: [none, downgrade, restore]
    default: none
    aliases: [db]
  has_database:
    description:
      - Whether the app has a database (the C(rollback) role passes C(app_database) not empty).
        O(db_rollback) other than V(none) needs one; the request is refused before anything
        is touched otherwise.
    type: bool
    default: true
  router:
    description:
      - The router in front of the colors. With V(nginx) the module never switches (the
        caller runs M(prodready.deploy.router_switch)).
    type: str
    choices: [haproxy, nginx]
    default: haproxy
  admin_socket:
    description:
      - haproxy's admin socket (UNIX). To switch, one of O(admin_socket) and O(admin_address)
        is required.
    type: path
  admin_address:
    description:
      - "haproxy's runtime API over TCP, as in M(prodready.deploy.router_switch): C(host:port),
        C(ipv4@host:port) or C([::1]:port), for a router on another host. Mutually exclusive
        with O(admin_socket)."
    type: str
  backend:
    description:
      - The haproxy backend holding one server per color (and possibly other hosts' servers).
    type: str
    default: be_app
  server_prefix:
    description:
      - "With haproxy, what comes before the color in its server's name: the server of color
        C(blue) is C(<server_prefix>blue), for example V(h1-) for servers C(h1-blue) and
        C(h1-green) in a backend shared by every app host. RV(switch) names servers; the
        audit line names colors."
    type: str
    default: ""
  wait_timeout:
    description:
      - Seconds to wait for haproxy's health checks to mark the target color UP.
    type: float
    default: 10
  launch:
    description:
      - Who launched the run (C(launched_by)) and its AWX job (C(job) with C(id), C(url)), as the
        roles know them (roles/app C(app_launched_by), C(app_job)); returned in
        RV(environment) for the tasks that follow.
    type: dict
  audit_log:
    description:
      - The audit log the switch is recorded in (C(action=rollback), C(step=switch)), like
        M(prodready.deploy.deploy_state) writes it. Nothing is written without it.
    type: path
  router_observed:
    description:
      - "What the router serves, as M(prodready.deploy.router_switch) V(state=observed) returned
        it on the router host, for a router this host does not reach (O(switch=false)). With
        O(switch=true) and haproxy the module reads the router itself. Either way the router
        is the truth of what is live: before the plan, state.json is reconciled with it as
        M(prodready.deploy.deploy_begin) does (RV(reconciled)), so that a rollback after an
        interrupted deploy or a failed switch back starts from what really serves."
    type: dict
  controller:
    description:
      - The controller running the play (lookup C(prodready.deploy.controller)), recorded in
        the lock; a lock whose ansible-playbook process is gone on this host is taken over, as
        M(prodready.deploy.deploy_begin) does.
    type: dict
extends_documentation_fragment:
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Reads the state and asks the color its version; takes no lock, switches
      nothing and writes nothing.
  diff_mode:
    support: none
    description: No diff is shown.
  action_group:
    support: full
    membership: [prodready.deploy.deploy, prodready.deploy.lock, prodready.deploy.router]
    description: In C(module_defaults), C(group/prodready.deploy.deploy), C(group/prodready.deploy.lock) and
      C(group/prodready.deploy.router) set this module's options.
notes:
  - Release the lock in an C(always) section with M(prodready.deploy.deploy_lock),
    C(state=absent) and the same O(run_id).
"""

EXAMPLES = r"""
- name: Lock, plan, and switch at once when the previous release is warm
  prodready.deploy.rollback_start:
    state_path: /srv/app/state.json
    lock_path: /srv/app/deploy.lock
    audit_log: /srv/app/audit.log
    run_id: "{{ rollback_run_id }}"
    colors: {blue: {port: 8101}, green: {port: 8102}}
    admin_socket: /run/haproxy/admin.sock
    backend: be_app
  register: rollback

- name: The same against a router on its own host, over its TCP runtime API
  prodready.deploy.rollback_start:
    state_path: /srv/app/state.json
    lock_path: /srv/app/deploy.lock
    run_id: "{{ rollback_run_id }}"
    colors: {blue: {port: 8101}, green: {port: 8102}}
    admin_address: ipv4@10.0.0.5:9999
    backend: be_app
    server_prefix: "{{ inventory_hostname }}-"   # servers h1-blue, h1-green, h2-blue, ...
  register: rollback

- name: Start the previous release from releases/ when it is not warm
  ansible.builtin.debug:
    msg: "{{ rollback.color }} does not serve {{ rollback.target }}: {{ rollback.probe_reason }}"
  when: not rollback.noop and not rollback.warm
"""

RETURN = r"""
environment:
  description:
    - The environment of the tasks under the lock (C(PRODREADY_LOCK_FILE), C(PRODREADY_LOCK_RUN_ID),
      C(PRODREADY_LAUNCHED_BY), C(PRODREADY_JOB_ID), C(PRODREADY_JOB_URL)) - the roles set it once per
      host from here, so every module beats the lock and every audit line names the launcher.
  returned: always
  type: dict
run_id:
  description: This run's id (O(run_id), or the one drawn when it was empty).
  returned: always
  type: str
  sample: rollback-20261126T214000-42
started_at:
  description: When the module started (POSIX time), the rollback's start for its duration.
  returned: always
  type: float
  sample: 1796620026.38
state_found:
  description: V(false) when O(state_path) does not exist (nothing was deployed; no lock taken).
  returned: always
  type: bool
  sample: true
locked:
  description: V(true) when this run holds the deploy lock after the call (never in check mode).
  returned: always
  type: bool
  sample: true
holder:
  description: The lock record, as M(prodready.deploy.deploy_lock) returns it (V(null) when not locked).
  returned: always
  type: dict
  sample: {"owner": "deploy@ci", "run_id": "rollback-20261126T214000-42", "since": "2026-11-26T21:40:00Z"}
state:
  description: The host state read after taking the lock (V({}) when the file is absent).
  returned: always
  type: dict
  sample: {"live_color": "green", "live_version": "1.1.0", "previous_version": "1.0.0"}
target:
  description: The version rolled back to; empty when neither O(to) nor the state names one.
  returned: always
  type: str
  sample: 1.0.0
color:
  description: The color chosen for the target (empty without a target).
  returned: always
  type: str
  sample: blue
noop:
  description: V(true) when the target is already live (never with RV(in_place)).
  returned: always
  type: bool
  sample: false
in_place:
  description: V(true) when O(restore_in_place) and the target is the live version - the database is
    restored under the live release, started on an idle color (RV(color)) before traffic stops; the
    live color is stopped before the swap.
  returned: always
  type: bool
  sample: false
resumed:
  description:
    - The rollback a killed run left in C(state.json) (C(pending_rollback)) that this one takes
      up, with C(text) saying how; V(null) when none. Its target already serving is not
      taken for done (RV(noop) is V(false)) - its database step, verify and finalize run
      again - and C(from_version)/C(from_color) name what it rolled back from.
    - Before any irreversible step (switch, downgrade, restore) this module records its own
      intent as C(pending_rollback) (run id, target, color, what it rolls back from, the
      database mode); the role's finalize clears it.
  returned: always
  type: dict
  sample: {"run_id": "rollback-20261207T101010-42", "to": "1.0.0", "color": "blue", "from_version": "1.1.0",
           "from_color": "green", "db": "downgrade", "text": "a rollback 1.1.0 -> 1.0.0 ... was interrupted after its switch ..."}
warm:
  description: V(true) when the color answered with the target version (never asked with RV(in_place)).
  returned: always
  type: bool
  sample: true
probe_reason:
  description: Why the color is not warm (empty when it is, or when it was not asked).
  returned: always
  type: str
  sample: "version '1.1.0' != expected '1.0.0'"
switched:
  description: V(true) when this call switched the router to RV(color).
  returned: always
  type: bool
  sample: true
switch:
  description:
    - The switch, as M(prodready.deploy.router_switch) returns it (C(live), C(previous_live),
      C(switch_ms), C(servers_state), ...), V(null) when this call did not switch.
  returned: always
  type: dict
  sample: {"live": "blue", "previous_live": "green", "switch_ms": 512.3}
reconciled:
  description: How the router and state.json disagreed and what was done, in words (V('') when
    they agree or the router was not read).
  returned: always
  type: str
  sample: "the router serves green (1.1.0) but state.json says blue (1.0.0); ..."
router_repair:
  description: The color the router had to be put back on (done here with haproxy when the
    module reaches it), V(null) when the router was right.
  returned: always
  type: str
  sample: green
audit_line:
  description: The switch's audit record appended to O(audit_log), V(null) when none was written.
  returned: always
  type: dict
  sample: {"action": "rollback", "step": "switch", "result": "success", "color": "blue"}
"""

import os
import random
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _deploy_plan
from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy
from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy_runtime
from ansible_collections.prodready.deploy.plugins.module_utils import _http
from ansible_collections.prodready.deploy.plugins.module_utils import _lock_io
from ansible_collections.prodready.deploy.plugins.module_utils import _process_io
from ansible_collections.prodready.deploy.plugins.module_utils import _reconcile
from ansible_collections.prodready.deploy.plugins.module_utils._options import renamed_from
from ansible_collections.prodready.deploy.plugins.module_utils import _state_io
from ansible_collections.prodready.deploy.plugins.module_utils import _statefile


def argument_spec():
    """The module's options."""
    return dict(
        state_path=dict(type="path", required=True),
        lock_path=dict(type="path", required=True),
        run_id=dict(type="str", default=""),
        owner=dict(type="str"),
        lock_timeout=dict(type="float", default=0),
        force=dict(type="bool", default=False),
        to=dict(type="str", default=""),
        restore_in_place=dict(type="bool", default=False),
        colors=dict(type="dict", required=True),
        bind_host=dict(type="str", default="127.0.0.1"),
        health_path=dict(type="str", default="/health"),
        version_path=dict(type="str", default="version"),
        probe_timeout=dict(type="float", default=2),
        switch=dict(type="bool", default=True),
        db_rollback=renamed_from(dict(type="str", default="none", choices=["none", "downgrade", "restore"]), "db"),
        has_database=dict(type="bool", default=True),
        router=dict(type="str", default="haproxy", choices=["haproxy", "nginx"]),
        admin_socket=dict(type="path"),
        admin_address=dict(type="str"),
        backend=dict(type="str", default="be_app"),
        server_prefix=dict(type="str", default=""),
        wait_timeout=dict(type="float", default=10),
        launch=dict(type="dict"),
        audit_log=dict(type="path"),
        router_observed=dict(type="dict"),
        controller=dict(type="dict"),
    )


MUTUALLY_EXCLUSIVE = [["admin_socket", "admin_address"]]


def validate(params):
    """Refuse values the spec alone does not catch, naming the option and the value."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    if params["to"] and not _deploy_plan.VERSION_RE.fullmatch(params["to"]):
        raise ProdreadyError("to: %r is not a version (letters, digits and . + _ -, starting with a letter or digit)"
                             % params["to"])
    if params["db_rollback"] == "restore" and params["router"] != "haproxy":
        raise ProdreadyError("db_rollback: restore needs router haproxy (every server in maint makes the 503 "
                             "window), got router %s" % params["router"])
    if params["restore_in_place"] and params["db_rollback"] != "restore":
        raise ProdreadyError("restore_in_place: needs db_rollback restore (a backup restored under the live "
                             "release), got db_rollback %s" % params["db_rollback"])
    if params["db_rollback"] != "none" and not params["has_database"]:
        raise ProdreadyError("db_rollback: %s needs the app's database, and it has none (has_database false)"
                             % params["db_rollback"])
    if params["switch"] and params["router"] == "haproxy":
        if not params["admin_socket"] and not params["admin_address"]:
            raise ProdreadyError("admin_socket, admin_address: one is required to switch haproxy "
                                 "(switch=true, router=haproxy)")
        if params["admin_address"]:
            _haproxy.parse_admin_address(params["admin_address"])
        _haproxy.check_name("backend", params["backend"])
        for name in sorted(params["colors"] or ()):
            _haproxy.check_name("server_prefix" if params["server_prefix"] else "colors",
                                params["server_prefix"] + name)


def color_ports(colors):
    """`colors` as name -> port (int), or ProdreadyError naming the bad entry."""
    if not colors:
        raise ProdreadyError("colors: give at least two colors with their ports, got none")
    ports = {}
    for name, spec in colors.items():
        port = spec.get("port") if isinstance(spec, dict) else None
        try:
            ports[name] = int(port)
        except (TypeError, ValueError):
            raise ProdreadyError("colors: %s needs a port (a number), got %r" % (name, spec))
        if not 0 < ports[name] < 65536:
            raise ProdreadyError("colors: the port of %s must be 1 to 65535, got %s" % (name, ports[name]))
    return ports


def plan(state, to, color_names, in_place=False):
    """(target, color, noop) for a rollback, as the rollback role decides it (pure).

    target: `to`, else the live version when `in_place` (a restore of a chosen backup that
    keeps the version), else the state's previous_version ("" when none); color: the live one
    when the target is live (noop), unless `in_place`: the first idle color, where the live
    release starts before traffic stops (the live color when there is no other); else an idle
    color that ran the target, else the first idle color (sorted names)."""
    live_version = state.get("live_version") or ""
    target = to or (live_version if in_place else state.get("previous_version")) or ""
    if not target:
        return "", "", False
    live_color = state.get("live_color") or ""
    idle = [name for name in sorted(color_names) if name != live_color]
    if target == live_version:
        if in_place:
            return target, (idle + [live_color])[0], False
        return target, live_color, True
    ran_it = [name for name in idle if (state.get("colors") or {}).get(name) == target]
    chosen = (ran_it + idle)[:1]
    return target, chosen[0] if chosen else "", False


def interrupted(state, to, run_id):
    """The rollback a killed run left in state.json (``pending_rollback``) that this one takes
    up (pure): another run's, aiming where this one does (`to`, or nothing asked); else None."""
    pending = _reconcile.pending_of(state, run_id, "pending_rollback")
    if not pending or not pending.get("to") or (to and to != pending["to"]):
        return None
    return pending


def intent(pending, run_id, target, color, state, db_rollback, now):
    """The ``pending_rollback`` record written before the rollback's first irreversible step
    (pure): what a killed run leaves for the next one. Taking up `pending` keeps what it rolled
    back from."""
    origin = pending or dict(from_version=state.get("live_version"), from_color=state.get("live_color"))
    record = dict(run_id=run_id, to=target, color=color, from_version=origin.get("from_version"),
                  from_color=origin.get("from_color"), db=db_rollback, started_at=_statefile.iso_utc(now))
    if pending and pending.get("restore_db") and db_rollback == pending.get("db"):
        # The database a restore was restored into (the rollback role records it): taken up,
        # not restored again (swapped in already, pg_backup says so).
        record["restore_db"] = pending["restore_db"]
    return record


def resume_text(pending, live, target, color):
    """How the rollback a killed run left is taken up, in words."""
    head = "a rollback %s -> %s (run %s, database %s) was interrupted" % (
        pending.get("from_version"), pending.get("to"), pending.get("run_id"), pending.get("db"))
    restored = (" with the database it restored (%s), not restored again" % pending["restore_db"]
                if pending.get("restore_db") else "")
    if live:
        origin = "%s (%s)" % (pending.get("from_version"), pending.get("from_color"))
        return ("%s after its switch: %s serves on %s; its remaining steps run again (database, verify, "
                "finalize)%s, %s is what it rolled back from" % (head, target, color, restored, origin))
    return "%s before its switch: it is run again%s" % (head, restored)


def color_of(server, prefix):
    """The color of haproxy server `server` named `<prefix><color>` (None stays None)."""
    if server and prefix and server.startswith(prefix):
        return server[len(prefix):]
    return server


def db_allows_switch(db_rollback, state):
    """Whether traffic may move before the database rollback `db_rollback` (pure): never
    before a restore (traffic stops first), and before a downgrade only when the state records
    the revisions to go back to (else the caller refuses the request, which must change nothing)."""
    if db_rollback == "restore":
        return False
    return db_rollback == "none" or bool(state.get("db_revisions_before"))


def probe(bind_host, port, health_path, version_path, target, timeout):
    """'' when the color at `port` answers with version `target`, else why not."""
    url = "http://%s:%d%s" % (bind_host, port, health_path)
    expectations = _http.build_expectations([200], expect_version=target, version_path=version_path)
    prober = _http.make_prober([url], "GET", {}, timeout, expectations)
    try:
        sample = prober.probe(url)
    finally:
        prober.close()
    return "" if sample["ok"] else sample["reason"]


def served_version(p, port):
    """The version the color at `port` answers with (None when it gives none)."""
    url = "http://%s:%d%s" % (p["bind_host"], port, p["health_path"])
    return _process_io.HttpProbe(url, p["probe_timeout"], "", p["version_path"]).probe()["version"]


def reconcile(module, ports, state, api, result):
    """Observe, then act (_reconcile): the router read here (haproxy reached from this host) or
    given as router_observed, reconciled with state.json before anything is planned; state.json
    corrected and the decision audited (not in check mode). Returns the state to plan on."""
    p = module.params
    if api is not None:
        servers = [p["server_prefix"] + name for name in sorted(ports)]
        try:
            observed = _haproxy_runtime.observe(api, p["backend"], servers)
        except ProdreadyError as exc:
            # A restore stops traffic later, through the same API, and fails there if it must.
            result["reconciled"] = "the router could not be read, state.json is taken as it is: %s" % exc
            module.warn("rollback_start: " + result["reconciled"])
            return state
    elif p["router_observed"]:
        observed = p["router_observed"]
    else:
        return state
    if p["router"] == "nginx":
        names = dict((color, "%s:%d" % (p["bind_host"], port)) for color, port in ports.items())
    else:
        names = dict((color, p["server_prefix"] + color) for color in ports)
    found = {}

    def version_of(color):
        if color not in found:
            found[color] = served_version(p, ports[color])
        return found[color]

    decision, _colors, state, _changed = _state_io.reconcile_with_router(
        "rollback_start", module.warn, p["router"], observed, names, state, os.stat(p["state_path"]),
        p["state_path"], p["run_id"], version_of, p["audit_log"], module.check_mode)
    if decision is None:
        return state
    result.update(reconciled=decision["text"], router_repair=decision["repair"])
    if decision["repair"] and api is not None and not module.check_mode:
        _haproxy_runtime.switch(api, p["backend"], p["server_prefix"] + decision["repair"],
                                [p["server_prefix"] + name for name in sorted(ports)],
                                wait_timeout=p["wait_timeout"], warn=module.warn)
        result["changed"] = True
    return state


def new_run_id(epoch):
    """A rollback's run id: rollback-<UTC time>-<random number>."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(epoch))
    return "rollback-%s-%d" % (stamp, random.SystemRandom().randrange(1000000))


def run(module):
    """The module's work for `module.params`; returns the result dict."""
    p = module.params
    started_at = time.time()
    ports = color_ports(p["colors"])
    validate(p)
    p["run_id"] = p["run_id"] or new_run_id(started_at)
    do_switch = p["switch"] and p["router"] == "haproxy"
    result = dict(changed=False, state_found=False, locked=False, holder=None, state={}, target="",
                  color="", noop=False, in_place=False, warm=False, probe_reason="", switched=False, switch=None,
                  audit_line=None, run_id=p["run_id"], started_at=started_at, reconciled="", router_repair=None,
                  resumed=None, environment=_heartbeat.environment(p["lock_path"], p["run_id"], p["launch"]))
    if not os.path.exists(p["state_path"]):
        return result
    result["state_found"] = True
    if not module.check_mode:
        lock = _lock_io.acquire(p["lock_path"], p["run_id"], owner=p["owner"],
                                timeout=0.0 if p["force"] else p["lock_timeout"], force=p["force"],
                                controller=p["controller"])
        # The lock is released at the end of the run: taking it is not a change of the host.
        result.update(locked=True, holder=lock["holder"])
        taken = lock["broke_stale"]
        if taken and taken.get("takeover"):
            _lock_io.announce_takeover(module.warn, p["lock_path"], taken, p["audit_log"], p["run_id"])
    try:
        state = _state_io.read_state_file(p["state_path"], True)[0]
        api = _haproxy_runtime.RuntimeApi(p["admin_socket"], p["admin_address"]) if do_switch else None
        state = reconcile(module, ports, state, api, result)
        # A rollback killed before finalize left its intent: taken up, not taken for done.
        pending = None if p["restore_in_place"] else interrupted(state, p["to"], p["run_id"])
        target, color, noop = plan(state, p["to"] or (pending or {}).get("to", ""), ports, p["restore_in_place"])
        if pending and target:
            result["resumed"] = dict(pending, text=resume_text(pending, noop, target, color))
            module.warn("rollback_start: " + result["resumed"]["text"])
            noop = False  # its target serves, but its database, verify and finalize are still to run
        in_place = p["restore_in_place"] and bool(target) and target == (state.get("live_version") or "")
        result.update(state=state, target=target, color=color, noop=noop, in_place=in_place)
        if target and color and not noop and not in_place and not module.check_mode:
            # The intent, before any irreversible step (switch, downgrade, restore swap): finalize clears it.
            record = intent(pending, p["run_id"], target, color, state, p["db_rollback"], started_at)
            state = _state_io.write_update(p["state_path"], os.stat(p["state_path"]), state,
                                           {"pending_rollback": record}, module.check_mode)[0]
            result["state"] = state
        if not target or noop or in_place or not color:
            return result
        reason = probe(p["bind_host"], ports[color], p["health_path"], p["version_path"], target,
                       p["probe_timeout"])
        result.update(warm=not reason, probe_reason=reason)
        if reason or not do_switch or module.check_mode or not db_allows_switch(p["db_rollback"], state):
            return result
        prefix = p["server_prefix"]
        switch = _haproxy_runtime.switch(api, p["backend"], prefix + color, [prefix + name for name in sorted(ports)],
                                         wait_timeout=p["wait_timeout"], warn=module.warn)
        result.update(changed=True, switched=True, switch=switch)
        if p["audit_log"]:
            result["audit_line"] = _state_io.audit(p["audit_log"], dict(
                action="rollback", step="switch", result="success", color=color,
                previous_live=color_of(switch.get("previous_live"), prefix), switch_ms=switch.get("switch_ms"),
                unavailable_s=0.0, run_id=p["run_id"]))
        return result
    except Exception as exc:  # whatever failed after the lock was taken: release it first
        if result["locked"]:
            _lock_io.release(p["lock_path"], p["run_id"])
            if isinstance(exc, ProdreadyError):
                exc.details.update(locked=False, holder=None)
        raise


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=MUTUALLY_EXCLUSIVE)
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)


if __name__ == "__main__":
    main()
