# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One concept, one option name across the modules; old names stay accepted a while.

A renamed option keeps its old name as an alias, so existing playbooks keep running, and
as a ``deprecated_aliases`` entry, so Ansible warns whoever still uses it ("Alias 'timeout'
is deprecated") and ``validate-modules`` reminds us to drop it in ALIASES_REMOVED_IN.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.module_utils.basic import AnsibleFallbackNotFound

COLLECTION_NAME = "prodready.deploy"
# Collections remove deprecated things in a major release only.
ALIASES_REMOVED_IN = "2.0.0"


def renamed_from(entry, *old_names):
    """A copy of the argument_spec ``entry`` that also accepts ``old_names``, each one a
    deprecated alias (removed in ALIASES_REMOVED_IN)."""
    renamed = dict(entry)
    renamed["aliases"] = list(entry.get("aliases") or []) + list(old_names)
    renamed["deprecated_aliases"] = list(entry.get("deprecated_aliases") or []) + [
        dict(name=name, version=ALIASES_REMOVED_IN, collection_name=COLLECTION_NAME) for name in old_names]
    return renamed


def negative_option(params, spec, prefix=""):
    """'' when no number in `params` is negative, else what is wrong, naming the option
    (``probe.timeout: must be 0 or more, got -1``). Every number our modules take is a
    duration, a count, a size, a port or a rate: none may be negative. Suboptions (a dict,
    or a list of dicts) are looked at too."""
    for name, entry in sorted(spec.items()):
        value = (params or {}).get(name)
        if value is None:
            continue
        if entry.get("type") in ("int", "float") and not isinstance(value, bool) and value < 0:
            return "%s%s: must be 0 or more, got %s" % (prefix, name, value)
        if entry.get("options"):
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    where = "%s%s%s." % (prefix, name, "[%d]" % index if isinstance(value, list) else "")
                    problem = negative_option(item, entry["options"], where)
                    if problem:
                        return problem
    return ""


def env_fallback_set(*names):
    """The first of the environment variables `names` that is set and not empty (an
    argument_spec ``fallback`` strategy, like Ansible's ``env_fallback``). An empty variable
    counts as unset, so an option that is exclusive of others (a Redis ``url`` with
    ``login_host``) or one of a required pair (``database_url`` or ``db``) is not made
    present by an empty value, such as one a credential with that field left blank injects."""
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise AnsibleFallbackNotFound
