"""blue_green's phase layout (roles/blue_green/tasks/phases_*.yml, written by
scripts/blue_green_phases.py): every phase's task file imported statically, in the documented
order, with the phase's name as a variable and as the tag the revert reads; no task of its
own per phase; the `_fleet` layouts with the fleet forms of gate_idle, switch and gate_live;
in the `_hooks` layouts the before/after hooks around each phase, in its phase."""
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
FLEET = {"gate_idle": "gate_idle_fleet.yml", "switch": "switch_fleet.yml", "gate_live": "gate_live_fleet.yml"}
FILES = [("phases_%s%s%s.yml" % (layout, "_fleet" if fleet else "", "_hooks" if hooks else ""), layout, fleet, hooks)
         for layout in LAYOUT for fleet in ((False, True) if layout == "blue_green" else (False,))
         for hooks in (False, True)]


def test_the_files_are_what_the_script_writes():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "blue_green_phases.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name, layout, fleet, hooks", FILES)
def test_every_phase_is_imported_in_order_named_and_tagged_with_its_hooks_in_the_hooks_layout(name, layout, fleet, hooks):
    tasks = yaml.safe_load((TASKS / name).read_text())
    # No task of the layout's own: only the phases' imports and, with hooks, their includes.
    assert all("ansible.builtin.import_tasks" in task or "ansible.builtin.include_tasks" in task for task in tasks)
    size = 3 if hooks else 1
    assert len(tasks) == size * len(LAYOUT[layout])
    for index, phase in enumerate(LAYOUT[layout]):
        block = tasks[size * index: size * index + size]
        run = block[1 if hooks else 0]
        expected = FLEET.get(phase, phase + ".yml") if fleet else phase + ".yml"
        assert run["ansible.builtin.import_tasks"] == expected and (TASKS / expected).is_file()
        assert run["vars"] == {"blue_green_phase": phase} and run["tags"] == ["blue_green_phase_" + phase]
        if hooks:
            for when, task in (("before", block[0]), ("after", block[2])):
                include = task["ansible.builtin.include_tasks"]
                assert include["file"] == "{{ blue_green_hooks.%s_%s }}" % (when, phase)
                assert include["apply"]["tags"] == task["tags"] == ["blue_green_phase_" + phase]
                assert task["vars"] == {"blue_green_phase": phase}
                assert task["when"] == "'%s_%s' in blue_green_hooks" % (when, phase)


def test_each_strategy_and_switch_mode_has_its_layouts_and_main_picks_them():
    spec = yaml.safe_load((TASKS.parent / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert sorted(options["blue_green_strategy"]["choices"]) == sorted(layout for layout in LAYOUT if layout != "begin")
    assert sorted(options["blue_green_switch_mode"]["choices"]) == ["fleet", "rolling"]
    main = (TASKS / "main.yml").read_text()
    assert "phases_begin{{ '_hooks' if blue_green_hooks | length > 0 else '' }}.yml" in main
    assert "'phases_' ~ blue_green_strategy" in main and "('_fleet' if blue_green_switch_mode == 'fleet' else '')" in main


def test_the_revert_names_the_phase_from_the_failed_tasks_tag():
    for revert in ("revert.yml", "restart_revert.yml"):
        text = (TASKS / revert).read_text()
        assert "select('match', 'blue_green_phase_')" in text and "blue_green_phase: >-" in text
