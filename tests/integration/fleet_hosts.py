"""Fleet hosts for integration tests: real SSH hosts in network namespaces.

The hosts are made by ``scripts/fleet_hosts.py`` (what a host is, addresses, paths: see its
docstring and docs/development.md). A test file takes the session's fleet with::

    sys.path.insert(0, os.path.dirname(__file__))  # this file, not scripts/fleet_hosts.py
    from fleet_hosts import fleet  # noqa: E402,F401 # pylint: disable=unused-import

    def test_something(fleet):
        result = fleet.ansible("app", "ansible.builtin.command", "id")   # over SSH, become
        assert result.ok and result.stdout("h1").startswith("uid=0(")
        fleet.exec_in("h1", ["cat", "/srv/app/state.json"])          # as root, no SSH
        fleet.inventory                                                # for ansible-playbook -i

The fleet (``FLEET_HOSTS`` app hosts h1.. and the router r1) is brought up once per pytest
session and taken down when the last session using it ends, unless someone brought it up
by hand (``scripts/fleet_hosts.py up``): that fleet is used and left running. A test that
needs more hosts calls ``ensure_fleet(hosts=N)``; hosts are never taken away mid-session.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

from helpers import ROOT, ansible_env

# scripts/fleet_hosts.py, under another module name: this helper is `fleet_hosts` on sys.path.
_spec = importlib.util.spec_from_file_location("fleet_hosts_script", ROOT / "scripts" / "fleet_hosts.py")
script = importlib.util.module_from_spec(_spec)
sys.modules["fleet_hosts_script"] = script
_spec.loader.exec_module(script)

FLEET_HOSTS = 4
ROUTER = script.ROUTER
_RESULT = re.compile(r"^(ok|changed|fatal|failed): \[([^\]]+)\](?:: (FAILED!|UNREACHABLE!))? => (\{.*\})$")


class AdHoc:
    """An `ansible` ad-hoc run: `rc`, `output` (stdout + stderr), `results` (host -> result)."""

    def __init__(self, proc):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.results = {}
        for line in proc.stdout.splitlines():
            found = _RESULT.match(line)
            if found:
                result = json.loads(found.group(4))
                result["_status"] = found.group(3) or found.group(1)
                self.results[found.group(2)] = result

    @property
    def ok(self):
        return self.rc == 0

    def stdout(self, host):
        return self.results[host]["stdout"]

    def __repr__(self):  # what pytest shows when an assertion on it fails
        return "AdHoc(rc=%d)\n%s" % (self.rc, self.output[-6000:])


class Fleet:
    """The running fleet: names, addresses, inventory path, and ways to act on its hosts."""

    def __init__(self, state, base):
        self.base = base
        self.inventory = base / "inventory.yml"
        self.addresses = {name: host["address"] for name, host in state["hosts"].items()}
        self.hosts = sorted(self.addresses)
        self.app_hosts = sorted(n for n in self.addresses if n != ROUTER)
        self.router = ROUTER if ROUTER in self.addresses else None
        self.controller = script.FLEET_ADDRESS  # where the hosts reach PostgreSQL and Redis
        self.supervisor_config = script.SUPERVISOR_CONF
        self.supervisor_programs = script.SUPERVISOR_PROGRAMS
        self.haproxy_socket = script.HAPROXY_SOCKET
        self.haproxy_admin_tcp = (script.address(ROUTER), script.ROUTER_ADMIN_PORT)
        self.backend = script.BACKEND
        self.router_url = "http://%s:%d" % (script.address(ROUTER), script.ROUTER_PORT)
        self.color_ports = dict(script.COLOR_PORTS)

    def exec_in(self, host, argv, **kw):
        """Run `argv` as root inside `host` (nsenter, no SSH); a CompletedProcess (text)."""
        return script.exec_in(host, argv, base=self.base, **kw)

    def host_path(self, host, path):
        """`path` inside `host` as a controller-side Path (read or write the host's files)."""
        return script.host_path(host, path, base=self.base)

    def netns_of(self, pid):
        """The host whose network namespace process `pid` runs in, or None."""
        state = script.load_state(self.base)
        return next((name for name, host in state["hosts"].items() if script.in_netns(pid, host["netns"])), None)

    def ansible(self, pattern, module, args=None, become=True, env=None, timeout=300):
        """`ansible <pattern> -i <inventory> -m <module> -a <args>` over SSH; an AdHoc.

        `args`: a string (k=v) or a dict (sent as JSON). `become=False` runs as the deploy
        user. `env`: extra environment for ansible (e.g. secrets read on the controller with
        `lookup('env', ...)`, so that they never appear in an argv).
        """
        argv = [str(ROOT / ".venv" / "bin" / "ansible"), pattern, "-i", str(self.inventory),
                "-m", module, "-v"]
        if args:
            argv += ["-a", args if isinstance(args, str) else json.dumps(args)]
        argv += ["-b"] if become else ["-e", json.dumps({"ansible_become": False})]
        with tempfile.TemporaryDirectory(prefix="fleet-adhoc-") as reports:
            extra = {
                # One JSON line per host result (the default ad-hoc output mixes stdout and stderr).
                "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
                "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
                "PRODREADY_REPORT_DIR": reports,  # the deploy report of an ad-hoc run: not kept
            }
            extra.update(env or {})
            proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(extra),
                                  cwd=str(ROOT), timeout=timeout, check=False)
        return AdHoc(proc)


def _sessions(base, change):
    """The pids of live pytest sessions using the fleet, after `change(list)`."""
    path = base / "sessions.json"
    with script.locked(base, ".sessions.lock"):
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            pids = []
        pids = change([pid for pid in pids if script.alive(pid)])
        script.write_private(path, json.dumps(pids) + "\n", mode=0o644)
        return pids


def ensure_fleet(hosts=FLEET_HOSTS, router=True):
    """At least `hosts` app hosts (and the router): hosts already up are kept as they are."""
    base = script.fleet_dir()
    state = script.load_state(base)
    current = [n for n in state["hosts"] if n != ROUTER]
    state = script.up(max(hosts, len(current)), router or ROUTER in state["hosts"], base=base,
                      owner="pytest")
    return Fleet(state, base)


@pytest.fixture(scope="session")
def fleet(sandbox):
    """The session's fleet hosts (a Fleet), with the sandbox's PostgreSQL and Redis reachable
    from them on the bridge address."""
    base = script.fleet_dir()
    _sessions(base, lambda pids: pids + [os.getpid()])
    try:
        yield ensure_fleet()
    finally:
        others = _sessions(base, lambda pids: [pid for pid in pids if pid != os.getpid()])
        if not others and script.load_state(base).get("owner") != "cli":
            script.down(base)
