# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: router_switch
short_description: Send a blue-green router's traffic to one color (haproxy or nginx)
version_added: 0.1.0
description:
  - Makes the router send new requests to the server of one color, O(live), and no longer to
    the other color(s).
  - "O(router=haproxy): both colors are servers of one backend. The module talks to the
    runtime API on the admin socket: C(set server <backend>/<live> state ready), waits until
    the health checks report it UP (or, for a server without health check, that it is ready
    and running), then C(set server <backend>/<other> state drain) (or C(maint)) for every
    other server. No reload, no client connection is touched. When the new server does not
    come UP within O(wait_timeout), it is put back to the state it had, the other servers are
    left as they were, and the module fails naming the server, its status and its check
    details."
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
  live:
    description:
      - The color (haproxy server name, key of O(servers)) that must take the traffic, for
        example V(blue) or V(green).
    type: str
    required: true
  servers:
    description:
      - "The address (C(host:port)) of each color, for example C({blue: 127.0.0.1:8001})."
      - Required with O(router=nginx). With O(router=haproxy) the servers come from the
        backend; when given, O(live) must be one of its keys.
    type: dict
  wait_timeout:
    description:
      - With O(router=haproxy), seconds to wait for the new server to be UP.
    type: float
    default: 10
  old_state:
    description:
      - With O(router=haproxy), the state the other servers are put in. V(drain) lets
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
      - With V(false), every such backup server of the backend is deleted (C(del server)),
        also when O(live) already serves; the blue_green role does so before it stops the old
        color and when it switches back.
      - When haproxy refuses to add it, the switch is still done and a warning says why.
    type: bool
    default: false
  admin_socket:
    description:
      - With O(router=haproxy) (required there), the UNIX socket of the runtime API, declared
        with C(stats socket <path> level admin) in haproxy's C(global) section.
    type: path
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
attributes:
  check_mode:
    support: full
    description: Reads the router's state and reports RV(previous_live), RV(live) and whether
      it would change; sends no command, writes no file, reloads nothing.
  diff_mode:
    support: partial
    description: With O(router=nginx), shows the upstream include before and after. Nothing
      is shown for haproxy, whose change is in RV(servers_state).
"""

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
  description: The color taking the traffic after the task (in check mode, the one it would be).
  returned: always
  type: str
  sample: green
previous_live:
  description:
    - The color that was serving before the task, V(null) when none was (or, with nginx, when
      the include pointed at an address that is not in O(servers)).
  returned: always
  type: str
  sample: blue
servers_state:
  description:
    - With haproxy, each server of the backend after the task, with its administrative state
      (V(ready), V(drain), V(maint)), operational state, status as in C(show stat) and the
      last health check. V({}) with nginx.
  returned: always
  type: dict
  sample: {"blue": {"admin_state": "drain", "operational_state": "running", "status": "DRAIN",
                    "check_status": "L7OK", "check_code": "200", "last_chk": "OK",
                    "check_desc": "Layer7 check passed"},
           "green": {"admin_state": "ready", "operational_state": "running", "status": "UP",
                     "check_status": "L7OK", "check_code": "200", "last_chk": "OK",
                     "check_desc": "Layer7 check passed"}}
backup_server:
  description:
    - With haproxy, the runtime backup server left in the backend (see
      O(keep_previous_as_backup)) and the address it sends to, V(null) when there is none.
  returned: always
  type: dict
  sample: {"name": "prodready-backup-blue", "address": "127.0.0.1:8001"}
switch_ms:
  description: Milliseconds from the first command sent to the router to the last, V(0) when
    nothing was sent.
  returned: always
  type: float
  sample: 612.4
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
from ansible_collections.prodready.deploy.plugins.module_utils import _atomic
from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy
from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy_runtime

NEW_INCLUDE_MODE = 0o644


def argument_spec():
    """The module's options."""
    return dict(
        router=dict(type="str", required=True, choices=["haproxy", "nginx"]),
        live=dict(type="str", required=True),
        servers=dict(type="dict"),
        wait_timeout=dict(type="float", default=10),
        old_state=dict(type="str", default="drain", choices=["drain", "maint"]),
        keep_previous_as_backup=dict(type="bool", default=False),
        admin_socket=dict(type="path"),
        backend=dict(type="str", default="be_app"),
        upstream_include=dict(type="path"),
        upstream_name=dict(type="str", default="app_live"),
        keepalive=dict(type="int", default=16),
        nginx_binary=dict(type="path"),
        nginx_prefix=dict(type="path"),
        nginx_conf=dict(type="path"),
    )


