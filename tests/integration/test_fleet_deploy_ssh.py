"""A real fleet over SSH: the router on its own host in front of two app hosts, each a
network namespace with its own sshd, supervisord and files, reached by Ansible as `deploy`
with become (tests/integration/fleet_hosts.py). The router's haproxy holds every host's two
colors in ONE backend (servers h1-blue, h1-green, h2-blue, ...): router work is delegated to
the router host, and a switch touches only the servers of this deploy.

The hosts see nothing of the controller: releases are built on each host by its own Python
(Debian's 3.11.2, not the controller's) from the artifact and a wheel cache copied there.
Specification of DESIGN's "fleet model": first deploy, an upgrade moved by one batch of
runtime commands (blue_green_switch_mode fleet) under load with no failed request and one
backup for the whole deploy, a failing gate that moves the whole fleet back at once, a
rollback that starts the previous release again after one downgrade of the database, and,
after the upgrade is deployed again, a restore rollback: the deploy's own backup restored
once, on the backup host, while every host's servers are in maintenance.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import yaml

import demo_app
from apptools import create_app_db, drop_db, superuser_conn
from bluegreen_tools import LoadLoop, db_revision
from helpers import ROOT, run_playbook

from ansible_collections.prodready.deploy.plugins.module_utils import _haproxy

sys.path.insert(0, os.path.dirname(__file__))
from fleet_hosts import fleet  # noqa: E402,F401 # pylint: disable=unused-import

pytestmark = [pytest.mark.slow]

APP = "fleetapp"
APP_ROOT = "/srv/" + APP
HOSTS = ["h1", "h2"]
# Wheels the sample app needs on an interpreter older than the controller's: redis requires
# async-timeout below Python 3.11.3 (the hosts run Debian's 3.11.2).
OLDER_PYTHON_WHEELS = ["async-timeout>=4.0.3"]


def host_wheels():
    """A tarball of the sample app's wheel cache plus what older interpreters need (made
    once): one transfer per host instead of one per wheel."""
    wheels = demo_app.ensure_wheels()
    target = ROOT / ".cache" / "wheels-hosts"
    tarball = ROOT / ".cache" / "wheels-hosts.tar.gz"
    if not tarball.exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(wheels, target)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--no-deps",
                        "-d", str(target)] + OLDER_PYTHON_WHEELS, check=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-czf", str(partial), "-C", str(target), "."], check=True)
        partial.rename(tarball)
    return tarball


def router_servers(fleet_):
    """{server: (admin state, operational state)} of the fleet backend, read over the router
    host's admin TCP address."""
    host, port = yaml.safe_load(fleet_.inventory.read_text())["all"]["vars"]["fleet_haproxy_admin_tcp"].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"show servers state be_app\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    rows = {}
    for line in data.decode().splitlines()[2:]:
        cols = line.split()
        if len(cols) > 6:
            rows[cols[3]] = (int(cols[6]), int(cols[5]))  # srv_admin_state, srv_op_state
    return rows


def taking_traffic(fleet_):
    """The servers of the hosts under test that are ready and running."""
    return sorted(name for name, (admin, op) in router_servers(fleet_).items()
                  if _haproxy.admin_state_name(admin) == "ready" and op == 2 and name.split("-")[0] in HOSTS)


def state_of(fleet_, host):
    return json.loads(fleet_.host_path(host, APP_ROOT + "/state.json").read_text())


