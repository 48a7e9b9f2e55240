"""pg_backup: docs agree with the code; list/prune on real files (no database needed)."""

import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _db_modules_helpers import FakeModule, assert_documented, assert_spec_matches_docs  # noqa: E402
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_files as bf  # noqa: E402
from ansible_collections.prodready.deploy.plugins.module_utils import _backup_store as store  # noqa: E402
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError  # noqa: E402
from ansible_collections.prodready.deploy.plugins.modules import pg_backup  # noqa: E402


def test_argument_spec_matches_documentation():
    assert_spec_matches_docs(pg_backup, pg_backup.argument_spec())


def test_password_is_no_log():
    assert pg_backup.argument_spec()["login_password"]["no_log"] is True


def make_backups(dest, ages_days, db="app"):
    """Backups with manifests in dest, aged by `ages_days`; returns their paths, newest first."""
    now = time.time()
    paths = []
    for i, age in enumerate(ages_days):
        finished = now - age * 86400
        name = bf.backup_name(db, "full", "custom", bf.utc_datetime(finished), gzip=False)
        name = name.replace(".dump", "-%d.dump" % i)
        path = dest / name
        path.write_bytes(b"x" * (i + 1))
        digest, size = store.checksum(str(path))
        m = bf.build_manifest(name=name, db=db, fmt="custom", scope="full", sha256=digest,
                              size_bytes=size, started_epoch=finished - 1,
                              finished_epoch=finished, verified=True)
        (dest / (name + bf.MANIFEST_SUFFIX)).write_text(json.dumps(m))
        paths.append(str(path))
    return paths


def test_list_returns_newest_first_and_documented_keys(tmp_path):
    paths = make_backups(tmp_path, [3, 0, 1])
    (tmp_path / "junk.manifest.json").write_text("{not json")
    (tmp_path / ".half.dump.tmp-1").write_bytes(b"partial")
    module = FakeModule(dict(mode="list", dest_dir=str(tmp_path)), pg_backup.argument_spec())
    result = pg_backup.run(module)
    assert [b["path"] for b in result["backups"]] == [paths[1], paths[2], paths[0]]
    assert result["changed"] is False
    assert any("junk.manifest.json" in w for w in module.warnings)
    assert_documented(pg_backup, result)


@pytest.mark.parametrize("check_mode", [False, True])
def test_prune_deletes_only_beyond_keep(tmp_path, check_mode):
    paths = make_backups(tmp_path, [0, 1, 2, 10, 11])
    before = sorted(os.listdir(tmp_path))
    module = FakeModule(dict(mode="prune", dest_dir=str(tmp_path), keep=2, keep_days=5),
                        pg_backup.argument_spec(), check_mode=check_mode)
    result = pg_backup.run(module)
    assert result["pruned"] == paths[3:]
    assert result["changed"] is True
    assert_documented(pg_backup, result)
    if check_mode:
        assert sorted(os.listdir(tmp_path)) == before
    else:
        left = sorted(os.listdir(tmp_path))
        assert left == sorted(os.path.basename(p) + s for p in paths[:3] for s in ("", bf.MANIFEST_SUFFIX))


def test_prune_of_another_db_leaves_these_alone(tmp_path):
    make_backups(tmp_path, [5, 6], db="other")
    module = FakeModule(dict(mode="prune", dest_dir=str(tmp_path), db="app", keep=0),
                        pg_backup.argument_spec())
    result = pg_backup.run(module)
    assert result["pruned"] == [] and result["changed"] is False
    assert len(os.listdir(tmp_path)) == 4


def test_verify_detects_changed_bytes(tmp_path):
    paths = make_backups(tmp_path, [0])
    with open(paths[0], "ab") as fh:
        fh.write(b"corruption")
    module = FakeModule(dict(mode="verify", src=paths[0]), pg_backup.argument_spec())
    with pytest.raises(ProdreadyError, match="sha256 mismatch"):
        pg_backup.run(module)


def test_sha256_tree_depends_on_names_and_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "toc.dat").write_bytes(b"1")
    first = store.sha256_tree(str(tmp_path / "a"))
    (tmp_path / "a" / "toc.dat").write_bytes(b"2")
    second = store.sha256_tree(str(tmp_path / "a"))
    os.rename(tmp_path / "a" / "toc.dat", tmp_path / "a" / "toc2.dat")
    third = store.sha256_tree(str(tmp_path / "a"))
    assert len({first[0], second[0], third[0]}) == 3
    assert first[1] == 1


@pytest.mark.parametrize("params, message", [
    (dict(mode="backup", format="custom", jobs=2), "jobs: parallel dumps need format=directory (format is custom)"),
    (dict(mode="backup", format="directory", jobs=0), "jobs: must be >= 1, got 0"),
    (dict(mode="backup", compress=10), "compress: must be 0-9, got 10"),
    (dict(mode="backup", format="tar", compress=1), "compress: the tar format cannot be compressed"),
    (dict(mode="backup", label="../x"), "label: '../x' is not a valid label"),
    (dict(mode="backup", row_count_tables=["a.b.c"]), "row_count_tables: 'a.b.c' is not"),
    (dict(mode="restore", src="x"), "target_db: set target_db or db for mode restore"),
    (dict(mode="restore", src="x", swap=True), "target_db: set target_db or db (the database to replace) for swap"),
    (dict(mode="restore", src="x", db="app", swap=True, clean=True), "clean: not used with swap"),
    (dict(mode="restore", src="x", db="app", swap=True, create_target=True),
     "create_target: not used with swap (swap replaces an existing database); restore without swap to create app"),
    (dict(mode="prune", dest_dir="/nonexistent"), "keep: set keep and/or keep_days for mode prune"),
])
def test_validate_names_the_option_before_anything_runs(params, message):
    values = dict((k, v.get("default")) for k, v in pg_backup.argument_spec().items())
    values.update(params)
    with pytest.raises(ProdreadyError) as err:
        pg_backup.validate(values)
    assert message in str(err.value)


@pytest.mark.parametrize("params", [
    dict(mode="backup", format="directory", jobs=4, compress=6, label="pre-1.4.0", row_count_tables=["public.orders"]),
    dict(mode="backup", format="tar", compress=0),
    dict(mode="restore", src="latest", db="app"),
    dict(mode="restore", src="latest", target_db="copy", create_target=True),
    dict(mode="restore", src="latest", db="app", swap=True),
    dict(mode="prune", keep=3),
    dict(mode="list"),
    dict(mode="verify", src="latest"),
])
def test_validate_accepts(params):
    values = dict((k, v.get("default")) for k, v in pg_backup.argument_spec().items())
    values.update(params)
    assert pg_backup.validate(values) is None
