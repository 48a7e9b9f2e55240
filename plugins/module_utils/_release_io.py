# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A release directory on disk: hash and unpack the artifact, run uv or pip, swap the
directory into place, write the marker. The decisions and messages are _release's."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import glob
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._atomic import write_atomic
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils import _release

DIR_MODE = 0o755
MARKER_MODE = 0o644
KILL_AFTER_S = 10
# Exit statuses of coreutils `timeout`: the command ran out of time (124), or ignored the
# TERM and was killed (128 + 9).
TIMED_OUT = (124, 137)


def sha256_file(path):
    """The hex sha256 of the file at `path`."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (IOError, OSError) as exc:
        raise ProdreadyError("artifact: cannot read %s: %s" % (path, to_native(exc)))
    return digest.hexdigest()


def read_marker(release_dir):
    """The release record of `release_dir`, None when it has none."""
    marker_path = os.path.join(release_dir, _release.MARKER)
    try:
        with open(marker_path, "rb") as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise ProdreadyError("path: cannot read %s: %s" % (marker_path, to_native(exc)))
    return _release.parse_marker(data, marker_path)


def venv_python(venv):
    """The interpreter of the venv at `venv`."""
    return os.path.join(venv, "bin", "python")


def venv_ready(venv):
    """True when the venv at `venv` has an executable python."""
    return os.access(venv_python(venv), os.X_OK)


def python_version(venv):
    """The Python version of the venv at `venv`, read from its pyvenv.cfg (None if unknown)."""
    try:
        with open(os.path.join(venv, "pyvenv.cfg")) as handle:
            return _release.parse_pyvenv_cfg(handle.read())
    except (IOError, OSError):
        return None


def _kind(member):
    if member.issym():
        return _release.SYMLINK
    if member.islnk():
        return _release.HARDLINK
    if member.isdir():
        return _release.DIR
    if member.isfile():
        return _release.FILE
    return _release.SPECIAL


def open_tarball(artifact):
    """The tarball at `artifact` opened for reading (any compression)."""
    try:
        return tarfile.open(artifact, "r:*")
    except (IOError, OSError, tarfile.TarError) as exc:
        raise ProdreadyError("artifact: cannot read %s as a tarball: %s" % (artifact, to_native(exc)))


def checked_members(tar, artifact, strip_components):
    """The tar members to extract, renamed per `strip_components`; raises when any member
    is unsafe (before anything is written)."""
    try:
        members = tar.getmembers()
    except (IOError, OSError, EOFError, tarfile.TarError) as exc:
        raise ProdreadyError("artifact: cannot read %s as a tarball: %s" % (artifact, to_native(exc)))
    records = [(m.name, _kind(m), m.linkname) for m in members]
    kept, problems = _release.plan_members(records, strip_components)
    if problems:
        raise ProdreadyError(_release.unsafe_members_message(artifact, problems), step="unpack")
    result = []
    for index, new_name, new_link in kept:
        member = members[index]
        member.name = new_name
        if member.islnk():
            member.linkname = new_link
        result.append(member)
    return result


def unpack(tar, members, dest, artifact):
    """Extract the checked `members` of `tar` into `dest`; Python's own `data` filter is
    applied too where it exists (3.8.17+, 3.11.4+, 3.12)."""
    kwargs = dict(filter="data") if hasattr(tarfile, "data_filter") else {}
    try:
        tar.extractall(dest, members=members, **kwargs)
    except (IOError, OSError, EOFError, ValueError, tarfile.TarError) as exc:
        raise ProdreadyError("unpack: cannot unpack %s into %s: %s" % (artifact, dest, to_native(exc)),
                             step="unpack")


def new_sibling(path):
    """An empty directory `<path>.tmp-<random>` (mode 0755) beside `path`."""
    parent = os.path.dirname(path)
    try:
        if not os.path.isdir(parent):
            os.makedirs(parent, DIR_MODE)
        tmp = tempfile.mkdtemp(prefix=os.path.basename(path) + ".tmp-", dir=parent)
        os.chmod(tmp, DIR_MODE)
    except (IOError, OSError) as exc:
        raise ProdreadyError("path: cannot create a directory beside %s: %s" % (path, to_native(exc)))
    return tmp


def clean_leftovers(path):
    """Remove what an interrupted build of `path` left beside it (the deploy lock makes
    builds of one app's releases one at a time)."""
    for leftover in glob.glob(glob.escape(path) + ".tmp-*") + glob.glob(glob.escape(path) + ".old-*"):
        remove_tree(leftover)


def remove_tree(path):
    """Remove the directory `path` if it exists (best effort: the error is not the news)."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


def put_in_place(tmp, path):
    """Rename the directory `tmp` to `path`, replacing a half-built one there."""
    aside = None
    try:
        if os.path.lexists(path):
            aside = tempfile.mkdtemp(prefix=os.path.basename(path) + ".old-", dir=os.path.dirname(path))
            os.rename(path, os.path.join(aside, "release"))
        os.rename(tmp, path)
    except (IOError, OSError) as exc:
        raise ProdreadyError("path: cannot move %s into place as %s: %s" % (tmp, path, to_native(exc)))
    if aside:
        remove_tree(aside)


def write_marker(release_dir, record):
    """Write `.release.json` atomically: the last step, it marks the release complete."""
    write_atomic(os.path.join(release_dir, _release.MARKER), _release.render_marker(record), None,
                 MARKER_MODE, option="path")


def find_uv(module, uv_path):
    """The uv program: `uv_path` when given (it must exist), else on PATH or beside the
    interpreter running this module; None when there is none."""
    if uv_path:
        if not os.access(uv_path, os.X_OK):
            raise ProdreadyError("uv_path: %s is not an executable file" % uv_path)
        return uv_path
    return module.get_bin_path("uv", opt_dirs=[os.path.dirname(sys.executable)])


def find_python(module, base_python):
    """The absolute path of the interpreter `base_python` (a name looked up on PATH, or a path)."""
    if os.sep in base_python:
        if not os.access(base_python, os.X_OK):
            raise ProdreadyError("base_python: %s is not an executable file" % base_python)
        return base_python
    found = module.get_bin_path(base_python)
    if not found:
        raise ProdreadyError("base_python: %s is not on the PATH of the host" % base_python)
    return found


class Commands(object):
    """Runs the build's commands through module.run_command, each limited by what is left of
    a deadline (coreutils `timeout`, which stops the command's whole process group)."""

    def __init__(self, module, timeout):
        self.module = module
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.timeout_bin = module.get_bin_path("timeout")
        if not self.timeout_bin:
            module.warn("release_build: no `timeout` program on this host; timeout=%s is not enforced" % timeout)

    def run(self, step, argv, cwd, what):
        """Run `argv` in `cwd`; raises a ProdreadyError naming `step`, `what` was being done
        and the program's last output lines when it fails."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ProdreadyError("%s: the timeout of %s s was spent before %s" % (step, self.timeout, what),
                                 step=step)
        wrapped = list(argv)
        if self.timeout_bin:
            wrapped = [self.timeout_bin, "-k", str(KILL_AFTER_S), "%.1f" % left] + wrapped
        rc, out, err = self.module.run_command(wrapped, cwd=cwd)
        if rc == 0:
            return out, err
        if self.timeout_bin and rc in TIMED_OUT:
            why = "did not finish within the timeout of %s s" % self.timeout
        else:
            why = "exited with %s" % rc
        said = _release.tail(err) or _release.tail(out) or "(no output)"
        raise ProdreadyError("%s: %s failed: `%s` %s. It said:\n%s"
                             % (step, what, _release.command_line(argv), why, said), step=step)