@pytest.fixture(scope="module")
def site(fleet, sandbox, tmp_path_factory):  # pylint: disable=redefined-outer-name
    base = tmp_path_factory.mktemp("fleetssh")
    forget_app(fleet)
    db = create_app_db(sandbox, "t_fleetssh_")
    dist = base / "dist"
    for version, variant in {"1.0.0": "base", "1.1.0": "good", "1.2.1": "errors"}.items():
        demo_app.build(version, variant, dist)
    # Tools the hosts need and cannot see on the controller: the wheel cache and uv.
    uv = shutil.which("uv", path=str(ROOT / ".venv" / "bin"))
    made = fleet.ansible(",".join(HOSTS), "ansible.builtin.file", "path=/srv/wheels state=directory mode=0755")
    assert made.ok, made
    copied = fleet.ansible(",".join(HOSTS), "ansible.builtin.unarchive", f"src={host_wheels()} dest=/srv/wheels")
    assert copied.ok, copied
    copied = fleet.ansible(",".join(HOSTS), "ansible.builtin.copy", f"src={uv} dest=/srv/tools/ mode=0755")
    assert copied.ok, copied

    pg = sandbox["services"]["postgres"]
    secret = sandbox["secrets"]
    url = "postgresql+psycopg2://%s:%s@%s:%s/%s" % (pg["app_user"], secret["app_db_password"],
                                                    fleet.controller, pg["port"], db)
    redis = sandbox["services"]["redis"]
    group_vars = {
        "app_name": APP,
        "app_root": APP_ROOT,
        "blue_green_artifact_src": str(dist) + "/sampleapp-{{ blue_green_version }}.tar.gz",
        "blue_green_pip_extra_args": "--no-index --find-links /srv/wheels",
        "blue_green_uv_path": "/srv/tools/uv",
        "app_start_command": "{{ app_venv }}/bin/python -m sampleapp --host {{ app_bind_host }} --port {{ app_port }}",
        "app_colors": {"blue": {"port": "{{ fleet_color_ports.blue }}"}, "green": {"port": "{{ fleet_color_ports.green }}"}},
        "app_bind_host": "{{ ansible_host }}",
        "app_process_manager": "supervisor",
        "app_supervisor_conf_dir": "{{ fleet_supervisor_conf_dir }}",
        "app_supervisor_config": "{{ fleet_supervisor_config }}",
        "app_router": "haproxy",
        "app_router_host": "{{ groups['router'][0] }}",
        "app_haproxy_admin_socket": "{{ fleet_haproxy_admin_socket }}",
        "app_haproxy_backend": "{{ fleet_haproxy_backend }}",
        "app_haproxy_server_prefix": "{{ inventory_hostname }}-",
        "app_router_url": "{{ fleet_router_url }}",
        "app_database": {"db": db, "login_host": "{{ fleet_postgres_host }}", "login_port": "{{ fleet_postgres_port }}",
                         "login_user": pg["app_user"], "login_password": secret["app_db_password"]},
        "app_database_url": url,
        "app_start_timeout": 120,
        "blue_green_shared_env": {
            "DATABASE_URL": url,
            "REDIS_URL": "redis://:%s@%s:%s/11" % (secret["redis_password"], fleet.controller, redis["port"]),
            "CACHE_PREFIX": "fleetssh_", "DEBUG": "false"},
        "blue_green_row_count_tables": ["purchase_orders"],
        "blue_green_switch_mode": "fleet",
        "blue_green_db_rollback": "downgrade",
        "blue_green_gate_idle": {"requests": 10, "concurrency": 2, "max_error_rate": 0.0,
                                 "max_latency_ms": {"p95": 10000}},
        # Enough requests that each host's `errors` release passes its first 150 and fails.
        "blue_green_gate_live": {"requests": 400, "concurrency": 4, "max_error_rate": 0.01,
                                 "max_latency_ms": {"p95": 10000}},
    }
    inventory = base / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    shutil.copy(fleet.inventory, inventory / "hosts.yml")
    (inventory / "group_vars" / "app.yml").write_text(yaml.safe_dump(group_vars))
    yield {"fleet": fleet, "sandbox": sandbox, "inventory": inventory, "db": db,
           "router": yaml.safe_load(fleet.inventory.read_text())["all"]["vars"]["fleet_router_url"]}
    forget_app(fleet)
    for name in databases_of(sandbox, db):  # a restore keeps the replaced one as <db>_replaced_<stamp>
        drop_db(sandbox, name)


def databases_of(sandbox, db):
    """`db` and the databases a restore left beside it (`<db>_replaced_<stamp>`...)."""
    conn = superuser_conn(sandbox)
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (db + "%",))
        names = [row[0] for row in cur.fetchall()]
    conn.close()
    return names


