"""Tables for pg_backup's pure logic: names, manifests, reuse, src resolution, retention."""

import datetime

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _backup_files as bf
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

WHEN = datetime.datetime(2026, 11, 2, 10, 15, 0)
DAY = 86400.0
SHA = "a" * 64


@pytest.mark.parametrize("db,scope,fmt,label,gz,expected", [
    ("app", "full", "custom", None, False, "app_full_20261102T101500Z.dump"),
    ("app", "full", "custom", "pre-1.4.0", False, "app_full_pre-1.4.0_20261102T101500Z.dump"),
    ("app", "schema", "plain", None, False, "app_schema_20261102T101500Z.sql"),
    ("app", "data", "plain", None, True, "app_data_20261102T101500Z.sql.gz"),
    ("app", "full", "directory", "x", False, "app_full_x_20261102T101500Z.dir"),
    ("app", "full", "tar", None, False, "app_full_20261102T101500Z.tar"),
    ("my db/x", "full", "custom", None, False, "my_db_x_full_20261102T101500Z.dump"),
    ("app", "full", "tar", None, True, "app_full_20261102T101500Z.tar"),  # gzip only for plain
])
def test_backup_name(db, scope, fmt, label, gz, expected):
    assert bf.backup_name(db, scope, fmt, WHEN, label, gz) == expected


@pytest.mark.parametrize("label,ok", [
    ("pre-1.4.0", True), ("nightly_2", True), ("A", True), ("-x", False), ("a/b", False),
    ("", False), ("x" * 101, False), ("with space", False), ("..", False),
])
def test_validate_label(label, ok):
    if ok:
        assert bf.validate_label(label) == label
    else:
        with pytest.raises(ProdreadyError, match="label"):
            bf.validate_label(label)


@pytest.mark.parametrize("name,existing,expected", [
    ("a_20261102T101500Z.dump", set(), "a_20261102T101500Z.dump"),
    ("a_20261102T101500Z.dump", {"a_20261102T101500Z.dump"}, "a_20261102T101500Z-2.dump"),
    ("a_1.sql.gz", {"a_1.sql.gz", "a_1-2.sql.gz"}, "a_1-3.sql.gz"),
])
def test_unique_name(name, existing, expected):
    assert bf.unique_name(name, existing) == expected


@pytest.mark.parametrize("name,expected", [
    ("x.dump", ("custom", False)), ("x.sql", ("plain", False)), ("x.sql.gz", ("plain", True)),
    ("x.tar", ("tar", False)), ("x.dir", ("directory", False)), ("x.backup", ("custom", False)),
    ("x.zip", None),
])
def test_infer_format(name, expected):
    assert bf.infer_format(name) == expected


@pytest.mark.parametrize("name,is_manifest", [
    ("a.dump.manifest.json", True), (".a.dump.manifest.json.tmp", False),
    (".a.dump.manifest.json", False), ("a.dump", False),
])
def test_is_manifest_name(name, is_manifest):
    assert bf.is_manifest_name(name) is is_manifest


def manifest(name="b.dump", finished=1000.0, verified=True, label=None, db="app", fmt="custom",
             scope="full", tables=None):
    return bf.build_manifest(name=name, db=db, fmt=fmt, scope=scope, sha256=SHA, size_bytes=10,
                             started_epoch=finished - 1, finished_epoch=finished,
                             verified=verified, label=label, tables=tables)


def test_build_manifest_is_valid_and_complete():
    m = bf.build_manifest(name="b.dump", db="app", fmt="custom", scope="full", sha256=SHA,
                          size_bytes=10, started_epoch=100.0, finished_epoch=103.5, verified=True,
                          label="pre-1", server_version="15.18", row_counts={"orders": 3},
                          alembic_revision="0003", verify_method="pg_restore --list")
    assert bf.manifest_problems(m) == []
    assert m["duration_s"] == 3.5
    assert m["started"] == "1970-01-01T00:01:40Z"
    assert m["row_counts"] == {"orders": 3}
    for key in ("sha256", "size_bytes", "server_version", "scope", "label", "started",
                "finished", "row_counts", "alembic_revision"):
        assert key in m


