"""The execution environment AWX runs our playbooks in has what the modules need.

The real ansible-builder: `create` on execution-environment.yml (no container engine here, so
the build context is what is checked), then the introspection its image build runs on the
installed collection, and `ansible-builder introspect` on the installed tarball: they report
meta/ee-requirements.txt and bindep.txt, never the exact development pins of requirements.txt.
"""

import ast
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILDER = str(ROOT / ".venv" / "bin" / "ansible-builder")
# Distribution names of the libraries the plugins import (where they differ).
DISTRIBUTION = {"psycopg2": "psycopg2-binary"}
# Imported by our code but installed with another requirement listed in the file.
COMES_WITH = {"urllib3": "requests", "certifi": "requests"}


def requirement_lines(path):
    return [line.split("#")[0].strip() for line in Path(path).read_text().splitlines()
            if line.split("#")[0].strip()]


def requirement_name(line):
    return re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower()


EE_REQUIREMENTS = requirement_lines(ROOT / "meta" / "ee-requirements.txt")
BINDEP = requirement_lines(ROOT / "bindep.txt")


def third_party_imports():
    """Top-level names of the non-stdlib, non-Ansible modules the plugins import (anywhere in the code)."""
    names = set()
    for path in (ROOT / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return sorted(n for n in names if n not in sys.stdlib_module_names
                  and n not in ("ansible", "ansible_collections", "__future__"))


def test_the_collection_names_its_ee_files_in_meta():
    meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())
    assert meta["version"] == 3
    assert meta["dependencies"] == {"python": "meta/ee-requirements.txt", "system": "bindep.txt"}


def test_ee_requirements_cover_every_library_the_plugins_import_with_loose_floors():
    listed = {requirement_name(line) for line in EE_REQUIREMENTS}
    for name in third_party_imports():
        wanted = DISTRIBUTION.get(name, COMES_WITH.get(name, name))
        assert wanted in listed, "plugins import %s: meta/ee-requirements.txt lacks %s" % (name, wanted)
    for line in EE_REQUIREMENTS:
        assert "==" not in line and ">=" in line, "a loose floor, not a pin: %s" % line
    pins = {requirement_name(line) for line in requirement_lines(ROOT / "requirements.txt")}
    assert pins <= listed  # what the dev set pins for the modules is in the EE too


def test_bindep_gives_the_postgresql_client_for_debian_and_rhel_images():
    for line in BINDEP:
        assert re.fullmatch(r"[a-z0-9.+-]+ \[(platform:(dpkg|rpm) ?)+\]", line), line
    assert "postgresql-client [platform:dpkg]" in BINDEP
    assert "postgresql [platform:rpm]" in BINDEP
    # pg_backup's programs are the client's (the other programs modules run, systemctl, journalctl,
    # timeout, uv, come with an app host and are not needed in the EE).
    runs = set(re.findall(r'\bbin\("(\w+)"\)', "".join(p.read_text() for p in (ROOT / "plugins").rglob("*.py"))))
    assert "pg_dump" in runs and runs <= {"pg_dump", "pg_restore", "psql"}, runs


@pytest.fixture(scope="module")
def build_context(collection_tarball, tmp_path_factory):
    """`ansible-builder create` on execution-environment.yml, in a copy beside the built tarball."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(ROOT / "execution-environment.yml", work / "execution-environment.yml")
    (work / "dist").mkdir()
    shutil.copy(collection_tarball, work / "dist" / collection_tarball.name)
    proc = subprocess.run([BUILDER, "create", "-f", str(work / "execution-environment.yml"), "-c", str(work / "context"),
                           "--output-filename", "Containerfile"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "context"


def test_ansible_builder_create_makes_a_context_that_installs_this_collection(build_context, collection_tarball):
    definition = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    assert collection_tarball.name == "prodready-deploy-%s.tar.gz" % version
    assert definition["additional_build_files"][0]["src"] == "dist/" + collection_tarball.name
    containerfile = (build_context / "Containerfile").read_text()
    assert 'ANSIBLE_INSTALL_REFS="ansible-core>=2.19.0,<2.20 ansible-runner' in containerfile
    assert "ansible-galaxy collection install" in containerfile and "introspect.py introspect" in containerfile
    assert "module enable postgresql:16" in containerfile
    galaxy = yaml.safe_load((build_context / "_build" / "requirements.yml").read_text())
    assert galaxy["collections"] == [{"name": "/build/collections/" + collection_tarball.name, "type": "file"}]
    shipped = build_context / "_build" / "collections" / collection_tarball.name
    with tarfile.open(shipped) as tar:
        assert {"meta/execution-environment.yml", "meta/ee-requirements.txt", "bindep.txt"} <= set(tar.getnames())


def test_the_image_build_introspection_installs_the_ee_requirements_not_the_dev_pins(build_context, tmp_path):
    """What the builder stage runs: the context's introspect.py over the collections the galaxy stage installed."""
    galaxy = yaml.safe_load((build_context / "_build" / "requirements.yml").read_text())
    tarball = build_context / "_build" / "collections" / Path(galaxy["collections"][0]["name"]).name
    collections = tmp_path / "usr-share-ansible-collections"
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-galaxy"), "collection", "install", "--force", "-p", str(collections),
                           str(tarball)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pip_out, bindep_out = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    proc = subprocess.run([sys.executable, str(build_context / "_build" / "scripts" / "introspect.py"), "introspect",
                           "--write-pip", str(pip_out), "--write-bindep", str(bindep_out), str(collections)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert requirement_lines(pip_out) == EE_REQUIREMENTS
    assert requirement_lines(bindep_out) == BINDEP
    assert "==" not in pip_out.read_text()


def test_ansible_builder_introspect_reports_the_ee_requirements(installed_collection):
    proc = subprocess.run([BUILDER, "introspect", str(installed_collection)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = yaml.safe_load(proc.stdout[proc.stdout.index("---"):])
    python = [line.split("#")[0].strip() for line in report["python"]]
    system = [line.split("#")[0].strip() for line in report["system"]]
    assert python == EE_REQUIREMENTS
    assert system == BINDEP
    for pin in requirement_lines(ROOT / "requirements.txt"):
        assert pin not in python
