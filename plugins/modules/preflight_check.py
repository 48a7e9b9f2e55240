# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: preflight_check
short_description: Run a deploy's preflight checklist in one pass and report every failure
version_added: 0.1.0
description:
  - Runs the checklists of the runbooks as one pass on the managed host and reports every
    check, so a failing run lists all the problems at once instead of the first one
    only. The checks are CPU and memory minimums, free disk space, programs on E(PATH), the variables of
    the app's env file (present, not a placeholder such as C(<CHANGE_IN_PRODUCTION>),
    expected or forbidden values such as C(DEBUG=true) in production), secret file modes,
    PostgreSQL reachable with the expected tables and indexes, Redis reachable, TLS
    certificates' days left, ports free or listening.
  - Only the checks whose options are set run. Each check is one row C(name), C(status)
    (V(ok), V(warn), V(fail) or V(skip)) and C(detail); RV(table) renders them as text.
  - Checks that depend on another one are skipped when it failed, for example the tables
    when the database cannot be reached; the failure itself is reported once.
  - The module only reads; it never changes anything, so it runs the same in check mode.
  - Values of environment variables are never reported, only their names and the rule
    they break.
author:
  - prodready.deploy maintainers (@prodready)
options:
  min_cpu_count:
    description:
      - Fail when the host has fewer usable CPUs than this.
    type: int
  recommended_cpu_count:
    description:
      - Warn when the host has fewer usable CPUs than this.
    type: int
  min_mem_mb:
    description:
      - Fail when the host's total memory, in MiB, is below this.
    type: int
  recommended_mem_mb:
    description:
      - Warn when the host's total memory, in MiB, is below this.
    type: int
  disk:
    description:
      - File systems to check, one entry per path (the file system holding it).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - A path on the file system to check. It must exist.
        type: path
        required: true
      min_free_mb:
        description:
          - Fail when less than this many MiB are available to unprivileged users.
        type: int
      max_used_percent:
        description:
          - Fail when more than this percentage of the file system is used.
        type: float
  binaries:
    description:
      - Programs that must be found on E(PATH) (and the usual sbin directories).
    type: list
    elements: str
    default: []
  env_file:
    description:
      - The app's environment file, read the way the app reads it (the last assignment
        of a name wins). O(env_required), O(env_expected) and O(env_forbidden) need it or
        O(env_values).
    type: path
  env_values:
    description:
      - The variables themselves, name to value, when the env file does not exist yet
        (for example the values a deploy is about to write). Checked exactly like the
        content of O(env_file). Never logged.
      - Mutually exclusive with O(env_file).
    type: dict
  env_required:
    description:
      - Variables that must be assigned in O(env_file) (or O(env_values)) a value that is neither empty nor a
        placeholder (see O(env_placeholders)).
    type: list
    elements: str
    default: []
  env_placeholders:
    description:
      - A value containing one of these strings (case-insensitive) is a placeholder that
        was never replaced.
    type: list
    elements: str
    default: ['<CHANGE_IN_PRODUCTION>', changeme, change_me, your_secure_password, replace_me]
  env_expected:
    description:
      - Variables that must have exactly this value (compared case-insensitively), for
        example C(APP_ENV=production).
    type: dict
    default: {}
  env_forbidden:
    description:
      - Variable name to a list of values it must not have (compared case-insensitively),
        for example C(DEBUG) with V([true, 1, yes, on]) in production. A variable that is
        absent passes.
    type: dict
    default: {}
  secret_files:
    description:
      - Files holding secrets. Each must exist with no permission bits for group and
        others (C(0600) or stricter).
    type: list
    elements: path
    default: []
  secret_files_owner:
    description:
      - When set, each of O(secret_files) must also be owned by this user.
    type: str
  postgres:
    description:
      - Check that PostgreSQL answers, and optionally that tables, indexes and extensions exist.
      - The connection options are those of the other modules' C(postgres) connection
        fragment.
    type: dict
    suboptions:
      db:
        description:
          - Name of the database to connect to.
        type: str
        aliases: [ login_db ]
      login_host:
        description:
          - Host running PostgreSQL. Leave unset (and set O(postgres.login_unix_socket)) for
            a local socket connection.
        type: str
      login_port:
        description:
          - Port PostgreSQL listens on.
        type: int
        default: 5432
      login_user:
        description:
          - Role to connect as.
        type: str
        default: postgres
      login_password:
        description:
          - Password of O(postgres.login_user). Falls back to the E(PGPASSWORD) environment
            variable. Never logged.
        type: str
      login_unix_socket:
        description:
          - Directory of the server's Unix socket (used when O(postgres.login_host) is not set).
        type: path
      ssl_mode:
        description:
          - libpq C(sslmode) of the connection.
        type: str
        default: prefer
        choices: [ disable, allow, prefer, require, verify-ca, verify-full ]
      schema:
        description:
          - Schema in which unqualified O(postgres.tables) and O(postgres.indexes) are looked up.
        type: str
        default: public
      tables:
        description:
          - Tables that must exist, bare (in O(postgres.schema)) or as C(schema.table).
        type: list
        elements: str
        default: []
      indexes:
        description:
          - Indexes that must exist, bare (in O(postgres.schema)) or as C(schema.index).
        type: list
        elements: str
        default: []
      extensions:
        description:
          - Extensions that must be installed in O(postgres.db), for example C(timescaledb)
            or C(pg_stat_statements). The detail tells an extension the server does not
            offer from one that only needs C(CREATE EXTENSION).
        type: list
        elements: str
        default: []
  redis:
    description:
      - Check that Redis answers C(PING) (with authentication when a password is set).
      - The connection options are those of the other modules' C(redis) connection fragment.
    type: dict
    suboptions:
      login_host:
        description:
          - Host name or IP address of the Redis server; V(localhost) when neither this nor
            O(redis.url) is set.
        type: str
      login_port:
        description:
          - TCP port of the Redis server; V(6379) when neither this nor O(redis.url) is set.
        type: int
      login_user:
        description:
          - ACL user name (Redis 6+).
        type: str
      login_password:
        description:
          - Password for C(AUTH). Falls back to the E(REDIS_PASSWORD) environment variable.
            Never logged.
        type: str
      db:
        description:
          - Database number to select.
        type: int
      url:
        description:
          - Connection URL such as V(redis://user:secret@cache.example:6379/2); treated as a
            secret. It is mutually exclusive with O(redis.login_host) and O(redis.login_port).
        type: str
      tls:
        description:
          - Connect with TLS.
        type: bool
        default: false
      validate_certs:
        description:
          - With TLS, verify the server certificate.
        type: bool
        default: true
      ca_cert:
        description:
          - CA bundle (PEM) to verify the server certificate with TLS.
        type: path
      client_cert:
        description:
          - Client certificate (PEM) for mutual TLS.
        type: path
      client_key:
        description:
          - Private key of O(redis.client_cert).
        type: path
      connect_timeout:
        description:
          - Seconds to wait for the connection and each reply.
        type: float
        default: 5.0
  tls_certs:
    description:
      - Certificates whose remaining validity is checked, each a PEM or DER file (O(tls_certs[].path))
        or the certificate a TLS server presents (O(tls_certs[].host)).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - Certificate file (PEM or DER). Mutually exclusive with O(tls_certs[].host).
        type: path
      host:
        description:
          - Host name or address of a TLS server whose certificate is read. The certificate
            is not verified, only its end date matters here.
        type: str
      port:
        description:
          - Port of O(tls_certs[].host).
        type: int
        default: 443
      server_name:
        description:
          - Server name sent with SNI; defaults to O(tls_certs[].host).
        type: str
      min_days:
        description:
          - Fail when fewer days than this are left before the certificate expires.
        type: float
        default: 14
      warn_days:
        description:
          - Warn when fewer days than this are left.
        type: float
        default: 30
  ports_free:
    description:
      - Ports the app will listen on; each must be free to bind on O(ports_bind_address).
    type: list
    elements: int
    default: []
  ports_bind_address:
    description:
      - Address the bind test of O(ports_free) uses.
    type: str
    default: 0.0.0.0
  ports_listening:
    description:
      - Endpoints that must accept TCP connections, as V(port) (on 127.0.0.1) or V(host:port).
    type: list
    elements: str
    default: []
  fail_on_breach:
    description:
      - Fail the task when a check failed, with a message naming every failed check (the
        result's keys come with the failure too).
      - With V(false) the task succeeds and the result (RV(passed), RV(failed_checks)) tells.
      - The same option as in M(prodready.deploy.health_gate) and M(prodready.deploy.redis_cache_check).
      - C(fail_on_error) is a deprecated alias, to be removed in 2.0.0.
    type: bool
    default: true
    aliases: [fail_on_error]
extends_documentation_fragment:
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: The module only reads, so it runs every check in check mode too.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
  action_group:
    support: full
    membership: [prodready.deploy.deploy]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) sets this module's options.
notes:
  - Needs C(psycopg2) on the managed host for O(postgres), C(redis) for O(redis), and for
    O(tls_certs) either the C(cryptography) package or the C(openssl) program.
requirements:
  - psycopg2 (for O(postgres))
  - redis (for O(redis))
"""

EXAMPLES = r"""
- name: Runbook checklists before a deploy (all failures at once)
  prodready.deploy.preflight_check:
    min_cpu_count: 2
    recommended_cpu_count: 4
    min_mem_mb: 4096
    disk:
      - path: /srv/app
        min_free_mb: 20480
        max_used_percent: 90
    binaries: [pg_dump, pg_restore, psql, haproxy]
    env_file: /srv/app/shared/.env
    env_required: [DATABASE_URL, REDIS_URL, JWT_SECRET_KEY, CACHE_PREFIX]
    env_expected:
      APP_ENV: production
      LOG_LEVEL: INFO
    env_forbidden:
      DEBUG: ["true", "1", "yes", "on"]
    secret_files: [/srv/app/shared/.env, /srv/app/database_config.json]
    postgres:
      db: app
      login_host: db.internal
      login_user: app
      login_password: "{{ vault_app_db_password }}"
      tables: [users, positions, signals, approvals, audit_logs, reconciliation_logs]
      indexes: [idx_po_buyer_company_id, idx_po_seller_company_id, idx_po_product_id,
                idx_po_status, idx_po_created_at]
      extensions: [pg_stat_statements]
    redis:
      login_host: cache.internal
      login_password: "{{ vault_redis_password }}"
    tls_certs:
      - path: /etc/ssl/app/fullchain.pem
        min_days: 14
    ports_free: [8001, 8002]
    ports_listening: ["db.internal:5432"]
  register: preflight

- name: Report only, then print the table
  prodready.deploy.preflight_check:
    binaries: [pg_dump]
    ports_free: [8001]
    fail_on_breach: false
  register: preflight_report

- name: Show it
  ansible.builtin.debug:
    msg: "{{ preflight_report.table.splitlines() }}"
"""

RETURN = r"""
checks:
  description: Every check that ran, in order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: What was checked, for example C(env JWT_SECRET_KEY) or C(table users).
      type: str
    status:
      description: V(ok), V(warn), V(fail) or V(skip) (could not run because a check it
        depends on failed).
      type: str
    detail:
      description: The measurement or the reason, for example C(still a placeholder (<CHANGE_IN_PRODUCTION>)).
      type: str
  sample:
    - {name: cpu_count, status: ok, detail: "4 (minimum 2)"}
    - {name: env JWT_SECRET_KEY, status: fail, detail: "still a placeholder (<CHANGE_IN_PRODUCTION>)"}
failed_checks:
  description: The checks with status V(fail) (same items as in RV(checks)).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: env JWT_SECRET_KEY, status: fail, detail: "still a placeholder (<CHANGE_IN_PRODUCTION>)"}
