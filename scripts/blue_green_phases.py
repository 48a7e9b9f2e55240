#!/usr/bin/env python
"""Write roles/blue_green/tasks/phases_*.yml, the static layout of blue_green's phases.

    python3 scripts/blue_green_phases.py [--check]

Per phase: its task file imported statically with the variable blue_green_phase and the tag
blue_green_phase_<name> (what the revert reports and hooks read; a set_fact per phase would
cost the controller a worker fork per host). The `_hooks` variants put the before/after hook
includes around each phase, the `_fleet` ones use the fleet forms of gate_idle, switch and
gate_live; main.yml picks the file, so a deploy pays for no task it skips. --check exits 1
when a file differs from what this script writes (tests/unit/roles/test_blue_green_phases.py
runs it).
"""

import sys
from pathlib import Path

TASKS = Path(__file__).resolve().parent.parent / "roles" / "blue_green" / "tasks"

LAYOUTS = {
    "begin": ["lock", "plan"],
    "blue_green": ["backup", "release", "migrate", "start", "gate_idle", "switch", "gate_live", "cache", "finalize"],
    "restart": ["backup", "release", "restart_drain", "restart_stop", "migrate", "restart_start", "gate_idle",
                "switch", "gate_live", "restart_open", "cache", "finalize"],
}
# blue_green_switch_mode fleet: these phases have their fleet form (one switch for every host).
FLEET_FILES = {"gate_idle": "gate_idle_fleet.yml", "switch": "switch_fleet.yml", "gate_live": "gate_live_fleet.yml"}

TAG = "blue_green_phase_%s"

HEADER = """---
# Written by scripts/blue_green_phases.py: edit the script, not this file.
# %s.
# Each phase's tasks are imported statically with the phase's name as the variable
# blue_green_phase and the tag blue_green_phase_<name> (the revert reads the failed task's
# tag to say which phase stopped the deploy: no task per phase).%s
"""


def hook(when, phase):
    return ("- name: Hook %(w)s %(p)s\n  ansible.builtin.include_tasks:\n"
            "    file: \"{{ blue_green_hooks.%(w)s_%(p)s }}\"\n    apply:\n      tags: [%(t)s]\n"
            "  vars:\n    blue_green_phase: %(p)s\n  tags: [%(t)s]\n"
            "  when: \"'%(w)s_%(p)s' in blue_green_hooks\"\n" % {"w": when, "p": phase, "t": TAG % phase})


def run(phase, fleet):
    task_file = FLEET_FILES.get(phase, phase + ".yml") if fleet else phase + ".yml"
    return ("- name: Run phase %s\n  ansible.builtin.import_tasks: %s\n  vars:\n    blue_green_phase: %s\n"
            "  tags: [%s]\n" % (phase, task_file, phase, TAG % phase))


def render(layout, hooks, fleet=False):
    blocks = []
    for phase in LAYOUTS[layout]:
        parts = []
        if hooks:
            parts.append(hook("before", phase))
        parts.append(run(phase, fleet))
        if hooks:
            parts.append(hook("after", phase))
        blocks.append("\n".join(parts))
    what = {"begin": "lock and plan (they run in check mode too)",
            "blue_green": "blue_green_strategy blue_green",
            "restart": "blue_green_strategy restart (the restart role's entry points around the shared phases)"}[layout]
    what += ", blue_green_switch_mode fleet" if fleet else ""
    return HEADER % (what + (", with hooks" if hooks else ""),
                     "\n# Before and after each phase: its hooks." if hooks else "") + "\n".join(blocks)


def files():
    """{file name: text} of every layout: phases_<layout>[_fleet][_hooks].yml (the restart
    strategy has no fleet switch)."""
    out = {}
    for layout in LAYOUTS:
        for fleet in ((False, True) if layout == "blue_green" else (False,)):
            for hooks in (False, True):
                name = "phases_%s%s%s.yml" % (layout, "_fleet" if fleet else "", "_hooks" if hooks else "")
                out[name] = render(layout, hooks, fleet)
    return out


def main(argv):
    stale = []
    for name, text in files().items():
        path = TASKS / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("stale (run scripts/blue_green_phases.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
