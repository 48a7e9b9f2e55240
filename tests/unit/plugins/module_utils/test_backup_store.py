"""I/O half of pg_backup's backup store: formats of a source, atomic private manifests, checksums."""

import json
import os
import stat

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _backup_store as store
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError


@pytest.mark.parametrize("name, manifest, expected", [
    ("x.bin", {"format": "tar", "gzip": False}, ("tar", False)),  # the manifest wins over the name
    ("x.sql", {"format": "plain", "gzip": True}, ("plain", True)),
    ("cron.sql.gz", None, ("plain", True)),
    ("x.sql", None, ("plain", False)),
    ("x.dump", None, ("custom", False)),
    ("x.pgdump", None, ("custom", False)),
    ("x.tar", None, ("tar", False)),
])
def test_source_format(tmp_path, name, manifest, expected):
    path = tmp_path / name
    path.write_bytes(b"x")
    assert store.source_format(str(path), manifest) == expected


def test_source_format_of_a_directory_and_of_an_unknown_file(tmp_path):
    (tmp_path / "dumpdir").mkdir()
    assert store.source_format(str(tmp_path / "dumpdir") + os.path.sep, None) == ("directory", False)
    (tmp_path / "x.bak").write_bytes(b"x")
    with pytest.raises(ProdreadyError, match="has no manifest and its format cannot be inferred"):
        store.source_format(str(tmp_path / "x.bak"), None)


def test_write_json_atomic_is_private_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "b.dump.manifest.json"
    store.write_json_atomic(str(path), {"b": 1, "a": 2})
    assert json.loads(path.read_text()) == {"a": 2, "b": 1}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == [path.name]


def test_hashing_writer_hashes_what_it_writes(tmp_path):
    path = tmp_path / "f"
    with open(path, "wb") as fh:
        writer = store.HashingWriter(fh)
        writer.write(b"hello ")
        writer.write(b"world")
        writer.flush()
    assert (writer.sha.hexdigest(), writer.size) == store.checksum(str(path))


def test_remove_path_removes_files_and_trees_and_ignores_missing(tmp_path):
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f").write_bytes(b"x")
    (tmp_path / "file").write_bytes(b"x")
    for name in ("tree", "file", "missing"):
        store.remove_path(str(tmp_path / name))
    assert os.listdir(tmp_path) == []
