# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic of the haproxy runtime API and the nginx upstream include (no I/O)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import datetime
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

# haproxy's own rule for proxy and server names (invalid_char() in haproxy's tools.h). It also
# keeps a name from smuggling a second command (`;`) or line into a runtime-API batch.
NAME_OK = re.compile(r"^[A-Za-z0-9._:-]+$")

# Prefixes haproxy writes before a TCP address (`stats socket ipv4@127.0.0.1:9999`).
ADDRESS_FAMILIES = {"": "any", "tcp": "any", "ipv4": "ipv4", "tcp4": "ipv4", "ipv6": "ipv6",
                    "tcp6": "ipv6"}

# Commands of one runtime-API line are separated by `;`. haproxy 2.6 took a 28 kB line; a
# longer batch is cut into lines of at most this size, sent one after the other.
BATCH_MAX_CHARS = 8192


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


def is_checked_up(server):
    """True when haproxy's health checks hold the server UP, whatever its admin state: UP
    (ready) or DRAIN (drained, checks still running); a server without health check when it
    is running."""
    if server.get("status", "") == "no check":
        return server.get("operational_state") == "running"
    return server.get("status", "") in ("UP", "DRAIN")


def serving(states):
    """Names of the servers that take new traffic (ready and up), sorted."""
    return sorted(name for name, srv in states.items()
                  if srv["admin_state"] == "ready" and is_up(srv))


def live_names(live):
    """`live` (a server name or a list of them) as a list."""
    return list(live) if isinstance(live, (list, tuple)) else [live]


def already_live(states, live):
    """True when the server(s) `live` are exactly the ready servers of `states` and all are
    up (nothing to switch)."""
    names = live_names(live)
    ready = [name for name, srv in states.items() if srv["admin_state"] == "ready"]
    return sorted(ready) == sorted(names) and all(is_up(states[name]) for name in names)


def previous_live(states, live):
    """What served before a switch to `live`.

    One server (a str): a serving server other than `live` when there is one, `live` when
    only it serves, None when nothing serves. A list: every server of `states` that serves
    (sorted; it may include servers of `live`), so that a switch back to that list restores
    the traffic exactly."""
    names = serving(states)
    if isinstance(live, (list, tuple)):
        return names
    others = [name for name in names if name != live]
    if others:
        return others[0]
    return live if live in names else None


def plan_ready(states, names):
    """[(server, "ready")] for the servers of `names` that are not ready yet."""
    return [(name, "ready") for name in sorted(set(names)) if states[name]["admin_state"] != "ready"]


def plan_old(states, live, old_state):
    """[(server, state)] commands that take every server of `states` but `live` (a name or a
    list of names) out of rotation."""
    keep = set(live_names(live))
    return [(name, old_state) for name in sorted(states)
            if name not in keep and states[name]["admin_state"] != old_state]


def plan_maint(states, keep_checked=()):
    """[(server, "maint")] for the servers of `states` not in maint yet; the servers of
    `keep_checked` go to (or stay in) drain instead."""
    keep = set(keep_checked)
    return [(name, "drain" if name in keep else "maint") for name in sorted(states)
            if states[name]["admin_state"] != ("drain" if name in keep else "maint")]


def plan_restore(restore_to, states=None):
    """[(server, state)] that put back the servers of {server: admin state} a failed switch
    made ready: those whose admin state in `states` (as read after the failure) is not the one
    to go back to; without `states`, every one that was not ready."""
    if states is None:
        return [(name, state) for name, state in sorted(restore_to.items()) if state != "ready"]
    return [(name, state) for name, state in sorted(restore_to.items())
            if states.get(name, {}).get("admin_state") != state]


def backup_name(color):
    """The runtime backup server that carries `color`'s address."""
    return BACKUP_PREFIX + color


def split_backups(states):
    """(colors, backups): the backend's servers, runtime backup servers apart."""
    colors = dict((name, srv) for name, srv in states.items() if not name.startswith(BACKUP_PREFIX))
    backups = dict((name, srv) for name, srv in states.items() if name.startswith(BACKUP_PREFIX))
    return colors, backups


def in_scope(states, names):
    """(colors, backups) of `states` a task may touch: with `names` (the keys of the
    `servers` option) those servers and their runtime backup servers; with None every
    server of the backend. Names missing from `states` are skipped (see check_scope)."""
    colors, backups = split_backups(states)
    if names is None:
        return colors, backups
    wanted = set(names)
    return (dict((name, srv) for name, srv in colors.items() if name in wanted),
            dict((name, srv) for name, srv in backups.items()
                 if name[len(BACKUP_PREFIX):] in wanted))


def check_scope(states, backend, names, live):
    """Refuse a switch whose servers are not in the backend: ProdreadyError naming the option
    (`live` or `servers`) and the missing server(s)."""
    colors = split_backups(states)[0]
    if not colors:
        raise ProdreadyError("backend: haproxy backend %s has no servers, or does not exist" % backend)
    listed = ", ".join(sorted(colors))
    missing = [name for name in live_names(live or []) if name not in colors]
    if missing:
        raise ProdreadyError("live: server %s is not in haproxy backend %s (servers: %s)"
                             % (", ".join(missing), backend, listed))
    missing = sorted(name for name in names or () if name not in colors)
    if missing:
        raise ProdreadyError("servers: %s %s not in haproxy backend %s (servers: %s)"
                             % (", ".join(missing), "is" if len(missing) == 1 else "are", backend,
                                listed))


