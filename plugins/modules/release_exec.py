# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: release_exec
short_description: Run a one-off command in a release's environment (its venv and .env), audited
version_added: 0.1.0
description:
  - Runs a command in a release's directory (C(<releases_dir>/<version>)), by default the
    release that is live (C(live_version) in O(state_path)), with the release's venv first in
    C(PATH) and C(VIRTUAL_ENV) set, and the variables of the app's environment file (O(env_file),
    the shared C(.env)) in its environment, the way the app sees them.
  - The environment file is read on the host by the module; its values go to the command's
    environment only, never on a command line, never in the result or the audit line (only
    their names are returned).
  - Appends one line to O(audit_log) for every command that ran - C(action=exec), the command,
    the version, the exit code, the duration, who launched it (O(launch)) - never the environment.
  - By default a non-zero exit code (or a timeout) fails the task with the code and the end of
    stderr; with O(check_rc=false) the result says it and the caller decides
    (C(playbooks/exec.yml) writes its summary first).
  - The last O(output_limit) bytes of each stream are returned. O(run_as) uses C(setpriv) (util-linux) -
    the user and its groups change, the environment stays the one described here.
author:
  - prodready.deploy maintainers (@prodready)
options:
  releases_dir:
    description:
      - The directory holding one directory per release (C(<app_root>/releases)).
    type: path
    required: true
  version:
    description:
      - The release to run in. Empty runs in the live one, read from O(state_path).
      - A version without a release directory is refused, listing the releases present.
    type: str
    default: ""
  state_path:
    description:
      - The host's C(state.json), read for the live version when O(version) is empty.
    type: path
  venv:
    description:
      - The venv the command runs with. Defaults to the release's own, C(<release>/.venv).
    type: path
  command:
    description:
      - A command line, run by C(/bin/sh -c) (pipes, C(&&), redirections work).
    type: str
  argv:
    description:
      - The program and its arguments, run without a shell.
    type: list
    elements: str
  env_file:
    description:
      - The app's environment file (C(.env)) whose variables the command gets. Missing means none
        (a warning); a file that cannot be read fails.
    type: path
  environment:
    description:
      - More variables for the command, set before the O(env_file) ones (for example the app's
        process environment, C(app_process_env)).
    type: dict
    default: {}
  run_as:
    description:
      - Run the command as this user (its groups, C(HOME), C(USER), with C(setpriv)); the module
        must run as root.
        Empty runs it as the user the module runs as.
    type: str
    default: ""
  timeout:
    description:
      - Seconds the command may run; then its process group gets SIGTERM, and SIGKILL 5 s later
        (coreutils C(timeout)). V(0) waits for ever.
    type: float
    default: 0
  check_rc:
    description:
      - Fail when the command exits non-zero or times out. V(false) returns the result as a success.
    type: bool
    default: true
  output_limit:
    description:
      - Bytes of each of stdout and stderr returned (their end, from a whole line).
    type: int
    default: 65536
  tail_lines:
    description:
      - Lines of the end of each stream returned in RV(stdout_tail) and RV(stderr_tail).
    type: int
    default: 40
  lock_path:
    description:
      - The deploy lock. When a run holds it, the command is refused (a deploy or rollback may
        change the release or migrate the database under it) unless O(allow_locked).
    type: path
  allow_locked:
    description:
      - Run even while a deploy, rollback or flag rollout holds the lock (the command never takes
        the lock itself).
    type: bool
    default: false
  audit_log:
    description:
      - The audit log to append the command's line to.
    type: path
  launch:
    description:
      - Who launched the run (C(launched_by)) and its AWX job (C(job) with C(id), C(url)), written
        in the audit line (roles/app C(app_launched_by), C(app_job)).
    type: dict
extends_documentation_fragment:
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Resolves the release, its venv and the environment file and checks the lock, runs
      nothing and writes no audit line; reports a change (the command would run).
  diff_mode:
    support: none
    description: Edits no file.
  action_group:
    support: full
    membership: [prodready.deploy.deploy]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) sets this module's options.
notes:
  - The command line itself (O(command), O(argv)) is in the audit line and the result; put
    secrets in the environment file, not on the command line.
