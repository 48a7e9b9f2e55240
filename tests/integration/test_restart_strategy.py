"""blue_green_strategy restart: a single-instance stateful app (runbook 003), end to end.

One simulated host deploys the sample app as ONE process on slot s8 (haproxy backend
`be_s8`), in order: a first deploy; an upgrade that must wait for open positions to drain
under maintenance mode before the SIGTERM stop, await "Recovery successful" and compare
the health JSON; a release whose startup line never comes (the previous release is started
again, after the database is rolled back); a drain that times out (nothing stopped).
A watcher scans /proc throughout: never two app processes at once.
"""

import json
import os
import re
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

import demo_app
from apptools import create_app_db, drop_db, retire_test_slot_app, superuser_conn
from helpers import ROOT, run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("restart_strategy")]

APP = "rsapp"


class ProcessWatcher:
    """Samples /proc for the app's processes (python -m sampleapp on one of slot s8's ports)."""

    def __init__(self, rs):
        self.ports = {str(port).encode() for port in rs["ports"]}
        self.max_running = 0
        self.last_seen = {}  # pid -> monotonic time it was last seen running
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def pids(self):
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            if b"sampleapp" in argv[1:3] and b"--port" in argv and set(argv) & self.ports:
                found.append(int(entry))
        return found

    def run(self):
        while not self.stop_event.is_set():
            pids = self.pids()
            now = time.monotonic()
            for pid in pids:
                self.last_seen[pid] = now
            self.max_running = max(self.max_running, len(pids))
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def rs(sandbox, tmp_path_factory, app_python):
    base = tmp_path_factory.mktemp("restart")
    name = create_app_db(sandbox, "t_rs_")
    pg = sandbox["services"]["postgres"]
    dist = base / "dist"
    for version, variant in {"1.0.0": "base", "1.1.0": "good", "1.2.0": "good"}.items():
        demo_app.build(version, variant, dist)
    secret = sandbox["secrets"]
    db_url = "postgresql+psycopg2://%s:%s@%s:%s/%s" % (pg["app_user"], secret["app_db_password"],
                                                       pg["host"], pg["port"], name)
    haproxy = sandbox["services"]["haproxy"]
    slot = haproxy["slots"]["s8"]
    sup = sandbox["services"]["supervisor"]
    app_root = base / "srv" / APP
    maintenance = app_root / "shared" / "maintenance"
    host_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
        "blue_green_strategy": "restart",
        "app_name": APP,
        "app_root": str(app_root),
        "blue_green_artifact_src": str(dist) + "/sampleapp-{{ blue_green_version }}.tar.gz",
        # One venv with the app's requirements runs every release (no venv build per release).
        "app_release_venv": str(Path(app_python).parent.parent),
        "app_start_command": "{{ app_venv }}/bin/python -m sampleapp --port {{ app_port }}",
        "app_process_env": {"APP_ENV_FILE": str(app_root / "shared" / ".env"),
                            "MAINTENANCE_FILE": str(maintenance)},
        "app_colors": {"blue": {"port": slot["servers"]["blue"]}, "green": {"port": slot["servers"]["green"]}},
        "app_process_manager": "supervisor",
        "app_supervisor_conf_dir": sup["programs_dir"],
        "app_supervisorctl": str(ROOT / ".venv" / "bin" / "supervisorctl"),
        "app_supervisor_config": sup["config"],
        "app_router": "haproxy",
        "app_haproxy_admin_socket": haproxy["admin_socket"],
        "app_haproxy_backend": slot["backend"],
        "app_router_url": f"http://127.0.0.1:{slot['port']}",
        "app_database": {"db": name, "login_host": pg["host"], "login_port": pg["port"],
                         "login_user": pg["app_user"], "login_password": secret["app_db_password"]},
        "app_database_url": db_url,
        "blue_green_shared_env": {"DATABASE_URL": db_url, "REDIS_URL": demo_app.redis_url(sandbox, 12),
                                  "CACHE_PREFIX": "rs_", "DEBUG": "false"},
        "blue_green_gate_idle": {"requests": 10, "concurrency": 2, "max_error_rate": 0.0,
                                 "max_latency_ms": {"p95": 2000}},
        "blue_green_gate_live": {"requests": 20, "concurrency": 2, "max_error_rate": 0.0,
                                 "max_latency_ms": {"p95": 2000}},
        "app_start_timeout": 60,
        "app_stop_timeout": 15,
        # Runbook 003: no new signals, wait until (here: at most one) open position, the
        # startup line, the same health before and after.
        "restart_maintenance_file": str(maintenance),
        "restart_drain_field": "positions",
        "restart_drain_max": 1,
        "restart_drain_timeout": 90,
        "restart_drain_interval": 0.2,
        "restart_log_line": "Recovery successful",
        # Guards, not measures: on a loaded 2-core machine the app's imports alone take tens of seconds.
        "restart_log_timeout": 120,
        "restart_compare_fields": ["status", "positions"],
    }
    inventory = base / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"rs1": host_vars}}}))
    state = {"inventory": inventory, "app_root": app_root, "db": name, "maintenance": maintenance,
             "router": host_vars["app_router_url"], "port": slot["servers"]["blue"],
             "ports": list(slot["servers"].values()),
             "sandbox": sandbox, "supervisor": sup}
    yield state
    retire_test_slot_app(sandbox, APP, ROOT, backend=slot["backend"])
    drop_db(sandbox, name)


