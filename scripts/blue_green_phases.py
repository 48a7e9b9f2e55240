#!/usr/bin/env python
"""Write roles/blue_green/tasks/phases_*.yml, the static layout of blue_green's phases.

    python3 scripts/blue_green_phases.py [--check]

Per phase: a marker set_fact (blue_green_phase, which the revert reports and hooks read;
merged into a fact the phase sets anyway where there is one), then the phase's task file,
imported statically (an include or a set_fact costs the controller a worker fork per host,
skipped or not). The `_hooks` variants put the before/after hook includes around each
phase; main.yml picks them only when blue_green_hooks is set, so a deploy without hooks
does not pay ~20 skipped tasks per host. --check exits 1 when a file differs from what this
script writes (tests/unit/roles/test_blue_green_phases.py runs it).
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

# Phases whose marker also sets what the phase needs first (no task of their own for it).
MARKERS = {
    "lock": ("Identify this run (one id for the whole deploy) and start phase lock", [
        ("_blue_green_run_id",
         ">-\n      {{ _blue_green_run_id | default(hostvars[ansible_play_hosts_all[0]]._blue_green_run_id)\n"
         "         | default(now(utc=true).strftime('%Y%m%dT%H%M%S') ~ '-' ~ (999999 | random), true) }}"),
        ("_blue_green_locked", "false"), ("_blue_green_started", "false"), ("_blue_green_switched", "false"),
        ("_blue_green_migrated", "false")]),
    "start": ("Phase start, the idle color described (app_start_command(s) use it, the gates read it)", [
        ("app_color", "\"{{ _blue_green_idle_color }}\""),
        ("app_color_version", "\"{{ blue_green_version }}\""),
        ("app_release_dir", "\"{{ blue_green_release_dir }}\""),
        ("_blue_green_started", "true")]),
}

HEADER = """---
# Written by scripts/blue_green_phases.py: edit the script, not this file.
# %s.
# Per phase: a marker (blue_green_phase, which the revert reports and hooks read)%s
# and the phase's tasks imported statically (no include per phase).
"""


# The run id is drawn once for the batch (run_once gives the facts to every host of it) and
# read by later `serial` batches from the play's first host: one id per deploy in every
# host's state, audit line and backup label.
RUN_ONCE = {"lock"}


def marker(phase):
    name, facts = MARKERS.get(phase, ("Phase " + phase, []))
    noqa = "  # noqa: var-naming[no-role-prefix]" if any(key.startswith("app_") for key, _value in facts) else ""
    lines = ["- name: %s%s" % (name, noqa), "  ansible.builtin.set_fact:", "    blue_green_phase: %s" % phase]
    lines += ["    %s: %s" % fact for fact in facts]
    if phase in RUN_ONCE:
        lines.append("  run_once: true")
    return "\n".join(lines) + "\n"


def hook(when, phase):
    return ("- name: Hook %s %s\n  ansible.builtin.include_tasks: \"{{ blue_green_hooks.%s_%s }}\"\n"
            "  when: \"'%s_%s' in blue_green_hooks\"\n" % (when, phase, when, phase, when, phase))


def render(layout, hooks):
    blocks = []
    for phase in LAYOUTS[layout]:
        parts = [marker(phase)]
        if hooks:
            parts.append(hook("before", phase))
        parts.append("- name: Run phase %s\n  ansible.builtin.import_tasks: %s.yml\n" % (phase, phase))
        if hooks:
            parts.append(hook("after", phase))
        blocks.append("\n".join(parts))
    what = {"begin": "lock and plan (they run in check mode too)",
            "blue_green": "blue_green_strategy blue_green",
            "restart": "blue_green_strategy restart (the restart role's entry points around the shared phases)"}[layout]
    return HEADER % (what + (", with hooks" if hooks else ""), ",\n# its before/after hooks" if hooks else "") + \
        "\n".join(blocks)


def files():
    """{file name: text} of every layout; `begin` always has its hooks (it is imported statically)."""
    out = {"phases_begin.yml": render("begin", True)}
    for layout in ("blue_green", "restart"):
        out["phases_%s.yml" % layout] = render(layout, False)
        out["phases_%s_hooks.yml" % layout] = render(layout, True)
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