def plan_backups(backups, keep):
    """(remove, add, enable) for the runtime backup servers `backups` when the backup servers
    of `keep` (a color, a list of them, or None) must be the only ones: the names to delete,
    the colors whose backup server is to be added, the names to put back to ready."""
    keep = set(live_names(keep)) - {None} if keep is not None else set()
    want = set(backup_name(color) for color in keep)
    remove = sorted(name for name in backups if name not in want)
    add = sorted(color for color in keep if backup_name(color) not in backups)
    enable = sorted(name for name in want if name in backups and backups[name]["admin_state"] != "ready")
    return remove, add, enable


def batch_lines(backend, plan, limit=BATCH_MAX_CHARS):
    """The runtime-API lines (commands joined with `;`) that apply `plan` [(server, state)]:
    one line, unless it would be longer than `limit` characters."""
    lines, current = [], []
    for server, state in plan:
        command = "set server %s/%s state %s" % (backend, server, state)
        if current and len(";".join(current + [command])) > limit:
            lines.append(";".join(current))
            current = []
        current.append(command)
    if current:
        lines.append(";".join(current))
    return lines


def split_answers(text, count):
    """haproxy's answers to a line of `count` commands separated by `;`, one string each
    (stripped; empty when the command succeeded silently), or None when the text does not
    hold `count` answers.

    Each answer is its text followed by an empty line (haproxy 2.6 leaves the empty line
    out after the last one in some error cases): ``set server`` answers ``"\n"`` when it
    succeeds, ``"No such server.\n\n"`` when it does not."""
    if not text:
        return None
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    answers, current = [], []
    for line in lines:
        if line.strip():
            current.append(line.strip())
            continue
        answers.append("\n".join(current))
        current = []
    if current:
        answers.append("\n".join(current))
    return answers if len(answers) == count else None


def refused(backend, plan, answers):
    """["set server <b>/<s> state <x>: <answer>"] for each command of `plan` haproxy answered
    with text (an error); `answers` from split_answers."""
    return ["set server %s/%s state %s: %s" % (backend, server, state, answer)
            for (server, state), answer in zip(plan, answers) if answer]


def check_summary(server):
    """``status DOWN, check L7STS code 503 (<last_chk>, <check_desc>)`` for one server."""
    return ("status %s, check %s%s (%s%s)"
            % (server.get("status") or "?", server.get("check_status") or "none",
               " code %s" % server["check_code"] if server.get("check_code") else "",
               server.get("last_chk") or "no detail",
               ", " + server["check_desc"] if server.get("check_desc") else ""))


def not_up_message(backend, not_up, waited, restore_to):
    """The failure when server(s) of a switch never came UP: `not_up` {server: its state},
    `restore_to` {server: the admin state it was put back to} for every server asked for."""
    if len(restore_to) == 1:
        name = list(not_up)[0]
        return ("haproxy: server %s/%s did not become UP within %.1f s: %s; it was put back to %s "
                "and the old server(s) keep serving"
                % (backend, name, waited, check_summary(not_up[name]), restore_to[name]))
    details = ["%s/%s %s" % (backend, name, check_summary(srv)) for name, srv in sorted(not_up.items())]
    back = ", ".join("%s %s" % (name, state) for name, state in sorted(restore_to.items()))
    return ("haproxy: %d of %d servers did not become UP within %.1f s: %s; every one of the %d "
            "was put back to its previous state (%s) and the old server(s) keep serving"
            % (len(not_up), len(restore_to), waited, "; ".join(details), len(restore_to), back))


def parse_admin_address(text):
    """(family, host, port) of a runtime-API TCP address: ``host:port``, ``ipv4@host:port``,
    ``ipv6@[::1]:port`` or ``[::1]:port`` (family ``any``, ``ipv4`` or ``ipv6``)."""
    value = (text or "").strip()
    prefix, sep, rest = value.partition("@")
    if not sep:
        prefix, rest = "", value
    if prefix.lower() not in ADDRESS_FAMILIES:
        hint = " (a UNIX socket goes in admin_socket)" if prefix.lower() in ("unix", "abns") else ""
        raise ProdreadyError("admin_address: %r has an address prefix haproxy's runtime API does not "
                             "listen on over TCP: %s@%s" % (text, prefix, hint))
    family = ADDRESS_FAMILIES[prefix.lower()]
    match = re.match(r"^\[([0-9A-Fa-f:.]+)\]:(\w+)$", rest)
    if match and family == "ipv4":
        raise ProdreadyError("admin_address: %r puts an IPv6 address after ipv4@" % text)
    if match:
        host, port, family = match.group(1), match.group(2), "ipv6"
    elif rest.count(":") > 1 and family == "ipv6":
        host, port = rest.rsplit(":", 1)
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    else:
        raise ProdreadyError("admin_address: %r is not host:port (an IPv6 address goes in brackets, "
                             "[::1]:9999)" % text)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProdreadyError("admin_address: %r needs a host and a port from 1 to 65535" % text)
    return family, host, int(port)


def format_address(host, port):
    """``host:port``, with the host in brackets when it is an IPv6 address."""
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def check_name(option, name):
    """Refuse a backend or server name haproxy would not accept (it would also break a batch
    of runtime-API commands); ProdreadyError naming `option`."""
    if not isinstance(name, str) or not NAME_OK.match(name):
        raise ProdreadyError("%s: %r is not a haproxy name (letters, digits, '.', ':', '_' and '-')"
                             % (option, name))


def iso_utc(epoch):
    """``2026-12-01T09:30:00.000000Z`` for a time.time() value (always with microseconds, so
    that Ansible's to_datetime('%Y-%m-%dT%H:%M:%S.%fZ') reads it)."""
    moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=epoch)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