@pytest.mark.parametrize("change,problem", [
    ({"sha256": "xyz"}, "sha256 is not 64 hex digits"),
    ({"format": "zip"}, "unknown format"),
    ({"scope": "all"}, "unknown scope"),
    ({"manifest_version": 99}, "newer than this module"),
    ({"size_bytes": "10"}, "key size_bytes has type str"),
    ({"verified": 1}, "key verified has type int"),
    ({"size_bytes": True}, "key size_bytes has type bool"),
])
def test_manifest_problems(change, problem):
    m = manifest()
    m.update(change)
    assert any(problem in p for p in bf.manifest_problems(m))


def test_manifest_problems_missing_key_and_not_dict():
    m = manifest()
    del m["sha256"]
    assert bf.manifest_problems(m) == ["missing key sha256"]
    assert bf.manifest_problems([]) == ["manifest is not a JSON object"]


REQ = dict(db="app", label="pre-1", format="custom", scope="full", gzip=False, tables=[],
           exclude_tables=[])


@pytest.mark.parametrize("manifests,expected", [
    ([], None),
    ([manifest("a", 1, label="pre-1")], "a"),
    ([manifest("a", 1, label="pre-1"), manifest("b", 2, label="pre-1")], "b"),
    ([manifest("a", 1, label="pre-1"), manifest("b", 2, label="pre-1", verified=False)], "a"),
    ([manifest("a", 1, label="other")], None),
    ([manifest("a", 1, label="pre-1", db="other")], None),
    ([manifest("a", 1, label="pre-1", verified=False)], None),
])
def test_find_reusable(manifests, expected):
    found = bf.find_reusable(manifests, REQ)
    assert (found["name"] if found else None) == expected


@pytest.mark.parametrize("conflict", [
    dict(fmt="plain"), dict(scope="schema"), dict(tables=["orders"]),
])
def test_find_reusable_refuses_label_with_other_parameters(conflict):
    with pytest.raises(ProdreadyError, match="label: 'pre-1' is already used"):
        bf.find_reusable([manifest("a", 1, label="pre-1", **conflict)], REQ)


def test_find_reusable_without_label():
    assert bf.find_reusable([manifest("a", 1, label=None)], dict(REQ, label=None)) is None


@pytest.mark.parametrize("src,db,expected", [
    ("latest", None, "c"),
    ("latest", "app", "b"),
    ("pre-1", None, "a"),
    ("nope", None, None),
    ("latest", "none", None),
])
def test_resolve_src(src, db, expected):
    ms = [manifest("a", 1, label="pre-1"), manifest("b", 2), manifest("c", 3, db="other"),
          manifest("d", 4, verified=False)]
    found = bf.resolve_src(ms, src, db)
    assert (found["name"] if found else None) == expected


NOW = 100 * DAY


def ages(*days_and_flags):
    out = []
    for i, item in enumerate(days_and_flags):
        days, verified = item if isinstance(item, tuple) else (item, True)
        out.append(manifest("b%d" % i, NOW - days * DAY, verified=verified))
    return out


@pytest.mark.parametrize("backups,keep,keep_days,pruned", [
    (ages(0, 1, 2, 3), None, None, []),
    (ages(0, 1, 2, 3), 2, None, ["b2", "b3"]),
    (ages(0, 1, 2, 3), 10, None, []),
    (ages(0, 1, 2, 8, 9), None, 7, ["b3", "b4"]),
    (ages(0, 1, 2, 8, 9), 4, 7, ["b4"]),           # union of the rules
    (ages(8, 9), None, 7, ["b1"]),                 # newest verified always kept
    (ages(8, 9), 0, None, ["b1"]),
    (ages((1, False), (8, True), 9), 1, None, ["b2"]),  # newest *verified* (b1) kept too
    ([], 1, 1, []),
])
def test_select_prune(backups, keep, keep_days, pruned):
    kept, gone = bf.select_prune(backups, keep, keep_days, NOW)
    assert [m["name"] for m in gone] == pruned
    assert len(kept) + len(gone) == len(backups)
    assert [m["name"] for m in kept] == [m["name"] for m in bf.newest_first(kept)]


def labelled(*labels):
    """Backups b0 (newest) .. bN a day apart, with these labels (None = unlabelled)."""
    out = ages(*range(len(labels)))
    for m, label in zip(out, labels):
        m["label"] = label
        m["path"] = "/backups/%s.dump" % m["name"]
    return out