RECOVERY_LINE = "Recovery successful: loaded [0-9]+ positions in ([0-9.]+)ms"


def deploy(rs, version, check=False, **extra):
    return run_playbook(ROOT / "playbooks" / "deploy.yml", inventory=rs["inventory"], check=check,
                        extra_vars=dict({"app_version": version, "deploy_hosts": "all"}, **extra))


def sql(rs, statement):
    conn = superuser_conn(rs["sandbox"], rs["db"])
    with conn.cursor() as cur:
        cur.execute(statement)
    conn.close()


def direct_health(rs):
    return requests.get("http://127.0.0.1:%d/health" % rs["port"], timeout=5).json()


def served(rs):
    return requests.get(rs["router"] + "/health", timeout=5).json()


def state(rs):
    return json.loads((rs["app_root"] / "state.json").read_text())


def audit(rs):
    return [json.loads(line) for line in (rs["app_root"] / "audit.log").read_text().splitlines()]


def supervisor_status(rs):
    import subprocess

    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", rs["supervisor"]["config"], "status",
                           f"{APP}-blue", f"{APP}-green"], capture_output=True, text=True, check=False)
    return {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines() if line.strip()}


def assert_serving_alone(rs, version):
    body = served(rs)
    assert body["version"] == version and body["maintenance"] is False
    assert not rs["maintenance"].exists()
    status = supervisor_status(rs)
    assert status[f"{APP}-blue"] == "RUNNING" and status.get(f"{APP}-green") != "RUNNING", status


def test_first_deploy_runs_one_instance(rs):
    with ProcessWatcher(rs) as watcher:
        proc = deploy(rs, "1.0.0")
    assert proc.returncode == 0, proc.output[-4000:]
    assert_serving_alone(rs, "1.0.0")
    assert watcher.max_running == 1
    assert "nothing compared" in proc.flat  # nothing ran before
    st = state(rs)
    assert st["live_version"] == "1.0.0" and st["live_color"] == "blue"


def test_check_mode_tells_the_restart_steps_with_one_color_only(rs):
    before = {p: (rs["app_root"] / p).read_bytes() for p in ("state.json", "audit.log")}
    # A single-instance service needs one color only.
    proc = deploy(rs, "1.1.0", check=True, app_colors={"blue": {"port": rs["port"]}})
    assert proc.returncode == 0, proc.output[-4000:]
    assert "restart in place on blue (port %d): maintenance on, drain, stop 1.0.0, migrate, start 1.1.0" % rs["port"] in proc.flat
    assert ('would restart blue in place: maintenance on, drain until positions <= 1, stop 1.0.0, start 1.1.0, '
            'await the log line "Recovery successful", maintenance off') in proc.flat
    assert "would switch" not in proc.flat and "would start green" not in proc.flat
    assert {p: (rs["app_root"] / p).read_bytes() for p in before} == before
    assert_serving_alone(rs, "1.0.0")


