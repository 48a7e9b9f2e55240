"""Inventory and checks shared by the blue_green role tests (test_blue_green_*.py).

Each test module deploys the sample app into its own app roots, database and haproxy slots
(s3..s6) or a private nginx, with the role's variables only, through playbooks/deploy.yml.
"""

import contextlib
import json
import re
import threading
import time
from pathlib import Path

import requests
import yaml

import demo_app
import sandbox as sandbox_script  # scripts/sandbox.py (tests/conftest.py puts scripts/ on sys.path)
from apptools import create_app_db, drop_db, retire_test_slot_app, superuser_conn
from helpers import ROOT, run_playbook

REDIS_DB = 9  # shared with test_blue_green.py; every app here has its own CACHE_PREFIX


def db_url(sandbox, name):
    pg = sandbox["services"]["postgres"]
    return "postgresql+psycopg2://%s:%s@%s:%s/%s" % (pg["app_user"], sandbox["secrets"]["app_db_password"],
                                                     pg["host"], pg["port"], name)


def host_vars(sandbox, app, app_root, dist, db, ports, prefix, app_python, **overrides):
    """Role variables of one simulated host running `app` on `ports` {blue, green}.

    Releases run on the shared test venv of the sample app (`app_python`'s venv) instead of
    building one venv per release and host: test_blue_green.py covers the build.
    """
    pg = sandbox["services"]["postgres"]
    sup = sandbox["services"]["supervisor"]
    url = db_url(sandbox, db)
    hv = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
        "app_name": app,
        "app_root": str(app_root),
        "blue_green_artifact_src": str(dist) + "/sampleapp-{{ blue_green_version }}.tar.gz",
        "blue_green_pip_extra_args": f"--no-index --find-links {ROOT}/.cache/wheels",
        "app_start_command": "{{ app_venv }}/bin/python -m sampleapp --port {{ app_port }}",
        "app_colors": {"blue": {"port": ports["blue"]}, "green": {"port": ports["green"]}},
        "app_process_manager": "supervisor",
        "app_supervisor_conf_dir": sup["programs_dir"],
        "app_supervisorctl": str(ROOT / ".venv" / "bin" / "supervisorctl"),
        "app_supervisor_config": sup["config"],
        "app_database": {"db": db, "login_host": pg["host"], "login_port": pg["port"],
                         "login_user": pg["app_user"], "login_password": sandbox["secrets"]["app_db_password"]},
        "app_database_url": url,
        "blue_green_shared_env": {"DATABASE_URL": url, "REDIS_URL": demo_app.redis_url(sandbox, REDIS_DB),
                                  "CACHE_PREFIX": prefix, "DEBUG": "false"},
        "blue_green_gate_idle": {"requests": 10, "concurrency": 2, "max_error_rate": 0.0, "max_latency_ms": {"p95": 10000}},
        "blue_green_gate_live": {"requests": 20, "concurrency": 2, "max_error_rate": 0.01, "max_latency_ms": {"p95": 10000}},
        "app_start_timeout": 120,
        "app_release_venv": str(Path(app_python).parent.parent),
    }
    hv.update(overrides)
    return hv


def haproxy_slot_vars(sandbox, slot):
    haproxy = sandbox["services"]["haproxy"]
    info = haproxy["slots"][slot]
    return {"ports": info["servers"],
            "router": {"app_router": "haproxy",
                       "app_haproxy_admin_socket": haproxy["admin_socket"],
                       "app_haproxy_backend": info["backend"],
                       "app_router_url": "http://127.0.0.1:%d" % info["port"]}}


def write_inventory(path, hosts):
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def deploy(inventory, version, check=False, timeout=1200, **extra):
    proc = run_playbook(ROOT / "playbooks" / "deploy.yml", inventory=inventory, check=check, timeout=timeout,
                        extra_vars=dict({"app_version": version, "deploy_hosts": "all"}, **extra))
    return proc


