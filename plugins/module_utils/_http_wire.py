# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP/1.x on the wire, for LoopSampler: the pure half of _http_loop (no sockets here).

- ``request_plan``: the bytes of a request, written once per URL by ``http.client``
  itself into a stand-in socket, so they are those LeanProber sends;
- ``ResponseParser``: one response read incrementally from whatever bytes a socket
  gives (status line, headers, a body delimited by its length, chunks or the close),
  raising what ``http.client`` raises on malformed or cut responses;
- ``cmsg_timestamp_ns``: the kernel's arrival time of received bytes, from the
  ancillary data of ``recvmsg()`` (``SO_TIMESTAMPNS``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import struct

from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.parse import urlsplit

MAX_HEAD_BYTES = 65536
HEAD_CACHE_SIZE = 256
NO_BODY_STATUSES = (204, 304)
TIMESPEC = struct.Struct("@ll")


def cmsg_timestamp_ns(ancdata, option):
    """The kernel's arrival time (ns since the epoch, CLOCK_REALTIME) in the ancillary data
    of ``recvmsg()``, or None when there is none (pure)."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == option and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack(data[:TIMESPEC.size])
            return seconds * 1000000000 + nanoseconds
    return None


def request_target(parts):
    """The request-target (path and query) of a split URL: ``/health?x=1``, ``/`` for none."""
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return target


class _Capture(object):
    """Stands in for http.client's socket and keeps the bytes it would send."""

    def __init__(self):
        self.chunks = []

    def sendall(self, data):
        self.chunks.append(bytes(data))


def request_plan(method, url, headers):
    """``((host, port), request bytes)`` of a request to ``url``.

    The bytes are written by ``http.client`` itself, so they are those LeanProber sends
    (Host, ``Accept-Encoding: identity``, ``Content-Length: 0`` for a POST without body,
    the given headers in order), plus ``Connection: keep-alive``; ``(host, port)`` is where
    it connects. A header or URL http.client refuses raises ValueError.
    """
    parts = urlsplit(url)
    conn = http_client.HTTPConnection(parts.netloc)
    conn.sock = capture = _Capture()
    headers = dict(headers or {})
    if not any(name.lower() == "connection" for name in headers):
        headers["Connection"] = "keep-alive"
    conn.request(method, request_target(parts), headers=headers)
    return (conn.host, conn.port), b"".join(capture.chunks)


class ResponseParser(object):
    """One HTTP/1.x response, read incrementally from the bytes a socket gives (pure, no I/O).

    ``feed(data)`` returns True once the response is complete; ``feed_eof()`` says the
    server closed the connection and returns True when that ends a body without a length.
    Then ``status``, ``header(name)``, ``body`` and ``will_close`` (the connection cannot
    carry another request) are set. Interim 1xx responses are skipped; HEAD answers and
    204/304 have no body; a body is delimited by ``Transfer-Encoding: chunked`` (trailers
    read and dropped), by ``Content-Length``, or else by the close. Malformed or cut
    responses raise what http.client raises (BadStatusLine, IncompleteRead,
    RemoteDisconnected, LineTooLong). Headers are looked up in the head's text when asked
    for (a response is read for a few of them only). ``heads``, a dict shared by the parsers
    of one sampler, keeps the parsed heads: a server repeats the same head (nginx's changes
    once a second, with its Date), and parsing one costs more than the rest of a request.
    """

    def __init__(self, method, heads=None):
        self.method = method
        self._heads = heads
        self.status = None
        self.content_type = None
        self.body = b""
        self.will_close = False
        self.done = False
        self.received = 0
        self._buffer = b""
        self._state = "head"  # head, length, chunk_size, chunk_data, chunk_end, trailer, close
        self._remaining = 0
        self._parts = []
        self._head_text = self._head_lower = ""

    def header(self, name):
        """The value of header ``name`` (any case; repeated ones joined with ``, ``), or None."""
        return _header_value(self._head_text, self._head_lower, name.lower())

    def feed(self, data):
        """Add received bytes; True once the response is complete."""
        self.received += len(data)
        self._buffer = self._buffer + data if self._buffer else data
        while not self.done and self._step():
            pass
        return self.done

    def feed_eof(self):
        """The server closed the connection: True if that completes the response, else raise."""
        if self.done:
            return True
        if self._state == "close":
            self._finish()
            return True
        if not self.received:
            raise http_client.RemoteDisconnected("Remote end closed connection without response")
        if self._state == "length":
            raise http_client.IncompleteRead(b"".join(self._parts), self._remaining)
        raise http_client.IncompleteRead(b"".join(self._parts) or self._buffer)

    def _finish(self):
        self.body = b"".join(self._parts)
        self._parts = []
        if self._buffer:
            self.will_close = True  # bytes after the response: the connection cannot be trusted
        self.done = True
        return False

    def _step(self):
        """Parse what the buffer holds in the current state; False when more bytes are needed."""
        state = self._state
        if state == "head":
            return self._head()
        buf = self._buffer
        if state == "close":
            self._parts.append(buf)
            self._buffer = b""
            return False
        if state in ("length", "chunk_data"):
            if not buf:
                return False
            taken = buf[:self._remaining]
            self._parts.append(taken)
            self._remaining -= len(taken)
            self._buffer = buf[len(taken):]
            if self._remaining:
                return False
            if state == "length":
                return self._finish()
            self._state = "chunk_end"
            return True
        newline = buf.find(b"\n")
        if newline < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise http_client.LineTooLong("chunk size" if state == "chunk_size" else "trailer line")
            return False
        line = buf[:newline].rstrip(b"\r")
        self._buffer = buf[newline + 1:]
        if state == "chunk_size":
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                size = -1
            if size < 0:
                raise http_client.IncompleteRead(b"".join(self._parts))
            self._state = "chunk_data" if size else "trailer"
            self._remaining = size
        elif state == "chunk_end":
            if line:
                raise http_client.IncompleteRead(b"".join(self._parts))
            self._state = "chunk_size"
        elif not line:  # trailer: an empty line ends the response
            return self._finish()
        return True

    def _head(self):
        buf = self._buffer
        # The head ends at the first empty line: CRLF CRLF, or bare LF LF as http.client accepts.
        end, skip = buf.find(b"\n\r\n"), 3
        bare = buf.find(b"\n\n", 0, end + 1) if end >= 0 else buf.find(b"\n\n")
        if bare >= 0:
            end, skip = bare, 2
        if end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise http_client.LineTooLong("header line")
            return False
        head = buf[:end]
        self._buffer = buf[end + skip:]
        heads = self._heads
        parsed = heads.get(head) if heads is not None else None
        if parsed is None:
            parsed = parse_head(head)
            if heads is not None:
                if len(heads) >= HEAD_CACHE_SIZE:
                    heads.clear()
                heads[head] = parsed
        status, self._head_text, self._head_lower, self.will_close, framing, self.content_type = parsed
        if 100 <= status < 200 and status != 101:
            return True  # interim response (100 Continue, 103 Early Hints): the real one follows
        self.status = status
        if self.method == "HEAD" or status < 200 or status in NO_BODY_STATUSES:
            return self._finish()
        if framing == "chunked":
            self._state = "chunk_size"
            return True
        if framing is None:  # no usable length (as http.client): the body ends at the close
            self.will_close = True
            self._state = "close"
            return True
        if framing == 0:
            return self._finish()
        self._state = "length"
        self._remaining = framing
        return True


def _header_value(text, lower, name):
    """The value of header ``name`` (lower case) in a response head's text, repeated ones
    joined with ``, ``, folded lines unfolded; None if absent (pure)."""
    key = "\n" + name + ":"
    values = []
    start = lower.find(key)
    while start >= 0:
        end = lower.find("\n", start + 1)
        end = len(text) if end < 0 else end
        value = text[start + len(key):end].strip()
        while end < len(text) and text[end + 1:end + 2] in (" ", "\t"):  # folded continuation lines
            following = text.find("\n", end + 1)
            following = len(text) if following < 0 else following
            value = (value + " " + text[end + 1:following].strip()).strip()
            end = following
        values.append(value)
        start = lower.find(key, end)
    return ", ".join(values) if values else None


def parse_head(head):
    """``(status, text, lower text, will_close, framing, content_type)`` of a response head
    (the bytes before its empty line); framing is ``"chunked"``, the Content-Length, or None
    when the body ends at the close. Raises BadStatusLine (pure)."""
    text = head.decode("iso-8859-1")
    newline = text.find("\n")
    status_line = (text if newline < 0 else text[:newline]).rstrip("\r")
    words = status_line.split(None, 2)
    try:
        if len(words) < 2 or not words[0].startswith("HTTP/"):
            raise ValueError(status_line)
        status = int(words[1])
        if not 100 <= status <= 999:
            raise ValueError(status_line)
    except ValueError:
        raise http_client.BadStatusLine(status_line)
    lower = text.lower()
    connection = [token.strip() for token in (_header_value(text, lower, "connection") or "").lower().split(",")]
    if words[0] == "HTTP/1.0":
        will_close = "keep-alive" not in connection and _header_value(text, lower, "keep-alive") is None
    else:
        will_close = "close" in connection or status == 101
    framing = None
    if (_header_value(text, lower, "transfer-encoding") or "").lower().rsplit(",", 1)[-1].strip() == "chunked":
        framing = "chunked"
    else:
        values = set(value.strip() for value in (_header_value(text, lower, "content-length") or "").split(",")
                     if value.strip())
        if len(values) == 1:
            try:
                framing = int(values.pop())
            except ValueError:
                framing = None
            if framing is not None and framing < 0:
                framing = None
    return status, text, lower, will_close, framing, _header_value(text, lower, "content-type")
