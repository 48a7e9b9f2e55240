#!/usr/bin/env python
"""Write each role's defaults (defaults/main.yml) into its argument spec as `default:`.

`ansible-doc -t role` and the docsite show an option's default only from
meta/argument_specs.yml; the role itself takes its values from defaults/main.yml. This keeps
the two equal without rewriting the hand-written spec: a `default:` line is inserted (or
replaced) right after the option's name, everything else is left byte for byte.

    scripts/argspec_defaults.py roles/app roles/preflight   # write
    scripts/argspec_defaults.py --check roles/*              # list differences, exit 1 if any

Options marked `required: true` get no default (ansible refuses both together), nor do options
whose default is computed by a Jinja expression while their type is not a string (a list or
dict option whose default is "{{ ... }}"): the docs schema refuses a string there, and the
option's description says what it defaults to.
tests/unit/roles/test_role_argument_specs.py checks the result.
"""

import argparse
import re
import sys
import textwrap
from pathlib import Path

import yaml

LINE_WIDTH = 120  # longer values are folded or written as a YAML block (yamllint allows 160)


def load(path):
    return yaml.safe_load(Path(path).read_text()) or {}


def documented_default(option, value):
    """Whether `value` (from defaults/main.yml) can be the spec's `default:` of `option`."""
    computed = isinstance(value, str) and "{{" in value
    return not option.get("required") and not (computed and option.get("type", "str") not in ("str", "path", "raw"))


def differences(role_dir):
    """[(entry point, option, value in defaults/main.yml)] whose spec default is missing or differs."""
    role_dir = Path(role_dir)
    defaults = load(role_dir / "defaults" / "main.yml")
    specs = load(role_dir / "meta" / "argument_specs.yml").get("argument_specs") or {}
    out = []
    for entry, spec in specs.items():
        for name, option in (spec.get("options") or {}).items():
            if name not in defaults or not documented_default(option, defaults[name]):
                continue
            if "default" not in option or option["default"] != defaults[name]:
                out.append((entry, name, defaults[name]))
    return out


def render(value, indent):
    """The `default:` line(s) for `value` at `indent` spaces: flow style when it fits."""
    pad = " " * indent
    width = LINE_WIDTH - indent
    flow = isinstance(value, (dict, list)) and len(yaml.safe_dump(value, default_flow_style=True, width=10 ** 6)) < width
    text = yaml.safe_dump({"default": value}, default_flow_style=True if flow else False, width=width,
                          allow_unicode=True, sort_keys=False)
    if flow:
        text = text.strip()[1:-1] + "\n"  # {default: {...}} -> default: {...}
    elif isinstance(value, str) and max(len(line) for line in text.split("\n")) > width and _foldable(value):
        text = "default: >-\n" + "".join("  %s\n" % line for line in textwrap.wrap(value, width - 2, break_long_words=False,
                                                                                   break_on_hyphens=False))
    return [pad + line if line else line for line in text.rstrip("\n").split("\n")]


def _foldable(text):
    """A one-line string that a folded block scalar (`>-`) gives back exactly."""
    return text == text.strip() and "\n" not in text and "  " not in text and "\t" not in text


def apply(role_dir):
    """Insert or replace the `default:` of every option in differences(); returns their names."""
    role_dir = Path(role_dir)
    todo = differences(role_dir)
    if not todo:
        return []
    path = role_dir / "meta" / "argument_specs.yml"
    done = []
    # One at a time, reading the file again each time: an option written as an alias
    # (`name: *hook`) takes its default from the anchor's option, written first.
    while True:
        lines = path.read_text().split("\n")
        todo = [t for t in differences(role_dir) if not _is_alias(lines, t[0], t[1])]
        if not todo:
            break
        entry, name, value = todo[0]
        path.write_text("\n".join(_set_default(lines, entry, name, value)))
        done.append(name)
    left = differences(role_dir)
    if left:
        raise SystemExit("%s: could not write the default of %s (an alias whose anchor has another default?)"
                         % (path, ", ".join(entry[1] for entry in left)))
    return done


def _option_line(lines, entry, name):
    entry_at = _find_key(lines, entry, 0, len(lines))
    options_at = _find_key(lines, "options", entry_at + 1, _block_end(lines, entry_at))
    return _find_key(lines, name, options_at + 1, _block_end(lines, options_at))


def _is_alias(lines, entry, name):
    return bool(re.match(r"^\s*%s:\s*\*" % re.escape(name), lines[_option_line(lines, entry, name)]))


def _set_default(lines, entry, name, value):
    opt_at = _option_line(lines, entry, name)
    child_indent = _indent(lines[opt_at]) + 2
    # Drop an existing default (one line, or a block below it).
    for i in range(opt_at + 1, _block_end(lines, opt_at)):
        if _indent(lines[i]) == child_indent and re.match(r"\s*default:", lines[i]):
            del lines[i:_block_end(lines, i)]
            break
    # Written after the option's `type:` (as the hand-written defaults are), else first.
    at = opt_at + 1
    for i in range(opt_at + 1, _block_end(lines, opt_at)):
        if _indent(lines[i]) == child_indent and re.match(r"\s*type:", lines[i]):
            at = i + 1
            break
    return lines[:at] + render(value, child_indent) + lines[at:]


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _find_key(lines, key, start, end):
    pattern = re.compile(r"^\s*%s:(\s|$)" % re.escape(key))
    for i in range(start, end):
        if pattern.match(lines[i]):
            return i
    raise SystemExit("key %r not found" % key)


def _block_end(lines, at):
    """Index of the first line after the mapping entry at `at` (deeper lines and blanks belong to it)."""
    indent = _indent(lines[at])
    i = at + 1
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        i += 1
    return i


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--check", action="store_true", help="only list the differences; exit 1 if any")
    parser.add_argument("roles", nargs="+", help="role directories (roles/<name>)")
    args = parser.parse_args(argv)
    status = 0
    for role in args.roles:
        if args.check:
            for entry, name, value in differences(role):
                print("%s %s: %s default should be %r" % (role, entry, name, value))
                status = 1
        else:
            for name in apply(role):
                print("%s: default of %s written" % (role, name))
    return status


if __name__ == "__main__":
    sys.exit(main())
