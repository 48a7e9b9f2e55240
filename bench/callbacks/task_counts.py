"""Callback for the benchmarks: what each task of a run did and cost, as JSON lines.

Enabled by bench scripts with ANSIBLE_CALLBACK_PLUGINS=bench/callbacks,
ANSIBLE_CALLBACKS_ENABLED=task_counts and PRODREADY_TASK_COUNTS=<file>. Not part of the
collection: it counts module calls and controller-side tasks, nothing more.

Lines written (one JSON object each, `kind` first):

- ``task``: a task started (name, action, role, wall-clock ``t``).
- ``result``: a task's result for one host (status ok / changed / failed / skipped /
  unreachable, ``seconds`` since the task started, the delegate; for router_switch and
  rollback_start also ``switch_ms`` and ``at``).
- ``exec``: one module run on a host, written by the worker process that ran it (this
  callback wraps ``ActionBase._execute_module`` in the controller before the workers fork):
  the module's name, the task, the host, its wall ``seconds`` and ``cpu_s``, the CPU of
  the processes the worker waited for while it ran (with ``ansible_connection: local`` the
  module itself; over SSH the ssh client). An action plugin that runs several modules
  (``template``: stat + copy) writes one line per module. ``commands`` counts the
  low-level commands it sent (a connection round trip each).
- ``command``: a low-level command sent outside any module run (temp dirs, file
  transfers' helpers), with its ``seconds`` and ``cpu_s``.
- ``worker``: one per task and host, written by the worker when the task is done: its own
  CPU (``self_cpu_s``: templating, the action plugin, building the module's payload; a
  worker is forked for every task and host, set_fact included) and that of the processes
  it waited for (``children_cpu_s``).
- ``stats``: at the end, the main process's own CPU and its reaped children's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import resource
import time

from ansible.executor.task_executor import TaskExecutor
from ansible.plugins.action import ActionBase
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_counts
type: aggregate
short_description: module calls and controller tasks as JSON lines (benchmarks only)
description: Writes tasks, per-host results and module runs to $PRODREADY_TASK_COUNTS.
"""

_PATH = os.environ.get("PRODREADY_TASK_COUNTS")
_DEPTH = [0]  # a worker runs one task: a module run's own low-level commands are not counted apart


def _write(record):
    # O_APPEND and one write per line: workers of parallel hosts do not interleave lines.
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _host_of(action, task_vars):
    if task_vars and "inventory_hostname" in task_vars:
        return task_vars["inventory_hostname"]
    return getattr(action._play_context, "remote_addr", None)


def _wrap_execute_module(original):
    def _execute_module(self, module_name=None, module_args=None, tmp=None, task_vars=None, *args, **kwargs):
        started, cpu = time.time(), _children_cpu()
        before = _COMMANDS[0]
        _DEPTH[0] += 1
        try:
            return original(self, module_name, module_args, tmp, task_vars, *args, **kwargs)
        finally:
            _DEPTH[0] -= 1
            _write({"kind": "exec", "module": module_name or self._task.action, "task": self._task.get_name(),
                    "action": self._task.action, "host": _host_of(self, task_vars),
                    "delegate": self._task.delegate_to, "pid": os.getpid(), "t": started,
                    "seconds": round(time.time() - started, 4), "cpu_s": round(_children_cpu() - cpu, 4),
                    "commands": _COMMANDS[0] - before})
    return _execute_module


_COMMANDS = [0]


def _wrap_low_level(original):
    def _low_level_execute_command(self, cmd, *args, **kwargs):
        started, cpu = time.time(), _children_cpu()
        _COMMANDS[0] += 1
        try:
            return original(self, cmd, *args, **kwargs)
        finally:
            if not _DEPTH[0]:
                _write({"kind": "command", "task": self._task.get_name(), "action": self._task.action,
                        "host": getattr(self._play_context, "remote_addr", None), "pid": os.getpid(),
                        "t": started, "seconds": round(time.time() - started, 4),
                        "cpu_s": round(_children_cpu() - cpu, 4)})
    return _low_level_execute_command


def _wrap_task_executor(original):
    def run(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        finally:
            own = resource.getrusage(resource.RUSAGE_SELF)  # a forked worker starts at zero
            _write({"kind": "worker", "task": self._task.get_name(), "action": self._task.action,
                    "host": self._host.get_name(), "pid": os.getpid(), "t": time.time(),
                    "self_cpu_s": round(own.ru_utime + own.ru_stime, 4), "children_cpu_s": round(_children_cpu(), 4)})
    return run


if _PATH and not getattr(ActionBase, "_prodready_counted", False):
    ActionBase._execute_module = _wrap_execute_module(ActionBase._execute_module)
    ActionBase._low_level_execute_command = _wrap_low_level(ActionBase._low_level_execute_command)
    TaskExecutor.run = _wrap_task_executor(TaskExecutor.run)
    ActionBase._prodready_counted = True


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_counts"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._started = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        if not _PATH:
            return
        now = time.time()
        self._started[task._uuid] = now
        role = task._role.get_name() if getattr(task, "_role", None) else None
        _write({"kind": "task", "task": task.get_name(), "action": task.action, "uuid": task._uuid,
                "role": role, "t": now})

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _result(self, result, status):
        if not _PATH:
            return
        task = getattr(result, "task", None) or result._task
        host = getattr(result, "host", None) or result._host
        data = result._result
        if status == "ok" and data.get("changed"):
            status = "changed"
        record = {"kind": "result", "task": task.get_name(), "action": task.action, "uuid": task._uuid,
                  "host": host.get_name(), "status": status, "delegate": task.delegate_to,
                  "t": time.time(), "seconds": round(time.time() - self._started.get(task._uuid, time.time()), 4)}
        if "switch_ms" in data:
            record.update(switch_ms=data.get("switch_ms"), at=data.get("at"))
        switch = data.get("switch")
        if isinstance(switch, dict) and "switch_ms" in switch:
            record.update(switch_ms=switch.get("switch_ms"), at=switch.get("at"))
        _write(record)

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        if not _PATH:
            return
        own = resource.getrusage(resource.RUSAGE_SELF)
        _write({"kind": "stats", "t": time.time(), "self_cpu_s": round(own.ru_utime + own.ru_stime, 3),
                "children_cpu_s": round(_children_cpu(), 3)})
