"""Fleet hosts over SSH: app hosts and a router on this machine, each a network namespace
with its own sshd, supervisord and files, reached by Ansible as `deploy` with become.

The fleet is the session's (tests/integration/fleet_hosts.py): brought up once, taken down
at the end. These tests leave nothing behind on it.
"""

import json
import os
import pwd
import socket
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import ROOT

import sandbox as sandbox_script  # scripts/sandbox.py

# The session fixture `fleet`, from tests/integration/fleet_hosts.py (not scripts/fleet_hosts.py,
# also on sys.path); pytest finds it by name in this module.
sys.path.insert(0, os.path.dirname(__file__))
from fleet_hosts import fleet  # noqa: E402,F401 # pylint: disable=unused-import

# Whether a host sees anything at each path: a file, or a directory with entries. A hidden
# directory is an empty tmpfs mounted over it, so it may exist yet show nothing.
EXISTS = ("import json, os, sys; print(json.dumps({p: os.path.exists(p) and (not os.path.isdir(p) or "
          "bool(os.listdir(p))) for p in sys.argv[1:]}))")

# Connects to PostgreSQL and Redis with the passwords read from stdin (never from argv).
DB_PROBE = """
import json, sys
import psycopg2, redis
host, pg_port, user, db, redis_port = sys.argv[1:6]
pg_password, redis_password = sys.stdin.read().splitlines()[:2]
conn = psycopg2.connect(host=host, port=int(pg_port), user=user, dbname=db,
                        password=pg_password, connect_timeout=5)
with conn.cursor() as cur:
    cur.execute("SELECT host(inet_client_addr()), current_user")
    client, who = cur.fetchone()
conn.close()
r = redis.Redis(host=host, port=int(redis_port), password=redis_password, socket_timeout=5)
print(json.dumps({"pg_client": client, "pg_user": who, "redis_ping": r.ping(),
                  "redis_client": r.client_info()["addr"].rsplit(":", 1)[0]}))
"""

