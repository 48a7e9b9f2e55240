# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of prodready.deploy.release_build: with `src`, the tarball on the controller is sent
to the host's temporary directory and built from there, in the same task. A deploy used to
spend two module calls on `copy` (a stat, then the copy) before the build's own."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        args = dict(self._task.args)
        src = args.pop("src", None)
        try:
            if src:
                args["artifact"] = self._send(src, args)
            result.update(self._execute_module(module_name="prodready.deploy.release_build", module_args=args,
                                               task_vars=task_vars))
            if src:
                result["artifact_src"] = src
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=to_text(exc))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _send(self, src, args):
        """The host path of the tarball `src` (controller side), sent to the task's temporary
        directory there (removed when the task ends)."""
        if args.get("artifact"):
            raise AnsibleActionFail("src and artifact are mutually exclusive: src is the tarball on the controller "
                                    "(sent by this task), artifact one already on the host")
        if args.get("artifact_type", "tarball") != "tarball":
            raise AnsibleActionFail("src: is a tarball on the controller, but artifact_type is %r"
                                    % args.get("artifact_type"))
        try:
            local = self._find_needle("files", src)
        except AnsibleError as exc:
            raise AnsibleActionFail("src: cannot find the tarball %r on the controller: %s" % (src, to_text(exc)))
        if not os.path.isfile(local):
            raise AnsibleActionFail("src: %s is not a file" % local)
        if self._connection._shell.tmpdir is None:
            self._make_tmp_path()
        remote = self._connection._shell.join_path(self._connection._shell.tmpdir, os.path.basename(local))
        self._transfer_file(local, remote)
        self._fixup_perms2((self._connection._shell.tmpdir, remote))
        return remote
