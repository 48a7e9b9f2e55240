"""health_gate: documentation agrees with the argument_spec; every returned key is in RETURN."""

import os
import sys
from types import SimpleNamespace

import pytest
import yaml

from ansible_collections.prodready.deploy.plugins.modules import health_gate
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "integration"))
from health_server import HealthServer  # noqa: E402  (the tests' own small HTTP server)

DOC = yaml.safe_load(health_gate.DOCUMENTATION)
RETURN = yaml.safe_load(health_gate.RETURN)


@pytest.fixture(scope="module")
def server():
    srv = HealthServer().start()
    yield srv
    srv.stop()


def params(**overrides):
    values = dict((name, spec.get("default")) for name, spec in health_gate.argument_spec().items())
    values.update(overrides)
    return values


def module(values, check_mode=False):
    """What run() uses of AnsibleModule."""
    return SimpleNamespace(params=values, check_mode=check_mode)


def test_documented_options_match_argument_spec():
    spec = health_gate.argument_spec()
    options = DOC["options"]
    assert set(options) == set(spec)
    for name, entry in spec.items():
        doc = options[name]
        assert doc["type"] == entry["type"], name
        assert doc.get("default") == entry.get("default"), name
        assert doc.get("choices") == entry.get("choices"), name
        assert doc.get("elements") == entry.get("elements"), name
        assert doc.get("aliases") == entry.get("aliases"), name
    assert spec["bearer_token"]["no_log"] is True


def test_examples_use_only_documented_options():
    for task in yaml.safe_load(health_gate.EXAMPLES):
        args = task["prodready.deploy.health_gate"]
        assert set(args) <= set(DOC["options"]), task["name"]


@pytest.mark.parametrize("path, extra", [
    ("/fast", dict(requests=5, json={"checks.redis": "ok"})),
    ("/flaky/2", dict(requests=4, fail_on_breach=False)),
])
def test_every_returned_key_is_documented(server, path, extra):
    result = health_gate.run(module(params(url=server.url(path), **extra)))
    returned = set(result) - {"changed"}
    assert returned == set(RETURN), returned ^ set(RETURN)
    per_url_keys = set(result["per_url"][server.url(path)])
    assert per_url_keys == {"samples", "errors", "error_rate", "status_counts", "latency_ms",
                            "consecutive_successes", "first_failure"}


def test_failure_details_are_documented_keys(server):
    with pytest.raises(ProdreadyError) as err:
        health_gate.run(module(params(url=server.url("/down"), requests=2)))
    assert set(err.value.details) - {"changed"} == set(RETURN)
    assert err.value.details["passed"] is False


def test_check_mode_does_not_send_unsafe_methods(server):
    result = health_gate.run(module(params(url=server.url("/flaky/1"), method="POST", requests=3), check_mode=True))
    assert result["passed"] is None and result["samples"] == 0
    assert result["reason"] == "check mode: POST requests to %s not sent" % server.url("/flaky/1")
    assert set(result) - {"changed"} == set(RETURN)


@pytest.mark.parametrize("overrides, fragment", [
    (dict(url="not a url"), "url 'not a url' is not a valid URL"),
    (dict(urls=["http://h/ok", "ftp://h/x"]), "urls 'ftp://h/x' is not a valid URL"),
    (dict(urls=[]), "urls must list at least one URL"),
    (dict(request_timeout=0), "request_timeout must be greater than 0 seconds, got 0"),
    (dict(wait_timeout=-1), "wait_timeout: must be 0 or more, got -1"),
    (dict(requests=0), "requests must be 1 or greater, got 0"),
    (dict(duration=0.0), "duration must be greater than 0 seconds"),
    (dict(concurrency=0), "concurrency must be between 1 and 256, got 0"),
    (dict(max_error_rate=-0.1), "max_error_rate: must be 0 or more, got -0.1"),
    (dict(max_error_rate=5), "max_error_rate must be a fraction between 0 and 1"),
    (dict(max_latency_ms={"p95": -5}), "max_latency_ms.p95 must be 0 or greater, got -5"),
    (dict(max_latency_ms={"p95": 800, "max": 500}), "max_latency_ms.p95 (800 ms) is greater than max_latency_ms.max"),
    (dict(min_consecutive_successes=-1), "min_consecutive_successes: must be 0 or more, got -1"),
    (dict(requests=5, min_consecutive_successes=6), "min_consecutive_successes (6) is greater than requests (5)"),
    (dict(max_regression=-0.5, baseline={"latency_ms": {"p95": 3}}), "max_regression: must be 0 or more, got -0.5"),
    (dict(baseline={"latency_ms": None}, max_regression=0.2), "baseline has no latency_ms figures"),
    (dict(json={"checks[*].ok": True}), "json: JSON path 'checks[*].ok' has unsupported syntax"),
    (dict(body_regex="[a-"), "body_regex '[a-' is not a valid regular expression"),
    (dict(expected_status=[2000]), "expected_status must list HTTP statuses between 100 and 599"),
    (dict(client_key="/k.pem"), "client_key is set but client_cert is not"),
])
def test_bad_input_is_a_clear_error(overrides, fragment):
    values = params(url="http://127.0.0.1:9/health")
    if "urls" in overrides:
        values["url"] = None
    values.update(overrides)
    with pytest.raises(ProdreadyError) as err:
        health_gate.run(module(values))
    assert fragment in str(err.value)