seealso:
  - module: prodready.deploy.release_build
  - module: prodready.deploy.deploy_state
"""

EXAMPLES = r"""
- name: The live release's Alembic revision
  prodready.deploy.release_exec:
    releases_dir: /srv/app/releases
    state_path: /srv/app/state.json
    env_file: /srv/app/shared/.env
    command: alembic -c alembic.ini current
    audit_log: /srv/app/audit.log
    lock_path: /srv/app/deploy.lock
    timeout: 60
  register: revision

- name: A management command of release 1.4.0, as the app's user, its result judged by the caller
  prodready.deploy.release_exec:
    releases_dir: /srv/app/releases
    version: 1.4.0
    env_file: /srv/app/shared/.env
    argv: [python, -m, app.manage, reindex]
    run_as: app
    check_rc: false
    audit_log: /srv/app/audit.log
  register: reindex
"""

RETURN = r"""
version:
  description: The release the command ran in.
  returned: success, and failures after the release was chosen
  type: str
  sample: 1.4.0
release_dir:
  description: Its directory, the command's working directory.
  returned: success, and failures after the release was chosen
  type: str
  sample: /srv/app/releases/1.4.0
venv:
  description: The venv first in C(PATH) (C(VIRTUAL_ENV)).
  returned: success, and failures after the release was chosen
  type: str
  sample: /srv/app/releases/1.4.0/.venv
releases:
  description: The releases present on the host.
  returned: always
  type: list
  elements: str
  sample: [1.3.2, 1.4.0]
env_file_loaded:
  description: V(true) when O(env_file) was read.
  returned: success
  type: bool
  sample: true
env_names:
  description: The names (never the values) of the variables read from O(env_file).
  returned: success
  type: list
  elements: str
  sample: [DATABASE_URL, REDIS_URL]
run_as:
  description: The user the command ran as.
  returned: success
  type: str
  sample: app
rc:
  description: The exit code (V(124) or V(137) when O(timeout) ended it); V(null) in check mode.
  returned: success, and failures of the command
  type: int
  sample: 0
duration_s:
  description: Seconds the command ran.
  returned: success, and failures of the command
  type: float
  sample: 1.482
reason:
  description: Why the command failed (its exit code or the timeout, and the end of stderr); V(null) when it succeeded.
  returned: success, and failures of the command
  type: str
  sample: "the command exited with rc 2: Error: no such table: orders"
timed_out:
  description: V(true) when O(timeout) stopped it.
  returned: success, and failures of the command
  type: bool
  sample: false
stdout:
  description: What it wrote to stdout (its last O(output_limit) bytes).
  returned: success, and failures of the command
  type: str
  sample: "2f1c0a9b (head)\n"
stderr:
  description: What it wrote to stderr (its last O(output_limit) bytes).
  returned: success, and failures of the command
  type: str
  sample: ""
stdout_bytes:
  description: Bytes written to stdout in all (more than returned when RV(stdout_truncated)).
  returned: success, and failures of the command
  type: int
  sample: 16
stderr_bytes:
  description: Bytes written to stderr in all.
  returned: success, and failures of the command
  type: int
  sample: 0
stdout_line_count:
  description: Lines written to stdout in all.
  returned: success, and failures of the command
  type: int
  sample: 1
stderr_line_count:
  description: Lines written to stderr in all.
  returned: success, and failures of the command
  type: int
  sample: 0
stdout_truncated:
  description: V(true) when only the end of stdout is returned.
  returned: success, and failures of the command
  type: bool
  sample: false
stderr_truncated:
  description: V(true) when only the end of stderr is returned.
  returned: success, and failures of the command
  type: bool
  sample: false
stdout_tail:
  description: The last O(tail_lines) lines of stdout.
  returned: success, and failures of the command
  type: list
  elements: str
  sample: ["2f1c0a9b (head)"]
stderr_tail:
  description: The last O(tail_lines) lines of stderr.
  returned: success, and failures of the command
  type: list
  elements: str
  sample: []
audit_line:
  description: The line appended to O(audit_log), V(null) without it or in check mode.
  returned: success, and failures of the command
  type: dict
  sample: {"action": "exec", "command": "alembic -c alembic.ini current", "version": "1.4.0", "rc": 0,
           "duration_s": 1.482, "result": "success", "launched_by": "alice", "user": "root", "host": "web1"}
