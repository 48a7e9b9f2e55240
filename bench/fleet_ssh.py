"""Benchmark: a fleet-atomic switch and a warm rollback of 4 real SSH hosts behind the router
host, under a steady request loop through the router.

    scripts/fleet_hosts.py up --hosts 4 --router        # once (left running)
    .venv/bin/python bench/fleet_ssh.py [--rounds 3] [--router-access tcp|socket] [--profile N]

DESIGN.md quality bars: "a fleet-atomic switch and a warm rollback of a 4-host fleet over
SSH: all hosts on the target version within 2 s of the decision"; "0 failed requests through
the router (haproxy) while deploy and rollback run under steady load".

The hosts are scripts/fleet_hosts.py's (h1..h4 and the router r1: network namespaces with
their own sshd, supervisord and files; haproxy on r1 holds every host's two colors in one
backend be_app), reached over SSH as `deploy` with become and pipelining, set up as
tests/integration/test_fleet_deploy_ssh.py does (wheel cache and uv copied to the hosts, a
database of the sandbox's PostgreSQL reached over the bridge, releases built on each host).
`--router-access`: `tcp` (default) gives every host the router's admin TCP address
(`app_haproxy_admin_address`: router work runs from the app host, and rollback_start can
switch in its one call); `socket` delegates router work to r1 and its local socket.

Once: a first deploy of 1.0.0. Then each round, with a thread sending keep-alive requests
through the router (every failed request counted: status other than 200, or an exception)
and a thread reading `show servers state` over the router's admin TCP address every ~5 ms:

- upgrade to 1.1.0 with `blue_green_switch_mode: fleet` (round 1 migrates; later rounds
  find the schema at head). The decision is the moment the play checks that every host
  passed its idle gate (the start of that task, from bench/callbacks/task_counts.py);
  measured: the fleet switch's own `switch_ms` (router_switch's result), and from the
  outside the time from the decision (and from the switch task's start) to the moment
  every host's new server is the only one of its two in `ready` and UP, and to the last
  response of the old version through the router;
- warm rollback (playbooks/rollback.yml, back to 1.0.0): the time from the playbook's
  start to every host's previous server being the only one ready, and to the last response
  of the new version; rollback_start's `switch_ms` per host.

Baselines in the same round: `ansible app -m ping` of the 4 hosts and an empty playbook
over SSH; the figures are printed as ratios to them. Nothing is asserted.
Refuses to run while a pytest session uses the fleet (same hosts, same ports), unless --force.
"""

import argparse
import datetime
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

import benchlib
from benchlib import ROOT

import demo_app  # noqa: E402  scripts/demo_app.py
import sandbox as sandbox_script  # noqa: E402  scripts/sandbox.py
from apptools import create_app_db, drop_db  # noqa: E402  tests/integration/apptools.py

# tests/integration/fleet_hosts.py (the Fleet of the tests), by path: scripts/ (where another
# fleet_hosts.py lives) comes first on sys.path once demo_app is imported.
_SPEC = importlib.util.spec_from_file_location("fleet_hosts_helper", ROOT / "tests" / "integration" / "fleet_hosts.py")
fleet_helper = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fleet_helper)
Fleet, fleet_script = fleet_helper.Fleet, fleet_helper.script

APP = "benchssh"
APP_ROOT = "/srv/" + APP
HOSTS = ["h1", "h2", "h3", "h4"]
OLDER_PYTHON_WHEELS = ["async-timeout>=4.0.3"]  # the hosts' Python 3.11.2 (as the fleet test)
DECISION_TASK = "Check that every host of the fleet passed its idle gate"
SWITCH_TASK = "Move the whole fleet's traffic at once"
TRACE = False


def host_wheels():
    """The wheel cache for the hosts (the same tarball test_fleet_deploy_ssh makes)."""
    wheels = demo_app.ensure_wheels()
    tarball = ROOT / ".cache" / "wheels-hosts.tar.gz"
    if not tarball.exists():
        target = Path(tempfile.mkdtemp(prefix="bench-wheels-"))
        shutil.copytree(wheels, target, dirs_exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--no-deps",
                        "-d", str(target)] + OLDER_PYTHON_WHEELS, check=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-czf", str(partial), "-C", str(target), "."], check=True)
        partial.rename(tarball)
        shutil.rmtree(target, ignore_errors=True)
    return tarball


