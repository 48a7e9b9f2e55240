"""Fixtures of the release tests (tests/unit/test_metadata.py, test_execution_environment.py)."""

import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


@pytest.fixture(scope="session")
def collection_tarball(tmp_path_factory):
    """The collection built by `ansible-galaxy collection build` from this checkout (once a session)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT)],
                          capture_output=True, text=True, check=False, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = out.glob("prodready-deploy-*.tar.gz")
    return tarball


@pytest.fixture(scope="session")
def tarball_names(collection_tarball):
    with tarfile.open(collection_tarball) as tar:
        return tar.getnames()


@pytest.fixture(scope="session")
def installed_collection(collection_tarball, tmp_path_factory):
    """The tarball installed with ansible-galaxy into a fresh collections path; returns that path
    (--force: where ANSIBLE_COLLECTIONS_PATH already holds the checkout, as under scripts/env.sh,
    ansible-galaxy would otherwise install nothing)."""
    dest = tmp_path_factory.mktemp("collections")
    proc = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--force", "-p", str(dest),
                           str(collection_tarball)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dest
