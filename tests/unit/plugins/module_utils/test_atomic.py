"""_atomic.write_atomic: new files get the given mode; errors name the option; no temp left."""

import os
import stat

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _atomic
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
def test_new_file_gets_the_given_mode(tmp_path, mode):
    path = tmp_path / "state.json"
    _atomic.write_atomic(str(path), b"{}\n", None, mode, "path")
    assert path.read_bytes() == b"{}\n"
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == mode
    assert os.listdir(str(tmp_path)) == ["state.json"]


def test_missing_directory_is_named_with_the_option(tmp_path):
    target = tmp_path / "nowhere" / "upstream.conf"
    with pytest.raises(ProdreadyError) as err:
        _atomic.write_atomic(str(target), b"x", None, 0o644, "upstream_include")
    assert str(err.value).startswith("upstream_include: cannot create a temporary file in %s" % target.parent)
