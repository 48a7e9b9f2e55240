# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: deploy_begin
short_description: Start a deploy in one call - host directories, deploy lock, state and the live color's version
version_added: 0.1.0
description:
  - The first step of the C(blue_green) role, in one module call. Every module call costs a
    Python start-up and the import of Ansible's module code (about 0.2-0.6 s); the directories,
    the lock, the state and the probe of the live color were eight calls.
  - In this order, it creates the host model's directories with their modes (missing ones, and
    the mode of existing ones set like M(ansible.builtin.file) does); takes the deploy lock like
    M(prodready.deploy.deploy_lock) (the same file, record and rules, by the same code); reads
    the host state like M(prodready.deploy.deploy_state); works out the live color (the state's),
    the color the release starts on (RV(idle_color)) and asks the live color which version it
    really serves, with one HTTP GET.
  - A deploy of the version already live is a no-op (RV(noop)) only when the state says that
    version is live B(and) the live color answers with it; what the state says alone is not
    trusted. When the live color does not serve what the state says, RV(plan) says so.
  - It reports a change only when it created a directory or changed a directory's mode; the
    lock it takes is released at the end of the run, so an idempotent re-run reports
    C(changed=false).
  - Any failure after the lock was taken releases the lock this call took (not one this run
    already held), and RV(locked) says so.
author:
  - prodready.deploy maintainers (@prodready)
options:
  app_root:
    description:
      - The app's directory on the host (the host model's root, for example C(/srv/app)).
      - Without O(directories), the module makes C(<app_root>) (0755), C(releases/) (0755),
        C(artifacts/) (0755), C(shared/) (0700, it holds the C(.env)) and O(backup_dir) (0700).
    type: path
    required: true
  backup_dir:
    description:
      - Where backups go, made with mode 0700. Defaults to C(<app_root>/backups).
    type: path
  directories:
    description:
      - The directories to make instead of the host model's set, each with its mode; V([])
        makes none. Missing parents are made with the same mode.
    type: list
    elements: dict
    suboptions:
      path:
        description:
          - An absolute path.
        type: path
        required: true
      mode:
        description:
          - Octal, as a string (V('0750')) or as the number YAML reads from an unquoted C(0750).
        type: raw
        required: true
  state_path:
    description:
      - The host's deploy state file. Defaults to C(<app_root>/state.json). A missing file means
        nothing was deployed (RV(state_found=false)).
    type: path
  lock_path:
    description:
      - The deploy lock file, as M(prodready.deploy.deploy_lock) takes it. Defaults to
        C(<app_root>/deploy.lock).
    type: path
  run_id:
    description:
      - Identifies this run; the same id releases the lock with M(prodready.deploy.deploy_lock).
        A lock this run already holds is kept as it is.
    type: str
    required: true
  owner:
    description:
      - Who holds the lock, shown to whoever waits for it. Defaults to C(<login name>@<host name>).
    type: str
  lock_timeout:
    description:
      - Seconds to wait for a lock held by another run before failing, naming the holder.
    type: float
    default: 0
  stale_after:
    description:
      - Seconds after which a lock held by another run is stale.
    type: float
    default: 3600
  break_stale:
    description:
      - Break a stale lock and take it (its record is returned in RV(broke_stale)); otherwise a
        stale lock fails the module, saying so.
    type: bool
    default: false
  controller:
    description:
      - The controller running the play, as the lookup C(prodready.deploy.controller) returns
        it (C(host), C(pid) of ansible-playbook, C(user)), recorded in the lock. A lock whose
        controller ran on this host and whose ansible-playbook process is gone (the run was
        killed) is taken over whatever its age; the takeover is a warning, an audit line in
        O(audit_log) and RV(broke_stale) (with its C(takeover) reason).
      - So is a lock whose heartbeat is older than O(heartbeat_timeout) (its controller, on
        any host, stopped working for it).
    type: dict
  heartbeat_timeout:
    description:
      - Seconds without a heartbeat after which a lock that names its controller is taken over
        (printed and audited like a gone holder); V(0) judges such locks by O(stale_after) only.
      - The heartbeat is the lock file's modification time, touched by every module of the
        collection while it works for the run holding the lock (the roles name the lock and
        the run in the environment variables C(PRODREADY_LOCK_FILE), C(PRODREADY_LOCK_RUN_ID)).
        A step that runs on one host only (migration, backup) beats that host's lock only;
        give more than the longest such step.
    type: float
    default: 900
  version:
    description:
      - The version being deployed (letters, digits and C(. + _ -), starting with a letter or a
        digit; it names C(releases/<version>)).
    type: str
    required: true
  keep_releases:
    description:
      - Prune C(releases/<version>) of the versions in the state's C(history) beyond the last
        O(keep_releases) (counting O(version) as the newest), never O(version) nor the live one,
        under the lock, when the deploy is not a no-op. V(0) keeps every release.
      - A release that cannot be removed is a warning, not a failure of the deploy.
    type: int
    default: 0
  colors:
    description:
      - "The colors and their ports, for example C({blue: {port: 8101}, green: {port: 8102}})."
    type: dict
    required: true
  strategy:
    description:
      - V(blue_green) starts the release on a color that is not live (two colors needed).
        V(restart) restarts the one instance in place, on O(restart_color), else the live color,
        else the first color.
    type: str
    choices: [blue_green, restart]
    default: blue_green
  restart_color:
    description:
      - With O(strategy=restart), the color the instance runs on. Empty means the live color (the
        first one on a first deploy). Ignored with V(blue_green).
    type: str
    default: ""
  bind_host:
    description:
      - The address the colors listen on.
    type: str
    default: 127.0.0.1
  health_path:
    description:
      - The path asked for the live color's version.
    type: str
    default: /health
  version_path:
    description:
      - Dotted JSON path of the version in the answer (C(build.version), C(items[0].version)), as in
        M(prodready.deploy.health_gate). Empty, or an answer that is not a JSON object, means the
        whole plain-text body is the version (a C(/version) endpoint).
    type: str
    default: version
  probe_timeout:
    description:
      - Seconds to wait for the live color's answer.
    type: float
    default: 2
  name:
    description:
      - The app's name, used only in RV(plan).
    type: str
    default: app
  router:
    description:
      - The router in front of the colors, used only in RV(plan); V(none) when each color
        is reached on its own port.
    type: str
    choices: [haproxy, nginx, none]
    default: haproxy
  router_observed:
    description:
      - "What the router serves now, as M(prodready.deploy.router_switch) V(state=observed)
        returned it (run on the router host just before). With it, the router is the truth of
        what is live, state.json only its record (see RV(reconciled)): a color that serves is
        live whatever state.json says and is never the one the release starts on; state.json
        is corrected under the lock (with the record of an interrupted run's intent, its
        C(pending) key, when that run's switch happened) and an audit line written to
        O(audit_log); RV(router_repair) names what the router must be put back on."
      - Omitted (or O(router=none)), state.json alone says what is live.
    type: dict
  router_access:
    description:
      - "The M(prodready.deploy.router_switch) arguments with which this host reaches the router
        itself (C(router), C(admin_socket) or C(admin_address), C(backend), C(servers); nginx:
        C(upstream_include), C(servers)): the module reads what the router serves as
        V(state=observed) would, in the same call (no task of its own). Ignored when
        O(router_observed) is given."
    type: dict
  router_names:
    description:
      - "With O(router_observed), the router's name for each color: the haproxy server, for example
        C({blue: h1-blue, green: h1-green}), or with nginx the address the upstream points at
        (C({blue: 10.0.0.11:8101, ...})). Defaults to the colors (haproxy) or
        C(<bind_host>:<port>) (nginx)."
    type: dict
  launch:
    description:
      - Who launched the run (C(launched_by)) and its AWX job (C(job) with C(id), C(url)), as the
        roles know them (roles/app C(app_launched_by), C(app_job)); returned in
        RV(environment) for the tasks that follow.
    type: dict
  audit_log:
    description:
      - Where the line of a reconciliation (state.json corrected from the router) is appended.
        Defaults to C(<app_root>/audit.log).
    type: path
extends_documentation_fragment:
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Creates nothing and takes no lock (RV(holder) is whoever holds it now, with a
      warning when that is another run); reads the state, asks the live color and returns the
      same plan; RV(created) and RV(modes_fixed) say what a real run would do.
  diff_mode:
    support: none
    description: No diff is shown; RV(created) and RV(modes_fixed) list the directories.
  action_group:
    support: full
    membership: [prodready.deploy.deploy, prodready.deploy.lock]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) and C(group/prodready.deploy.lock) set this module's options.
