"""_preflight: each judgement as a table of measured facts -> status and detail."""

import datetime

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _preflight as pf

NOW = datetime.datetime(2026, 11, 26, 12, 0, 0)


@pytest.mark.parametrize("value, minimum, recommended, status, detail", [
    (4, 2, 4, "ok", "4 (minimum 2, recommended 4)"),
    (8, 2, None, "ok", "8 (minimum 2)"),
    (2, 2, 4, "warn", "2 < recommended 4"),
    (1, 2, 4, "fail", "1 < minimum 2"),
    (0, 1, None, "fail", "0 < minimum 1"),
    (3, None, None, "ok", "3"),
])
def test_check_minimum(value, minimum, recommended, status, detail):
    got = pf.check_minimum("cpu_count", value, minimum, recommended)
    assert got == {"name": "cpu_count", "status": status, "detail": detail}


def test_check_minimum_with_unit():
    assert pf.check_minimum("mem_mb", 2048, 4096, unit="MB")["detail"] == "2048 MB < minimum 4096 MB"


@pytest.mark.parametrize("total, free, min_free, max_used, status, detail", [
    (1000, 500, 100, 90, "ok", "500 MB free, 50.0% used"),
    (1000, 50, 100, None, "fail", "50 MB free < minimum 100 MB"),
    (1000, 50, None, 90, "fail", "95.0% used > maximum 90%"),
    (1000, 50, 100, 90, "fail", "50 MB free < minimum 100 MB; 95.0% used > maximum 90%"),
    (1000, 100, 100, 90, "ok", "100 MB free, 90.0% used"),
    (0, 0, None, 90, "ok", "0 MB free, 0.0% used"),
])
def test_check_disk(total, free, min_free, max_used, status, detail):
    got = pf.check_disk("/srv", total, free, min_free, max_used)
    assert (got["name"], got["status"], got["detail"]) == ("disk /srv", status, detail)


@pytest.mark.parametrize("path, status", [("/usr/bin/pg_dump", "ok"), (None, "fail"), ("", "fail")])
def test_check_binary(path, status):
    assert pf.check_binary("pg_dump", path)["status"] == status


@pytest.mark.parametrize("value, expected", [
    ("<CHANGE_IN_PRODUCTION>", True),
    ("prefix-<change_in_production>", True),
    ("changeme", True),
    ("ChangeMe123", True),
    ("your_secure_password", True),
    ("", True),
    ("   ", True),
    (None, True),
    ("s3cr3t-7f9a", False),
    ("production", False),
])
def test_is_placeholder(value, expected):
    assert pf.is_placeholder(value) is expected


def test_is_placeholder_custom_list():
    assert pf.is_placeholder("TODO", ["todo"]) is True
    assert pf.is_placeholder("changeme", ["todo"]) is False


ENV = {"DATABASE_URL": "postgresql://app:pw@db/app", "JWT_SECRET_KEY": "<CHANGE_IN_PRODUCTION>",
       "DEBUG": "True", "APP_ENV": "production", "EMPTY": "", "LOG_LEVEL": "debug"}


@pytest.mark.parametrize("kwargs, expected", [
    (dict(required=["DATABASE_URL"]), [("env DATABASE_URL", "ok", "set")]),
    (dict(required=["JWT_SECRET_KEY"]),
     [("env JWT_SECRET_KEY", "fail", "still a placeholder (<CHANGE_IN_PRODUCTION>)")]),
    (dict(required=["REDIS_URL"]), [("env REDIS_URL", "fail", "missing from /srv/.env")]),
    (dict(required=["EMPTY"]), [("env EMPTY", "fail", "empty")]),
    (dict(forbidden={"DEBUG": [True, "1", "yes"]}), [("env DEBUG", "fail", "must not be true")]),
    (dict(forbidden={"DEBUG": "yes"}), [("env DEBUG", "ok", "set")]),
    (dict(forbidden={"MISSING": [True]}), [("env MISSING", "ok", "absent (allowed)")]),
    (dict(expected={"APP_ENV": "Production"}), [("env APP_ENV", "ok", "set")]),
    (dict(expected={"LOG_LEVEL": "INFO"}), [("env LOG_LEVEL", "fail", "must be info")]),
    (dict(expected={"CACHE_PREFIX": "prod_"}),
     [("env CACHE_PREFIX", "fail", "missing from /srv/.env (must be prod_)")]),
    # one row per variable, every broken rule in it
    (dict(required=["DEBUG"], expected={"DEBUG": False}, forbidden={"DEBUG": [True]}),
     [("env DEBUG", "fail", "must be false; must not be true")]),
    (dict(required=["DATABASE_URL", "JWT_SECRET_KEY"], forbidden={"DEBUG": [True]}),
     [("env DATABASE_URL", "ok", "set"),
      ("env JWT_SECRET_KEY", "fail", "still a placeholder (<CHANGE_IN_PRODUCTION>)"),
      ("env DEBUG", "fail", "must not be true")]),
])
def test_check_env(kwargs, expected):
    got = pf.check_env("/srv/.env", ENV, **kwargs)
    assert [(r["name"], r["status"], r["detail"]) for r in got] == expected


