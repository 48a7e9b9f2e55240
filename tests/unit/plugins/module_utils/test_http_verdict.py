"""Pure half of plugins/module_utils/_http: URLs, JSON paths, judging a response, figures."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _http_verdict as verdict
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/health", "https://app.example.com/ready?x=1",
                                 "http://[::1]:80/"])
def test_validate_url_accepts(url):
    verdict.validate_url(url)


@pytest.mark.parametrize("url, fragment", [
    ("htp://x/health", "the scheme must be http or https, got 'htp'"),
    ("127.0.0.1:8080/health", "the scheme must be http or https"),
    ("http:///health", "it has no host"),
    ("http://h:99999/", "is not a valid URL: Port out of range"),
    ("http://h:port/", "is not a valid URL"),
    ("http://h/a b", "contains whitespace"),
    ("", "must be a non-empty http:// or https:// URL"),
])
def test_validate_url_rejects(url, fragment):
    with pytest.raises(ProdreadyError) as err:
        verdict.validate_url(url)
    assert fragment in str(err.value)
    assert str(err.value).startswith("url ")


@pytest.mark.parametrize("path, segments", [
    ("status", ["status"]),
    ("checks.redis", ["checks", "redis"]),
    ("$.checks.redis.status", ["checks", "redis", "status"]),
    ("items[0].id", ["items", 0, "id"]),
    ("items.0.id", ["items", "0", "id"]),
    ("matrix[1][2]", ["matrix", 1, 2]),
    ("build-info.git_sha", ["build-info", "git_sha"]),
])
def test_parse_json_path(path, segments):
    assert verdict.parse_json_path(path) == segments


@pytest.mark.parametrize("path", ["", "a..b", ".a", "a.", "a[*]", "$..a", "a[?(@.x)]", "a['b']",
                                  "$", "a b", "items[-1]", "a[0"])
def test_parse_json_path_rejects_unknown_syntax(path):
    with pytest.raises(ProdreadyError) as err:
        verdict.parse_json_path(path)
    assert "use dotted keys and [N] indexes" in str(err.value)


DOC = {"status": "ok", "checks": {"redis": "ok", "db": {"ok": True}}, "items": [{"id": 7}], "n": 3}


@pytest.mark.parametrize("path, expected", [
    ("status", "ok"), ("checks.db.ok", True), ("items[0].id", 7), ("items.0.id", 7), ("n", 3),
])
def test_lookup_json(path, expected):
    assert verdict.lookup_json(DOC, verdict.parse_json_path(path)) == expected


@pytest.mark.parametrize("path", ["missing", "checks.cache", "items[3].id", "status.deep", "n[0]"])
def test_lookup_json_missing(path):
    assert verdict.lookup_json(DOC, verdict.parse_json_path(path)) is verdict.MISSING


@pytest.mark.parametrize("actual, expected, match", [
    ("ok", "ok", True), (1.4, "1.4", True), (True, "true", True), (True, True, True),
    (3, 3.0, True), (None, "null", True), ("ok", "OK", False), (1, True, False),
    ({"a": 1}, {"a": 1}, True), ([1], "[1]", False),
])
def test_values_match(actual, expected, match):
    assert verdict.values_match(actual, expected) is match


def test_body_excerpt():
    assert verdict.body_excerpt("a \n\n b") == "a b"
    assert verdict.body_excerpt("x" * 300) == "x" * 200 + "..."
    assert verdict.body_excerpt(None) == ""


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(expected_status=[200, 99]), "expected_status must list HTTP statuses between 100 and 599"),
    (dict(expected_status=[200], json_checks={"a[*]": 1}), "json: JSON path 'a[*]' has unsupported syntax"),
    (dict(expected_status=[200], body_regex="(unclosed"), "body_regex '(unclosed' is not a valid regular expression"),
    (dict(expected_status=[200], expect_version="1", version_path="a..b"), "version_path: JSON path 'a..b'"),
])
def test_build_expectations_rejects(kwargs, fragment):
    with pytest.raises(ProdreadyError) as err:
        verdict.build_expectations(**kwargs)
    assert fragment in str(err.value)


GOOD = '{"status": "ok", "version": "1.4.0", "checks": {"redis": "ok"}}'


@pytest.mark.parametrize("status, body, kwargs, reason", [
    (200, GOOD, {}, None),
    (500, GOOD, {}, "status 500 not in expected [200]"),
    (204, "", {"expected_status": [200, 204]}, None),
    (200, GOOD, {"json_checks": {"checks.redis": "ok", "status": "ok"}}, None),
    (200, GOOD, {"json_checks": {"checks.redis": "down"}}, 'JSON checks.redis is "ok", expected "down"'),
    (200, GOOD, {"json_checks": {"checks.db": "ok"}}, 'JSON checks.db is missing, expected "ok"'),
    (200, "all good", {"json_checks": {"status": "ok"}}, "body is not JSON, cannot check status"),
    (200, GOOD, {"body_regex": r'"redis":\s*"ok"'}, None),
    (200, GOOD, {"body_regex": "degraded"}, "body does not match body_regex 'degraded'"),
    (200, GOOD, {"expect_version": "1.4.0"}, None),
    (200, GOOD, {"expect_version": "1.3.0"}, 'version is "1.4.0", expected "1.3.0"'),
    (200, "1.3.2\n", {"expect_version": "1.3.2"}, None),
    (200, "1.3.2\n", {"expect_version": "1.4.0"}, 'version is "1.3.2", expected "1.4.0"'),
    (200, '{"build": {"v": 2}}', {"expect_version": "2", "version_path": "build.v"}, None),
    (200, '{"status": "ok"}', {"expect_version": "2"}, "version field version is missing, expected version 2"),
])
def test_judge_response(status, body, kwargs, reason):
    kwargs.setdefault("expected_status", [200])
    expectations = verdict.build_expectations(**kwargs)
    assert verdict.judge_response(status, body, expectations) == reason


def _sample(ok, status, end, latency=10.0, url="http://h/a"):
    return dict(url=url, method="GET", ok=ok, status=status,
                status_key=str(status) if status else "connection_error",
                latency_ms=latency if status else None, reason=None if ok else "bad",
                body_excerpt="" if ok else "boom", end=end)


def test_aggregate_orders_by_completion_and_counts():
    samples = [_sample(True, 200, 3.0, 30.0), _sample(False, 500, 1.0, 10.0), _sample(True, 200, 2.0, 20.0),
               _sample(False, None, 0.5)]
    figures = verdict.aggregate(samples)
    assert figures["samples"] == 4
    assert figures["errors"] == 2
    assert figures["error_rate"] == 0.5
    assert figures["status_counts"] == {"200": 2, "500": 1, "connection_error": 1}
    assert figures["latency_ms"]["max"] == 30.0 and figures["latency_ms"]["min"] == 10.0
    assert figures["consecutive_successes"] == 2
    assert figures["first_failure"] == {"url": "http://h/a", "method": "GET", "status": None,
                                        "reason": "bad", "body_excerpt": "boom"}


def test_aggregate_empty():
    figures = verdict.aggregate([])
    assert figures["samples"] == 0 and figures["latency_ms"] is None and figures["first_failure"] is None


@pytest.mark.parametrize("text, short", [
    ("HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /x (Caused by "
     "NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=1): Failed to establish a new connection: "
     "[Errno 111] Connection refused\"))", "[Errno 111] Connection refused"),
    ("HTTPConnectionPool(host='h', port=80): Read timed out. (read timeout=0.1)", "Read timed out."),
    ("short", "short"),
])
def test_short_transport_error(text, short):
    assert verdict.short_transport_error(text) == short


# ------------------------------------------------------------------ decoding a body

@pytest.mark.parametrize("content_type, expected", [
    ("application/json", "utf-8"),
    (None, "utf-8"),
    ("text/html; charset=ISO-8859-1", "iso8859-1"),
    ('text/plain; Charset="utf-16"', "utf-16"),
    ("text/plain; charset=no-such-codec", "utf-8"),  # a server's typo: decoded as utf-8, no crash
])
def test_charset_of(content_type, expected):
    assert verdict.charset_of(content_type) == expected


def test_parse_json_path_names_the_option_it_reads():
    with pytest.raises(ProdreadyError) as err:
        verdict.parse_json_path("a..b", name="probe.version_path", example="build.version")
    assert str(err.value) == ("probe.version_path 'a..b' has unsupported syntax at '': use dotted keys and [N] "
                              "indexes, e.g. build.version")
