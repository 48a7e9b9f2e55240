"""playbooks/backup.yml (runbook 002's daily backup) against the sandbox's PostgreSQL.

One app database owned by the app role (three tables, one outside schema public, a few rows)
and two hosts sharing it (h1, h2: local connections, their own app_root): the backup is taken
once, on h1 (the host a deploy backs up from). Each test works in its own backup directory
(-e app_backup_dir), so retention counts only its own backups; the drills restore one
module-scoped backup (copied, then tampered with where a test needs it).
"""

import gzip
import hashlib
import json
import re
import shutil

import pytest
import yaml

from apptools import create_app_db, drop_db, superuser_conn
from bluegreen_tools import recap
from helpers import ROOT, run_module, run_playbook

PLAYBOOK = ROOT / "playbooks" / "backup.yml"
ROWS = {"customers": 2, "orders": 3, "audit.events": 1}
SEED = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers (id), total int);
CREATE SCHEMA audit;
CREATE TABLE audit.events (id serial PRIMARY KEY, what text);
INSERT INTO customers (name) VALUES ('ada'), ('bob');
INSERT INTO orders (customer_id, total) VALUES (1, 10), (2, 20), (1, 30);
INSERT INTO audit.events (what) VALUES ('created');
"""
# The result format json: messages unfolded; custom stats (set_stats) printed as one JSON line.
ENV = {"ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_SHOW_CUSTOM_STATS": "1"}


@pytest.fixture(scope="module")
def app(sandbox, tmp_path_factory):
    base = tmp_path_factory.mktemp("backup-playbook")
    db = create_app_db(sandbox, "t_bk_")
    conn = superuser_conn(sandbox, db)
    with conn.cursor() as cur:
        cur.execute("SET ROLE %s" % sandbox["services"]["postgres"]["app_user"])
        cur.execute(SEED)
    conn.close()
    pg = sandbox["services"]["postgres"]
    database = {"db": db, "login_host": pg["host"], "login_port": pg["port"], "login_user": pg["app_user"],
                "login_password": sandbox["secrets"]["app_db_password"]}
    hosts = {}
    for name in ("h1", "h2"):
        (base / name).mkdir()
        hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
                       "app_name": "bk", "app_root": str(base / name), "app_database": database}
    inventory = base / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    app = {"sandbox": sandbox, "base": base, "db": db, "database": database, "inventory": inventory}
    # The backup the drills restore (and the label-not-found case lists).
    app["good_dir"] = base / "good"
    proc = backup(app, app["good_dir"], backup_label="daily-fixture")
    assert proc.returncode == 0, proc.output[-3000:]
    yield app
    drop_db(sandbox, db)


def backup(app, backup_dir, **extra):
    return run_playbook(PLAYBOOK, inventory=app["inventory"], env=ENV,
                        extra_vars=dict({"deploy_hosts": "all", "app_backup_dir": str(backup_dir)}, **extra))


def manifests(backup_dir):
    """{label: manifest (with its file's path)} of the backups in backup_dir."""
    out = {}
    for path in sorted(backup_dir.glob("*.manifest.json")):
        manifest = json.loads(path.read_text())
        out[manifest["label"]] = dict(manifest, path=str(path)[:-len(".manifest.json")])
    return out


def take(app, backup_dir, label):
    """A backup taken as a deploy takes it (pg_backup, custom format), without the playbook."""
    result = run_module("pg_backup", dict(app["database"], dest_dir=str(backup_dir), label=label))
    assert not result.get("failed"), result.get("msg")
    return result["path"]


def custom_stats(proc):
    """The set_stats data of the run (the result format json prints it as one line)."""
    match = re.search(r"^\s*RUN: (\{.*\})\s*$", proc.stdout, re.M)
    assert match, proc.output[-3000:]
    return json.loads(match.group(1))


def failure(proc):
    """The message of the task that failed the run (the last one: a rescued task printed its own before)."""
    found = re.findall(r"^fatal: \[\w+\]: FAILED! => (\{.*\})\s*$", proc.stdout, re.M)
    assert found, proc.output[-3000:]
    return json.loads(found[-1])["msg"]


def audit(app, host):
    path = app["base"] / host / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def databases(app, like):
    conn = superuser_conn(app["sandbox"])
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,))
        names = [row[0] for row in cur.fetchall()]
    conn.close()
    return names


