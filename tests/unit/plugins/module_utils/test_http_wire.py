"""HTTP/1.x on the wire (plugins/module_utils/_http_wire): request bytes, the incremental response reader."""

import http.client as http_client
import socket
from urllib.parse import urlsplit

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _http_wire as wire
from ansible_collections.prodready.deploy.plugins.module_utils._http import USER_AGENT
from ansible_collections.prodready.deploy.plugins.module_utils._http_verdict import classify_exception


@pytest.mark.parametrize("url, expected", [
    ("http://h/health", "/health"), ("http://h", "/"), ("http://h:8/a/b?x=1&y=2", "/a/b?x=1&y=2"),
    ("http://h/?q", "/?q"),
])
def test_request_target(url, expected):
    assert wire.request_target(urlsplit(url)) == expected


# ------------------------------------------------------------------ the response reader

BODY = b'{"status": "ok", "version": "1.4.0"}'
WITH_LENGTH = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n"
               b"X-Multi: a\r\nx-multi: b\r\nX-Folded: one\r\n  two\r\n\r\n%s" % (len(BODY), BODY))
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
           b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 21\r\n\r\n")
UNTIL_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall good until the end"


def _split_feeds(raw, method="GET"):
    """A parser per split position: (parser, done after the first part, done after the second)."""
    for at in range(1, len(raw)):
        parser = wire.ResponseParser(method)
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
        parser = wire.ResponseParser("GET")
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
    parser = wire.ResponseParser(method)
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
    parser = wire.ResponseParser("GET")
    assert parser.feed(raw) is True
    assert parser.body == b"ok" and parser.will_close is will_close


def test_parser_skips_interim_responses():
    parser = wire.ResponseParser("POST")
    assert parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n") is False
    assert parser.feed(b"x") is True
    assert parser.status == 201 and parser.body == b"x"


def test_parser_without_a_usable_length_reads_until_the_close():
    parser = wire.ResponseParser("GET")
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\nabc") is False
    assert parser.feed_eof() is True and parser.body == b"abc"


@pytest.mark.parametrize("raw, error, text", [
    (b"", "RemoteDisconnected", "Remote end closed connection without response"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "IncompleteRead", "IncompleteRead(3 bytes read, 7 more expected)"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWi", "IncompleteRead", "IncompleteRead(2 bytes read)"),
    (b"HTTP/1.1 200 O", "IncompleteRead", "IncompleteRead(14 bytes read)"),
])
def test_parser_cut_responses(raw, error, text):
    parser = wire.ResponseParser("GET")
    if raw:
        assert parser.feed(raw) is False
    with pytest.raises(getattr(http_client, error)) as err:
        parser.feed_eof()
    assert str(err.value) == text


def test_parser_cut_responses_are_classified_as_leanprober_does():
    parser = wire.ResponseParser("GET")
    with pytest.raises(Exception) as err:
        parser.feed_eof()
    assert classify_exception(err.value) == (
        "connection_error", "connection failed: Remote end closed connection without response")


@pytest.mark.parametrize("raw, error", [
    (b"SMTP ready\r\n\r\n", "BadStatusLine"),
    (b"HTTP/1.1 abc OK\r\n\r\n", "BadStatusLine"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "IncompleteRead"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70000, "LineTooLong"),
])
def test_parser_malformed_responses(raw, error):
    with pytest.raises(getattr(http_client, error)):
        wire.ResponseParser("GET").feed(raw)


def test_parsers_of_one_sampler_share_the_parsed_heads():
    heads = {}
    first, second = wire.ResponseParser("GET", heads), wire.ResponseParser("GET", heads)
    assert first.feed(WITH_LENGTH) is True and second.feed(WITH_LENGTH) is True
    assert len(heads) == 1 and second.body == BODY and second.header("x-multi") == "a, b"
    assert second.content_type == "application/json; charset=utf-8"
    # A head cached from a GET whose body ends at the close: a HEAD answer with it has no body
    # and leaves the connection open.
    wire.ResponseParser("GET", heads).feed(UNTIL_CLOSE)
    head = wire.ResponseParser("HEAD", heads)
    assert head.feed(UNTIL_CLOSE.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n") is True
    assert head.body == b"" and head.will_close is False and len(heads) == 2


def test_cmsg_timestamp_ns():
    option = 35
    stamp = wire.TIMESPEC.pack(1795727197, 123456789)
    assert wire.cmsg_timestamp_ns([(socket.SOL_SOCKET, option, stamp)], option) == 1795727197123456789
    assert wire.cmsg_timestamp_ns([], option) is None
    assert wire.cmsg_timestamp_ns([(socket.SOL_SOCKET, 29, stamp)], option) is None  # another kind
    assert wire.cmsg_timestamp_ns([(socket.SOL_SOCKET, option, b"\0")], option) is None  # truncated


def test_request_plan_sends_what_leanprober_sends():
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Authorization": "Bearer t"}
    address, raw = wire.request_plan("GET", "http://127.0.0.1:8080/health?x=1", headers)
    assert address == ("127.0.0.1", 8080)
    assert raw == (b"GET /health?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept-Encoding: identity\r\n"
                   b"User-Agent: prodready.deploy-health_gate\r\nAccept: */*\r\nAuthorization: Bearer t\r\n"
                   b"Connection: keep-alive\r\n\r\n")
    assert wire.request_plan("GET", "http://app.example.com/", {})[0] == ("app.example.com", 80)
    assert b"\r\nHost: app.example.com\r\n" in wire.request_plan("GET", "http://app.example.com/", {})[1]
    assert b"\r\nContent-Length: 0\r\n" in wire.request_plan("POST", "http://h/", {})[1]
    assert wire.request_plan("HEAD", "http://h/", {"Connection": "close"})[1].count(b"Connection") == 1
    with pytest.raises(ValueError):
        wire.request_plan("GET", "http://h/", {"X-Bad": "a\r\nInjected: 1"})