def forget_app(fleet_):
    """Stop the app's colors and remove its files on every host (a fleet left up by hand or
    by an interrupted run may still hold them)."""
    cleaned = fleet_.ansible(",".join(HOSTS), "ansible.builtin.shell",
                             f"supervisorctl -c {fleet_.supervisor_config} stop {APP}-blue {APP}-green; "
                             f"rm -f /etc/supervisor/conf.d/{APP}-*.conf; "
                             f"supervisorctl -c {fleet_.supervisor_config} update; rm -rf {APP_ROOT}")
    assert cleaned.ok, cleaned


def play(site_, playbook, **extra):
    return run_playbook(ROOT / "playbooks" / playbook, inventory=site_["inventory"], timeout=1200,
                        extra_vars=dict({"deploy_hosts": ",".join(HOSTS), "deploy_preflight": False}, **extra))


def audit_of(fleet_, host):
    return [json.loads(line) for line in fleet_.host_path(host, APP_ROOT + "/audit.log").read_text().splitlines()]


def purchase_orders(site_, write=0):
    """Rows of the sample app's purchase_orders, after writing `write` more."""
    conn = superuser_conn(site_["sandbox"], site_["db"])
    with conn.cursor() as cur:
        if write:
            cur.execute("INSERT INTO purchase_orders (buyer_company_id, seller_company_id, product_id) "
                        "SELECT 1, 2, 1 FROM generate_series(1, %s)", (write,))
        cur.execute("SELECT count(*) FROM purchase_orders")
        rows = cur.fetchone()[0]
    conn.close()
    return rows


def served(site_, requests_count=20):
    """The versions the router serves over `requests_count` requests."""
    import requests  # pylint: disable=import-outside-toplevel
    return {requests.get(site_["router"] + "/health", timeout=5).json()["version"] for _attempt in range(requests_count)}


def test_first_deploy_over_ssh_with_become_serves_every_host_through_the_router_host(site):
    proc = play(site, "deploy.yml", app_version="1.0.0")
    assert proc.returncode == 0, proc.output[-4000:]
    assert served(site) == {"1.0.0"}
    assert taking_traffic(site["fleet"]) == ["h1-blue", "h2-blue"]
    for host in HOSTS:
        st = state_of(site["fleet"], host)
        assert st["live_version"] == "1.0.0" and st["host"] == host
    # Built on the host by the host's own Python, owned by root (become), not by deploy.
    marker = json.loads(site["fleet"].host_path("h1", APP_ROOT + "/releases/1.0.0/.release.json").read_text())
    assert marker["installer"] == "uv" and marker.get("python_version", "").startswith("3.11")
    assert site["fleet"].host_path("h1", APP_ROOT + "/state.json").stat().st_uid == 0


def test_a_fleet_switch_moves_every_host_at_once_with_one_backup_and_no_failed_request(site):
    with LoadLoop(site["router"] + "/health") as load:
        time.sleep(0.5)
        proc = play(site, "deploy.yml", app_version="1.1.0")
        time.sleep(0.5)
    assert proc.returncode == 0, proc.output[-4000:]
    assert load.failed == [], f"{len(load.failed)} failed of {load.ok + len(load.failed)}: {load.failed[:10]}"
    assert load.versions == {"1.0.0", "1.1.0"}
    assert served(site) == {"1.1.0"}
    assert taking_traffic(site["fleet"]) == ["h1-green", "h2-green"]
    assert db_revision(site["sandbox"], site["db"]) == "0003"
    # One backup for the whole deploy, kept on the backup host (the first host), named by
    # every host's state.
    states = [state_of(site["fleet"], host) for host in HOSTS]
    assert {st.get("backup_host") for st in states} == {"h1"}, (states, proc.output[-6000:])
    assert len({st["backup_path"] for st in states}) == 1
    backups = [p.name for p in site["fleet"].host_path("h1", APP_ROOT + "/backups").glob("*pre-1.1.0*.dump")]
    assert len(backups) == 1
    assert not list(site["fleet"].host_path("h2", APP_ROOT + "/backups").glob("*pre-1.1.0*"))
    # The switch was one runtime-API call from the router host for both hosts.
    assert "Move the whole fleet's traffic at once" in proc.output


