# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: router_switch
short_description: Send a blue-green router's traffic to one color or a fleet's servers (haproxy or nginx)
version_added: 0.1.0
description:
  - Makes the router send new requests to the server(s) O(live), and no longer to the other
    servers of this deploy; with haproxy, also takes servers out of service and back
    (O(state=maint), O(state=ready)).
  - "O(router=haproxy): the colors are servers of one backend, reached through haproxy's
    runtime API on the admin socket (O(admin_socket)) or a TCP admin address
    (O(admin_address)). One batch of commands (C(set server <backend>/<server> state ready)
    separated by C(;) on one line) makes every server of O(live) ready; the module waits until
    the health checks report every one UP (or, for a server without health check, that it is
    ready and running), then one batch sets every other server taking part to C(drain) (or
    C(maint)), so traffic moves at once. No reload, no client connection is touched. When a
    server of O(live) does not come UP within O(wait_timeout), every server of O(live) is put
    back to the state it had, the other servers are left as they were, and the module fails
    naming each server not UP, its status and its check details."
  - "With O(router=haproxy) the servers taking part are the keys of O(servers) (and their
    runtime backup servers); every other server of the backend, for example another app
    host's colors in a backend shared by the fleet, is left exactly as it was and plays no
    part in RV(previous_live) or in deciding whether O(live) already serves. Without
    O(servers), every server of the backend takes part."
  - "O(router=nginx): the upstream include O(upstream_include) is rewritten to
    C(upstream <upstream_name> { server <servers[live]>; keepalive <keepalive>; }) atomically,
    C(nginx -t) checks the configuration and C(nginx -s reload) applies it. When C(nginx -t)
    refuses it, the previous bytes of the include are put back and the module fails with
    nginx's message. A graceful reload closes idle keep-alive client connections, so a
    request racing that close can fail; prefer haproxy where zero failed requests matter."
author:
  - prodready.deploy maintainers (@prodready)