passed:
  description: True when no check failed (warnings and skips do not fail).
  returned: always
  type: bool
  sample: false
counts:
  description: Number of checks per status.
  returned: always
  type: dict
  sample: {ok: 14, warn: 1, fail: 2, skip: 0}
table:
  description: The checks as a fixed-width text table with a summary line.
  returned: always
  type: str
  sample: |-
    CHECK                STATUS  DETAIL
    -------------------  ------  ------
    cpu_count            OK      4 (minimum 2)
    env JWT_SECRET_KEY   FAIL    still a placeholder (<CHANGE_IN_PRODUCTION>)
    2 checks: 1 ok, 0 warn, 1 fail, 0 skip
python:
  description:
    - The interpreter the module ran with and the versions of the libraries the modules import
      (null where one does not import), each from where it was imported. Shows which Python a
      managed host runs the modules with (for example the venv of the host_prep role).
  returned: always
  type: dict
  sample:
    executable: /opt/prodready/venv/bin/python
    version: 3.11.2
    libraries:
      psycopg2: {version: 2.9.10, path: /opt/prodready/venv/lib/python3.11/site-packages/psycopg2/__init__.py}
      redis: {version: 5.0.8, path: /opt/prodready/venv/lib/python3.11/site-packages/redis/__init__.py}
      cryptography: {version: 43.0.1, path: /opt/prodready/venv/lib/python3.11/site-packages/cryptography/__init__.py}
