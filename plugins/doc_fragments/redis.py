# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Redis connection options shared by redis_cache_check and feature_flag."""

    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or IP address of the Redis server.
      - When neither O(login_host) nor O(url) is set, V(localhost) is used.
    type: str
  login_port:
    description:
      - TCP port of the Redis server.
      - When neither O(login_port) nor O(url) is set, V(6379) is used.
    type: int
  login_user:
    description:
      - ACL user name (Redis 6+). Leave unset for the C(default) user.
    type: str
  login_password:
    description:
      - Password for C(AUTH).
      - Read from the E(REDIS_PASSWORD) environment variable when not set, so it never
        has to appear in a playbook or on a command line.
    type: str
  db:
    description:
      - Database number to select.
      - When O(url) also names a database, O(db) wins if it is set explicitly.
    type: int
  url:
    description:
      - Connection URL, for example V(redis://user:secret@cache.example:6379/2) or
        V(rediss://...) for TLS, or V(unix:///run/redis.sock?db=1).
      - It may embed a password, so it is treated as a secret and redacted in messages.
      - Read from the E(PRODREADY_REDIS_URL) environment variable when not set (and that
        variable is not empty). Not E(REDIS_URL), which applications read for themselves.
      - Mutually exclusive with O(login_host) and O(login_port).
    type: str
  tls:
    description:
      - Connect with TLS.
      - With O(url), the scheme decides instead (V(rediss://) is TLS).
    type: bool
    default: false
  validate_certs:
    description:
      - With TLS, verify the server certificate (and its host name).
      - Set to V(false) only for self-signed certificates in a lab.
    type: bool
    default: true
  ca_cert:
    description:
      - Path of a CA bundle (PEM) used to verify the server certificate with TLS.
    type: path
  client_cert:
    description:
      - Path of a client certificate (PEM) for mutual TLS.
    type: path
  client_key:
    description:
      - Path of the private key of O(client_cert).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the TCP (and TLS) connection and for each command's reply.
    type: float
    default: 5.0
requirements:
  - redis (Python library, 4.0 or later)
notes:
  - Secrets (O(login_password), O(url)) are never logged and never passed on a command line.
"""
