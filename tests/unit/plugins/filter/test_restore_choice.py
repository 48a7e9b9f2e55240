"""restore_choice: the rollback role's choice of rollback_backup from a pg_backup listing."""

import yaml

from ansible_collections.prodready.deploy.plugins.filter import restore_choice as module
from ansible_collections.prodready.deploy.plugins.filter.restore_choice import restore_choice

DIR = "/srv/app/backups"
LISTING = {"changed": False, "backups": [
    {"name": "app_full_nightly_x.dump", "path": DIR + "/app_full_nightly_x.dump", "db": "app", "label": "nightly",
     "scope": "full", "verified": True, "finished_epoch": 1.0, "tables": [], "alembic_revision": "0002"}]}
STATE = {"live_version": "1.1.0", "db_revisions": ["0002"]}


def test_a_listed_label_is_chosen_with_its_revisions():
    choice = restore_choice("nightly", LISTING, DIR, db="app", state=STATE, target="1.1.0", in_place=True)
    assert choice["problem"] == "" and choice["path"] == DIR + "/app_full_nightly_x.dump"
    assert choice["revisions"] == ["0002"] and choice["label"] == "nightly"


def test_a_listing_that_failed_is_said_naming_rollback_backup():
    choice = restore_choice("nightly", {"failed": True, "msg": "dest_dir: /x does not exist or is not a directory"},
                            "/x", db="app")
    assert choice["problem"] == ("rollback_backup: the backups in app_backup_dir /x could not be listed: "
                                 "dest_dir: /x does not exist or is not a directory")
    # registered with failed_when: false, the failure is only the missing list
    choice = restore_choice("nightly", {"failed": False, "msg": "dest_dir: /x does not exist"}, "/x", db="app")
    assert choice["problem"] == "rollback_backup: the backups in app_backup_dir /x could not be listed: " \
        "dest_dir: /x does not exist"


def test_a_path_without_manifest_needs_to_exist():
    assert "does not exist" in restore_choice(DIR + "/cron.sql.gz", LISTING, DIR, db="app")["problem"]
    choice = restore_choice(DIR + "/cron.sql.gz", LISTING, DIR, db="app", exists=True, state=STATE, target="1.1.0",
                            in_place=True)
    assert choice["problem"] == "" and len(choice["warnings"]) == 2  # no manifest; revision unknown


def test_documented_options_match_the_signature():
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert set(doc["options"]) - {"_input"} == {"listing", "backup_dir", "db", "exists", "state", "target", "in_place",
                                                "trees"}
    assert list(module.FilterModule().filters()) == ["restore_choice"]
