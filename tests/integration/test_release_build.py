"""release_build, for real: the sample app's tarball becomes a release directory with its own
venv, built by uv or pip from the local wheel cache (no network), through ansible-playbook.

Each test names the behaviour it proves. The uv vs pip build times are measured and
printed (run with -s to see them), not asserted.
"""

import io
import json
import subprocess
import tarfile
import time

import pytest

import demo_app
from helpers import ROOT, run_module

pytestmark = pytest.mark.slow

MODULE = "prodready.deploy.release_build"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample app's 1.0.0 tarball, another 1.0.0 with other content, and the wheel cache."""
    base = tmp_path_factory.mktemp("release_build")
    wheels = demo_app.ensure_wheels()
    good = demo_app.build("1.0.0", "base", base / "dist")
    other = demo_app.build("1.0.0", "good", base / "dist-other")
    assert good["sha256"] != other["sha256"]
    return {"tarball": good["path"], "sha256": good["sha256"], "other": other["path"],
            "other_sha256": other["sha256"], "pip_args": ["--no-index", "--find-links", str(wheels)]}


def build_args(sample, path, **extra):
    args = {"path": str(path), "version": "1.0.0", "artifact": sample["tarball"], "sha256": sample["sha256"],
            "pip_args": sample["pip_args"]}
    args.update(extra)
    return args


def tarball_with(path, files):
    with tarfile.open(str(path), "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def imports(result, *modules):
    """Import `modules` with the release's own interpreter, from the release directory."""
    return subprocess.run([result["python"], "-c", "import %s; print('ok')" % ", ".join(modules)],
                          cwd=result["path"], capture_output=True, text=True, check=False, timeout=120)


def siblings(path):
    return sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else []


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_installer_builds_a_release_whose_venv_imports_the_app_and_alembic(sample, tmp_path, installer):
    release = tmp_path / "releases" / "1.0.0"
    result = run_module(MODULE, build_args(sample, release, installer=installer))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["reused"] is False
    assert result["installer"] == installer
    assert result["venv"] == str(release / ".venv") and result["python"] == str(release / ".venv" / "bin" / "python")
    assert result["artifact_id"] == sample["sha256"]
    assert result["python_version"].startswith("3.")
    assert set(result["durations"]) == {"unpack", "venv", "install"} and result["durations"]["install"] > 0
    proc = imports(result, "sampleapp", "alembic", "sqlalchemy", "fastapi")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    marker = json.loads((release / ".release.json").read_text())
    assert marker["artifact"] == sample["sha256"] and marker["installer"] == installer
    assert marker["version"] == "1.0.0" and marker["python_version"] == result["python_version"]
    assert siblings(release) == ["1.0.0"]


def test_auto_picks_uv_beside_the_module_interpreter_and_a_rerun_reuses_the_release(sample, tmp_path):
    release = tmp_path / "releases" / "1.0.0"
    first = run_module(MODULE, build_args(sample, release))
    assert not first.get("failed"), first.get("msg")
    assert first["installer"] == "uv" and first["installer_reason"] == "uv found at %s" % (ROOT / ".venv/bin/uv")
    venv_mtime = (release / ".venv" / "pyvenv.cfg").stat().st_mtime_ns
    again = run_module(MODULE, build_args(sample, release))
    assert again["changed"] is False and again["reused"] is True
    assert again["python"] == first["python"] and again["python_version"] == first["python_version"]
    assert again["durations"] == {"unpack": 0.0, "venv": 0.0, "install": 0.0}
    assert (release / ".venv" / "pyvenv.cfg").stat().st_mtime_ns == venv_mtime
    checked = run_module(MODULE, build_args(sample, release), check=True)
    assert checked["changed"] is False and checked["reused"] is True


def test_src_on_the_controller_is_sent_and_built_in_the_same_task_and_reused_after(sample, tmp_path):
    release = tmp_path / "releases" / "1.0.0"
    args = build_args(sample, release)
    args["src"] = args.pop("artifact")
    first = run_module(MODULE, args)
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] and first["artifact_src"] == sample["tarball"]
    assert first["artifact_id"].endswith(sample["sha256"]) and imports(first, "sampleapp").stdout.strip() == "ok"
    assert first["_stdout"].count("TASK [") == 2  # the build and the result dump: no copy task
    again = run_module(MODULE, args)
    assert again["reused"] is True and again["changed"] is False


@pytest.mark.parametrize("change, message", [
    ({"src": "/nonexistent/app-1.0.0.tar.gz"}, "src: cannot find the tarball '/nonexistent/app-1.0.0.tar.gz' on the controller"),
    ({"src": "TARBALL", "artifact": "TARBALL"}, "src and artifact are mutually exclusive"),
    ({"src": "TARBALL", "artifact_type": "pip", "pip_requirement": "x==1"}, "src: is a tarball on the controller, but artifact_type is 'pip'"),
])
def test_a_bad_src_is_refused_naming_it_and_nothing_is_written(sample, tmp_path, change, message):
    release = tmp_path / "releases" / "1.0.0"
    args = build_args(sample, release, sha256="")
    args.pop("artifact")
    args.update({k: (sample["tarball"] if v == "TARBALL" else v) for k, v in change.items()})
    result = run_module(MODULE, args)
    assert result["failed"] and message in result["msg"], result["msg"]
    assert not release.exists()


def test_check_mode_predicts_a_build_and_changes_nothing(sample, tmp_path):
    release = tmp_path / "releases" / "1.0.0"
    result = run_module(MODULE, build_args(sample, release), check=True)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["reused"] is False and result["installer"] == "uv"
    assert not release.parent.exists()


