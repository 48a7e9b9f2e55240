"""Pure half of pg_backup's client side: argv of pg_dump / pg_restore / psql, versions, trailer."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _pg_programs as programs
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

DUMP_DEFAULTS = dict(db="app", format="custom", jobs=None, compress=None, scope="full", tables=[],
                     exclude_tables=[], clean=False, if_exists=True, no_owner=False)
RESTORE_DEFAULTS = dict(jobs=None, single_transaction=False, clean=False, if_exists=True, no_owner=False)


@pytest.mark.parametrize("options, target, snapshot, expected", [
    ({}, "/b/x.dump", None, ["--format=custom", "--file=/b/x.dump", "--dbname=app"]),
    (dict(format="directory", jobs=4, compress=6), "/b/x.dir", None,
     ["--format=directory", "--jobs=4", "--compress=6", "--file=/b/x.dir", "--dbname=app"]),
    (dict(format="custom", jobs=4, compress=0), "/b/x.dump", None,  # jobs only for directory
     ["--format=custom", "--compress=0", "--file=/b/x.dump", "--dbname=app"]),
    (dict(format="plain", compress=6, clean=True), "/fifo", "00000003-1",  # plain: gzip is ours, not -Z
     ["--format=plain", "--clean", "--if-exists", "--snapshot=00000003-1", "--file=/fifo", "--dbname=app"]),
    (dict(format="plain", clean=True, if_exists=False, no_owner=True), "/f", None,
     ["--format=plain", "--clean", "--no-owner", "--file=/f", "--dbname=app"]),
    (dict(format="tar", clean=True, no_owner=True), "/f", None,  # clean and no_owner: plain only
     ["--format=tar", "--file=/f", "--dbname=app"]),
    (dict(scope="schema", tables=["public.orders", "items"], exclude_tables=["logs"]), None, None,
     ["--format=custom", "--schema-only", "--table=public.orders", "--table=items", "--exclude-table=logs",
      "--dbname=app"]),
    (dict(scope="data"), "/f", None, ["--format=custom", "--data-only", "--file=/f", "--dbname=app"]),
])
def test_dump_argv(options, target, snapshot, expected):
    params = dict(DUMP_DEFAULTS, **options)
    assert programs.dump_argv("/bin/pg_dump", params, target, snapshot) == ["/bin/pg_dump"] + expected


@pytest.mark.parametrize("fmt, options, expected", [
    ("plain", {}, ["--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--dbname=copy"]),
    ("plain", dict(single_transaction=True, clean=True, jobs=2),  # psql: no clean, no jobs, no path
     ["--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--dbname=copy", "--single-transaction"]),
    ("custom", {}, ["--dbname=copy", "--exit-on-error", "/b/x"]),
    ("directory", dict(jobs=4, clean=True, no_owner=True),
     ["--dbname=copy", "--exit-on-error", "--jobs=4", "--clean", "--if-exists", "--no-owner", "/b/x"]),
    ("tar", dict(single_transaction=True, clean=True, if_exists=False),
     ["--dbname=copy", "--exit-on-error", "--single-transaction", "--clean", "/b/x"]),
])
def test_restore_argv(fmt, options, expected):
    params = dict(RESTORE_DEFAULTS, **options)
    program = "/bin/" + programs.restore_program(fmt)
    assert programs.restore_argv(program, params, "/b/x", fmt, "copy") == [program] + expected
    assert program.endswith("psql" if fmt == "plain" else "pg_restore")


@pytest.mark.parametrize("options, fmt, message", [
    (dict(jobs=0), "custom", "jobs: must be >= 1, got 0"),
    (dict(jobs=2), "plain", "jobs: parallel restore needs a custom or directory backup (/b/x is plain)"),
    (dict(jobs=2), "tar", "(/b/x is tar)"),
    (dict(jobs=2, single_transaction=True), "directory", "jobs: cannot be combined with single_transaction"),
])
def test_check_restore_jobs_refuses(options, fmt, message):
    with pytest.raises(ProdreadyError) as err:
        programs.check_restore_jobs(dict(RESTORE_DEFAULTS, **options), "/b/x", fmt)
    assert message in str(err.value)


@pytest.mark.parametrize("options, fmt", [({}, "plain"), (dict(jobs=4), "custom"), (dict(jobs=1), "directory"),
                                          (dict(single_transaction=True), "tar")])
def test_check_restore_jobs_accepts(options, fmt):
    programs.check_restore_jobs(dict(RESTORE_DEFAULTS, **options), "/b/x", fmt)


@pytest.mark.parametrize("text, expected", [
    ("pg_dump (PostgreSQL) 15.18 (Debian 15.18-1.pgdg120+1)\n", ("15.18", 15)),
    ("pg_restore (PostgreSQL) 9.6.24\n", ("9.6.24", 9)),
    ("psql 16beta\n", ("16", 16)),
    ("no number here\n", ("no number here", None)),
])
def test_parse_client_version(text, expected):
    assert programs.parse_client_version(text) == expected


@pytest.mark.parametrize("last_bytes, ok", [
    (b"...\n--\n-- PostgreSQL database dump complete\n--\n\n", True),
    (b"COPY public.orders (id) FROM stdin;\n1\n", False),
    (b"", False),
])
def test_check_trailer(last_bytes, ok):
    if ok:
        programs.check_trailer("/b/x.sql", last_bytes)
    else:
        with pytest.raises(ProdreadyError, match="/b/x.sql failed verification: the SQL does not end with"):
            programs.check_trailer("/b/x.sql", last_bytes)


@pytest.mark.parametrize("text, limit, expected", [
    (None, 10, ""),
    ("  short error\n", 100, "short error"),
    ("x" * 50 + "the end", 7, "the end"),
    (b"bytes error\n", 100, "bytes error"),
])
def test_tail(text, limit, expected):
    assert programs.tail(text, limit) == expected


@pytest.mark.parametrize("rc, output, text", [
    (1, "pg_dump: error: connection to server failed\n", "rc=1; pg_dump: error: connection to server failed"),
    (-25, "", "killed by SIGXFSZ: the file size limit (ulimit -f) was exceeded, no output"),
    (-9, "partial\n", "killed by SIGKILL: killed (out of memory, or by an operator); partial"),
    (-10, "", "killed by SIGUSR1, no output"),
    (2, "", "rc=2, no output"),
])
def test_exit_text_names_the_signal_that_killed_a_client_and_its_cause(rc, output, text):
    assert programs.exit_text(rc, output) == text
