# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis connection options, the connect helper and pure helpers shared by modules.

Stable API (used by redis_cache_check and feature_flag):

- ``redis_connection_argument_spec()`` -> dict to merge into a module's argument_spec;
- ``REDIS_MUTUALLY_EXCLUSIVE`` -> list to add to the module's ``mutually_exclusive``;
- ``connect(module_params)`` -> a connected ``redis.Redis`` (answered PING), or
  ``ProdreadyError`` with a message naming the target (password redacted) and the cause;
- ``describe_target``, ``redact_url``, ``explain_redis_error``, ``selected_db``: pure helpers.

Modules pair the spec with ``extends_documentation_fragment: prodready.deploy.redis``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import socket
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._options import env_fallback_set

REDIS_IMPORT_ERROR = None
try:
    import redis
    HAS_REDIS = True
except ImportError:  # pragma: no cover - depends on the controller's environment
    redis = None
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = traceback.format_exc()

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 6379

REDIS_MUTUALLY_EXCLUSIVE = [["url", "login_host"], ["url", "login_port"]]


def redis_connection_argument_spec():
    """Return the argument_spec entries of the shared Redis connection options.

    Matches ``plugins/doc_fragments/redis.py``. ``login_password`` falls back to the
    ``REDIS_PASSWORD`` environment variable and ``url`` to ``PRODREADY_REDIS_URL`` (not
    ``REDIS_URL``, which apps read for themselves); both are no_log.
    """
    return dict(
        login_host=dict(type="str"),
        login_port=dict(type="int"),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True, fallback=(env_fallback, ["REDIS_PASSWORD"])),
        db=dict(type="int"),
        url=dict(type="str", no_log=True, fallback=(env_fallback_set, ["PRODREADY_REDIS_URL"])),
        tls=dict(type="bool", default=False),
        validate_certs=dict(type="bool", default=True),
        ca_cert=dict(type="path"),
        client_cert=dict(type="path"),
        client_key=dict(type="path", no_log=False),
        connect_timeout=dict(type="float", default=5.0),
    )


_URL_PASSWORD = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^@/]*)@")


def redact_url(url):
    """Return ``url`` with the password of its userinfo replaced by ``********``.

    ``redis://app:s3cret@h:6379/0`` -> ``redis://app:********@h:6379/0``; a userinfo
    without a colon is a password in Redis URLs (``redis://s3cret@h``), so it is redacted too.
    A ``password=`` query parameter is redacted as well.
    """
    if not url:
        return url
    match = _URL_PASSWORD.match(url)
    if match:
        userinfo = match.group("userinfo")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            redacted = "%s:********" % user
        else:
            redacted = "********"
        url = match.group("scheme") + redacted + "@" + url[match.end():]
    return re.sub(r"([?&]password=)[^&]*", r"\1********", url)


def describe_target(params):
    """Human description of where ``params`` connect, never showing a password.

    Used as the prefix of every connection error message.
    """
    if params.get("url"):
        text = redact_url(params["url"])
        if params.get("db") is not None:
            text += " (db %s)" % params["db"]
        return text
    scheme = "rediss" if params.get("tls") else "redis"
    host = params.get("login_host") or DEFAULT_HOST
    port = params.get("login_port") or DEFAULT_PORT
    db = params.get("db") or 0
    user = params.get("login_user")
    return "%s://%s%s:%s/%s" % (scheme, (user + "@") if user else "", host, port, db)


def validate_connection_params(params):
    """Raise ProdreadyError naming the option when a connection value is out of range."""
    port = params.get("login_port")
    if port is not None and not 0 < port < 65536:
        raise ProdreadyError("login_port must be between 1 and 65535, got %s" % port)
    db = params.get("db")
    if db is not None and db < 0:
        raise ProdreadyError("db must be 0 or greater, got %s" % db)
    timeout = params.get("connect_timeout")
    if timeout is not None and timeout <= 0:
        raise ProdreadyError("connect_timeout must be greater than 0 seconds, got %s" % timeout)
    url = params.get("url")
    if url is not None and not re.match(r"^(redis|rediss|unix)://", url):
        raise ProdreadyError("url must start with redis://, rediss:// or unix://, got %s"
                             % redact_url(url))
    if params.get("client_key") and not params.get("client_cert"):
        raise ProdreadyError("client_key is set but client_cert is not: both are needed for mutual TLS")