def backup_servers(sandbox, backend):
    """Names of the runtime backup servers (router_switch keep_previous_as_backup) in `backend`."""
    answer = sandbox_script.haproxy_socket(sandbox["services"]["haproxy"]["admin_socket"],
                                           "show servers state %s" % backend)
    return [line.split()[3] for line in answer.splitlines()[2:]
            if len(line.split()) > 3 and line.split()[3].startswith("prodready-backup-")]


def recap(output):
    """{host: {ok, changed, failed, ...}} from the PLAY RECAP."""
    hosts = {}
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.M):
        hosts[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts


def served_version(url):
    return requests.get(url + "/health", timeout=5).json()["version"]


def db_revision(sandbox, db):
    conn = superuser_conn(sandbox, db)
    with conn.cursor() as cur:
        cur.execute("SELECT version_num FROM alembic_version")
        rev = cur.fetchone()[0]
    conn.close()
    return rev


def read_state(app_root):
    return json.loads((app_root / "state.json").read_text())


def read_audit(app_root):
    return [json.loads(line) for line in (app_root / "audit.log").read_text().splitlines()]


class LoadLoop:
    """Keep-alive GETs in a thread, counting every failed request (status or exception)."""

    def __init__(self, url, max_requests=50000):
        self.url = url
        self.max_requests = max_requests
        self.ok = 0
        self.failed = []
        self.versions = set()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        session = requests.Session()
        while not self.stop_event.is_set() and self.ok + len(self.failed) < self.max_requests:
            try:
                resp = session.get(self.url, timeout=5)
                if resp.status_code == 200:
                    self.ok += 1
                    self.versions.add(resp.json().get("version"))
                else:
                    self.failed.append(resp.status_code)
            except requests.RequestException as exc:
                self.failed.append(type(exc).__name__)
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=10)


# A `blue_green_hooks` task file that SIGKILLs this inventory's ansible-playbook (and nothing
# else running on the machine): the fault tests' controller crash.
KILL_HOOK = ("- name: The controller is killed (SIGKILL)\n"
             "  ansible.builtin.command:\n"
             "    argv: [pkill, -KILL, -f, 'ansible-playbook .*deploy.yml -i %s']\n")


@contextlib.contextmanager
def slot_app(sandbox, base, app_python, app, slot, releases, first=("1.0.0",), kill_hook=False, **overrides):
    """One app on haproxy `slot` for a test module: its own database, the releases built
    (version -> variant), one host h1 in an inventory, the `first` versions deployed; retired
    (colors stopped, slot servers in maintenance) and its database dropped afterwards.

    `kill_hook`: deploy.yml -e kill_at=<hook name> (after_backup, before_gate_live...) runs
    KILL_HOOK there. `overrides`: more host variables. Yields a dict: base, root, db,
    inventory, sandbox, url (the router), backend, hv (the host variables).
    """
    db = create_app_db(sandbox, "t_%s_" % app)
    try:
        demo_app.ensure_wheels()
        dist = base / "dist"
        for version, variant in releases.items():
            demo_app.build(version, variant, dist)
        slot_vars = haproxy_slot_vars(sandbox, slot)
        inventory = base / "hosts.yml"
        root = base / "srv"
        hv = host_vars(sandbox, app, root, dist, db, slot_vars["ports"], app + "_", app_python,
                       **dict(slot_vars["router"], **overrides))
        if kill_hook:
            hook = base / "kill_the_controller.yml"
            hook.write_text(KILL_HOOK % inventory)
            hv["blue_green_hooks"] = "{{ {kill_at: '%s'} if kill_at | default('') else {} }}" % hook
        write_inventory(inventory, {"h1": hv})
        backend = sandbox["services"]["haproxy"]["slots"][slot]["backend"]
        try:
            for version in first:
                proc = deploy(inventory, version)
                assert proc.returncode == 0, proc.output[-3000:]
            yield {"base": base, "root": root, "db": db, "inventory": inventory, "sandbox": sandbox,
                   "url": hv["app_router_url"], "backend": backend, "hv": hv}
        finally:
            retire_test_slot_app(sandbox, app, ROOT, backend)
    finally:
        drop_db(sandbox, db)
