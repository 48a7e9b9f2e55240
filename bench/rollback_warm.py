#!/usr/bin/env python
"""Benchmark: playbooks/rollback.yml to a warm color on one host (DESIGN "Quality bars").

    .venv/bin/python bench/rollback_warm.py [--rounds 3] [--slot s1]

Deploys the sample app 1.0.0 then 1.1.0 (no database) with playbooks/deploy.yml into a
temporary app root behind haproxy slot --slot, then rolls back and forth between the two
warm colors (`rollback_to`, `rollback_old_color: warm`) --rounds times while a thread polls
the router every 5 ms. For each round it prints:
- switch_s: from the rollback playbook's start until the router first serves the target
  version (target <= 2 s);
- total_s: the playbook end to end (target <= 10 s);
- the baseline: an empty playbook's run time on the same machine (ansible's own start-up),
  and the ratios to it and to the targets. Nothing is asserted.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

import demo_app  # noqa: E402
from helpers import ansible_env  # noqa: E402


def playbook(path, inventory, extra, times=None):
    """Start ansible-playbook; with `times`, each task's wall time goes to that file."""
    argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(path), "-i", str(inventory),
            "-e", json.dumps(extra)]
    env = ansible_env(None)
    if times:
        env.update(ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "bench" / "callbacks"), PRODREADY_TASK_TIMES=str(times),
                   ANSIBLE_CALLBACKS_ENABLED="prodready.deploy.deploy_report,task_times")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(ROOT))


def print_profile(times, top):
    """The `top` slowest tasks of a run and the time before the first task."""
    rows = [json.loads(line) for line in Path(times).read_text().splitlines()]
    if not rows:
        return
    print("  first task starts at %.2f s; %d tasks, %.2f s in tasks" % (
        rows[0]["start_s"], len(rows), sum(r["seconds"] for r in rows)))
    for row in sorted(rows, key=lambda r: -r["seconds"])[:top]:
        print("  %6.3f s at %6.2f  %-32s %s" % (row["seconds"], row["start_s"], row["action"], row["task"]))


def first_served(url, version, started, stop, out):
    session = requests.Session()
    while not stop.is_set():
        try:
            if session.get(url, timeout=2).json().get("version") == version:
                out.append(time.perf_counter() - started)
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.005)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slot", default="s1")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the N slowest tasks of each rollback (bench/callbacks/task_times.py)")
    args = parser.parse_args()
    sandbox_dir = Path(os.environ.get("PRODREADY_SANDBOX_DIR", ROOT / ".sandbox"))
    info = json.loads((sandbox_dir / "sandbox.json").read_text())
    haproxy, sup = info["services"]["haproxy"], info["services"]["supervisor"]
    slot = haproxy["slots"][args.slot]
    base = Path(tempfile.mkdtemp(prefix="bench-rollback-"))
    app = "benchrb"
    try:
        demo_app.ensure_wheels()
        for version in ("1.0.0", "1.1.0"):
            demo_app.build(version, "base", base / "dist")
        router = "http://127.0.0.1:%d" % slot["port"]
        host = {
            "ansible_connection": "local", "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
            "app_name": app, "app_root": str(base / "srv"),
            "blue_green_artifact_src": str(base / "dist") + "/sampleapp-{{ blue_green_version }}.tar.gz",
            "blue_green_pip_extra_args": f"--no-index --find-links {ROOT}/.cache/wheels",
            "app_start_command": "{{ app_venv }}/bin/python -m sampleapp --port {{ app_port }}",
            "app_colors": {c: {"port": p} for c, p in slot["servers"].items()},
            "app_process_manager": "supervisor", "app_supervisor_conf_dir": sup["programs_dir"],
            "app_supervisorctl": str(ROOT / ".venv" / "bin" / "supervisorctl"),
            "app_supervisor_config": sup["config"], "app_router": "haproxy",
            "app_haproxy_admin_socket": haproxy["admin_socket"], "app_haproxy_backend": slot["backend"],
            "app_router_url": router, "app_database": {}, "app_ready_path": "",
            "blue_green_gate_idle": {"requests": 5}, "blue_green_gate_live": {"requests": 10},
            "rollback_old_color": "warm",
        }
        inventory = base / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {"bench1": host}}}))
        for version in ("1.0.0", "1.1.0"):
            proc = playbook(ROOT / "playbooks" / "deploy.yml", inventory, {"app_version": version, "deploy_hosts": "all"})
            out = proc.communicate()[0]
            if proc.returncode:
                sys.exit("deploy %s failed:\n%s" % (version, out[-3000:]))

        empty = base / "empty.yml"
        empty.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.meta: noop\n")
        started = time.perf_counter()
        playbook(empty, inventory, {}).communicate()
        baseline = time.perf_counter() - started

        print("baseline (empty playbook): %.2f s" % baseline)
        targets = ["1.0.0", "1.1.0"]
        for round_no in range(args.rounds):
            target = targets[round_no % 2]
            seen, stop = [], threading.Event()
            started = time.perf_counter()
            poller = threading.Thread(target=first_served, args=(router + "/health", target, started, stop, seen))
            poller.start()
            times = base / ("times-%d.jsonl" % round_no) if args.profile else None
            proc = playbook(ROOT / "playbooks" / "rollback.yml", inventory,
                            {"deploy_hosts": "all", "rollback_to": target}, times)
            out = proc.communicate()[0]
            total = time.perf_counter() - started
            stop.set()
            poller.join()
            if proc.returncode:
                sys.exit("rollback to %s failed:\n%s" % (target, out[-3000:]))
            switch = seen[0] if seen else float("nan")
            print("round %d -> %s: switch_s %.2f (target 2 s, ratio %.2f), total_s %.2f (target 10 s, ratio %.2f), "
                  "total/baseline %.2f" % (round_no + 1, target, switch, switch / 2.0, total, total / 10.0,
                                           total / baseline))
            if times:
                print_profile(times, args.profile)
    finally:
        ctl = [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", sup["config"]]
        for color in ("blue", "green"):
            subprocess.run(ctl + ["stop", "%s-%s" % (app, color)], capture_output=True, check=False)
            Path(sup["programs_dir"], "%s-%s.conf" % (app, color)).unlink(missing_ok=True)
            demo_app.haproxy_cmd(info, "set server %s/%s state maint" % (slot["backend"], color))
        subprocess.run(ctl + ["update"], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
