"""Helpers shared by integration tests: superuser connection, alembic runs, free ports."""

import os
import socket
import subprocess

import psycopg2


def superuser_conn(sandbox, db="postgres"):
    pg = sandbox["services"]["postgres"]
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user="postgres", dbname=db,
                            password=sandbox["secrets"]["postgres_superuser_password"])
    conn.autocommit = True
    return conn


def free_port():
    """A free TCP port below 32768 (above is the kernel's ephemeral range)."""
    for port in range(29100, 29900):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in 29100-29899")


def alembic(app_python, release, url, *args):
    env = dict(os.environ, DATABASE_URL=url)
    return subprocess.run([str(app_python), "-m", "alembic", "-c", "alembic.ini", *args],
                          cwd=release, env=env, capture_output=True, text=True, check=False)
