"""The collection's docs as antsibull-docs renders them: the docsite layout (docs/docsite) and
every plugin's and role's documentation (markup, references, schema) pass its linter."""

import subprocess

from helpers import ROOT, ansible_env


def test_antsibull_docs_lints_the_collection_with_its_plugin_docs():
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "antsibull-docs"), "lint-collection-docs", "--plugin-docs",
                           str(ROOT)], capture_output=True, text=True, env=ansible_env(), cwd=str(ROOT),
                          timeout=300, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout[-4000:] + proc.stderr[-2000:]