def copy_backup(manifest, dest_dir):
    """The backup and its manifest copied into dest_dir; the copy's (backup path, manifest path)."""
    dest_dir.mkdir(mode=0o700)
    path = dest_dir / (manifest["path"].rsplit("/", 1)[1])
    shutil.copy2(manifest["path"], path)
    shutil.copy2(manifest["path"] + ".manifest.json", str(path) + ".manifest.json")
    return path, dest_dir / (path.name + ".manifest.json")


# ----------------------------------------------------------------------------- run


def test_run_takes_one_verified_backup_with_every_tables_rows_and_prunes_beyond_retention_but_never_a_deploys(app):
    backup_dir = app["base"] / "run"
    pre = take(app, backup_dir, "pre-1.0.0-run1")       # a deploy's backup, the oldest
    first = take(app, backup_dir, "daily-a")
    second = take(app, backup_dir, "daily-b")

    proc = backup(app, backup_dir, backup_label="daily-c", backup_keep=2, backup_keep_days=0)

    assert proc.returncode == 0, proc.output[-3000:]
    found = manifests(backup_dir)
    assert sorted(found) == ["daily-b", "daily-c", "pre-1.0.0-run1"]   # daily-a beyond the 2 newest
    taken = found["daily-c"]
    assert taken["verified"] and taken["format"] == "plain" and taken["gzip"]
    assert taken["row_counts"] == ROWS                                # every table, counted in the dump's snapshot
    assert taken["path"].startswith(str(backup_dir))                  # taken on h1 (its backup dir), once
    assert "pruned 1: %s" % first in proc.stdout and "kept 3" in proc.stdout
    assert "label daily-c, " in proc.stdout and "(%d bytes)" % taken["size_bytes"] in proc.stdout
    stats = custom_stats(proc)["backup_result"]
    assert list(stats) == ["h1"]
    assert stats["h1"]["path"] == taken["path"] and stats["h1"]["pruned"] == [first]
    assert stats["h1"]["verified"] is True and stats["h1"]["size_bytes"] == taken["size_bytes"]
    lines = [line for line in audit(app, "h1") if line["action"] == "backup_run" and line["label"] == "daily-c"]
    assert len(lines) == 1 and lines[0]["pruned"] == [first] and lines[0]["result"] == "ok"
    assert not [line for line in audit(app, "h2") if line["label"] == "daily-c"]   # once, on the backup host
    assert pre in [m["path"] for m in found.values()] and second in [m["path"] for m in found.values()]


def test_run_twice_in_the_same_minute_reuses_the_backup(app):
    backup_dir = app["base"] / "rerun"
    assert backup(app, backup_dir, backup_label="daily-same").returncode == 0
    proc = backup(app, backup_dir, backup_label="daily-same")
    assert proc.returncode == 0, proc.output[-3000:]
    assert len(manifests(backup_dir)) == 1 and "(reused)" in proc.stdout


def test_check_mode_takes_prunes_and_audits_nothing(app):
    before = sorted(app["good_dir"].iterdir())
    audit_lines = len(audit(app, "h1"))
    proc = run_playbook(PLAYBOOK, inventory=app["inventory"], env=ENV, check=True,
                        extra_vars={"deploy_hosts": "all", "app_backup_dir": str(app["good_dir"]),
                                    "backup_keep": 0, "backup_keep_days": 0})
    assert proc.returncode == 0, proc.output[-3000:]
    assert sorted(app["good_dir"].iterdir()) == before and len(audit(app, "h1")) == audit_lines
    assert custom_stats(proc)["backup_result"]["h1"]["result"] == "check"