"""

import datetime
import importlib
import os
import platform
import pwd
import socket
import ssl
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.prodready.deploy.plugins.module_utils import _preflight as pf
from ansible_collections.prodready.deploy.plugins.module_utils import _postgres
from ansible_collections.prodready.deploy.plugins.module_utils import _redis
from ansible_collections.prodready.deploy.plugins.module_utils._envfile import parse, values
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils._options import renamed_from

try:
    from cryptography import x509
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - depends on the managed host
    x509 = None
    HAS_CRYPTOGRAPHY = False

ENV_OPTIONS = ("env_required", "env_expected", "env_forbidden")


def argument_spec():
    """The module's options (the postgres and redis suboptions reuse the shared specs)."""
    postgres = _postgres.postgres_connection_argument_spec()
    postgres.update(
        schema=dict(type="str", default="public"),
        tables=dict(type="list", elements="str", default=[]),
        indexes=dict(type="list", elements="str", default=[]),
        extensions=dict(type="list", elements="str", default=[]),
    )
    return dict(
        min_cpu_count=dict(type="int"),
        recommended_cpu_count=dict(type="int"),
        min_mem_mb=dict(type="int"),
        recommended_mem_mb=dict(type="int"),
        disk=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="path", required=True),
            min_free_mb=dict(type="int"),
            max_used_percent=dict(type="float"),
        )),
        binaries=dict(type="list", elements="str", default=[]),
        env_file=dict(type="path"),
        env_values=dict(type="dict", no_log=True),
        env_required=dict(type="list", elements="str", default=[]),
        env_placeholders=dict(type="list", elements="str", no_log=False,
                              default=list(pf.DEFAULT_PLACEHOLDERS)),
        env_expected=dict(type="dict", default={}),
        env_forbidden=dict(type="dict", default={}),
        secret_files=dict(type="list", elements="path", default=[], no_log=False),
        secret_files_owner=dict(type="str", no_log=False),
        postgres=dict(type="dict", options=postgres),
        redis=dict(type="dict", options=_redis.redis_connection_argument_spec(),
                   mutually_exclusive=_redis.REDIS_MUTUALLY_EXCLUSIVE),
        tls_certs=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="path"),
            host=dict(type="str"),
            port=dict(type="int", default=443),
            server_name=dict(type="str"),
            min_days=dict(type="float", default=14),
            warn_days=dict(type="float", default=30),
        ), mutually_exclusive=[["path", "host"]], required_one_of=[["path", "host"]]),
        ports_free=dict(type="list", elements="int", default=[]),
        ports_bind_address=dict(type="str", default="0.0.0.0"),
        ports_listening=dict(type="list", elements="str", default=[]),
        fail_on_breach=renamed_from(dict(type="bool", default=True), "fail_on_error"),
    )


