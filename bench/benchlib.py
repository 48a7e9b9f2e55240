"""Shared by the fleet benchmarks (upgrade_cost, fleet_cpu, fleet_ssh): run a playbook with
the bench-only callback bench/callbacks/task_counts.py, measure its wall time and the CPU of
ansible-playbook and its children, and turn the callback's lines into counts and profiles.

Not part of the collection: nothing here is imported by roles, plugins or tests.
"""

import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "scripts", ROOT / "tests", ROOT / "tests" / "integration"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from helpers import ansible_env  # noqa: E402  tests/helpers.py

# Tasks whose action runs on the controller only: no module is sent to a host.
CONTROLLER_ACTIONS = {
    "set_fact", "debug", "assert", "fail", "include_tasks", "include_role", "import_tasks",
    "import_role", "import_playbook", "validate_argument_spec", "meta", "add_host", "group_by",
    "include_vars", "set_stats", "pause", "include",
}


def short_action(action):
    """`ansible.builtin.set_fact` -> `set_fact`; collection modules keep their name."""
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if action.startswith(prefix):
            return action[len(prefix):]
    return action


def is_controller(action):
    return short_action(action) in CONTROLLER_ACTIONS


def load_text():
    return "%.2f %.2f %.2f" % os.getloadavg()


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Result:
    """A finished ansible-playbook run: rc, output, wall (s), cpu (s of it and its children),
    records (the task_counts lines, [] when not counted)."""

    def __init__(self, rc, output, wall, cpu, records):
        self.rc, self.output, self.wall, self.cpu, self.records = rc, output, wall, cpu, records

    @property
    def ok(self):
        return self.rc == 0


def start_playbook(playbook, inventory, extra=None, counts=None, env=None, argv_extra=(), cprofile=None):
    """Start ansible-playbook (extra vars through a 0600 file, never argv). With `counts` (a
    path), the task_counts callback writes there; with `cprofile` (a path), the main process
    runs under cProfile and writes its profile there (the forked workers are not in it).
    Returns (Popen, vars file or None)."""
    argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(playbook), "-i", str(inventory)]
    if cprofile:
        argv[:1] = [str(ROOT / ".venv" / "bin" / "python"), "-m", "cProfile", "-o", str(cprofile), argv[0]]
    argv += list(argv_extra)
    vars_file = None
    if extra:
        fd, vars_file = tempfile.mkstemp(suffix=".json", prefix="bench-vars-")
        with os.fdopen(fd, "w") as handle:
            json.dump(extra, handle)
        argv += ["-e", "@" + vars_file]
    more = dict(env or {})
    if counts:
        more.update(ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "bench" / "callbacks"), PRODREADY_TASK_COUNTS=str(counts),
                    ANSIBLE_CALLBACKS_ENABLED="prodready.deploy.deploy_report,task_counts")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=ansible_env(more), cwd=str(ROOT))
    return proc, vars_file


def run_playbook(playbook, inventory, extra=None, counts=None, env=None, argv_extra=(), timeout=3600, cprofile=None):
    """Run ansible-playbook to the end; a Result. CPU: RUSAGE_CHILDREN around the run (the
    process and every descendant it waited for; ssh ControlPersist masters detach and are
    not in it)."""
    if counts:
        Path(counts).unlink(missing_ok=True)
    cpu0, started = children_cpu(), time.perf_counter()
    proc, vars_file = start_playbook(playbook, inventory, extra, counts, env, argv_extra, cprofile)
    try:
        output = proc.communicate(timeout=timeout)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if vars_file:
            os.unlink(vars_file)
    wall, cpu = time.perf_counter() - started, children_cpu() - cpu0
    return Result(proc.returncode, output, wall, cpu, read_records(counts) if counts else [])


def read_records(path):
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def empty_playbook(directory):
    path = Path(directory) / "empty.yml"
    path.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.meta: noop\n")
    return path


def ping_playbook(directory, count):
    """`count` ping tasks: the cost of one module call on these hosts."""
    path = Path(directory) / ("ping%d.yml" % count)
    tasks = "".join("    - name: ping %d\n      ansible.builtin.ping:\n" % i for i in range(count))
    path.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n" + tasks)
    return path


