"""Pure helpers of plugins/module_utils/_http.py: URLs, JSON paths, judging a response."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _http
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/health", "https://app.example.com/ready?x=1",
                                 "http://[::1]:80/"])
def test_validate_url_accepts(url):
    _http.validate_url(url)


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
        _http.validate_url(url)
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
    assert _http.parse_json_path(path) == segments


@pytest.mark.parametrize("path", ["", "a..b", ".a", "a.", "a[*]", "$..a", "a[?(@.x)]", "a['b']",
                                  "$", "a b", "items[-1]", "a[0"])
def test_parse_json_path_rejects_unknown_syntax(path):
    with pytest.raises(ProdreadyError) as err:
        _http.parse_json_path(path)
    assert "use dotted keys and [N] indexes" in str(err.value)


DOC = {"status": "ok", "checks": {"redis": "ok", "db": {"ok": True}}, "items": [{"id": 7}], "n": 3}


@pytest.mark.parametrize("path, expected", [
    ("status", "ok"), ("checks.db.ok", True), ("items[0].id", 7), ("items.0.id", 7), ("n", 3),
])
def test_lookup_json(path, expected):
    assert _http.lookup_json(DOC, _http.parse_json_path(path)) == expected


@pytest.mark.parametrize("path", ["missing", "checks.cache", "items[3].id", "status.deep", "n[0]"])
def test_lookup_json_missing(path):
    assert _http.lookup_json(DOC, _http.parse_json_path(path)) is _http._MISSING


@pytest.mark.parametrize("actual, expected, match", [
    ("ok", "ok", True), (1.4, "1.4", True), (True, "true", True), (True, True, True),
    (3, 3.0, True), (None, "null", True), ("ok", "OK", False), (1, True, False),
    ({"a": 1}, {"a": 1}, True), ([1], "[1]", False),
])
def test_values_match(actual, expected, match):
    assert _http.values_match(actual, expected) is match


def test_body_excerpt():
    assert _http.body_excerpt("a \n\n b") == "a b"
    assert _http.body_excerpt("x" * 300) == "x" * 200 + "..."
    assert _http.body_excerpt(None) == ""


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(expected_status=[200, 99]), "expected_status must list HTTP statuses between 100 and 599"),
    (dict(expected_status=[200], json_checks={"a[*]": 1}), "json: JSON path 'a[*]' has unsupported syntax"),
    (dict(expected_status=[200], body_regex="(unclosed"), "body_regex '(unclosed' is not a valid regular expression"),
    (dict(expected_status=[200], expect_version="1", version_path="a..b"), "version_path: JSON path 'a..b'"),
])
def test_build_expectations_rejects(kwargs, fragment):
    with pytest.raises(ProdreadyError) as err:
        _http.build_expectations(**kwargs)
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
    expectations = _http.build_expectations(**kwargs)
    assert _http.judge_response(status, body, expectations) == reason


def _sample(ok, status, end, latency=10.0, url="http://h/a"):
    return dict(url=url, method="GET", ok=ok, status=status,
                status_key=str(status) if status else "connection_error",
                latency_ms=latency if status else None, reason=None if ok else "bad",
                body_excerpt="" if ok else "boom", end=end)


def test_aggregate_orders_by_completion_and_counts():
    samples = [_sample(True, 200, 3.0, 30.0), _sample(False, 500, 1.0, 10.0), _sample(True, 200, 2.0, 20.0),
               _sample(False, None, 0.5)]
    figures = _http.aggregate(samples)
    assert figures["samples"] == 4
    assert figures["errors"] == 2
    assert figures["error_rate"] == 0.5
    assert figures["status_counts"] == {"200": 2, "500": 1, "connection_error": 1}
    assert figures["latency_ms"]["max"] == 30.0 and figures["latency_ms"]["min"] == 10.0
    assert figures["consecutive_successes"] == 2
    assert figures["first_failure"] == {"url": "http://h/a", "method": "GET", "status": None,
                                        "reason": "bad", "body_excerpt": "boom"}


def test_aggregate_empty():
    figures = _http.aggregate([])
    assert figures["samples"] == 0 and figures["latency_ms"] is None and figures["first_failure"] is None


@pytest.mark.parametrize("text, short", [
    ("HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /x (Caused by "
     "NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=1): Failed to establish a new connection: "
     "[Errno 111] Connection refused\"))", "[Errno 111] Connection refused"),
    ("HTTPConnectionPool(host='h', port=80): Read timed out. (read timeout=0.1)", "Read timed out."),
    ("short", "short"),
])
def test_short_transport_error(text, short):
    assert _http.short_transport_error(text) == short


# ------------------------------------------------------------------ lean client helpers

@pytest.mark.parametrize("content_type, expected", [
    ("application/json", "utf-8"),
    (None, "utf-8"),
    ("text/html; charset=ISO-8859-1", "ISO-8859-1"),
    ('text/plain; Charset="utf-16"', "utf-16"),
])
def test_charset_of(content_type, expected):
    assert _http.charset_of(content_type) == expected


@pytest.mark.parametrize("method, status, expected", [
    ("POST", 303, "GET"), ("PUT", 303, "GET"), ("HEAD", 303, "HEAD"),
    ("POST", 302, "GET"), ("POST", 301, "GET"), ("PUT", 302, "PUT"),
    ("POST", 307, "POST"), ("DELETE", 308, "DELETE"), ("GET", 302, "GET"),
])
def test_redirect_method_follows_requests_rules(method, status, expected):
    assert _http.redirect_method(method, status) == expected


@pytest.mark.parametrize("url, expected", [
    ("http://h/health", "/health"), ("http://h", "/"), ("http://h:8/a/b?x=1&y=2", "/a/b?x=1&y=2"),
    ("http://h/?q", "/?q"),
])
def test_request_target(url, expected):
    assert _http.request_target(_http.urlsplit(url)) == expected


@pytest.mark.parametrize("env, url, proxied", [
    ({}, "http://10.0.0.5/health", False),
    ({"http_proxy": "http://proxy:3128"}, "http://10.0.0.5/health", True),
    ({"http_proxy": "http://proxy:3128", "no_proxy": "10.0.0.5"}, "http://10.0.0.5/health", False),
    ({"https_proxy": "http://proxy:3128"}, "http://10.0.0.5/health", False),
    ({"https_proxy": "http://proxy:3128"}, "https://app.example.com/health", True),
])
def test_environment_proxy_decides_the_prober(monkeypatch, env, url, proxied):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert bool(_http.environment_proxy(url)) is proxied
    prober = _http.make_prober([url], "GET", {}, 1.0, _http.build_expectations([200]))
    assert type(prober).__name__ == ("Prober" if proxied else "LeanProber")
    prober.close()


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(verify="/nonexistent/ca.pem"), "ca_path '/nonexistent/ca.pem' cannot be used as a CA bundle"),
    (dict(cert="/nonexistent/client.pem"), "client_cert '/nonexistent/client.pem' / client_key None cannot be loaded"),
    (dict(cert=("/nonexistent/c.pem", "/nonexistent/k.pem")), "client_key '/nonexistent/k.pem' cannot be loaded"),
])
def test_tls_files_fail_before_the_first_request(kwargs, fragment):
    with pytest.raises(ProdreadyError) as err:
        _http.make_prober(["https://127.0.0.1:9/"], "GET", {}, 1.0, _http.build_expectations([200]), **kwargs)
    assert fragment in str(err.value)


def test_plain_http_needs_no_tls_files():
    prober = _http.make_prober(["http://127.0.0.1:9/"], "GET", {}, 1.0, _http.build_expectations([200]),
                               cert="/nonexistent/client.pem")
    assert type(prober).__name__ == "LeanProber"


class _CountingProber(_http._Sampling):
    """A prober without I/O: probe() records the switch interval it ran under."""

    def __init__(self):
        self.seen = []
        self.expectations = _http.build_expectations([200])

    def probe(self, url):
        import sys
        self.seen.append(sys.getswitchinterval())
        return self._sample(url, True, 200, "200", 1.0, None, "", 0.0)


@pytest.mark.parametrize("concurrency, during", [(1, None), (4, _http.SAMPLING_SWITCH_INTERVAL_S)])
def test_sample_shortens_the_switch_interval_only_while_sampling(concurrency, during):
    import sys
    before = sys.getswitchinterval()
    prober = _CountingProber()
    samples, elapsed = prober.sample(["u"], count=8, concurrency=concurrency)
    assert len(samples) == 8 and sys.getswitchinterval() == before
    expected = before if during is None else during
    assert all(abs(seen - expected) < 1e-9 for seen in prober.seen), prober.seen  # stored as microseconds
