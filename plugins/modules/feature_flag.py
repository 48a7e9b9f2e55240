# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: feature_flag
short_description: Set feature flags in a .env file or in Redis and return what they were
version_added: 0.1.0
description:
  - Sets, changes or removes feature flags where the application reads them, either in an
    environment file (C(.env), systemd C(EnvironmentFile)) or in Redis, and returns the values
    they had before in RV(previous), so that passing RV(previous) back as O(flags) restores
    them exactly (the revert of a staged rollout).
  - A flag's value is the one the application sees. Where a name is assigned more than once in
    an env file, the last assignment wins, as in shell, systemd C(EnvironmentFile) and
    python-dotenv.
  - "O(backend=env_file): the file is edited in place. Comments, blank lines, the order of the
    lines, C(export) prefixes, inline comments, the quoting of untouched lines, CRLF line ends,
    a missing final newline and a UTF-8 byte order mark are kept. The first assignment of a
    flag is replaced (keeping its C(export), spacing, inline comment and, when the new value
    allows it, its quoting) and later assignments of the same name are removed and reported in
    RV(removed_duplicates). New flags are added at the end. The file is written atomically
    (a temporary file in the same directory, then a rename) and keeps its owner and mode; a
    symbolic link is followed and the file it points to is edited."
  - "Values are written unquoted when they consist only of C([A-Za-z0-9_./:,@%+=-]) and
    non-ASCII characters other than spaces, else in
    single quotes, or in double quotes with C(\\) and C(\") escaped when the value holds a single
    quote or a backslash. Booleans are written C(true) / C(false)."
  - "O(backend=redis): each flag is a string key O(key_prefix)C(<name>), or a field C(<name>) of
    the one hash O(hash_key). Writes of one task go in one C(MULTI)/C(EXEC) transaction."
author:
  - prodready.deploy maintainers (@prodready)
extends_documentation_fragment:
  - prodready.deploy.redis
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Reports the flags that would change, their RV(previous) values and the diff, and writes nothing.
  diff_mode:
    support: full
    description: >-
      The lines of the env file that change (never the rest of the file), or the Redis keys or hash fields that
      change, before and after.
  action_group:
    support: full
    membership: [prodready.deploy.deploy, prodready.deploy.redis]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) and C(group/prodready.deploy.redis) set this module's options.