def test_a_failing_gate_through_the_router_moves_the_whole_fleet_back_at_once(site):
    proc = play(site, "deploy.yml", app_version="1.2.1")
    assert proc.returncode != 0
    assert "Switch the whole fleet back at once" in proc.output
    assert "switched back to green (1.1.0)" in proc.flat
    assert served(site) == {"1.1.0"}
    assert taking_traffic(site["fleet"]) == ["h1-green", "h2-green"]
    assert db_revision(site["sandbox"], site["db"]) == "0003"
    for host in HOSTS:
        st = state_of(site["fleet"], host)
        assert st["live_version"] == "1.1.0" and st["last_failure"]["version"] == "1.2.1"


def test_a_rollback_over_ssh_starts_the_previous_release_on_every_host_after_one_downgrade(site):
    # blue ran the failed 1.2.1 and was stopped: 1.0.0 starts from releases/ on every host,
    # after the database went back to the revision every host's state records (one downgrade).
    proc = play(site, "rollback.yml", rollback_db="downgrade")
    assert proc.returncode == 0, proc.output[-4000:]
    assert "start 1.0.0 from releases/ on blue" in proc.flat
    downgrade = proc.output.split("TASK [prodready.deploy.rollback : Downgrade the database")[1].split("TASK [")[0]
    assert [line for line in downgrade.splitlines() if line.startswith(("ok:", "changed:", "fatal:"))] == [
        "changed: [h1] => (item=alembic.ini -> 0002)"], downgrade
    assert served(site) == {"1.0.0"}
    assert taking_traffic(site["fleet"]) == ["h1-blue", "h2-blue"]
    assert db_revision(site["sandbox"], site["db"]) == "0002"
    for host in HOSTS:
        assert state_of(site["fleet"], host)["live_version"] == "1.0.0"


def test_a_restore_rollback_over_ssh_restores_the_deploys_backup_once_on_the_backup_host(site):
    fleet_ = site["fleet"]
    kept = purchase_orders(site, write=3)  # written before the deploy: the restore keeps them
    proc = play(site, "deploy.yml", app_version="1.1.0")
    assert proc.returncode == 0, proc.output[-4000:]
    assert served(site) == {"1.1.0"} and db_revision(site["sandbox"], site["db"]) == "0003"
    backup = state_of(fleet_, "h1")["backup_path"]
    assert {state_of(fleet_, host)["backup_path"] for host in HOSTS} == {backup}
    assert purchase_orders(site, write=5) == kept + 5  # written after the backup: discarded

    proc = play(site, "rollback.yml", rollback_db="restore")
    assert proc.returncode == 0, proc.output[-4000:]
    assert served(site) == {"1.0.0"}
    assert taking_traffic(fleet_) == ["h1-blue", "h2-blue"]
    assert db_revision(site["sandbox"], site["db"]) == "0002"
    assert purchase_orders(site) == kept
    # Restored once for the fleet, on the backup host from its own file (h2 has no copy):
    # one result, h1's, not delegated elsewhere (that would read "[h1 -> h2]").
    restore_task = proc.output.split("TASK [prodready.deploy.rollback : Restore the backup (rollback_backup")[1].split("TASK [")[0]
    assert [line for line in restore_task.splitlines() if line.startswith(("ok:", "changed:", "fatal:"))] == [
        "changed: [h1]"], restore_task
    assert fleet_.host_path("h1", backup).is_file() and not fleet_.host_path("h2", backup).exists()
    assert 'discarded: {"purchase_orders": 5}' in proc.flat
    for host in HOSTS:
        st = state_of(fleet_, host)
        assert st["live_version"] == "1.0.0" and st["db_revisions"] == ["0002"], st
        last = st["last_rollback"]
        assert last["db"] == "restore" and last["from"] == "1.1.0" and last["unavailable_s"] > 0, last
        assert last["discarded_rows"] == {"purchase_orders": 5}
        assert last["replaced_db"].startswith(site["db"] + "_replaced_")
        events = [e for e in audit_of(fleet_, host) if e.get("action") == "rollback"]
        database = [e for e in events if e.get("step") == "database"][-1]
        assert database["method"] == "restore" and database["backup"] == backup, database
        assert database["discarded_rows"] == {"purchase_orders": 5}
        assert events[-1]["step"] == "finalize" and events[-1]["version"] == "1.0.0" and events[-1]["db"] == "restore"
