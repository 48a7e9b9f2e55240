"""Benchmark: what one upgrade deploy on one host costs in module calls, controller-side tasks
and wall time.

    .venv/bin/python bench/upgrade_cost.py [--rounds 3] [--slot s16] [--profile N]

DESIGN.md quality bar: "An upgrade on one host: <= 15 module calls and <= 30 controller-side
tasks (every module call costs ~0.2-0.6 s of Ansible overhead whatever it does)".

Each round, on one simulated host (`ansible_connection: local`, as in
tests/integration/test_blue_green.py: own app root, a fresh database, the colors on a
haproxy slot of the sandbox, supervisor), deploys the sample app 1.0.0 (not measured), then
upgrades it to 1.1.0 (a release with a migration: backup, release build, migration, idle
color started and gated, haproxy switch, live gate, finalize) through playbooks/deploy.yml,
counted by bench/callbacks/task_counts.py:

- module calls: modules run on the host (each loop item and each module an action plugin
  runs counts: `template` is stat + copy);
- module tasks: tasks with a module action that ran (skipped ones counted apart);
- controller tasks: set_fact, debug, assert, fail, include_*/import_*, meta,
  validate_argument_spec... that ran (skipped ones counted apart).

Baselines in the same run, same inventory: an empty playbook (ansible's start-up) and a
playbook of 10 `ping` tasks (the cost of one module call here); the upgrade's wall time is
printed as a ratio to the empty playbook. Nothing is asserted.
"""

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

import benchlib
from benchlib import ROOT

import demo_app  # noqa: E402  scripts/demo_app.py
import sandbox as sandbox_script  # noqa: E402  scripts/sandbox.py
from apptools import create_app_db, drop_db  # noqa: E402  tests/integration/apptools.py

APP = "benchup"
PINGS = 10


def host_vars(sb, slot, root, dist, db):
    pg, sup, haproxy = (sb["services"][k] for k in ("postgres", "supervisor", "haproxy"))
    secret = sb["secrets"]
    url = "postgresql+psycopg2://%s:%s@%s:%s/%s" % (pg["app_user"], secret["app_db_password"], pg["host"], pg["port"], db)
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
        "app_name": APP,
        "app_root": str(root),
        "blue_green_artifact_src": str(dist) + "/sampleapp-{{ blue_green_version }}.tar.gz",
        "blue_green_pip_extra_args": "--no-index --find-links %s/.cache/wheels" % ROOT,
        "app_start_command": "{{ app_venv }}/bin/python -m sampleapp --port {{ app_port }}",
        "app_colors": {color: {"port": port} for color, port in slot["servers"].items()},
        "app_process_manager": "supervisor",
        "app_supervisor_conf_dir": sup["programs_dir"],
        "app_supervisorctl": str(ROOT / ".venv" / "bin" / "supervisorctl"),
        "app_supervisor_config": sup["config"],
        "app_router": "haproxy",
        "app_haproxy_admin_socket": haproxy["admin_socket"],
        "app_haproxy_backend": slot["backend"],
        "app_router_url": "http://127.0.0.1:%d" % slot["port"],
        "app_database": {"db": db, "login_host": pg["host"], "login_port": pg["port"],
                         "login_user": pg["app_user"], "login_password": secret["app_db_password"]},
        "app_database_url": url,
        "blue_green_shared_env": {"DATABASE_URL": url, "REDIS_URL": demo_app.redis_url(sb, 9),
                                  "CACHE_PREFIX": APP + "_", "DEBUG": "false"},
        "blue_green_row_count_tables": ["purchase_orders"],
        "blue_green_db_rollback": "downgrade",
        "blue_green_gate_idle": {"requests": 10, "concurrency": 2, "max_error_rate": 0.0,
                                 "max_latency_ms": {"p95": 5000}},
        "blue_green_gate_live": {"requests": 20, "concurrency": 2, "max_error_rate": 0.0,
                                 "max_latency_ms": {"p95": 5000}},
        "app_start_timeout": 120,
    }


def retire(sb, slot):
    sup = sb["services"]["supervisor"]
    ctl = [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", sup["config"]]
    for color in ("blue", "green"):
        subprocess.run(ctl + ["stop", "%s-%s" % (APP, color)], capture_output=True, check=False)
        Path(sup["programs_dir"], "%s-%s.conf" % (APP, color)).unlink(missing_ok=True)
        demo_app.haproxy_cmd(sb, "set server %s/%s state maint" % (slot["backend"], color))
    subprocess.run(ctl + ["update", APP + "-blue", APP + "-green"], capture_output=True, check=False)


def one_round(sb, slot, base, dist, number, reports):
    """First deploy (not measured), baselines, then the measured upgrade; a dict of figures."""
    work = base / ("round%d" % number)
    work.mkdir()
    db = create_app_db(sb, "bench_up_")
    inventory = work / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"up1": host_vars(sb, slot, work / "srv", dist, db)}}}))
    env = {"PRODREADY_REPORT_DIR": str(reports)}
    extra = {"deploy_hosts": "all"}
    try:
        first = benchlib.run_playbook(ROOT / "playbooks" / "deploy.yml", inventory, dict(extra, app_version="1.0.0"),
                                      counts=work / "first.jsonl", env=env)
        if not first.ok:
            raise SystemExit("first deploy failed:\n" + first.output[-4000:])
        empty = benchlib.run_playbook(benchlib.empty_playbook(work), inventory, env=env)
        pings = benchlib.run_playbook(benchlib.ping_playbook(work, PINGS), inventory, env=env)
        upgrade = benchlib.run_playbook(ROOT / "playbooks" / "deploy.yml", inventory, dict(extra, app_version="1.1.0"),
                                        counts=work / "upgrade.jsonl", env=env)
        if not upgrade.ok:
            raise SystemExit("upgrade failed:\n" + upgrade.output[-4000:])
        return {"first": first, "empty": empty, "pings": pings, "upgrade": upgrade,
                "summary": benchlib.summarize(upgrade.records, "up1"),
                "first_summary": benchlib.summarize(first.records, "up1")}
    finally:
        retire(sb, slot)
        drop_db(sb, db)


