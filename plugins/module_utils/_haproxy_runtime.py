# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The haproxy runtime API (admin socket or TCP admin address), and what router_switch and
rollback_start do with it: switch a backend's servers, put them in maint or back to ready.

The decisions are the pure functions of _haproxy; this file talks to haproxy.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import time

from ansible.module_utils.common.text.converters import to_native, to_text

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy

POLL_S = 0.1
DELETE_TIMEOUT_S = 5.0  # `del server` waits for the backup server's last connections to end
SOCKET_TIMEOUT_S = 5.0
FAMILIES = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}


class RuntimeApi(object):
    """haproxy's runtime API on a UNIX socket (`socket_path`) or a TCP address (`address`,
    as the admin_address option writes it), one connection per command line."""

    def __init__(self, socket_path=None, address=None, timeout=SOCKET_TIMEOUT_S):
        if bool(socket_path) == bool(address):
            raise ProdreadyError("admin_socket, admin_address: give one of them")
        self.socket_path = socket_path
        self.timeout = timeout
        if address:
            family, host, port = _haproxy.parse_admin_address(address)
            self.tcp = (FAMILIES[family], host, port)
            self.where = ("admin_address", "admin address %s" % _haproxy.format_address(host, port))
        else:
            self.tcp = None
            self.where = ("admin_socket", "admin socket %s" % socket_path)

    def _connect(self):
        if self.tcp is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
            except Exception:
                sock.close()
                raise
            return sock
        family, host, port = self.tcp
        last = None
        for af, kind, proto, _name, addr in socket.getaddrinfo(host, port, family, socket.SOCK_STREAM):
            sock = socket.socket(af, kind, proto)
            sock.settimeout(self.timeout)
            try:
                sock.connect(addr)
                return sock
            except (socket.error, OSError) as exc:
                sock.close()
                last = exc
        raise last or OSError("no address found for %s" % host)

    def command(self, line):
        """Send one command line, return haproxy's answer as text."""
        sock = None
        try:
            sock = self._connect()
            sock.sendall((line + "\n").encode("utf-8"))
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except (socket.error, OSError) as exc:
            raise ProdreadyError("%s: cannot run %r on haproxy's %s: %s"
                                 % (self.where[0], line, self.where[1], to_native(exc)))
        finally:
            if sock is not None:
                sock.close()
        return to_text(b"".join(chunks), errors="replace")

    def set_states(self, backend, plan):
        """Apply `plan` [(server, state)] with ``set server <backend>/<server> state <state>``
        commands joined by `;` on one line (several lines only past
        _haproxy.BATCH_MAX_CHARS); returns ["<command>: <answer>"] for each command haproxy
        refused (haproxy runs the others). When an answer cannot be split per command, the
        servers whose admin state is not the one asked for are reported with the whole answer."""
        refused = []
        lines = _haproxy.batch_lines(backend, plan)
        done = 0
        for line in lines:
            count = line.count(";") + 1
            part = plan[done:done + count]
            done += count
            text = self.command(line)
            answers = _haproxy.split_answers(text, count)
            if answers is not None:
                refused += _haproxy.refused(backend, part, answers)
                continue
            now = self.states(backend)
            refused += ["set server %s/%s state %s: %s" % (backend, server, state, text.strip() or "no answer")
                        for server, state in part
                        if now.get(server, {}).get("admin_state") != state]
        return refused

    def set_state(self, backend, server, state):
        """``set server <backend>/<server> state <state>``; an answer is an error."""
        refused = self.set_states(backend, [(server, state)])
        if refused:
            raise ProdreadyError("haproxy: %s" % refused[0])

    def add_backup(self, backend, name, address):
        """``add server <backend>/<name> <address> backup``, then ready (it is added in maint)."""
        answer = self.command("add server %s/%s %s backup" % (backend, name, address)).strip()
        if "New server registered" not in answer:
            raise ProdreadyError("haproxy refused add server %s/%s %s backup: %s"
                                 % (backend, name, address, answer or "no answer"))
        self.set_state(backend, name, "ready")

    def delete_server(self, backend, name, monotonic=time.monotonic, sleep=time.sleep):
        """Maint, then ``del server`` until haproxy accepts (its connections must end first);
        returns None, or haproxy's last answer when it still refused after DELETE_TIMEOUT_S."""
        self.set_state(backend, name, "maint")
        deadline = monotonic() + DELETE_TIMEOUT_S
        while True:
            answer = self.command("del server %s/%s" % (backend, name)).strip()
            if "Server deleted" in answer:
                return None
            if monotonic() >= deadline:
                return answer or "no answer"
            sleep(POLL_S)

    def states(self, backend):
        """The merged state of every server of `backend`."""
        admin = _haproxy.parse_servers_state(self.command("show servers state %s" % backend),
                                             backend)
        stat_rows = _haproxy.parse_stat(self.command("show stat %s 4 -1" % backend), backend)
        return _haproxy.merge_states(admin, stat_rows)


