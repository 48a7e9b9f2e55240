"""pg_backup against the sandbox's real PostgreSQL 15: formats, reuse, corruption, prune, secrets.

Every test works in its own `t_db_*` database and role and its own tmp_path.
"""

import gzip
import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))

from _pg_testdb import TestDb  # noqa: E402
from helpers import run_module  # noqa: E402

from ansible_collections.prodready.deploy.plugins.modules import pg_backup as pg_backup_module  # noqa: E402

DOCUMENTED = set(yaml.safe_load(pg_backup_module.RETURN)) | {
    "changed", "failed", "msg", "invocation", "warnings", "_stdout", "exception"}

SEED = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
                     total numeric(10,2), note text);
CREATE INDEX idx_orders_customer ON orders (customer_id);
CREATE TABLE market_structure_results (id serial PRIMARY KEY, symbol text, payload jsonb);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 500;
INSERT INTO customers (name) SELECT 'customer ' || i FROM generate_series(1, 50) i;
INSERT INTO orders (customer_id, total, note)
  SELECT 1 + i % 50, (i % 1000)::numeric, md5(i::text) FROM generate_series(1, 3000) i;
INSERT INTO market_structure_results (symbol, payload)
  SELECT 'SYM' || i, jsonb_build_object('i', i) FROM generate_series(1, 200) i;
