# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic of a release build (no I/O): what the artifact is, whether a release on disk
can be reused, which tar members are safe to unpack, the argv of uv and pip, and credentials
in pip arguments. The I/O half is _release_io."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import posixpath
import re

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

MARKER = ".release.json"
DEFAULT_REQUIREMENTS = "requirements.txt"

# What to do with the release directory (see decide()).
REUSE = "reuse"        # complete, built from this artifact: nothing to do
BUILD = "build"        # absent, or half-built (no marker): build it
REBUILD = "rebuild"    # complete from this artifact, but its venv is gone: build it again
CONFLICT = "conflict"  # complete, built from another artifact: refuse

# Tar member kinds, as member_records() in _release_io names them.
FILE, DIR, SYMLINK, HARDLINK, SPECIAL = "file", "dir", "symlink", "hardlink", "special"

TAIL_LINES = 20
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# scheme://userinfo@ : the credentials of an index URL (https://user:token@pypi.example/simple).
_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/@\s]+)@")
REDACTED = "********"

# pip options that `uv pip install` takes with the same meaning (checked against uv 0.13):
# those followed by a value, and flags.
UV_VALUE_OPTIONS = frozenset([
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-binary", "--only-binary",
    "-c", "--constraint", "-r", "--requirement", "-e", "--editable", "--cert", "-C",
    "--config-settings", "--trusted-host",
])
UV_FLAGS = frozenset([
    "--no-index", "--no-deps", "--require-hashes", "-U", "--upgrade", "--no-build-isolation", "--pre",
    "--force-reinstall", "--no-cache-dir", "--compile", "--no-compile", "-q", "--quiet", "-v",
    "--verbose", "--disable-pip-version-check",
])


def normalize_sha256(value):
    """The lowercase hex digest of an expected sha256 (``sha256:`` prefix allowed); '' = none."""
    text = (value or "").strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:"):]
    if text and not _SHA256_RE.match(text):
        raise ProdreadyError("sha256: %r is not a sha256 digest (64 hexadecimal digits)" % value)
    return text


def artifact_id(artifact_type, digest, pip_requirement):
    """What a release is built from: the tarball's sha256, or the pip requirement string."""
    return digest if artifact_type == "tarball" else pip_requirement.strip()


def sha256_mismatch_message(artifact, expected, actual):
    """The refusal when the tarball on the host is not the expected one."""
    return ("artifact %s has sha256 %s, expected %s: refusing to build a release from it"
            % (artifact, actual, expected))


def parse_marker(data, marker_path):
    """The release record held by the bytes of `.release.json` (None when there is none).

    A marker is written last and atomically, so one that is not a JSON object with an
    ``artifact`` was edited by hand: refuse rather than rebuild a release that may be live.
    """
    if data is None:
        return None
    try:
        record = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("artifact"), str):
        raise ProdreadyError("path: %s is not a release record (a JSON object with an \"artifact\"); "
                             "remove the release directory to have it built again" % marker_path)
    return record


def decide(marker, artifact, venv_ready):
    """REUSE, BUILD, REBUILD or CONFLICT for the release `marker` (None: no marker) and the
    artifact id `artifact`; `venv_ready` tells whether the release's venv has its python."""
    if marker is None:
        return BUILD
    if marker.get("artifact") != artifact:
        return CONFLICT
    return REUSE if venv_ready else REBUILD


def conflict_message(version, path, built_from, artifact):
    """The refusal to rebuild a version from other content."""
    return ("release %s already exists in %s built from %s, and the artifact now is %s: a version "
            "must not change content; deploy it under a new version" % (version, path, built_from, artifact))


def make_marker(version, artifact_type, artifact, built_at, installer, python_version, venv):
    """The record written to `.release.json` once the release is complete."""
    return dict(version=version, artifact_type=artifact_type, artifact=artifact, built_at=built_at,
                installer=installer, python_version=python_version, venv=venv)


