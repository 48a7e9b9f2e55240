# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic of the host's state.json and audit.log (no I/O): parse, merge, audit lines."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import json

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

AUDIT_ADDED_KEYS = ("time", "user", "host")


def iso_utc(epoch):
    """ISO 8601 UTC text (second precision, ``Z`` suffix) of a POSIX timestamp."""
    moment = datetime.datetime.fromtimestamp(float(epoch), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_state(data, path):
    """The state dict held by `data` (bytes of state.json, or None when the file is absent).

    An empty or whitespace-only file counts as ``{}``. Anything that is not a JSON object
    raises ProdreadyError naming `path` and the JSON error, so a corrupt file is never
    silently replaced.
    """
    if data is None or not data.strip():
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProdreadyError("path: %s is not UTF-8 (invalid byte at offset %d); refusing to "
                             "overwrite it, fix or move the file" % (path, exc.start))
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ProdreadyError("path: %s is not valid JSON (%s); refusing to overwrite it, fix or "
                             "move the file" % (path, exc))
    if not isinstance(value, dict):
        raise ProdreadyError("path: %s holds a JSON %s, not an object; refusing to overwrite it"
                             % (path, type(value).__name__))
    return value


# The state keys the roles read, and what each must hold (None removes a key, always allowed).
# Other keys are the caller's own and are written as given.
TEXT_KEYS = ("host", "app", "live_color", "live_version", "previous_color", "previous_version", "artifact",
             "backup_path", "backup_host", "schema_dump_path", "deployed_at")
LIST_KEYS = ("db_revisions_before", "db_revisions", "history")
DICT_KEYS = ("last_failure", "last_rollback")


def check_update(update):
    """'' when `update` holds values of the right shape for the keys the roles read, else
    what is wrong, naming the key (update.colors: ...)."""
    for key, value in sorted((update or {}).items()):
        if value is None:
            continue
        if key == "colors":
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()):
                return "update.colors: must map each color to the version it runs (or null), got %r" % (value,)
        elif key in TEXT_KEYS and not isinstance(value, str):
            return "update.%s: must be text, got %r" % (key, value)
        elif key in LIST_KEYS and not isinstance(value, list):
            return "update.%s: must be a list, got %r" % (key, value)
        elif key in DICT_KEYS and not isinstance(value, dict):
            return "update.%s: must be a mapping, got %r" % (key, value)
    return ""


def merge_update(state, update):
    """(new state, changed) after merging `update` into `state` at the top level.

    A ``None`` value in `update` removes that key; other values replace the key's value
    whole (no deep merge). `state` is not modified.
    """
    new = copy.deepcopy(state)
    for key, value in (update or {}).items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = copy.deepcopy(value)
    return new, new != state


def render_state(state):
    """The bytes written to state.json: indented, sorted keys, final newline."""
    return (json.dumps(state, indent=2, sort_keys=True) + "\n").encode("utf-8")


def build_audit_line(event, epoch, user, host):
    """The audit record for `event`: its keys plus ``time`` (ISO UTC), ``user`` and ``host``.

    The added keys win over keys of the same name in `event`: who and when are recorded by
    the module, not claimed by the caller.
    """
    line = dict(event or {})
    line["time"] = iso_utc(epoch)
    line["user"] = user
    line["host"] = host
    return line


def render_audit_line(line):
    """One JSON line (bytes, ending with a newline, no newline inside) for the audit log."""
    return (json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
