# -*- coding: utf-8 -*-
"""flag_rollout role end to end: the sample app as a supervisord program of the sandbox.

Each test owns its supervisord program (`flagtest-<hex>`, port 29500-29599), its .env and
audit log in tmp_path, its database (fresh_db), Redis db 8 under its own key prefix.
"""

import json
import os
import socket
import stat
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
import redis
import requests
import yaml

import demo_app as app_tools  # scripts/demo_app.py
from helpers import ROOT, run_playbook

PLAYBOOK = ROOT / "playbooks" / "flag_rollout.yml"
EXAMPLE = ROOT / "examples" / "rollouts" / "purchase-orders.yml"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SUPERVISORCTL = str(ROOT / ".venv" / "bin" / "supervisorctl")
REDIS_DB = 8
ADMIN_TOKEN = "flagtest-admin-token-" + uuid.uuid4().hex[:8]


PORT_LOCKS = Path("/tmp/prodready-flagtest-ports")


def own_port():
    """A free port of this test module's range (29500-29599), reserved by a lock file so that
    parallel tests (pytest -n) never pick the same one before the app binds it."""
    PORT_LOCKS.mkdir(exist_ok=True)
    for port in range(29500, 29600):
        lock = PORT_LOCKS / str(port)
        try:
            os.close(os.open(str(lock), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                lock.unlink()
                continue
    raise RuntimeError("no free port in 29500-29599")


def alembic(app_python, release, url, *args):
    env = dict(os.environ, DATABASE_URL=url)
    return subprocess.run([str(app_python), "-m", "alembic", "-c", "alembic.ini", *args],
                          cwd=release, env=env, capture_output=True, text=True, check=False)


def audit_lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_inventory(tmp_path, hosts):
    """hosts: name -> host vars. Every host runs locally with the project's interpreter."""
    inventory = {"app": {"hosts": {}}}
    for name, hostvars in hosts.items():
        inventory["app"]["hosts"][name] = dict(
            hostvars, ansible_connection="local", ansible_python_interpreter=PYTHON)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


class SupervisedApp:
    """The sample app as a program of the sandbox's supervisord, with its own .env."""

    def __init__(self, sandbox, python, release, db_url, tmp_path):
        self.sup = sandbox["services"]["supervisor"]
        self.name = "flagtest-" + uuid.uuid4().hex[:10]
        self.port = own_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.env_file = tmp_path / ".env"
        self.conf = Path(self.sup["programs_dir"]) / ("%s.conf" % self.name)
        self.redis_prefix = "%s:" % self.name
        lines = [
            "# sample app settings",
            "DATABASE_URL=%s" % db_url,
            "REDIS_URL=%s" % app_tools.redis_url(sandbox, REDIS_DB),
            "CACHE_PREFIX=%s_" % self.name,
            "FLAG_REDIS_PREFIX=%s" % self.redis_prefix,
            "ADMIN_TOKEN=%s" % ADMIN_TOKEN,
            "ENABLE_PO_CACHING=false",
            "",
            "ENABLE_PO_CACHING=false",  # runbook 004's `echo >> .env` left a duplicate
            "",
        ]
        self.env_file.write_text("\n".join(lines))
        self.env_file.chmod(0o600)
        self.start = lambda: app_tools.supervisor_program(sandbox, self.name, release, python,
                                                          self.port, self.env_file, "1.0.0")

    def ctl(self, *args):
        return subprocess.run([SUPERVISORCTL, "-c", self.sup["config"], *args],
                              capture_output=True, text=True, check=False)

    def flags(self):
        return requests.get(self.url + "/api/flags", timeout=5).json()["env_file"]

    def host_vars(self, tmp_path):
        return {
            "flag_rollout_env_file": str(self.env_file),
            "app_process_manager": "supervisor",
            "flag_rollout_services": [self.name],
            "app_supervisorctl": SUPERVISORCTL,
            "app_supervisor_config": self.sup["config"],
            "flag_rollout_health_url": self.url + "/health",
            "flag_rollout_health_wait_timeout": 30,
            "app_root": str(tmp_path),
        }

    def remove(self):
        self.ctl("stop", self.name)
        if self.conf.exists():
            self.conf.unlink()
        self.ctl("reread")
        self.ctl("update", self.name)
        (PORT_LOCKS / str(self.port)).unlink()


@pytest.fixture
def app(sandbox, app_python, fresh_db, release_dir, tmp_path):
    release = release_dir("1.0.0", "base")
    migrated = alembic(app_python, release, fresh_db["url"], "upgrade", "head")
    assert migrated.returncode == 0, migrated.stderr
    supervised = SupervisedApp(sandbox, app_python, release, fresh_db["url"], tmp_path)
    try:
        supervised.start()
        health = app_tools.wait_http(supervised.url + "/health")
        assert health["version"] == "1.0.0"
        yield supervised
    finally:
        supervised.remove()
        assert supervised.name not in supervised.ctl("status").stdout


def pgpass(sandbox, tmp_path, dbname):
    """libpq settings for the week-1 index check; the password in a 0600 file, not the env."""
    pg = sandbox["services"]["postgres"]
    path = tmp_path / "pgpass"
    path.write_text("%s:%s:%s:%s:%s\n" % (pg["host"], pg["port"], dbname, pg["app_user"],
                                          sandbox["secrets"]["app_db_password"]))
    path.chmod(0o600)
    return {"PGHOST": pg["host"], "PGPORT": str(pg["port"]), "PGUSER": pg["app_user"],
            "PGDATABASE": dbname, "PGPASSFILE": str(path)}


def index_count(sandbox, tmp_path, dbname):
    query = "SELECT count(*) FROM pg_indexes WHERE tablename = 'purchase_orders' AND indexname LIKE 'idx_po_%'"
    done = subprocess.run(["psql", "-X", "-A", "-t", "-c", query], env=dict(os.environ, **pgpass(sandbox, tmp_path, dbname)),
                          capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def po_vars(app, sandbox, fresh_db, tmp_path, app_python, release):
    """The example stage file's variables for this test's app, database and release."""
    return dict(app.host_vars(tmp_path), po_app_url=app.url, po_admin_token=ADMIN_TOKEN, po_soak_seconds=0,
                po_psql_environment=pgpass(sandbox, tmp_path, fresh_db["name"]), po_app_dir=str(release),
                po_app_python=str(app_python), po_database_url=fresh_db["url"])


def test_runbook_004_weeks_1_and_2_pass(app, sandbox, fresh_db, tmp_path, app_python, release_dir):
    release = release_dir("1.0.0", "base")
    down = alembic(app_python, release, fresh_db["url"], "downgrade", "0001")  # before week 1
    assert down.returncode == 0, down.stderr
    assert index_count(sandbox, tmp_path, fresh_db["name"]) == 0
    inventory = write_inventory(tmp_path, {"web1": po_vars(app, sandbox, fresh_db, tmp_path, app_python, release)})
    before = app.env_file.read_text()

    proc = run_playbook(PLAYBOOK, inventory=inventory, extra_vars={
        "flag_rollout_stages_file": str(EXAMPLE), "flag_rollout_until": "week-2-query-optimization"})
    out = proc.flat
    assert proc.returncode == 0, out
    assert ADMIN_TOKEN not in out
    assert sandbox["secrets"]["app_db_password"] not in out

    # Week 1 ran the index migration; the gate counted the five indexes.
    assert index_count(sandbox, tmp_path, fresh_db["name"]) == 5
    # The restarted app reads the week-2 flags; week 3's are not applied.
    flags = app.flags()
    assert flags["ENABLE_PO_QUERY_OPTIMIZATION"] == "true"
    assert flags["ENABLE_PERFORMANCE_MONITORING"] == "true"
    assert flags["ENABLE_PO_CACHING"] == "false"
    text = app.env_file.read_text()
    assert text.startswith(before.split("ENABLE_PO_CACHING=false")[0])
    assert text.count("ENABLE_PO_CACHING=false") == 2  # a flag no stage touched is left alone
    assert stat.S_IMODE(app.env_file.stat().st_mode) == 0o600

    log = tmp_path / "audit.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    entries = audit_lines(log)
    assert [(e["stage"], e["action"]) for e in entries] == [
        ("week-1-indexes", "migrate"),
        ("week-1-indexes", "gate-pass"),
        ("week-2-query-optimization", "apply"),
        ("week-2-query-optimization", "gate-pass"),
    ]
    assert entries[0]["result"].startswith("0001 -> 0002")
    assert all(e["host"] == "web1" and e["time"].endswith("Z") and e["user"] for e in entries)
    assert entries[2]["flags"] == {"ENABLE_PO_QUERY_OPTIMIZATION": True, "ENABLE_PERFORMANCE_MONITORING": True}

    # Week 2 again (the weekly command re-run): nothing changes, nothing restarts, no audit line.
    pid = app.ctl("pid", app.name).stdout.strip()
    again = run_playbook(PLAYBOOK, inventory=inventory, extra_vars={
        "flag_rollout_stages_file": str(EXAMPLE),
        "flag_rollout_from": "week-2-query-optimization", "flag_rollout_until": "week-2-query-optimization"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed=0" in again.stdout
    assert app.ctl("pid", app.name).stdout.strip() == pid
    assert len(audit_lines(log)) == 4


def test_runbook_004_week_3_caching_gates_on_the_cache_hit_ratio(app, sandbox, fresh_db, tmp_path, app_python, release_dir):
    """Week 3 as shipped: caching flags, restart, health + bearer metrics gates, and a hit ratio
    over 60 % measured from Redis INFO deltas while readers load the cached endpoint."""
    svc = sandbox["services"]["redis"]
    password = sandbox["secrets"]["redis_password"]
    seeded = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c",
         "INSERT INTO companies (name) VALUES ('buyer'), ('seller'); INSERT INTO products (name) VALUES ('widget'); "
         "INSERT INTO purchase_orders (buyer_company_id, seller_company_id, product_id, quantity, status) "
         "SELECT min(c.id), max(c.id), (SELECT min(id) FROM products), 3, 'open' FROM companies c RETURNING id"],
        env=dict(os.environ, **pgpass(sandbox, tmp_path, fresh_db["name"])), capture_output=True, text=True, check=False)
    assert seeded.returncode == 0, seeded.stderr
    po_url = "%s/api/purchase-orders/%s" % (app.url, seeded.stdout.split()[0])
    assert requests.get(po_url, timeout=5).status_code == 200
    hostvars = dict(po_vars(app, sandbox, fresh_db, tmp_path, app_python, release_dir("1.0.0", "base")),
                    po_cache_window=3, flag_rollout_redis_host=svc["host"], flag_rollout_redis_port=svc["port"],
                    flag_rollout_redis_password=password)
    inventory = write_inventory(tmp_path, {"web1": hostvars})

    stop = threading.Event()
    served = []

    def reader():
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    served.append(session.get(po_url, timeout=2).status_code)
                except requests.RequestException:
                    stop.wait(0.05)  # the app restarts during the stage

    readers = [threading.Thread(target=reader, daemon=True) for dummy in range(2)]
    for thread in readers:
        thread.start()
    reports_before = set((ROOT / ".reports").glob("deploy-report-*.json"))
    try:
        proc = run_playbook(PLAYBOOK, inventory=inventory, extra_vars={
            "flag_rollout_stages_file": str(EXAMPLE), "flag_rollout_from": "week-3-caching"})
    finally:
        stop.set()
        for thread in readers:
            thread.join(5)
    out = proc.flat
    assert proc.returncode == 0, out
    assert password not in out and ADMIN_TOKEN not in out
    assert served.count(200) > 100

    flags = app.flags()
    assert flags["ENABLE_PO_CACHING"] == "true" and flags["ENABLE_CACHE_METRICS"] == "true"
    assert app.env_file.read_text().count("ENABLE_PO_CACHING") == 1  # the duplicate went with the change
    entries = audit_lines(tmp_path / "audit.log")
    assert [(e["stage"], e["action"]) for e in entries] == [("week-3-caching", "apply"), ("week-3-caching", "gate-pass")]
    # This run's report: the other shard writes reports into the same directory meanwhile.
    mine = [json.loads(path.read_text()) for path in set((ROOT / ".reports").glob("deploy-report-*.json")) - reports_before]
    mine = [report for report in mine if "web1" in report.get("hosts", {}) and "flag_rollout.yml" in report.get("playbooks", [])]
    assert len(mine) == 1, [report.get("playbooks") for report in mine]
    report = mine[0]
    cache_gates = [e for e in report["hosts"]["web1"]["events"] if e.get("gate") == "redis_cache_check"]
    assert len(cache_gates) == 1, report["hosts"]["web1"]["events"]
    assert cache_gates[0]["passed"] and cache_gates[0]["hit_ratio"] > 0.6
    assert cache_gates[0]["text"].startswith("cache gate passed: hit ratio ")


def test_week_1_gate_fails_when_an_index_is_missing(app, sandbox, fresh_db, tmp_path, app_python, release_dir):
    # The database is at 0002 already (the deploy migrated it): the stage's migration is a no-op,
    # and an index dropped by hand since is what the count gate catches.
    release = release_dir("1.0.0", "base")
    env = dict(os.environ, **pgpass(sandbox, tmp_path, fresh_db["name"]))
    dropped = subprocess.run(["psql", "-X", "-c", "DROP INDEX idx_po_status"], env=env, capture_output=True, text=True,
                             check=False)
    assert dropped.returncode == 0, dropped.stderr
    inventory = write_inventory(tmp_path, {"web1": po_vars(app, sandbox, fresh_db, tmp_path, app_python, release)})
    proc = run_playbook(PLAYBOOK, inventory=inventory, extra_vars={
        "flag_rollout_stages_file": str(EXAMPLE), "flag_rollout_until": "week-1-indexes"})
    out = proc.flat
    assert proc.returncode != 0
    assert 'five idx_po_* indexes on purchase_orders: output "4" != expected "5"' in out
    assert "database downgraded" not in out  # the stage moved nothing: nothing to move back
    assert sandbox["secrets"]["app_db_password"] not in out
    assert [e["action"] for e in audit_lines(tmp_path / "audit.log")] == ["gate-fail", "revert"]


def test_week_1_failing_gate_downgrades_the_migration_it_ran(app, sandbox, fresh_db, tmp_path, app_python, release_dir):
    release = release_dir("1.0.0", "base")
    down = alembic(app_python, release, fresh_db["url"], "downgrade", "0001")
    assert down.returncode == 0, down.stderr
    hostvars = po_vars(app, sandbox, fresh_db, tmp_path, app_python, release)
    hostvars["po_app_url"] = "http://127.0.0.1:9"  # nothing listens: the health gate fails
    hostvars["flag_rollout_health_url"] = app.url + "/health"  # the revert's own check: the real app
    inventory = write_inventory(tmp_path, {"web1": hostvars})
    proc = run_playbook(PLAYBOOK, inventory=inventory, extra_vars={
        "flag_rollout_stages_file": str(EXAMPLE), "flag_rollout_until": "week-1-indexes",
        "flag_rollout_health_wait_timeout": 1})
    out = proc.flat
    assert proc.returncode != 0, out
    assert "stage 'week-1-indexes' gate failed: web1: health_gate http://127.0.0.1:9/health" in out
    assert "reverted stage(s) week-1-indexes; database downgraded 0002 -> 0001" in out
    assert index_count(sandbox, tmp_path, fresh_db["name"]) == 0
    assert sandbox["secrets"]["app_db_password"] not in out
    entries = audit_lines(tmp_path / "audit.log")
    assert [e["action"] for e in entries] == ["migrate", "gate-fail", "revert"]
    assert "database downgraded 0002 -> 0001" in entries[2]["result"]


def test_failing_gate_reverts_every_stage_of_the_run(app, tmp_path):
    before = app.env_file.read_bytes()
    stages = [
        {"name": "optimize", "flags": {"ENABLE_PO_QUERY_OPTIMIZATION": True}, "restart": True,
         "gates": {"health_gate": {"requests": 10, "max_error_rate": 0.0}}},
        {"name": "broken", "flags": {"ENABLE_PO_CACHING": True, "SIMULATE_ERROR_RATE": "0.5"},
         "restart": True, "gates": {"health_gate": {"requests": 20, "max_error_rate": 0.01}}},
        {"name": "never", "flags": {"ENABLE_CACHE_METRICS": True}},
    ]
    inventory = write_inventory(tmp_path, {"web1": app.host_vars(tmp_path)})
    proc = run_playbook(PLAYBOOK, inventory=inventory, extra_vars={"flag_rollout_stages": stages})
    out = proc.flat
    assert proc.returncode != 0, out
    # The play fails with the gate's own reason text.
    assert "stage 'broken' gate failed: web1: health_gate %s/health: error rate 50.0%% > 1.0%%" % app.url in out
    assert "reverted stage(s) broken, optimize" in out

    # The .env bytes are the original ones, but for the duplicate line feature_flag removed.
    duplicate = b"ENABLE_PO_CACHING=false\n"
    assert before.endswith(b"\n\n" + duplicate)
    expected = before[:-len(duplicate)]
    assert app.env_file.read_bytes() == expected
    # The app was restarted on the restored flags and serves healthy.
    flags = app.flags()
    assert "SIMULATE_ERROR_RATE" not in flags and "ENABLE_PO_QUERY_OPTIMIZATION" not in flags
    statuses = [requests.get(app.url + "/health", timeout=5).status_code for attempt in range(20)]
    assert statuses == [200] * 20

    entries = audit_lines(tmp_path / "audit.log")
    assert [(e["stage"], e["action"]) for e in entries] == [
        ("optimize", "apply"), ("optimize", "gate-pass"),
        ("broken", "apply"), ("broken", "gate-fail"), ("broken", "revert")]
    assert "error rate 50.0% > 1.0%" in entries[3]["result"]
    assert entries[4]["flags"] == [
        {"ENABLE_PO_CACHING": "false", "SIMULATE_ERROR_RATE": None},
        {"ENABLE_PO_QUERY_OPTIMIZATION": None}]


def plain_stages(names):
    return [{"name": n, "flags": {"FLAG_" + n.upper(): True}, "restart": False} for n in names]


def plain_host(tmp_path):
    """One host, no service: an env file holding KEEP=1 and the audit log in tmp_path."""
    env_file = tmp_path / "app.env"
    env_file.write_text("KEEP=1\n")
    inventory = write_inventory(tmp_path, {"web1": {
        "flag_rollout_env_file": str(env_file), "flag_rollout_restart": False,
        "app_root": str(tmp_path)}})
    return env_file, inventory


@pytest.mark.parametrize("selection, expected", [
    ({"flag_rollout_from": "b", "flag_rollout_until": "b"}, ["b"]),
    ({"flag_rollout_from": "b"}, ["b", "c"]),
    ({"flag_rollout_until": "b"}, ["a", "b"]),
    ({}, ["a", "b", "c"]),
])
def test_from_until_run_exactly_the_named_stages(tmp_path, selection, expected):
    env_file, inventory = plain_host(tmp_path)
    proc = run_playbook(PLAYBOOK, inventory=inventory,
                        extra_vars=dict(selection, flag_rollout_stages=plain_stages("abc")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert env_file.read_text() == "KEEP=1\n" + "".join("FLAG_%s=true\n" % n.upper() for n in expected)
    applied = [e["stage"] for e in audit_lines(tmp_path / "audit.log") if e["action"] == "apply"]
    assert applied == expected


@pytest.mark.parametrize("selection, message", [
    ({"flag_rollout_from": "c", "flag_rollout_until": "a"}, "from not after until"),
    ({"flag_rollout_from": "week-9"}, "flag_rollout_from 'week-9'"),
])
def test_bad_selection_is_refused_before_anything_changes(tmp_path, selection, message):
    env_file, inventory = plain_host(tmp_path)
    proc = run_playbook(PLAYBOOK, inventory=inventory,
                        extra_vars=dict(selection, flag_rollout_stages=plain_stages("abc")))
    assert proc.returncode != 0
    assert message in proc.flat
    assert env_file.read_text() == "KEEP=1\n"
    assert not (tmp_path / "audit.log").exists()


@pytest.mark.parametrize("stage, message", [
    ({"gates": {"health_gate": {"url": "http://127.0.0.1:9/", "p95": 500}}},
     "stage 'a': health_gate has unknown option(s) p95 (it takes url, urls,"),
    ({"gates": {"redis_cache_check": [{"min_hit_ratio": 0.6}, {"flush": True}]}},
     "stage 'a': redis_cache_check has unknown option(s) flush"),
    ({"gates": {"command": {"name": "no argv"}}}, "stage 'a': command needs argv"),
    ({"gates": {"health_gate": "http://127.0.0.1:9/"}}, "stage 'a': health_gate must be a dict of options"),
    ({"migrate": {"project_path": "/srv/app", "revert": "restore"}},
     "stage 'a': migrate.revert must be none or downgrade (got \"restore\")"),
    ({"migrate": {"revision": "head"}}, "stage 'a': migrate needs project_path or config"),
])
def test_bad_gate_or_migrate_options_are_refused_before_anything_changes(tmp_path, stage, message):
    env_file, inventory = plain_host(tmp_path)
    stages = [dict(plain_stages("a")[0], **stage)] + plain_stages("b")
    proc = run_playbook(PLAYBOOK, inventory=inventory, extra_vars={"flag_rollout_stages": stages})
    assert proc.returncode != 0
    assert message in proc.flat
    assert env_file.read_text() == "KEEP=1\n"
    assert not (tmp_path / "audit.log").exists()


def test_canary_host_first_and_a_failing_canary_never_reaches_the_rest(tmp_path):
    hosts = {}
    for name in ("canary1", "web2", "web3"):
        (tmp_path / name).mkdir()
        (tmp_path / name / ".env").write_text("A=0\n")
        hosts[name] = {"flag_rollout_env_file": str(tmp_path / name / ".env"),
                       "flag_rollout_restart": False,
                       "app_root": str(tmp_path / name)}
    inventory = write_inventory(tmp_path, hosts)
    # The gate fails where a marker file exists: only on the canary.
    (tmp_path / "canary1" / "bad").write_text("")
    gate = {"command": {"name": "no marker", "argv": ["test", "!", "-e", "{{ flag_rollout_env_file | dirname }}/bad"]}}
    stages = [{"name": "ok", "flags": {"B": 1}, "hosts": ["canary1"]},
              {"name": "bad", "flags": {"A": 1}, "hosts": ["canary1"], "gates": gate}]
    proc = run_playbook(PLAYBOOK, inventory=inventory, extra_vars={"flag_rollout_stages": stages})
    out = proc.flat
    assert proc.returncode != 0, out
    assert "stage 'bad' gate failed: canary1: command no marker: exit 1" in out
    # Stage "ok" stays everywhere (it passed and is not part of the failure... it is reverted too:
    # a failing gate restores every stage applied in this run, on every host).
    for name in ("canary1", "web2", "web3"):
        assert (tmp_path / name / ".env").read_text() == "A=0\n"
    canary = audit_lines(tmp_path / "canary1" / "audit.log")
    rest = audit_lines(tmp_path / "web2" / "audit.log")
    assert [(e["stage"], e["action"]) for e in canary] == [
        ("ok", "apply"), ("ok", "gate-pass"), ("bad", "apply"), ("bad", "gate-fail"), ("bad", "revert")]
    # web2 got stage "ok" after the canary passed it, never stage "bad", and was reverted.
    assert [(e["stage"], e["action"]) for e in rest] == [
        ("ok", "apply"), ("ok", "gate-pass"), ("bad", "revert")]
    assert rest[0]["time"] > canary[1]["time"]
    assert rest[2]["flags"] == [{"B": None}]


def test_canary_that_errors_before_its_gate_stops_the_rest_before_they_change(tmp_path):
    """Not a gate failure: the canary's flag write itself fails (its env file is missing).
    The other hosts never saw a failed gate, and still must not apply the stage: the wave
    check finds that the canary never recorded passing it."""
    hosts = {}
    for name in ("canary1", "web2", "web3"):
        (tmp_path / name).mkdir()
        if name != "canary1":
            (tmp_path / name / ".env").write_text("A=0\n")
        hosts[name] = {"flag_rollout_env_file": str(tmp_path / name / ".env"),
                       "flag_rollout_restart": False,
                       "app_root": str(tmp_path / name)}
    inventory = write_inventory(tmp_path, hosts)
    stages = [{"name": "first", "flags": {"B": 1}},
              {"name": "second", "flags": {"A": 1}, "hosts": ["canary1"]}]
    (tmp_path / "canary1" / ".env").write_text("A=0\n")
    # Stage "first" passes everywhere; then the canary's env file disappears.
    gate = {"command": {"name": "drop the canary's env file",
                        "argv": ["rm", "-f", str(tmp_path / "canary1" / ".env")]}}
    stages[0]["gates"] = gate
    proc = run_playbook(PLAYBOOK, inventory=inventory, extra_vars={"flag_rollout_stages": stages})
    out = proc.flat
    assert proc.returncode != 0, out
    assert "stage 'second' not applied on web2: the earlier wave did not pass it on canary1" in out
    for name in ("web2", "web3"):
        assert (tmp_path / name / ".env").read_text() == "A=0\n"
        entries = audit_lines(tmp_path / name / "audit.log")
        assert [(e["stage"], e["action"]) for e in entries] == [
            ("first", "apply"), ("first", "gate-pass"), ("second", "revert")]
        assert entries[-1]["flags"] == [{"B": None}]


def test_redis_backend_with_ttl_and_revert(sandbox, tmp_path):
    svc = sandbox["services"]["redis"]
    password = sandbox["secrets"]["redis_password"]
    client = redis.Redis(host=svc["host"], port=svc["port"], password=password, db=REDIS_DB,
                         decode_responses=True)
    prefix = "flagtest-%s:" % uuid.uuid4().hex[:10]
    client.set(prefix + "ENABLE_PO_CACHING", "false")
    try:
        inventory = write_inventory(tmp_path, {"web1": {
            "flag_rollout_backend": "redis", "flag_rollout_restart": False,
            "flag_rollout_redis_host": svc["host"], "flag_rollout_redis_port": svc["port"],
            "flag_rollout_redis_db": REDIS_DB, "flag_rollout_redis_password": password,
            "flag_rollout_redis_key_prefix": prefix,
            "app_root": str(tmp_path)}})
        stages = [{"name": "cache", "flags": {"ENABLE_PO_CACHING": True, "ENABLE_CACHE_METRICS": True},
                   "ttl": 600, "gates": {"redis_cache_check": {"max_ping_ms": 1000}}},
                  {"name": "limit", "flags": {"emergency_rate_limit": 1}, "ttl": 3600}]
        proc = run_playbook(PLAYBOOK, inventory=inventory, verbosity=2,
                            extra_vars={"flag_rollout_stages": stages})
        out = proc.flat
        assert proc.returncode == 0, out
        assert password not in out
        assert client.get(prefix + "ENABLE_PO_CACHING") == "true"
        assert client.get(prefix + "ENABLE_CACHE_METRICS") == "true"
        assert 0 < client.ttl(prefix + "ENABLE_CACHE_METRICS") <= 600
        assert 600 < client.ttl(prefix + "emergency_rate_limit") <= 3600

        # A failing stage restores the values of the stages applied in that run.
        client.delete(prefix + "emergency_rate_limit")
        failing = [{"name": "flip", "flags": {"ENABLE_PO_CACHING": False, "NEW_FLAG": "x"}, "ttl": 60,
                    "gates": {"command": {"name": "always fails", "argv": ["false"]}}}]
        proc = run_playbook(PLAYBOOK, inventory=inventory, extra_vars={"flag_rollout_stages": failing})
        out = proc.flat
        assert proc.returncode != 0
        assert "stage 'flip' gate failed: web1: command always fails: exit 1" in out
        assert password not in out
        assert client.get(prefix + "ENABLE_PO_CACHING") == "true"
        assert client.get(prefix + "NEW_FLAG") is None
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of this test's own (it is stopped with SIGSTOP: the sandbox's is shared)."""
    port = own_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)
    for _attempt in range(100):
        try:
            client.ping()
            break
        except redis.RedisError:
            threading.Event().wait(0.05)
    yield proc, port, client
    os.kill(proc.pid, 18)  # SIGCONT, in case the test left it stopped
    proc.terminate()
    proc.wait(timeout=10)


def redis_stage(pid, resume_after=None):
    """A stage whose gate stops Redis (SIGSTOP) and fails: the revert meets a Redis that does
    not answer; with `resume_after`, Redis comes back that many seconds later."""
    script = "kill -STOP %d" % pid
    if resume_after:
        script += "; setsid sh -c 'sleep %s; kill -CONT %d' >/dev/null 2>&1 </dev/null &" % (resume_after, pid)
    return [{"name": "flip", "flags": {"ENABLE_PO_CACHING": True}, "restart": False,
             "gates": {"command": {"name": "redis stops", "argv": ["sh", "-c", script + "; exit 1"]}}}]


def redis_host(tmp_path, port, retries):
    return write_inventory(tmp_path, {"web1": {
        "flag_rollout_backend": "redis", "flag_rollout_restart": False,
        "flag_rollout_redis_host": "127.0.0.1", "flag_rollout_redis_port": port,
        "flag_rollout_redis_key_prefix": "t:", "flag_rollout_revert_retries": retries, "flag_rollout_revert_delay": 1,
        "app_root": str(tmp_path)}})


def test_a_revert_retries_until_redis_answers_again(tmp_path, private_redis):
    proc, port, client = private_redis
    client.set("t:ENABLE_PO_CACHING", "false")
    run = run_playbook(PLAYBOOK, inventory=redis_host(tmp_path, port, 5),
                       extra_vars={"flag_rollout_stages": redis_stage(proc.pid, resume_after=4)})
    assert run.returncode != 0
    assert "stage 'flip' gate failed" in run.flat and "FLAGS STILL APPLIED" not in run.flat
    assert client.get("t:ENABLE_PO_CACHING") == "false"  # restored once Redis answered
    revert = [line for line in audit_lines(tmp_path / "audit.log") if line["action"] == "revert"][-1]
    assert revert["result"].startswith("restored flip") and revert["user"] != "unknown"


def test_a_revert_that_cannot_reach_redis_says_which_flags_are_still_applied(tmp_path, private_redis):
    proc, port, client = private_redis
    client.set("t:ENABLE_PO_CACHING", "false")
    run = run_playbook(PLAYBOOK, inventory=redis_host(tmp_path, port, 1),
                       extra_vars={"flag_rollout_stages": redis_stage(proc.pid)})
    os.kill(proc.pid, 18)  # SIGCONT: Redis answers again, with what the failed revert left
    assert run.returncode != 0
    message = run.flat[run.flat.index("FLAGS STILL APPLIED"):]
    assert message.startswith("FLAGS STILL APPLIED on web1: the revert could not restore them after 2 tries ("), message
    assert 'stage flip -> previous values {"ENABLE_PO_CACHING": "false"}' in message, message[:600]
    assert "timed out" in message[:600]
    assert "stage 'flip' gate failed" in message  # the cause is kept
    assert "reverted stage(s) none" in message  # flip was not reverted, and is not said to be
    assert "One or more items failed" not in run.flat.replace("...ignoring", "")
    assert client.get("t:ENABLE_PO_CACHING") == "true"  # still applied, as said
    revert = [line for line in audit_lines(tmp_path / "audit.log") if line["action"] == "revert"][-1]
    assert revert["result"].startswith("revert FAILED, flags still applied: stage flip")
