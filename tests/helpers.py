"""Helpers for integration tests: run a module or a playbook through real ansible."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def ansible_env(extra=None):
    """Environment for ansible commands: this checkout's collection, state kept local."""
    env = dict(os.environ)
    env.update({
        "PATH": "%s:%s" % (ROOT / ".venv" / "bin", env.get("PATH", "")),
        "ANSIBLE_HOME": str(ROOT / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(ROOT / ".ansible" / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(ROOT / ".ansible" / "tmp"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": str(ROOT / ".venv" / "bin" / "python"),
    })
    env.update(extra or {})
    return env


def run_playbook(playbook, inventory=None, extra_vars=None, check=False, diff=False,
                 verbosity=0, env=None, timeout=600, kill_at=None):
    """Run `ansible-playbook`; returns the CompletedProcess (stdout, stderr, returncode).

    Two more attributes: `output` (stdout + stderr) and `flat` (the same with every run of
    whitespace made one space). `kill_at`: SIGKILL ansible-playbook when a line of its
    output holds this text (a fault test's controller crash). Assert on messages in `flat`: the yaml result format folds
    long strings at 80 columns, wherever their words happen to fall.
    """
    argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(playbook)]
    argv += ["-i", str(inventory) if inventory else "localhost,"]
    vars_file = None
    if extra_vars:
        # Extra vars go through a 0600 file, never argv, so secrets in them stay out of `ps`.
        fd, vars_file = tempfile.mkstemp(suffix=".json", prefix="extra-vars-")
        with os.fdopen(fd, "w") as fh:
            json.dump(extra_vars, fh)
        argv += ["-e", "@" + vars_file]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if verbosity:
        argv.append("-" + "v" * verbosity)
    try:
        if kill_at:
            proc = _run_until(argv, env, timeout, kill_at)
        else:
            proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(env),
                                  timeout=timeout, cwd=str(ROOT), check=False)
        proc.output = proc.stdout + proc.stderr
        proc.flat = " ".join(proc.output.split())
        return proc
    finally:
        if vars_file:
            os.unlink(vars_file)


def _run_until(argv, env, timeout, marker):
    """ansible-playbook SIGKILLed as soon as a line of its output holds `marker` (a task's
    banner: the controller dies as that task starts); a CompletedProcess like subprocess.run's."""
    import signal
    import threading

    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=ansible_env(env), cwd=str(ROOT))
    timer = threading.Timer(timeout, child.kill)
    timer.start()
    lines = []
    try:
        for line in child.stdout:
            lines.append(line)
            if marker in line:
                os.kill(child.pid, signal.SIGKILL)
                break
        lines.extend(child.stdout.readlines())
        child.wait()
    finally:
        timer.cancel()
    return subprocess.CompletedProcess(argv, child.returncode, "".join(lines), "")


def run_module(module, args, check=False, diff=False, verbosity=0, env=None,
               module_env=None, timeout=600):
    """Run one module task on localhost through ansible-playbook, return its result dict.

    `args` go into a temporary playbook file (not argv). `module_env` becomes the task's
    `environment:`. The returned dict has the module's keys plus `failed`, `msg`, and
    `_stdout` (the whole ansible output, to assert that secrets never appear in it).
    """
    short = module if "." in module else "prodready.deploy." + module
    task = {"name": "module under test", short: args, "register": "result",
            "ignore_errors": True}
    if module_env:
        task["environment"] = module_env
    play = [{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "tasks": [task, {"name": "dump result", "ansible.builtin.copy": {
            "content": "{{ result | to_json }}", "dest": "{{ result_path }}", "mode": "0600"},
            "check_mode": False, "diff": False}],
    }]
    with tempfile.TemporaryDirectory(prefix="run-module-") as tmp:
        pb = Path(tmp) / "play.yml"
        pb.write_text(yaml.safe_dump(play))
        result_path = Path(tmp) / "result.json"
        proc = run_playbook(pb, extra_vars={"result_path": str(result_path)}, check=check,
                            diff=diff, verbosity=verbosity, env=env, timeout=timeout)
        if not result_path.exists():
            raise AssertionError("playbook did not run the module:\n%s\n%s" % (proc.stdout, proc.stderr))
        result = json.loads(result_path.read_text())
    result["_stdout"] = proc.stdout + proc.stderr
    return result