class RouterLoop:
    """Keep-alive GETs of /health through the router in a thread: (time, status, version)."""

    def __init__(self, url):
        self.url, self.rows = url, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        session = requests.Session()
        while not self.stop.is_set():
            try:
                resp = session.get(self.url, timeout=5)
                version = resp.json().get("version") if resp.status_code == 200 else None
                self.rows.append((time.time(), resp.status_code, version))
            except (requests.RequestException, ValueError) as exc:
                self.rows.append((time.time(), type(exc).__name__, None))
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)

    def failed(self, since=0.0):
        return [row for row in self.rows if row[0] >= since and row[1] != 200]

    def last_of(self, version, since=0.0):
        times = [t for t, status, ver in self.rows if t >= since and status == 200 and ver == version]
        return max(times) if times else None


def read_servers(address):
    """{server: (admin state, operational state)} of be_app, over the admin TCP address."""
    with socket.create_connection(address, timeout=2) as sock:
        sock.sendall(b"show servers state %s\n" % fleet_script.BACKEND.encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    rows = {}
    for line in data.decode().splitlines()[2:]:
        cols = line.split()
        if len(cols) > 6:
            rows[cols[3]] = (int(cols[6]), int(cols[5]))
    return rows


# srv_admin_state bits that keep a server from taking new requests: maintenance (forced,
# inherited, resolution, hostname: 0x01 0x02 0x20 0x40) and drain (0x08 0x10). 0x04 (declared
# `disabled` in the configuration) stays set after `set server ... state ready` and does not.
NOT_READY = 0x01 | 0x02 | 0x20 | 0x40 | 0x08 | 0x10


def is_ready(state):
    return state is not None and not state[0] & NOT_READY


def live_colors(servers):
    """{host: color} where exactly one of the host's two servers is ready and UP (op state 2)."""
    out = {}
    for host in HOSTS:
        states = {c: servers.get("%s-%s" % (host, c)) for c in ("blue", "green")}
        ready = [c for c, st in states.items() if is_ready(st)]
        out[host] = ready[0] if len(ready) == 1 and states[ready[0]][1] == 2 else None
    return out


class StatePoller:
    """Reads the router's server states every ~5 ms in a thread; `reached(target)` is the first
    time every host had its `target` color as the only one ready and UP."""

    def __init__(self, address):
        self.address, self.rows, self.raw = address, [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        last = None
        while not self.stop.is_set():
            try:
                servers = read_servers(self.address)
                colors = live_colors(servers)
            except OSError:
                servers = colors = None
            now = time.time()
            if colors != last:
                self.rows.append((now, colors))
                self.raw.append((now, servers))
                last = colors
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)

    def reached(self, target, since=0.0):
        for t, colors in self.rows:
            if t >= since and colors == target:
                return t
        return None


def fleet_in_use(base):
    try:
        pids = json.loads((base / "sessions.json").read_text())
    except (OSError, ValueError):
        return []
    return [pid for pid in pids if fleet_script.alive(pid)]


def group_vars(fleet, sb, db, dist, access):
    pg, secret, redis = sb["services"]["postgres"], sb["secrets"], sb["services"]["redis"]
    url = "postgresql+psycopg2://%s:%s@%s:%s/%s" % (
        pg["app_user"], secret["app_db_password"], fleet.controller, pg["port"], db)
    values = {
        "app_name": APP, "app_root": APP_ROOT,
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
            "CACHE_PREFIX": APP + "_", "DEBUG": "false"},
        "blue_green_row_count_tables": ["purchase_orders"],
        "blue_green_switch_mode": "fleet",
        "blue_green_db_rollback": "downgrade",
        "blue_green_gate_idle": {"requests": 10, "concurrency": 2, "max_error_rate": 0.0,
                                 "max_latency_ms": {"p95": 10000}},
        "blue_green_gate_live": {"requests": 40, "concurrency": 2, "max_error_rate": 0.0,
                                 "max_latency_ms": {"p95": 10000}},
    }
    if access == "tcp":
        values["app_haproxy_admin_address"] = "{{ fleet_haproxy_admin_tcp }}"
    else:
        values["app_haproxy_admin_socket"] = "{{ fleet_haproxy_admin_socket }}"
    return values