def test_check_env_never_shows_a_value():
    got = pf.check_env("/srv/.env", {"DATABASE_URL": "postgresql://app:hunter2changeme@db/app"},
                       required=["DATABASE_URL"], expected={"DATABASE_URL": "x"})
    assert "hunter2" not in repr(got)
    assert got[0]["status"] == "fail"


def test_check_env_unreadable_file_skips_each_variable():
    got = pf.check_env("/srv/.env", None, required=["A"], forbidden={"B": [True]})
    assert [(r["name"], r["status"]) for r in got] == [("env A", "skip"), ("env B", "skip")]


@pytest.mark.parametrize("mode, owner, expected_owner, exists, status, detail", [
    (0o100600, "app", None, True, "ok", "mode 0600, owner app"),
    (0o100400, "app", "app", True, "ok", "mode 0400, owner app"),
    (0o100640, "app", None, True, "fail", "mode 0640 is wider than 0600 (run chmod 600)"),
    (0o100644, "root", "app", True, "fail",
     "mode 0644 is wider than 0600 (run chmod 600); owner root, expected app"),
    (0o100600, "root", "app", True, "fail", "owner root, expected app"),
    (0o100700, "app", None, True, "fail", "mode 0700 is wider than 0600 (run chmod 600)"),
    (None, None, None, False, "fail", "missing"),
])
def test_check_secret_file(mode, owner, expected_owner, exists, status, detail):
    got = pf.check_secret_file("/srv/.env", mode, owner, expected_owner, exists=exists)
    assert (got["name"], got["status"], got["detail"]) == ("file /srv/.env", status, detail)


FOUND = [("public", "users"), ("public", "positions"), ("audit", "logs")]


@pytest.mark.parametrize("expected, schema, statuses", [
    (["users", "positions"], "public", ["ok", "ok"]),
    (["users", "signals"], "public", ["ok", "fail"]),
    (["audit.logs", "public.users", "audit.users"], "public", ["ok", "ok", "fail"]),
    (["logs"], "audit", ["ok"]),
    (["logs"], "public", ["fail"]),
    ([], "public", []),
])
def test_check_present(expected, schema, statuses):
    got = pf.check_present("table", expected, FOUND, schema)
    assert [r["status"] for r in got] == statuses
    assert [r["name"] for r in got] == ["table %s" % n for n in expected]


def test_check_present_names_the_schema_of_a_missing_index():
    got = pf.check_present("index", ["idx_po_status"], [], "public")
    assert got == [{"name": "index idx_po_status", "status": "fail", "detail": "missing from schema public"}]


@pytest.mark.parametrize("text, expected", [
    ("notAfter=Dec  1 13:45:02 2026 GMT\n", datetime.datetime(2026, 12, 1, 13, 45, 2)),
    ("notAfter=Nov 26 13:00:00 2026 GMT", datetime.datetime(2026, 11, 26, 13, 0, 0)),
    ("junk\nnotAfter=Jan 10 00:00:00 2030 GMT\n", datetime.datetime(2030, 1, 10)),
])
def test_parse_openssl_enddate(text, expected):
    assert pf.parse_openssl_enddate(text) == expected


@pytest.mark.parametrize("text", ["", "notBefore=Dec  1 13:45:02 2026 GMT", None])
def test_parse_openssl_enddate_rejects(text):
    with pytest.raises(ValueError):
        pf.parse_openssl_enddate(text)


