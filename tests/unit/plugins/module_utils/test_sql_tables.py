"""Tables for the SQL reader behind alembic_migrate's `analyze`: which tables a script touches."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _sql_tables as st

# The offline SQL Alembic renders for the sample app's 0001 -> 0003 (abridged), as is.
ALEMBIC_OFFLINE = """BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade 0001 -> 0002

CREATE INDEX idx_po_buyer_company_id ON purchase_orders (buyer_company_id);

CREATE INDEX idx_po_status ON purchase_orders (status);

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';

COMMIT;

BEGIN;

-- Running upgrade 0002 -> 0003

ALTER TABLE purchase_orders ADD COLUMN notes TEXT;

UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';

COMMIT;
"""

# The statements Alembic's batch mode renders to change a column on SQLite-style backends.
BATCH_MOVE = """
CREATE TABLE _alembic_tmp_orders (id INTEGER NOT NULL, status VARCHAR(20));
INSERT INTO _alembic_tmp_orders (id, status) SELECT orders.id, orders.status FROM orders;
DROP TABLE orders;
ALTER TABLE _alembic_tmp_orders RENAME TO orders;
"""

P = "public"


@pytest.mark.parametrize("sql,expected", [
    # creation, with every prefix PostgreSQL allows before TABLE
    ("CREATE TABLE t (id int)", [(None, "t")]),
    ("create table if not exists t (id int)", [(None, "t")]),
    ("CREATE UNLOGGED TABLE t (id int)", [(None, "t")]),
    ("CREATE TABLE t2 AS SELECT * FROM t", [(None, "t2")]),
    ("CREATE TABLE t_2024 PARTITION OF t FOR VALUES FROM (1) TO (2)", [(None, "t_2024")]),
    ("CREATE TABLE t (LIKE template INCLUDING ALL)", [(None, "t")]),
    # temporary tables are gone when the session ends: nothing to analyze
    ("CREATE TEMP TABLE scratch (id int)", []),
    ("CREATE GLOBAL TEMPORARY TABLE scratch (id int)", []),
    # alterations
    ("ALTER TABLE t ADD COLUMN c int", [(None, "t")]),
    ("ALTER TABLE IF EXISTS ONLY t ALTER COLUMN c TYPE bigint", [(None, "t")]),
    ("ALTER TABLE t * DROP COLUMN c", [(None, "t")]),
    ("ALTER TABLE t RENAME COLUMN a TO b", [(None, "t")]),
    ("ALTER TABLE t RENAME TO u", [(None, "u")]),
    ("ALTER TABLE s.t RENAME TO u", [("s", "u")]),
    ("ALTER TABLE t SET SCHEMA archive", [("archive", "t")]),
    ("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u_id) REFERENCES u (id)", [(None, "t")]),
    ("ALTER TABLE ALL IN TABLESPACE a SET TABLESPACE b", []),
    ("ALTER INDEX ix RENAME TO ix2", []),
    # indexes: the table after ON, with every optional part
    ("CREATE INDEX ix ON t (c)", [(None, "t")]),
    ("CREATE UNIQUE INDEX ix ON t (c)", [(None, "t")]),
    ("CREATE INDEX CONCURRENTLY ix ON t (c)", [(None, "t")]),
    ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix ON ONLY s.t USING btree (c)", [("s", "t")]),
    ("CREATE INDEX ON t (c)", [(None, "t")]),
    ("CREATE INDEX CONCURRENTLY ON t USING gin (doc)", [(None, "t")]),
    ('CREATE INDEX "Ix" ON "Orders" (lower("Name"))', [(None, "Orders")]),
    # rows written
    ("INSERT INTO t (a) VALUES (1)", [(None, "t")]),
    ("INSERT INTO t AS x VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b", [(None, "t")]),
    ("UPDATE t SET a = 1", [(None, "t")]),
    ("UPDATE ONLY t SET a = 1", [(None, "t")]),
    ("DELETE FROM t WHERE a = 1", [(None, "t")]),
    ("DELETE FROM ONLY s.t", [("s", "t")]),
    ("MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET a = u.a", [(None, "t")]),
    ("COPY t (a, b) FROM stdin", [(None, "t")]),
    ("COPY t TO stdout", []),
    ("COPY (SELECT * FROM t) TO stdout", []),
    # statements that touch no table's rows or shape
    ("SELECT * FROM t FOR UPDATE", []),
    ("CREATE VIEW v AS SELECT * FROM t", []),
    ("COMMENT ON TABLE t IS 'UPDATE u SET a = 1'", []),
    ("DROP INDEX ix", []),
    ("TRUNCATE t", []),
    ("CREATE TRIGGER tr AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()", []),
    ("CREATE RULE r AS ON INSERT TO t DO ALSO INSERT INTO log VALUES (1)", []),
    ("CREATE TABLE t (u_id int REFERENCES u (id) ON UPDATE CASCADE)", [(None, "t")]),
    ("", []),
])
def test_one_statement(sql, expected):
    assert st.touched_tables(sql) == expected


@pytest.mark.parametrize("sql,expected", [
    # unquoted names are folded to lower case, quoted ones kept as written
    ("ALTER TABLE Orders ADD c int", [(None, "orders")]),
    ('ALTER TABLE "Orders" ADD c int', [(None, "Orders")]),
    ('ALTER TABLE "My ""odd"" table" ADD c int', [(None, 'My "odd" table')]),
    ('ALTER TABLE Sales."Orders" ADD c int', [("sales", "Orders")]),
    ('ALTER TABLE "Sales" . "Orders" ADD c int', [("Sales", "Orders")]),
    ("ALTER TABLE appdb.sales.orders ADD c int", [("sales", "orders")]),
    ('INSERT INTO "weird;name" VALUES (1)', [(None, "weird;name")]),
    ("INSERT INTO t$1 VALUES (1)", [(None, "t$1")]),
    ("INSERT INTO café VALUES (1)", [(None, "café")]),
    ("INSERT INTO ÉTÉ VALUES (1)", [(None, "ÉtÉ")]),  # PostgreSQL folds ASCII letters only
])
def test_names(sql, expected):
    assert st.touched_tables(sql) == expected


@pytest.mark.parametrize("sql,expected", [
    # comments are not statements
    ("-- ALTER TABLE hidden ADD c int\nALTER TABLE shown ADD c int", [(None, "shown")]),
    ("/* UPDATE hidden SET a = 1; */ UPDATE shown SET a = 1", [(None, "shown")]),
    ("/* nested /* UPDATE hidden SET a = 1; */ still; */ UPDATE shown SET a = 1", [(None, "shown")]),
    ("UPDATE shown SET a = 1 -- ; UPDATE hidden SET a = 1", [(None, "shown")]),
    # string literals are not statements, whatever they hold
    ("INSERT INTO log VALUES ('x; UPDATE hidden SET a = 1')", [(None, "log")]),
    ("INSERT INTO log VALUES ('it''s; DELETE FROM hidden')", [(None, "log")]),
    ("INSERT INTO log VALUES (E'it\\'s; DELETE FROM hidden')", [(None, "log")]),
    ("INSERT INTO log VALUES ($$; DELETE FROM hidden; $$)", [(None, "log")]),
    ("INSERT INTO log VALUES ($x$; $$ DELETE FROM hidden; $x$)", [(None, "log")]),
    ("INSERT INTO log VALUES (U&'d\\0061t; DROP TABLE log')", [(None, "log")]),
    ("INSERT INTO log VALUES ('-- not a comment'); UPDATE shown SET a = 1", [(None, "log"), (None, "shown")]),
    ("INSERT INTO log VALUES ('/* not a comment'); UPDATE shown SET a = 1", [(None, "log"), (None, "shown")]),
    # functions: their bodies are created, not run
    ("CREATE FUNCTION f() RETURNS void AS $body$ UPDATE hidden SET a = 1; $body$ LANGUAGE sql;"
     " UPDATE shown SET a = 1", [(None, "shown")]),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC UPDATE hidden SET a = 1; "
     "SELECT CASE WHEN true THEN 1 END; END; UPDATE shown SET a = 1", [(None, "shown")]),
    # a parameter is not a dollar quote
    ("UPDATE t SET a = $1; UPDATE u SET a = $2", [(None, "t"), (None, "u")]),
    # unterminated text does not raise
    ("UPDATE t SET a = 'unterminated", [(None, "t")]),
    ("UPDATE t SET a = 1 /* unterminated", [(None, "t")]),
])
def test_comments_and_literals(sql, expected):
    assert st.touched_tables(sql) == expected


@pytest.mark.parametrize("sql,expected", [
    # the data-modifying parts of a WITH, and its main statement
    ("WITH moved AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM moved",
     [(None, "a"), (None, "b")]),
    ("WITH RECURSIVE r (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) UPDATE t SET a = 1",
     [(None, "t")]),
    ("WITH x AS MATERIALIZED (SELECT 1), y AS NOT MATERIALIZED (UPDATE u SET a = 1 RETURNING a) "
     "SELECT * FROM x, y", [(None, "u")]),
    ("WITH RECURSIVE r AS (SELECT 1) SEARCH DEPTH FIRST BY id SET ord DELETE FROM t",
     [(None, "t")]),
    # DO blocks run their statements (static SQL only)
    ("DO $$ BEGIN UPDATE t SET a = 1; INSERT INTO u VALUES (1); END $$",
     [(None, "t"), (None, "u")]),
    ("DO LANGUAGE plpgsql $do$ DECLARE r record; BEGIN IF true THEN DELETE FROM t; ELSE "
     "UPDATE u SET a = 1; END IF; FOR r IN SELECT 1 LOOP INSERT INTO v VALUES (1); END LOOP; END $do$",
     [(None, "t"), (None, "u"), (None, "v")]),
    ("DO 'BEGIN UPDATE t SET a = 1; END'", [(None, "t")]),
    ("DO $$ BEGIN EXECUTE 'UPDATE hidden SET a = 1'; END $$", []),
    ("DO $$ print('UPDATE t SET a = 1') $$ LANGUAGE plpython3u", []),
])
def test_compound_statements(sql, expected):
    assert st.touched_tables(sql) == expected


@pytest.mark.parametrize("sql,exclude,expected", [
    # Alembic's own table is not the application's
    (ALEMBIC_OFFLINE, ("alembic_version",), [(None, "purchase_orders")]),
    (ALEMBIC_OFFLINE, (), [(None, "alembic_version"), (None, "purchase_orders")]),
    ("UPDATE audit.alembic_version SET version_num = '2'", ("alembic_version",), []),
    # in order, without duplicates
    ("UPDATE b SET a = 1; INSERT INTO a VALUES (1); UPDATE b SET a = 2", (), [(None, "b"), (None, "a")]),
    # a dropped table is not analyzed, nor a table moved away; one created again is
    ("CREATE TABLE t (id int); INSERT INTO t VALUES (1); DROP TABLE t", (), []),
    ("CREATE TABLE a (id int); CREATE TABLE b (id int); DROP TABLE IF EXISTS a, b CASCADE", (), []),
    ("DROP TABLE t; CREATE TABLE t (id int)", (), [(None, "t")]),
    ("DROP TABLE untouched", (), []),
    ("CREATE TABLE t (id int); DROP TABLE public.t", (), [(None, "t")]),  # resolved by the database
    ("UPDATE t SET a = 1; ALTER TABLE t RENAME TO u; UPDATE v SET a = 1", (), [(None, "u"), (None, "v")]),
    (BATCH_MOVE, (), [(None, "orders")]),
    ("CREATE TABLE s.t (id int); ALTER TABLE s.t SET SCHEMA archive", (), [("archive", "t")]),
])
def test_scripts(sql, exclude, expected):
    assert st.touched_tables(sql, exclude=exclude) == expected


@pytest.mark.parametrize("sql,count", [
    ("BEGIN; UPDATE t SET a = 1; COMMIT;", 3),
    ("SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t; SELECT 1", 2),
    ("SELECT f(';'); SELECT (1; 2)", 2),  # `;` inside parentheses does not end a statement
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT 3", 2),
    ("CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC UPDATE t SET a = CASE WHEN b THEN 1 END; END; CALL p()", 2),
    ("CREATE TABLE periods (begin date, stop date); UPDATE periods SET stop = now()", 2),
    (";;  ;", 0),
])
def test_split_statements(sql, count):
    assert len(st.split_statements(st.tokenize(sql))) == count