options:
  router:
    description:
      - The router in front of the colors.
    type: str
    choices: [haproxy, nginx]
    required: true
  state:
    description:
      - "V(live): the switch; O(live) takes the traffic, the other servers taking part are set
        to O(old_state)."
      - "V(maint) (haproxy): every server taking part (the keys of O(servers), or every server
        of the backend without it) and their runtime backup servers go to C(maint) in one
        batch; haproxy answers 503 for the backend from then on. RV(at) says when. Used to stop
        writes before a database restore. With O(live), the server(s) that take the traffic
        after the maintenance must first be UP by haproxy's own health checks (one in
        C(maint) is set to C(drain) so that haproxy checks it), waited for up to
        O(wait_timeout); they then stay in C(drain) while every other server goes to C(maint).
        No new request reaches a drained server (requests pinned to it by cookie or
        stick-table persistence still do), and haproxy keeps checking it, so made ready it
        serves at once: the 503 window does not wait for a health check (a server leaving
        C(maint) is shown UP before its first check, even when nothing listens, so the switch
        would have to wait for that check). When one is not UP in time, traffic is not
        stopped (the drained servers go back to C(maint)) and the module fails naming each
        one with its check."
      - "V(ready) (haproxy): the server(s) O(live) go back to C(ready) in one batch, every other
        server is left as it is; the module waits up to O(wait_timeout) for them to be UP and
        fails naming those that are not (they stay ready)."
      - "V(observed): read only, nothing is sent. RV(live) is what serves now: with haproxy,
        the list of servers taking part (the keys of O(servers), or every server of the
        backend) that are ready and UP, RV(servers_state) each one's state and
        RV(backup_server) the list of runtime backup servers in the backend; with nginx, the
        key of O(servers) whose address the upstream include points at (V(null) when none
        does) and RV(upstream_address) that address. A server of O(servers) missing from the
        backend is reported missing (absent from RV(servers_state)), not refused. The
        roles read the router this way before they plan anything: the router is the truth
        of what is live, state.json only a record of it."
    type: str
    choices: [live, maint, ready, observed]
    default: live
  live:
    description:
      - The server that must take the traffic (haproxy server name, key of O(servers)), for
        example V(blue) or V(green); required with O(state=live) and O(state=ready); with
        O(state=maint) (optional) the server(s) that take the traffic after the maintenance,
        checked UP before traffic stops (see O(state)).
      - "With O(router=haproxy), a list of server names switches them together (a fleet-atomic
        switch), for example V([h1-green, h2-green, h3-green]): all are made ready, all must be
        UP within one O(wait_timeout), then the others are drained in one batch. The shape of
        RV(previous_live) and RV(backup_server) follows: a list when O(live) is a list."
    type: raw
  servers:
    description:
      - "The servers of this deploy, each with its address (C(host:port)), for example
        C({blue: 127.0.0.1:8001, green: 127.0.0.1:8002})."
      - Required with O(router=nginx), where every value is the address the upstream points at.
      - "With O(router=haproxy), only the names matter: they say which servers of O(backend)
        take part (see above), and every one must be in the backend. A value may be an address
        (not compared with haproxy's), V(null) or empty, for example
        C({h1-blue: null, h1-green: null}). O(live) must be among the keys."
    type: dict
  wait_timeout:
    description:
      - With O(router=haproxy), seconds to wait for the server(s) of O(live) to be UP, one
        deadline for all of them.
    type: float
    default: 10
  old_state:
    description:
      - With O(router=haproxy) and O(state=live), the state the other servers taking part are
        put in. V(drain) lets
        connections and persistent sessions finish; V(maint) takes them out completely.
    type: str
    choices: [drain, maint]
    default: drain
  keep_previous_as_backup:
    description:
      - "With O(router=haproxy): after the switch, the address of the color that served before
        is added to the backend as a runtime C(backup) server named
        C(prodready-backup-<color>) (C(add server <backend>/<name> <address> backup), haproxy
        2.4 or later, a backend with a dynamic C(balance) algorithm). haproxy sends requests
        to a backup server only while no other server is usable: when the new color's health
        checks mark it DOWN during the gate window, clients get the previous release instead
        of a 503 from the router. The old color must keep running while it is there."
      - "With a list in O(live), one backup server is kept for each server that served before,
        is named in O(servers) (or is in the backend, without O(servers)) and is not in O(live):
        C(prodready-backup-<server>)."
      - With V(false), every such backup server of the servers taking part is deleted
        (C(del server)), also when O(live) already serves; the blue_green role does so before
        it stops the old color and when it switches back. Backup servers of servers that do
        not take part are left alone.
      - When haproxy refuses to add it, the switch is still done and a warning says why.
    type: bool
    default: false
  admin_socket:
    description:
      - With O(router=haproxy), the UNIX socket of the runtime API, declared with
        C(stats socket <path> level admin) in haproxy's C(global) section. One of
        O(admin_socket) and O(admin_address) is required with O(router=haproxy).
    type: path
  admin_address:
    description:
      - "With O(router=haproxy), the TCP address of the runtime API, as declared with
        C(stats socket ipv4@127.0.0.1:9999 level admin): C(host:port), C(ipv4@host:port),
        C(ipv6@[::1]:port) or C([::1]:port). For a router on another host; the runtime API
        has no authentication, so listen on an address only the deploy hosts reach."
      - Mutually exclusive with O(admin_socket).
    type: str
  backend:
    description:
      - With O(router=haproxy), the backend whose servers are the colors.
    type: str
    default: be_app
  upstream_include:
    description:
      - With O(router=nginx) (required there), the file holding the upstream, included by the
        nginx configuration. The module owns its content.
    type: path
  upstream_name:
    description:
      - With O(router=nginx), the name of the upstream the configuration proxies to.
    type: str
    default: app_live
  keepalive:
    description:
      - With O(router=nginx), the number of idle keep-alive connections to the upstream.
    type: int
    default: 16
  nginx_binary:
    description:
      - With O(router=nginx), the nginx program. Defaults to C(nginx) found on the PATH or in
        C(/usr/sbin).
    type: path
  nginx_prefix:
    description:
      - With O(router=nginx), the prefix passed as C(-p) to C(nginx -t) and C(nginx -s reload).
    type: path
  nginx_conf:
    description:
      - With O(router=nginx), the configuration file passed as C(-c) to C(nginx -t) and
        C(nginx -s reload).
    type: path
extends_documentation_fragment:
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Reads the router's state and reports RV(previous_live), RV(live) and whether
      it would change (for O(state=maint) and O(state=ready), whether any server is not in that
      state yet); sends no command, writes no file, reloads nothing.
  diff_mode:
    support: partial
    description: With O(router=nginx), shows the upstream include before and after. Nothing
      is shown for haproxy, whose change is in RV(servers_state).

  action_group:
    support: full
    membership: [prodready.deploy.deploy, prodready.deploy.router]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) and C(group/prodready.deploy.router) set this module's options."""