"""
TABLES = ["customers", "orders", "market_structure_results"]


@pytest.fixture
def db(sandbox):
    testdb = TestDb(sandbox, "pgb")
    try:
        testdb.execute(SEED)
        yield testdb
    finally:
        testdb.close()


def run(args, **kw):
    result = run_module("pg_backup", args, **kw)
    undocumented = set(result) - DOCUMENTED
    assert not undocumented, "returned but not documented in RETURN: %s" % undocumented
    return result


def ok(result):
    assert not result.get("failed"), result.get("msg")
    assert "Traceback" not in result["_stdout"]
    return result


def counts(db, name=None):
    return dict((t, db.query("SELECT count(*) FROM %s" % t, db=name)[0][0]) for t in TABLES)


def tree_state(path):
    """{relative path: (mode, sha256)} of everything under path, to prove nothing changed."""
    state = {}
    if not os.path.exists(path):
        return state
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            digest = None
            if os.path.isfile(full):
                with open(full, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            state[os.path.relpath(full, path)] = (stat.S_IMODE(os.stat(full).st_mode), digest)
    return state


@pytest.mark.parametrize("fmt,extra,suffix", [
    ("custom", {}, ".dump"),
    ("directory", {"jobs": 2}, ".dir"),
    ("plain", {"compress": 6}, ".sql.gz"),
    ("plain", {}, ".sql"),
    ("tar", {}, ".tar"),
])
def test_round_trip(db, tmp_path, fmt, extra, suffix):
    dest = str(tmp_path / "backups")
    schema_before, counts_before = db.schema(), counts(db)
    backup = ok(run(db.params(dest_dir=dest, format=fmt, row_count_tables=TABLES, **extra)))
    assert backup["changed"] is True and backup["reused"] is False
    path = backup["path"]
    assert path.endswith(suffix) and os.path.dirname(path) == dest
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == (0o700 if fmt == "directory" else 0o600)
    manifest_path = path + ".manifest.json"
    assert stat.S_IMODE(os.stat(manifest_path).st_mode) == 0o600
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    assert manifest == backup["manifest"]
    assert manifest["sha256"] == backup["sha256"] and len(manifest["sha256"]) == 64
    assert manifest["row_counts"] == counts_before
    assert manifest["server_version"].startswith("15.")
    assert (manifest["format"], manifest["scope"], manifest["verified"]) == (fmt, "full", True)
    assert manifest["size_bytes"] == backup["size_bytes"] > 0
    assert sorted(os.listdir(dest)) == sorted([os.path.basename(path), os.path.basename(manifest_path)])
    if suffix == ".sql.gz":
        with gzip.open(path) as fh:
            assert b"PostgreSQL database dump complete" in fh.read()
        with open(path, "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == backup["sha256"]

    from _pg_testdb import drop_database
    drop_database(db.sandbox, db.name)
    assert not db.exists(db.name)

    restore_extra = {"jobs": 2} if fmt in ("custom", "directory") else {}
    restored = ok(run(db.params(mode="restore", src=path, create_target=True, **restore_extra)))
    assert restored["created_target"] is True and restored["target_db"] == db.name
    assert restored["row_counts"] == counts_before and restored["row_counts_match"] is True
    assert counts(db) == counts_before
    assert db.schema() == schema_before


def test_runbook_000_three_dumps_and_replay(db, tmp_path):
    """000-01/02/03: full --clean --if-exists, one table data-only, schema-only; 000-07 replay."""
    dest = str(tmp_path)
    full = ok(run(db.params(dest_dir=dest, format="plain", clean=True)))
    table = ok(run(db.params(dest_dir=dest, format="plain", scope="data",
                             tables=["market_structure_results"])))
    schema = ok(run(db.params(dest_dir=dest, format="plain", scope="schema")))
    text = dict((k, open(r["path"]).read()) for k, r in
                (("full", full), ("table", table), ("schema", schema)))
    assert "DROP TABLE IF EXISTS public.orders;" in text["full"]
    assert "COPY public.market_structure_results" in text["table"]
    assert "CREATE TABLE" not in text["table"] and "COPY public.orders" not in text["table"]
    assert "CREATE TABLE public.orders" in text["schema"] and "COPY " not in text["schema"]
    assert (table["manifest"]["scope"], table["manifest"]["tables"]) == ("data", ["market_structure_results"])

    before = counts(db)
    db.execute("DELETE FROM orders WHERE id > 100; DROP VIEW big_orders")
    replay = ok(run(db.params(mode="restore", src=full["path"], row_count_tables=TABLES)))
    assert replay["row_counts"] == before == counts(db)


def test_label_is_reused(db, tmp_path):
    first = ok(run(db.params(dest_dir=str(tmp_path), label="pre-1.4.0", row_count_tables=["orders"])))
    db.execute("INSERT INTO orders (customer_id, total) VALUES (1, 1)")
    second = ok(run(db.params(dest_dir=str(tmp_path), label="pre-1.4.0", row_count_tables=["orders"])))
    assert (first["changed"], second["changed"], second["reused"]) == (True, False, True)
    assert second["path"] == first["path"] and second["sha256"] == first["sha256"]
    assert second["row_counts"] == {"orders": 3000}
    assert len(os.listdir(str(tmp_path))) == 2
    other = run(db.params(dest_dir=str(tmp_path), label="pre-1.4.0", format="plain"))
    assert other["failed"] and "label: 'pre-1.4.0' is already used" in other["msg"]
    latest = ok(run(db.params(mode="restore", dest_dir=str(tmp_path), src="pre-1.4.0",
                              target_db=db.new_db_name("r"), create_target=True)))
    assert latest["path"] == first["path"] and latest["row_counts"] == {"orders": 3000}


def test_corrupt_backup_is_refused(db, tmp_path):
    backup = ok(run(db.params(dest_dir=str(tmp_path), label="pre-2")))
    with open(backup["path"], "r+b") as fh:
        fh.seek(200)
        byte = fh.read(1)
        fh.seek(200)
        fh.write(bytes([byte[0] ^ 0xFF]))
    target = db.new_db_name("c")
    restored = run(db.params(mode="restore", src=backup["path"], target_db=target, create_target=True))
    assert restored["failed"]
    assert "failed verification: sha256 mismatch" in restored["msg"] and "refusing" in restored["msg"]
    assert not db.exists(target)
    verified = run(db.params(mode="verify", src="pre-2", dest_dir=str(tmp_path)))
    assert verified["failed"] and "sha256 mismatch" in verified["msg"]
    again = ok(run(db.params(dest_dir=str(tmp_path), label="pre-2")))
    assert again["changed"] is True and again["path"] != backup["path"]
    assert any("not reusable" in w for w in again.get("warnings", []))


def test_prune_keeps_the_right_files(db, tmp_path):
    dest = str(tmp_path)
    paths = [ok(run(db.params(dest_dir=dest, label="b%d" % i)))["path"] for i in range(3)]
    # Age them: 10, 5 and 0 days old (the manifest's finished time drives retention).
    for path, days in zip(paths, (10, 5, 0)):
        mpath = path + ".manifest.json"
        with open(mpath) as fh:
            m = json.load(fh)
        m["finished_epoch"] = time.time() - days * 86400
        with open(mpath, "w") as fh:
            json.dump(m, fh)
    listed = ok(run(db.params(mode="list", dest_dir=dest)))
    assert [b["path"] for b in listed["backups"]] == paths[::-1]

    before = tree_state(dest)
    preview = ok(run(db.params(mode="prune", dest_dir=dest, keep_days=7), check=True))
    assert preview["changed"] is True and preview["pruned"] == [paths[0]]
    assert tree_state(dest) == before

    pruned = ok(run(db.params(mode="prune", dest_dir=dest, keep_days=7)))
    assert pruned["pruned"] == [paths[0]] and pruned["kept"] == paths[:0:-1]
    assert not os.path.exists(paths[0]) and not os.path.exists(paths[0] + ".manifest.json")
    # keep_days 0 would delete everything: the newest verified backup stays.
    last = ok(run(db.params(mode="prune", dest_dir=dest, keep_days=0)))
    assert last["pruned"] == [paths[1]] and last["kept"] == [paths[2]]
    assert sorted(os.listdir(dest)) == sorted([os.path.basename(paths[2]),
                                               os.path.basename(paths[2]) + ".manifest.json"])


def test_password_not_in_process_list_nor_verbose_output(db, tmp_path):
    """While pg_dump runs (held on a table lock), no process's argv holds the password."""
    blocker = db.connect()
    blocker.autocommit = False
    blocker.cursor().execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    box = {}
    thread = threading.Thread(target=lambda: box.update(result=run(
        db.params(dest_dir=str(tmp_path)), verbosity=3)))
    thread.start()
    seen_dump, leaks, env_leaks = False, [], []
    deadline = time.time() + 60
    while time.time() < deadline and not seen_dump:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as fh:
                    cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
                if "pg_dump" in cmdline and db.name in cmdline:
                    seen_dump = True
                    with open("/proc/%s/environ" % pid, "rb") as fh:
                        environ = fh.read().decode("utf-8", "replace")
                    if db.password in environ:
                        env_leaks.append(pid)
                    assert "PGPASSFILE=" in environ
            except (IOError, OSError):
                continue
            if db.password in cmdline:
                leaks.append(cmdline)
        time.sleep(0.05)
    blocker.rollback()
    blocker.close()
    thread.join(120)
    assert seen_dump, "pg_dump was never seen running"
    assert leaks == [] and env_leaks == []
    result = ok(box["result"])
    assert db.password not in result["_stdout"]
    assert db.password not in json.dumps(result["executed_commands"])
    assert "pg_dump" in result["_stdout"]  # -vvv did print the module's result