def prepare_hosts(fleet):
    uv = shutil.which("uv", path=str(ROOT / ".venv" / "bin"))
    pattern = ",".join(HOSTS)
    for module, args in (("ansible.builtin.file", "path=/srv/wheels state=directory mode=0755"),
                         ("ansible.builtin.unarchive", "src=%s dest=/srv/wheels" % host_wheels()),
                         ("ansible.builtin.copy", "src=%s dest=/srv/tools/ mode=0755" % uv)):
        done = fleet.ansible(pattern, module, args)
        if not done.ok:
            raise SystemExit("preparing the hosts failed: %r" % done)


def clean_hosts(fleet):
    for host in HOSTS:
        fleet.ansible(host, "ansible.builtin.shell",
                      "supervisorctl -c %s stop %s-blue %s-green; rm -f %s/%s-*.conf; supervisorctl -c %s update; rm -rf %s"
                      % (fleet.supervisor_config, APP, APP, fleet.supervisor_programs, APP, fleet.supervisor_config,
                         APP_ROOT))
    # Back to the state scripts/fleet_hosts.py starts with: blue ready, green in maintenance.
    commands = ";".join("set server %s/%s-blue state ready;set server %s/%s-green state maint"
                        % (fleet.backend, h, fleet.backend, h) for h in HOSTS)
    try:
        with socket.create_connection(fleet.haproxy_admin_tcp, timeout=5) as sock:
            sock.sendall(commands.encode() + b"\n")
            sock.recv(65536)
    except OSError:
        pass


def baselines(fleet, inventory, work, env):
    started = time.perf_counter()
    ping = fleet.ansible(",".join(HOSTS), "ansible.builtin.ping", become=True)
    ping_s = time.perf_counter() - started
    if not ping.ok:
        raise SystemExit("ansible -m ping failed: %r" % ping)
    empty = benchlib.run_playbook(benchlib.empty_playbook(work), inventory, env=env, argv_extra=["--limit", ",".join(HOSTS)])
    return ping_s, empty.wall


def task_time(records, name, kind="task", last=False):
    times = [r["t"] for r in records if r["kind"] == kind and name in r["task"]]
    if not times:
        return None
    return max(times) if last else min(times)


def upgrade(fleet, inventory, env, version, old_version, work, label, profile):
    address = fleet.haproxy_admin_tcp
    before = live_colors(read_servers(address))
    target = {h: ("green" if c == "blue" else "blue") for h, c in before.items()}
    with RouterLoop(fleet.router_url + "/health") as loop, StatePoller(address) as poller:
        time.sleep(0.5)
        started = time.time()
        result = benchlib.run_playbook(ROOT / "playbooks" / "deploy.yml", inventory,
                                       {"deploy_hosts": ",".join(HOSTS), "deploy_preflight": False, "app_version": version},
                                       counts=work / ("%s.jsonl" % label), env=env)
        time.sleep(0.5)
    if not result.ok:
        raise SystemExit("upgrade to %s failed:\n%s" % (version, result.output[-5000:]))
    recs = result.records
    decision = task_time(recs, DECISION_TASK)
    switch_start = task_time(recs, SWITCH_TASK)
    switch = [r for r in recs if r["kind"] == "result" and SWITCH_TASK in r["task"] and "switch_ms" in r]
    all_new = poller.reached(target, since=started)
    last_old = loop.last_of(old_version, since=started)
    fig = {
        "wall": result.wall, "cpu": result.cpu, "requests": len([r for r in loop.rows if r[0] >= started]),
        "failed": loop.failed(since=started), "switch_ms": switch[0]["switch_ms"] if switch else None,
        "decision_at": decision - started if decision else None,
        "decision_to_all_new": all_new - decision if all_new and decision else None,
        "switch_task_to_all_new": all_new - switch_start if all_new and switch_start else None,
        "decision_to_last_old": last_old - decision if last_old and decision else None,
        "summary": benchlib.summarize(recs, "h1"), "records": recs,
    }
    if profile:
        benchlib.print_profile(recs, profile)
    if TRACE:
        print("  before %s, target %s; router states (s after the decision):" % (before, target))
        for (t, colors), (_t, raw) in zip(poller.rows, poller.raw):
            print("   %+8.3f %s %s" % (t - (decision or started), colors, raw))
    return fig