EXAMPLES = r"""
- name: Send traffic to green through haproxy's runtime API
  prodready.deploy.router_switch:
    router: haproxy
    live: green
    admin_socket: /run/haproxy/admin.sock
    backend: be_app
    wait_timeout: 15
  register: switch

- name: Switch back on failure (the color that served before)
  prodready.deploy.router_switch:
    router: haproxy
    live: "{{ switch.previous_live }}"
    admin_socket: /run/haproxy/admin.sock
  when: switch.previous_live is not none

- name: Switch this host's servers in a backend shared by the fleet, over TCP
  prodready.deploy.router_switch:
    router: haproxy
    live: h1-green
    servers: {h1-blue: null, h1-green: null}
    admin_address: ipv4@10.0.0.5:9999
    backend: be_app
  delegate_to: localhost

- name: Fleet-atomic switch, every host's new color at once
  prodready.deploy.router_switch:
    router: haproxy
    live: [h1-green, h2-green, h3-green]
    servers: {h1-blue: null, h1-green: null, h2-blue: null, h2-green: null, h3-blue: null, h3-green: null}
    admin_socket: /run/haproxy/admin.sock
  delegate_to: lb1
  run_once: true
  register: fleet_switch

- name: Stop traffic before a database restore (haproxy answers 503)
  prodready.deploy.router_switch:
    router: haproxy
    state: maint
    servers: {blue: null, green: null}
    admin_socket: /run/haproxy/admin.sock
  register: traffic_off

- name: Traffic back on the color that served
  prodready.deploy.router_switch:
    router: haproxy
    state: ready
    live: blue
    servers: {blue: null, green: null}
    admin_socket: /run/haproxy/admin.sock

- name: Read what the router serves (nothing is changed)
  prodready.deploy.router_switch:
    router: haproxy
    state: observed
    servers: {blue: null, green: null}
    admin_socket: /run/haproxy/admin.sock
  register: seen  # seen.live: [green]; seen.backup_server: [{name: prodready-backup-blue, ...}]

- name: Send traffic to blue through nginx
  prodready.deploy.router_switch:
    router: nginx
    live: blue
    servers:
      blue: 127.0.0.1:8001
      green: 127.0.0.1:8002
    upstream_include: /etc/nginx/conf.d/app_upstream.inc
"""