def test_check_mode_changes_nothing(db, tmp_path):
    dest = str(tmp_path / "new")
    preview = ok(run(db.params(dest_dir=dest, label="x"), check=True))
    assert preview["changed"] is True and preview["path"].startswith(dest + "/")
    assert not os.path.exists(dest)

    backup = ok(run(db.params(dest_dir=str(tmp_path / "b"), row_count_tables=TABLES)))
    files_before, schema_before, counts_before = tree_state(str(tmp_path)), db.schema(), counts(db)
    db.execute("DELETE FROM orders WHERE id > 10")
    counts_changed = counts(db)
    target = db.new_db_name("chk")
    restores = (dict(src=backup["path"]),
                dict(src="latest", dest_dir=str(tmp_path / "b"), target_db=target, create_target=True))
    for args in restores:
        r = ok(run(db.params(mode="restore", **args), check=True))
        assert r["changed"] is True and r["executed_commands"][-1][0].endswith("pg_restore")
    assert not db.exists(target)
    assert counts(db) == counts_changed
    assert db.schema() == schema_before
    assert tree_state(str(tmp_path)) == files_before
    assert counts_before["orders"] == 3000


def test_restore_of_a_hand_made_gzip_dump(db, sandbox, tmp_path):
    """Runbook 002: `pg_dump | gzip` from cron, then `gunzip < dump | psql`."""
    pg = sandbox["services"]["postgres"]
    path = tmp_path / "db_20251026.sql.gz"
    env = dict(os.environ, PGPASSWORD=db.password)
    dump = subprocess.run([pg["bin_dir"] + "/pg_dump", "-h", pg["host"], "-p", str(pg["port"]),
                           "-U", db.role, db.name], capture_output=True, env=env, check=True)
    path.write_bytes(gzip.compress(dump.stdout))
    target = db.new_db_name("gz")
    r = ok(run(db.params(mode="restore", src=str(path), target_db=target, create_target=True,
                         row_count_tables=["orders"])))
    assert r["row_counts"] == {"orders": 3000} and r["manifest"] is None
    assert any("no manifest" in w for w in r["warnings"])
    path.write_bytes(gzip.compress(dump.stdout)[:-200])
    bad = run(db.params(mode="verify", src=str(path)))
    assert bad["failed"] and "gzip integrity" in bad["msg"]


def test_plain_restore_stops_on_first_error(db, tmp_path):
    sql = tmp_path / "broken.sql"
    sql.write_text("CREATE TABLE first_ok (id int);\nSELECT * FROM no_such_table;\n"
                   "CREATE TABLE never_created (id int);\n"
                   "-- PostgreSQL database dump complete\n")
    r = run(db.params(mode="restore", src=str(sql)))
    assert r["failed"] and "ON_ERROR_STOP=1" in r["msg"] and "no_such_table" in r["msg"]
    assert db.query("SELECT to_regclass('never_created')")[0][0] is None