def test_retention_keeps_the_backup_state_json_records_even_when_deploy_backups_are_not_protected(app):
    backup_dir = app["base"] / "recorded"
    old = take(app, backup_dir, "pre-1.0.0-run1")
    recorded = take(app, backup_dir, "pre-1.1.0-run2")
    take(app, backup_dir, "daily-x")
    # h2's last deploy recorded its backup (a rollback with rollback_db=restore restores it).
    (app["base"] / "h2" / "state.json").write_text(json.dumps({"live_version": "1.1.0", "backup_path": recorded}))
    try:
        proc = backup(app, backup_dir, backup_action="prune", backup_keep=1, backup_keep_days=0, backup_protect=[])
    finally:
        (app["base"] / "h2" / "state.json").unlink()
    assert proc.returncode == 0, proc.output[-3000:]
    assert sorted(manifests(backup_dir)) == ["daily-x", "pre-1.1.0-run2"]
    assert custom_stats(proc)["backup_result"]["h1"]["pruned"] == [old]
    assert [line["action"] for line in audit(app, "h1")][-1] == "backup_prune"


# ----------------------------------------------------------------------------- drill


def test_drill_restores_the_newest_backup_into_a_scratch_database_compares_every_table_and_drops_it(app):
    proc = backup(app, app["good_dir"], backup_action="drill")
    assert proc.returncode == 0, proc.output[-3000:]
    result = custom_stats(proc)["backup_result"]["h1"]
    assert result["result"] == "ok" and result["label"] == "daily-fixture"
    assert result["tables_compared"] == 3 and result["differences"] == []
    assert result["scratch_db"].startswith(app["db"] + "_drill_") and result["scratch_db"] != app["db"]
    assert databases(app, app["db"] + "_drill_%") == []                # dropped
    assert "every table holds the rows the backup recorded" in proc.stdout and "restore: " in proc.stdout
    assert [line["result"] for line in audit(app, "h1") if line["action"] == "backup_drill"][-1] == "ok"


def test_drill_keeps_the_scratch_database_when_asked(app):
    scratch = app["db"] + "_kept"
    try:
        proc = backup(app, app["good_dir"], backup_action="drill", backup_label="daily-fixture",
                      backup_drill_db=scratch, backup_drill_keep=True)
        assert proc.returncode == 0, proc.output[-3000:]
        assert databases(app, scratch) == [scratch]
        conn = superuser_conn(app["sandbox"], scratch)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM audit.events")
            assert cur.fetchone()[0] == ROWS["audit.events"]
        conn.close()
    finally:
        drop_db(app["sandbox"], scratch)


def test_drill_fails_naming_the_table_when_the_backup_restores_other_rows_than_its_manifest_recorded(app):
    """A backup whose SQL lost a row of orders, its sha256 recorded again (what a verify alone
    cannot catch): the restore succeeds, and the drill finds orders short of one row."""
    path, manifest_path = copy_backup(manifests(app["good_dir"])["daily-fixture"], app["base"] / "lost-row")
    sql = gzip.decompress(path.read_bytes()).decode()
    copy_block = re.search(r"^COPY public\.orders .*?\n(.*?)^\\\.$", sql, re.M | re.S)
    first_row = copy_block.group(1).splitlines(True)[0]
    tampered = gzip.compress(sql.replace(first_row, "", 1).encode())
    path.write_bytes(tampered)
    manifest = json.loads(manifest_path.read_text())
    manifest.update(sha256=hashlib.sha256(tampered).hexdigest(), size_bytes=len(tampered))
    manifest_path.write_text(json.dumps(manifest))

    proc = backup(app, path.parent, backup_action="drill")

    assert proc.returncode != 0
    message = failure(proc)
    assert "row counts differ from the backup's manifest: orders: backup 3, restored 2" in message
    assert "customers" not in message.split("manifest:")[1]
    result = custom_stats(proc)["backup_result"]["h1"]
    assert result["result"] == "failed"
    assert result["differences"] == [{"table": "orders", "backup": 3, "restored": 2,
                                      "text": "orders: backup 3, restored 2"}]
    assert databases(app, app["db"] + "_drill_%") == []                # dropped all the same
    assert [line["result"] for line in audit(app, "h1") if line["action"] == "backup_drill"][-1] == "failed"


