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
    ("text/html; charset=ISO-8859-1", "iso8859-1"),
    ('text/plain; Charset="utf-16"', "utf-16"),
    ("text/plain; charset=no-such-codec", "utf-8"),  # a server's typo: decoded as utf-8, no crash
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


# ------------------------------------------------------------------ event-loop sampler: the response reader

BODY = b'{"status": "ok", "version": "1.4.0"}'
WITH_LENGTH = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n"
               b"X-Multi: a\r\nx-multi: b\r\nX-Folded: one\r\n  two\r\n\r\n%s" % (len(BODY), BODY))
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
           b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 21\r\n\r\n")
UNTIL_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall good until the end"


def _split_feeds(raw, method="GET"):
    """A parser per split position: (parser, done after the first part, done after the second)."""
    for at in range(1, len(raw)):
        parser = _http.ResponseParser(method)
        yield at, parser, parser.feed(raw[:at]), parser.feed(raw[at:])


def test_parser_content_length_split_at_every_position():
    for at, parser, first, second in _split_feeds(WITH_LENGTH):
        assert (first, second) == (False, True), at
        assert parser.status == 200 and parser.body == BODY and parser.will_close is False, at
        assert parser.header("Content-Type") == "application/json; charset=utf-8", at
        assert parser.header("X-MULTI") == "a, b" and parser.header("x-folded") == "one two", at
        assert parser.header("missing") is None


def test_parser_byte_by_byte_completes_on_the_last_byte():
    for raw, body in ((WITH_LENGTH, BODY), (CHUNKED, b"Wikipedia in\r\n\r\nchunks.")):
        parser = _http.ResponseParser("GET")
        done = [parser.feed(raw[i:i + 1]) for i in range(len(raw))]
        assert done == [False] * (len(raw) - 1) + [True]
        assert parser.body == body


def test_parser_chunked_with_extensions_and_trailers_split_at_every_position():
    for at, parser, first, second in _split_feeds(CHUNKED):
        assert (first, second) == (False, True), at
        assert parser.body == b"Wikipedia in\r\n\r\nchunks." and parser.will_close is False, at


def test_parser_body_that_ends_at_the_close():
    for at, parser, first, second in _split_feeds(UNTIL_CLOSE):
        assert (first, second) == (False, False), at
        assert parser.feed_eof() is True
        assert parser.body == b"all good until the end" and parser.will_close is True, at


@pytest.mark.parametrize("method, raw", [
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 36\r\n\r\n"),
    ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 36\r\n\r\n"),
    ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 36\r\n\r\n"),
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
])
def test_parser_responses_without_body(method, raw):
    parser = _http.ResponseParser(method)
    assert parser.feed(raw) is True
    assert parser.body == b"" and parser.will_close is False