def validate(params):
    """Reject option values no check could use, naming the option (before any check runs)."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    for option in ENV_OPTIONS:
        if params.get(option) and not params.get("env_file") and params.get("env_values") is None:
            raise ProdreadyError("%s is set but neither env_file nor env_values is: name the env "
                                 "file to read" % option)
    for option in ("min_cpu_count", "recommended_cpu_count", "min_mem_mb", "recommended_mem_mb"):
        if params.get(option) is not None and params[option] < 0:
            raise ProdreadyError("%s must be 0 or greater, got %s" % (option, params[option]))
    for index, entry in enumerate(params.get("disk") or []):
        pct = entry.get("max_used_percent")
        if pct is not None and not 0 <= pct <= 100:
            raise ProdreadyError("disk[%d].max_used_percent must be between 0 and 100, got %s" % (index, pct))
        if entry.get("min_free_mb") is None and pct is None:
            raise ProdreadyError("disk[%d] (%s) sets neither min_free_mb nor max_used_percent"
                                 % (index, entry["path"]))
    for port in params.get("ports_free") or []:
        if not 0 < port < 65536:
            raise ProdreadyError("ports_free: %s is not a port between 1 and 65535" % port)
    for value in params.get("ports_listening") or []:
        try:
            pf.parse_endpoint(value)
        except ValueError as exc:
            raise ProdreadyError("ports_listening: %s" % exc)
    for name, bad in (params.get("env_forbidden") or {}).items():
        if bad is None or isinstance(bad, dict):
            raise ProdreadyError("env_forbidden.%s must be a value or a list of values, got %r" % (name, bad))


# ---------------------------------------------------------------- facts (I/O)

def cpu_count():
    """CPUs this process may run on (the affinity mask, as a container's limit shows)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 0


def mem_total_mb(meminfo="/proc/meminfo"):
    """Total memory in MiB from /proc/meminfo."""
    with open(meminfo) as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise ProdreadyError("no MemTotal line in %s" % meminfo)


def read_env(path):
    """Values of an env file as the app sees them, or (None, reason)."""
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8")
    except (IOError, OSError, UnicodeDecodeError) as exc:
        return None, to_native(exc)
    try:
        return values(parse(text)), None
    except ProdreadyError as exc:
        return None, str(exc)


def cert_not_after(module, entry):
    """End of validity (naive UTC) of a certificate file or of a server's certificate."""
    if entry.get("path"):
        with open(entry["path"], "rb") as fh:
            data = fh.read()
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only the end date is read, trust is not the question
        with socket.create_connection((entry["host"], entry["port"]), timeout=10) as sock:
            with context.wrap_socket(sock, server_hostname=entry.get("server_name") or entry["host"]) as tls:
                data = tls.getpeercert(binary_form=True)
    pem = data.lstrip().startswith(b"-----BEGIN")
    if HAS_CRYPTOGRAPHY:
        cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
        if hasattr(cert, "not_valid_after_utc"):
            return cert.not_valid_after_utc.replace(tzinfo=None)
        return cert.not_valid_after
    openssl = module.get_bin_path("openssl", required=False)
    if not openssl:
        raise ProdreadyError("neither the cryptography package nor openssl is available")
    rc, out, err = module.run_command([openssl, "x509", "-noout", "-enddate", "-inform", "PEM" if pem else "DER"],
                                      data=data, binary_data=True)
    if rc != 0:
        raise ProdreadyError("openssl x509 failed: %s" % (err or out).strip())
    return pf.parse_openssl_enddate(out)


def bind_error(address, port):
    """None when ``address:port`` can be bound now, else the error text."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Like a server would: TIME_WAIT leftovers do not make the port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(1)
        return None
    except (OSError, socket.error) as exc:
        return to_native(exc.strerror or exc)
    finally:
        sock.close()


def connect_error(host, port, timeout=3.0):
    """None when ``host:port`` accepts a TCP connection, else the error text."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except (OSError, socket.error) as exc:
        return to_native(getattr(exc, "strerror", None) or exc)
    sock.close()
    return None


# ---------------------------------------------------------------- the checks

def host_checks(params):
    """CPU, memory and disk results."""
    checks = []
    if params.get("min_cpu_count") is not None or params.get("recommended_cpu_count") is not None:
        checks.append(pf.check_minimum("cpu_count", cpu_count(), params.get("min_cpu_count"),
                                       params.get("recommended_cpu_count")))
    if params.get("min_mem_mb") is not None or params.get("recommended_mem_mb") is not None:
        checks.append(pf.check_minimum("mem_mb", mem_total_mb(), params.get("min_mem_mb"),
                                       params.get("recommended_mem_mb"), unit="MB"))
    for entry in params.get("disk") or []:
        try:
            st = os.statvfs(entry["path"])
        except OSError as exc:
            checks.append(pf.result("disk %s" % entry["path"], pf.FAIL, to_native(exc.strerror or exc)))
            continue
        mb = 1024 * 1024
        checks.append(pf.check_disk(entry["path"], st.f_blocks * st.f_frsize // mb,
                                    st.f_bavail * st.f_frsize // mb,
                                    entry.get("min_free_mb"), entry.get("max_used_percent")))
    return checks


def file_checks(module, params):
    """Binaries, env file variables, secret file modes."""
    checks = [pf.check_binary(name, module.get_bin_path(name, required=False))
              for name in params.get("binaries") or []]
    if any(params.get(o) for o in ENV_OPTIONS):
        if params.get("env_values") is not None:
            source = "env_values"
            env_values = dict((k, pf.env_text(v)) for k, v in params["env_values"].items())
        else:
            source = params["env_file"]
            env_values, error = read_env(source)
            if env_values is None:
                checks.append(pf.result("env_file %s" % source, pf.FAIL, "cannot read: %s" % error))
        checks.extend(pf.check_env(source, env_values, params["env_required"],
                                   params["env_placeholders"], params["env_expected"],
                                   params["env_forbidden"]))
    for path in params.get("secret_files") or []:
        try:
            st = os.stat(path)
        except OSError:
            checks.append(pf.check_secret_file(path, exists=False))
            continue
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = str(st.st_uid)
        checks.append(pf.check_secret_file(path, st.st_mode, owner, params.get("secret_files_owner")))
    return checks


def postgres_checks(params):
    """PostgreSQL reachable, then the expected tables and indexes."""
    pg = params.get("postgres")
    if pg is None:
        return []
    target = _postgres.describe_target(pg)
    try:
        conn = _postgres.connect(pg, autocommit=True)
    except ProdreadyError as exc:
        reason = "database unreachable"
        return ([pf.result("postgres %s" % target, pf.FAIL, str(exc))]
                + pf.skip_all("table", pg["tables"], reason) + pf.skip_all("index", pg["indexes"], reason)
                + pf.skip_all("extension", pg["extensions"], reason))
    try:
        cur = conn.cursor()
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
        checks = [pf.result("postgres %s" % target, pf.OK, "PostgreSQL %s" % version)]
        if pg["tables"]:
            cur.execute("SELECT schemaname, tablename FROM pg_catalog.pg_tables")
            checks.extend(pf.check_present("table", pg["tables"], cur.fetchall(), pg["schema"]))
        if pg["indexes"]:
            cur.execute("SELECT schemaname, indexname FROM pg_catalog.pg_indexes")
            checks.extend(pf.check_present("index", pg["indexes"], cur.fetchall(), pg["schema"]))
        if pg["extensions"]:
            cur.execute("SELECT name, installed_version FROM pg_catalog.pg_available_extensions")
            checks.extend(pf.check_extensions(pg["extensions"], dict(cur.fetchall()), pg.get("db")))
        return checks
    except _postgres.DB_ERRORS as exc:
        return [pf.result("postgres %s" % target, pf.FAIL, "catalog query failed: %s" % to_native(exc).strip())]
    finally:
        conn.close()


def redis_checks(params):
    """Redis answers PING (authenticated)."""
    rp = params.get("redis")
    if rp is None:
        return []
    name = "redis %s" % _redis.describe_target(rp)
    started = time.time()
    try:
        client = _redis.connect(rp)
        ping_ms = (time.time() - started) * 1000.0
        version = client.info("server").get("redis_version", "?")
    except ProdreadyError as exc:
        return [pf.result(name, pf.FAIL, str(exc))]
    except Exception as exc:  # a server going away between PING and INFO
        return [pf.result(name, pf.FAIL, _redis.explain_redis_error(exc))]
    return [pf.result(name, pf.OK, "PONG in %.1f ms, Redis %s" % (ping_ms, version))]


def tls_checks(module, params, now):
    """Days left on each certificate."""
    checks = []
    for entry in params.get("tls_certs") or []:
        target = entry.get("path") or "%s:%s" % (entry["host"], entry["port"])
        try:
            not_after = cert_not_after(module, entry)
        except (IOError, OSError, ValueError, ssl.SSLError, ProdreadyError) as exc:
            checks.append(pf.result("tls %s" % target, pf.FAIL, "cannot read the certificate: %s"
                                    % to_native(exc)))
            continue
        checks.append(pf.check_cert(target, not_after, now, entry["min_days"], entry.get("warn_days")))
    return checks


def port_checks(params):
    """Ports free to bind, endpoints listening."""
    address = params["ports_bind_address"]
    checks = [pf.check_port_free(address, port, bind_error(address, port))
              for port in params.get("ports_free") or []]
    for value in params.get("ports_listening") or []:
        host, port = pf.parse_endpoint(value)
        checks.append(pf.check_port_listening(host, port, connect_error(host, port)))
    return checks


def python_info():
    """The interpreter running the module and the libraries the modules import: version and
    path of each (None when it does not import)."""
    libraries = {}
    for name in ("psycopg2", "redis", "cryptography"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            libraries[name] = None
            continue
        libraries[name] = dict(version=str(getattr(mod, "__version__", "?")).split(" ", 1)[0],
                               path=getattr(mod, "__file__", None))
    return dict(executable=sys.executable, version=platform.python_version(), libraries=libraries)


def run(module):
    """Run every configured check of `module.params`; returns the result dict, raises
    ProdreadyError naming every failed check (unless fail_on_breach is false)."""
    params = module.params
    validate(params)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    checks = (host_checks(params) + file_checks(module, params) + postgres_checks(params)
              + redis_checks(params) + tls_checks(module, params, now) + port_checks(params))
    failed = pf.failed_checks(checks)
    result = dict(changed=False, checks=checks, failed_checks=failed, passed=not failed,
                  counts=pf.counts(checks), table=pf.render_table(checks), python=python_info())
    if failed and params["fail_on_breach"]:
        raise ProdreadyError(pf.failure_message(checks), **result)
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[["env_file", "env_values"]])
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)


if __name__ == "__main__":
    main()
