"""Managed hosts over SSH (tests/integration/fleet_hosts.py): what a host needs to run the
modules, and credentials that reach a module wherever it runs.

- host_prep makes a venv with the modules' libraries on a fleet host. The hosts reach no
  package index, so the controller builds a wheelhouse for the host's interpreter (Debian's
  3.11.2, older than the controller's: redis then needs async-timeout) and copies it over. A
  second run changes nothing. The modules then run with that venv's interpreter.
- The secrets are only in the controller's environment (PGPASSWORD, REDIS_PASSWORD): the roles
  read them there and pass them as no_log module options, so the preflight role reaches
  PostgreSQL and Redis from h1, and a flag rollout writes its flags to Redis and gates on the
  cache from h1. They appear nowhere in the output at -vvv. Without the roles passing them,
  the same modules are refused by both servers.
"""

import functools
import http.server
import json
import os
import re
import sys
import threading
import uuid

import pytest
import redis

from helpers import ROOT, run_playbook

sys.path.insert(0, os.path.dirname(__file__))
from fleet_hosts import fleet  # noqa: E402,F401 # pylint: disable=unused-import

pytestmark = [pytest.mark.slow]

HOST = "h1"
VENV = "/opt/prodready/venv"
# Built once per requirement set and interpreter, reused by later sessions.
WHEELHOUSE = ROOT / ".cache" / "host-prep-wheelhouse"
RECAP = re.compile(r"^%s\s*:\s*ok=(\d+)\s+changed=(\d+)" % HOST, re.M)


def changed(proc):
    """changed= of the host in the play recap."""
    found = RECAP.search(proc.stdout)
    assert found, proc.output[-3000:]
    return int(found.group(2))


@pytest.fixture(scope="module")
def secrets(sandbox):
    """The passwords, as the controller's environment holds them (never on the hosts)."""
    return {"PGPASSWORD": sandbox["secrets"]["app_db_password"],
            "REDIS_PASSWORD": sandbox["secrets"]["redis_password"]}


@pytest.fixture(scope="module")
def connections(sandbox):
    """PostgreSQL and Redis as the hosts reach them (the bridge address), without passwords."""
    pg = sandbox["services"]["postgres"]
    return ({"login_host": "{{ fleet_postgres_host }}", "login_port": "{{ fleet_postgres_port }}",
             "login_user": pg["app_user"], "db": pg["app_db"]},
            {"login_host": "{{ fleet_redis_host }}", "login_port": "{{ fleet_redis_port }}"})


def no_secret_in(proc, secrets_):
    leaked = [name for name, value in secrets_.items() if value in proc.output]
    assert leaked == [], "secrets in the output: %s" % leaked


@pytest.fixture(scope="module")
def prepared(fleet, secrets, connections):  # pylint: disable=redefined-outer-name
    """host_prep on h1 from scratch, then again: the two runs."""
    fleet.exec_in(HOST, ["rm", "-rf", "/opt/prodready"])
    extra = {"host_prep_hosts": HOST, "host_prep_wheelhouse_dir": str(WHEELHOUSE),
             "host_prep_postgres": connections[0], "host_prep_redis": connections[1]}
    first = run_playbook(ROOT / "playbooks" / "host_prep.yml", inventory=fleet.inventory, extra_vars=extra,
                         env=secrets)
    second = run_playbook(ROOT / "playbooks" / "host_prep.yml", inventory=fleet.inventory, extra_vars=extra,
                          env=secrets)
    return first, second