ADMIN_SOCKET = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\\n")
print(b"".join(iter(lambda: s.recv(65536), b"")).decode())
"""


def server_names(state_dump):
    """Server names of a `show servers state` answer."""
    return {line.split()[3] for line in state_dump.splitlines()[1:] if line.strip() and not line.startswith("#")}


def test_become_is_root_on_every_host_and_without_it_the_deploy_user_over_ssh(fleet):
    root = fleet.ansible("all", "ansible.builtin.command", "id")
    assert root.ok, root
    assert sorted(root.results) == fleet.hosts
    assert all(root.stdout(h).startswith("uid=0(root)") for h in fleet.hosts), root

    deploy = pwd.getpwnam("deploy")
    plain = fleet.ansible("all", "ansible.builtin.command",
                          {"argv": ["sh", "-c", "id; echo $SSH_CONNECTION; hostname"]}, become=False)
    assert plain.ok, plain
    for host in fleet.hosts:
        ident, connection, hostname = plain.stdout(host).splitlines()
        assert ident.startswith("uid=%d(deploy)" % deploy.pw_uid)
        # Over SSH from the controller's bridge address to the host's own address.
        client, _port, server, server_port = connection.split()
        assert (client, server, server_port) == (fleet.controller, fleet.addresses[host], "22")
        assert hostname == host


def test_each_host_has_its_own_srv_and_none_sees_the_controller_checkout(fleet):
    marker = "/srv/fleet-probe-%s" % uuid.uuid4().hex[:8]
    wrote = fleet.ansible("h1", "ansible.builtin.copy", {"dest": marker, "content": "h1\n", "mode": "0644"})
    try:
        assert wrote.ok and wrote.results["h1"]["changed"], wrote
        paths = [marker, str(ROOT), str(sandbox_script.sandbox_dir()), "/root/.pyenv"]
        seen = fleet.ansible("all", "ansible.builtin.command", {"argv": ["/usr/bin/python3", "-c", EXISTS, *paths]})
        assert seen.ok, seen
        exists = {host: json.loads(seen.stdout(host)) for host in fleet.hosts}
        assert exists["h1"][marker] is True
        assert not any(exists[host][marker] for host in fleet.hosts if host != "h1")
        assert not Path(marker).exists()  # nor on the controller: a tmpfs of h1's own
        for host in fleet.hosts:
            assert [p for p in paths[1:] if exists[host][p]] == [], host
    finally:
        fleet.exec_in("h1", ["rm", "-f", marker])


def test_hosts_reach_the_sandbox_postgres_and_redis_on_the_bridge_address(fleet, sandbox):
    pg = sandbox["services"]["postgres"]
    secrets = {"FLEET_TEST_PG_PASSWORD": sandbox["secrets"]["app_db_password"],
               "FLEET_TEST_REDIS_PASSWORD": sandbox["secrets"]["redis_password"]}
    args = {
        "argv": ["/usr/bin/python3", "-c", DB_PROBE, fleet.controller, str(pg["port"]), pg["app_user"],
                 pg["app_db"], str(sandbox["services"]["redis"]["port"])],
        # Read on the controller from ansible's environment, sent with the module's arguments
        # over SSH, given to the probe on stdin: in no argv anywhere.
        "stdin": "{{ lookup('env', 'FLEET_TEST_PG_PASSWORD') }}\n{{ lookup('env', 'FLEET_TEST_REDIS_PASSWORD') }}",
    }
    probe = fleet.ansible("app", "ansible.builtin.command", args, env=secrets)
    assert probe.ok, probe
    for host in fleet.app_hosts:
        answer = json.loads(probe.stdout(host))
        assert answer == {"pg_client": fleet.addresses[host], "pg_user": pg["app_user"], "redis_ping": True,
                          "redis_client": fleet.addresses[host]}
    assert not any(secret in probe.output for secret in secrets.values())


def test_router_haproxy_lists_both_colors_of_every_app_host_on_its_admin_socket(fleet):
    expected = {"%s-%s" % (host, color) for host in fleet.app_hosts for color in fleet.color_ports}
    show = fleet.ansible("router", "ansible.builtin.command",
                         {"argv": ["/usr/bin/python3", "-c", ADMIN_SOCKET, fleet.haproxy_socket,
                                   "show servers state %s" % fleet.backend]})
    assert show.ok, show
    assert server_names(show.stdout(fleet.router)) == expected
    # The same runtime API on the router's admin TCP listener, from the controller.
    with socket.create_connection(fleet.haproxy_admin_tcp, timeout=5) as sock:
        sock.sendall(b"show servers state %s\n" % fleet.backend.encode())
        answer = b"".join(iter(lambda: sock.recv(65536), b"")).decode()
    assert server_names(answer) == expected


def test_each_host_runs_its_own_supervisord_that_starts_programs_from_its_include_dir(fleet):
    program = "fleet-probe-%s" % uuid.uuid4().hex[:6]
    conf = "%s/%s.conf" % (fleet.supervisor_programs, program)
    # As root through become: write the program file into the include directory, add just
    # this program (a bare `update` would act on every program file) and ask its status.
    status = fleet.ansible("app", "ansible.builtin.command", {
        "argv": ["sh", "-c", 'cat > "$1" && supervisorctl -c "$2" update "$3" >/dev/null && '
                 'supervisorctl -c "$2" status "$3"', "-", conf, fleet.supervisor_config, program],
        "stdin": "[program:%s]\ncommand = /bin/sleep 600\nstartsecs = 0" % program})
    try:
        assert status.ok, status
        for host in fleet.app_hosts:
            name, state, pid_word, pid = status.stdout(host).split()[:4]
            assert (name, state, pid_word) == (program, "RUNNING", "pid"), status
            assert fleet.netns_of(int(pid.rstrip(","))) == host  # started by that host's supervisord
    finally:  # the hosts side by side: removing a program waits for supervisord to stop it
        with ThreadPoolExecutor() as pool:
            list(pool.map(lambda host: fleet.exec_in(host, [
                "sh", "-c", 'rm -f "$1" && supervisorctl -c "$2" update "$3"', "-",
                conf, fleet.supervisor_config, program]), fleet.app_hosts))


def test_a_namespace_left_by_a_killed_run_is_reclaimed_and_one_still_in_use_is_refused(tmp_path):
    # What a fresh checkout finds after another checkout's run was killed: the host's
    # namespace outlives its processes. Names beyond the session's fleet (h15, h16).
    script = sys.modules["fleet_hosts_script"]
    leftover, busy = "h16", "h15"
    subprocess.run(["ip", "netns", "add", script.netns(leftover)], check=True)
    subprocess.run(["ip", "netns", "add", script.netns(busy)], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", script.netns(busy), "sleep", "60"])
    try:
        state = {"hosts": {}}
        host = script.claim(state, tmp_path, leftover)
        assert script.netns_inode(script.netns(leftover)) is None  # removed, then recorded
        assert host["netns"] == script.netns(leftover) and json.loads(
            (tmp_path / "fleet.json").read_text())["hosts"][leftover]["netns"] == host["netns"]
        script.wait_until(lambda: script.netns_pids(script.netns(busy)), "sleeper", timeout=5)
        with pytest.raises(script.FleetError, match="processes running in it .*another fleet is up"):
            script.claim(state, tmp_path, busy)
        assert script.netns_inode(script.netns(busy)) is not None  # left alone
        assert busy not in state["hosts"]
    finally:
        sleeper.kill()
        sleeper.wait()
        for name in (leftover, busy):
            subprocess.run(["ip", "netns", "del", script.netns(name)], check=False, capture_output=True)