REQUIRED_IF = [
    ("router", "haproxy", ["admin_socket"]),
    ("router", "nginx", ["servers", "upstream_include"]),
]


def check_options(params):
    """Refuse values the spec alone does not catch, naming the option."""
    servers = params["servers"]
    if servers is not None:
        for color, address in servers.items():
            if not isinstance(address, str):
                raise ProdreadyError("servers: the address of %s must be a string host:port, "
                                     "got %r" % (color, address))
        if params["live"] not in servers:
            raise ProdreadyError("live: %s is not a key of servers (%s)"
                                 % (params["live"], ", ".join(sorted(servers)) or "empty"))
    if params["wait_timeout"] < 0:
        raise ProdreadyError("wait_timeout: must be 0 or more seconds, got %s"
                             % params["wait_timeout"])
    if params["keepalive"] < 1:
        raise ProdreadyError("keepalive: must be 1 or more, got %d" % params["keepalive"])


# ---------------------------------------------------------------- haproxy

RuntimeApi = _haproxy_runtime.RuntimeApi


def run_haproxy(module, api=None, monotonic=time.monotonic, sleep=time.sleep):
    """Switch the haproxy backend to `live`; returns the result dict."""
    params = module.params
    return _haproxy_runtime.switch(
        api or RuntimeApi(params["admin_socket"]), params["backend"], params["live"],
        wait_timeout=params["wait_timeout"], old_state=params["old_state"],
        keep_previous_as_backup=params["keep_previous_as_backup"], check_mode=module.check_mode,
        warn=module.warn, monotonic=monotonic, sleep=sleep)


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


def run_nginx(module, monotonic=time.monotonic):
    """Point the nginx upstream include at `live`, test and reload; returns the result dict."""
    params = module.params
    live = params["live"]
    path = params["upstream_include"]
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
                  reloaded=False, changed=old != new)
    if old == new:
        return result
    if module._diff:
        result["diff"] = dict(before=old_text or "", after=to_text(new),
                              before_header=path if old is not None else "%s (absent)" % path,
                              after_header=path)
    if module.check_mode:
        return result

    started = monotonic()
    write_atomic(path, new, st)
    test_argv = nginx_argv(module, params, "-t", "-q")
    rc, out, err = module.run_command(test_argv)
    if rc != 0:
        restore_include(path, old, st)
        raise ProdreadyError("nginx -t refused the upstream for %s (server %s) in %s, the "
                             "previous include was restored: %s"
                             % (live, address, path, (err or out).strip()),
                             live=previous, previous_live=previous, servers_state={},
                             switch_ms=0.0, reloaded=False, rc=rc)
    rc, out, err = module.run_command(nginx_argv(module, params, "-s", "reload"))
    if rc != 0:
        restore_include(path, old, st)
        raise ProdreadyError("nginx -s reload failed (is nginx running with this prefix and "
                             "configuration?), the previous include was restored: %s"
                             % (err or out).strip(),
                             live=previous, previous_live=previous, servers_state={},
                             switch_ms=0.0, reloaded=False, rc=rc)
    result.update(reloaded=True, switch_ms=round((monotonic() - started) * 1000.0, 1))
    return result


# ---------------------------------------------------------------- entry point

def run(module):
    """The module's work for `module.params`; returns the result dict."""
    check_options(module.params)
    if module.params["router"] == "haproxy":
        return run_haproxy(module)
    return run_nginx(module)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=REQUIRED_IF)
    try:
        module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)


if __name__ == "__main__":
    main()
