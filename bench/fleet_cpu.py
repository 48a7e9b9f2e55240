"""Benchmark: controller CPU of a deploy to 1, 4 and 16 simulated hosts, per added host.

    .venv/bin/python bench/fleet_cpu.py [--rounds 3] [--sizes 1,4,16] [--forks 16] [--profile N]

DESIGN.md quality bar: "Controller CPU per added host <= 1 s".

Each round deploys the sample app 1.0.0 (a first deploy through playbooks/deploy.yml, one
play, no `serial`) to 1, 4 and 16 hosts simulated as in bench/fleet_deploy.py (whose host
variables this reuses): `ansible_connection: local`, each host its own app root, colors on
their own ports (27300 and up) and supervisor programs, one shared database per deploy
(backup and migration once, run_once), one prebuilt venv. The router (`--router haproxy`,
the default): a private haproxy started by this script (admin socket in its temporary
directory, frontend 127.0.0.1:27290) whose one backend holds every host's two colors
(servers <host>-blue / <host>-green, `app_haproxy_server_prefix`), as the fleet's router
host does; each host switches its own servers. `--router none` uses bench/fleet_deploy.py's
`app_router: none` (the live gate requests the new color directly).

CPU is user + system time of ansible-playbook and every process it waited for
(resource.getrusage(RUSAGE_CHILDREN) around the run). With `ansible_connection: local` the
modules themselves run on this machine too, so the total is split with
bench/callbacks/task_counts.py, which times the CPU of each module run in the worker that
ran it:

- controller: ansible-playbook's own process and its forked workers (templating, the
  strategy, callbacks, building each module's payload) — what stays on the controller of
  a real fleet;
- modules: the module processes (and the few shell commands around them) — on a real
  fleet they run on each host's CPU.

Per added host = (CPU(16) - CPU(1)) / 15, and the least-squares slope over every run.
Nothing is asserted.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

import benchlib
from benchlib import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet_deploy  # noqa: E402  bench/fleet_deploy.py: host variables, retire
import demo_app  # noqa: E402  scripts/demo_app.py
from apptools import create_app_db, drop_db  # noqa: E402  tests/integration/apptools.py


ROUTER_PORT = 27290
BACKEND = "be_bench"


class Router:
    """A private haproxy: one backend with `slots` hosts' two colors, h00-blue on 27300,
    h00-green on 27301, ... (green in maintenance at first, as the fleet's router)."""

    def __init__(self, base, slots):
        self.dir = base / "haproxy"
        self.dir.mkdir()
        self.socket = self.dir / "admin.sock"
        self.pidfile = self.dir / "haproxy.pid"
        servers = "\n".join(
            "    server h%02d-%s 127.0.0.1:%d check%s" % (
                i, color, fleet_deploy.BASE_PORT + 2 * i + offset, " disabled" if color == "green" else "")
            for i in range(slots) for offset, color in enumerate(("blue", "green")))
        (self.dir / "haproxy.cfg").write_text(
            "global\n    pidfile %s\n    stats socket %s mode 600 level admin\n    stats timeout 30s\n"
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n"
            "    timeout check 2s\n    option redispatch\n    retries 2\n"
            "frontend fe_bench\n    bind 127.0.0.1:%d\n    default_backend %s\n"
            "backend %s\n    balance roundrobin\n    option httpchk GET /health\n    http-check expect status 200\n"
            "    default-server inter 500 fall 2 rise 1\n%s\n" % (self.pidfile, self.socket, ROUTER_PORT, BACKEND,
                                                                  BACKEND, servers))

    def __enter__(self):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", ROUTER_PORT)) == 0:
                raise SystemExit("port %d is taken: another bench/fleet_cpu.py running?" % ROUTER_PORT)
        haproxy = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/sbin:/bin")
        subprocess.run([haproxy, "-D", "-f", str(self.dir / "haproxy.cfg"), "-p", str(self.pidfile)], check=True)
        deadline = time.monotonic() + 10
        while not self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        try:
            os.kill(int(self.pidfile.read_text().split()[0]), signal.SIGTERM)
        except (OSError, ValueError):
            pass

    def reset(self, count):
        """Every host's blue ready, green in maintenance (the state before a first deploy)."""
        commands = ";".join("set server %s/h%02d-blue state ready;set server %s/h%02d-green state maint"
                            % (BACKEND, i, BACKEND, i) for i in range(count))
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket))
            sock.sendall(commands.encode() + b"\n")
            sock.recv(65536)


class NoRouter:
    """`--router none`: the hosts have no router."""

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def deploy(sb, base, label, count, dist, venv, forks, reports, router, cprofile=None, counts=True):
    db = create_app_db(sb, "bench_cpu_")
    names = ["h%02d" % i for i in range(count)]
    hosts = {}
    if router:
        router.reset(count)
    for i, name in enumerate(names):
        values = fleet_deploy.host_vars(sb, "bc" + name, base / label / name, dist, db, fleet_deploy.BASE_PORT + 2 * i, venv)
        if router:
            values.update(app_router="haproxy", app_haproxy_admin_socket=str(router.socket), app_haproxy_backend=BACKEND,
                          app_haproxy_server_prefix="{{ inventory_hostname }}-",
                          app_router_url="http://127.0.0.1:%d" % ROUTER_PORT)
        hosts[name] = values
    inventory = base / ("%s.yml" % label)
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    env = {"ANSIBLE_FORKS": str(forks), "PRODREADY_REPORT_DIR": str(reports)}
    try:
        result = benchlib.run_playbook(ROOT / "playbooks" / "deploy.yml", inventory,
                                       {"app_version": "1.0.0", "deploy_hosts": "all"},
                                       counts=base / ("%s.jsonl" % label) if counts else None, env=env, cprofile=cprofile)
        if not result.ok:
            lines = result.output.splitlines()
            first = next((i for i, line in enumerate(lines) if line.startswith(("fatal:", "failed:"))), len(lines))
            raise SystemExit("deploy to %d hosts failed; the first failure:\n%s\n...\n%s" % (
                count, "\n".join(lines[max(0, first - 3):first + 12]), result.output[-3000:]))
        return result
    finally:
        fleet_deploy.retire(sb, ["bc" + name for name in names])
        drop_db(sb, db)


