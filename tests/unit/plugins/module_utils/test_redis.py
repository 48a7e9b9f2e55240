"""Pure helpers of plugins/module_utils/_redis.py."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _redis
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError


@pytest.mark.parametrize("url, expected", [
    ("redis://app:s3cret@h:6379/0", "redis://app:********@h:6379/0"),
    ("redis://:s3cret@h:6379/0", "redis://:********@h:6379/0"),
    ("redis://s3cret@h", "redis://********@h"),
    ("rediss://h:6380/1", "rediss://h:6380/1"),
    ("unix:///run/redis.sock?db=1&password=s3cret", "unix:///run/redis.sock?db=1&password=********"),
    ("", ""),
    (None, None),
])
def test_redact_url(url, expected):
    assert _redis.redact_url(url) == expected


@pytest.mark.parametrize("params, expected", [
    ({}, "redis://localhost:6379/0"),
    ({"login_host": "10.0.0.5", "login_port": 6380, "db": 3}, "redis://10.0.0.5:6380/3"),
    ({"tls": True, "login_user": "app", "login_password": "pw"}, "rediss://app@localhost:6379/0"),
    ({"url": "redis://:pw@h/2"}, "redis://:********@h/2"),
    ({"url": "redis://:pw@h/2", "db": 4}, "redis://:********@h/2 (db 4)"),
])
def test_describe_target(params, expected):
    assert _redis.describe_target(params) == expected
    assert "pw@" not in _redis.describe_target(params)


@pytest.mark.parametrize("params, fragment", [
    ({"login_port": 0}, "login_port must be between 1 and 65535"),
    ({"login_port": 70000}, "login_port must be between 1 and 65535"),
    ({"db": -1}, "db must be 0 or greater"),
    ({"connect_timeout": 0}, "connect_timeout must be greater than 0"),
    ({"url": "http://h:6379"}, "url must start with redis://"),
    ({"url": "h:6379:pw"}, "url must start with redis://"),
    ({"client_key": "/k.pem"}, "client_key is set but client_cert is not"),
])
def test_validate_connection_params_rejects(params, fragment):
    with pytest.raises(ProdreadyError) as err:
        _redis.validate_connection_params(params)
    assert fragment in str(err.value)


@pytest.mark.parametrize("params", [
    {}, {"login_port": 6379, "db": 0, "connect_timeout": 0.5},
    {"url": "rediss://h:6380/0"}, {"client_cert": "/c.pem", "client_key": "/k.pem"},
])
def test_validate_connection_params_accepts(params):
    _redis.validate_connection_params(params)


class AuthenticationError(Exception):
    pass


class ConnectionError(Exception):  # noqa: A001 - mimics redis.exceptions.ConnectionError
    pass


class TimeoutError(Exception):  # noqa: A001
    pass


class ResponseError(Exception):
    pass


@pytest.mark.parametrize("exc, fragment", [
    (AuthenticationError("invalid username-password pair or user is disabled."), "authentication failed"),
    (ResponseError("WRONGPASS invalid username-password pair"), "authentication failed"),
    (ResponseError("NOAUTH Authentication required."), "requires a password"),
    (AuthenticationError("HELLO must be called with the client already authenticated"), "requires a password"),
    (ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."), "connection failed"),
    (TimeoutError("Timeout connecting to server"), "timed out"),
    (ConnectionError("Error 1 connecting: [SSL: CERTIFICATE_VERIFY_FAILED]"), "TLS handshake failed"),
    (ValueError("odd"), "ValueError: odd"),
])
def test_explain_redis_error(exc, fragment):
    assert fragment in _redis.explain_redis_error(exc)


def test_argument_spec_secrets_are_no_log():
    spec = _redis.redis_connection_argument_spec()
    assert spec["login_password"]["no_log"] is True
    assert spec["url"]["no_log"] is True
    assert spec["login_password"]["fallback"][1] == ["REDIS_PASSWORD"]


# ------------------------------------------------------------------ raw SCAN reply parsing

def scan_reply(cursor, keys):
    """A SCAN reply as Redis sends it (RESP2)."""
    out = b"*2\r\n$%d\r\n%s\r\n*%d\r\n" % (len(cursor), cursor, len(keys))
    return out + b"".join(b"$%d\r\n%s\r\n" % (len(key), key) for key in keys)


@pytest.mark.parametrize("cursor, keys", [
    (b"0", []),
    (b"17", [b"prod_1"]),
    (b"123456789", [b"prod_1", b"prod_22", b""]),
    (b"5", [b"with\r\ncrlf", b"$3\r\nfake", b"\xff\x00binary", b"*2\r\n"]),
])
def test_parse_scan_reply_keys_are_unlink_arguments(cursor, keys):
    data = b"junk" + scan_reply(cursor, keys) + b":9\r\n"
    got_cursor, count, start, end, nxt = _redis.parse_scan_reply(data, 4)
    assert (got_cursor, count) == (cursor, len(keys))
    # The key bytes are exactly the arguments of an UNLINK request.
    assert data[start:end] == _redis.pack_command(*keys)[len(b"*%d\r\n" % len(keys)):]
    assert nxt == end and data[nxt:] == b":9\r\n"


@pytest.mark.parametrize("keys", [[b"prod_1", b"a\r\nb"], []])
def test_parse_scan_reply_is_incomplete_at_every_cut(keys):
    data = scan_reply(b"42", keys)
    for cut in range(len(data)):
        with pytest.raises(_redis.IncompleteReply):
            _redis.parse_scan_reply(data[:cut])
    assert _redis.parse_scan_reply(data)[1] == len(keys)


@pytest.mark.parametrize("data, expected", [
    (b":0\r\n", (0, 4)),
    (b":512\r\nrest", (512, 6)),
])
def test_parse_integer_reply(data, expected):
    assert _redis.parse_integer_reply(data) == expected


@pytest.mark.parametrize("parser, data, fragment", [
    (_redis.parse_integer_reply, b"-NOPERM this user has no permissions to run the 'unlink' command\r\n",
     "Redis answered: NOPERM this user has no permissions to run the 'unlink' command"),
    (_redis.parse_scan_reply, b"-ERR invalid cursor\r\n", "Redis answered: ERR invalid cursor"),
    (_redis.parse_integer_reply, b"+OK\r\n", "where an integer was expected"),
    (_redis.parse_scan_reply, b"*3\r\n", "where a SCAN reply was expected"),
])
def test_error_replies_carry_the_server_text(parser, data, fragment):
    with pytest.raises(ProdreadyError) as err:
        parser(data)
    assert fragment in str(err.value)


@pytest.mark.parametrize("parser, data", [
    (_redis.parse_integer_reply, b""), (_redis.parse_integer_reply, b":12"),
    (_redis.parse_integer_reply, b"-ERR no end"),
])
def test_integer_reply_incomplete(parser, data):
    with pytest.raises(_redis.IncompleteReply):
        parser(data)


@pytest.mark.parametrize("words, expected", [
    ((b"PING",), b"*1\r\n$4\r\nPING\r\n"),
    (("SCAN", b"0", "COUNT", 1000), b"*4\r\n$4\r\nSCAN\r\n$1\r\n0\r\n$5\r\nCOUNT\r\n$4\r\n1000\r\n"),
    ((b"UNLINK", "pr\u00e9f"), b"*2\r\n$6\r\nUNLINK\r\n$5\r\npr\xc3\xa9f\r\n"),
])
def test_pack_command(words, expected):
    assert _redis.pack_command(*words) == expected
