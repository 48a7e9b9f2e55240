# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The deploy lock's heartbeat: the lock file's modification time, touched while the run's
modules run, so a run on another controller can tell a live holder from a dead one
(_lockfile.is_silent).

The roles name the lock and the run in the environment of every task under the lock
(the RV ``environment`` of deploy_begin and rollback_start); every module of the collection wraps its work in
Heartbeat(), which beats once at the start and then every few seconds from a daemon thread:
a long migration or backup keeps its lock alive, a controller that died stops beating.
Standard library only: it ships with every module.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import threading
import time

LOCK_ENV = "PRODREADY_LOCK_FILE"
RUN_ENV = "PRODREADY_LOCK_RUN_ID"
EVERY_S = 10.0
LAUNCHED_BY_ENV = "PRODREADY_LAUNCHED_BY"
JOB_ID_ENV = "PRODREADY_JOB_ID"
JOB_URL_ENV = "PRODREADY_JOB_URL"


def environment(lock_path, run_id, launch=None):
    """The environment the roles give every task under the lock (deploy_begin and
    rollback_start return it, so the role templates it once per host, not once per task): the
    lock and the run (the heartbeat), and who launched the run and its job (audit lines)."""
    launch = launch or {}
    job = launch.get("job") or {}
    return {LOCK_ENV: lock_path or "", RUN_ENV: run_id or "",
            LAUNCHED_BY_ENV: str(launch.get("launched_by") or ""),
            JOB_ID_ENV: str(job.get("id") or "") if isinstance(job, dict) else "",
            JOB_URL_ENV: str(job.get("url") or "") if isinstance(job, dict) else ""}


def holder_run_id(path):
    """The run id the lock file at `path` names, or None (no file, unreadable, not JSON)."""
    try:
        with open(path, "rb") as handle:
            record = json.loads(handle.read().decode("utf-8"))
    except (IOError, OSError, ValueError, UnicodeDecodeError):
        return None
    return record.get("run_id") if isinstance(record, dict) else None


def beat(path, run_id, clock=time.time):
    """Touch the lock at `path` when `run_id` holds it; True when it did. Never raises: a
    heartbeat that cannot be written must not fail the step it accompanies."""
    if not path or not run_id or holder_run_id(path) != run_id:
        return False
    now = clock()
    try:
        os.utime(path, (now, now))
    except OSError:
        return False
    return True


class Heartbeat(object):
    """Beats for the run named in `environ` (default os.environ) while a module runs: once
    at the start, then every `every` s until stop(); does nothing when no lock of that run is
    on this host (a task delegated to the router or database host)."""

    def __init__(self, environ=None, every=EVERY_S):
        environ = os.environ if environ is None else environ
        self.path = environ.get(LOCK_ENV) or ""
        self.run_id = environ.get(RUN_ENV) or ""
        self.every = every
        self.beats = 0
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        if beat(self.path, self.run_id):
            self.beats = 1
            self._thread = threading.Thread(target=self._run, name="prodready-heartbeat")
            self._thread.daemon = True
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.every):
            if not beat(self.path, self.run_id):
                return  # released or taken over: nothing of this run to keep alive
            self.beats += 1

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