def test_drill_fails_when_the_backup_file_was_altered(app):
    path, _manifest = copy_backup(manifests(app["good_dir"])["daily-fixture"], app["base"] / "altered")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    proc = backup(app, path.parent, backup_action="drill")

    assert proc.returncode != 0
    message = failure(proc)
    assert "the restore failed" in message and "sha256 mismatch" in message
    assert databases(app, app["db"] + "_drill_%") == []


# ----------------------------------------------------------------------------- cron


def test_cron_present_writes_the_daily_run_once_and_absent_removes_it(app):
    cron_dir = app["base"] / "cron.d"
    cron_dir.mkdir()
    cron_file = cron_dir / "prodready-backup-bk"
    args = {"backup_action": "cron", "backup_cron_dir": str(cron_dir), "backup_cron_hour": "3",
            "backup_cron_minute": "30", "backup_cron_extra_args": "--limit h1"}

    first = backup(app, app["base"] / "unused", **args)
    again = backup(app, app["base"] / "unused", **args)

    assert first.returncode == 0 and again.returncode == 0, first.output[-3000:] + again.output[-3000:]
    assert recap(first.stdout)["h1"]["changed"] == 1 and recap(again.stdout)["h1"]["changed"] == 0
    lines = cron_file.read_text().splitlines()
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in lines
    job = [line for line in lines if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(job) == 1
    assert job[0].startswith("30 3 * * * root %s/.venv/bin/ansible-playbook -i %s %s -e backup_action=run --limit h1"
                             % (ROOT, app["inventory"], PLAYBOOK))
    assert job[0].endswith(">> /var/log/prodready-backup-bk.log 2>&1")
    assert oct(cron_file.stat().st_mode & 0o777) == "0o644"
    assert custom_stats(first)["backup_result"]["localhost"]["cron_file"] == str(cron_file)

    removed = backup(app, app["base"] / "unused", backup_action="cron", backup_cron_state="absent",
                     backup_cron_dir=str(cron_dir))
    gone = backup(app, app["base"] / "unused", backup_action="cron", backup_cron_state="absent",
                  backup_cron_dir=str(cron_dir))
    assert removed.returncode == 0 and gone.returncode == 0
    assert not cron_file.exists()
    assert recap(removed.stdout)["h1"]["changed"] == 1 and recap(gone.stdout)["h1"]["changed"] == 0


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("extra, expected", [
    ({"backup_action": "explode"}, "backup_action"),
    ({"backup_keep": -1}, "backup_keep: must be a whole number of backups, 0 or more, got -1"),
    ({"backup_keep_days": "-2"}, "backup_keep_days: must be a number of days, 0 or more, got -2"),
    ({"backup_label": "daily 1"}, "backup_label: daily 1 is not a label"),
    ({"backup_action": "drill", "backup_label": "nope"},
     "backup_label: no verified backup labelled nope of {db} in {good} on h1; labels there: daily-fixture"),
    ({"backup_action": "drill", "backup_drill_db": "{db}"}, "backup_drill_db: {db} is the app's own database"),
    ({"backup_action": "cron", "backup_cron_name": "backup.daily"}, "backup_cron_name: backup.daily may hold only"),
])
def test_bad_input_is_refused_naming_the_variable(app, extra, expected):
    extra = {k: v.format(db=app["db"]) if isinstance(v, str) else v for k, v in extra.items()}
    proc = backup(app, app["good_dir"], **extra)
    assert proc.returncode != 0
    assert expected.format(db=app["db"], good=app["good_dir"]) in proc.stdout, proc.output[-3000:]
    assert "Traceback" not in proc.output
    assert sorted(manifests(app["good_dir"])) == ["daily-fixture"]    # nothing taken or pruned