notes:
  - Release the lock in an C(always) section with M(prodready.deploy.deploy_lock),
    C(state=absent) and the same O(run_id).
"""

EXAMPLES = r"""
- name: Directories, lock, state and the live color's version, in one call
  prodready.deploy.deploy_begin:
    app_root: /srv/app
    backup_dir: /var/backups/app
    run_id: "{{ deploy_run_id }}"
    lock_timeout: 120
    version: 1.1.0
    colors: {blue: {port: 8101}, green: {port: 8102}}
    health_path: /health
    version_path: version
  register: begin

- name: An app whose /version answers the version as plain text, its own directories
  prodready.deploy.deploy_begin:
    app_root: /srv/api
    directories:
      - {path: /srv/api, mode: "0750"}
      - {path: /srv/api/releases, mode: "0750"}
    run_id: "{{ deploy_run_id }}"
    version: 2.3.1
    colors: {blue: {port: 9001}, green: {port: 9002}}
    health_path: /version
    version_path: ""
  register: begin

- name: Say what will happen
  ansible.builtin.debug:
    msg: "{{ begin.plan }}"
"""

RETURN = r"""
environment:
  description:
    - The environment of the tasks under the lock (C(PRODREADY_LOCK_FILE), C(PRODREADY_LOCK_RUN_ID),
      C(PRODREADY_LAUNCHED_BY), C(PRODREADY_JOB_ID), C(PRODREADY_JOB_URL)) - the roles set it once per
      host from here, so every module beats the lock and every audit line names the launcher.
  returned: always
  type: dict
