"""docs/runbook-coverage.md names, for each runbook step, the test that proves it: those tests
must exist, so that a renamed or deleted test cannot leave a step silently unproven."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "runbook-coverage.md"
NODE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def rows():
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| (\d{3}-\d{2}) \| (.*) \| (.*) \| (.*) \|$", line)
        if match:
            yield match.groups()


def functions(path):
    tree = ast.parse((ROOT / path).read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_every_row_id_is_unique_and_in_order():
    ids = [row[0] for row in rows()]
    assert len(ids) > 60
    assert len(ids) == len(set(ids))
    assert ids == sorted(ids)


def test_every_named_test_exists():
    missing = []
    named = 0
    for rid, _step, _covered, tests in rows():
        for path, name in NODE.findall(tests):
            named += 1
            if not (ROOT / path).exists() or name not in functions(path):
                missing.append(f"{rid}: {path}::{name}")
    assert named > 60
    assert missing == []


def test_a_covered_row_names_a_test_or_a_scenario():
    unproven = [rid for rid, _step, covered, tests in rows()
                if not covered.startswith("open") and not NODE.search(tests) and "molecule/" not in tests]
    assert unproven == []
