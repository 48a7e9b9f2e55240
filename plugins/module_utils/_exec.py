# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A one-off command in a release's environment (release_exec): the pure half.

Which release (the one asked for, else the live one state.json records), the environment the
command gets (the host's, the app's process environment, the release's .env values, its venv
first in PATH), the tail of long output and the audit event. No I/O: the module reads the
files and runs the command.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

# Names a release directory may have (blue_green's check of the version asked for).
VERSION_RE = re.compile(r"\A[0-9A-Za-z][0-9A-Za-z.+_-]*\Z")
# Variables of the host's environment that would make the venv's Python another one.
DROPPED = ("PYTHONHOME", "PYTHONPATH", "__PYVENV_LAUNCHER__")
_NUMBERS_RE = re.compile(r"(\d+)")
# coreutils timeout's exit codes when it ended the command (SIGTERM, then SIGKILL).
TIMED_OUT = (124, 137)


def version_key(name):
    """Sort key of a release name: numbers compared as numbers (1.10.0 after 1.9.0)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in _NUMBERS_RE.split(name)]


def releases_present(names):
    """The release names among directory entries `names` (build leftovers, hidden, skipped), sorted."""
    return sorted((name for name in names if not name.startswith(".") and VERSION_RE.match(name)), key=version_key)


def choose_version(version, state, state_path):
    """The release to run in: `version` when given, else the live one `state` records."""
    if version:
        if not VERSION_RE.match(version):
            raise ProdreadyError("version: %r is not a release name (letters, digits, . + _ -)" % version)
        return version
    live = (state or {}).get("live_version")
    if not live:
        raise ProdreadyError("version: none given, and %s records no live version (nothing deployed on this host?)"
                             % state_path)
    return live


def unknown_release_message(version, release_dir, present):
    """The refusal of a version with no release directory, listing the releases present."""
    return "version: %s is not a release on this host: no directory %s (releases present: %s)" % (
        version, release_dir, ", ".join(present) if present else "none")


def command_environment(base, process_env, env_file_values, venv):
    """The command's environment: the host's (`base`) without what would change the venv's
    Python, then the app's process environment, then the release's .env values (as the app
    reads them), then the venv: VIRTUAL_ENV and its bin first in PATH."""
    env = dict((key, value) for key, value in base.items() if key not in DROPPED)
    env.update((key, "" if value is None else str(value)) for key, value in (process_env or {}).items())
    env.update(env_file_values or {})
    env["VIRTUAL_ENV"] = venv
    path = env.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    env["PATH"] = venv.rstrip("/") + "/bin:" + path
    return env


def tail_text(data, limit):
    """(text, truncated) of output bytes `data`: all of it when within `limit` bytes, else its
    last `limit` bytes from the first whole line."""
    truncated = len(data) > limit
    if truncated:
        data = data[-limit:]
        cut = data.find(b"\n")
        if 0 <= cut < len(data) - 1:
            data = data[cut + 1:]
    return data.decode("utf-8", "replace"), truncated


def last_lines(text, count):
    """The last `count` lines of `text` (without a final empty line)."""
    lines = text.rstrip("\n").split("\n") if text else []
    return lines[-count:] if count > 0 else []


def audit_event(command, version, run_as, rc, duration_s, timed_out):
    """The audit line's event of a command that ran (never its environment)."""
    return dict(action="exec", command=command, version=version, run_as=run_as, rc=rc,
                duration_s=duration_s, timed_out=timed_out,
                result="success" if rc == 0 and not timed_out else "failed")


def failure_message(rc, timed_out, timeout, stderr_lines):
    """Why the command failed, with the end of what it wrote to stderr."""
    what = ("timed out after %s s (killed, rc %s)" % (timeout, rc)) if timed_out else ("exited with rc %s" % rc)
    tail = " | ".join(stderr_lines)
    return "the command %s%s" % (what, (": " + tail) if tail else " (nothing on stderr)")
