# -*- coding: utf-8 -*-
"""Unit tests of the release_exec module: docs agree with the code; real commands in a
release laid out in a temporary directory (a venv made of a bin/python link)."""

import hashlib
import json
import os
import stat
import sys

import pytest
import yaml

from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args

from ansible_collections.prodready.deploy.plugins.modules import release_exec

sys.path.insert(0, os.path.dirname(__file__))
from _db_modules_helpers import documented_attributes  # noqa: E402

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations"}
SECRET = "s3cret-of-the-env-file"


def run_main(capsys, args, check=False):
    with patch_module_args(dict(args, _ansible_check_mode=check)):
        with pytest.raises(SystemExit):
            release_exec.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def app(tmp_path):
    """An app root: releases 1.0.0 (live) and 1.1.0, each with a venv whose python is this one."""
    for version in ("1.0.0", "1.1.0"):
        bin_dir = tmp_path / "releases" / version / ".venv" / "bin"
        bin_dir.mkdir(parents=True)
        python = os.path.realpath(sys.executable)
        os.symlink(python, str(bin_dir / "python"))
        (bin_dir.parent / "pyvenv.cfg").write_text("home = %s\n" % os.path.dirname(python))
    (tmp_path / "releases" / ".1.2.0.tmp").mkdir()  # a build's leftover: not a release
    (tmp_path / "shared").mkdir()
    env_file = tmp_path / "shared" / ".env"
    env_file.write_text("# app\nTOKEN=%s\nexport MODE='prod'\n" % SECRET)
    os.chmod(str(env_file), 0o600)
    (tmp_path / "state.json").write_text(json.dumps({"live_version": "1.0.0"}))
    return tmp_path


def args(app, **more):
    return dict(dict(releases_dir=str(app / "releases"), state_path=str(app / "state.json"),
                     env_file=str(app / "shared" / ".env"), audit_log=str(app / "audit.log")), **more)


def test_documented_options_match_argument_spec():
    doc = yaml.safe_load(release_exec.DOCUMENTATION)
    options = doc["options"]
    spec = release_exec.argument_spec()
    assert set(options) == set(spec)
    for name, opt in spec.items():
        assert options[name].get("type", "str") == opt.get("type", "str"), name
        assert options[name].get("default") == opt.get("default"), name
        assert bool(options[name].get("required", False)) == bool(opt.get("required", False))
    assert set(documented_attributes(release_exec)) == {"check_mode", "diff_mode", "platform", "action_group"}


def test_examples_use_documented_options():
    options = yaml.safe_load(release_exec.DOCUMENTATION)["options"]
    for task in yaml.safe_load(release_exec.EXAMPLES):
        assert set(task["prodready.deploy.release_exec"]) <= set(options), task["name"]


def test_every_returned_key_is_documented(app, capsys):
    documented = set(yaml.safe_load(release_exec.RETURN))
    result = run_main(capsys, args(app, command="echo out; echo err >&2"))
    assert not result.get("failed"), result
    assert set(result) - COMMON_RESULT_KEYS <= documented
    assert documented <= set(result) | COMMON_RESULT_KEYS


def test_runs_in_the_live_release_with_its_venv_and_the_env_file_values_never_returned(app, capsys):
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    probe = ("import hashlib, os, sys; print(sys.prefix); print(os.getcwd());"
             " print(hashlib.sha256(os.environ['TOKEN'].encode()).hexdigest() == %r, os.environ['MODE'])" % digest)
    result = run_main(capsys, args(app, argv=["python", "-c", probe], launch={"launched_by": "alice", "job": {"id": "42"}}))
    release = app / "releases" / "1.0.0"
    assert result["rc"] == 0 and result["reason"] is None, result
    assert result["stdout"].splitlines() == [str(release / ".venv"), str(release), "True prod"]
    assert result["version"] == "1.0.0" and result["releases"] == ["1.0.0", "1.1.0"]
    assert result["env_names"] == ["MODE", "TOKEN"] and result["env_file_loaded"] is True
    line = json.loads((app / "audit.log").read_text())
    assert (line["action"], line["version"], line["rc"], line["result"], line["launched_by"], line["job"]) == (
        "exec", "1.0.0", 0, "success", "alice", {"id": "42", "url": None})
    assert stat.S_IMODE(os.stat(str(app / "audit.log")).st_mode) == 0o600
    assert SECRET not in json.dumps(result) and SECRET not in (app / "audit.log").read_text()


