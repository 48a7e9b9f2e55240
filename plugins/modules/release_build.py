# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: release_build
short_description: Build a release directory with its own venv from an artifact on the host, or reuse it
version_added: 0.1.0
description:
  - Turns an artifact already on the app host (a tarball, or a pip requirement) into a complete
    release directory O(path) (for example C(/srv/app/releases/1.4.0)) holding the code and its
    own venv, in one module call; replaces the dozen tasks of copy, checksum, unpack,
    C(python -m venv) and C(pip install).
  - The artifact is identified by the sha256 of the tarball, or by the pip requirement string.
    A tarball whose sha256 is not O(sha256) is refused, naming both digests, before anything is
    written.
  - The release directory's C(.release.json) marker, written last, records what it was built
    from. A release already built from the same artifact is reused (C(changed=false), no venv
    work). A release built from another artifact is refused - a version must not change
    content. A directory without a marker is a half-built one and is built again.
  - The tarball's members are checked before anything is written; absolute paths, C(..) parts,
    links that point outside the release, members below a symlink, devices and fifos are
    refused. Python's own C(data) extraction filter is applied too where it exists.
  - The venv is created and filled by uv when it is found (O(installer=auto)), which is an
    order of magnitude faster than pip (measured on the sample app from local wheels, about
    0.3 s against 6 s); pip otherwise.
author:
  - prodready.deploy maintainers (@prodready)