def scoped(api, backend, servers):
    """The states of the servers of `backend` a task may touch (_haproxy.in_scope), as one dict."""
    colors, backups = _haproxy.in_scope(api.states(backend), servers)
    return dict(colors, **backups)


def send(api, backend, plan, what):
    """Apply `plan` in one batch; ProdreadyError saying `what` failed when haproxy refused a
    command (the accepted ones are applied)."""
    refused = api.set_states(backend, plan) if plan else []
    if refused:
        raise ProdreadyError("haproxy refused to %s: %s (is the stats socket declared with "
                             "level admin?)" % (what, "; ".join(refused)))


def wait_up(api, backend, servers, names, wait_timeout, started, monotonic, sleep, is_up=_haproxy.is_up):
    """Poll until every server of `names` is UP (`is_up`): ({}, states) when they are, or
    ({server: its state} for those not UP after `wait_timeout` s, states) and the seconds waited."""
    while True:
        current = scoped(api, backend, servers)
        not_up = dict((name, current[name]) for name in names if not is_up(current[name]))
        waited = monotonic() - started
        if not not_up or waited >= wait_timeout:
            return not_up, current, waited
        sleep(POLL_S)


def switch(api, backend, live, servers=None, wait_timeout=10.0, old_state="drain",
           keep_previous_as_backup=False, check_mode=False, warn=None, monotonic=time.monotonic,
           sleep=time.sleep, clock=time.time):
    """Switch haproxy `backend` (through RuntimeApi `api`) to the server(s) `live` (a name or a
    list of names): make them ready in one batch, wait up to `wait_timeout` s until every one
    is UP, then set the other servers to `old_state` in one batch. Only the servers named in
    `servers` (and their runtime backup servers) take part; None means every server of the
    backend. With `keep_previous_as_backup` the previous server(s) stay as runtime backup
    servers. `warn(text)` receives what went wrong without failing the switch.

    Returns the router_switch result dict (changed, live, previous_live, servers_state,
    switch_ms, reloaded, backup_server, at); previous_live and backup_server are lists when
    `live` is. Raises ProdreadyError when a server of `live` does not come up (all of them
    are put back to their previous admin state first)."""
    warn = warn or (lambda text: None)
    listed = isinstance(live, (list, tuple))
    names = _haproxy.live_names(live)
    everything = api.states(backend)
    _haproxy.check_scope(everything, backend, servers, names)
    before, backups = _haproxy.in_scope(everything, servers)
    previous = _haproxy.previous_live(before, live)
    result = dict(live=live, previous_live=previous, servers_state=dict(before, **backups),
                  switch_ms=0.0, reloaded=False, backup_server=backup_info(backups, listed),
                  at=_haproxy.iso_utc(clock()))
    if _haproxy.already_live(before, names):
        # Nothing to switch. With keep_previous_as_backup a backup server there stays (the
        # switch that added it knew the previous server); without, any one is deleted.
        if keep_previous_as_backup or not backups:
            return dict(result, changed=False)
        if check_mode:
            return dict(result, changed=True, backup_server=[] if listed else None)
        return dict(result, changed=True,
                    **apply_backups(api, backend, servers, before, backups, None, listed, warn))
    if check_mode:
        return dict(result, changed=True)

    started = monotonic()
    restore_to = dict((name, before[name]["admin_state"]) for name in names)
    failed = dict(live=previous, previous_live=previous, switch_ms=0.0, reloaded=False,
                  backup_server=result["backup_server"])
    try:
        send(api, backend, _haproxy.plan_ready(before, names), "make %s ready" % ", ".join(names))
        not_up, current, waited = wait_up(api, backend, servers, names, wait_timeout, started,
                                          monotonic, sleep)
    except ProdreadyError as exc:
        text, states = fail_back(api, backend, servers, restore_to)
        raise ProdreadyError(str(exc) + text, servers_state=states, at=_haproxy.iso_utc(clock()),
                             **failed)
    if not_up:
        text, states = fail_back(api, backend, servers, restore_to)
        raise ProdreadyError(_haproxy.not_up_message(backend, not_up, waited, restore_to) + text,
                             servers_state=states, at=_haproxy.iso_utc(clock()), **failed)
    old = _haproxy.plan_old(_haproxy.in_scope(current, servers)[0], names, old_state)
    refused = api.set_states(backend, old) if old else []
    switch_ms = round((monotonic() - started) * 1000.0, 1)
    at = _haproxy.iso_utc(clock())
    if refused:
        raise ProdreadyError("haproxy: %s serve%s, but haproxy refused to take the others out of "
                             "rotation, so both serve: %s"
                             % (", ".join(names), "" if listed else "s", "; ".join(refused)),
                             live=live, previous_live=previous, switch_ms=switch_ms, reloaded=False,
                             backup_server=result["backup_server"], at=at,
                             servers_state=scoped(api, backend, servers))
    if not keep_previous_as_backup:
        keep = None
    elif listed:
        keep = [name for name in previous if name not in names]
    else:
        keep = previous if previous not in (None, live) else None
    return dict(result, changed=True, switch_ms=switch_ms, at=at,
                **apply_backups(api, backend, servers, before, backups, keep, listed, warn))