def explain_redis_error(exc):
    """Turn a redis-py exception into a short cause a human can act on (pure).

    The class name and the server's message are enough to tell a wrong password from a
    refused connection or a timeout; the original message is kept at the end.
    """
    name = type(exc).__name__
    text = str(exc) or name
    low = text.lower()
    if "noauth" in low or "authentication required" in low or "hello must be called" in low:
        return "the server requires a password, set login_password or REDIS_PASSWORD (%s)" % text
    if "wrongpass" in low or "invalid username-password" in low or name == "AuthenticationError":
        return "authentication failed, check login_user/login_password (%s)" % text
    if "without any password configured" in low:
        return "a password was sent but the server has none configured (%s)" % text
    if name == "TimeoutError" or "timed out" in low or "timeout" in low:
        return "timed out, check the address, the firewall and connect_timeout (%s)" % text
    if "ssl" in low or "certificate" in low:
        return "TLS handshake failed, check tls/ca_cert/validate_certs (%s)" % text
    if name == "ConnectionError" or "connection refused" in low or "connecting to" in low:
        return "connection failed, is the server running and reachable? (%s)" % text
    return "%s: %s" % (name, text)


def _connection_kwargs(params):
    """redis-py keyword arguments for ``params`` (no URL), shared by TCP and TLS."""
    timeout = params.get("connect_timeout") or 5.0
    kwargs = dict(
        host=params.get("login_host") or DEFAULT_HOST,
        port=params.get("login_port") or DEFAULT_PORT,
        db=params.get("db") or 0,
        username=params.get("login_user"),
        password=params.get("login_password"),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )
    if params.get("tls"):
        kwargs.update(_tls_kwargs(params))
    return kwargs


def _tls_kwargs(params):
    validate = params.get("validate_certs", True)
    kwargs = dict(
        ssl=True,
        ssl_cert_reqs="required" if validate else "none",
        ssl_check_hostname=bool(validate),
    )
    if params.get("ca_cert"):
        kwargs["ssl_ca_certs"] = params["ca_cert"]
    if params.get("client_cert"):
        kwargs["ssl_certfile"] = params["client_cert"]
    if params.get("client_key"):
        kwargs["ssl_keyfile"] = params["client_key"]
    return kwargs


def selected_db(client):
    """The database number ``client`` uses (from its options or its URL)."""
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)


