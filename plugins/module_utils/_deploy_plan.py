# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic of the start of a deploy (no I/O), for deploy_begin.

- the checks of the deploy request (version, colors and ports, directory modes), each
  message naming the option and what is wrong with the value;
- the host model's directories and their modes;
- the decisions: which color receives the new release, whether the deploy is a no-op;
- the plan sentence written to the log.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]*")
COLOR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
OCTAL_MODE_RE = re.compile(r"0?[0-7]{3,4}")

BLUE_GREEN = "blue_green"
RESTART = "restart"


def check_version(version):
    """Refuse a version that cannot name a release directory (``releases/<version>``)."""
    if not VERSION_RE.fullmatch(version or ""):  # match() would let a final newline through
        raise ProdreadyError("version: %r is not a release version: letters, digits and . + _ - only, starting "
                             "with a letter or a digit (e.g. 1.4.0)" % (version,))


def color_ports(colors, strategy):
    """`colors` ({name: {port: N}}) as {name: port}, or ProdreadyError naming the bad entry.

    The blue_green strategy needs two colors (one runs, the other receives the release);
    restart runs one instance and needs one."""
    if not isinstance(colors, dict):
        raise ProdreadyError("colors: must be a dict of color -> {port: N}, got %r" % (colors,))
    needed = 1 if strategy == RESTART else 2
    if len(colors) < needed:
        raise ProdreadyError("colors: strategy %s needs at least %d colors with their ports, got %d (%s)"
                             % (strategy, needed, len(colors), ", ".join(sorted(colors)) or "none"))
    ports = {}
    for name, spec in colors.items():
        if not COLOR_RE.fullmatch(str(name)):
            raise ProdreadyError("colors: %r is not a color name: letters, digits and _ . - only" % (name,))
        port = spec.get("port") if isinstance(spec, dict) else None
        if isinstance(port, bool) or not (isinstance(port, int) or str(port).isdigit()):
            raise ProdreadyError("colors: %s needs {port: N} with N a number, got %r" % (name, spec))
        ports[name] = int(port)
        if not 0 < ports[name] < 65536:
            raise ProdreadyError("colors: the port of %s must be 1 to 65535, got %d" % (name, ports[name]))
    if len(set(ports.values())) < len(ports):
        raise ProdreadyError("colors: two colors share a port (%s)"
                             % ", ".join("%s %d" % item for item in sorted(ports.items())))
    return ports


def parse_mode(value, option, path):
    """A directory mode given as an octal string (``"0755"``) or as the number YAML reads
    from an unquoted ``0755``; ProdreadyError names the option and the path."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return value
    if isinstance(value, str) and OCTAL_MODE_RE.fullmatch(value):
        return int(value, 8)
    raise ProdreadyError("%s: the mode of %s must be octal like '0755', got %r" % (option, path, value))


def host_directories(app_root, backup_dir):
    """The host model's directories as (path, mode, option), parents first: the app root,
    releases/ and artifacts/ readable by the app's user, shared/ (the .env) and the backups
    private to their owner."""
    backup_dir = backup_dir or os.path.join(app_root, "backups")
    return [(app_root, 0o755, "app_root"),
            (os.path.join(app_root, "releases"), 0o755, "app_root"),
            (os.path.join(app_root, "artifacts"), 0o755, "app_root"),
            (os.path.join(app_root, "shared"), 0o700, "app_root"),
            (backup_dir, 0o700, "backup_dir")]


def wanted_directories(app_root, backup_dir, directories):
    """(path, mode, option) of every directory to make: `directories` ([{path, mode}]) when
    given (it replaces the host model's set), else host_directories()."""
    if directories is None:
        return host_directories(app_root, backup_dir)
    wanted = []
    for index, item in enumerate(directories):
        path = item.get("path") or ""
        if not os.path.isabs(path):
            raise ProdreadyError("directories[%d].path: must be an absolute path, got %r" % (index, path))
        wanted.append((os.path.normpath(path), parse_mode(item.get("mode"), "directories[%d]" % index, path),
                       "directories"))
    return wanted


def idle_color(names, live_color, strategy, restart_color=""):
    """The color the new release starts on.

    blue_green: the first (sorted) color that is not live; on a first deploy (nothing
    live, or a live color that is not among `names`) the first color. restart: the one
    instance restarts in place, on `restart_color`, else the live color, else the first."""
    names = sorted(names)
    live = live_color if live_color in names else None
    if strategy == RESTART:
        return restart_color or live or names[0]
    others = [name for name in names if name != live]
    return others[0]


def is_noop(state_version, version, served_version):
    """A redeploy of what is live changes nothing: the state's live version is `version`
    and the live color really serves it (the state alone is not the truth)."""
    return bool(version) and state_version == version and served_version == version


def observed_text(live_color, state_version, served_version, probe_error):
    """Words for a live color that does not serve what state.json says ('' when it does)."""
    if not live_color or served_version == state_version:
        return ""
    if served_version is None:
        return "%s gave no version (%s)" % (live_color, probe_error or "no answer")
    return "%s serves %s, not %s as state.json says" % (live_color, served_version, state_version or "nothing")


def plan_text(name, version, live_color, state_version, idle, idle_port, noop, strategy, router, observed=""):
    """The plan as one sentence for the log, e.g. ``app 1.0.0 -> 1.1.0: start green (port
    8102), gate it, switch haproxy from blue``."""
    before = state_version or "nothing"
    head = "%s %s -> %s: " % (name, before, version)
    if noop:
        return head + "already live on %s, which serves it: nothing to do" % live_color
    if strategy == RESTART:
        steps = ["maintenance on", "drain", "stop %s" % before] if state_version else []
        body = "restart in place on %s (port %d): %s" % (
            idle, idle_port, ", ".join(steps + ["migrate", "start %s" % version, "gate it"]
                                       + (["maintenance off"] if state_version else [])))
    elif router == "none":
        body = "start %s (port %d), gate it on its own port (no router to switch)" % (idle, idle_port)
    elif live_color:
        body = "start %s (port %d), gate it, switch %s from %s" % (idle, idle_port, router, live_color)
    else:
        body = "start %s (port %d), gate it, switch %s to it (nothing is live)" % (idle, idle_port, router)
    return head + body + ("; observed: %s" % observed if observed else "")


def releases_to_prune(history, version, live_version, keep):
    """The versions of `history` whose releases/<version> may go when `version` is deployed:
    all but the last `keep` of the history (with `version` as its newest), `version` and the
    live version. `keep` 0 or less keeps everything. Names that are not versions are never
    returned (they could not be a release this collection made)."""
    if keep <= 0:
        return []
    names = [v for v in (history or []) if isinstance(v, str) and v != version] + [version]
    kept = set(names[-keep:]) | {version, live_version}
    out = []
    for name in names:
        if name not in kept and name not in out and VERSION_RE.fullmatch(name):
            out.append(name)
    return out
