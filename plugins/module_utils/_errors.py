# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type modules raise; main() turns it into fail_json(msg=..., **details)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib


class ProdreadyError(Exception):
    """A failure with a message that says what was tried, on what, and why it failed.

    `details` are extra keys returned beside `msg` (for example the measured figures of a
    gate that failed), so a playbook can still read them from the failed result.
    """

    def __init__(self, msg, **details):
        super(ProdreadyError, self).__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self):
        return self.msg


@contextlib.contextmanager
def option_named(option):
    """A reader shared by several modules (_lock_io, _state_io) names its file option `path`
    in its errors (deploy_lock's, deploy_state's option): inside this block, such an error
    names `option`, the calling module's name for it."""
    try:
        yield
    except ProdreadyError as exc:
        if exc.msg.startswith("path: "):
            exc.msg = option + exc.msg[len("path"):]
        raise
