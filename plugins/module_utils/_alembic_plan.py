# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning of an Alembic migration: resolve the target, pick the direction, order the steps.

The graph comes from the reader script (run under the app's interpreter) as a list of
``{"revision": id, "down_revisions": [ids], "message": str}``. Nothing here does I/O;
errors are ProdreadyError with messages naming the option and the revisions involved.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

RELATIVE_RE = re.compile(r"^([+-])([0-9]+)$")
# The comment Alembic writes before each revision's statements in offline (--sql) mode.
RUNNING_RE = re.compile(r"^-- Running (upgrade|downgrade) (.*?) ?-> ?(.*?)\s*$", re.M)


class RevisionGraph(object):
    """The revisions of one Alembic script directory."""

    def __init__(self, revisions):
        self.revs = {}
        for item in revisions:
            downs = item.get("down_revisions") or []
            self.revs[item["revision"]] = {"down": list(downs), "message": item.get("message") or ""}
        self.children = dict((r, []) for r in self.revs)
        for rev, data in self.revs.items():
            for down in data["down"]:
                if down in self.children:
                    self.children[down].append(rev)
        self._depth = {}

    def heads(self):
        """Revisions nothing builds on, sorted."""
        return sorted(r for r, kids in self.children.items() if not kids)

    def message(self, rev):
        return self.revs[rev]["message"]

    def depth(self, rev):
        """Distance from base (a root revision has depth 1); orders steps parents first."""
        if rev not in self._depth:
            stack = [rev]
            while stack:
                top = stack[-1]
                pending = [d for d in self.revs[top]["down"] if d in self.revs and d not in self._depth]
                if pending:
                    stack.extend(pending)
                    continue
                stack.pop()
                downs = [self._depth[d] for d in self.revs[top]["down"] if d in self.revs]
                self._depth[top] = 1 + (max(downs) if downs else 0)
        return self._depth[rev]

    def applied_set(self, revisions):
        """Every revision applied when the database is at `revisions` (ancestors, inclusive)."""
        seen = set()
        stack = list(revisions)
        while stack:
            rev = stack.pop()
            if rev in seen:
                continue
            if rev not in self.revs:
                raise ProdreadyError(
                    "the database is at revision %s, which this project's migrations do not "
                    "contain (was it migrated by a newer release?)" % rev, unknown_revision=rev)
            seen.add(rev)
            stack.extend(self.revs[rev]["down"])
        return seen

    def lookup(self, spec):
        """Full id of a revision id or unique prefix; ProdreadyError when unknown or ambiguous."""
        if spec in self.revs:
            return spec
        matches = sorted(r for r in self.revs if r.startswith(spec))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            known = ", ".join(sorted(self.revs, key=self.depth)) or "none"
            raise ProdreadyError("revision: unknown revision %r (this project has: %s)" % (spec, known))
        raise ProdreadyError("revision: %r is ambiguous, it matches %s" % (spec, ", ".join(matches)))


def resolve_target(graph, spec, current):
    """Tuple of revision ids the database should end at (`()` is base).

    `spec`: `head`, `heads`, `base`, a revision id or unique prefix, or `-N` / `+N`
    relative to the current revision. `current` is the tuple the database is at.
    """
    spec = (spec or "head").strip()
    heads = graph.heads()
    if spec == "head":
        if len(heads) > 1:
            raise ProdreadyError("revision: `head` is ambiguous, the migrations have %d heads "
                                 "(%s); use `heads` or a revision id" % (len(heads), ", ".join(heads)))
        return tuple(heads)
    if spec == "heads":
        return tuple(heads)
    if spec == "base":
        return ()
    match = RELATIVE_RE.match(spec)
    if match:
        sign, steps = match.group(1), int(match.group(2))
        if len(current) > 1:
            raise ProdreadyError("revision: %s is relative, but the database is at several "
                                 "revisions (%s)" % (spec, ", ".join(current)))
        rev = current[0] if current else None
        for dummy in range(steps):
            if sign == "-":
                if rev is None:
                    raise ProdreadyError("revision: %s goes below base (the database is at %s)"
                                         % (spec, ", ".join(current) or "base"))
                downs = graph.revs[rev]["down"]
                if len(downs) > 1:
                    raise ProdreadyError("revision: %s crosses the merge revision %s; name the "
                                         "target revision" % (spec, rev))
                rev = downs[0] if downs else None
            else:
                ups = graph.children.get(rev, []) if rev else \
                    sorted(r for r, d in graph.revs.items() if not d["down"])
                if not ups:
                    raise ProdreadyError("revision: %s goes beyond the head (the database is at %s)"
                                         % (spec, ", ".join(current) or "base"))
                if len(ups) > 1:
                    raise ProdreadyError("revision: %s is ambiguous at %s (branches %s)"
                                         % (spec, rev or "base", ", ".join(sorted(ups))))
                rev = ups[0]
        return (rev,) if rev else ()
    return (graph.lookup(spec),)


def plan(graph, current, target):
    """Plan moving from `current` to `target` (tuples of ids).

    Returns ``{"direction": "none"|"upgrade"|"downgrade", "steps": [ids in the order they
    run], "pending": [{"revision", "message"}]}``. Raises when the move needs both a
    downgrade and an upgrade (another branch).
    """
    have = graph.applied_set(current)
    want = graph.applied_set(target)
    if have == want:
        return {"direction": "none", "steps": [], "pending": []}
    if have < want:
        steps = sorted(want - have, key=lambda r: (graph.depth(r), r))
        direction = "upgrade"
    elif want < have:
        steps = sorted(have - want, key=lambda r: (graph.depth(r), r), reverse=True)
        direction = "downgrade"
    else:
        raise ProdreadyError(
            "revision: moving from %s to %s needs a downgrade and an upgrade (another branch); "
            "downgrade to a common revision first" % (label(current), label(target)))
    return {"direction": direction, "steps": steps,
            "pending": [{"revision": r, "message": graph.message(r)} for r in steps]}


def label(revisions):
    """Human form of a revision tuple: `base` or ids joined by `,`."""
    return ",".join(revisions) if revisions else "base"


def downgrade_refusal(current, target, steps):
    """The message refusing a downgrade that allow_downgrade does not permit."""
    return ("revision: moving from %s down to %s is a downgrade (it would undo %s); set "
            "allow_downgrade: true to allow it"
            % (label(current), label(target), ", ".join(steps)))


def failed_step(steps, direction, graph, current_after):
    """The revision that failed: the first planned step not yet applied/undone at `current_after`."""
    try:
        applied = graph.applied_set(current_after)
    except ProdreadyError:
        return steps[0] if steps else None
    for rev in steps:
        if direction == "upgrade" and rev not in applied:
            return rev
        if direction == "downgrade" and rev in applied:
            return rev
    return None


def applied_sql(sql, steps):
    """The part of Alembic's offline SQL that belongs to the revisions `steps`.

    Alembic renders an upgrade from several current heads as from base, so its offline
    SQL may hold revisions the database already has. Each revision's statements follow a
    ``-- Running upgrade <from> -> <to>`` (``downgrade <rev> -> <down>``) comment; the text
    before the first one (the version table) is kept, and so is all of `sql` when it has no
    such comment.
    """
    markers = list(RUNNING_RE.finditer(sql or ""))
    if not markers:
        return sql or ""
    wanted = set(steps)
    parts = [sql[:markers[0].start()]]
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(sql)
        side = marker.group(3) if marker.group(1) == "upgrade" else marker.group(2)
        if wanted.intersection(r.strip() for r in side.split(",")):
            parts.append(sql[marker.start():end])
    return "".join(parts)
