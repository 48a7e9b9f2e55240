"""row_count_diff: the tables whose restored row counts differ from the manifest's."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.prodready.deploy.plugins.filter.row_count_diff import row_count_diff


@pytest.mark.parametrize("backup, restored, expected", [
    ({"orders": 3, "customers": 2}, {"customers": 2, "orders": 3}, []),
    ({"orders": 3, "customers": 2}, {"customers": 2, "orders": 2},
     [{"table": "orders", "backup": 3, "restored": 2}]),
    ({"orders": 3, "a.b": 1}, {"orders": 3},                 # not counted after the restore
     [{"table": "a.b", "backup": 1, "restored": None}]),
    ({}, {"extra": 0}, [{"table": "extra", "backup": None, "restored": 0}]),
    ({"z": 1, "a": 1}, {"z": 0, "a": 0},                     # sorted by table
     [{"table": "a", "backup": 1, "restored": 0}, {"table": "z", "backup": 1, "restored": 0}]),
    ({}, {}, []),
])
def test_differences(backup, restored, expected):
    found = row_count_diff(backup, restored)
    assert [dict((k, v) for k, v in d.items() if k != "text") for d in found] == expected


def test_each_difference_says_the_table_and_both_counts():
    found = row_count_diff({"orders": 3, "gone": 1}, {"orders": 2})
    assert [d["text"] for d in found] == ["gone: backup 1, restored none", "orders: backup 3, restored 2"]


@pytest.mark.parametrize("backup, restored, name", [(None, {}, "input"), ({}, [1], "restored")])
def test_not_a_dict_is_refused_naming_the_argument(backup, restored, name):
    with pytest.raises(AnsibleFilterError, match="row_count_diff: %s must be a dict" % name):
        row_count_diff(backup, restored)
