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