def test_host_prep_installs_the_libraries_from_a_wheelhouse_and_a_second_run_changes_nothing(
        fleet, prepared, secrets):  # pylint: disable=redefined-outer-name
    first, second = prepared
    assert first.returncode == 0, first.output[-6000:]
    assert changed(first) > 0
    # The hosts reach no index: auto chose the controller's wheelhouse.
    assert "installed from the wheelhouse" in first.flat
    assert "postgresql clients: pg_dump 15" in first.flat and "(server 15)" in first.flat
    assert "set in the inventory for this host: ansible_python_interpreter: %s/bin/python" % VENV in first.flat
    # A venv of its own: Debian's python3-psycopg2 and python3-redis are not on its path.
    cfg = fleet.host_path(HOST, VENV + "/pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    assert not fleet.host_path(HOST, "/var/tmp/prodready-wheelhouse").exists()
    assert second.returncode == 0, second.output[-6000:]
    assert changed(second) == 0, second.output[-6000:]
    assert "Build the wheelhouse" not in second.stdout  # met requirements: nothing built or copied
    no_secret_in(first, secrets)
    no_secret_in(second, secrets)


PREFLIGHT_PLAY = """
- name: Preflight with the prepared venv
  hosts: %s
  gather_facts: false
  vars:
    ansible_python_interpreter: %s/bin/python
  roles:
    - role: prodready.deploy.preflight
  tasks:
    - name: Keep what the module said of its interpreter
      ansible.builtin.copy:
        content: "{{ preflight_result.python | to_json }}"
        dest: "{{ python_report }}"
        mode: "0600"
      delegate_to: localhost
      become: false
      vars:
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


def preflight_vars(connections, tmp_path, **more):
    return dict({"preflight_postgres": connections[0], "preflight_redis": connections[1],
                 "preflight_min_cpu_count": 0, "preflight_recommended_cpu_count": 0, "preflight_min_mem_mb": 0,
                 "preflight_recommended_mem_mb": 0, "python_report": str(tmp_path / "python.json")}, **more)


def test_the_modules_run_with_the_venv_and_the_controllers_secrets_reach_them(
        fleet, prepared, secrets, connections, tmp_path):  # pylint: disable=redefined-outer-name
    assert prepared[0].returncode == 0
    play = tmp_path / "preflight.yml"
    play.write_text(PREFLIGHT_PLAY % (HOST, VENV))
    proc = run_playbook(play, inventory=fleet.inventory, extra_vars=preflight_vars(connections, tmp_path),
                        env=secrets, verbosity=3)
    assert proc.returncode == 0, proc.output[-6000:]
    assert re.search(r"postgres app@10\.231\.0\.1:\d+/app OK PostgreSQL 15", proc.flat), proc.flat[-3000:]
    assert re.search(r"redis redis://10\.231\.0\.1:\d+/0 OK PONG", proc.flat)
    python = json.loads((tmp_path / "python.json").read_text())
    assert python["executable"] == VENV + "/bin/python"
    for name in ("psycopg2", "redis", "cryptography"):
        assert python["libraries"][name]["path"].startswith(VENV + "/lib/python3"), python
    # Not Debian's packages (python3-psycopg2 2.9.5, python3-redis 4.3.4): the wheelhouse's.
    assert python["libraries"]["redis"]["version"] != "4.3.4"
    no_secret_in(proc, secrets)


def test_without_the_roles_passing_them_the_servers_refuse_the_modules_on_the_host(
        fleet, prepared, secrets, connections, tmp_path):  # pylint: disable=redefined-outer-name
    """The control: the secrets stay in the controller's environment, the module reads the host's."""
    assert prepared[0].returncode == 0
    play = tmp_path / "preflight.yml"
    play.write_text(PREFLIGHT_PLAY % (HOST, VENV))
    extra = preflight_vars(connections, tmp_path, preflight_postgres_password="", preflight_redis_password="")
    proc = run_playbook(play, inventory=fleet.inventory, extra_vars=extra, env=secrets)
    assert proc.returncode != 0
    assert "preflight: 2 of 2 checks failed" in proc.flat
    assert "no password supplied" in proc.flat
    assert re.search(r"requires a password|authentication required|NOAUTH", proc.flat, re.I), proc.flat[-3000:]


def test_a_flag_rollout_on_the_host_writes_to_redis_and_gates_on_it_with_the_controllers_password(
        fleet, sandbox, secrets, tmp_path):  # pylint: disable=redefined-outer-name
    svc = sandbox["services"]["redis"]
    client = redis.Redis(host=svc["host"], port=svc["port"], password=secrets["REDIS_PASSWORD"], db=0,
                         decode_responses=True)
    prefix = "hostprep-%s:" % uuid.uuid4().hex[:10]
    stages = [{"name": "cache", "flags": {"ENABLE_PO_CACHING": True}, "ttl": 600,
               "gates": {"redis_cache_check": {"max_ping_ms": 1000}}}]
    extra = {"flag_rollout_target_hosts": HOST, "flag_rollout_stages": stages, "flag_rollout_backend": "redis",
             "flag_rollout_restart": False, "flag_rollout_redis_host": "{{ fleet_redis_host }}",
             "flag_rollout_redis_port": "{{ fleet_redis_port }}", "flag_rollout_redis_key_prefix": prefix,
             "app_root": "/srv/hostprep-flags"}
    try:
        proc = run_playbook(ROOT / "playbooks" / "flag_rollout.yml", inventory=fleet.inventory, extra_vars=extra,
                            env={"REDIS_PASSWORD": secrets["REDIS_PASSWORD"]}, verbosity=3)
        assert proc.returncode == 0, proc.output[-6000:]
        assert client.get(prefix + "ENABLE_PO_CACHING") == "true"
        no_secret_in(proc, secrets)
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
        fleet.exec_in(HOST, ["rm", "-rf", "/srv/hostprep-flags"])


@pytest.mark.parametrize("option, value, message", [
    ("host_prep_source", "ftp", "value of host_prep_source must be one of: auto, index, wheelhouse, got: ftp"),
    ("host_prep_venv", "opt/venv", 'host_prep: host_prep_venv: must be an absolute path below /, got "opt/venv"'),
    ("host_prep_python", "/usr/bin/python9", "host_prep_python: /usr/bin/python9 does not run on h1"),
])
def test_a_bad_option_is_refused_naming_it(fleet, option, value, message):  # pylint: disable=redefined-outer-name
    proc = run_playbook(ROOT / "playbooks" / "host_prep.yml", inventory=fleet.inventory,
                        extra_vars={"host_prep_hosts": HOST, option: value})
    assert proc.returncode != 0
    assert message in proc.flat, proc.flat[-3000:]
    assert "Traceback" not in proc.output


class _Index(http.server.SimpleHTTPRequestHandler):
    """A PEP 503 simple index of the wheelhouse (what a private index serves), recording who asked."""

    clients = set()

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        self.clients.add(self.client_address[0])


@pytest.fixture
def private_index(fleet, prepared, tmp_path):  # pylint: disable=redefined-outer-name
    """The wheels of the wheelhouse host_prep built, as an index on the bridge address (the one
    place the hosts reach): /simple/<project>/<wheel>."""
    assert prepared[0].returncode == 0
    built = max((p for p in WHEELHOUSE.iterdir() if (p / ".complete.json").exists()), key=lambda p: p.stat().st_mtime)
    for wheel in built.glob("*.whl"):
        project = tmp_path / "simple" / re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        project.mkdir(parents=True, exist_ok=True)
        (project / wheel.name).write_bytes(wheel.read_bytes())
        (project / "index.html").write_text("".join('<a href="%s">%s</a>\n' % (w.name, w.name)
                                                    for w in sorted(project.glob("*.whl"))))
    handler = functools.partial(_Index, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer((fleet.controller, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://%s:%d/simple/" % (fleet.controller, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_a_host_that_reaches_an_index_installs_from_it(fleet, private_index):  # pylint: disable=redefined-outer-name
    host = "h2"
    fleet.exec_in(host, ["rm", "-rf", "/opt/prodready"])
    _Index.clients.clear()
    try:
        proc = run_playbook(ROOT / "playbooks" / "host_prep.yml", inventory=fleet.inventory, extra_vars={
            "host_prep_hosts": host, "host_prep_index_url": private_index, "host_prep_postgres_clients": [],
            "host_prep_pip_args": ["--trusted-host", fleet.controller]})
        assert proc.returncode == 0, proc.output[-6000:]
        assert "installed from the index" in proc.flat
        assert re.search(r"Build the wheelhouse[^\n]*\n(skipping)", proc.stdout)  # the controller built nothing
        assert _Index.clients == {fleet.addresses[host]}  # the host's own pip asked it
    finally:
        fleet.exec_in(host, ["rm", "-rf", "/opt/prodready"])
