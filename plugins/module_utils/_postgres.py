# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL connection helpers shared by pg_backup and alembic_migrate.

- postgres_connection_argument_spec(): the options of the `postgres` doc fragment;
- connect_kwargs() / connect(): psycopg2 connections (guarded import, HAS_PSYCOPG2);
- ClientEnv: the environment of a child pg_dump / pg_restore / psql. The password goes
  into a 0600 PGPASSFILE in a private 0700 directory, never on argv;
- find_client_bin(): the PostgreSQL client programs, preferring a matching major version;
- DB_ERRORS: the psycopg2 exception classes (empty without psycopg2), for except clauses.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

try:
    import psycopg2
    import psycopg2.extensions
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
    DB_ERRORS = (psycopg2.Error,)
except ImportError as exc:  # pragma: no cover - depends on the managed host
    psycopg2 = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc
    DB_ERRORS = ()

# Where Debian/Ubuntu put versioned client programs; tried before PATH.
DEFAULT_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)


def postgres_connection_argument_spec():
    """Return the argument_spec entries of the shared PostgreSQL connection options."""
    return dict(
        db=dict(type="str", aliases=["login_db"]),
        login_host=dict(type="str"),
        login_port=dict(type="int", default=5432),
        login_user=dict(type="str", default="postgres"),
        login_password=dict(type="str", no_log=True, fallback=(env_fallback, ["PGPASSWORD"])),
        login_unix_socket=dict(type="path"),
        ssl_mode=dict(type="str", default="prefer",
                      choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
    )


def connection_host(params):
    """The host libpq should use: login_host, else the socket directory, else None."""
    return params.get("login_host") or params.get("login_unix_socket") or None


def describe_target(params, db=None):
    """Human description of a connection target for messages, e.g. `app@127.0.0.1:5432/app`."""
    return "%s@%s:%s/%s" % (params.get("login_user"), connection_host(params) or "localhost",
                            params.get("login_port"), db or params.get("db"))


def connect_kwargs(params, db=None):
    """psycopg2.connect() keyword arguments built from the connection options."""
    kwargs = dict(dbname=db or params.get("db"), user=params.get("login_user"),
                  port=params.get("login_port"), sslmode=params.get("ssl_mode"),
                  application_name="prodready.deploy", connect_timeout=10)
    host = connection_host(params)
    if host:
        kwargs["host"] = host
    if params.get("login_password"):
        kwargs["password"] = params["login_password"]
    return dict((k, v) for k, v in kwargs.items() if v is not None)


def connect(params, db=None, autocommit=False):
    """Open a psycopg2 connection; raises ProdreadyError naming the target and the cause."""
    if not HAS_PSYCOPG2:
        raise ProdreadyError("psycopg2 is required but could not be imported: %s"
                             % to_native(PSYCOPG2_IMPORT_ERROR))
    try:
        conn = psycopg2.connect(**connect_kwargs(params, db))
    except psycopg2.Error as exc:
        raise ProdreadyError("cannot connect to PostgreSQL %s: %s"
                             % (describe_target(params, db), to_native(exc).strip()))
    conn.autocommit = autocommit
    return conn


def pgpass_escape(value):
    """Escape a value for a .pgpass field (backslash and colon are special)."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


class ClientEnv(object):
    """Environment for a child libpq program, as a context manager.

    `updates` is the dict to merge into the child's environment. When a password is given
    it is written to a 0600 file in a fresh 0700 directory and referenced by PGPASSFILE;
    PGPASSWORD is set empty so that an inherited value cannot override the file (libpq
    reads the password file when PGPASSWORD is empty). The directory is removed on exit.
    """

    def __init__(self, params, db=None):
        self.params = params
        self.db = db or params.get("db")
        self.tmpdir = None
        self.updates = {}

    def __enter__(self):
        p = self.params
        upd = {"PGSSLMODE": p.get("ssl_mode") or "prefer", "PGAPPNAME": "prodready.deploy",
               "PGCONNECT_TIMEOUT": "10"}
        host = connection_host(p)
        if host:
            upd["PGHOST"] = host
        if p.get("login_port"):
            upd["PGPORT"] = str(p["login_port"])
        if p.get("login_user"):
            upd["PGUSER"] = p["login_user"]
        if p.get("login_password"):
            self.tmpdir = tempfile.mkdtemp(prefix="prodready-pg-")
            os.chmod(self.tmpdir, 0o700)
            path = os.path.join(self.tmpdir, "pgpass")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("*:*:*:*:%s\n" % pgpass_escape(p["login_password"]))
            upd["PGPASSFILE"] = path
            upd["PGPASSWORD"] = ""
        self.updates = upd
        return self

    def full_env(self):
        """os.environ merged with the updates (for subprocess.Popen)."""
        env = dict(os.environ)
        env.update(self.updates)
        return env

    def __exit__(self, *exc_info):
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        return False


def find_client_bin(module, name, bin_dir=None):
    """Path of a PostgreSQL client program.

    `bin_dir` (the module option) wins; then the versioned Debian directories; then PATH.
    Raises ProdreadyError when the program cannot be found.
    """
    if bin_dir:
        candidate = os.path.join(bin_dir, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
        raise ProdreadyError("bin_dir: %s has no executable %s" % (bin_dir, name))
    found = module.get_bin_path(name, required=False, opt_dirs=list(DEFAULT_BIN_DIRS))
    if not found:
        raise ProdreadyError("%s not found (searched %s and PATH); install the PostgreSQL "
                             "client or set bin_dir" % (name, ", ".join(DEFAULT_BIN_DIRS)))
    return found


def sqlalchemy_url(params, driver="postgresql+psycopg2"):
    """A SQLAlchemy URL built from the connection options (password URL-quoted)."""
    from ansible.module_utils.six.moves.urllib.parse import quote
    user = quote(params.get("login_user") or "", safe="")
    password = params.get("login_password")
    auth = user + (":" + quote(password, safe="") if password else "")
    query = ["sslmode=%s" % params.get("ssl_mode", "prefer")]
    if params.get("login_host"):
        netloc = "%s@%s:%s" % (auth, params["login_host"], params.get("login_port") or 5432)
    else:
        netloc = "%s@" % auth
        if params.get("login_unix_socket"):
            query.append("host=%s" % quote(params["login_unix_socket"], safe="/"))
        query.append("port=%s" % (params.get("login_port") or 5432))
    return "%s://%s/%s?%s" % (driver, netloc, quote(params.get("db") or "", safe=""), "&".join(query))


def connect_kwargs_from_url(url):
    """psycopg2 connect kwargs from a SQLAlchemy/libpq PostgreSQL URL.

    Raises ProdreadyError (without echoing the URL, which holds a password) when the URL
    is not a PostgreSQL one.
    """
    from ansible.module_utils.six.moves.urllib.parse import urlsplit, unquote, parse_qsl
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise ProdreadyError("database_url: scheme %r is not PostgreSQL; the migration lock "
                             "needs PostgreSQL (set lock: false for other databases)" % parts.scheme)
    kwargs = {"application_name": "prodready.deploy", "connect_timeout": 10}
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    if parts.hostname:
        kwargs["host"] = parts.hostname
    if parts.port:
        kwargs["port"] = parts.port
    if parts.path and parts.path != "/":
        kwargs["dbname"] = unquote(parts.path.lstrip("/"))
    for key, value in parse_qsl(parts.query):
        if key in ("host", "port", "sslmode", "user", "password", "dbname", "connect_timeout"):
            kwargs[key] = value
    return kwargs


def describe_kwargs(kwargs):
    """`user@host:port/db` of psycopg2 connect kwargs (never the password)."""
    return "%s@%s:%s/%s" % (kwargs.get("user"), kwargs.get("host", "localhost"),
                            kwargs.get("port", 5432), kwargs.get("dbname"))


def connect_with(kwargs, autocommit=False):
    """psycopg2 connection from explicit kwargs; ProdreadyError naming the target on failure."""
    if not HAS_PSYCOPG2:
        raise ProdreadyError("psycopg2 is required but could not be imported: %s"
                             % to_native(PSYCOPG2_IMPORT_ERROR))
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        raise ProdreadyError("cannot connect to PostgreSQL %s: %s"
                             % (describe_kwargs(kwargs), to_native(exc).strip()))
    conn.autocommit = autocommit
    return conn