def test_upgrade_drains_positions_then_stops_then_awaits_recovery(rs):
    sql(rs, "INSERT INTO portfolio_positions (symbol, status, quantity) "
            "VALUES ('NIFTY', 'open', 1), ('BANKNIFTY', 'open', 2), ('GOLD', 'open', 3)")
    old_pid = None
    result = {}
    with ProcessWatcher(rs) as watcher:
        # Runbook 003's "Recovery successful: loaded X positions in Yms", Y judged (< 100 ms
        # there; a limit no loaded CI machine reaches here, the failing side has its own test).
        runner = threading.Thread(target=lambda: result.update(proc=deploy(
            rs, "1.1.0", restart_log_line=RECOVERY_LINE, restart_log_max=60000)), daemon=True)
        runner.start()
        # The deploy builds the release, then turns maintenance on and waits for the drain.
        deadline = time.monotonic() + 900  # a guard, not a measure: the release is built first
        while not rs["maintenance"].exists():
            assert runner.is_alive(), result["proc"].output[-4000:]
            assert time.monotonic() < deadline, "maintenance mode never turned on"
            time.sleep(0.1)
        refused = requests.post(rs["router"] + "/api/purchase-orders", timeout=5, json={
            "buyer_company_id": 1, "seller_company_id": 2, "product_id": 1})
        assert refused.status_code == 503  # no new work while draining
        old_pid = list(watcher.pids())
        # Hold 3 open positions for 3 s: the old release keeps serving, in maintenance mode.
        hold_until = time.monotonic() + 3
        while time.monotonic() < hold_until:
            body = direct_health(rs)
            assert body["version"] == "1.0.0" and body["maintenance"] is True and body["positions"] == 3
            assert watcher.pids() == old_pid
            time.sleep(0.2)
        released_at = time.monotonic()
        sql(rs, "UPDATE portfolio_positions SET status = 'closed' WHERE symbol IN ('NIFTY', 'GOLD')")
        runner.join(timeout=1500)
        assert "proc" in result, "the deploy did not finish"
    proc = result["proc"]
    assert proc.returncode == 0, proc.output[-4000:]
    assert_serving_alone(rs, "1.1.0")
    # Never two instances; the old one was seen running after the positions were released.
    assert watcher.max_running == 1
    assert len(old_pid) == 1 and watcher.last_seen[old_pid[0]] > released_at
    assert len(watcher.last_seen) == 2
    drained = re.search(r"drained: positions 1 after (\d+) reads of the health JSON", proc.output)
    at = proc.output.find("Maintenance mode on")
    assert drained and int(drained.group(1)) > 1, proc.output[at:at + 6000]
    # The drained health (1 position left) is what the new release recovered.
    flat = proc.flat
    assert 'health before/after the restart: status "healthy" -> "healthy", positions 1 -> 1' in flat
    recovery = re.search(r'startup line: "[^"]*Recovery successful: loaded 1 positions in (\d+)ms", '
                         r'value (\d+\.\d+) <= 60000 \(restart_log_max\)', flat)
    assert recovery and float(recovery.group(1)) == float(recovery.group(2)), flat[flat.find("startup line"):][:500]
    assert direct_health(rs)["positions"] == 1
    log = (rs["app_root"] / "logs" / "blue.log").read_text()
    stop = log.index("sampleapp 1.0.0 shutting down gracefully")
    assert log.index("Recovery successful: loaded 1 positions", stop) > stop
    st = state(rs)
    assert st["live_version"] == "1.1.0" and st["previous_version"] == "1.0.0"
    assert Path(st["backup_path"]).exists()


def test_startup_line_that_never_comes_brings_the_previous_release_back(rs):
    with ProcessWatcher(rs) as watcher:
        # A startup line only the previous release prints: 1.2.0 never logs it, 1.1.0 does
        # when it is started again.
        proc = deploy(rs, "1.2.0", restart_log_line="sampleapp 1[.]1[.]0 [(]good[)] ready",
                      restart_log_timeout=60)
    assert proc.returncode != 0
    assert "stopped in phase restart_start" in proc.flat
    assert 'rsapp-blue (1.2.0) never logged "sampleapp 1[.]1[.]0 [(]good[)] ready" within 60 s' in proc.flat
    assert "Recovery successful: loaded 1 positions" in proc.flat  # what the app did log
    assert "Service: previous release 1.1.0 restarted on blue, maintenance off" in proc.flat
    assert_serving_alone(rs, "1.1.0")
    assert watcher.max_running == 1 and len(watcher.last_seen) == 3  # 1.1.0, 1.2.0, 1.1.0 again
    st = state(rs)
    assert st["live_version"] == "1.1.0" and st["last_failure"]["version"] == "1.2.0"
    failure = audit(rs)[-1]
    assert failure["result"] == "failed" and failure["previous_restarted"] is True


def test_a_recovery_slower_than_its_limit_brings_the_previous_release_back(rs):
    # restart_log_max -1: no recovery is fast enough, so the judged path fails.
    proc = deploy(rs, "1.2.0", restart_log_line=RECOVERY_LINE, restart_log_max=-1)
    assert proc.returncode != 0
    assert "stopped in phase restart_start" in proc.flat
    assert re.search(r'rsapp-blue \(1\.2\.0\) logged "[^"]*Recovery successful: loaded 1 positions in \d+ms": '
                     r'\d+\.\d+ > -1 \(restart_log_max\)', proc.flat), proc.output[-4000:]
    assert "Service: previous release 1.1.0 restarted on blue, maintenance off" in proc.flat
    assert_serving_alone(rs, "1.1.0")
    assert state(rs)["last_failure"]["version"] == "1.2.0"


def test_drain_timeout_stops_nothing(rs):
    sql(rs, "UPDATE portfolio_positions SET status = 'open'")
    try:
        with ProcessWatcher(rs) as watcher:
            before = watcher.pids()
            proc = deploy(rs, "1.2.0", restart_drain_timeout=1)
        assert proc.returncode != 0
        assert "drain: positions is 3 after 1 s (wanted <= 1)" in proc.flat
        assert "Service: untouched, 1.1.0 kept running (maintenance off)" in proc.flat
        assert set(watcher.last_seen) == set(before) and len(before) == 1
        assert_serving_alone(rs, "1.1.0")
    finally:
        sql(rs, "UPDATE portfolio_positions SET status = 'closed'")
