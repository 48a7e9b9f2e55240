# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic of the haproxy runtime API and the nginx upstream include (no I/O)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import re

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

# srv_admin_state bits (haproxy include/haproxy/server-t.h). SRV_ADMF_MAINT is 0x63: forced,
# inherited, resolution and health-check maintenance. CMAINT (0x04, "disabled" in the
# configuration) stays set after `state ready` and no longer means maintenance then.
ADMF_MAINT_BITS = 0x01 | 0x02 | 0x20 | 0x40
ADMF_DRAIN_BITS = 0x08 | 0x10                       # forced, inherited
OP_STATES = {0: "stopped", 1: "starting", 2: "running", 3: "stopping"}

# Runtime backup servers (router_switch keep_previous_as_backup) are named this prefix + the
# color whose address they carry; they are not colors and never take part in a switch.
BACKUP_PREFIX = "prodready-backup-"

# Characters that would let a `servers` value escape its nginx `server ...;` line.
NGINX_UNSAFE = re.compile(r"[;{}#\r\n\"'\\$]")


def admin_state_name(bits):
    """``maint``, ``drain`` or ``ready`` for a srv_admin_state bit field."""
    bits = int(bits)
    if bits & ADMF_MAINT_BITS:
        return "maint"
    if bits & ADMF_DRAIN_BITS:
        return "drain"
    return "ready"


def parse_servers_state(text, backend):
    """{server: {admin_state, operational_state}} from ``show servers state <backend>``."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].strip().isdigit():
        raise ProdreadyError("backend: haproxy answered %r to show servers state %s"
                             % (text.strip(), backend))
    header = None
    servers = {}
    for line in lines[1:]:
        if line.startswith("#"):
            header = line.lstrip("# ").split()
            continue
        if header is None:
            continue
        row = dict(zip(header, line.split()))
        if row.get("be_name") != backend:
            continue
        server = dict(admin_state=admin_state_name(row["srv_admin_state"]),
                      operational_state=OP_STATES.get(int(row["srv_op_state"]), row["srv_op_state"]))
        if row.get("srv_addr") and row.get("srv_port", "-") not in ("-", "0"):
            server["address"] = "%s:%s" % (row["srv_addr"], row["srv_port"])
        servers[row["srv_name"]] = server
    return servers


def parse_stat(text, backend):
    """{server: {status, check_status, last_chk, check_desc}} from ``show stat`` CSV."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ProdreadyError("backend: haproxy answered %r to show stat" % text.strip()[:200])
    reader = csv.DictReader([lines[0][2:]] + [line for line in lines[1:] if line.strip()])
    servers = {}
    for row in reader:
        if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        servers[row["svname"]] = dict(status=row.get("status") or "",
                                      check_status=row.get("check_status") or "",
                                      check_code=row.get("check_code") or "",
                                      last_chk=row.get("last_chk") or "",
                                      check_desc=row.get("check_desc") or "")
    return servers


def merge_states(admin, stat):
    """One dict per server from the two answers (servers missing from either are skipped)."""
    merged = {}
    for name, adm in admin.items():
        row = dict(adm)
        empty = dict(status="", check_status="", check_code="", last_chk="", check_desc="")
        row.update(stat.get(name, empty))
        merged[name] = row
    return merged


def is_up(server):
    """True when haproxy would send new requests to it: UP per health checks, or ready and
    running without a health check."""
    status = server.get("status", "")
    if status == "no check":
        return server.get("admin_state") == "ready" and server.get("operational_state") == "running"
    return status == "UP"


def serving(states):
    """Names of the servers that take new traffic (ready and up), sorted."""
    return sorted(name for name, srv in states.items()
                  if srv["admin_state"] == "ready" and is_up(srv))


def already_live(states, live):
    """True when `live` is the only ready server and is up (nothing to switch)."""
    ready = [name for name, srv in states.items() if srv["admin_state"] == "ready"]
    return ready == [live] and is_up(states[live])


def previous_live(states, live):
    """The color serving before the switch: a serving server other than `live` when there is
    one, `live` when only it serves, None when nothing serves."""
    names = serving(states)
    others = [name for name in names if name != live]
    if others:
        return others[0]
    return live if live in names else None


def plan_old(states, live, old_state):
    """[(server, state)] commands that take every other server out of rotation."""
    return [(name, old_state) for name in sorted(states)
            if name != live and states[name]["admin_state"] != old_state]


def backup_name(color):
    """The runtime backup server that carries `color`'s address."""
    return BACKUP_PREFIX + color


def split_backups(states):
    """(colors, backups): the backend's servers, runtime backup servers apart."""
    colors = dict((name, srv) for name, srv in states.items() if not name.startswith(BACKUP_PREFIX))
    backups = dict((name, srv) for name, srv in states.items() if name.startswith(BACKUP_PREFIX))
    return colors, backups


def plan_backups(backups, keep_color):
    """(remove, add, enable) for the runtime backup servers when `keep_color` (or None) must be
    the only one: the names to delete, whether to add backup_name(keep_color), whether to put
    an existing one back to ready."""
    want = backup_name(keep_color) if keep_color else None
    remove = sorted(name for name in backups if name != want)
    add = want is not None and want not in backups
    enable = want is not None and want in backups and backups[want]["admin_state"] != "ready"
    return remove, add, enable


def not_up_message(backend, live, server, waited):
    """The failure when the new server never came UP."""
    return ("haproxy: server %s/%s did not become UP within %.1f s: status %s, check %s%s (%s%s);"
            " it was put back to %s and the old server(s) keep serving"
            % (backend, live, waited, server.get("status") or "?",
               server.get("check_status") or "none",
               " code %s" % server["check_code"] if server.get("check_code") else "",
               server.get("last_chk") or "no detail",
               ", " + server["check_desc"] if server.get("check_desc") else "",
               server.get("restore_to", "its previous state")))


def render_upstream(name, address, keepalive):
    """The nginx include text with one upstream pointing at `address`."""
    return ("upstream %s {\n    server %s;\n    keepalive %d;\n}\n" % (name, address, keepalive))


def check_nginx_address(live, address):
    """Refuse a `servers` value that could inject nginx directives (nginx -t judges the rest)."""
    if not address or not address.strip():
        raise ProdreadyError("servers: the address of %s is empty" % live)
    if NGINX_UNSAFE.search(address):
        raise ProdreadyError("servers: the address of %s (%r) contains a character not allowed "
                             "in an nginx server address" % (live, address))


def upstream_address(text):
    """The first ``server`` address of an upstream include, None when there is none."""
    match = re.search(r"^\s*server\s+([^;\s]+)", text or "", re.M)
    return match.group(1) if match else None


def color_of(address, servers):
    """The color whose address is `address`, None when none matches."""
    for color, value in sorted((servers or {}).items()):
        if value.strip() == address:
            return color
    return None