locked:
  description: V(true) when this run holds the deploy lock after the call (never in check mode).
  returned: always
  type: bool
  sample: true
holder:
  description:
    - The lock record, as M(prodready.deploy.deploy_lock) returns it (C(owner), C(run_id), C(since),
      C(since_epoch), C(host), C(pid)); in check mode whoever holds the lock now; V(null) when nobody does.
  returned: always
  type: dict
  sample: {"owner": "deploy@ci", "run_id": "20261126T104107-42", "since": "2026-11-26T10:41:07Z"}
broke_stale:
  description: The record of the stale lock broken by O(break_stale), else V(null).
  returned: always
  type: dict
  sample: null
run_id:
  description: O(run_id).
  returned: always
  type: str
  sample: 20261126T104107-42
state:
  description: The host state (V({}) when O(state_path) does not exist).
  returned: always
  type: dict
  sample: {"live_color": "blue", "live_version": "1.0.0", "colors": {"blue": "1.0.0"}}
state_found:
  description: V(false) when O(state_path) does not exist (a first deploy).
  returned: always
  type: bool
  sample: true
live_color:
  description: The state's live color, V(null) when nothing is live.
  returned: always
  type: str
  sample: blue
live_version:
  description: The state's live version, V(null) when nothing is live.
  returned: always
  type: str
  sample: 1.0.0
served_version:
  description: The version the live color answered with; V(null) when it was not asked or did
    not answer with one (see RV(probe_error)).
  returned: always
  type: str
  sample: 1.0.0
served_status:
  description: The HTTP status of the live color's answer, V(null) without an answer.
  returned: always
  type: int
  sample: 200
probe_error:
  description: Why the live color gave no version (V(null) when it did, or when nothing is live).
  returned: always
  type: str
  sample: "GET http://127.0.0.1:8101/health: connection refused"
idle_color:
  description: The color the release starts on (with O(strategy=restart), the one restarted in place).
  returned: always
  type: str
  sample: green
idle_port:
  description: The port of RV(idle_color).
  returned: always
  type: int
  sample: 8102
noop:
  description: V(true) when the state's live version is O(version) and the live color serves it.
  returned: always
  type: bool
  sample: false
created:
  description: The directories made (in check mode, that would be made), parents first.
  returned: always
  type: list
  elements: str
  sample: ["/srv/app", "/srv/app/releases"]