@pytest.mark.parametrize("change,message", [
    (dict(db="t_db_does_not_exist"), 'database "t_db_does_not_exist" does not exist'),
    (dict(login_password="wrong-password"), "password authentication failed"),
    (dict(login_host="127.0.0.1", login_port=1), "cannot connect to PostgreSQL"),
    (dict(dest_dir="/etc/hostname/backups"), "dest_dir: cannot create /etc/hostname/backups"),
    (dict(format="tar", compress=5), "compress: the tar format cannot be compressed"),
    (dict(format="custom", jobs=2), "jobs: parallel dumps need format=directory"),
    (dict(label="bad/label"), "label: 'bad/label' is not a valid label"),
    (dict(bin_dir="/nonexistent"), "bin_dir: /nonexistent has no executable pg_dump"),
])
def test_bad_input(db, tmp_path, change, message):
    args = db.params(dest_dir=str(tmp_path / "b"))
    args.update(change)
    r = run(args)
    assert r["failed"] and message in r["msg"], r["msg"]
    assert "Traceback" not in r["_stdout"]
    assert db.password not in r["_stdout"]


@pytest.mark.parametrize("args,message", [
    (dict(mode="restore", src="/nonexistent/x.dump"), "src: backup /nonexistent/x.dump does not exist"),
    (dict(mode="restore", src="latest"), "set dest_dir to resolve"),
    (dict(mode="restore", src="nolabel", dest_dir="/"), "src: no verified backup with label 'nolabel'"),
    (dict(mode="list", dest_dir="/nonexistent"), "dest_dir: /nonexistent does not exist"),
    (dict(mode="prune", dest_dir="/tmp"), "keep, keep_days"),
])
def test_bad_input_other_modes(db, args, message):
    r = run(db.params(**args))
    assert r["failed"] and message in r["msg"], r["msg"]
    assert "Traceback" not in r["_stdout"]


def all_db_names(db):
    conn = db.connect("postgres")
    try:
        cur = conn.cursor()
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (db.name + "%",))
        return sorted(row[0] for row in cur.fetchall())
    finally:
        conn.close()


def test_restore_with_swap(db, tmp_path):
    """Restore into a fresh db, verify, swap by rename; the old db is kept; sessions cut."""
    backup = ok(run(db.params(dest_dir=str(tmp_path), label="pre-2", row_count_tables=TABLES)))
    counts_at_backup = counts(db)
    db.execute("INSERT INTO orders (customer_id, total) SELECT 1, 1 FROM generate_series(1, 7)")
    db.execute("DELETE FROM customers WHERE id > 48 AND id NOT IN (SELECT customer_id FROM orders)")
    db.execute("CREATE TABLE written_after_backup (id int)")
    names_before = all_db_names(db)

    preview = ok(run(db.params(mode="restore", src="pre-2", dest_dir=str(tmp_path), swap=True),
                     check=True))
    assert preview["changed"] is True and preview["swap_window_s"] is None
    assert preview["replaced_db"].startswith(db.name + "_replaced_")
    assert all_db_names(db) == names_before  # check mode created nothing

    idle = db.connect()  # an app session that must be cut for the rename
    try:
        swapped = ok(run(db.params(mode="restore", src="pre-2", dest_dir=str(tmp_path), swap=True)))
        db.extra_dbs.append(swapped["replaced_db"])
        assert swapped["changed"] is True and swapped["target_db"] == db.name
        assert swapped["restore_db"] == db.name + "_restore_" + swapped["replaced_db"].rsplit("_", 1)[1]
        assert swapped["row_counts"] == counts_at_backup and swapped["row_counts_match"] is True
        assert swapped["terminated_sessions"] >= 1
        assert 0 < swapped["swap_window_s"] < swapped["duration_s"]
        assert swapped["replaced_row_counts"]["orders"] == counts_at_backup["orders"] + 7
        assert swapped["row_count_delta"]["orders"] == 7
        assert swapped["row_count_delta"]["customers"] <= 0
        with pytest.raises(Exception):
            idle.cursor().execute("SELECT 1")
    finally:
        idle.close()
    # the database under its own name is the backup's; the replaced one is kept as it was
    assert counts(db) == counts_at_backup
    assert db.query("SELECT to_regclass('written_after_backup')")[0][0] is None
    assert counts(db, swapped["replaced_db"])["orders"] == counts_at_backup["orders"] + 7
    assert all_db_names(db) == sorted(names_before + [swapped["replaced_db"]])
    owner = db.query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                     args=(db.name,))[0][0]
    assert owner == db.role


