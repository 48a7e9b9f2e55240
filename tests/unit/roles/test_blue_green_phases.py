"""blue_green's phase layout (roles/blue_green/tasks/phases_*.yml): every phase is a marker
that names it (what the revert reports and hooks read), its before/after hooks, and its task
file imported statically, in the documented order."""
from pathlib import Path

import pytest
import yaml

TASKS = Path(__file__).resolve().parents[3] / "roles" / "blue_green" / "tasks"
LAYOUT = {
    "phases_begin.yml": ["lock", "plan"],
    "phases_blue_green.yml": ["backup", "release", "migrate", "start", "gate_idle", "switch", "gate_live", "cache",
                              "finalize"],
    "phases_restart.yml": ["backup", "release", "restart_drain", "restart_stop", "migrate", "restart_start", "gate_idle",
                           "switch", "gate_live", "restart_open", "cache", "finalize"],
}


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_every_phase_is_marked_hooked_and_imported_in_order(name):
    tasks = yaml.safe_load((TASKS / name).read_text())
    assert len(tasks) == 4 * len(LAYOUT[name])
    for index, phase in enumerate(LAYOUT[name]):
        marker, before, run, after = tasks[4 * index: 4 * index + 4]
        assert marker["ansible.builtin.set_fact"]["blue_green_phase"] == phase
        assert before["ansible.builtin.include_tasks"] == "{{ blue_green_hooks.before_%s }}" % phase
        assert before["when"] == "'before_%s' in blue_green_hooks" % phase
        assert run["ansible.builtin.import_tasks"] == phase + ".yml" and (TASKS / (phase + ".yml")).is_file()
        assert after["ansible.builtin.include_tasks"] == "{{ blue_green_hooks.after_%s }}" % phase
        assert after["when"] == "'after_%s' in blue_green_hooks" % phase


def test_each_strategy_has_its_phases_file():
    spec = yaml.safe_load((TASKS.parent / "meta" / "argument_specs.yml").read_text())
    choices = spec["argument_specs"]["main"]["options"]["blue_green_strategy"]["choices"]
    assert sorted("phases_%s.yml" % c for c in choices) == sorted(n for n in LAYOUT if n != "phases_begin.yml")