def test_a_non_zero_rc_fails_with_the_end_of_stderr_and_is_audited(app, capsys):
    result = run_main(capsys, args(app, version="1.1.0", command="echo first >&2; echo last >&2; exit 4"))
    assert result["failed"] and result["rc"] == 4
    assert result["msg"] == "the command exited with rc 4: first | last"
    assert json.loads((app / "audit.log").read_text())["rc"] == 4


def test_check_rc_false_returns_the_failure_as_a_result(app, capsys):
    result = run_main(capsys, args(app, command="exit 2", check_rc=False))
    assert not result.get("failed") and result["rc"] == 2 and result["reason"] == "the command exited with rc 2 (nothing on stderr)"


def test_a_timeout_ends_the_process_group(app, capsys):
    result = run_main(capsys, args(app, command="sleep 30 & sleep 30; echo never", timeout=0.5, check_rc=False))
    assert result["timed_out"] is True and result["rc"] in (124, 137) and "never" not in result["stdout"]
    assert result["reason"].startswith("the command timed out after 0.5 s")


def test_long_output_returns_its_end(app, capsys):
    result = run_main(capsys, args(app, command="seq 1 5000", output_limit=100, tail_lines=3))
    assert result["stdout_truncated"] and result["stdout_line_count"] == 5000 and result["stdout_bytes"] > 100
    assert result["stdout"].endswith("4999\n5000\n") and len(result["stdout"]) <= 100
    assert result["stdout_tail"] == ["4998", "4999", "5000"]


def test_check_mode_runs_nothing(app, capsys):
    result = run_main(capsys, args(app, command="touch ran"), check=True)
    assert result["rc"] is None and result["version"] == "1.0.0" and result["changed"] is True  # would run
    assert not (app / "releases" / "1.0.0" / "ran").exists() and not (app / "audit.log").exists()


@pytest.mark.parametrize("more, message", [
    (dict(version="9.9.9", command="true"),
     "version: 9.9.9 is not a release on this host: no directory {app}/releases/9.9.9 (releases present: 1.0.0, 1.1.0)"),
    (dict(command="  "), "command: empty"),
    (dict(command="true", timeout=-1), "timeout: must be 0 or more, got -1"),
    (dict(command="true", run_as="no-such-user-x"), "run_as: no user no-such-user-x on this host"),
    (dict(command="true", lock_path="{app}/deploy.lock"), "allow_locked: deploy 2.0 (run r1) holds the deploy lock"),
    (dict(command="true", venv="{app}/none"), "venv: {app}/none has no bin/python"),
])
def test_refusals_name_the_option_and_run_nothing(app, capsys, more, message):
    (app / "deploy.lock").write_text(json.dumps({"owner": "deploy 2.0", "run_id": "r1", "since_epoch": 1}))
    more = dict((k, v.format(app=app) if isinstance(v, str) else v) for k, v in more.items())
    result = run_main(capsys, args(app, **more))
    assert result["failed"] and result["msg"].startswith(message.format(app=app)), result["msg"]
    assert not (app / "audit.log").exists()


def test_a_missing_env_file_is_a_warning(app, capsys, monkeypatch):
    # Once a controller-side test of the session has imported Ansible's controller code, module
    # warnings go to its display instead of the result: run as a module would, without the
    # warnings other tests left.
    from ansible.module_utils import _internal  # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(_internal, "is_controller", False)
    monkeypatch.setattr(ansible_warnings, "_global_warnings", {})
    result = run_main(capsys, args(app, command="true", env_file=str(app / "none.env")))
    assert result["rc"] == 0 and result["env_file_loaded"] is False
    assert "does not exist" in json.dumps(result.get("warnings"))


def test_a_lock_is_ignored_with_allow_locked(app, capsys):
    (app / "deploy.lock").write_text(json.dumps({"owner": "deploy 2.0", "run_id": "r1", "since_epoch": 1}))
    result = run_main(capsys, args(app, command="true", lock_path=str(app / "deploy.lock"), allow_locked=True))
    assert result["rc"] == 0


def test_run_as_drops_to_that_user(app, capsys):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    os.chmod(str(app), 0o755)
    result = run_main(capsys, args(app, command="id -un; echo $HOME", run_as="nobody"))
    assert result["rc"] == 0 and result["stdout"].splitlines()[0] == "nobody" and result["run_as"] == "nobody"
