"""Benchmark: a blue_green deploy to 16 simulated hosts against the same deploy to one host.

    .venv/bin/python bench/fleet_deploy.py [--hosts 16] [--forks 16] [--keep]

DESIGN.md quality bar: "16 hosts deploy in <= 2x the time of one host". Both runs are a
first deploy of the sample app 1.0.0 through playbooks/deploy.yml (one play, no `serial`),
measured end to end (ansible-playbook start to exit), in the same run:
  A  1 host
  B  N hosts (`--hosts`), with `--forks` forks
and the ratio B/A is printed (target <= 2.0).

The hosts are simulated on this machine as the DESIGN describes: `ansible_connection: local`,
each with its own app root, colors on their own ports (27300 and up) and supervisor
programs. They share one database (created here as superuser, dropped at the end), so the
backup and the migration run once for the fleet (run_once, advisory lock). There are not
16 router slots in the sandbox, so the hosts use `app_router: none` (the live gate
requests the new color directly), and run the release from one prebuilt venv
(`app_release_venv`): on a real fleet every host builds its venv on its own CPU; here
16 builds would share two cores and measure pip, not the deploy.
"""

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration"), str(ROOT / "scripts")]

import demo_app  # noqa: E402  scripts/demo_app.py
import sandbox as sandbox_script  # noqa: E402  scripts/sandbox.py
import yaml  # noqa: E402
from apptools import create_app_db, drop_db  # noqa: E402
from helpers import run_playbook  # noqa: E402

BASE_PORT = 27300


def sandbox():
    """The running sandbox (PRODREADY_SANDBOX_DIR, default .sandbox) with its secrets."""
    return sandbox_script.load()


def host_vars(sb, name, root, dist, db, port, venv):
    pg = sb["services"]["postgres"]
    sup = sb["services"]["supervisor"]
    url = "postgresql+psycopg2://%s:%s@%s:%s/%s" % (pg["app_user"], sb["secrets"]["app_db_password"],
                                                    pg["host"], pg["port"], db)
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
        "app_name": name,
        "app_root": str(root),
        "blue_green_artifact_src": str(dist) + "/sampleapp-{{ blue_green_version }}.tar.gz",
        "app_release_venv": str(venv),
        "app_start_command": "{{ app_venv }}/bin/python -m sampleapp --port {{ app_port }}",
        "app_colors": {"blue": {"port": port}, "green": {"port": port + 1}},
        "app_process_manager": "supervisor",
        "app_supervisor_conf_dir": sup["programs_dir"],
        "app_supervisorctl": str(ROOT / ".venv" / "bin" / "supervisorctl"),
        "app_supervisor_config": sup["config"],
        "app_router": "none",
        "app_database": {"db": db, "login_host": pg["host"], "login_port": pg["port"],
                         "login_user": pg["app_user"], "login_password": sb["secrets"]["app_db_password"]},
        "app_database_url": url,
        "blue_green_shared_env": {"DATABASE_URL": url, "REDIS_URL": demo_app.redis_url(sb, 9),
                                  "CACHE_PREFIX": name + "_", "DEBUG": "false"},
        "blue_green_gate_idle": {"requests": 10, "concurrency": 2, "max_error_rate": 0.0,
                                 "max_latency_ms": {"p95": 5000}},
        "blue_green_gate_live": {"requests": 20, "concurrency": 2, "max_error_rate": 0.0,
                                 "max_latency_ms": {"p95": 5000}},
        "app_start_timeout": 120,
    }


def retire(sb, names):
    sup = sb["services"]["supervisor"]
    ctl = [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", sup["config"]]
    for name in names:
        for color in ("blue", "green"):
            subprocess.run(ctl + ["stop", "%s-%s" % (name, color)], capture_output=True, check=False)
            (Path(sup["programs_dir"]) / ("%s-%s.conf" % (name, color))).unlink(missing_ok=True)
    subprocess.run(ctl + ["update"], capture_output=True, check=False)


def deploy_fleet(sb, base, label, count, dist, venv, forks):
    """A first deploy of 1.0.0 to `count` hosts in a fresh database; seconds end to end."""
    db = create_app_db(sb, "bench_fleet_")
    names = ["bf%s%02d" % (label, i) for i in range(count)]
    hosts = {name: host_vars(sb, name, base / label / name, dist, db, BASE_PORT + 2 * i, venv)
             for i, name in enumerate(names)}
    inventory = base / ("%s.yml" % label)
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    try:
        started = time.monotonic()
        proc = run_playbook(ROOT / "playbooks" / "deploy.yml", inventory=inventory, timeout=3600,
                            extra_vars={"app_version": "1.0.0", "deploy_hosts": "all"},
                            env={"ANSIBLE_FORKS": str(forks)})
        elapsed = time.monotonic() - started
        if proc.returncode != 0:
            sys.exit("deploy to %d hosts failed:\n%s" % (count, (proc.stdout + proc.stderr)[-5000:]))
        return elapsed
    finally:
        retire(sb, names)
        drop_db(sb, db)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--forks", type=int, default=16)
    args = parser.parse_args()
    sb = sandbox()
    base = Path("/tmp") / ("bench-fleet-" + uuid.uuid4().hex[:8])
    base.mkdir()
    dist = base / "dist"
    demo_app.build("1.0.0", "base", dist)
    venv = Path(demo_app.ensure_venv(ROOT / ".cache" / "test-app-venv",
                                     ROOT / "examples" / "app" / "requirements.txt")).parent.parent
    print("cpus: %d, load average before: %s" % (os.cpu_count(), os.getloadavg()))
    one = deploy_fleet(sb, base, "one", 1, dist, venv, args.forks)
    many = deploy_fleet(sb, base, "many", args.hosts, dist, venv, args.forks)
    print("A  1 host:   %.1f s" % one)
    print("B  %d hosts: %.1f s (forks %d)" % (args.hosts, many, args.forks))
    print("ratio B/A = %.2f (target <= 2.0)" % (many / one))


if __name__ == "__main__":
    main()
