#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: color_process
short_description: Start, restart or stop one color of a blue-green app and wait until it serves
version_added: 0.1.0
description:
  - One color (for example V(green)) of an app is one process on its own port, run by
    supervisor or systemd. This module writes the color's definition, (re)starts it and
    waits, in fractions of a second, until the process manager says it runs B(and) its
    probe answers with the expected version; or it stops the color with its whole process
    group and checks that its port closed. Replaces the eight to ten tasks of a start
    (template, stop, update, start, status polling, log reading, fail, health_gate).
  - "supervisor: the program file C(<supervisor_conf_dir>/<name>-<color>.conf) (mode 0600: it
    holds the environment) runs the program C(<name>-<color>) with C(stopasgroup) and
    C(killasgroup), C(startsecs = 1) and C(startretries = 0) (a process that dies at once
    ends FATAL instead of crash-looping), C(autorestart = unexpected)."
  - "systemd: the environment file C(<systemd_colors_dir>/<color>.env) (0600), the start script
    C(<systemd_colors_dir>/<color>.sh) (0700) and the app's template unit
    C(<systemd_unit_dir>/<name>@.service) (0644, C(KillMode=control-group)) run the unit
    C(<name>@<color>.service)."
  - Files are written atomically (temporary file, then rename) and only when their bytes
    change; a file with another mode gets its mode back.
  - A start that fails says what happened, at once when the process dies (it does not wait
    for the timeout) - the process manager's state, the exit status, the probe's last
    answer and the last lines of the log - and stops the color.
author:
  - prodready.deploy maintainers (@prodready)