@pytest.mark.parametrize("backups,keep,protect,pruned", [
    # protected backups are kept and not counted: the 2 newest unprotected are kept
    (labelled("daily-3", "pre-1.1.0-r2", "daily-2", "daily-1", "pre-1.0.0-r1"), 2, ["pre-*"], ["b3"]),
    (labelled("daily-3", "pre-1.1.0-r2", "daily-2", "daily-1"), 1, [], ["b1", "b2", "b3"]),
    (labelled("daily-2", "daily-1", None), 0, ["/backups/b2.dump"], ["b1"]),   # by path; b0 newest verified
    (labelled("daily-2", "daily-1", None), 1, ["/other/*"], ["b1", "b2"]),
    (labelled("daily-2", None), 0, ["*"], ["b1"]),                              # a glob never matches no label
])
def test_select_prune_protect(backups, keep, protect, pruned):
    kept, gone = bf.select_prune(backups, keep, None, NOW, protect)
    assert [m["name"] for m in gone] == pruned
    assert len(kept) + len(gone) == len(backups)


@pytest.mark.parametrize("keep,keep_days,option", [(-1, None, "keep"), (None, -1, "keep_days")])
def test_select_prune_rejects_negative(keep, keep_days, option):
    with pytest.raises(ProdreadyError, match="^%s:" % option):
        bf.select_prune(ages(1), keep, keep_days, NOW)


@pytest.mark.parametrize("argv,secrets,expected", [
    (["pg_dump", "--dbname=app"], ["s3cret"], ["pg_dump", "--dbname=app"]),
    (["x", "postgresql://u:s3cret@h/db"], ["s3cret"], ["x", "postgresql://u:********@h/db"]),
    (["x"], [None, ""], ["x"]),
])
def test_redact_argv(argv, secrets, expected):
    assert bf.redact_argv(argv, secrets) == expected


@pytest.mark.parametrize("name,expected", [
    ("orders", (None, "orders")), ("public.orders", ("public", "orders")),
    ("a.b.c", None), (".x", None), ("x.", None), ("", None),
])
def test_split_table_name(name, expected):
    if expected is None:
        with pytest.raises(ProdreadyError, match="row_count_tables"):
            bf.split_table_name(name)
    else:
        assert bf.split_table_name(name) == expected


@pytest.mark.parametrize("db,fresh,replaced", [
    ("app", "app_restore_20261102T101500Z", "app_replaced_20261102T101500Z"),
    ("t_db_x", "t_db_x_restore_20261102T101500Z", "t_db_x_replaced_20261102T101500Z"),
])
def test_swap_db_names(db, fresh, replaced):
    assert bf.swap_db_names(db, WHEN) == (fresh, replaced)


@pytest.mark.parametrize("db", ["d" * 40, "d" * 63, "é" * 40, "a" * 38 + "b", "a" * 38 + "c"])
def test_swap_db_names_fit_in_63_bytes_and_stay_distinct(db):
    fresh, replaced = bf.swap_db_names(db, WHEN)
    assert len(fresh.encode("utf-8")) <= 63 and len(replaced.encode("utf-8")) <= 63
    assert fresh != replaced and fresh.endswith("_restore_20261102T101500Z")
    assert replaced.endswith("_replaced_20261102T101500Z")
    other = bf.swap_db_names(db + "x", WHEN)
    assert other[0] != fresh  # a hash keeps shortened names of different dbs apart


def test_swap_db_names_need_a_db():
    with pytest.raises(ProdreadyError, match="db:"):
        bf.swap_db_names("", WHEN)


@pytest.mark.parametrize("before,after,expected", [
    ({"orders": 12, "users": 3}, {"orders": 10, "users": 3}, {"orders": 2, "users": 0}),
    ({"orders": 8}, {"orders": 10}, {"orders": -2}),
    ({"orders": 8, "extra": 1}, {"orders": 8}, {"orders": 0}),
    ({}, {"orders": 1}, {}),
])
def test_row_count_delta(before, after, expected):
    assert bf.row_count_delta(before, after) == expected


@pytest.mark.parametrize("replaced, restored, expected", [
    ({"orders": 12, "companies": 3}, {"orders": 10, "companies": 3}, {"orders": 2}),
    ({"audit.events": 4}, {}, {"audit.events": 4}),  # made after the backup: all of it
    ({"audit_events": 0}, {}, {}),
    ({"orders": 9}, {"orders": 10}, {}),  # deleted after the backup, back again: not discarded
    ({}, {"old": 5}, {}),
])
def test_discarded_rows_over_every_table(replaced, restored, expected):
    assert bf.discarded_rows(replaced, restored) == expected