def split(result):
    summ = benchlib.summarize(result.records)
    modules = summ["exec_cpu"] + summ["commands_cpu"]
    return {"total": result.cpu, "modules": modules, "controller": result.cpu - modules,
            "main": summ["stats"].get("self_cpu_s", float("nan")), "workers": summ["workers_cpu"],
            "wall": result.wall, "calls": summ["module_calls"], "forks": summ["workers"]}


def slope(points):
    """Least-squares slope of [(x, y)]."""
    n = len(points)
    mx = sum(point[0] for point in points) / n
    my = sum(point[1] for point in points) / n
    den = sum((point[0] - mx) ** 2 for point in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="1,4,16")
    parser.add_argument("--forks", type=int, default=16)
    parser.add_argument("--router", choices=["haproxy", "none"], default="haproxy")
    parser.add_argument("--no-counts", action="store_true",
                        help="without bench/callbacks/task_counts.py (its own cost): total CPU only, no split")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="the N slowest tasks of each largest deploy")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N",
                        help="then one more deploy to the most hosts, its main process under cProfile: its N top functions")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sb = fleet_deploy.sandbox()
    base = Path("/tmp") / ("bench-cpu-" + uuid.uuid4().hex[:8])
    base.mkdir()
    reports = base / "reports"
    reports.mkdir()
    dist = base / "dist"
    demo_app.build("1.0.0", "base", dist)
    venv = Path(demo_app.ensure_venv(ROOT / ".cache" / "test-app-venv",
                                     ROOT / "examples" / "app" / "requirements.txt")).parent.parent
    print("cpus %d, load average before: %s; router %s" % (os.cpu_count(), benchlib.load_text(), args.router))
    try:
        with Router(base, max(sizes)) if args.router == "haproxy" else NoRouter() as router:
            rows = measure(args, sizes, sb, base, dist, venv, reports, router)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report(args, sizes, rows)


def measure(args, sizes, sb, base, dist, venv, reports, router):
    rows = []
    for number in range(1, args.rounds + 1):
        for count in sizes:
            result = deploy(sb, base, "r%dn%d" % (number, count), count, dist, venv, args.forks, reports, router,
                            counts=not args.no_counts)
            fig = split(result)
            rows.append((number, count, fig))
            print("round %d, %2d hosts (load %s): wall %.1f s, CPU %.2f s = controller %.2f (main process %.2f, "
                  "%d workers %.2f) + modules %.2f; %d module calls" % (
                      number, count, benchlib.load_text(), fig["wall"], fig["total"], fig["controller"], fig["main"],
                      fig["forks"], fig["workers"], fig["modules"], fig["calls"]))
            if args.profile and count == max(sizes):
                benchlib.print_profile(result.records, args.profile)
                benchlib.print_cpu_profile(result.records, args.profile)
    if args.cprofile:
        count = max(sizes)
        cprofile = base / "main.prof"
        fig = split(deploy(sb, base, "prof", count, dist, venv, args.forks, reports, router, cprofile))
        print("one more deploy to %d hosts, its main process under cProfile (not in the table): wall %.1f s, CPU %.2f s, "
              "main process %.2f s" % (count, fig["wall"], fig["total"], fig["main"]))
        benchlib.print_cprofile(cprofile, args.cprofile)
    return rows


def report(args, sizes, rows):
    print()
    print("| round | hosts | wall (s) | CPU total (s) | controller (s) | main process (s) | workers' own (s) | "
          "modules (s) | module calls | workers |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for number, count, fig in rows:
        print("| %d | %d | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %d | %d |" % (
            number, count, fig["wall"], fig["total"], fig["controller"], fig["main"], fig["workers"], fig["modules"],
            fig["calls"], fig["forks"]))
    lo, hi = min(sizes), max(sizes)
    print()
    for key in ("total", "controller", "main", "workers", "modules"):
        per_round = []
        for number in range(1, args.rounds + 1):
            by = {c: f[key] for n, c, f in rows if n == number}
            per_round.append((by[hi] - by[lo]) / (hi - lo))
        fit = slope([(c, f[key]) for _n, c, f in rows])
        print("%-10s CPU per added host: %s (per round, %d -> %d hosts); least-squares slope %.2f s" % (
            key, ", ".join("%.2f" % v for v in per_round), lo, hi, fit))
    fit = slope([(c, f["controller"]) for _n, c, f in rows])
    print("bar: controller CPU per added host <= 1 s: %s (%.2f s)" % ("met" if fit <= 1.0 else "NOT met", fit))


if __name__ == "__main__":
    main()
