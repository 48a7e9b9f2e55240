"""Benchmark: controller CPU of a deploy to 1, 4 and 16 simulated hosts, per added host.

    .venv/bin/python bench/fleet_cpu.py [--rounds 3] [--sizes 1,4,16] [--forks 16] [--profile N]

DESIGN.md quality bar: "Controller CPU per added host <= 1 s".

Each round deploys the sample app 1.0.0 (a first deploy through playbooks/deploy.yml, one
play, no `serial`) to 1, 4 and 16 hosts simulated as in bench/fleet_deploy.py (whose host
variables this reuses): `ansible_connection: local`, each host its own app root, colors on
their own ports (27300 and up) and supervisor programs, one shared database per deploy
(backup and migration once, run_once), `app_router: none`, one prebuilt venv.

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
import sys
import uuid
from pathlib import Path

import yaml

import benchlib
from benchlib import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet_deploy  # noqa: E402  bench/fleet_deploy.py: host variables, retire
import demo_app  # noqa: E402  scripts/demo_app.py
from apptools import create_app_db, drop_db  # noqa: E402  tests/integration/apptools.py


def deploy(sb, base, label, count, dist, venv, forks, reports):
    db = create_app_db(sb, "bench_cpu_")
    names = ["bc%s%02d" % (label, i) for i in range(count)]
    hosts = {name: fleet_deploy.host_vars(sb, name, base / label / name, dist, db, fleet_deploy.BASE_PORT + 2 * i, venv)
             for i, name in enumerate(names)}
    inventory = base / ("%s.yml" % label)
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    env = {"ANSIBLE_FORKS": str(forks), "PRODREADY_REPORT_DIR": str(reports)}
    try:
        result = benchlib.run_playbook(ROOT / "playbooks" / "deploy.yml", inventory,
                                       {"app_version": "1.0.0", "deploy_hosts": "all"},
                                       counts=base / ("%s.jsonl" % label), env=env)
        if not result.ok:
            raise SystemExit("deploy to %d hosts failed:\n%s" % (count, result.output[-5000:]))
        return result
    finally:
        fleet_deploy.retire(sb, names)
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
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="the N slowest tasks of each largest deploy")
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
    print("cpus %d, load average before: %s" % (os.cpu_count(), benchlib.load_text()))
    rows = []
    for number in range(1, args.rounds + 1):
        for count in sizes:
            result = deploy(sb, base, "r%dn%d" % (number, count), count, dist, venv, args.forks, reports)
            fig = split(result)
            rows.append((number, count, fig))
            print("round %d, %2d hosts (load %s): wall %.1f s, CPU %.2f s = controller %.2f (main process %.2f, "
                  "%d workers %.2f) + modules %.2f; %d module calls" % (
                      number, count, benchlib.load_text(), fig["wall"], fig["total"], fig["controller"], fig["main"],
                      fig["forks"], fig["workers"], fig["modules"], fig["calls"]))
            if args.profile and count == max(sizes):
                benchlib.print_profile(result.records, args.profile)
                benchlib.print_cpu_profile(result.records, args.profile)
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
