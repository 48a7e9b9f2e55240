"""env_fallback_set: the secret options' environment fallbacks that ignore an empty variable."""

import pytest

from ansible.module_utils.basic import AnsibleFallbackNotFound
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.prodready.deploy.plugins.module_utils import _options, _postgres, _redis


@pytest.mark.parametrize("environ, expected", [
    ({"A": "one", "B": "two"}, "one"),
    ({"A": "", "B": "two"}, "two"),
    ({"B": "two"}, "two"),
])
def test_the_first_variable_set_and_not_empty_wins(monkeypatch, environ, expected):
    for name in ("A", "B"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert _options.env_fallback_set("A", "B") == expected


def test_empty_or_unset_is_no_value(monkeypatch):
    monkeypatch.setenv("A", "")
    monkeypatch.delenv("B", raising=False)
    with pytest.raises(AnsibleFallbackNotFound):
        _options.env_fallback_set("A", "B")


def test_an_empty_redis_url_variable_leaves_login_host_alone(monkeypatch):
    """A blank credential field injected as PRODREADY_REDIS_URL="" must not make url present
    (url and login_host are mutually exclusive)."""
    monkeypatch.setenv("PRODREADY_REDIS_URL", "")
    validator = ArgumentSpecValidator(_redis.redis_connection_argument_spec(),
                                      mutually_exclusive=_redis.REDIS_MUTUALLY_EXCLUSIVE)
    result = validator.validate({"login_host": "cache.example"})
    assert result.error_messages == []
    assert result.validated_parameters["url"] is None


def test_the_redis_url_variable_is_a_masked_secret(monkeypatch):
    monkeypatch.setenv("PRODREADY_REDIS_URL", "redis://:s3cret-url@cache.example:6379/0")
    result = ArgumentSpecValidator(_redis.redis_connection_argument_spec()).validate({})
    assert result.validated_parameters["url"] == "redis://:s3cret-url@cache.example:6379/0"
    assert "redis://:s3cret-url@cache.example:6379/0" in result._no_log_values  # pylint: disable=protected-access


@pytest.mark.parametrize("spec, option, variable", [
    (_postgres.postgres_connection_argument_spec(), "login_password", "PGPASSWORD"),
    (_redis.redis_connection_argument_spec(), "login_password", "REDIS_PASSWORD"),
    (_redis.redis_connection_argument_spec(), "url", "PRODREADY_REDIS_URL"),
])
def test_every_secret_connection_option_falls_back_to_its_variable(monkeypatch, spec, option, variable):
    monkeypatch.setenv(variable, "from-the-environment")
    result = ArgumentSpecValidator(spec).validate({})
    assert result.validated_parameters[option] == "from-the-environment"
    assert spec[option]["no_log"] is True
