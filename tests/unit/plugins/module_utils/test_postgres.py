"""Tables for the shared PostgreSQL helpers: URLs, connect kwargs, the child environment."""

import os
import stat

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _postgres as pg
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

BASE = dict(db="app", login_host="db.local", login_port=5432, login_user="app",
            login_password=None, login_unix_socket=None, ssl_mode="prefer")


@pytest.mark.parametrize("change,expected", [
    ({}, "postgresql+psycopg2://app@db.local:5432/app?sslmode=prefer"),
    ({"login_password": "p@ss:w/rd%"},
     "postgresql+psycopg2://app:p%40ss%3Aw%2Frd%25@db.local:5432/app?sslmode=prefer"),
    ({"login_host": None, "login_unix_socket": "/run/pg"},
     "postgresql+psycopg2://app@/app?sslmode=prefer&host=/run/pg&port=5432"),
    ({"ssl_mode": "require", "login_port": 6543},
     "postgresql+psycopg2://app@db.local:6543/app?sslmode=require"),
])
def test_sqlalchemy_url(change, expected):
    assert pg.sqlalchemy_url(dict(BASE, **change)) == expected


@pytest.mark.parametrize("url,expected", [
    ("postgresql+psycopg2://u:p%40x@h:5433/db",
     dict(user="u", password="p@x", host="h", port=5433, dbname="db")),
    ("postgresql://u@/db?host=/run/pg&port=5432",
     dict(user="u", host="/run/pg", port="5432", dbname="db")),
    ("postgres://h/db?sslmode=require", dict(host="h", dbname="db", sslmode="require")),
])
def test_connect_kwargs_from_url(url, expected):
    kwargs = pg.connect_kwargs_from_url(url)
    for key, value in expected.items():
        assert kwargs[key] == value
    assert kwargs["application_name"] == "prodready.deploy"


def test_connect_kwargs_from_url_rejects_other_databases_without_echoing_it():
    with pytest.raises(ProdreadyError) as info:
        pg.connect_kwargs_from_url("mysql://u:topsecret@h/db")
    assert "database_url: scheme 'mysql' is not PostgreSQL" in str(info.value)
    assert "topsecret" not in str(info.value)


@pytest.mark.parametrize("change,expected", [
    ({}, dict(dbname="app", host="db.local", user="app", port=5432, sslmode="prefer")),
    ({"login_host": None, "login_unix_socket": "/s"}, dict(host="/s")),
    ({"login_password": "x"}, dict(password="x")),
])
def test_connect_kwargs(change, expected):
    kwargs = pg.connect_kwargs(dict(BASE, **change))
    for key, value in expected.items():
        assert kwargs[key] == value
    if not change.get("login_password"):
        assert "password" not in kwargs


@pytest.mark.parametrize("raw,escaped", [("a:b", "a\\:b"), ("a\\b", "a\\\\b"), ("plain", "plain")])
def test_pgpass_escape(raw, escaped):
    assert pg.pgpass_escape(raw) == escaped


def test_client_env_password_file_is_private_and_removed():
    with pg.ClientEnv(dict(BASE, login_password="se:cret")) as env:
        path = env.updates["PGPASSFILE"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path) as fh:
            assert fh.read() == "*:*:*:*:se\\:cret\n"
        assert env.updates["PGPASSWORD"] == ""
        assert "se:cret" not in repr(env.updates)
        assert env.updates["PGHOST"] == "db.local"
    assert not os.path.exists(path)


def test_client_env_without_password():
    with pg.ClientEnv(dict(BASE, login_host=None, login_unix_socket="/sock")) as env:
        assert "PGPASSFILE" not in env.updates
        assert env.updates["PGHOST"] == "/sock"
        assert env.updates["PGUSER"] == "app"


def test_argument_spec_marks_password_secret():
    spec = pg.postgres_connection_argument_spec()
    assert spec["login_password"]["no_log"] is True
    assert spec["login_password"]["fallback"][1] == ["PGPASSWORD"]
