# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: version_select
short_description: The first entry of a list whose version range holds a version
version_added: 0.1.0
description:
  - Picks, from a list of dicts each with a C(versions) key holding a PEP 440 version
    specifier set (for example V(>=2.0,<3)), the first entry whose range contains the
    version. An entry without C(versions) (or with an empty one) holds every version, a
    fallback to put last. Returns V({}) when none matches.
  - Ranges follow PEP 440, pre-releases included. As PEP 440 says, V(<2.0) does not hold
    V(2.0.0rc1) and neither does V(>=2.0); start a range at V(>=2.0.dev0) to take the
    pre-releases of 2.0.
  - The roles use it to pick the start command of the release being started
    (C(app_start_commands)), so that an app whose command line changed at 2.0 is described
    once.
author:
  - prodready.deploy maintainers (@prodready)
positional: version
options:
  _input:
    description: The entries, in order of preference.
    type: list
    elements: dict
    required: true
  version:
    description: The version, for example V(2.1.0).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The start command of 2.1.0
  ansible.builtin.debug:
    msg: "{{ (app_start_commands | prodready.deploy.version_select('2.1.0')).command }}"
  vars:
    app_start_commands:
      - versions: "<2.0"
        command: "{{ app_venv }}/bin/gunicorn shop.wsgi -b 127.0.0.1:{{ app_port }}"
      - versions: ">=2.0"
        command: "{{ app_venv }}/bin/uvicorn shop.main:app --port {{ app_port }}"
"""

RETURN = r"""
_value:
  description: The first matching entry, or V({}).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.six import string_types

try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - packaging is a dependency of ansible-core
    SpecifierSet = Version = None


def version_select(entries, version):
    """The first entry of `entries` whose `versions` specifier set contains `version`."""
    if Version is None:
        raise AnsibleFilterError("version_select needs the Python package 'packaging' on the controller")
    if not isinstance(entries, list):
        raise AnsibleFilterError("version_select: the input must be a list of dicts with 'versions', got %s"
                                 % type(entries).__name__)
    try:
        parsed = Version(to_native(version))
    except InvalidVersion:
        raise AnsibleFilterError("version_select: %r is not a PEP 440 version" % (version,))
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise AnsibleFilterError("version_select: entry %d must be a dict with 'versions', got %r" % (index, entry))
        spec = entry.get("versions") or ""
        if not isinstance(spec, string_types):
            raise AnsibleFilterError("version_select: entry %d: versions must be a string such as '>=2.0,<3', got %r"
                                     % (index, spec))
        try:
            specifiers = SpecifierSet(spec)
        except InvalidSpecifier:
            raise AnsibleFilterError("version_select: entry %d: versions %r is not a version range such as "
                                     "'>=2.0,<3'" % (index, spec))
        if specifiers.contains(parsed, prereleases=True):
            return entry
    return {}


class FilterModule(object):
    def filters(self):
        return {"version_select": version_select}
