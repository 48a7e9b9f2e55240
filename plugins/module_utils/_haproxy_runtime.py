# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The haproxy runtime API on its admin socket, and the switch of a backend to one color.

Shared by router_switch and rollback_start: the decisions are the pure functions of
_haproxy; this file talks to the socket.
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


class RuntimeApi(object):
    """The haproxy runtime API on a UNIX socket, one connection per command."""

    def __init__(self, path):
        self.path = path

    def command(self, line):
        """Send one command, return haproxy's answer as text."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(SOCKET_TIMEOUT_S)
        try:
            sock.connect(self.path)
            sock.sendall((line + "\n").encode("utf-8"))
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except (socket.error, OSError) as exc:
            raise ProdreadyError("admin_socket: cannot run %r on haproxy's admin socket %s: %s"
                                 % (line, self.path, to_native(exc)))
        finally:
            sock.close()
        return to_text(b"".join(chunks), errors="replace")

    def set_state(self, backend, server, state):
        """``set server <backend>/<server> state <state>``; an answer is an error."""
        answer = self.command("set server %s/%s state %s" % (backend, server, state)).strip()
        if answer:
            raise ProdreadyError("haproxy: set server %s/%s state %s failed: %s"
                                 % (backend, server, state, answer))

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


def switch(api, backend, live, wait_timeout=10.0, old_state="drain", keep_previous_as_backup=False,
           check_mode=False, warn=None, monotonic=time.monotonic, sleep=time.sleep):
    """Switch haproxy `backend` (through RuntimeApi `api`) to server `live`: make it ready,
    wait up to `wait_timeout` s until its health checks say UP, then set the others to
    `old_state`; with `keep_previous_as_backup` the previous color stays as a runtime backup
    server. `warn(text)` receives what went wrong without failing the switch. Returns the
    router_switch result dict (changed, live, previous_live, servers_state, switch_ms,
    reloaded, backup_server); raises ProdreadyError when `live` does not come up."""
    warn = warn or (lambda text: None)
    before, backups = _haproxy.split_backups(api.states(backend))
    if not before:
        raise ProdreadyError("backend: haproxy backend %s has no servers, or does not exist"
                             % backend)
    if live not in before:
        raise ProdreadyError("live: server %s is not in haproxy backend %s (servers: %s)"
                             % (live, backend, ", ".join(sorted(before))))
    result = dict(live=live, previous_live=_haproxy.previous_live(before, live),
                  servers_state=dict(before, **backups), switch_ms=0.0, reloaded=False,
                  backup_server=backup_info(backups))
    if _haproxy.already_live(before, live):
        # Nothing to switch. With keep_previous_as_backup a backup server there stays (the
        # switch that added it knew the previous color); without, any one is deleted.
        if keep_previous_as_backup or not backups:
            return dict(result, changed=False)
        if check_mode:
            return dict(result, changed=True, backup_server=None)
        return dict(result, changed=True, **apply_backups(api, backend, before, backups, None, warn))
    if check_mode:
        return dict(result, changed=True)

    started = monotonic()
    restore_to = before[live]["admin_state"]
    if restore_to != "ready":
        api.set_state(backend, live, "ready")
    current = _haproxy.split_backups(api.states(backend))[0]
    while not _haproxy.is_up(current[live]):
        waited = monotonic() - started
        if waited >= wait_timeout:
            if restore_to != "ready":
                api.set_state(backend, live, restore_to)
            server = dict(current[live], restore_to=restore_to)
            raise ProdreadyError(_haproxy.not_up_message(backend, live, server, waited),
                                 live=result["previous_live"],
                                 previous_live=result["previous_live"],
                                 servers_state=api.states(backend), switch_ms=0.0,
                                 reloaded=False)
        sleep(POLL_S)
        current = _haproxy.split_backups(api.states(backend))[0]
    for server, state in _haproxy.plan_old(current, live, old_state):
        api.set_state(backend, server, state)
    switch_ms = round((monotonic() - started) * 1000.0, 1)
    previous = result["previous_live"]
    keep = previous if keep_previous_as_backup and previous not in (None, live) else None
    return dict(result, changed=True, switch_ms=switch_ms,
                **apply_backups(api, backend, before, backups, keep, warn))


def backup_info(backups):
    """The `backup_server` result: the one runtime backup server that is ready, or None."""
    ready = sorted(name for name, srv in backups.items() if srv["admin_state"] == "ready")
    if not ready:
        return None
    return dict(name=ready[0], address=backups[ready[0]].get("address"))


def apply_backups(api, backend, colors, backups, keep, warn):
    """Leave backup_name(keep) (None: no runtime backup server at all) in `backend`, ready;
    returns the result's servers_state and backup_server as they are afterwards.

    A backup server is a safety net, not the switch: when haproxy refuses to add or delete
    one, a warning says so and the switch stands."""
    remove, add, enable = _haproxy.plan_backups(backups, keep)
    for name in remove:
        refused = api.delete_server(backend, name)
        if refused:
            warn("router_switch: haproxy did not delete the backup server %s/%s (%s); it "
                 "is in maint, takes no traffic, and the next switch deletes it"
                 % (backend, name, refused))
    if enable:
        api.set_state(backend, _haproxy.backup_name(keep), "ready")
    address = colors.get(keep, {}).get("address") if add else None
    if add and not address:
        warn("router_switch: haproxy did not report the address of %s/%s, no backup "
             "server was added" % (backend, keep))
    elif add:
        try:
            api.add_backup(backend, _haproxy.backup_name(keep), address)
        except ProdreadyError as exc:
            warn("router_switch: %s; the switch is done, without a backup server "
                 "(keep_previous_as_backup needs haproxy 2.4 or later and a backend with "
                 "a dynamic balance algorithm)" % exc)
    after = api.states(backend)
    return dict(servers_state=after, backup_server=backup_info(_haproxy.split_backups(after)[1]))
