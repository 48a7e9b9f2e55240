"""Tables for alembic_migrate's revision planning: target resolution, direction, refusals."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _alembic_plan as ap
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError


def graph(*edges):
    """edges: (rev, [downs]) pairs."""
    return ap.RevisionGraph([{"revision": r, "down_revisions": d, "message": "msg " + r}
                             for r, d in edges])


LINEAR = graph(("0001", []), ("0002", ["0001"]), ("0003", ["0002"]), ("0004_bad", ["0003"]))
# 0001 -> 0002 -> {b1, b2} -> merge m
BRANCHED = graph(("0001", []), ("0002", ["0001"]), ("b1", ["0002"]), ("b2", ["0002"]))
MERGED = graph(("0001", []), ("0002", ["0001"]), ("b1", ["0002"]), ("b2", ["0002"]),
               ("m", ["b1", "b2"]))


@pytest.mark.parametrize("g,spec,current,expected", [
    (LINEAR, "head", (), ("0004_bad",)),
    (LINEAR, None, (), ("0004_bad",)),
    (LINEAR, "heads", ("0002",), ("0004_bad",)),
    (LINEAR, "base", ("0003",), ()),
    (LINEAR, "0002", (), ("0002",)),
    (LINEAR, "0004", (), ("0004_bad",)),       # unique prefix
    (LINEAR, "-1", ("0003",), ("0002",)),
    (LINEAR, "-2", ("0003",), ("0001",)),
    (LINEAR, "-1", ("0001",), ()),
    (LINEAR, "+1", (), ("0001",)),
    (LINEAR, "+2", ("0002",), ("0004_bad",)),
    (BRANCHED, "heads", (), ("b1", "b2")),
    (MERGED, "head", (), ("m",)),
])
def test_resolve_target(g, spec, current, expected):
    assert ap.resolve_target(g, spec, current) == expected


@pytest.mark.parametrize("g,spec,current,message", [
    (LINEAR, "0009", (), r"revision: unknown revision '0009' \(this project has: 0001, 0002, 0003, 0004_bad\)"),
    (LINEAR, "000", (), "revision: '000' is ambiguous"),
    (BRANCHED, "head", (), "revision: `head` is ambiguous, the migrations have 2 heads"),
    (LINEAR, "-1", (), "goes below base"),
    (LINEAR, "+1", ("0004_bad",), "goes beyond the head"),
    (BRANCHED, "+1", ("0002",), "ambiguous at 0002"),
    (MERGED, "-1", ("m",), "crosses the merge revision m"),
    (BRANCHED, "-1", ("b1", "b2"), "database is at several revisions"),
])
def test_resolve_target_errors(g, spec, current, message):
    with pytest.raises(ProdreadyError, match=message):
        ap.resolve_target(g, spec, current)


@pytest.mark.parametrize("g,current,target,direction,steps", [
    (LINEAR, (), ("0003",), "upgrade", ["0001", "0002", "0003"]),
    (LINEAR, ("0003",), ("0003",), "none", []),
    (LINEAR, ("0001",), ("0003",), "upgrade", ["0002", "0003"]),
    (LINEAR, ("0003",), ("0001",), "downgrade", ["0003", "0002"]),
    (LINEAR, ("0003",), (), "downgrade", ["0003", "0002", "0001"]),
    (LINEAR, (), (), "none", []),
    (MERGED, ("0002",), ("m",), "upgrade", ["b1", "b2", "m"]),
    (MERGED, ("b1",), ("m",), "upgrade", ["b2", "m"]),
    (MERGED, ("m",), ("0002",), "downgrade", ["m", "b2", "b1"]),
    (BRANCHED, ("b1", "b2"), ("b1", "b2"), "none", []),
])
def test_plan(g, current, target, direction, steps):
    result = ap.plan(g, current, target)
    assert result["direction"] == direction
    assert result["steps"] == steps
    assert result["pending"] == [{"revision": s, "message": "msg " + s} for s in steps]


def test_plan_refuses_branch_switch():
    with pytest.raises(ProdreadyError, match="needs a downgrade and an upgrade"):
        ap.plan(BRANCHED, ("b1",), ("b2",))


def test_plan_unknown_current_revision():
    with pytest.raises(ProdreadyError, match="the database is at revision 0009, which this "
                                             "project's migrations do not contain"):
        ap.plan(LINEAR, ("0009",), ("0003",))


@pytest.mark.parametrize("current,target,steps,expected", [
    (("0003",), ("0002",), ["0003"],
     "revision: moving from 0003 down to 0002 is a downgrade (it would undo 0003); set "
     "allow_downgrade: true to allow it"),
    (("0003",), (), ["0003", "0002", "0001"],
     "revision: moving from 0003 down to base is a downgrade (it would undo 0003, 0002, 0001)"),
])
def test_downgrade_refusal(current, target, steps, expected):
    assert ap.downgrade_refusal(current, target, steps).startswith(expected)


@pytest.mark.parametrize("steps,direction,after,expected", [
    (["0004_bad"], "upgrade", ("0003",), "0004_bad"),
    (["0002", "0003", "0004_bad"], "upgrade", ("0002",), "0003"),
    (["0002", "0003"], "upgrade", (), "0002"),
    (["0003", "0002"], "downgrade", ("0002",), "0002"),
    (["0003", "0002"], "downgrade", ("0001",), None),
    (["0003"], "upgrade", ("0009",), "0003"),
])
def test_failed_step(steps, direction, after, expected):
    assert ap.failed_step(steps, direction, LINEAR, after) == expected


@pytest.mark.parametrize("revs,expected", [((), "base"), (("a",), "a"), (("a", "b"), "a,b")])
def test_label(revs, expected):
    assert ap.label(revs) == expected


def test_heads_and_depth():
    assert MERGED.heads() == ["m"]
    assert BRANCHED.heads() == ["b1", "b2"]
    assert [MERGED.depth(r) for r in ("0001", "0002", "b1", "m")] == [1, 2, 3, 4]


# Offline SQL as Alembic 1.x renders it: the upgrade of a -> {b, c} -> m -> d from base ...
BRANCHED_UPGRADE_SQL = """BEGIN;
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);
-- Running upgrade  -> a
CREATE TABLE t_a (id int);
COMMIT;
BEGIN;
-- Running upgrade a -> c
CREATE TABLE t_c (id int);
COMMIT;
BEGIN;
-- Running upgrade a -> b
CREATE TABLE t_b (id int);
COMMIT;
BEGIN;
-- Running upgrade b, c -> m
CREATE TABLE t_m (id int);
COMMIT;
BEGIN;
-- Running upgrade m -> d
CREATE TABLE t_d (id int);
COMMIT;
"""
# ... and the downgrade d -> base (the down side of a downgrade is the revision undone; Alembic
# ends "a -> " with a space, written \x20).
BRANCHED_DOWNGRADE_SQL = """BEGIN;
-- Running downgrade d -> m
DROP TABLE t_d;
COMMIT;
BEGIN;
-- Running downgrade m -> b, c
DROP TABLE t_m;
COMMIT;
BEGIN;
-- Running downgrade b -> a
DROP TABLE t_b;
COMMIT;
BEGIN;
-- Running downgrade a ->\x20
DROP TABLE t_a;
COMMIT;
"""


def created(sql):
    """The t_* tables a script creates or drops, in order."""
    return [line.split()[2].rstrip(";") for line in sql.splitlines()
            if line.startswith(("CREATE TABLE t_", "DROP TABLE t_"))]


@pytest.mark.parametrize("sql,steps,expected", [
    # the database at heads b and c: only m and d are applied, though Alembic renders from base
    (BRANCHED_UPGRADE_SQL, ["m", "d"], ["t_m", "t_d"]),
    (BRANCHED_UPGRADE_SQL, ["a", "b", "c", "m", "d"], ["t_a", "t_c", "t_b", "t_m", "t_d"]),
    (BRANCHED_UPGRADE_SQL, ["a"], ["t_a"]),
    (BRANCHED_UPGRADE_SQL, [], []),
    (BRANCHED_DOWNGRADE_SQL, ["d", "m"], ["t_d", "t_m"]),
    (BRANCHED_DOWNGRADE_SQL, ["a"], ["t_a"]),
    # no markers (an env.py that renders differently): all of it
    ("CREATE TABLE t_x (id int);\n", ["zzz"], ["t_x"]),
    ("", ["a"], []),
    (None, ["a"], []),
])
def test_applied_sql(sql, steps, expected):
    assert created(ap.applied_sql(sql, steps)) == expected


def test_applied_sql_keeps_the_version_table_preamble():
    assert ap.applied_sql(BRANCHED_UPGRADE_SQL, ["d"]).startswith(
        "BEGIN;\nCREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);\n-- Running upgrade m -> d\n")