options:
  path:
    description:
      - The release directory, for example C(/srv/app/releases/1.4.0). Its parent is created
        when missing.
    type: path
    required: true
  version:
    description:
      - The version being released, recorded in the marker and named in messages.
    type: str
    required: true
  artifact_type:
    description:
      - V(tarball) unpacks O(artifact) into the release; V(pip) installs O(pip_requirement)
        into the release's venv (the release directory then holds only the venv and the marker).
    type: str
    choices: [tarball, pip]
    default: tarball
  artifact:
    description:
      - The tarball on the host (any compression tarfile reads). With O(artifact_type=tarball),
        this or O(src) is required.
    type: path
  src:
    description:
      - The tarball on the controller (a path, or a name found in the play's C(files/)
        directories). The module's action plugin sends it to the task's temporary directory
        on the host and builds from there, in the same task; the copy is removed when the
        task ends. Mutually exclusive with O(artifact).
    type: path
  pip_requirement:
    description:
      - The requirement to install, for example C(myapp==1.4.0). Required with O(artifact_type=pip).
    type: str
  sha256:
    description:
      - The expected sha256 of O(artifact) (a C(sha256:) prefix is allowed). Empty means not
        checked, only recorded.
      - Only for a tarball; pin a pip requirement's hashes with C(--require-hashes) in a
        requirements file.
    type: str
    default: ""
  strip_components:
    description:
      - Leading path parts dropped from the tarball's member names (V(1) for a tarball whose
        members are all below C(myapp-1.4.0/)), as C(tar --strip-components).
    type: int
    default: 0
  requirements:
    description:
      - Requirement files to install, relative to the release directory (or absolute).
      - Not set means C(requirements.txt) when the release has one, else nothing. A file
        given here that does not exist is an error.
    type: list
    elements: str
  constraints:
    description:
      - Constraint files, relative to the release directory (or absolute).
    type: list
    elements: str
    default: []
  pip_args:
    description:
      - Extra arguments of the install command, for example
        C([--no-index, --find-links, /srv/wheels]).
      - The credentials of an index URL (C(https://user:token@host/simple)) are masked in
        every message and result.
    type: list
    elements: str
    default: []
  base_python:
    description:
      - The interpreter the venv is created from, a name on the host's PATH or a path.
    type: str
    default: python3
  venv:
    description:
      - Empty (or C(<path>/.venv)) means the release's own venv, C(<path>/.venv), built by this module.
      - An existing venv (for example one baked into the machine image) is used as it is; it
        must already hold the app's requirements, and nothing is installed into it.
    type: path
  installer:
    description:
      - V(auto) uses uv when it is found and takes every option of O(pip_args), else pip.
      - V(uv) fails when uv is not found; V(pip) always uses C(python -m venv) and pip.
    type: str
    choices: [auto, uv, pip]
    default: auto
  uv_path:
    description:
      - The uv program. Not set means C(uv) on the PATH, else beside the interpreter that runs
        this module (a controller venv with uv installed).
    type: path
  timeout:
    description:
      - Seconds the venv creation and the install may take together. A build that runs out
        of time is stopped (with its child processes) and removed.
    type: float
    default: 900
extends_documentation_fragment:
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Hashes the tarball and checks its members, then predicts reuse or a build
      (C(changed)), or fails as a real run would; nothing is written.
  diff_mode:
    support: none
    description: A release directory is built or reused whole; RV(reused) tells which.
  action_group:
    support: full
    membership: [prodready.deploy.deploy]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) sets this module's options.
notes:
  - The venv is created at its final path, because venvs are not relocatable (C(python -m venv)
    writes the venv's absolute path into the shebang of every script). So the code is unpacked
    into a temporary sibling C(<path>.tmp-<random>), renamed into place (replacing a half-built
    directory), and the venv is built there; the marker is written last, atomically. A build that
    is killed leaves a directory without a marker, which the next run builds again, or a sibling
    C(<path>.tmp-*) / C(<path>.old-*), which the next build of that release removes. A build that
    fails removes the release directory.
  - Builds of one release must not run concurrently; the deploy lock of the blue_green role
    serializes them.
  - A reused release is not rebuilt when O(requirements), O(constraints) or O(pip_args) change,
    because a version's content is its artifact. A release whose venv is gone is built again.
  - uv's venvs hold no pip, and uv does not compile bytecode unless C(--compile) is in O(pip_args)
    (the app then compiles its modules when it first imports them).
  - Requires coreutils C(timeout) on the host for O(timeout).
seealso:
  - module: prodready.deploy.alembic_migrate
"""

EXAMPLES = r"""
- name: Send the tarball from the controller and build (or reuse) the release from local wheels
  prodready.deploy.release_build:
    path: /srv/myapp/releases/1.4.0
    version: 1.4.0
    src: dist/myapp-1.4.0.tar.gz
    sha256: 9f2c4e0d8b1a7c3e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6
    pip_args: [--no-index, --find-links, /srv/wheels]
  register: release

- name: Migrate with the release's own interpreter
  prodready.deploy.alembic_migrate:
    project_path: "{{ release.path }}"
    python: "{{ release.python }}"
    database_url: "{{ vault_database_url }}"

- name: A tarball already on the host
  prodready.deploy.release_build:
    path: /srv/myapp/releases/1.4.0
    version: 1.4.0
    artifact: /srv/incoming/myapp-1.4.0.tar.gz

- name: A PyPI-packaged server, from a private index, built with pip
  prodready.deploy.release_build:
    path: /srv/srv2/releases/2.3.1
    version: 2.3.1
    artifact_type: pip
    pip_requirement: "acme-server[postgres]==2.3.1"
    pip_args: [--index-url, "https://deploy:{{ vault_index_token }}@pypi.example.com/simple"]
    installer: pip
"""

RETURN = r"""
path:
  description: The release directory.
  returned: always
  type: str
  sample: /srv/myapp/releases/1.4.0
version:
  description: The version released.
  returned: always
  type: str
  sample: 1.4.0
reused:
  description: V(true) when the release was already built from this artifact and is used as it is.
  returned: always
  type: bool
  sample: false
artifact_id:
  description: What the release is built from, the tarball's sha256 or the pip requirement.
  returned: always
  type: str
  sample: 9f2c4e0d8b1a7c3e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6
venv:
  description: The release's venv.
  returned: always
  type: str
  sample: /srv/myapp/releases/1.4.0/.venv
python:
  description: The venv's interpreter, to run the app, its hooks and its migrations with.
  returned: always
  type: str
  sample: /srv/myapp/releases/1.4.0/.venv/bin/python
python_version:
  description: The venv's Python version, V(null) when not known (a build in check mode).
  returned: always
  type: str
  sample: 3.11.7
installer:
  description:
    - The installer that built the venv (V(uv) or V(pip)), or would in check mode; on reuse, the
      one the marker records. V(none) when O(venv) is an existing venv, V(null) when unknown.
  returned: always
  type: str
  sample: uv
installer_reason:
  description: Why that installer (for example V(uv not found)); empty on reuse.
  returned: always
  type: str
  sample: uv found at /usr/local/bin/uv
durations:
  description: Seconds spent unpacking, creating the venv and installing (zeros on reuse).
  returned: always
  type: dict
  sample: {"unpack": 0.04, "venv": 0.05, "install": 0.31}
state:
  description: Added by Ansible for RV(path) - V(directory).
  returned: when path exists
  type: str
  sample: directory
mode:
  description: Added by Ansible for RV(path) - its permissions.
  returned: when path exists
  type: str
  sample: "0755"
owner:
  description: Added by Ansible for RV(path) - owner name.
  returned: when path exists
  type: str
  sample: deploy
group:
  description: Added by Ansible for RV(path) - group name.
  returned: when path exists
  type: str
  sample: deploy
uid:
  description: Added by Ansible for RV(path) - owner id.
  returned: when path exists
  type: int
  sample: 1001
gid:
  description: Added by Ansible for RV(path) - group id.
  returned: when path exists
  type: int
  sample: 1001
size:
  description: Added by Ansible for RV(path) - size of the directory entry in bytes.
  returned: when path exists
  type: int
  sample: 4096
step:
  description: The step that failed (V(artifact), V(unpack), V(venv), V(install)).
  returned: failure
  type: str
  sample: install
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils._statefile import iso_utc
from ansible_collections.prodready.deploy.plugins.module_utils import _release
from ansible_collections.prodready.deploy.plugins.module_utils import _release_io


def argument_spec():
    """The module's options."""
    return dict(
        path=dict(type="path", required=True),
        version=dict(type="str", required=True),
        artifact_type=dict(type="str", default="tarball", choices=["tarball", "pip"]),
        artifact=dict(type="path"),
        src=dict(type="path"),
        pip_requirement=dict(type="str"),
        sha256=dict(type="str", default=""),
        strip_components=dict(type="int", default=0),
        requirements=dict(type="list", elements="str"),
        constraints=dict(type="list", elements="str", default=[]),
        pip_args=dict(type="list", elements="str", default=[]),
        base_python=dict(type="str", default="python3"),
        venv=dict(type="path"),
        installer=dict(type="str", default="auto", choices=["auto", "uv", "pip"]),
        uv_path=dict(type="path"),
        timeout=dict(type="float", default=900),
    )


def validate(params):
    """Refuse values the types alone do not catch; returns the expected sha256 ('' = none)."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    if not params["version"].strip():
        raise ProdreadyError("version: must not be empty")
    path = params["path"].rstrip("/")
    if not path or not os.path.isabs(path):
        raise ProdreadyError("path: must be an absolute directory path, got %r" % params["path"])
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ProdreadyError("path: %s exists and is not a directory" % path)
    if params.get("src"):
        raise ProdreadyError("src: the tarball on the controller is sent by this module's action plugin, which did "
                             "not run (call the module as prodready.deploy.release_build from a task), or give "
                             "artifact, a tarball already on the host")
    if params["strip_components"] < 0:
        raise ProdreadyError("strip_components: must be 0 or more, got %s" % params["strip_components"])
    if params["timeout"] <= 0:
        raise ProdreadyError("timeout: must be more than 0 seconds, got %s" % params["timeout"])
    if params["artifact_type"] == "pip":
        if not (params["pip_requirement"] or "").strip():
            raise ProdreadyError("pip_requirement: must not be empty with artifact_type=pip")
        if params["sha256"].strip():
            raise ProdreadyError("sha256: is checked for a tarball only; pin a pip requirement's hashes "
                                 "with --require-hashes in a requirements file")
    elif not os.path.isfile(params["artifact"]):
        raise ProdreadyError("artifact: %s is not a file on this host" % params["artifact"])
    if _shared_venv(params) and not _release_io.venv_ready(params["venv"]):
        raise ProdreadyError("venv: %s is not a venv (no executable bin/python); leave venv empty to "
                             "build the release's own" % params["venv"])
    return _release.normalize_sha256(params["sha256"])


def _shared_venv(params):
    """True when `venv` names an existing venv to use, not the release's own <path>/.venv."""
    own = os.path.join(params["path"].rstrip("/"), ".venv")
    return bool(params["venv"]) and os.path.normpath(params["venv"]) != own


def _result(params, path, venv, artifact, **fields):
    result = dict(changed=False, reused=False, path=path, version=params["version"], artifact_id=artifact,
                  venv=venv, python=_release_io.venv_python(venv), python_version=None, installer=None,
                  installer_reason="", durations=dict(unpack=0.0, venv=0.0, install=0.0))
    result.update(fields)
    return result


def _install_plan(params, code_dir):
    """(requirement files, pip requirement) to install, checked against the unpacked code."""
    requirements = _release.requirement_files(
        params["requirements"], params["artifact_type"],
        os.path.isfile(os.path.join(code_dir, _release.DEFAULT_REQUIREMENTS)))
    for option, names in (("requirements", requirements), ("constraints", params["constraints"])):
        for name in names:
            if not os.path.isfile(os.path.join(code_dir, name)):
                raise ProdreadyError("%s: %s is not a file in the release %s" % (option, name, params["path"]),
                                     step="install")
    return requirements, (params["pip_requirement"] if params["artifact_type"] == "pip" else None)


def _build(module, params, path, venv, artifact, installer, uv_bin, tar, members):
    """Build the release (see the module notes for the order); returns (durations, version)."""
    durations = dict(unpack=0.0, venv=0.0, install=0.0)
    own_venv = not _shared_venv(params)
    _release_io.clean_leftovers(path)
    tmp = _release_io.new_sibling(path)
    in_place, step = False, "unpack"
    try:
        started = time.monotonic()
        if tar is not None:
            _release_io.unpack(tar, members, tmp, params["artifact"])
        durations["unpack"] = round(time.monotonic() - started, 3)
        if own_venv:
            requirements, requirement = _install_plan(params, tmp)
            base_python = _release_io.find_python(module, params["base_python"])
            # The venv is built at its final path (venvs are not relocatable): code first.
            _release_io.put_in_place(tmp, path)
            in_place, step = True, "venv"
            commands = _release_io.Commands(module, params["timeout"])
            started = time.monotonic()
            commands.run("venv", _release.venv_argv(installer, uv_bin, base_python, venv), path,
                         "creating the venv %s" % venv)
            durations["venv"] = round(time.monotonic() - started, 3)
            if requirements or requirement:
                started, step = time.monotonic(), "install"
                commands.run("install", _release.install_argv(
                    installer, uv_bin, _release_io.venv_python(venv), params["pip_args"], requirements,
                    params["constraints"], requirement), path, "installing into %s with %s" % (venv, installer))
                durations["install"] = round(time.monotonic() - started, 3)
        version = _release_io.python_version(venv)
        marker = _release.make_marker(params["version"], params["artifact_type"], artifact, iso_utc(time.time()),
                                      installer if own_venv else "none", version, venv)
        _release_io.write_marker(path if in_place else tmp, marker)
        if not in_place:
            _release_io.put_in_place(tmp, path)
    except (IOError, OSError) as exc:
        _release_io.remove_tree(path if in_place else tmp)
        raise ProdreadyError("%s: building release %s in %s failed: %s" % (step, params["version"], path, to_native(exc)),
                             step=step)
    except BaseException:
        _release_io.remove_tree(path if in_place else tmp)
        raise
    return durations, version


def run(module):
    """Reuse or build the release of `module.params`; returns the result dict."""
    params = module.params
    expected = validate(params)
    path = params["path"].rstrip("/")
    shared = _shared_venv(params)
    venv = os.path.normpath(params["venv"]) if shared else os.path.join(path, ".venv")
    tar = members = digest = None
    if params["artifact_type"] == "tarball":
        digest = _release_io.sha256_file(params["artifact"])
        if expected and digest != expected:
            raise ProdreadyError(_release.sha256_mismatch_message(params["artifact"], expected, digest),
                                 step="artifact")
    artifact = _release.artifact_id(params["artifact_type"], digest, params["pip_requirement"] or "")
    marker = _release_io.read_marker(path)
    action = _release.decide(marker, artifact, _release_io.venv_ready(venv))
    if action == _release.CONFLICT:
        raise ProdreadyError(_release.conflict_message(params["version"], path, marker["artifact"], artifact),
                             step="artifact")
    if action == _release.REUSE:
        return _result(params, path, venv, artifact, reused=True, installer=marker.get("installer"),
                       python_version=marker.get("python_version") or _release_io.python_version(venv))
    if action == _release.REBUILD:
        module.warn("release %s in %s was built from this artifact but its venv %s is gone: building it again"
                    % (params["version"], path, venv))
    elif os.path.isdir(path):
        module.warn("release %s in %s has no %s (a build was interrupted): building it again"
                    % (params["version"], path, _release.MARKER))
    if shared:
        installer, reason = "none", "venv %s is used as it is" % venv
        uv_bin = None
    else:
        uv_bin = _release_io.find_uv(module, params["uv_path"]) if params["installer"] != "pip" else None
        installer, reason = _release.choose_installer(params["installer"], uv_bin, params["pip_args"])
    if params["artifact_type"] == "tarball":
        tar = _release_io.open_tarball(params["artifact"])
    try:
        if tar is not None:
            members = _release_io.checked_members(tar, params["artifact"], params["strip_components"])
        if module.check_mode:
            return _result(params, path, venv, artifact, changed=True, installer=installer, installer_reason=reason,
                           python_version=_release_io.python_version(venv) if shared else None)
        durations, version = _build(module, params, path, venv, artifact, installer, uv_bin, tar, members)
    finally:
        if tar is not None:
            tar.close()
    return _result(params, path, venv, artifact, changed=True, installer=installer, installer_reason=reason,
                   python_version=version, durations=durations)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("artifact_type", "tarball", ("artifact",)),
                                        ("artifact_type", "pip", ("pip_requirement",))])
    module.no_log_values.update(_release.secrets_in(module.params["pip_args"]))
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=_release.redact(str(e)), **e.details)


if __name__ == "__main__":
    main()
