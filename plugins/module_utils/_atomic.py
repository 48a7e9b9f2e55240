# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file replacement shared by the modules that edit files (state, env, includes)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import tempfile

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError


def write_atomic(path, data, st, new_mode, option="path"):
    """Replace `path` with bytes `data`: temp file in the same directory, fsync, rename.

    The new file keeps the mode and owner of the old one (`st`, an os.stat result) or gets
    `new_mode` when there was none; an owner that cannot be kept is an error, not a silent
    change. A failure leaves the old file untouched and no temp file behind. Errors are
    ProdreadyError messages that start with `option` (the module option naming the file).
    """
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                   dir=directory)
    except OSError as exc:
        raise ProdreadyError("%s: cannot create a temporary file in %s: %s"
                             % (option, directory, to_native(exc)))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if st is None:
            os.chmod(tmp, new_mode)
        else:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            tmp_st = os.stat(tmp)
            if (tmp_st.st_uid, tmp_st.st_gid) != (st.st_uid, st.st_gid):
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except OSError as exc:
                    raise ProdreadyError("%s: cannot keep the owner %d:%d of %s: %s"
                                         % (option, st.st_uid, st.st_gid, path, to_native(exc)))
        os.rename(tmp, path)
    except ProdreadyError:
        _unlink_quietly(tmp)
        raise
    except (IOError, OSError) as exc:
        _unlink_quietly(tmp)
        raise ProdreadyError("%s: cannot write %s: %s" % (option, path, to_native(exc)))
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # the rename is done; a directory fsync is best effort on some filesystems


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