modes_fixed:
  description: Existing directories whose mode was set (in check mode, would be set).
  returned: always
  type: list
  elements: str
  sample: []
pruned:
  description: The versions whose C(releases/<version>) was removed (O(keep_releases); in check mode, would be).
  returned: always
  type: list
  elements: str
  sample: ["1.0.0"]
observed:
  description: What the router serves (V(null) without O(router_observed)) - the colors taking
    traffic, this host's runtime backup servers left in the backend, and each color's state there.
  returned: always
  type: dict
  sample: {"serving": ["green"], "backup_servers": ["prodready-backup-blue"], "seen": {"blue": "drain/DRAIN", "green": "ready/UP"}}
reconciled:
  description: How the router and state.json disagreed and what was done, in words; V('') when they agree.
  returned: always
  type: str
  sample: "the router serves green (1.1.0) but state.json says blue (1.0.0); the run 20261207T101500-42
    (started 2026-12-07T10:15:00Z) was interrupted after its switch: its record is adopted"
revisions_before:
  description: When an interrupted run migrated the database but never switched (its intent in
    state.json says so), the revisions the live release runs on, to be recorded as this deploy's
    revisions to go back to (the database's current ones are the interrupted run's); else V(null).
  returned: always
  type: list
  elements: str
  sample: ["0002"]
router_repair:
  description: The color the router had to be put back on (this host's other servers drained,
    leftover runtime backup servers removed), V(null) when the router was right.
  returned: always
  type: str
  sample: green
router_repaired:
  description: V(true) when this call put the router back itself (haproxy reached with
    O(router_access); not in check mode).
  returned: always
  type: bool
  sample: true
router_repair_plan:
  description:
    - What remains to be done on a router this call did not reach (O(router_observed) with
      haproxy), as M(prodready.deploy.router_switch) arguments - C(live), the server to put back
      in service, and C(servers), this host's servers; V(null) when there is nothing to do.
      The blue_green role sends the plans of a whole batch in one call.
  returned: always
  type: dict
  sample: {"live": "h1-green", "servers": ["h1-blue", "h1-green"]}
plan:
  description: The plan in one sentence, for the log.
  returned: always
  type: str
  sample: "app 1.0.0 -> 1.1.0: start green (port 8102), gate it, switch haproxy from blue"
"""

import os
import re
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError, option_named
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _deploy_plan as dp
from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy_runtime
from ansible_collections.prodready.deploy.plugins.module_utils import _lock_io
from ansible_collections.prodready.deploy.plugins.module_utils import _lockfile
from ansible_collections.prodready.deploy.plugins.module_utils import _process_io
from ansible_collections.prodready.deploy.plugins.module_utils import _process_manager as pm
from ansible_collections.prodready.deploy.plugins.module_utils import _state_io

HOST_RE = re.compile(r"^[A-Za-z0-9_.:\[\]-]+$")


def argument_spec():
    """The module's options."""
    return dict(
        app_root=dict(type="path", required=True),
        backup_dir=dict(type="path"),
        directories=dict(type="list", elements="dict", options=dict(
            path=dict(type="path", required=True),
            mode=dict(type="raw", required=True),
        )),
        state_path=dict(type="path"),
        lock_path=dict(type="path"),
        run_id=dict(type="str", required=True),
        owner=dict(type="str"),
        lock_timeout=dict(type="float", default=0),
        stale_after=dict(type="float", default=3600),
        break_stale=dict(type="bool", default=False),
        controller=dict(type="dict"),
        heartbeat_timeout=dict(type="float", default=_lockfile.HEARTBEAT_TIMEOUT),
        version=dict(type="str", required=True),
        keep_releases=dict(type="int", default=0),
        colors=dict(type="dict", required=True),
        strategy=dict(type="str", default=dp.BLUE_GREEN, choices=[dp.BLUE_GREEN, dp.RESTART]),
        restart_color=dict(type="str", default=""),
        bind_host=dict(type="str", default="127.0.0.1"),
        health_path=dict(type="str", default="/health"),
        version_path=dict(type="str", default="version"),
        probe_timeout=dict(type="float", default=2),
        name=dict(type="str", default="app"),
        router=dict(type="str", default="haproxy", choices=["haproxy", "nginx", "none"]),
        router_observed=dict(type="dict"),
        router_access=dict(type="dict"),
        router_names=dict(type="dict"),
        launch=dict(type="dict"),
        audit_log=dict(type="path"),
    )