def test_a_wrong_sha256_is_refused_naming_both_and_nothing_is_written(sample, tmp_path):
    release = tmp_path / "releases" / "1.0.0"
    result = run_module(MODULE, build_args(sample, release, sha256="ab" * 32))
    assert result["failed"]
    assert result["msg"] == ("artifact %s has sha256 %s, expected %s: refusing to build a release from it"
                             % (sample["tarball"], sample["sha256"], "ab" * 32))
    assert not release.parent.exists()


def test_other_content_under_a_built_version_is_refused(sample, tmp_path):
    release = tmp_path / "releases" / "1.0.0"
    assert not run_module(MODULE, build_args(sample, release)).get("failed")
    result = run_module(MODULE, build_args(sample, release, artifact=sample["other"], sha256=""))
    assert result["failed"]
    assert ("release 1.0.0 already exists in %s built from %s, and the artifact now is %s: a version must not "
            "change content; deploy it under a new version" % (release, sample["sha256"], sample["other_sha256"])
            ) in result["msg"]
    assert json.loads((release / ".release.json").read_text())["artifact"] == sample["sha256"]


def test_a_tarball_with_a_dotdot_member_is_refused_and_nothing_is_written(tmp_path):
    evil = tarball_with(tmp_path / "evil.tar.gz", {"app.py": "", "../evil": "pwned\n"})
    release = tmp_path / "srv" / "releases" / "6.6.6"
    result = run_module(MODULE, {"path": str(release), "version": "6.6.6", "artifact": evil})
    assert result["failed"] and result["step"] == "unpack"
    assert "'../evil' (a '..' in its path)" in result["msg"] and "refusing to unpack it" in result["msg"]
    assert not (tmp_path / "srv").exists() and not (tmp_path / "evil").exists()


@pytest.mark.parametrize("installer, said", [
    ("uv", "no-such-package-prodready"),
    ("pip", "ERROR: Could not find a version that satisfies the requirement no-such-package-prodready"),
])
def test_a_failing_install_reports_the_installer_error_and_leaves_no_release(sample, tmp_path, installer, said):
    art = tarball_with(tmp_path / "broken.tar.gz", {"app.py": "", "requirements.txt": "no-such-package-prodready==1.0\n"})
    release = tmp_path / "releases" / "2.0.0"
    pip_args = sample["pip_args"] + ["--extra-index-url", "https://deploy:s3cretTok@127.0.0.1:9/simple"]
    result = run_module(MODULE, {"path": str(release), "version": "2.0.0", "artifact": art,
                                 "installer": installer, "pip_args": pip_args}, verbosity=3)
    assert result["failed"] and result["step"] == "install"
    assert result["msg"].startswith("install: installing into %s/.venv with %s failed: `" % (release, installer))
    assert said in result["msg"] and "exited with 1" in result["msg"]
    assert "https://********@127.0.0.1:9/simple" in result["msg"]
    assert "s3cretTok" not in json.dumps(result) and "s3cretTok" not in result["_stdout"]
    assert "Traceback" not in result["msg"]
    assert siblings(release) == []


def test_a_build_that_runs_out_of_time_is_stopped_and_removed(sample, tmp_path):
    release = tmp_path / "releases" / "1.0.0"
    result = run_module(MODULE, build_args(sample, release, installer="pip", timeout=0.5))
    assert result["failed"] and result["step"] == "venv"
    assert "did not finish within the timeout of 0.5 s" in result["msg"]
    assert siblings(release) == []


def test_a_half_built_release_is_built_again(sample, tmp_path):
    release = tmp_path / "releases" / "1.0.0"
    (release / ".venv" / "bin").mkdir(parents=True)
    (release / "leftover-from-a-killed-build").write_text("x")
    (release.parent / "1.0.0.tmp-killed").mkdir()
    result = run_module(MODULE, build_args(sample, release))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert "has no .release.json (a build was interrupted): building it again" in " ".join(result["_stdout"].split())
    assert not (release / "leftover-from-a-killed-build").exists()
    assert imports(result, "sampleapp", "alembic").returncode == 0
    assert siblings(release) == ["1.0.0"]


def test_a_pip_requirement_becomes_a_release_of_its_own(sample, tmp_path):
    release = tmp_path / "releases" / "1.20.1"
    args = {"path": str(release), "version": "1.20.1", "artifact_type": "pip", "pip_requirement": "alembic==1.20.1",
            "pip_args": sample["pip_args"]}
    result = run_module(MODULE, args)
    assert not result.get("failed"), result.get("msg")
    assert result["artifact_id"] == "alembic==1.20.1" and result["changed"] is True
    assert imports(result, "alembic", "sqlalchemy").returncode == 0
    assert sorted(p.name for p in release.iterdir()) == [".release.json", ".venv"]
    assert run_module(MODULE, args)["reused"] is True
    other = run_module(MODULE, dict(args, pip_requirement="alembic==1.20.0"))
    assert other["failed"] and "built from alembic==1.20.1, and the artifact now is alembic==1.20.0" in other["msg"]


def test_measure_uv_against_pip(sample, tmp_path):
    """Not a gate: prints what each installer costs for the sample app, module call included."""
    rows = []
    for round_no in range(2):
        for installer in ("uv", "pip"):
            release = tmp_path / installer / str(round_no) / "1.0.0"
            started = time.monotonic()
            result = run_module(MODULE, build_args(sample, release, installer=installer))
            wall = time.monotonic() - started
            assert not result.get("failed"), result.get("msg")
            rows.append((installer, result["durations"], wall))
    print("\nrelease_build, sample app from local wheels (venv + install seconds; ansible-playbook wall):")
    for installer, durations, wall in rows:
        print("  %-3s unpack %.2f  venv %.2f  install %.2f  = %.2f s   (wall %.1f s)"
              % (installer, durations["unpack"], durations["venv"], durations["install"],
                 durations["venv"] + durations["install"], wall))