def observe(api, backend, servers=None, clock=time.time):
    """What haproxy serves, read only: the router_switch result of O(state=observed) for the
    servers of `servers` (and their runtime backup servers; every server of the backend
    without `servers`). Servers of `servers` that are not in the backend are simply absent
    from servers_state: what is observed is reported, nothing is refused."""
    colors, backups = _haproxy.in_scope(api.states(backend), servers)
    serving = _haproxy.serving(colors)
    return dict(changed=False, observed=True, live=serving, previous_live=serving, servers_state=dict(colors, **backups),
                switch_ms=0.0, reloaded=False, backup_server=backup_info(backups, True),
                at=_haproxy.iso_utc(clock()))


def observe_access(access):
    """What the router serves, read from this host with router_switch's arguments `access`
    (router, admin_socket or admin_address, backend, servers; nginx: upstream_include,
    servers): the router_switch state=observed result."""
    if access.get("router") == "nginx":
        path = access.get("upstream_include") or ""
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
        except (IOError, OSError):
            text = None
        address = _haproxy.upstream_address(text)
        live = _haproxy.color_of(address, access.get("servers") or {}) if address else None
        return dict(changed=False, observed=True, live=live, previous_live=live, upstream_address=address,
                    servers_state={}, switch_ms=0.0, reloaded=False, backup_server=None,
                    at=_haproxy.iso_utc(time.time()))
    api = RuntimeApi(access.get("admin_socket"), access.get("admin_address"))
    servers = access.get("servers")
    return observe(api, access.get("backend") or "be_app", sorted(servers) if servers else None)