def test_restore_now_swap_later_keeps_the_database_serving_until_the_short_step(db, tmp_path):
    """swap_later restores into the fresh copy while the database stays in use; restored_db
    swaps it in later, and what was written in between is counted as discarded."""
    ok(run(db.params(dest_dir=str(tmp_path), label="pre-3", row_count_tables=TABLES)))
    counts_at_backup = counts(db)
    prepared = ok(run(db.params(mode="restore", src="pre-3", dest_dir=str(tmp_path), swap=True, swap_later=True,
                                row_count_tables=TABLES)))
    db.extra_dbs.append(prepared["restore_db"])
    assert prepared["swapped"] is False and prepared["replaced_db"] is None and prepared["swap_window_s"] is None
    assert prepared["row_counts_match"] is True
    assert counts(db, prepared["restore_db"]) == counts_at_backup
    # The application keeps writing to the database under its name meanwhile.
    db.execute("INSERT INTO orders (customer_id, total) SELECT 1, 1 FROM generate_series(1, 5)")
    assert counts(db)["orders"] == counts_at_backup["orders"] + 5
    swapped = ok(run(db.params(mode="restore", swap=True, restored_db=prepared["restore_db"],
                               row_count_tables=TABLES)))
    db.extra_dbs.append(swapped["replaced_db"])
    assert swapped["swapped"] is True and swapped["restore_db"] == prepared["restore_db"]
    assert 0 < swapped["swap_window_s"] < swapped["duration_s"]
    assert swapped["discarded_rows"] == {"orders": 5}
    assert counts(db) == counts_at_backup
    assert swapped["already_swapped"] is False
    # The same call again (a run killed right after the swap, taken up): nothing is swapped
    # twice; the earlier swap's replaced database and discarded rows are reported.
    db.execute("INSERT INTO orders (customer_id, total) SELECT 1, 1 FROM generate_series(1, 2)")
    again = ok(run(db.params(mode="restore", swap=True, restored_db=prepared["restore_db"])))
    assert again["already_swapped"] is True and again["changed"] is False
    assert again["replaced_db"] == swapped["replaced_db"] and again["discarded_rows"] == {"orders": 3}
    assert counts(db)["orders"] == counts_at_backup["orders"] + 2
    never = run(db.params(mode="restore", swap=True, restored_db=prepared["restore_db"] + "x"))
    assert never["failed"] and "restored_db: database %sx does not exist" % prepared["restore_db"] in never["msg"]


def test_a_backup_with_its_schema_dump_in_one_call(db, tmp_path):
    taken = ok(run(db.params(dest_dir=str(tmp_path), label="pre-4", schema_dump=True)))
    schema = taken["schema_dump"]
    assert taken["path"].endswith(".dump") and schema["path"].endswith(".sql")
    assert "pre-4-schema" in os.path.basename(schema["path"]) and "_schema_" in os.path.basename(schema["path"])
    text = open(schema["path"]).read()
    assert "CREATE TABLE public.orders" in text and "COPY public.orders" not in text
    assert schema["path"] in [entry["path"] for entry in ok(run(db.params(mode="list", dest_dir=str(tmp_path))))["backups"]]


def test_swap_refuses_a_copy_whose_row_counts_differ(db, tmp_path):
    backup = ok(run(db.params(dest_dir=str(tmp_path), row_count_tables=["orders"])))
    manifest_path = backup["path"] + ".manifest.json"
    manifest = json.loads(open(manifest_path).read())
    manifest["row_counts"]["orders"] += 1
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh)
    db.execute("INSERT INTO orders (customer_id, total) VALUES (1, 1)")
    names_before = all_db_names(db)
    r = run(db.params(mode="restore", src=backup["path"], swap=True))
    assert r["failed"] and "row counts" in r["msg"] and "was not replaced" in r["msg"]
    assert all_db_names(db) == names_before  # fresh copy dropped, original untouched
    assert counts(db)["orders"] == 3001


@pytest.mark.parametrize("extra,message", [
    (dict(clean=True), "clean: not used with swap"),
    (dict(create_target=True), "create_target: not used with swap"),
    (dict(target_db="t_db_does_not_exist_x"), "database t_db_does_not_exist_x does not exist"),
])
def test_swap_bad_input(db, tmp_path, extra, message):
    backup = ok(run(db.params(dest_dir=str(tmp_path))))
    r = run(db.params(mode="restore", src=backup["path"], swap=True, **extra))
    assert r["failed"] and message in r["msg"], r["msg"]
