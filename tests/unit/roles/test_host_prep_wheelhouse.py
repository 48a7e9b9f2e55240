"""roles/host_prep/files/build_wheelhouse.py: the pure half (platform tags, the target's
markers) with wheels made here, no network."""

import importlib.util
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("build_wheelhouse", ROOT / "roles" / "host_prep" / "files" / "build_wheelhouse.py")
wh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wh)


def make_wheel(path, name, version, requires=()):
    """A wheel with only its METADATA: what the closure reads."""
    filename = path / ("%s-%s-py3-none-any.whl" % (name.replace("-", "_"), version))
    meta = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
    meta += "".join("Requires-Dist: %s\n" % line for line in requires)
    with zipfile.ZipFile(filename, "w") as archive:
        archive.writestr("%s-%s.dist-info/METADATA" % (name.replace("-", "_"), version), meta)
    return filename


def test_glibc_tags_cover_every_manylinux_the_host_takes():
    tags = wh.platforms("x86_64", "glibc", "2.36")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64"} <= set(tags)
    assert "manylinux_2_37_x86_64" not in tags


def test_an_old_glibc_gets_no_newer_tag():
    tags = wh.platforms("aarch64", "glibc", "2.12")
    assert "manylinux2014_aarch64" not in tags and "manylinux2010_aarch64" in tags


def test_musl_tags():
    expected = ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64", "musllinux_1_0_x86_64"]
    assert wh.platforms("x86_64", "musl", "1.2")[:3] == expected


@pytest.mark.parametrize("python, needed", [("3.11.2", ["async-timeout>=4.0.3"]), ("3.11.7", []), ("3.12.1", [])])
def test_a_requirement_is_judged_with_the_targets_markers_not_the_controllers(tmp_path, python, needed):
    """redis needs async-timeout below 3.11.3: pip on a newer controller skips it."""
    requires = ['async-timeout>=4.0.3; python_full_version < "3.11.3"', 'hiredis>=1.0.0; extra == "hiredis"']
    make_wheel(tmp_path, "redis", "5.0.8", requires)
    assert wh.missing(str(tmp_path), wh.target_environment(python, "x86_64")) == needed


def test_a_wheel_present_in_a_version_outside_the_range_is_missing(tmp_path):
    make_wheel(tmp_path, "requests", "2.31.0", ["urllib3<3,>=1.21.1", "idna<4,>=2.5"])
    make_wheel(tmp_path, "urllib3", "3.0.0")
    make_wheel(tmp_path, "idna", "3.4")
    assert wh.missing(str(tmp_path), wh.target_environment("3.11.2", "x86_64")) == ["urllib3<3,>=1.21.1"]