options:
  name:
    description:
      - The app's name, the base of the program (C(<name>-<color>)) or unit (C(<name>@<color>)) name.
    type: str
    required: true
  color:
    description:
      - The color, for example V(blue) or V(green).
    type: str
    required: true
  state:
    description:
      - V(started) makes the color run this definition and serve O(probe.expect_version).
        When it already does, nothing changes. Otherwise the files are written, the color
        is stopped if it runs, the new definition loaded and the color started and awaited.
      - V(restarted) does the same, and restarts a color that already serves.
      - V(resumed) starts the color from the definition an earlier start wrote (no file is
        written, O(command) and O(directory) are not needed) and waits until it serves
        O(version), like V(started); refused when that definition is missing. A fleet's
        switch-back uses it to bring a stopped previous color back.
      - V(stopped) stops the color (SIGTERM to its process group, a kill after
        O(stop_timeout)) and waits for O(port) to close. The definition files stay.
    type: str
    choices: [started, stopped, restarted, resumed]
    default: started
  process_manager:
    description:
      - The process manager that runs the colors.
    type: str
    choices: [supervisor, systemd]
    default: systemd
  command:
    description:
      - The command that runs the color, for example
        V(/srv/app/releases/1.4.0/.venv/bin/python -m app --port 8102).
      - supervisor splits it like a shell would, without running a shell (no pipes or
        redirections); systemd runs it with C(exec) from the start script.
      - Required with O(state=started) and O(state=restarted).
    type: str
  directory:
    description:
      - Working directory of the process, the release directory.
      - Required with O(state=started) and O(state=restarted).
    type: path
  environment:
    description:
      - Environment variables of the process, name to value. Booleans are written
        V(true)/V(false).
      - They may hold secrets (a database URL with its password). The file that holds them
        is 0600, they are never put on a command line, and their values are masked in the
        module's output and in C(--diff) (a changed value shows as C(******** (changed))).
      - Ansible masks a no_log value wherever it appears in the output, so a short value
        such as V(1) masks every C(1) of the result; keep such values out of it.
      - supervisor cannot carry a value that holds both quote characters, starts or ends
        with one, or holds C(;) or C(#) after whitespace; such values are refused naming
        the variable.
    type: dict
    default: {}
  log_file:
    description:
      - File the process's output (stdout and stderr) goes to; its directory is created
        when missing. The last lines a failed start wrote are read from it.
      - Required with supervisor when starting. With systemd, when not set, the output
        goes to the journal and the last lines come from C(journalctl).
    type: path
  version:
    description:
      - The release the color runs. It is written in the definition's comment and is the
        version the probe expects unless O(probe.expect_version) is set.
    type: str
  port:
    description:
      - The TCP port the color listens on.
      - Before a start and after a stop, the module waits (up to O(stop_timeout)) until
        nothing listens on it, and fails naming the process that still does (a leftover
        process answering the probe would otherwise pass for the new release).
    type: int
  start_timeout:
    description:
      - Seconds a start may take until the color serves.
    type: float
    default: 60
  stop_timeout:
    description:
      - Seconds a stopping color gets after SIGTERM before its process group is killed
        (supervisor C(stopwaitsecs), systemd C(TimeoutStopSec)).
    type: int
    default: 15
  supervisor_conf_dir:
    description:
      - Directory of supervisor program files; supervisord's configuration must include it.
    type: path
    default: /etc/supervisor/conf.d
  supervisor_config:
    description:
      - supervisord's configuration file. The module reaches supervisord where
        supervisorctl would (C([supervisorctl] serverurl), username and password, else the
        C([unix_http_server]) socket) and talks to its XML-RPC interface.
    type: path
    default: /etc/supervisor/supervisord.conf
  systemd_unit_dir:
    description:
      - Where the template unit C(<name>@.service) goes.
    type: path
    default: /etc/systemd/system
  systemd_colors_dir:
    description:
      - Where each color's environment file and start script go, for example
        V(/srv/app/colors); created when missing.
      - Required with systemd when starting.
    type: path
  probe:
    description:
      - How to tell the color serves. Without it, a color serves once the process manager
        says it runs.
    type: dict
    suboptions:
      url:
        description:
          - The color's own health URL, C(http://) on its port, for example
            V(http://127.0.0.1:8102/health).
        type: str
        required: true
      ready_url:
        description:
          - The color's readiness URL on the same port, for example
            V(http://127.0.0.1:8102/ready). Once O(probe.url) reports the version, the color
            serves only when this one answers 2xx too (an app may report its version before
            its database pool or caches are ready).
        type: str
      expect_version:
        description:
          - The version the color must report. Defaults to O(version); when neither is set,
            any status 200 answer will do.
        type: str
      version_path:
        description:
          - JSON path of the version in a JSON object body, dotted keys and C([N]) indexes
            as in health_gate. A body that is not a JSON object, or an empty path, is
            compared whole (stripped), like a plain-text C(/version) endpoint.
        type: str
        default: version
      timeout:
        description:
          - Seconds to wait for one answer.
        type: float
        default: 2.0
      wait_interval:
        description:
          - Seconds between two looks at the process and the probe.
        type: float
        default: 0.1
notes:
  - supervisor is driven through supervisord's XML-RPC interface, the one supervisorctl
    uses, on the socket named in O(supervisor_config). That takes about 1 ms a call where each
    C(supervisorctl) run costs a Python start-up (0.14 s), and it gives the pid, the spawn
    error and the exit status that C(supervisorctl status) does not print. Loading a new
    definition does what C(supervisorctl update <program>) does, for this program only.
  - A process that exits during supervisor's C(startsecs) loses its exit status in
    supervisor's state; the module reads it from supervisord's own log.
  - The systemd side (files, C(systemctl), C(journalctl)) is covered by unit tests of what it
    renders and how it reads C(systemctl show); the integration tests run under supervisor
    only, there is no systemd where they run.
  - After the process manager stopped the color, processes left in its process group
    (children that ignore SIGTERM) get the rest of O(stop_timeout), then SIGKILL.
  - The probe is a plain C(http.client) GET per look, a new connection each time.
extends_documentation_fragment:
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description:
      - Reports which files would change and whether the color would be stopped, reloaded and
        started, and touches nothing. The probe of a running color is sent (a GET) to tell
        whether it already serves.
  diff_mode:
    support: full
    description: The definition files, with the environment's values masked.

  action_group:
    support: full
    membership: [prodready.deploy.deploy]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) sets this module's options."""

EXAMPLES = r"""
- name: Start the idle color on the new release and wait until it serves it
  prodready.deploy.color_process:
    name: myapp
    color: green
    process_manager: supervisor
    command: /srv/myapp/releases/1.4.0/.venv/bin/python -m myapp --port 8102
    directory: /srv/myapp/releases/1.4.0
    environment:
      APP_ENV_FILE: /srv/myapp/shared/.env
      DATABASE_URL: "{{ vault_database_url }}"
    log_file: /srv/myapp/logs/green.log
    version: 1.4.0
    port: 8102
    start_timeout: 60
    probe:
      url: http://127.0.0.1:8102/health
  register: green_start

- name: Same under systemd, the version read from a plain-text endpoint
  prodready.deploy.color_process:
    name: myapp
    color: blue
    process_manager: systemd
    command: /srv/myapp/releases/1.4.0/.venv/bin/gunicorn -b 127.0.0.1:8101 myapp.wsgi
    directory: /srv/myapp/releases/1.4.0
    systemd_colors_dir: /srv/myapp/colors
    version: 1.4.0
    port: 8101
    probe:
      url: http://127.0.0.1:8101/version
      version_path: ""

- name: Stop the old color, its whole process group, and check its port closed
  prodready.deploy.color_process:
    name: myapp
    color: blue
    state: stopped
    process_manager: supervisor
    port: 8101
"""

RETURN = r"""
program:
  description: The process manager's name of the color (supervisor program, systemd unit).
  returned: always
  type: str
  sample: myapp-green
state:
  description:
    - The process manager's word for the color at the end (supervisor's state name, systemd's
      C(ActiveState (SubState))).
  returned: always
  type: str
  sample: RUNNING
pid:
  description: Main process id, V(null) when none runs.
  returned: always
  type: int
  sample: 4242
actions:
  description:
    - What was done, in order (in check mode, what would be done) - V(write) (files),
      V(stop), V(kill group) (processes left after the stop), V(reload) (new definition
      loaded), V(start).
  returned: always
  type: list
  elements: str
  sample: [write, stop, reload, start]
program_file:
  description: The file that holds the color's definition and environment (supervisor program
    file, systemd environment file).
  returned: always
  type: str
  sample: /etc/supervisor/conf.d/myapp-green.conf
files_changed:
  description: Files written (or whose mode was put back), or that would be in check mode.
  returned: always
  type: list
  elements: str
  sample: [/etc/supervisor/conf.d/myapp-green.conf]
probe:
  description:
    - The probe's last answer - C(url), C(ok), C(status), C(version) (as read), C(error) (why it
      did not pass), C(attempts), and C(elapsed_s) (seconds from the start until it passed).
    - Its keys are V(null) when the probe was not sent.
  returned: always
  type: dict
  sample: {url: "http://127.0.0.1:8102/health", ok: true, status: 200, version: 1.4.0, error: null,
           attempts: 7, elapsed_s: 1.02}
elapsed_s:
  description: Seconds the module took.
  returned: always
  type: float
  sample: 1.21
log_tail:
  description: The last lines the color wrote since the failed start (at most 10).
  returned: failure
  type: list
  elements: str
  sample: ["Traceback (most recent call last):", "RuntimeError: DATABASE_URL is not set"]
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _process_io
from ansible_collections.prodready.deploy.plugins.module_utils import _process_manager as pm


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        color=dict(type="str", required=True),
        state=dict(type="str", default="started", choices=["started", "stopped", "restarted", "resumed"]),
        process_manager=dict(type="str", default="systemd", choices=["supervisor", "systemd"]),
        command=dict(type="str"),
        directory=dict(type="path"),
        environment=dict(type="dict", default={}, no_log=True),
        log_file=dict(type="path"),
        version=dict(type="str"),
        port=dict(type="int"),
        start_timeout=dict(type="float", default=60.0),
        stop_timeout=dict(type="int", default=15),
        supervisor_conf_dir=dict(type="path", default="/etc/supervisor/conf.d"),
        supervisor_config=dict(type="path", default="/etc/supervisor/supervisord.conf"),
        systemd_unit_dir=dict(type="path", default="/etc/systemd/system"),
        systemd_colors_dir=dict(type="path"),
        probe=dict(type="dict", options=dict(
            url=dict(type="str", required=True),
            ready_url=dict(type="str"),
            expect_version=dict(type="str"),
            version_path=dict(type="str", default="version"),
            timeout=dict(type="float", default=2.0),
            wait_interval=dict(type="float", default=0.1),
        )),
    )


def validate(params):
    """Check every value before touching anything; returns (spec, probe or None)."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    starting = params["state"] != "stopped"
    pm.check_name("name", params["name"])
    pm.check_name("color", params["color"])
    if params["port"] is not None and not 1 <= params["port"] <= 65535:
        raise ProdreadyError("port must be 1 to 65535, got %s" % params["port"])
    if params["start_timeout"] <= 0 or params["stop_timeout"] < 0:
        raise ProdreadyError("start_timeout must be greater than 0 and stop_timeout 0 or greater, got %s and %s"
                             % (params["start_timeout"], params["stop_timeout"]))
    if params["version"] and any(c in params["version"] for c in "\r\n"):
        raise ProdreadyError("version holds a line break")
    supervisor = params["process_manager"] == "supervisor"
    if starting and supervisor and not params["log_file"]:
        raise ProdreadyError("log_file is required with supervisor (state=%s): the last lines of a failed start "
                             "are read from it" % params["state"])
    if starting and not supervisor and not params["systemd_colors_dir"]:
        raise ProdreadyError("systemd_colors_dir is required with systemd (state=%s): the color's environment "
                             "file and start script go there" % params["state"])
    probe_params = params["probe"] or {}
    interval = probe_params.get("wait_interval", 0.1)
    if probe_params and (probe_params["timeout"] <= 0 or interval <= 0):
        raise ProdreadyError("probe.timeout and probe.wait_interval must be greater than 0, got %s and %s"
                             % (probe_params["timeout"], interval))
    spec = dict(name=params["name"], color=params["color"], version=params["version"] or "",
                command=params["command"] or "", directory=params["directory"] or "",
                environment=pm.check_environment(params["environment"]), log_file=params["log_file"],
                port=params["port"], start_timeout=params["start_timeout"], stop_timeout=params["stop_timeout"],
                supervisor_conf_dir=params["supervisor_conf_dir"], supervisor_config=params["supervisor_config"],
                systemd_unit_dir=params["systemd_unit_dir"], colors_dir=params["systemd_colors_dir"],
                probe_interval=interval)
    prober = None
    if starting and probe_params:
        expect = probe_params["expect_version"] or params["version"] or None
        prober = _process_io.HttpProbe(probe_params["url"], probe_params["timeout"], expect,
                                       probe_params["version_path"], probe_params["ready_url"])
    return spec, prober


def _stop(module, manager, spec):
    actions = []
    observed = _process_io.stop_color(manager, spec, module.check_mode, actions)
    if actions and not module.check_mode:
        observed = manager.observe()
    return dict(changed=bool(actions), actions=actions, state=observed["word"], pid=observed["pid"],
                program_file=manager.program_file, files_changed=[], diff=[],
                probe=dict(url=None, ok=None, status=None, version=None, error=None, attempts=0, elapsed_s=None))


def run(module):
    """The module's work for `module.params`; returns the result dict."""
    began = time.monotonic()
    spec, prober = validate(module.params)
    if module.params["process_manager"] == "supervisor":
        manager = _process_io.Supervisor(spec)
        program = manager.program
    else:
        manager = _process_io.Systemd(spec, module)
        program = manager.unit
    try:
        if module.params["state"] == "stopped":
            result = _stop(module, manager, spec)
        else:
            result = _process_io.start_color(manager, spec, prober, module.check_mode,
                                             module.params["state"] == "restarted",
                                             resume=module.params["state"] == "resumed")
    except ProdreadyError as exc:
        exc.details.update(program=program, elapsed_s=round(time.monotonic() - began, 3))
        if not module._diff:
            exc.details.pop("diff", None)
        raise
    result.update(program=program, elapsed_s=round(time.monotonic() - began, 3))
    if not module._diff:
        result.pop("diff")
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[["state", "started", ["command", "directory"]],
                                        ["state", "restarted", ["command", "directory"]]])
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)


if __name__ == "__main__":
    main()