def rollback(fleet, inventory, env, to_version, from_version, work, label, profile):
    address = fleet.haproxy_admin_tcp
    before = live_colors(read_servers(address))
    target = {h: ("green" if c == "blue" else "blue") for h, c in before.items()}
    with RouterLoop(fleet.router_url + "/health") as loop, StatePoller(address) as poller:
        time.sleep(0.5)
        started = time.time()
        result = benchlib.run_playbook(ROOT / "playbooks" / "rollback.yml", inventory,
                                       {"deploy_hosts": ",".join(HOSTS), "rollback_to": to_version},
                                       counts=work / ("%s.jsonl" % label), env=env)
        time.sleep(0.5)
    if not result.ok:
        raise SystemExit("rollback to %s failed:\n%s" % (to_version, result.output[-5000:]))
    recs = result.records
    all_back = poller.reached(target, since=started)
    last_new = loop.last_of(from_version, since=started)
    switches = [r for r in recs if r["kind"] == "result" and r.get("switch_ms") is not None]
    # Per host: when its switching module started (worker side) and when it switched (`at`).
    timeline = {}
    for rec in switches:
        runs = [e for e in recs if e["kind"] == "exec" and e["host"] == rec["host"] and e["task"] == rec["task"]]
        at = datetime.datetime.strptime(rec["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp() if rec.get("at") else None
        timeline[rec["host"]] = (runs[0]["t"] - started if runs else None, at - started if at else None,
                                 rec["t"] - started)
    fig = {
        "wall": result.wall, "cpu": result.cpu, "requests": len([r for r in loop.rows if r[0] >= started]),
        "failed": loop.failed(since=started),
        "switch_ms": [r["switch_ms"] for r in switches],
        "switch_tasks": sorted({r["task"].split(" : ")[-1] for r in switches}),
        "start_to_all_back": all_back - started if all_back else None,
        "start_to_last_new": last_new - started if last_new else None,
        "first_task_at": task_time(recs, "") - started if recs else None, "timeline": timeline,
        "summary": benchlib.summarize(recs, "h1"), "records": recs,
    }
    if profile:
        benchlib.print_profile(recs, profile, started_at=started)
    if TRACE:
        print("  before %s, target %s; router states (s after the start):" % (before, target))
        for t, colors in poller.rows:
            print("   %+8.3f %s" % (t - started, colors))
    return fig


def fmt(value, pattern="%.2f"):
    return "-" if value is None else pattern % value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--router-access", choices=["tcp", "socket"], default="tcp")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="the N slowest tasks of every run")
    parser.add_argument("--force", action="store_true", help="run even while a pytest session uses the fleet")
    parser.add_argument("--keep", action="store_true", help="leave the app on the hosts (and the database)")
    parser.add_argument("--trace", action="store_true", help="print every change of the router's server states")
    args = parser.parse_args()
    global TRACE  # pylint: disable=global-statement
    TRACE = args.trace
    base = fleet_script.fleet_dir()
    state = fleet_script.load_state(base)
    missing = [h for h in HOSTS + [fleet_script.ROUTER] if h not in state.get("hosts", {})]
    if missing:
        raise SystemExit("fleet hosts %s are not up: scripts/fleet_hosts.py up --hosts 4 --router" % ", ".join(missing))
    users = fleet_in_use(base)
    if users and not args.force:
        raise SystemExit("pytest sessions %s use the fleet (same hosts and ports): run later, or --force" % users)
    fleet = Fleet(state, base)
    sb = sandbox_script.load()
    work = Path(tempfile.mkdtemp(prefix="bench-ssh-"))
    reports = work / "reports"
    reports.mkdir()
    env = {"PRODREADY_REPORT_DIR": str(reports)}
    db = create_app_db(sb, "bench_ssh_")
    print("cpus %d, load average before: %s; router access %s" % (os.cpu_count(), benchlib.load_text(), args.router_access))
    rows = []
    try:
        dist = work / "dist"
        for version, variant in (("1.0.0", "base"), ("1.1.0", "good")):
            demo_app.build(version, variant, dist)
        prepare_hosts(fleet)
        inventory = work / "inventory"
        (inventory / "group_vars").mkdir(parents=True)
        shutil.copy(fleet.inventory, inventory / "hosts.yml")
        (inventory / "group_vars" / "app.yml").write_text(yaml.safe_dump(group_vars(fleet, sb, db, dist, args.router_access)))
        first = benchlib.run_playbook(ROOT / "playbooks" / "deploy.yml", inventory,
                                      {"deploy_hosts": ",".join(HOSTS), "deploy_preflight": False, "app_version": "1.0.0"},
                                      counts=work / "first.jsonl", env=env)
        if not first.ok:
            raise SystemExit("first deploy failed:\n" + first.output[-5000:])
        print("first deploy of 1.0.0 to %d hosts: %.1f s" % (len(HOSTS), first.wall))
        for number in range(1, args.rounds + 1):
            ping_s, empty_s = baselines(fleet, inventory, work, env)
            up = upgrade(fleet, inventory, env, "1.1.0", "1.0.0", work, "up%d" % number, args.profile)
            back = rollback(fleet, inventory, env, "1.0.0", "1.1.0", work, "rb%d" % number, args.profile)
            rows.append((number, ping_s, empty_s, up, back))
            print("round %d (load %s): ping %.2f s, empty playbook %.2f s" % (number, benchlib.load_text(), ping_s, empty_s))
            print("  upgrade: %.1f s, %d requests, %d failed; switch_ms %s; decision -> all hosts' new server alone "
                  "ready %s s (switch task start -> %s s); decision -> last old response %s s; module calls on h1 %d"
                  % (up["wall"], up["requests"], len(up["failed"]), fmt(up["switch_ms"], "%.1f"),
                     fmt(up["decision_to_all_new"]), fmt(up["switch_task_to_all_new"]), fmt(up["decision_to_last_old"]),
                     up["summary"]["module_calls"]))
            print("  rollback: %.1f s, %d requests, %d failed; start -> all hosts back %s s (%.2fx ping); start -> last "
                  "new response %s s; switch_ms %s (%s); first task at %s s; module calls on h1 %d"
                  % (back["wall"], back["requests"], len(back["failed"]), fmt(back["start_to_all_back"]),
                     (back["start_to_all_back"] or float("nan")) / ping_s, fmt(back["start_to_last_new"]),
                     back["switch_ms"], ", ".join(back["switch_tasks"]), fmt(back["first_task_at"]),
                     back["summary"]["module_calls"]))
            print("  rollback per host: switching module started / switched / result back at (s after the start): "
                  + "; ".join("%s %s / %s / %s" % (h, fmt(a), fmt(b), fmt(c)) for h, (a, b, c) in sorted(back["timeline"].items())))
            if up["failed"] or back["failed"]:
                print("  failed requests: %s" % (up["failed"][:10] + back["failed"][:10]))
    finally:
        if not args.keep:
            clean_hosts(fleet)
            drop_db(sb, db)
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| round | ping 4 hosts (s) | empty playbook (s) | upgrade (s) | switch_ms | decision -> all new (s) | "
          "switch task -> all new (s) | decision -> last old response (s) | failed / requests | rollback (s) | "
          "start -> all back (s) | / ping | start -> last new response (s) | failed / requests |")
    print("|---" * 14 + "|")
    for number, ping_s, empty_s, up, back in rows:
        print("| %d | %.2f | %.2f | %.1f | %s | %s | %s | %s | %d / %d | %.1f | %s | %s | %s | %d / %d |" % (
            number, ping_s, empty_s, up["wall"], fmt(up["switch_ms"], "%.0f"), fmt(up["decision_to_all_new"]),
            fmt(up["switch_task_to_all_new"]), fmt(up["decision_to_last_old"]), len(up["failed"]), up["requests"],
            back["wall"], fmt(back["start_to_all_back"]),
            fmt(back["start_to_all_back"] / ping_s if back["start_to_all_back"] else None),
            fmt(back["start_to_last_new"]), len(back["failed"]), back["requests"]))
    if rows:
        up_worst = max((r[3]["decision_to_all_new"] or float("inf")) for r in rows)
        back_worst = max((r[4]["start_to_all_back"] or float("inf")) for r in rows)
        failed = sum(len(r[3]["failed"]) + len(r[4]["failed"]) for r in rows)
        print()
        print("bars: fleet switch within 2 s of the decision: %s (worst %.2f s); warm rollback within 2 s of the "
              "playbook start: %s (worst %.2f s); 0 failed requests: %s (%d)" % (
                  "met" if up_worst <= 2 else "NOT met", up_worst, "met" if back_worst <= 2 else "NOT met", back_worst,
                  "met" if failed == 0 else "NOT met", failed))
        print("upgrade module calls run for h1 (last round; run_once and delegated ones included):")
        benchlib.print_calls(rows[-1][3]["summary"])
        print("rollback module calls on h1 (last round):")
        benchlib.print_calls(rows[-1][4]["summary"])


if __name__ == "__main__":
    main()