RETURN = r"""
live:
  description:
    - "The server(s) taking the traffic after the task (in check mode, the one(s) it would be):
      O(live) as given, a string or a list; V([]) with O(state=maint)."
  returned: always
  type: raw
  sample: green
previous_live:
  description:
    - "With O(live) a string: the color that was serving before the task, V(null) when none
      was (or, with nginx, when the include pointed at an address that is not in
      O(servers)); O(live) itself when only it served."
    - "With O(live) a list, and with O(state=maint): every server taking part that was serving
      (ready and UP) before the task, sorted, possibly V([]); a switch back to that list
      restores the traffic as it was."
    - Servers that do not take part (not in O(servers)) are never reported.
  returned: always
  type: raw
  sample: blue
servers_state:
  description:
    - With haproxy, each server taking part (the keys of O(servers) and their runtime backup
      servers, or every server of the backend without O(servers)) after the task, with its
      administrative state (V(ready), V(drain), V(maint)), operational state, status as in
      C(show stat), the last health check and its address. In check mode, as read. V({}) with
      nginx.
  returned: always
  type: dict
  sample: {"blue": {"admin_state": "drain", "operational_state": "running", "status": "DRAIN",
                    "check_status": "L7OK", "check_code": "200", "last_chk": "OK",
                    "check_desc": "Layer7 check passed", "address": "127.0.0.1:8001"},
           "green": {"admin_state": "ready", "operational_state": "running", "status": "UP",
                     "check_status": "L7OK", "check_code": "200", "last_chk": "OK",
                     "check_desc": "Layer7 check passed", "address": "127.0.0.1:8002"}}
backup_server:
  description:
    - With haproxy and O(live) a string, the runtime backup server of the servers taking part
      left in the backend (see O(keep_previous_as_backup)) and the address it sends to,
      V(null) when there is none.
    - With O(live) a list, a list of them (V([]) when there is none); V([]) with
      O(state=maint). V(null) with nginx.
  returned: always
  type: raw
  sample: {"name": "prodready-backup-blue", "address": "127.0.0.1:8001"}
switch_ms:
  description:
    - Milliseconds from the first command sent to the router to the last (for a haproxy
      switch, from the batch that makes O(live) ready to the batch that drains the others,
      the wait for UP included), V(0) when nothing was sent.
  returned: always
  type: float
  sample: 612.4
checked_up:
  description:
    - With O(state=maint) and O(live), the server(s) checked UP before traffic stopped (left
      in C(drain)).
  returned: with O(state=maint)
  type: list
  elements: str
  sample: [green]
waited_up_s:
  description:
    - With O(state=maint) and O(live), seconds waited for them to be UP.
  returned: with O(state=maint)
  type: float
  sample: 0.0
at:
  description:
    - "UTC time, C(%Y-%m-%dT%H:%M:%S.%fZ), at which the router's change was applied (the last
      batch of commands, or the nginx reload); when nothing had to be sent, or in check mode,
      when the router was read. With O(state=maint), when haproxy started answering 503."
  returned: always
  type: str
  sample: "2026-12-01T09:30:00.412345Z"
observed:
  description: V(true) with O(state=observed) (a read, not a switch; the deploy report tells them apart).
  returned: with O(state=observed)
  type: bool
  sample: true
upstream_address:
  description: With nginx and O(state=observed), the address the upstream include points at
    (V(null) when the include is missing or names no server).
  returned: with nginx and O(state=observed)
  type: str
  sample: 127.0.0.1:8002
reloaded:
  description: V(true) when nginx was reloaded. Always V(false) with haproxy.
  returned: always
  type: bool
  sample: true
diff:
  description: With nginx and C(--diff), the upstream include before and after.
  returned: in diff mode with O(router=nginx), when the include changes
  type: dict
  contains:
    before:
      description: The include as it was.
      type: str
    after:
      description: The include as it is now.
      type: str
    before_header:
      description: The include file.
      type: str
    after_header:
      description: The include file.
      type: str
"""

import errno
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native, to_text

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _atomic
from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy
from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy_runtime

NEW_INCLUDE_MODE = 0o644


def argument_spec():
    """The module's options."""
    return dict(
        router=dict(type="str", required=True, choices=["haproxy", "nginx"]),
        state=dict(type="str", default="live", choices=["live", "maint", "ready", "observed"]),
        live=dict(type="raw"),
        servers=dict(type="dict"),
        wait_timeout=dict(type="float", default=10),
        old_state=dict(type="str", default="drain", choices=["drain", "maint"]),
        keep_previous_as_backup=dict(type="bool", default=False),
        admin_socket=dict(type="path"),
        admin_address=dict(type="str"),
        backend=dict(type="str", default="be_app"),
        upstream_include=dict(type="path"),
        upstream_name=dict(type="str", default="app_live"),
        keepalive=dict(type="int", default=16),
        nginx_binary=dict(type="path"),
        nginx_prefix=dict(type="path"),
        nginx_conf=dict(type="path"),
    )


REQUIRED_IF = [
    ("router", "haproxy", ["admin_socket", "admin_address"], True),
    ("router", "nginx", ["servers", "upstream_include"]),
    ("state", "live", ["live"]),
    ("state", "ready", ["live"]),
]
MUTUALLY_EXCLUSIVE = [["admin_socket", "admin_address"]]