@pytest.mark.parametrize("raw, will_close", [
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", True),
    (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 2\r\n\r\nok", True),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", True),  # bytes after the response
    (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", False),  # bare LF line ends
])
def test_parser_connection_reuse(raw, will_close):
    parser = _http.ResponseParser("GET")
    assert parser.feed(raw) is True
    assert parser.body == b"ok" and parser.will_close is will_close


def test_parser_skips_interim_responses():
    parser = _http.ResponseParser("POST")
    assert parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n") is False
    assert parser.feed(b"x") is True
    assert parser.status == 201 and parser.body == b"x"


def test_parser_without_a_usable_length_reads_until_the_close():
    parser = _http.ResponseParser("GET")
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\nabc") is False
    assert parser.feed_eof() is True and parser.body == b"abc"


@pytest.mark.parametrize("raw, error, text", [
    (b"", "RemoteDisconnected", "Remote end closed connection without response"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "IncompleteRead", "IncompleteRead(3 bytes read, 7 more expected)"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWi", "IncompleteRead", "IncompleteRead(2 bytes read)"),
    (b"HTTP/1.1 200 O", "IncompleteRead", "IncompleteRead(14 bytes read)"),
])
def test_parser_cut_responses(raw, error, text):
    parser = _http.ResponseParser("GET")
    if raw:
        assert parser.feed(raw) is False
    with pytest.raises(getattr(_http.http_client, error)) as err:
        parser.feed_eof()
    assert str(err.value) == text


def test_parser_cut_responses_are_classified_as_leanprober_does():
    parser = _http.ResponseParser("GET")
    with pytest.raises(Exception) as err:
        parser.feed_eof()
    assert _http.classify_exception(err.value) == (
        "connection_error", "connection failed: Remote end closed connection without response")


@pytest.mark.parametrize("raw, error", [
    (b"SMTP ready\r\n\r\n", "BadStatusLine"),
    (b"HTTP/1.1 abc OK\r\n\r\n", "BadStatusLine"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "IncompleteRead"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70000, "LineTooLong"),
])
def test_parser_malformed_responses(raw, error):
    with pytest.raises(getattr(_http.http_client, error)):
        _http.ResponseParser("GET").feed(raw)


def test_parsers_of_one_sampler_share_the_parsed_heads():
    heads = {}
    first, second = _http.ResponseParser("GET", heads), _http.ResponseParser("GET", heads)
    assert first.feed(WITH_LENGTH) is True and second.feed(WITH_LENGTH) is True
    assert len(heads) == 1 and second.body == BODY and second.header("x-multi") == "a, b"
    assert second.content_type == "application/json; charset=utf-8"
    # A head cached from a GET whose body ends at the close: a HEAD answer with it has no body
    # and leaves the connection open.
    _http.ResponseParser("GET", heads).feed(UNTIL_CLOSE)
    head = _http.ResponseParser("HEAD", heads)
    assert head.feed(UNTIL_CLOSE.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n") is True
    assert head.body == b"" and head.will_close is False and len(heads) == 2


def test_cmsg_timestamp_ns():
    option = 35
    stamp = _http.TIMESPEC.pack(1795727197, 123456789)
    assert _http.cmsg_timestamp_ns([(_http.socket.SOL_SOCKET, option, stamp)], option) == 1795727197123456789
    assert _http.cmsg_timestamp_ns([], option) is None
    assert _http.cmsg_timestamp_ns([(_http.socket.SOL_SOCKET, 29, stamp)], option) is None  # another kind
    assert _http.cmsg_timestamp_ns([(_http.socket.SOL_SOCKET, option, b"\0")], option) is None  # truncated


def test_request_plan_sends_what_leanprober_sends():
    headers = {"User-Agent": _http.USER_AGENT, "Accept": "*/*", "Authorization": "Bearer t"}
    address, raw = _http.request_plan("GET", "http://127.0.0.1:8080/health?x=1", headers)
    assert address == ("127.0.0.1", 8080)
    assert raw == (b"GET /health?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept-Encoding: identity\r\n"
                   b"User-Agent: prodready.deploy-health_gate\r\nAccept: */*\r\nAuthorization: Bearer t\r\n"
                   b"Connection: keep-alive\r\n\r\n")
    assert _http.request_plan("GET", "http://app.example.com/", {})[0] == ("app.example.com", 80)
    assert b"\r\nHost: app.example.com\r\n" in _http.request_plan("GET", "http://app.example.com/", {})[1]
    assert b"\r\nContent-Length: 0\r\n" in _http.request_plan("POST", "http://h/", {})[1]
    assert _http.request_plan("HEAD", "http://h/", {"Connection": "close"})[1].count(b"Connection") == 1
    with pytest.raises(ValueError):
        _http.request_plan("GET", "http://h/", {"X-Bad": "a\r\nInjected: 1"})


@pytest.mark.parametrize("urls, follow, applies", [
    (["http://127.0.0.1:8080/health"], False, True),
    (["http://127.0.0.1:8080/health", "http://10.0.0.5/ready"], False, True),
    (["http://127.0.0.1:8080/health", "https://app.example.com/ready"], False, False),
    (["http://127.0.0.1:8080/health"], True, False),
])
def test_loop_applies(monkeypatch, urls, follow, applies):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert _http.loop_applies(urls, follow) is applies
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    assert _http.loop_applies(urls, follow) is False


def test_loop_sampler_judges_like_the_probers_and_keeps_small_verdicts():
    prober = _http.LeanProber("GET", {}, 1.0, _http.build_expectations([200], json_checks={"status": "ok"}))
    sampler = _http.LoopSampler(prober, ["http://127.0.0.1:9/health"])
    url, big = "http://127.0.0.1:9/health", b'{"status": "down", "pad": "%s"}' % (b"x" * _http.VERDICT_BODY_BYTES)
    sampler.unjudged = [(url, 200, "application/json", b'{"status": "ok"}', 1.0, 1.002),
                        (url, 200, "application/json", b'{"status": "ok"}', 2.0, 2.001),
                        (url, 503, "text/plain; charset=latin-1", b'{"status": "down"}', 3.0, 3.5),
                        (url, 200, "application/json", big, 4.0, 4.1)]
    sampler._judge()
    assert [s["ok"] for s in sampler.samples] == [True, True, False, False]
    assert [round(s["latency_ms"], 6) for s in sampler.samples] == [2.0, 1.0, 500.0, 100.0]
    assert sampler.samples[2] == prober._judged(url, 503, '{"status": "down"}', 3.0, 3.5)
    assert sampler.samples[3]["reason"] == 'JSON status is "down", expected "ok"'
    assert len(sampler.verdicts) == 2 and sampler.unjudged == []  # the big body's verdict is not kept
