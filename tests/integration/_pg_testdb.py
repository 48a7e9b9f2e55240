"""Throwaway PostgreSQL databases and roles (names `t_db_...`) for pg_backup / alembic_migrate tests.

Created and dropped as the sandbox superuser, so tests of other helpers on the same
sandbox are never touched.
"""

import secrets
import subprocess

import psycopg2
from psycopg2 import sql


def superuser_conn(sandbox, db="postgres"):
    pg = sandbox["services"]["postgres"]
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["superuser"], dbname=db,
                            password=sandbox["secrets"]["postgres_superuser_password"])
    conn.autocommit = True
    return conn


def drop_database(sandbox, name):
    conn = superuser_conn(sandbox)
    try:
        cur = conn.cursor()
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid()", (name,))
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    finally:
        conn.close()


class TestDb(object):
    """A database owned by its own role with a random password holding `:@%` characters."""

    def __init__(self, sandbox, suffix):
        self.sandbox = sandbox
        token = secrets.token_hex(4)
        self.name = "t_db_%s_%s" % (suffix, token)
        self.role = "t_db_role_%s_%s" % (suffix, token)
        self.password = "Pw:%s@%%x%s" % (secrets.token_hex(6), secrets.token_hex(3))
        self.extra_dbs = [self.name]
        conn = superuser_conn(sandbox)
        try:
            cur = conn.cursor()
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD %s").format(
                sql.Identifier(self.role)), (self.password,))
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(self.name), sql.Identifier(self.role)))
        finally:
            conn.close()

    def params(self, **extra):
        pg = self.sandbox["services"]["postgres"]
        out = dict(db=self.name, login_host=pg["host"], login_port=pg["port"],
                   login_user=self.role, login_password=self.password)
        out.update(extra)
        return out

    def url(self):
        from urllib.parse import quote
        pg = self.sandbox["services"]["postgres"]
        return "postgresql+psycopg2://%s:%s@%s:%s/%s" % (
            self.role, quote(self.password, safe=""), pg["host"], pg["port"], self.name)

    def connect(self, db=None):
        pg = self.sandbox["services"]["postgres"]
        conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=self.role,
                                password=self.password, dbname=db or self.name)
        conn.autocommit = True
        return conn

    def query(self, statement, db=None, args=None):
        conn = self.connect(db)
        try:
            cur = conn.cursor()
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def execute(self, statement, db=None):
        self.query(statement, db)

    def new_db_name(self, tag):
        name = "%s_%s" % (self.name, tag)
        self.extra_dbs.append(name)
        return name

    def exists(self, name):
        conn = superuser_conn(self.sandbox)
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cur.fetchone() is not None
        finally:
            conn.close()

    def schema(self, db=None):
        """The schema as pg_dump prints it (owner-independent), for before/after comparisons."""
        pg = self.sandbox["services"]["postgres"]
        env = {"PGPASSWORD": self.sandbox["secrets"]["postgres_superuser_password"], "PATH": "/usr/bin:/bin"}
        out = subprocess.run([pg["bin_dir"] + "/pg_dump", "--schema-only", "--no-owner",
                              "-h", pg["host"], "-p", str(pg["port"]), "-U", pg["superuser"],
                              db or self.name], capture_output=True, text=True, env=env, check=True)
        return "\n".join(l for l in out.stdout.splitlines()
                         if not l.startswith(("--", "\\restrict", "\\unrestrict")))

    def close(self):
        for name in self.extra_dbs:
            drop_database(self.sandbox, name)
        conn = superuser_conn(self.sandbox)
        try:
            conn.cursor().execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.role)))
        finally:
            conn.close()