def validate_live(params):
    """Refuse a `live` that is neither a server name nor a list of them, naming the value."""
    live = params["live"]
    if live is None:
        return
    if isinstance(live, list):
        if params["router"] != "haproxy":
            raise ProdreadyError("live: a list of servers needs router=haproxy, got %r" % (live,))
        if not live:
            raise ProdreadyError("live: the list of servers is empty")
        if len(set(str(name) for name in live)) != len(live):
            raise ProdreadyError("live: %r names a server twice" % (live,))
    names = live if isinstance(live, list) else [live]
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ProdreadyError("live: must be a server name or a list of server names, got %r"
                                 % (live,))
    if params["servers"] is not None:
        for name in names:
            if name not in params["servers"]:
                raise ProdreadyError("live: %s is not a key of servers (%s)"
                                     % (name, ", ".join(sorted(params["servers"])) or "empty"))


def validate(params):
    """Refuse values the spec alone does not catch, naming the option and the value."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    haproxy = params["router"] == "haproxy"
    if not haproxy and params["state"] not in ("live", "observed"):
        raise ProdreadyError("state: %s needs router=haproxy (nginx only switches)" % params["state"])
    if params["state"] == "observed" and params["live"] is not None:
        raise ProdreadyError("live: not used with state=%s; got %r" % (params["state"], params["live"]))
    servers = params["servers"]
    if servers is not None:
        if not servers:
            raise ProdreadyError("servers: empty; name the servers of this deploy, or omit it "
                                 "(haproxy: every server of the backend)")
        for name, value in servers.items():
            if not haproxy and not isinstance(value, str):
                raise ProdreadyError("servers: the address of %s must be a string host:port, "
                                     "got %r" % (name, value))
            if haproxy and value is not None and not isinstance(value, str):
                raise ProdreadyError("servers: the value of %s must be a host:port string or "
                                     "null (with router=haproxy only the names matter), got %r"
                                     % (name, value))
    validate_live(params)
    if haproxy:
        _haproxy.check_name("backend", params["backend"])
        for option, names in (("servers", sorted(servers or ())),
                              ("live", _haproxy.live_names(params["live"] or []))):
            for name in names:
                _haproxy.check_name(option, name)
                if name.startswith(_haproxy.BACKUP_PREFIX):
                    raise ProdreadyError("%s: %s is the name of a runtime backup server, which "
                                         "takes part with its server %s" % (option, name, name[len(
                                             _haproxy.BACKUP_PREFIX):]))
        if params["admin_address"] is not None:
            _haproxy.parse_admin_address(params["admin_address"])
    if params["wait_timeout"] < 0:
        raise ProdreadyError("wait_timeout: must be 0 or more seconds, got %s"
                             % params["wait_timeout"])
    if params["keepalive"] < 1:
        raise ProdreadyError("keepalive: must be 1 or more, got %d" % params["keepalive"])


# ---------------------------------------------------------------- haproxy

RuntimeApi = _haproxy_runtime.RuntimeApi


def run_haproxy(module, api=None, monotonic=time.monotonic, sleep=time.sleep, clock=time.time):
    """The haproxy work for `module.params` (switch, maint or ready); returns the result dict."""
    params = module.params
    api = api or RuntimeApi(params["admin_socket"], params["admin_address"])
    servers = sorted(params["servers"]) if params["servers"] is not None else None
    if params["state"] == "observed":
        return _haproxy_runtime.observe(api, params["backend"], servers, clock=clock)
    if params["state"] == "maint":
        return _haproxy_runtime.maint(api, params["backend"], servers, check_mode=module.check_mode,
                                      up=params["live"], wait_timeout=params["wait_timeout"],
                                      monotonic=monotonic, sleep=sleep, clock=clock)
    if params["state"] == "ready":
        return _haproxy_runtime.ready(api, params["backend"], params["live"], servers,
                                      wait_timeout=params["wait_timeout"],
                                      check_mode=module.check_mode, monotonic=monotonic,
                                      sleep=sleep, clock=clock)
    return _haproxy_runtime.switch(
        api, params["backend"], params["live"], servers, wait_timeout=params["wait_timeout"],
        old_state=params["old_state"], keep_previous_as_backup=params["keep_previous_as_backup"],
        check_mode=module.check_mode, warn=module.warn, monotonic=monotonic, sleep=sleep,
        clock=clock)


# ---------------------------------------------------------------- nginx

def read_bytes(path):
    """(bytes or None when absent, os.stat or None)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(), os.fstat(handle.fileno())
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None, None
        raise ProdreadyError("upstream_include: cannot read %s: %s" % (path, to_native(exc)))