options:
  backend:
    description:
      - Where the flags live.
    type: str
    choices: [env_file, redis]
    default: env_file
  flags:
    description:
      - The flags, as a dictionary of name to value.
      - A V(null) value removes the flag. Booleans are written V(true) / V(false), numbers as
        written, strings as they are.
      - Names must match C([A-Za-z_][A-Za-z0-9_]*); values must not contain a line break.
      - The RV(previous) value of an earlier run restores that run's flags when passed here.
    type: dict
    required: true
  state:
    description:
      - V(present) sets each flag to its value (a V(null) value removes it).
      - V(absent) removes every flag named in O(flags), whatever the value given.
    type: str
    choices: [present, absent]
    default: present
  path:
    description:
      - The environment file, with O(backend=env_file) (required there).
    type: path
  create:
    description:
      - Create the file (mode C(0600)) when it does not exist.
      - With the default V(false) a missing file is an error, so a typo in O(path) does not
        silently create a file the application never reads.
    type: bool
    default: false
  backup:
    description:
      - Before changing the file, keep a copy of it beside it, with a timestamp in its name
        (returned in RV(backup_file)).
    type: bool
    default: false
  key_prefix:
    description:
      - With O(backend=redis), store each flag as the string key O(key_prefix) followed by the
        flag name, for example V(flags:) gives C(flags:ENABLE_PO_CACHING). May be the empty
        string (the flag name is the key, as for runbook's C(emergency_rate_limit)).
      - Exactly one of O(key_prefix) and O(hash_key) is required with O(backend=redis).
    type: str
  hash_key:
    description:
      - With O(backend=redis), store the flags as fields of this one Redis hash.
    type: str
  ttl:
    description:
      - With O(backend=redis), seconds after which the flags expire (Redis C(EX)), for every
        flag of the task, for example an emergency rate limit for one hour.
      - With O(key_prefix), each key written gets this expiry. A key that already holds the
        value and already expires is left alone (its expiry is not extended); one that holds
        the value without an expiry gets this one.
      - With O(hash_key), Redis (before 7.4) can only expire a whole hash, so the TTL applies
        to the whole hash, other fields included; it is set when a field changes or when the
        hash has no expiry yet.
      - When omitted, keys written by this task do not expire (a plain C(SET)), and the expiry
        of an unchanged key or of the hash is left as it is.
      - A dict gives each flag its own expiry (flag name to seconds); flags it does not name
        do not expire. Per-flag expiries need O(key_prefix); with O(hash_key) the values must
        all be the same (Redis expires the hash as a whole).
    type: raw
notes:
  - Check mode reports what would change (with the diff) and writes nothing.
  - "In diff mode (C(--diff)) only the lines of the file that change are shown, never the
    rest of the file, which often holds secrets such as a database URL."
  - Changing a value and restoring it with RV(previous) gives the original bytes back
    (duplicates of the flag aside, which stay removed), with two exceptions where only the
    value is restored. A flag that was removed comes back at the end of the file. An unquoted
    line that had to be quoted for the new value (C(U=plain) set to C(two words)) keeps its
    quotes on the way back (C(U='plain')), which the app reads as the same value.
  - "Values are reported as written: C(${VAR}) references are not expanded."
  - The TTL of Redis keys is not part of RV(previous); a revert restores values only.
requirements:
  - redis (Python library, 4.0 or later) with O(backend=redis)
"""

EXAMPLES = r"""
- name: Week 2 of runbook 004, enable query optimisation in the app's .env
  prodready.deploy.feature_flag:
    path: /srv/app/shared/.env
    flags:
      ENABLE_PO_QUERY_OPTIMIZATION: true
      ENABLE_PERFORMANCE_MONITORING: true
    backup: true
  register: week2

- name: Restart the app when the file changed
  ansible.builtin.command: supervisorctl restart app
  when: week2.restart_required

- name: Roll week 2 back exactly as it was
  prodready.deploy.feature_flag:
    path: /srv/app/shared/.env
    flags: "{{ week2.previous }}"

- name: Remove a flag
  prodready.deploy.feature_flag:
    path: /srv/app/shared/.env
    flags:
      ENABLE_PO_CACHING:
    # or: state: absent with any value

- name: Runbook 001 emergency rate limit for one hour (SET emergency_rate_limit 1 EX 3600)
  prodready.deploy.feature_flag:
    backend: redis
    login_host: cache.internal
    key_prefix: ""
    flags:
      emergency_rate_limit: 1
    ttl: 3600

- name: Flags as fields of one hash the app reads with HGETALL
  prodready.deploy.feature_flag:
    backend: redis
    url: redis://cache.internal:6379/0
    hash_key: app:flags
    flags:
      ENABLE_PO_CACHING: true
"""

RETURN = r"""
previous:
  description:
    - For every flag given, the value the application saw before the task, V(null) where the
      flag was not set. Passing it back as O(flags) restores those values.
  returned: always
  type: dict
  sample: {"ENABLE_PO_CACHING": "false", "ENABLE_CACHE_METRICS": null}
current:
  description:
    - For every flag given, the value after the task (in check mode, the value it would have),
      V(null) where the flag is not set.
  returned: always
  type: dict
  sample: {"ENABLE_PO_CACHING": "true", "ENABLE_CACHE_METRICS": "true"}
changed_flags:
  description:
    - Names of the flags whose value changed (or would change in check mode), in the order
      given. With the env_file backend this includes a flag whose only change is the removal
      of duplicate assignments; with O(key_prefix) and O(ttl), a key that only got its expiry.
  returned: always
  type: list
  elements: str
  sample: ["ENABLE_PO_CACHING"]
restart_required:
  description:
    - V(true) when the content of the env file changed (the application must restart to read
      it). Always V(false) with the redis backend, where the application reads flags live.
  returned: always
  type: bool
  sample: true
removed_duplicates:
  description:
    - Later assignments of a flag that were removed from the env file, with the 1-based line
      number they had and the value they held.
  returned: when O(backend=env_file)
  type: list
  elements: dict
  contains:
    name:
      description: The flag name.
      type: str
    line:
      description: The line number the removed assignment had in the original file.
      type: int
    value:
      description: The value that assignment held.
      type: str
  sample: [{"name": "ENABLE_PO_CACHING", "line": 12, "value": "true"}]
env_file:
  description:
    - The file that was edited (a symbolic link in O(path) resolved).
  returned: when O(backend=env_file)
  type: str
  sample: /srv/app/shared/.env
backup_file:
  description:
    - The copy of the file taken before the change.
  returned: when O(backup=true) and the file changed (not in check mode)
  type: str
  sample: /srv/app/shared/.env.2931.2026-11-26@10:41:07~
diff:
  description:
    - With C(--diff), the lines that change (C(before) / C(after) text), for env files only the
      changed lines, for Redis C(key=value) lines.
  returned: in diff mode, when something changes
  type: dict
  contains:
    before:
      description: The changed lines as they were.
      type: str
    after:
      description: The changed lines as they are now.
      type: str
    before_header:
      description: The file (or Redis keys) the lines belong to.
      type: str
    after_header:
      description: The same, after the change.
      type: str
  sample: {"before": "ENABLE_PO_CACHING=false\n", "after": "ENABLE_PO_CACHING=true\n",
           "before_header": "/srv/app/shared/.env", "after_header": "/srv/app/shared/.env"}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _atomic
from ansible_collections.prodready.deploy.plugins.module_utils import _envfile
from ansible_collections.prodready.deploy.plugins.module_utils._redis import (
    REDIS_MUTUALLY_EXCLUSIVE,
    connect,
    explain_redis_error,
    redis_connection_argument_spec,
)

NEW_FILE_MODE = 0o600


def argument_spec():
    """The module's options (the shared Redis connection options included)."""
    spec = dict(
        backend=dict(type="str", default="env_file", choices=["env_file", "redis"]),
        flags=dict(type="dict", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        path=dict(type="path"),
        create=dict(type="bool", default=False),
        backup=dict(type="bool", default=False),
        key_prefix=dict(type="str", no_log=False),
        hash_key=dict(type="str", no_log=False),
        ttl=dict(type="raw"),
    )
    spec.update(redis_connection_argument_spec())
    return spec


def validate(params):
    """Refuse options that do not apply to the chosen backend, flag names and values the
    app could not read, and bad ttls, naming the option and the value; returns the flags as
    the texts to write (None: remove)."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    backend = params["backend"]
    if backend == "env_file":
        for name in ("key_prefix", "hash_key", "ttl"):
            if params.get(name) is not None:
                raise ProdreadyError("%s applies to backend=redis only, not to backend=env_file"
                                     % name)
    else:
        if params.get("path") is not None:
            raise ProdreadyError("path applies to backend=env_file only, not to backend=redis")
        flag_ttls(params.get("ttl"), list(params.get("flags") or {}), params.get("hash_key") is not None)
    return _envfile.validate_flags(params["flags"])


def _seconds(value, what):
    """`value` as a whole number of seconds > 0, or ProdreadyError naming `what`."""
    if isinstance(value, bool):
        value = None
    try:
        seconds = int(value)
        if seconds != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise ProdreadyError("%s must be a whole number of seconds greater than 0, got %r" % (what, value))
    if seconds <= 0:
        raise ProdreadyError("%s must be a number of seconds greater than 0, got %s" % (what, seconds))
    return seconds


def flag_ttls(ttl, names, hash_mode):
    """Per-flag expiry: name -> seconds or None, from O(ttl) (None, a number, or a dict).

    A dict may only name flags of the task; with a hash key its values must agree, since a
    hash expires as a whole (Redis before 7.4)."""
    if ttl is None or ttl == "":
        return dict((name, None) for name in names)
    if not isinstance(ttl, dict):
        seconds = _seconds(ttl, "ttl")
        return dict((name, seconds) for name in names)
    unknown = sorted(set(ttl) - set(names))
    if unknown:
        raise ProdreadyError("ttl names %s, which %s not in flags (%s)" % (
            ", ".join(unknown), "is" if len(unknown) == 1 else "are", ", ".join(sorted(names))))
    ttls = dict((name, _seconds(ttl[name], "ttl of flag %s" % name) if name in ttl else None) for name in names)
    if hash_mode and len(set(ttls.values())) > 1:
        raise ProdreadyError("ttl per flag (%s) needs key_prefix: with hash_key the whole hash expires, "
                             "give one number of seconds" % ", ".join("%s=%s" % (n, ttls[n]) for n in sorted(ttls)))
    return ttls


# ---------------------------------------------------------------- env_file backend

def read_env_file(path, create):
    """(real path, text or None when absent, os.stat or None) for the env file at `path`."""
    real = os.path.realpath(path)
    if not os.path.exists(real):
        if not create:
            raise ProdreadyError("path: the env file %s does not exist (create=false); fix the "
                                 "path or set create: true to create it" % path)
        parent = os.path.dirname(real) or "."
        if not os.path.isdir(parent):
            raise ProdreadyError("path: cannot create %s: directory %s does not exist"
                                 % (path, parent))
        return real, None, None
    if os.path.isdir(real):
        raise ProdreadyError("path: %s is a directory, not an env file" % path)
    try:
        with open(real, "rb") as handle:
            data = handle.read()
        st = os.stat(real)
    except (IOError, OSError) as exc:
        raise ProdreadyError("path: cannot read %s: %s" % (path, to_native(exc)))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProdreadyError("path: %s is not UTF-8 text (invalid byte at offset %d); "
                             "refusing to edit it" % (path, exc.start))
    return real, text, st


def write_atomic(real, data, st):
    """Write `data` (bytes) to `real` atomically: mode and owner of the old file, 0600 when new."""
    _atomic.write_atomic(real, data, st, NEW_FILE_MODE, "path")


def run_env_file(module, flags):
    """Apply `flags` (validated texts) to the env file; return the result dict."""
    params = module.params
    real, text, st = read_env_file(params["path"], params["create"])
    doc = _envfile.parse(text if text is not None else u"")
    edit = _envfile.apply_flags(doc, flags, params["state"])
    changed = edit.changed or text is None
    result = dict(
        changed=changed,
        env_file=real,
        previous=edit.previous,
        current=edit.current,
        changed_flags=edit.changed_flags,
        removed_duplicates=edit.removed_duplicates,
        restart_required=edit.changed,
    )
    if module._diff and changed:
        before, after = _envfile.diff_texts(edit.changes)
        result["diff"] = dict(before=before, after=after,
                              before_header=real if text is not None else "%s (absent)" % real,
                              after_header=real)
    if changed and not module.check_mode:
        if params["backup"] and text is not None:
            result["backup_file"] = module.backup_local(real)
        write_atomic(real, _envfile.render(edit.doc).encode("utf-8"), st)
    return result


# ---------------------------------------------------------------- redis backend

def _redis_call(what, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except Exception as exc:  # redis-py raises many types; all become one clear message
        raise ProdreadyError("redis: %s failed: %s" % (what, explain_redis_error(exc)))


def plan_redis(old, targets, old_ttls, ttls, hash_mode):
    """Pure plan of the redis writes.

    `old`: name -> value or None; `targets`: name -> text or None (remove); `old_ttls`:
    name -> remaining seconds (-1 no expiry, -2 absent) for keys, or {None: seconds} for the
    hash; `ttls`: name -> seconds to expire in, or None (see flag_ttls()). Returns
    (to_set, to_delete, expire_names, expire_hash, changed_flags).
    """
    to_set = {}
    to_delete = []
    expire_names = []
    changed_flags = []
    for name, target in targets.items():
        if target is None:
            if old.get(name) is not None:
                to_delete.append(name)
                changed_flags.append(name)
        elif old.get(name) != target:
            to_set[name] = target
            changed_flags.append(name)
        elif ttls.get(name) is not None and not hash_mode and old_ttls.get(name) == -1:
            expire_names.append(name)
            changed_flags.append(name)
    # A hash can only expire as a whole: set its TTL when a field is written, or when it
    # exists without one (EXPIRE on a hash emptied by the deletions is a harmless no-op).
    expire_hash = bool(hash_mode and hash_ttl(ttls) is not None and
                       (to_set or old_ttls.get(None) == -1))
    return to_set, to_delete, expire_names, expire_hash, changed_flags


def hash_ttl(ttls):
    """The one expiry of a hash (flag_ttls() made sure the values agree), or None."""
    values = [seconds for seconds in ttls.values() if seconds is not None]
    return values[0] if values else None


def run_redis(module, flags, client):
    """Apply `flags` to Redis through `client`; return the result dict."""
    params = module.params
    hash_key = params["hash_key"]
    hash_mode = hash_key is not None
    names = list(flags)
    ttls = flag_ttls(params["ttl"], names, hash_mode)
    targets = dict((name, None if params["state"] == "absent" else flags[name]) for name in names)

    if hash_mode:
        values = _redis_call("HMGET %s" % hash_key, client.hmget, hash_key, names) if names else []
        old = dict(zip(names, values))
        old_ttls = {None: _redis_call("TTL %s" % hash_key, client.ttl, hash_key)}
        keys = dict((name, name) for name in names)
    else:
        keys = dict((name, params["key_prefix"] + name) for name in names)
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.get(keys[name])
            pipe.ttl(keys[name])
        replies = _redis_call("reading %s" % ", ".join(keys[n] for n in names), pipe.execute) \
            if names else []
        old = dict((name, replies[2 * i]) for i, name in enumerate(names))
        old_ttls = dict((name, replies[2 * i + 1]) for i, name in enumerate(names))

    to_set, to_delete, expire_names, expire_hash, changed_flags = plan_redis(
        old, targets, old_ttls, ttls, hash_mode)
    changed = bool(to_set or to_delete or expire_names or expire_hash)
    current = dict((name, targets[name]) for name in names)

    if changed and not module.check_mode:
        pipe = client.pipeline(transaction=True)
        if hash_mode:
            if to_set:
                pipe.hset(hash_key, mapping=to_set)
            if to_delete:
                pipe.hdel(hash_key, *to_delete)
            if expire_hash:
                pipe.expire(hash_key, hash_ttl(ttls))
        else:
            for name, value in to_set.items():
                pipe.set(keys[name], value, ex=ttls[name])
            for name in to_delete:
                pipe.delete(keys[name])
            for name in expire_names:
                pipe.expire(keys[name], ttls[name])
        _redis_call("writing the flags", pipe.execute)
        if hash_mode:
            after = _redis_call("HMGET %s" % hash_key, client.hmget, hash_key, names)
            current = dict(zip(names, after))
        else:
            after = _redis_call("MGET", client.mget, [keys[n] for n in names])
            current = dict(zip(names, after))

    result = dict(changed=changed, previous=old, current=current, changed_flags=changed_flags,
                  restart_required=False)
    if module._diff and changed:
        where = "redis hash %s" % hash_key if hash_mode else "redis keys %s*" % params["key_prefix"]
        before = "".join("%s=%s\n" % (keys[n], old[n]) for n in changed_flags if old[n] is not None)
        after = "".join("%s=%s\n" % (keys[n], current[n]) for n in changed_flags
                        if current[n] is not None)
        if expire_hash:
            after += "(expire %s in %d s)\n" % (hash_key, hash_ttl(ttls))
        result["diff"] = dict(before=before, after=after, before_header=where, after_header=where)
    return result


# ---------------------------------------------------------------- entry point

def run(module):
    """The module's work for `module.params`; returns the result dict."""
    flags = validate(module.params)
    if module.params["backend"] == "env_file":
        return run_env_file(module, flags)
    return run_redis(module, flags, connect(module.params))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[
            ("backend", "env_file", ["path"]),
            ("backend", "redis", ["key_prefix", "hash_key"], True),
        ],
        mutually_exclusive=[["key_prefix", "hash_key"]] + REDIS_MUTUALLY_EXCLUSIVE,
    )
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)


if __name__ == "__main__":
    main()