"""

import os
import pwd
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _envfile
from ansible_collections.prodready.deploy.plugins.module_utils import _exec
from ansible_collections.prodready.deploy.plugins.module_utils import _heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _lock_io
from ansible_collections.prodready.deploy.plugins.module_utils import _lockfile
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _state_io

KILL_GRACE_S = 5


def argument_spec():
    """The module's options."""
    return dict(
        releases_dir=dict(type="path", required=True),
        version=dict(type="str", default=""),
        state_path=dict(type="path"),
        venv=dict(type="path"),
        command=dict(type="str"),
        argv=dict(type="list", elements="str"),
        env_file=dict(type="path"),
        environment=dict(type="dict", default={}, no_log=True),
        run_as=dict(type="str", default=""),
        timeout=dict(type="float", default=0),
        check_rc=dict(type="bool", default=True),
        output_limit=dict(type="int", default=65536),
        tail_lines=dict(type="int", default=40),
        lock_path=dict(type="path"),
        allow_locked=dict(type="bool", default=False),
        audit_log=dict(type="path"),
        launch=dict(type="dict"),
    )


def validate(params):
    """Refuse values the spec alone does not catch, naming the option and the value."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    if params["command"] is not None and not params["command"].strip():
        raise ProdreadyError("command: empty; give the command line to run")
    if params["argv"] is not None and not params["argv"]:
        raise ProdreadyError("argv: empty; give the program and its arguments")
    if not params["version"] and not params["state_path"]:
        raise ProdreadyError("version: none given, and no state_path to read the live version from")


def read_state(path):
    """The state.json at `path` ({} when missing)."""
    if not path or not os.path.exists(path):
        return {}
    return _state_io.read_state_file(path, True)[0]


def list_releases(releases_dir):
    try:
        names = [name for name in os.listdir(releases_dir) if os.path.isdir(os.path.join(releases_dir, name))]
    except OSError:
        return []
    return _exec.releases_present(names)


def choose_release(p):
    """(version, release_dir, venv, releases present); refuses a version without its directory."""
    releases = list_releases(p["releases_dir"])
    version = _exec.choose_version(p["version"], read_state(p["state_path"]), p["state_path"])
    release_dir = os.path.join(p["releases_dir"], version)
    if not os.path.isdir(release_dir):
        raise ProdreadyError(_exec.unknown_release_message(version, release_dir, releases), releases=releases)
    venv = p["venv"] or os.path.join(release_dir, ".venv")
    if not os.access(os.path.join(venv, "bin", "python"), os.X_OK):
        raise ProdreadyError("venv: %s has no bin/python (the release %s is not built, or its venv is elsewhere)"
                             % (venv, version), releases=releases, version=version)
    return version, release_dir, venv, releases


def check_lock(p):
    """Refuse while a run holds the deploy lock, unless allow_locked."""
    if not p["lock_path"] or p["allow_locked"]:
        return
    holder = _lock_io.read_lock(p["lock_path"])
    if holder is not None:
        raise ProdreadyError(
            "allow_locked: %s holds the deploy lock %s (%s); a deploy or rollback may change the release or migrate "
            "the database under this command: run it once that run is done"
            % (_lockfile.describe(holder), p["lock_path"], "since %s" % holder.get("since")))


def read_env_file(module, path):
    """(values, loaded) of the environment file; values never leave the module but in the
    command's environment."""
    if not path:
        return {}, False
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except (IOError, OSError, UnicodeDecodeError) as exc:
        if not os.path.exists(path):
            module.warn("env_file: %s does not exist; the command runs without it" % path)
            return {}, False
        raise ProdreadyError("env_file: cannot read %s: %s" % (path, to_native(exc)))
    try:
        return _envfile.values(_envfile.parse(text)), True
    except ProdreadyError as exc:
        raise ProdreadyError("env_file: %s: %s" % (path, exc.msg))