MUTUALLY_EXCLUSIVE = [["directories", "backup_dir"]]


def validate(params):
    """Refuse values the spec alone does not catch, naming the option and the value, before
    anything is touched. Returns (ports by color, wanted directories)."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    if not os.path.isabs(params["app_root"]):
        raise ProdreadyError("app_root: must be an absolute path, got %r" % params["app_root"])
    if not params["run_id"].strip():
        raise ProdreadyError("run_id: must not be empty")
    dp.check_version(params["version"])
    if params["lock_timeout"] < 0:
        raise ProdreadyError("lock_timeout: must be 0 or more seconds, got %s" % params["lock_timeout"])
    for option in ("stale_after", "probe_timeout"):
        if params[option] <= 0:
            raise ProdreadyError("%s: must be more than 0 seconds, got %s" % (option, params[option]))
    ports = dp.color_ports(params["colors"], params["strategy"])
    if params["strategy"] == dp.RESTART and params["restart_color"] and params["restart_color"] not in ports:
        raise ProdreadyError("restart_color: %r is not one of the colors (%s)"
                             % (params["restart_color"], ", ".join(sorted(ports))))
    if not HOST_RE.match(params["bind_host"]):
        raise ProdreadyError("bind_host: %r is not a host name or an address" % params["bind_host"])
    if not params["health_path"].startswith("/") or re.search(r"\s", params["health_path"]):
        raise ProdreadyError("health_path: must be a URL path starting with / (no spaces), got %r"
                             % params["health_path"])
    if params["version_path"]:
        try:
            pm.parse_json_path(params["version_path"])
        except ProdreadyError:
            raise ProdreadyError("version_path: %r is not a dotted JSON path: use keys and [N] indexes, e.g. "
                                 "build.version, or empty for a plain-text version" % params["version_path"])
    names = params["router_names"] or dict(
        (color, color if params["router"] != "nginx" else "%s:%d" % (params["bind_host"], port))
        for color, port in ports.items())
    if sorted(names) != sorted(ports) or not all(isinstance(name, str) and name for name in names.values()):
        raise ProdreadyError("router_names: must name every color (%s) with the router's name for it, got %r"
                             % (", ".join(sorted(ports)), params["router_names"]))
    params["router_names"] = names
    return ports, dp.wanted_directories(params["app_root"], params["backup_dir"], params["directories"])


def ensure_directories(wanted, check_mode):
    """Make the missing directories (parents with the same mode) and set the mode of the
    others; in check mode only say so. Returns (created, modes_fixed)."""
    created, modes_fixed, seen = [], [], set()
    for path, mode, option in wanted:
        if path in seen:
            continue
        seen.add(path)
        missing, existing = [], path
        while not os.path.lexists(existing) and existing not in created:
            missing.append(existing)
            if os.path.dirname(existing) == existing:
                break
            existing = os.path.dirname(existing)
        try:
            if existing not in created and os.path.lexists(existing) and not os.path.isdir(existing):
                raise ProdreadyError("%s: %s exists and is not a directory" % (option, existing))
            for part in reversed(missing):
                created.append(part)
                if not check_mode:
                    os.mkdir(part, mode)
                    os.chmod(part, mode)  # mkdir's mode is filtered by the umask
            if not missing and path not in created and stat.S_IMODE(os.stat(path).st_mode) != mode:
                modes_fixed.append(path)
                if not check_mode:
                    os.chmod(path, mode)
        except OSError as exc:
            raise ProdreadyError("%s: cannot make %s with mode %04o: %s" % (option, path, mode, to_native(exc)),
                                 created=created, modes_fixed=modes_fixed)
    return created, modes_fixed


def probe(bind_host, port, health_path, version_path, version, timeout):
    """dict(version, status, error) of one GET of the color's `health_path`: the version it
    serves (None when it gave none) and why it gave none."""
    host = "[%s]" % bind_host if ":" in bind_host and not bind_host.startswith("[") else bind_host
    url = "http://%s:%d%s" % (host, port, health_path)
    answer = _process_io.HttpProbe(url, timeout, version, version_path).probe()
    # With an expected version, the probe returns what it read even when it is another one.
    served = answer["version"]
    error = None if served is not None else "GET %s: %s" % (url, answer["error"] or "no version in the answer")
    return dict(version=served, status=answer["status"], error=error)


def take_lock(module, result):
    """Take the deploy lock (in check mode, only read it); True when this call created it."""
    p = module.params
    with option_named("lock_path"):
        if module.check_mode:
            holder = _lock_io.read_lock(p["lock_path"]) if os.path.isdir(os.path.dirname(p["lock_path"])) else None
            result["holder"] = holder
            if holder and holder.get("run_id") != p["run_id"]:
                module.warn("deploy lock %s is held by %s since %s: a real run waits up to lock_timeout=%s s for it"
                            % (p["lock_path"], _lockfile.describe(holder), holder.get("since"), p["lock_timeout"]))
            return False
        if os.path.isdir(p["lock_path"]):
            raise ProdreadyError("lock_path: %s is a directory, not a lock file" % p["lock_path"])
        if not os.path.isdir(os.path.dirname(p["lock_path"])):
            raise ProdreadyError("lock_path: the directory %s of the lock file does not exist"
                                 % os.path.dirname(p["lock_path"]))
        lock = _lock_io.acquire(p["lock_path"], p["run_id"], owner=p["owner"], timeout=p["lock_timeout"],
                                stale_after=p["stale_after"], break_stale=p["break_stale"], controller=p["controller"],
                                heartbeat_timeout=p["heartbeat_timeout"])
    result.update(locked=True, holder=lock["holder"], broke_stale=lock["broke_stale"])
    broken = lock["broke_stale"]
    if broken:
        _lock_io.announce_takeover(module.warn, p["lock_path"], broken, p["audit_log"], p["run_id"])
    # changed: created now (after breaking a stale one or not); False: this run held it already.
    return lock["changed"]


def reconcile(module, ports, state, st, result):
    """Observe, then act: what the router serves against state.json (_reconcile). Corrects
    state.json and writes the audit line (not in check mode); returns (state, probes by color)."""
    p = module.params
    probes = {}

    def version_of(color):
        if color not in probes:
            probes[color] = probe(p["bind_host"], ports[color], p["health_path"], p["version_path"], p["version"],
                                  p["probe_timeout"])
        return probes[color]["version"]

    observed = p["router_observed"]
    if not observed and p["router_access"] and p["router"] != "none":
        try:
            observed = _haproxy_runtime.observe_access(p["router_access"])
        except ProdreadyError as exc:
            raise ProdreadyError("router_access: cannot read what the router serves: %s" % exc)
    if not observed or p["router"] == "none":
        return state, probes
    decision, colors, new_state, changed = _state_io.reconcile_with_router(
        "deploy_begin", module.warn, p["router"], observed, p["router_names"], state, st, p["state_path"],
        p["run_id"], version_of, p["audit_log"], module.check_mode)
    if decision is None:
        return state, probes
    result.update(observed=dict(serving=colors[0], backup_servers=colors[1], seen=colors[2]),
                  reconciled=decision["text"], router_repair=decision["repair"],
                  revisions_before=decision["revisions_before"])
    repair_router(module, decision["repair"], observed is not p["router_observed"], result)
    result["changed"] = result["changed"] or changed
    return new_state, probes


def repair_router(module, color, reached, result):
    """Put a haproxy router back on `color` (this host's other servers drained, leftover
    runtime backup servers deleted): here when this host reaches it (`reached`), else as a plan
    for the caller (RV(router_repair_plan))."""
    p = module.params
    if not color or p["router"] != "haproxy":
        return
    names = p["router_names"]
    if not reached:
        result["router_repair_plan"] = dict(live=names[color], servers=sorted(names.values()))
        return
    if module.check_mode:
        return
    access = p["router_access"]
    api = _haproxy_runtime.RuntimeApi(access.get("admin_socket"), access.get("admin_address"))
    try:
        _haproxy_runtime.switch(api, access.get("backend") or "be_app", names[color], sorted(names.values()),
                                keep_previous_as_backup=False, warn=module.warn)
    except ProdreadyError as exc:
        raise ProdreadyError("router_access: cannot put the router back on %s: %s" % (color, exc))
    result.update(router_repaired=True, changed=True)


def decide(module, ports, result):
    """Read the state, read the router, ask the live color, and fill in the plan."""
    p = module.params
    with option_named("state_path"):
        found = os.path.exists(p["state_path"])
        state, st = _state_io.read_state_file(p["state_path"], False) if found else ({}, None)
    state, probes = reconcile(module, ports, state, st, result)
    live_color = state.get("live_color") or None
    live_version = state.get("live_version") or None
    served = dict(version=None, status=None, error=None)
    if live_color in probes:
        served = probes[live_color]
    elif live_color in ports:
        served = probe(p["bind_host"], ports[live_color], p["health_path"], p["version_path"], p["version"],
                       p["probe_timeout"])
    elif live_color:
        served["error"] = "the live color %r of %s is not one of the colors (%s)" % (
            live_color, p["state_path"], ", ".join(sorted(ports)))
    idle = dp.idle_color(ports, live_color, p["strategy"], p["restart_color"])
    noop = dp.is_noop(live_version, p["version"], served["version"])
    observed = "; ".join(text for text in (result["reconciled"], dp.observed_text(
        live_color, live_version, served["version"], served["error"])) if text)
    result.update(state=state, state_found=found, live_color=live_color, live_version=live_version,
                  served_version=served["version"], served_status=served["status"], probe_error=served["error"],
                  idle_color=idle, idle_port=ports[idle], noop=noop,
                  plan=dp.plan_text(p["name"], p["version"], live_color, live_version, idle, ports[idle], noop,
                                    p["strategy"], p["router"], observed))


def prune_releases(module, result):
    """Remove the releases dp.releases_to_prune names (not in check mode); warn for any that
    cannot be removed."""
    p = module.params
    versions = dp.releases_to_prune(result["state"].get("history"), p["version"], result["live_version"],
                                    p["keep_releases"])
    releases = os.path.join(p["app_root"], "releases")
    for version in versions:
        path = os.path.join(releases, version)
        if not os.path.lexists(path):
            continue
        result["pruned"].append(version)
        if module.check_mode:
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError as exc:
            result["pruned"].remove(version)
            module.warn("keep_releases: cannot remove %s: %s" % (path, to_native(exc)))
    result["changed"] = result["changed"] or (bool(result["pruned"]) and not module.check_mode)


def run(module):
    """The module's work for `module.params`; returns the result dict."""
    p = module.params
    p["state_path"] = p["state_path"] or os.path.join(p["app_root"], "state.json")
    p["lock_path"] = p["lock_path"] or os.path.join(p["app_root"], "deploy.lock")
    p["audit_log"] = p["audit_log"] or os.path.join(p["app_root"], "audit.log")
    ports, wanted = validate(p)
    result = dict(changed=False, locked=False, holder=None, broke_stale=None, run_id=p["run_id"], state={},
                  state_found=False, live_color=None, live_version=None, served_version=None, served_status=None,
                  probe_error=None, idle_color=None, idle_port=None, noop=False, created=[], modes_fixed=[], pruned=[],
                  observed=None, reconciled="", router_repair=None, router_repaired=False, router_repair_plan=None,
                  revisions_before=None, plan="",
                  environment=_heartbeat.environment(p["lock_path"], p["run_id"], p["launch"]))
    try:
        created, modes_fixed = ensure_directories(wanted, module.check_mode)
        result.update(changed=bool(created or modes_fixed), created=created, modes_fixed=modes_fixed)
        took = take_lock(module, result)
    except ProdreadyError as exc:  # a directory, or the lock held by another run (its holder)
        exc.details = dict(result, **dict((key, exc.details[key]) for key in exc.details if key in result))
        raise
    try:
        decide(module, ports, result)
        if not result["noop"]:
            prune_releases(module, result)
    except Exception as exc:  # whatever failed after the lock was taken: release it first
        if took:
            _lock_io.release(p["lock_path"], p["run_id"])
            result.update(locked=False, holder=None)
        if isinstance(exc, ProdreadyError):
            exc.details = dict(result, **exc.details)
        raise
    return result


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