def fail_back(api, backend, servers, restore_to):
    """Put the servers of a failed switch back to their admin states {server: state} (those
    haproxy reports in another state); returns ('' or what went wrong doing so, for the
    failure message; the servers' states after)."""
    try:
        plan = _haproxy.plan_restore(restore_to, scoped(api, backend, servers))
    except ProdreadyError:
        plan = _haproxy.plan_restore(restore_to)
    try:
        refused = api.set_states(backend, plan) if plan else []
    except ProdreadyError as exc:
        return "; putting %s back failed too: %s" % (", ".join(name for name, _s in plan), exc), {}
    text = "; haproxy refused to put back: %s" % "; ".join(refused) if refused else ""
    try:
        return text, scoped(api, backend, servers)
    except ProdreadyError as exc:
        return text + "; the servers' states could not be read back: %s" % exc, {}


def maint(api, backend, servers=None, check_mode=False, up=None, wait_timeout=10.0,
          monotonic=time.monotonic, sleep=time.sleep, clock=time.time):
    """Put the servers named in `servers` (None: every server of `backend`) and their runtime
    backup servers in maint in one batch: haproxy answers 503 from then on. Returns the
    router_switch result dict; `at` is when the batch was applied, `previous_live` the
    servers that served before (a list), `live` [] and `backup_server` [].

    `up` (a name or a list of names): the server(s) that take the traffic after the
    maintenance. Before traffic stops they must be UP by haproxy's own health checks (one in
    maint is first set to drain, so that haproxy checks it while no new request reaches it),
    waited for up to `wait_timeout` s; then they stay in drain while every other server goes
    to maint. haproxy keeps checking a drained server, so made ready it serves at once and
    the maintenance window holds no health check (a server leaving maint is shown UP before
    any check, even when nothing listens: only its first check tells). When one is not UP in
    time, the drained ones are put back to maint, nothing else changes (traffic is not
    stopped) and ProdreadyError names each server not UP with its check."""
    everything = api.states(backend)
    names = _haproxy.live_names(up) if up is not None else []
    _haproxy.check_scope(everything, backend, servers, names or None)
    before, backups = _haproxy.in_scope(everything, servers)
    targets = dict(before, **backups)
    result = dict(changed=False, live=[], previous_live=_haproxy.serving(before),
                  servers_state=targets, switch_ms=0.0, reloaded=False, backup_server=[],
                  at=_haproxy.iso_utc(clock()), checked_up=names, waited_up_s=0.0)
    if check_mode:
        return dict(result, changed=bool(_haproxy.plan_maint(targets, keep_checked=names)))
    if names:
        started = monotonic()
        checked = [(name, "drain") for name in names if before[name]["admin_state"] == "maint"]
        if checked:
            send(api, backend, checked, "let haproxy check %s" % ", ".join(name for name, _s in checked))
        not_up, current, waited = wait_up(api, backend, servers, names, wait_timeout, started,
                                          monotonic, sleep, is_up=_haproxy.is_checked_up)
        result["waited_up_s"] = round(waited, 3)
        if not_up:
            restore_to = dict((name, "maint") for name, _s in checked)
            text, states = fail_back(api, backend, servers, restore_to) if checked else ("", current)
            result["servers_state"] = states
            raise ProdreadyError(
                "haproxy: traffic was not stopped: %s, which must take the traffic after the "
                "maintenance, %s not UP within %.1f s: %s%s"
                % (", ".join("%s/%s" % (backend, name) for name in sorted(not_up)),
                   "is" if len(not_up) == 1 else "are", waited,
                   "; ".join("%s %s" % (name, _haproxy.check_summary(srv))
                             for name, srv in sorted(not_up.items())), text),
                **result)
        before, backups = _haproxy.in_scope(current, servers)
        targets = dict(before, **backups)
    plan = _haproxy.plan_maint(targets, keep_checked=names)
    if not plan:
        return result
    started = monotonic()
    refused = api.set_states(backend, plan)
    result.update(changed=True, switch_ms=round((monotonic() - started) * 1000.0, 1),
                  at=_haproxy.iso_utc(clock()), servers_state=scoped(api, backend, servers))
    if refused:
        raise ProdreadyError("haproxy refused to put servers in maint, they still take traffic: %s"
                             % "; ".join(refused), **result)
    return result