def user_of(module, run_as):
    """(name, argv prefix, home) of the user to run as: setpriv (util-linux) switches the user
    and its groups and leaves the environment as given; ('<login>', [], None) for the module's own."""
    if not run_as:
        return _state_io.login_name(), [], None
    try:
        entry = pwd.getpwnam(run_as)
    except KeyError:
        raise ProdreadyError("run_as: no user %s on this host" % run_as)
    if entry.pw_uid == os.geteuid():
        return entry.pw_name, [], entry.pw_dir
    if os.geteuid() != 0:
        raise ProdreadyError("run_as: running as %s needs root; the module runs as %s (become: true)"
                             % (run_as, _state_io.login_name()))
    setpriv = module.get_bin_path("setpriv")
    if not setpriv:
        raise ProdreadyError("run_as: running as %s needs setpriv (util-linux), not found on this host" % run_as)
    return entry.pw_name, [setpriv, "--reuid=%d" % entry.pw_uid, "--regid=%d" % entry.pw_gid, "--init-groups", "--"], entry.pw_dir


def output(data, p):
    """The returned part of one stream's bytes: its end, its size in bytes and lines."""
    text, truncated = _exec.tail_text(data, p["output_limit"])
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return text, truncated, len(data), lines


def run_command(module, p, release_dir, env, prefix):
    """Run the command (module.run_command, argv, no shell of Ansible's; the command line goes to
    /bin/sh -c) under coreutils timeout, which ends its whole process group; returns its rc,
    duration, output and whether it timed out."""
    argv = ["/bin/sh", "-c", p["command"]] if p["command"] is not None else list(p["argv"])
    if p["timeout"]:
        timeout_bin = module.get_bin_path("timeout")
        if not timeout_bin:
            raise ProdreadyError("timeout: %s s needs coreutils timeout, not found on this host" % p["timeout"])
        argv = [timeout_bin, "-k", str(KILL_GRACE_S), "%.3f" % p["timeout"]] + argv
    began = time.monotonic()
    rc, out, err = module.run_command(prefix + argv, cwd=release_dir, environ_update=env, encoding=None)
    duration = round(time.monotonic() - began, 3)
    timed_out = bool(p["timeout"]) and rc in _exec.TIMED_OUT and duration >= p["timeout"]
    result = dict(rc=rc, duration_s=duration, timed_out=timed_out)
    for name, data in (("stdout", out), ("stderr", err)):
        text, truncated, size, lines = output(data or b"", p)
        result.update({name: text, name + "_truncated": truncated, name + "_bytes": size, name + "_line_count": lines,
                       name + "_tail": _exec.last_lines(text, p["tail_lines"])})
    return result


def run(module):
    """The module's work for `module.params`; returns the result dict."""
    p = module.params
    validate(p)
    version, release_dir, venv, releases = choose_release(p)
    check_lock(p)
    values, loaded = read_env_file(module, p["env_file"])
    run_as, prefix, home = user_of(module, p["run_as"])
    result = dict(changed=True, version=version, release_dir=release_dir, venv=venv,
                  releases=releases, env_file_loaded=loaded, env_names=sorted(values), run_as=run_as,
                  rc=None, audit_line=None)
    if module.check_mode:
        return result
    env = _exec.command_environment(os.environ, p["environment"], values, venv)
    if home:
        env.update(HOME=home, USER=run_as, LOGNAME=run_as)
    result.update(run_command(module, p, release_dir, env, prefix))
    if p["audit_log"]:
        event = _exec.audit_event(p["command"] if p["command"] is not None else p["argv"], version, run_as,
                                  result["rc"], result["duration_s"], result["timed_out"])
        launch = _state_io.launch_context(_heartbeat.environment(None, None, p["launch"]))
        result["audit_line"] = _state_io.audit(p["audit_log"], dict(launch, **event))
    failed = result["rc"] != 0 or result["timed_out"]
    result["reason"] = _exec.failure_message(result["rc"], result["timed_out"], p["timeout"],
                                             result["stderr_tail"][-5:]) if failed else None
    if p["check_rc"] and failed:
        raise ProdreadyError(result["reason"], **result)
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[("command", "argv")], required_one_of=[("command", "argv")])
    try:
        with Heartbeat():  # keeps a deploy lock alive when run under one (never takes it)
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)


if __name__ == "__main__":
    main()
