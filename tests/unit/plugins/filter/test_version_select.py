"""version_select: the first entry whose PEP 440 range holds the version."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.prodready.deploy.plugins.filter.version_select import version_select

ENTRIES = [
    {"versions": "<2.0", "command": "gunicorn"},
    {"versions": ">=2.0,<3", "command": "uvicorn"},
    {"command": "fallback"},
]


@pytest.mark.parametrize("version, command", [
    ("1.9.9", "gunicorn"),
    ("2.0.0", "uvicorn"),
    ("2.0.0rc1", "fallback"),   # PEP 440: neither <2.0 nor >=2.0 holds 2.0's own pre-releases
    ("2.10.0", "uvicorn"),      # compared as versions, not as text
    ("3.0.0", "fallback"),
])
def test_the_first_matching_range_wins_and_an_entry_without_range_holds_all(version, command):
    assert version_select(ENTRIES, version)["command"] == command


def test_a_range_from_the_first_pre_release_takes_the_release_candidates():
    assert version_select([{"versions": ">=2.0.dev0", "command": "uvicorn"}], "2.0.0rc1")["command"] == "uvicorn"


def test_no_match_is_an_empty_dict():
    assert version_select(ENTRIES[:2], "4.0") == {}
    assert version_select([], "1.0") == {}


@pytest.mark.parametrize("entries, version, message", [
    (ENTRIES, "not a version", "'not a version' is not a PEP 440 version"),
    ([{"versions": "=>2"}], "1.0", "entry 0: versions '=>2' is not a version range such as '>=2.0,<3'"),
    ([{"versions": 2}], "1.0", "entry 0: versions must be a string"),
    (["x"], "1.0", "entry 0 must be a dict"),
    ({"versions": "<2"}, "1.0", "the input must be a list of dicts"),
])
def test_bad_input_names_the_entry_and_the_problem(entries, version, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(").replace(".", r"\.")):
        version_select(entries, version)
