"""blue_green's phase layout (roles/blue_green/tasks/phases_*.yml, written by
scripts/blue_green_phases.py): every phase is a marker that names it (what the revert reports
and hooks read), its task file imported statically, in the documented order, and in the
`_hooks` variants its before/after hooks around it."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
TASKS = ROOT / "roles" / "blue_green" / "tasks"
LAYOUT = {
    "begin": ["lock", "plan"],
    "blue_green": ["backup", "release", "migrate", "start", "gate_idle", "switch", "gate_live", "cache", "finalize"],
    "restart": ["backup", "release", "restart_drain", "restart_stop", "migrate", "restart_start", "gate_idle",
                "switch", "gate_live", "restart_open", "cache", "finalize"],
}
FILES = [("phases_begin.yml", "begin", True)] + [
    ("phases_%s%s.yml" % (layout, suffix), layout, bool(suffix))
    for layout in ("blue_green", "restart") for suffix in ("", "_hooks")]


def test_the_files_are_what_the_script_writes():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "blue_green_phases.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name, layout, hooks", FILES)
def test_every_phase_is_marked_and_imported_in_order_with_its_hooks_in_the_hooks_layout(name, layout, hooks):
    tasks = yaml.safe_load((TASKS / name).read_text())
    size = 4 if hooks else 2
    assert len(tasks) == size * len(LAYOUT[layout])
    for index, phase in enumerate(LAYOUT[layout]):
        block = tasks[size * index: size * index + size]
        marker, run = block[0], block[2 if hooks else 1]
        assert marker["ansible.builtin.set_fact"]["blue_green_phase"] == phase
        assert run["ansible.builtin.import_tasks"] == phase + ".yml" and (TASKS / (phase + ".yml")).is_file()
        if hooks:
            for when, task in (("before", block[1]), ("after", block[3])):
                assert task["ansible.builtin.include_tasks"] == "{{ blue_green_hooks.%s_%s }}" % (when, phase)
                assert task["when"] == "'%s_%s' in blue_green_hooks" % (when, phase)


def test_each_strategy_has_its_layouts():
    spec = yaml.safe_load((TASKS.parent / "meta" / "argument_specs.yml").read_text())
    choices = spec["argument_specs"]["main"]["options"]["blue_green_strategy"]["choices"]
    assert sorted(choices) == sorted(layout for layout in LAYOUT if layout != "begin")
    main = (TASKS / "main.yml").read_text()
    assert "phases_{{ blue_green_strategy }}{{ '_hooks' if blue_green_hooks | length > 0 else '' }}.yml" in main