def ready(api, backend, live, servers=None, wait_timeout=10.0, check_mode=False,
          monotonic=time.monotonic, sleep=time.sleep, clock=time.time):
    """Put the server(s) `live` back to ready in one batch, leaving every other server as it
    is, and wait up to `wait_timeout` s until they are UP. Returns the router_switch result
    dict; raises ProdreadyError naming each server not UP in time (they stay ready: haproxy
    sends them traffic as soon as their health checks pass)."""
    listed = isinstance(live, (list, tuple))
    names = _haproxy.live_names(live)
    everything = api.states(backend)
    _haproxy.check_scope(everything, backend, servers, names)
    before, backups = _haproxy.in_scope(everything, servers)
    plan = _haproxy.plan_ready(before, names)
    result = dict(changed=bool(plan), live=live, previous_live=_haproxy.previous_live(before, live),
                  servers_state=dict(before, **backups), switch_ms=0.0, reloaded=False,
                  backup_server=backup_info(backups, listed), at=_haproxy.iso_utc(clock()))
    if check_mode:
        return result
    started = monotonic()
    if plan:
        send(api, backend, plan, "make %s ready" % ", ".join(names))
        result.update(switch_ms=round((monotonic() - started) * 1000.0, 1),
                      at=_haproxy.iso_utc(clock()))
    not_up, current, waited = wait_up(api, backend, servers, names, wait_timeout, started,
                                      monotonic, sleep)
    result["servers_state"] = current
    if not_up:
        raise ProdreadyError("haproxy: %s ready but not UP within %.1f s: %s; %s take traffic as "
                             "soon as %s health checks pass"
                             % (", ".join("%s/%s" % (backend, name) for name in sorted(not_up)),
                                waited, "; ".join("%s %s" % (name, _haproxy.check_summary(srv))
                                                  for name, srv in sorted(not_up.items())),
                                "they" if len(not_up) > 1 else "it",
                                "their" if len(not_up) > 1 else "its"), **result)
    return result


def backup_info(backups, listed=False):
    """The `backup_server` result: the runtime backup server that is ready (None when there is
    none); with `listed`, every one that is ready (a list, sorted by name)."""
    ready_names = sorted(name for name, srv in backups.items() if srv["admin_state"] == "ready")
    infos = [dict(name=name, address=backups[name].get("address")) for name in ready_names]
    if listed:
        return infos
    return infos[0] if infos else None


def apply_backups(api, backend, servers, colors, backups, keep, listed, warn):
    """Leave the runtime backup servers of `keep` (a server, a list of them, or None: none at
    all) in `backend`, ready, and delete the other ones of `backups` (those of this task's
    servers); returns the result's servers_state and backup_server as they are afterwards.

    A backup server is a safety net, not the switch: when haproxy refuses to add or delete
    one, a warning says so and the switch stands."""
    remove, add, enable = _haproxy.plan_backups(backups, keep)
    for name in remove:
        refused = api.delete_server(backend, name)
        if refused:
            warn("router_switch: haproxy did not delete the backup server %s/%s (%s); it "
                 "is in maint, takes no traffic, and the next switch deletes it"
                 % (backend, name, refused))
    for name in enable:
        api.set_state(backend, name, "ready")
    for color in add:
        address = colors.get(color, {}).get("address")
        if not address:
            warn("router_switch: haproxy did not report the address of %s/%s, no backup "
                 "server was added" % (backend, color))
            continue
        try:
            api.add_backup(backend, _haproxy.backup_name(color), address)
        except ProdreadyError as exc:
            warn("router_switch: %s; the switch is done, without a backup server "
                 "(keep_previous_as_backup needs haproxy 2.4 or later and a backend with "
                 "a dynamic balance algorithm)" % exc)
    after = scoped(api, backend, servers)
    return dict(servers_state=after,
                backup_server=backup_info(_haproxy.split_backups(after)[1], listed))
