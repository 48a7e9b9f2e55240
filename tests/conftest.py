"""Shared pytest setup: the collection on sys.path and the sandbox fixture.

Unit tests import modules as ``ansible_collections.prodready.deploy.plugins...``; the
bootstrap script links this checkout at ``.build/collections/ansible_collections/
prodready/deploy`` so those imports resolve to the working tree.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import sandbox as sandbox_script  # noqa: E402  (scripts/sandbox.py)


@pytest.fixture(scope="session")
def sandbox():
    """The running sandbox (brought up if needed), as the dict of `scripts/sandbox.py load()`.

    Keys: ports, services.{postgres,redis,haproxy,nginx,supervisor}, secrets, apps_dir.
    The session never takes it down: `make test` does that at the end, and a developer
    re-running one test keeps a warm sandbox.
    """
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sandbox.py"), "up"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail("sandbox up failed:\n" + proc.stdout + proc.stderr)
    return sandbox_script.load()
