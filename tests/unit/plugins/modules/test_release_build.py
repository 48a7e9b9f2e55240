# -*- coding: utf-8 -*-
"""Unit tests of the release_build module: docs agree with the code; the decisions on real
files (small tarballs, an existing venv so that nothing is installed). Builds with uv and
pip are in tests/integration/test_release_build.py."""

import hashlib
import io
import json
import os
import sys
import tarfile

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.prodready.deploy.plugins.modules import release_build

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations"}
SHARED_VENV = sys.prefix  # the test interpreter's venv: "an existing venv", nothing installed


def run_main(capsys, args, check=False):
    with patch_module_args(dict(args, _ansible_check_mode=check)):
        with pytest.raises(SystemExit):
            release_build.main()
    return json.loads(capsys.readouterr().out)


def make_tarball(path, files, links=()):
    """A .tar.gz at `path` with `files` {name: text} and `links` [(name, type, target)]."""
    with tarfile.open(str(path), "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, kind, target in links:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tar.addfile(info)
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def listing(directory):
    return sorted(os.listdir(str(directory)))


@pytest.fixture
def app(tmp_path):
    art, sha = make_tarball(tmp_path / "app-1.0.tar.gz", {"app/__init__.py": "V = 1\n", "RELEASE": "1.0\n"})
    releases = tmp_path / "releases"
    return dict(art=art, sha=sha, releases=releases,
                args=dict(path=str(releases / "1.0"), version="1.0", artifact=art, venv=SHARED_VENV))


def test_documented_options_match_argument_spec():
    doc = yaml.safe_load(release_build.DOCUMENTATION)
    options = doc["options"]
    spec = release_build.argument_spec()
    assert set(options) == set(spec)
    for name, opt in spec.items():
        assert options[name].get("type", "str") == opt.get("type", "str"), name
        assert options[name].get("default") == opt.get("default"), name
        assert options[name].get("choices") == opt.get("choices"), name
        assert options[name].get("elements") == opt.get("elements"), name
        assert bool(options[name].get("required", False)) == bool(opt.get("required", False))
    assert all(a.get("description") for a in doc["attributes"].values())
    for task in yaml.safe_load(release_build.EXAMPLES):
        if "prodready.deploy.release_build" in task:
            assert set(task["prodready.deploy.release_build"]) <= set(options), task["name"]


def test_every_returned_key_is_documented(app, capsys):
    documented = set(yaml.safe_load(release_build.RETURN))
    built = run_main(capsys, app["args"])
    assert built["changed"] and not built.get("failed"), built.get("msg")
    assert set(built) - COMMON_RESULT_KEYS == documented - {"step"}
    reused = run_main(capsys, app["args"])
    assert set(reused) - COMMON_RESULT_KEYS == documented - {"step"}
    failed = run_main(capsys, dict(app["args"], sha256="0" * 64))
    assert failed["failed"] and failed["step"] == "artifact"
    assert set(failed) - COMMON_RESULT_KEYS <= documented


def test_build_then_reuse_with_an_existing_venv(app, capsys):
    built = run_main(capsys, app["args"])
    release = app["releases"] / "1.0"
    assert built["changed"] and built["reused"] is False and built["installer"] == "none"
    assert built["artifact_id"] == app["sha"] and built["python"] == os.path.join(SHARED_VENV, "bin", "python")
    assert built["python_version"] == "%d.%d.%d" % sys.version_info[:3]
    assert listing(release) == [".release.json", "RELEASE", "app"]
    marker = json.loads((release / ".release.json").read_text())
    assert marker["artifact"] == app["sha"] and marker["version"] == "1.0" and marker["installer"] == "none"
    assert oct(os.stat(str(release)).st_mode & 0o777) == "0o755"
    assert listing(app["releases"]) == ["1.0"]  # no temporary sibling left
    again = run_main(capsys, dict(app["args"], sha256="sha256:" + app["sha"].upper()))
    assert again["changed"] is False and again["reused"] is True
    assert again["durations"] == {"unpack": 0.0, "venv": 0.0, "install": 0.0}


def test_check_mode_predicts_and_writes_nothing(app, capsys):
    predicted = run_main(capsys, app["args"], check=True)
    assert predicted["changed"] is True and predicted["reused"] is False
    assert not app["releases"].exists()
    run_main(capsys, app["args"])
    assert run_main(capsys, app["args"], check=True)["changed"] is False


def test_wrong_sha256_is_refused_before_anything_is_written(app, capsys):
    result = run_main(capsys, dict(app["args"], sha256="e" * 64))
    assert result["failed"]
    assert result["msg"] == ("artifact %s has sha256 %s, expected %s: refusing to build a release from it"
                             % (app["art"], app["sha"], "e" * 64))
    assert not app["releases"].exists()


def test_other_content_under_the_same_version_is_refused(app, tmp_path, capsys):
    run_main(capsys, app["args"])
    other, other_sha = make_tarball(tmp_path / "other.tar.gz", {"app/__init__.py": "V = 2\n"})
    for check in (True, False):
        result = run_main(capsys, dict(app["args"], artifact=other), check=check)
        assert result["failed"]
        assert ("release 1.0 already exists in %s built from %s, and the artifact now is %s: a version must not "
                "change content" % (app["args"]["path"], app["sha"], other_sha)) in result["msg"]
    assert (app["releases"] / "1.0" / "app" / "__init__.py").read_text() == "V = 1\n"


@pytest.mark.parametrize("files, links, problem", [
    ({"../evil": "x"}, [], "'../evil' (a '..' in its path)"),
    ({"ok.py": ""}, [("ln", tarfile.SYMTYPE, "/etc/passwd")], "'ln' (a symlink to '/etc/passwd', outside"),
    ({"ok.py": ""}, [("d", tarfile.SYMTYPE, "."), ("d/x", tarfile.SYMTYPE, "..")], "'d/x' (below the symlink"),
])
def test_unsafe_tarball_is_refused_and_nothing_is_written(tmp_path, capsys, files, links, problem):
    art = make_tarball(tmp_path / "bad.tar.gz", files, links)[0]
    releases = tmp_path / "releases"
    args = dict(path=str(releases / "6.6.6"), version="6.6.6", artifact=art, venv=SHARED_VENV)
    for check in (True, False):
        result = run_main(capsys, args, check=check)
        assert result["failed"] and result["step"] == "unpack"
        assert problem in result["msg"] and "refusing to unpack it" in result["msg"]
    assert not releases.exists()
    assert not (tmp_path / "evil").exists()


def test_half_built_release_and_leftovers_are_replaced(app, capsys):
    release = app["releases"] / "1.0"
    (release / "app").mkdir(parents=True)
    (release / "app" / "stale.py").write_text("half\n")
    leftover = app["releases"] / "1.0.tmp-abc123"
    leftover.mkdir()
    result = run_main(capsys, app["args"])
    assert result["changed"] and not result.get("failed")
    assert listing(release / "app") == ["__init__.py"]
    assert listing(app["releases"]) == ["1.0"]


def test_strip_components(tmp_path, capsys):
    art = make_tarball(tmp_path / "a.tar.gz", {"myapp-2.0/app.py": "", "myapp-2.0/pkg/m.py": ""})[0]
    result = run_main(capsys, dict(path=str(tmp_path / "r" / "2.0"), version="2.0", artifact=art,
                                   venv=SHARED_VENV, strip_components=1))
    assert result["changed"], result.get("msg")
    assert listing(tmp_path / "r" / "2.0") == [".release.json", "app.py", "pkg"]


@pytest.mark.parametrize("args, match", [
    (dict(version=" "), "version: must not be empty"),
    (dict(path="relative/1.0"), "path: must be an absolute directory path"),
    (dict(artifact="/nonexistent.tgz"), "artifact: /nonexistent.tgz is not a file on this host"),
    (dict(venv="/nonexistent-venv"), "venv: /nonexistent-venv is not a venv"),
    (dict(sha256="xyz"), "sha256: 'xyz' is not a sha256 digest"),
    (dict(timeout=0), "timeout: must be more than 0 seconds"),
    (dict(strip_components=-1), "strip_components: must be 0 or more"),
    (dict(artifact_type="pip", pip_requirement="a==1", sha256="0" * 64), "sha256: is checked for a tarball only"),
    (dict(artifact_type="pip", pip_requirement=" "), "pip_requirement: must not be empty"),
])
def test_invalid_options_name_the_option(app, capsys, args, match):
    result = run_main(capsys, dict(app["args"], **args))
    assert result["failed"] and match in result["msg"], result["msg"]


def test_index_credentials_never_appear_in_the_result(app, capsys):
    args = dict(app["args"], pip_args=["--index-url", "https://deploy:s3cretTok@pypi.example/simple"])
    result = run_main(capsys, args)
    text = json.dumps(result)
    assert "s3cretTok" not in text
    assert result["invocation"]["module_args"]["pip_args"][1].startswith("https://")


def test_venv_naming_the_release_own_is_built_not_required_to_exist(app, capsys):
    own = os.path.join(app["args"]["path"], ".venv")
    predicted = run_main(capsys, dict(app["args"], venv=own + "/", installer="pip"), check=True)
    assert not predicted.get("failed"), predicted.get("msg")
    assert predicted["installer"] == "pip" and predicted["venv"] == own
    assert predicted["python"] == os.path.join(own, "bin", "python")
