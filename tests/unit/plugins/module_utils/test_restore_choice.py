"""Tables for the choice of the backup `rollback_backup` names: labels, paths, refusals, schema."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _restore_choice as rc
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

DIR = "/srv/app/backups"


def backup(name, epoch, label=None, db="app", scope="full", verified=True, revision="0002", **extra):
    manifest = dict(name=name, path="%s/%s" % (DIR, name), db=db, label=label, scope=scope, format="custom",
                    verified=verified, finished_epoch=epoch, tables=[], exclude_tables=[], alembic_revision=revision)
    manifest.update(extra)
    return manifest


BACKUPS = [
    backup("app_full_pre-1.0.0-r1_20261201T100000Z.dump", 100.0, "pre-1.0.0-r1", revision=None),
    backup("app_full_pre-1.1.0-r2_20261202T100000Z.dump", 200.0, "pre-1.1.0-r2", revision="0001"),
    backup("app_schema_pre-1.1.0-r2-schema_20261202T100001Z.sql", 201.0, "pre-1.1.0-r2-schema", scope="schema"),
    backup("app_full_nightly_20261203T020000Z.dump", 300.0, "nightly"),
    backup("app_full_nightly_20261204T020000Z.dump", 400.0, "nightly"),
    backup("other_full_nightly-other_20261204T020000Z.dump", 410.0, "nightly-other", db="other"),
    backup("app_full_broken_20261204T030000Z.dump", 420.0, "broken", verified=False),
    backup("app_full_orders_20261204T040000Z.dump", 430.0, "orders-only", tables=["orders"]),
]
STATE = {"live_version": "1.1.0", "live_color": "green", "previous_version": "1.0.0",
         "db_revisions": ["0002"], "db_revisions_before": ["0001"]}


@pytest.mark.parametrize("wanted, path, label", [
    # a label: the newest usable backup with it
    ("nightly", DIR + "/app_full_nightly_20261204T020000Z.dump", "nightly"),
    ("pre-1.1.0-r2", DIR + "/app_full_pre-1.1.0-r2_20261202T100000Z.dump", "pre-1.1.0-r2"),
    # a path in the directory, its label read from its manifest; normalised first
    (DIR + "/app_full_nightly_20261203T020000Z.dump", DIR + "/app_full_nightly_20261203T020000Z.dump", "nightly"),
    (DIR + "/../backups/./app_full_nightly_20261203T020000Z.dump", DIR + "/app_full_nightly_20261203T020000Z.dump",
     "nightly"),
])
def test_a_label_or_a_path_names_one_backup(wanted, path, label):
    chosen = rc.choose_backup(wanted, BACKUPS, DIR + "/", "app")
    assert (chosen["path"], chosen["label"], chosen["warnings"]) == (path, label, [])


@pytest.mark.parametrize("wanted, db, exists, message", [
    ("pre-9.9.9", "app", False,
     "rollback_backup: no backup labelled 'pre-9.9.9' in app_backup_dir /srv/app/backups; labels there, newest first: "
     "nightly, pre-1.1.0-r2, pre-1.0.0-r1"),
    ("nightly-other", "app", False,
     "rollback_backup: 'nightly-other' (/srv/app/backups/other_full_nightly-other_20261204T020000Z.dump) is a backup of "
     "database other (its manifest says so), not of app, this app's database (app_database.db)"),
    ("broken", "app", False, "rollback_backup: 'broken' (/srv/app/backups/app_full_broken_20261204T030000Z.dump) cannot "
     "replace the database: it is not verified"),
    ("pre-1.1.0-r2-schema", "app", False, "cannot replace the database: it is a schema-only dump (scope schema)"),
    ("orders-only", "app", False, "cannot replace the database: it holds only the tables orders"),
    ("/tmp/app_full_nightly_20261204T020000Z.dump", "app", True,
     "rollback_backup: /tmp/app_full_nightly_20261204T020000Z.dump is not in app_backup_dir /srv/app/backups"),
    (DIR + "/../x.dump", "app", True, "rollback_backup: /srv/app/x.dump is not in app_backup_dir /srv/app/backups"),
    ("backups/x.dump", "app", True, "rollback_backup: 'backups/x.dump' is neither a label nor an absolute path"),
    (DIR + "/gone.dump", "app", False, "rollback_backup: /srv/app/backups/gone.dump does not exist; labels there"),
    (DIR + "/.app_full_x.dump.tmp-1", "app", True, "is the temporary file of a backup that never finished"),
    (DIR + "/app_full_nightly_20261204T020000Z.dump.manifest.json", "app", True,
     "is a manifest; give the backup beside it, /srv/app/backups/app_full_nightly_20261204T020000Z.dump"),
    (DIR + "/other_full_nightly-other_20261204T020000Z.dump", "app", True, "is a backup of database other"),
    ("", "app", False, "rollback_backup: empty"),
])
def test_refusals_name_rollback_backup_and_the_problem(wanted, db, exists, message):
    with pytest.raises(ProdreadyError) as err:
        rc.choose_backup(wanted, BACKUPS, DIR, db, exists)
    assert str(err.value).startswith(message) or message in str(err.value), str(err.value)


def test_the_labels_listed_are_a_few_usable_ones_newest_first():
    many = [backup("app_full_n%d_x.dump" % i, float(i), "n%d" % i) for i in range(8)]
    with pytest.raises(ProdreadyError) as err:
        rc.choose_backup("nope", many, DIR, "app")
    assert str(err.value).endswith("labels there, newest first: n7, n6, n5, n4, n3 (and 3 older)")
    with pytest.raises(ProdreadyError) as err:
        rc.choose_backup("nope", [], DIR, "app")
    assert str(err.value).endswith("there is no labelled backup of database app there")


def test_a_hand_made_dump_without_manifest_is_restored_with_a_warning():
    chosen = rc.choose_backup(DIR + "/cron_20261204.sql.gz", BACKUPS, DIR, "app", exists=True)
    assert chosen["path"] == DIR + "/cron_20261204.sql.gz" and chosen["manifest"] is None
    assert chosen["warnings"] == ["rollback_backup: /srv/app/backups/cron_20261204.sql.gz has no manifest: its database "
                                  "and its checksum cannot be checked, it is restored as it is"]


def test_without_the_app_database_any_database_s_backup_is_taken():
    assert rc.choose_backup("nightly-other", BACKUPS, DIR, None)["label"] == "nightly-other"


@pytest.mark.parametrize("left, right, same", [
    ("0002", "0002", True), ("a,b", "b,a", True), (["a", "b"], "b,a", True), (None, "", True),
    ("0001", "0002", False), (None, "0001", False),
])
def test_same_revisions(left, right, same):
    assert rc.same_revisions(left, right) is same


def chosen(label, revision="0002", manifest=True):
    return dict(path=DIR + "/x.dump", label=label,
                manifest=dict(alembic_revision=revision) if manifest else None, warnings=[])


@pytest.mark.parametrize("choice, target, in_place, trees, revisions, warned", [
    # in place: the backup's revision is the live release's
    (chosen("nightly"), "1.1.0", True, 1, ["0002"], False),
    # with rollback_to the previous version: the revisions before the last deploy
    (chosen("pre-1.1.0-r2", "0001"), "1.0.0", False, 1, ["0001"], False),
    # another version: nothing to compare with, the backup's revision is verified after
    (chosen("old", "0000"), "0.9.0", False, 1, ["0000"], False),
    # no manifest: the release's revisions, with a warning
    (chosen(None, manifest=False), "1.1.0", True, 1, ["0002"], True),
    (chosen(None, manifest=False), "0.9.0", False, 1, [], True),
    # several alembic trees: the manifest holds one revision, not checked
    (chosen("nightly", "0009"), "1.1.0", True, 2, ["0002"], True),
    # no alembic at all
    (chosen("nightly", None), "1.1.0", True, 0, [], False),
])
def test_revisions_after_the_restore(choice, target, in_place, trees, revisions, warned):
    after, warnings = rc.revisions_after(choice, STATE, target, in_place, trees)
    assert after == revisions and bool(warnings) is warned


@pytest.mark.parametrize("choice, target, in_place, message", [
    (chosen("pre-1.1.0-r2", "0001"), "1.1.0", True,
     "rollback_backup: pre-1.1.0-r2 was taken at alembic revision 0001, but the live release 1.1.0 runs on 0002: it "
     "would start on a schema it does not know; it is the schema 1.0.0 ran on: -e rollback_to=1.0.0 restores it with "
     "that release, or pick a backup taken at 0002"),
    (chosen("pre-1.0.0-r1", None), "1.1.0", True,
     "rollback_backup: pre-1.0.0-r1 was taken at alembic revision base (no alembic_version), but the live release "
     "1.1.0 runs on 0002"),
    (chosen("nightly", "0002"), "1.0.0", False,
     "rollback_backup: nightly was taken at alembic revision 0002, but release 1.0.0 runs on 0001"),
])
def test_a_backup_of_another_schema_than_the_release_s_is_refused(choice, target, in_place, message):
    with pytest.raises(ProdreadyError) as err:
        rc.revisions_after(choice, STATE, target, in_place, 1)
    assert str(err.value).startswith(message), str(err.value)


def test_plan_restore_returns_the_refusal_as_problem():
    ok = rc.plan_restore("nightly", BACKUPS, DIR, "app", False, STATE, "1.1.0", True, 1)
    assert ok == dict(path=DIR + "/app_full_nightly_20261204T020000Z.dump", label="nightly", db="app",
                      revisions=["0002"], warnings=[], problem="")
    refused = rc.plan_restore("pre-1.1.0-r2", BACKUPS, DIR, "app", False, STATE, "1.1.0", True, 1)
    assert refused["path"] is None and refused["problem"].startswith("rollback_backup: pre-1.1.0-r2 was taken at")