def _no_retry():
    """redis-py 6+ retries a failed command 3 times with backoff, a wrong password included
    (AuthenticationError is a ConnectionError): seconds lost before a clear failure, and a
    write sent twice. A task fails at once with the cause; Ansible's retries are the user's."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    return Retry(NoBackoff(), 0)


def connect(module_params, ping=True):
    """Return a ``redis.Redis`` for the shared connection options in ``module_params``.

    With ``ping`` (default) the connection is checked with PING, so a wrong address or a
    wrong password fails here with a ProdreadyError like
    ``cannot connect to Redis at redis://127.0.0.1:26379/3: authentication failed, ...``.
    Replies are decoded as UTF-8 strings.
    """
    if not HAS_REDIS:
        raise ProdreadyError(missing_required_lib("redis"), exception=REDIS_IMPORT_ERROR)
    validate_connection_params(module_params)
    target = describe_target(module_params)
    try:
        if module_params.get("url"):
            timeout = module_params.get("connect_timeout") or 5.0
            kwargs = dict(socket_connect_timeout=timeout, socket_timeout=timeout,
                          decode_responses=True, retry=_no_retry())
            if module_params.get("login_user"):
                kwargs["username"] = module_params["login_user"]
            if module_params.get("login_password"):
                kwargs["password"] = module_params["login_password"]
            if module_params["url"].startswith("rediss://"):
                # The URL's scheme decides TLS; the certificate options still apply.
                kwargs.update(_tls_kwargs(module_params))
                kwargs.pop("ssl", None)
            pool = redis.ConnectionPool.from_url(module_params["url"], **kwargs)
            if module_params.get("db") is not None:
                # An explicit db option wins over the URL's path.
                pool.connection_kwargs["db"] = module_params["db"]
            client = redis.Redis(connection_pool=pool)
        else:
            client = redis.Redis(decode_responses=True, retry=_no_retry(), **_connection_kwargs(module_params))
        if ping:
            client.ping()
    except ProdreadyError:
        raise
    except Exception as exc:  # redis-py raises many types; all become one clear message
        raise ProdreadyError("cannot connect to Redis at %s: %s" % (target, explain_redis_error(exc)))
    return client


# ---------------------------------------------------------------- key scans (I/O, never KEYS)

def _never_decode():
    # Keys may be arbitrary bytes: SCAN/UNLINK replies are read raw, whatever the client decodes.
    from redis.client import NEVER_DECODE
    return {NEVER_DECODE: []}


def validate_pattern(pattern, option):
    """Raise ProdreadyError unless ``pattern`` is a non-empty glob string (pure)."""
    if not isinstance(pattern, str) or not pattern:
        raise ProdreadyError("%s must hold non-empty glob patterns such as 'prod_*', got %r" % (option, pattern))


def matches_everything(pattern):
    """True when a glob pattern matches every key (``*``, ``**``), i.e. it would be a flush."""
    return bool(pattern) and set(pattern) == {"*"}


def scan_count(client, pattern, batch=1000):
    """Number of distinct keys matching ``pattern``, counted with SCAN (never KEYS).

    SCAN may return a key twice while the table is rehashing, so keys are counted in a set.
    """
    seen = set()
    cursor = 0
    while True:
        cursor, keys = client.execute_command("SCAN", cursor, "MATCH", pattern, "COUNT", batch,
                                              **_never_decode())
        seen.update(keys)
        if int(cursor) == 0:
            return len(seen)


# Run by the server: SCAN one page, UNLINK what it returned, and go on with the next page
# until the time budget (microseconds) is spent or the scan is complete. The keys never
# travel to the client and back, and no call holds the server longer than the budget plus
# one page, so other clients wait a few milliseconds at most. UNLINK is split in slices
# to stay under Lua's unpack() limit.
_SCAN_UNLINK_LUA = """
local cursor = ARGV[1]
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local started = now_us()
local deleted = 0
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', ARGV[3])
  cursor = reply[1]
  local keys = reply[2]
  for i = 1, #keys, 500 do
    deleted = deleted + redis.call('UNLINK', unpack(keys, i, math.min(i + 499, #keys)))
  end
until cursor == '0' or now_us() - started >= tonumber(ARGV[4])
return {cursor, deleted}
"""

DEFAULT_BUDGET_MS = 2.0


def scan_unlink(client, pattern, batch=1000, budget_ms=DEFAULT_BUDGET_MS):
    """Delete every key matching ``pattern`` with SCAN + UNLINK in batches; returns the count.

    Never KEYS, never one long command: the work is cut in SCAN pages (``batch`` is the
    COUNT hint) run by a small server-side script, each call doing pages until
    ``budget_ms`` is spent, so the keys are not shipped to the client and back and other
    clients wait at most about ``budget_ms`` plus one page. Where scripting is not allowed
    (ACL ``-@scripting``, a proxy without EVAL) it falls back to scan_unlink_raw(), which
    needs only SCAN and UNLINK.
    The count is UNLINK's own, so a key SCAN returns twice is counted once. UNLINK frees
    large values in a background thread.
    """
    script = client.register_script(_SCAN_UNLINK_LUA)
    budget_us = int(budget_ms * 1000)
    deleted = 0
    cursor = "0"
    try:
        while True:
            cursor, count = script(args=[cursor, pattern, batch, budget_us])
            deleted += int(count)
            cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
            if cursor == "0":
                return deleted
    except redis.exceptions.ResponseError as exc:
        text = str(exc).lower()
        # redis-py turns "-NOPERM ..." into NoPermissionError and drops the NOPERM word.
        if not any(word in text for word in ("noperm", "no permissions", "unknown command", "not allowed",
                                             "scripting")):
            raise
        return deleted + scan_unlink_raw(client, pattern, batch)


def scan_unlink_pipelined(client, pattern, batch=1000):
    """scan_unlink() through redis-py's own parser: SCAN, then UNLINK the page pipelined
    with the next SCAN (kept for comparison in bench/: every key is decoded and re-encoded
    in Python, 3-7x slower than scan_unlink_raw(), see docs/performance.md).
    """
    raw = _never_decode()
    deleted = 0
    cursor, keys = client.execute_command("SCAN", 0, "MATCH", pattern, "COUNT", batch, **raw)
    cursor = int(cursor)
    while True:
        if not keys:
            if cursor == 0:
                return deleted
            cursor, keys = client.execute_command("SCAN", cursor, "MATCH", pattern, "COUNT", batch, **raw)
            cursor = int(cursor)
            continue
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("UNLINK", *keys, **raw)
        if cursor != 0:
            pipe.execute_command("SCAN", cursor, "MATCH", pattern, "COUNT", batch, **raw)
        replies = pipe.execute()
        deleted += int(replies[0])
        if cursor == 0:
            return deleted
        cursor, keys = replies[1]
        cursor = int(cursor)


# ---------------------------------------------------------------- raw SCAN + UNLINK (no scripting)
#
# A SCAN reply's key array, ``$<len>\r\n<key>\r\n`` per key, is byte for byte the argument
# list of an UNLINK request. So the keys are never decoded or re-encoded in Python: the
# reply's bytes become the UNLINK command, with only a header in front. Redis does no
# scripting work (no Lua conversion of every key twice), and the client only walks the
# lengths. Each command stays short (one SCAN page, one UNLINK of that page's keys).

class IncompleteReply(Exception):
    """The buffer does not hold the whole reply yet: read more bytes and parse again."""


def _line_end(buf, pos):
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise IncompleteReply()
    return end


def _reply_error(buf, pos):
    end = _line_end(buf, pos)
    return bytes(buf[pos + 1:end]).decode("utf-8", "replace")


def parse_integer_reply(buf, pos=0):
    """``:N\\r\\n`` at ``pos`` -> ``(N, next_pos)`` (pure).

    Raises IncompleteReply when the buffer ends early, and ProdreadyError carrying the
    server's text for an error reply (``-NOPERM ...``) or anything unexpected.
    """
    if len(buf) <= pos:
        raise IncompleteReply()
    kind = buf[pos:pos + 1]
    if kind == b"-":
        raise ProdreadyError("Redis answered: %s" % _reply_error(buf, pos))
    if kind != b":":
        raise ProdreadyError("unexpected Redis reply %r where an integer was expected" % bytes(buf[pos:pos + 20]))
    end = _line_end(buf, pos)
    return int(buf[pos + 1:end]), end + 2


def parse_scan_reply(buf, pos=0):
    """A SCAN reply at ``pos`` -> ``(cursor, key_count, keys_start, keys_end, next_pos)`` (pure).

    ``buf[keys_start:keys_end]`` is the keys' bulk strings exactly as UNLINK takes them.
    Keys may hold any byte (``\\r\\n`` included): they are skipped by their length, never
    searched. Raises IncompleteReply or ProdreadyError as parse_integer_reply() does.
    """
    if len(buf) <= pos:
        raise IncompleteReply()
    if buf[pos:pos + 1] == b"-":
        raise ProdreadyError("Redis answered: %s" % _reply_error(buf, pos))
    end = _line_end(buf, pos)
    if bytes(buf[pos:end]) != b"*2":
        raise ProdreadyError("unexpected Redis reply %r where a SCAN reply was expected" % bytes(buf[pos:pos + 20]))
    pos = end + 2
    end = _line_end(buf, pos)
    length = int(buf[pos + 1:end])
    pos = end + 2
    if len(buf) < pos + length + 2:
        raise IncompleteReply()
    cursor = bytes(buf[pos:pos + length])
    pos += length + 2
    end = _line_end(buf, pos)
    count = int(buf[pos + 1:end])
    keys_start = pos = end + 2
    for dummy in range(count):
        end = _line_end(buf, pos)
        pos = end + 2 + int(buf[pos + 1:end]) + 2
    if len(buf) < pos:
        raise IncompleteReply()
    return cursor, count, keys_start, pos, pos


def pack_command(*words):
    """RESP request bytes of a command made of ``words`` (bytes or str) (pure)."""
    parts = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word if isinstance(word, bytes) else str(word).encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _RawChannel(object):
    """A redis-py connection's socket used directly: send bytes, parse replies as they come."""

    def __init__(self, connection):
        self.connection = connection
        self.sock = connection._sock  # pylint: disable=protected-access
        self.buf = bytearray()
        self.pos = 0

    def send(self, data):
        self.sock.sendall(data)

    def read(self, parser):
        while True:
            try:
                value = parser(self.buf, self.pos)
            except IncompleteReply:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise ProdreadyError("Redis closed the connection during the invalidation")
                if self.pos:
                    del self.buf[:self.pos]
                    self.pos = 0
                self.buf += chunk
                continue
            self.pos = value[-1]
            return value


def scan_unlink_raw(client, pattern, batch=1000):
    """Delete every key matching ``pattern``: SCAN pages, each page's keys UNLINKed as they are.

    One round trip per page: the UNLINK of the page just read goes out together with the
    SCAN of the next one. Every command is short (COUNT ``batch``), so other clients wait
    a fraction of a millisecond at most. Returns UNLINK's count (a key SCAN returns twice
    is deleted, and counted, once). Uses a connection of ``client``'s pool (its AUTH,
    SELECT and TLS done) and closes it afterwards.
    """
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.connect()
        channel = _RawChannel(connection)
        pattern_bytes = pattern if isinstance(pattern, bytes) else pattern.encode("utf-8")

        def scan(cursor):
            return pack_command(b"SCAN", cursor, b"MATCH", pattern_bytes, b"COUNT", str(batch))

        return _scan_unlink_pages(channel, scan)
    except (socket.timeout, OSError) as exc:
        raise ProdreadyError("SCAN + UNLINK of %r failed: %s" % (pattern, explain_redis_error(exc)))
    finally:
        # The socket was read outside redis-py's parser: never hand it back half-read.
        connection.disconnect()
        pool.release(connection)


def _scan_unlink_pages(channel, scan):
    """The page loop of scan_unlink_raw(): one round trip per page, UNLINK count returned."""
    channel.send(scan(b"0"))
    cursor, count, start, end, dummy = channel.read(parse_scan_reply)
    deleted = 0
    while True:
        out = []
        if count:
            out.append(b"*%d\r\n$6\r\nUNLINK\r\n" % (count + 1))
            out.append(bytes(channel.buf[start:end]))
        if cursor != b"0":
            out.append(scan(cursor))
        if not out:
            return deleted
        channel.send(b"".join(out))
        if count:
            deleted += channel.read(parse_integer_reply)[0]
        if cursor == b"0":
            return deleted
        cursor, count, start, end, dummy = channel.read(parse_scan_reply)