def summarize(records, host=None):
    """Counts of one run (for one host when `host` is given):

    module_calls: modules run on a host (one per `exec` line: a loop item, each module an
    action plugin runs); module_tasks: tasks with a module action that ran (not skipped);
    module_tasks_skipped; controller / controller_skipped: controller-side tasks run /
    skipped; calls: [(task, module, seconds, cpu_s)] in order; exec_cpu: CPU of the module
    runs' processes; commands: low-level commands outside module runs; workers / workers_cpu:
    the forked workers (one per task and host) and their own CPU."""
    results = [r for r in records if r["kind"] == "result" and (host is None or r["host"] == host)]
    execs = [r for r in records if r["kind"] == "exec" and (host is None or r["host"] == host)]
    commands = [r for r in records if r["kind"] == "command" and (host is None or r.get("host") == host)]
    workers = [r for r in records if r["kind"] == "worker" and (host is None or r["host"] == host)]
    out = collections.Counter()
    for res in results:
        skipped = res["status"] == "skipped"
        key = "controller" if is_controller(res["action"]) else "module_tasks"
        out[key + ("_skipped" if skipped else "")] += 1
    calls = [(e["task"], short_action(e["module"]), e["seconds"], e["cpu_s"]) for e in sorted(execs, key=lambda e: e["t"])]
    return {
        "module_calls": len(execs), "module_tasks": out["module_tasks"],
        "module_tasks_skipped": out["module_tasks_skipped"], "controller": out["controller"],
        "controller_skipped": out["controller_skipped"], "calls": calls,
        "exec_seconds": sum(e["seconds"] for e in execs), "exec_cpu": sum(e["cpu_s"] for e in execs),
        "commands": len(commands), "commands_cpu": sum(c["cpu_s"] for c in commands),
        "workers": len(workers), "workers_cpu": sum(w["self_cpu_s"] for w in workers),
        "stats": next((r for r in records if r["kind"] == "stats"), {}),
    }


def task_spans(records):
    """[(seconds, start offset, action, task name)] of every task, in order: a task lasts until
    the next one starts (the linear strategy runs one task at a time), the last one until
    the end of the run."""
    tasks = [r for r in records if r["kind"] == "task"]
    if not tasks:
        return []
    end = next((r["t"] for r in records if r["kind"] == "stats"), max(r["t"] for r in records))
    origin = tasks[0]["t"]
    spans = []
    for task, nxt in zip(tasks, tasks[1:] + [{"t": end}]):
        spans.append((nxt["t"] - task["t"], task["t"] - origin, short_action(task["action"]), task["task"]))
    return spans


def print_profile(records, top, started_at=None, indent="  "):
    """The `top` slowest tasks, and where the rest went (module tasks vs controller tasks)."""
    spans = task_spans(records)
    if not spans:
        return
    first = min(r["t"] for r in records if r["kind"] == "task")
    if started_at:
        print("%sfirst task starts %.2f s after ansible-playbook started" % (indent, first - started_at))
    by_kind = collections.defaultdict(float)
    for seconds, _offset, action, _name in spans:
        by_kind["controller" if action in CONTROLLER_ACTIONS else "module"] += seconds
    print("%s%d tasks: %.2f s in tasks with a module, %.2f s in controller-side tasks" % (
        indent, len(spans), by_kind["module"], by_kind["controller"]))
    for seconds, offset, action, name in sorted(spans, key=lambda s: -s[0])[:top]:
        print("%s%6.3f s at %6.2f  %-28s %s" % (indent, seconds, offset, action, name))


def print_cpu_profile(records, top, indent="  "):
    """The `top` tasks that cost the controller the most CPU (their workers' own CPU summed
    over hosts), with the modules' CPU beside it."""
    by_task = collections.OrderedDict()
    for rec in records:
        if rec["kind"] == "worker":
            row = by_task.setdefault((rec["task"], short_action(rec["action"])), [0, 0.0, 0.0])
            row[0] += 1
            row[1] += rec["self_cpu_s"]
            row[2] += rec["children_cpu_s"]
    rows = sorted(by_task.items(), key=lambda kv: -kv[1][1])
    kinds = collections.Counter()
    for (_task, action), (_n, own, _child) in by_task.items():
        kinds["controller" if action in CONTROLLER_ACTIONS else "module"] += own
    print("%sworkers' own CPU: %.2f s in tasks with a module, %.2f s in controller-side tasks" % (
        indent, kinds["module"], kinds["controller"]))
    for (task, action), (count, own, child) in rows[:top]:
        print("%s%6.2f s own (%3d workers), %6.2f s modules  %-28s %s" % (indent, own, count, child, action, task))


def print_cprofile(path, top, indent="  "):
    """The `top` functions of a cProfile file by cumulative time, then by own time."""
    import pstats  # pylint: disable=import-outside-toplevel
    import io  # pylint: disable=import-outside-toplevel
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(str(path), stream=out).sort_stats(order).print_stats(top)
        lines = out.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
        print("%smain process, by %s:" % (indent, order))
        for line in lines[start:start + top + 1]:
            print(indent + "  " + line[:200])


def print_calls(summary, indent="  "):
    """The module calls of a run by name, in order (what the next engineer could merge)."""
    for number, (task, module, seconds, cpu) in enumerate(summary["calls"], 1):
        print("%s%2d. %-34s %6.2f s  cpu %5.2f s  %s" % (indent, number, module, seconds, cpu, task))


def median(values):
    values = sorted(values)
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0