def write_atomic(path, data, st):
    """Write bytes to `path` atomically, keeping mode and owner of the old file (`st`)."""
    _atomic.write_atomic(path, data, st, NEW_INCLUDE_MODE, "upstream_include")


def restore_include(path, old, st):
    """Put the include back as it was (removed when it did not exist)."""
    if old is None:
        try:
            os.unlink(path)
        except OSError:
            pass
    else:
        write_atomic(path, old, st)


def nginx_argv(module, params, *args):
    """argv for nginx with the configured -p / -c."""
    binary = params["nginx_binary"] or module.get_bin_path("nginx", required=False,
                                                           opt_dirs=["/usr/sbin"])
    if not binary:
        raise ProdreadyError("nginx_binary: nginx was not found on the PATH or in /usr/sbin; "
                             "set nginx_binary")
    argv = [binary] + list(args)
    if params["nginx_prefix"]:
        argv += ["-p", params["nginx_prefix"]]
    if params["nginx_conf"]:
        argv += ["-c", params["nginx_conf"]]
    return argv


def observe_nginx(params):
    """The router_switch result of O(state=observed) with nginx: the server of `servers` the
    upstream include points at, read only."""
    path = params["upstream_include"]
    if os.path.isdir(path):
        raise ProdreadyError("upstream_include: %s is a directory, not a file" % path)
    read_bytes(path)  # an unreadable include is an error naming it; a missing one serves nothing
    return _haproxy_runtime.observe_access(dict(params, router="nginx"))


def run_nginx(module, monotonic=time.monotonic):
    """Point the nginx upstream include at `live`, test and reload; returns the result dict."""
    params = module.params
    live = params["live"]
    path = params["upstream_include"]
    if params["state"] == "observed":
        return observe_nginx(params)
    address = params["servers"][live]
    _haproxy.check_nginx_address(live, address)
    if os.path.isdir(path):
        raise ProdreadyError("upstream_include: %s is a directory, not a file" % path)
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise ProdreadyError("upstream_include: the directory %s does not exist" % directory)
    new = _haproxy.render_upstream(params["upstream_name"], address.strip(),
                                   params["keepalive"]).encode("utf-8")
    old, st = read_bytes(path)
    old_text = to_text(old, errors="replace") if old is not None else None
    previous = _haproxy.color_of(_haproxy.upstream_address(old_text), params["servers"])
    result = dict(live=live, previous_live=previous, servers_state={}, switch_ms=0.0,
                  reloaded=False, backup_server=None, at=_haproxy.iso_utc(time.time()),
                  changed=old != new)
    if old == new:
        return result
    if module._diff:
        result["diff"] = dict(before=old_text or "", after=to_text(new),
                              before_header=path if old is not None else "%s (absent)" % path,
                              after_header=path)
    if module.check_mode:
        return result

    started = monotonic()
    failed = dict(live=previous, previous_live=previous, servers_state={}, switch_ms=0.0,
                  reloaded=False, backup_server=None, at=result["at"])
    write_atomic(path, new, st)
    test_argv = nginx_argv(module, params, "-t", "-q")
    rc, out, err = module.run_command(test_argv)
    if rc != 0:
        restore_include(path, old, st)
        raise ProdreadyError("nginx -t refused the upstream for %s (server %s) in %s, the "
                             "previous include was restored: %s"
                             % (live, address, path, (err or out).strip()),
                             rc=rc, **failed)
    rc, out, err = module.run_command(nginx_argv(module, params, "-s", "reload"))
    if rc != 0:
        restore_include(path, old, st)
        raise ProdreadyError("nginx -s reload failed (is nginx running with this prefix and "
                             "configuration?), the previous include was restored: %s"
                             % (err or out).strip(),
                             rc=rc, **failed)
    result.update(reloaded=True, switch_ms=round((monotonic() - started) * 1000.0, 1),
                  at=_haproxy.iso_utc(time.time()))
    return result


# ---------------------------------------------------------------- entry point

def run(module):
    """The module's work for `module.params`; returns the result dict."""
    validate(module.params)
    if module.params["router"] == "haproxy":
        return run_haproxy(module)
    return run_nginx(module)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=REQUIRED_IF, mutually_exclusive=MUTUALLY_EXCLUSIVE)
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)


if __name__ == "__main__":
    main()