def role_of(task_name):
    """`prodready.deploy.blue_green : Take the lock` -> `blue_green`; a play's own task -> `(play)`."""
    head, sep, _rest = task_name.partition(" : ")
    return head.rsplit(".", 1)[-1] if sep else "(play)"


def print_breakdown(records):
    """Per role: module calls and controller tasks; the controller tasks run and skipped, by name."""
    results = [r for r in records if r["kind"] == "result" and r["host"] == "up1"]
    execs = [r for r in records if r["kind"] == "exec" and r["host"] == "up1"]
    roles = sorted({role_of(r["task"]) for r in results})
    for role in roles:
        ctl = [r for r in results if role_of(r["task"]) == role and benchlib.is_controller(r["action"])]
        print("  %-12s module calls %2d, controller tasks %2d run / %2d skipped" % (
            role, len([e for e in execs if role_of(e["task"]) == role]),
            len([r for r in ctl if r["status"] != "skipped"]), len([r for r in ctl if r["status"] == "skipped"])))
    by_action = {}
    for rec in results:
        if benchlib.is_controller(rec["action"]) and rec["status"] != "skipped":
            key = benchlib.short_action(rec["action"])
            by_action[key] = by_action.get(key, 0) + 1
    print("controller tasks run, by action: " + ", ".join(
        "%s %d" % kv for kv in sorted(by_action.items(), key=lambda kv: -kv[1])))
    for status, title in (("run", "controller tasks run"), ("skipped", "controller tasks skipped")):
        print(title + ", in order:")
        for rec in results:
            if benchlib.is_controller(rec["action"]) and (rec["status"] == "skipped") == (status == "skipped"):
                print("    %-22s %s" % (benchlib.short_action(rec["action"]), rec["task"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slot", default="s16", help="the sandbox's haproxy slot (default s16: no test uses it)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N slowest tasks of each upgrade")
    args = parser.parse_args()
    sb = sandbox_script.load()
    slot = sb["services"]["haproxy"]["slots"][args.slot]
    base = Path(tempfile.mkdtemp(prefix="bench-upgrade-"))
    reports = base / "reports"
    reports.mkdir()
    print("cpus %d, load average before: %s" % (os.cpu_count(), benchlib.load_text()))
    try:
        demo_app.ensure_wheels()
        dist = base / "dist"
        for version, variant in (("1.0.0", "base"), ("1.1.0", "good")):
            demo_app.build(version, variant, dist)
        rounds = []
        for number in range(1, args.rounds + 1):
            fig = one_round(sb, slot, base, dist, number, reports)
            rounds.append(fig)
            summ, up = fig["summary"], fig["upgrade"]
            per_ping = (fig["pings"].wall - fig["empty"].wall) / PINGS
            print("round %d (load %s): upgrade %.2f s, empty playbook %.2f s, ratio %.2f; one module call ~%.2f s "
                  "(10 pings %.2f s); module calls %d, controller tasks %d run / %d skipped; CPU %.2f s"
                  % (number, benchlib.load_text(), up.wall, fig["empty"].wall, up.wall / fig["empty"].wall, per_ping,
                     fig["pings"].wall, summ["module_calls"], summ["controller"], summ["controller_skipped"], up.cpu))
            if args.profile:
                benchlib.print_profile(up.records, args.profile)
        print()
        print("| round | module calls | module tasks run / skipped | controller tasks run / skipped | "
              "wall (s) | empty playbook (s) | ratio | one module call (s) | CPU (s) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for number, fig in enumerate(rounds, 1):
            summ, up = fig["summary"], fig["upgrade"]
            print("| %d | %d | %d / %d | %d / %d | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
                number, summ["module_calls"], summ["module_tasks"], summ["module_tasks_skipped"], summ["controller"],
                summ["controller_skipped"], up.wall, fig["empty"].wall, up.wall / fig["empty"].wall,
                (fig["pings"].wall - fig["empty"].wall) / PINGS, up.cpu))
        summ = rounds[-1]["summary"]
        print()
        print("bars: module calls %d (<= 15: %s), controller tasks %d (<= 30: %s)" % (
            summ["module_calls"], "met" if summ["module_calls"] <= 15 else "NOT met",
            summ["controller"], "met" if summ["controller"] <= 30 else "NOT met"))
        print("module calls of the upgrade (last round), in order:")
        benchlib.print_calls(summ)
        first = rounds[-1]["first_summary"]
        print("for reference, the first deploy: %d module calls, %d controller tasks run / %d skipped" % (
            first["module_calls"], first["controller"], first["controller_skipped"]))
        print_breakdown(rounds[-1]["upgrade"].records)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