@pytest.mark.parametrize("not_after, min_days, warn_days, status, detail", [
    (NOW + datetime.timedelta(days=90), 14, 30, "ok", "90.0 days left (until 2027-02-24 12:00 UTC)"),
    (NOW + datetime.timedelta(days=20), 14, 30, "warn",
     "20.0 days left (until 2026-12-16 12:00 UTC) < warning 30 days"),
    (NOW + datetime.timedelta(days=5), 14, 30, "fail",
     "5.0 days left (until 2026-12-01 12:00 UTC) < minimum 14 days"),
    (NOW + datetime.timedelta(days=5), 1, None, "ok", "5.0 days left (until 2026-12-01 12:00 UTC)"),
    (NOW - datetime.timedelta(days=2), 14, 30, "fail", "expired 2026-11-24 12:00 UTC (2.0 days ago)"),
])
def test_check_cert(not_after, min_days, warn_days, status, detail):
    got = pf.check_cert("/etc/ssl/app.pem", not_after, NOW, min_days, warn_days)
    assert (got["name"], got["status"], got["detail"]) == ("tls /etc/ssl/app.pem", status, detail)


@pytest.mark.parametrize("value, expected", [
    (8080, ("127.0.0.1", 8080)),
    ("8080", ("127.0.0.1", 8080)),
    ("db.example:5432", ("db.example", 5432)),
    ("[::1]:80", ("::1", 80)),
    (" 10.0.0.1:6379 ", ("10.0.0.1", 6379)),
])
def test_parse_endpoint(value, expected):
    assert pf.parse_endpoint(value) == expected


@pytest.mark.parametrize("value", ["", "db", "db:", ":80", "db:0", "db:65536", "[::1]80", "db:http"])
def test_parse_endpoint_rejects(value):
    with pytest.raises(ValueError):
        pf.parse_endpoint(value)


@pytest.mark.parametrize("func, error, status", [
    (pf.check_port_free, None, "ok"),
    (pf.check_port_free, "Address already in use", "fail"),
    (pf.check_port_listening, None, "ok"),
    (pf.check_port_listening, "Connection refused", "fail"),
])
def test_port_checks(func, error, status):
    got = func("127.0.0.1", 8001, error)
    assert got["status"] == status
    assert (error or "") in got["detail"]


CHECKS = [pf.result("cpu_count", "ok", "4 (minimum 2)"),
          pf.result("env JWT_SECRET_KEY", "fail", "still a placeholder (<CHANGE_IN_PRODUCTION>)"),
          pf.result("table users", "skip", "database unreachable"),
          pf.result("tls a.pem", "warn", "20.0 days left"),
          pf.result("port 0.0.0.0:8001 free", "fail", "in use (Address already in use)")]


def test_counts_and_failed_checks():
    assert pf.counts(CHECKS) == {"ok": 1, "warn": 1, "fail": 2, "skip": 1}
    assert [c["name"] for c in pf.failed_checks(CHECKS)] == ["env JWT_SECRET_KEY", "port 0.0.0.0:8001 free"]
    assert pf.counts([]) == {"ok": 0, "warn": 0, "fail": 0, "skip": 0}


def test_render_table_has_a_row_per_check_aligned():
    lines = pf.render_table(CHECKS).splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "DETAIL"]
    assert len(lines) == 2 + len(CHECKS) + 1
    status_column = lines[0].index("STATUS")
    for line, check in zip(lines[2:-1], CHECKS):
        assert line.startswith(check["name"])
        assert line[status_column:].startswith(check["status"].upper())
        assert line.endswith(check["detail"])
    assert lines[-1] == "5 checks: 1 ok, 1 warn, 2 fail, 1 skip"


def test_render_table_empty():
    assert pf.render_table([]).splitlines()[-1] == "0 checks: 0 ok, 0 warn, 0 fail, 0 skip"


def test_failure_message_lists_every_failure():
    msg = pf.failure_message(CHECKS)
    assert msg == ("preflight: 2 of 5 checks failed: env JWT_SECRET_KEY: still a placeholder "
                   "(<CHANGE_IN_PRODUCTION>); port 0.0.0.0:8001 free: in use (Address already in use)")
    assert pf.failure_message(CHECKS[:1]) == ""


def test_result_rejects_an_unknown_status():
    with pytest.raises(ValueError):
        pf.result("x", "passed", "")


@pytest.mark.parametrize("value, text", [(True, "true"), (False, "false"), (None, ""), (5, "5"), ("x", "x")])
def test_env_text(value, text):
    assert pf.env_text(value) == text


@pytest.mark.parametrize("name, status, detail", [
    ("plpgsql", "ok", "installed, version 1.0"),
    ("pg_trgm", "fail", "available but not installed in app (CREATE EXTENSION pg_trgm)"),
    ("timescaledb", "fail", "not available on the server (package not installed)"),
])
def test_check_extensions(name, status, detail):
    got = pf.check_extensions([name], {"plpgsql": "1.0", "pg_trgm": None}, "app")
    assert got == [{"name": "extension %s" % name, "status": status, "detail": detail}]
