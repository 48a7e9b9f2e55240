"""Callback for the benchmarks: each task's wall time, written as JSON lines.

Enabled by bench scripts with ANSIBLE_CALLBACK_PLUGINS=bench/callbacks,
ANSIBLE_CALLBACKS_ENABLED=task_times and PRODREADY_TASK_TIMES=<file>. Not part of the
collection: it measures where a playbook's time goes, nothing more.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_times
type: aggregate
short_description: task wall times as JSON lines (benchmarks only)
description: Writes one line per task (name, action, start, seconds) to $PRODREADY_TASK_TIMES.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._path = os.environ.get("PRODREADY_TASK_TIMES")
        self._current = None
        self._origin = time.time()

    def _close(self):
        if self._current and self._path:
            name, action, started = self._current
            with open(self._path, "a") as handle:
                handle.write(json.dumps({"task": name, "action": action, "start_s": round(started - self._origin, 3),
                                         "seconds": round(time.time() - started, 3)}) + "\n")
        self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self._current = (task.get_name(), task.action, time.time())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
