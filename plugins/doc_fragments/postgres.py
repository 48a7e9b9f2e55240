# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL connection options shared by pg_backup and alembic_migrate."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The connection options of postgres_connection_argument_spec()."""

    DOCUMENTATION = r"""
options:
  db:
    description:
      - Name of the database to connect to.
    type: str
    aliases: [ login_db ]
  login_host:
    description:
      - Host running PostgreSQL. Leave unset (and set O(login_unix_socket)) for a local
        socket connection.
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
      - Password of O(login_user). Falls back to the E(PGPASSWORD) environment variable.
      - Never put on a command line. Child programs (pg_dump, pg_restore, psql) read it
        from a 0600 password file referenced by E(PGPASSFILE) in their own environment,
        which is removed when the module ends.
    type: str
  login_unix_socket:
    description:
      - Directory of the server's Unix socket (used when O(login_host) is not set).
    type: path
  ssl_mode:
    description:
      - libpq C(sslmode) of the connection.
    type: str
    default: prefer
    choices: [ disable, allow, prefer, require, verify-ca, verify-full ]
requirements:
  - psycopg2 (or psycopg2-binary) on the managed host
"""