def render_marker(record):
    """The bytes of `.release.json`."""
    return (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")


def _parts(name):
    return [part for part in name.split("/") if part not in ("", ".")]


def _outside(parts):
    """True when the relative path `parts` (normalized) climbs out of its root."""
    return bool(parts) and parts[0] == ".."


def plan_members(members, strip_components=0):
    """Check tar members before anything is written; returns (kept, problems).

    `members` are (name, kind, linkname) tuples. `kept` lists (index, new name, new linkname)
    of the members to extract after `strip_components` leading path parts are dropped
    (members with no part left are skipped, as GNU tar does). `problems` names each member
    that could write outside the release directory: an absolute path, a ``..`` part, a link
    pointing outside, a member below a symlink (it would be written wherever the link
    points), a device or fifo.
    """
    kept, problems, symlinks = [], [], set()
    for index, (name, kind, linkname) in enumerate(members):
        if name.startswith("/"):
            problems.append("%r (an absolute path)" % name)
            continue
        parts = _parts(name)
        if ".." in parts:
            problems.append("%r (a '..' in its path)" % name)
            continue
        if kind == SPECIAL:
            problems.append("%r (a device or fifo)" % name)
            continue
        parts = parts[strip_components:]
        if not parts:
            continue
        new_name = "/".join(parts)
        new_link = linkname
        if kind == SYMLINK:
            target = _parts(posixpath.normpath(posixpath.join(posixpath.dirname(new_name), linkname or "")))
            if linkname.startswith("/") or _outside(target):
                problems.append("%r (a symlink to %r, outside the release)" % (name, linkname))
                continue
            symlinks.add(new_name)
        elif kind == HARDLINK:
            link_parts = _parts(linkname or "")
            if linkname.startswith("/") or ".." in link_parts or not link_parts[strip_components:]:
                problems.append("%r (a hard link to %r, outside the release)" % (name, linkname))
                continue
            new_link = "/".join(link_parts[strip_components:])
        kept.append((index, new_name, new_link))
    for index, new_name, new_link in kept:
        parts = new_name.split("/")
        below = ["/".join(parts[:n]) for n in range(1, len(parts)) if "/".join(parts[:n]) in symlinks]
        if below:
            problems.append("%r (below the symlink %r)" % (members[index][0], below[0]))
    return kept, problems


def unsafe_members_message(artifact, problems, limit=10):
    """The refusal to unpack a tarball with unsafe members."""
    shown = "; ".join(problems[:limit])
    more = " and %d more" % (len(problems) - limit) if len(problems) > limit else ""
    return ("artifact %s has members that would be written outside the release directory: %s%s; "
            "refusing to unpack it" % (artifact, shown, more))


def requirement_files(requested, artifact_type, default_exists):
    """The requirement files to install: `requested` as given, else requirements.txt when
    the release has one (a pip artifact has no files of its own)."""
    if requested is not None:
        return list(requested)
    if artifact_type == "tarball" and default_exists:
        return [DEFAULT_REQUIREMENTS]
    return []


def uv_unsupported(pip_args):
    """The options in `pip_args` that `uv pip install` does not take (empty: uv can run them)."""
    unsupported, skip_value = [], False
    for arg in pip_args:
        if skip_value:
            skip_value = False
            continue
        if not arg.startswith("-") or arg == "-":
            continue  # a requirement specifier
        name = arg.split("=", 1)[0]
        if name in UV_VALUE_OPTIONS:
            skip_value = "=" not in arg
        elif arg[:2] in UV_VALUE_OPTIONS and not arg.startswith("--"):
            continue  # -fURL: a short option with its value attached
        elif name not in UV_FLAGS:
            unsupported.append(name)
    return unsupported


def choose_installer(requested, uv_bin, pip_args):
    """(installer, why) for `installer` option `requested` (auto, uv, pip), the uv found (or
    None) and the pip arguments; raises when `requested` cannot be honoured."""
    unsupported = uv_unsupported(pip_args)
    if requested == "pip":
        return "pip", "installer=pip"
    if requested == "uv":
        if not uv_bin:
            raise ProdreadyError("installer: uv was asked for but not found (uv_path, PATH, or beside the "
                                 "module's python); install it or use installer=pip")
        if unsupported:
            raise ProdreadyError("installer: uv does not take the pip_args %s; use installer=pip or "
                                 "remove them" % ", ".join(unsupported))
        return "uv", "installer=uv"
    if not uv_bin:
        return "pip", "uv not found"
    if unsupported:
        return "pip", "uv does not take the pip_args %s" % ", ".join(unsupported)
    return "uv", "uv found at %s" % uv_bin


def venv_argv(installer, uv_bin, base_python, venv):
    """The command that creates `venv` from the interpreter `base_python`."""
    if installer == "uv":
        # --no-project: the release may hold a pyproject.toml whose settings are not the venv's.
        return [uv_bin, "venv", "--no-project", "--no-python-downloads", "--python", base_python, venv]
    return [base_python, "-m", "venv", venv]


def install_argv(installer, uv_bin, venv_python, pip_args, requirements, constraints, requirement):
    """The command that installs into the venv of `venv_python`."""
    if installer == "uv":
        argv = [uv_bin, "pip", "install", "--python", venv_python]
    else:
        argv = [venv_python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    argv += list(pip_args)
    for name in requirements:
        argv += ["-r", name]
    for name in constraints:
        argv += ["-c", name]
    if requirement:
        argv.append(requirement)
    return argv


def redact(text):
    """`text` with the credentials of every URL in it masked (scheme://********@host)."""
    return _USERINFO_RE.sub(lambda match: match.group(1) + REDACTED + "@", text)


def secrets_in(args):
    """The credentials found in URLs of `args` (user:password and the password alone), for
    the module's no_log values."""
    found = set()
    for arg in args or []:
        for match in _USERINFO_RE.finditer(arg):
            userinfo = match.group(2)
            found.add(userinfo)
            if ":" in userinfo and userinfo.split(":", 1)[1]:
                found.add(userinfo.split(":", 1)[1])
    return found


def command_line(argv):
    """`argv` as one redacted line for messages."""
    return redact(" ".join(argv))


def tail(text, lines=TAIL_LINES):
    """The last `lines` non-blank lines of a program's output, redacted."""
    kept = [line.rstrip() for line in (text or "").splitlines() if line.strip()]
    return redact("\n".join(kept[-lines:]))


def parse_pyvenv_cfg(text):
    """The Python version recorded in a venv's pyvenv.cfg (``version_info`` for uv,
    ``version`` for python -m venv), or None."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values.get("version_info") or values.get("version") or None
