# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LoopSampler, health_gate's event-loop sampler for plain ``http://`` URLs.

What ``LeanProber.sample()`` uses when no redirect is followed and no proxy applies: one
thread, ``concurrency`` keep-alive connections on non-blocking sockets and a selector,
and the kernel's arrival time of each response (``SO_TIMESTAMPNS``) as its end, so the
time a response waits in the socket buffer while the loop serves other connections is
not counted as the service's latency. The bytes on the wire (the request written by
``http.client``, the incremental response reader) are ``_http_wire``'s, the verdicts
``_http_verdict``'s, the same as the probers' in ``_http``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import platform
import selectors
import socket
import sys
import time

from ansible_collections.prodready.deploy.plugins.module_utils._http_verdict import (
    TIMEOUT_REASON, Judging, charset_of, classify_exception)
from ansible_collections.prodready.deploy.plugins.module_utils._http_wire import (
    TIMESPEC, ResponseParser, cmsg_timestamp_ns, request_plan)

VERDICT_CACHE_SIZE = 256
VERDICT_BODY_BYTES = 16384
RECV_BYTES = 65536
# Linux's SO_TIMESTAMPNS (SO_TIMESTAMPNS_OLD) is 35 on the architectures that take the
# generic socket option numbers; Python's socket module does not export it.
_GENERIC_SOCKET_MACHINES = ("x86", "i386", "i486", "i586", "i686", "amd64", "aarch64", "arm", "ppc", "powerpc",
                            "s390", "riscv", "loongarch")


def _timestamp_option():
    """The socket option that stamps each received packet with its arrival time, or None."""
    option = getattr(socket, "SO_TIMESTAMPNS", None)
    if option is None and sys.platform.startswith("linux") \
            and platform.machine().lower().startswith(_GENERIC_SOCKET_MACHINES):
        option = 35
    if not hasattr(socket.socket, "recvmsg") or not hasattr(socket, "CMSG_SPACE"):
        return None
    return option


SO_TIMESTAMPNS = _timestamp_option()


class _Slot(object):
    """One of LoopSampler's connections: the request in flight and the sockets it keeps."""

    def __init__(self):
        self.sock = None
        self.socks = {}  # (host, port) -> open socket, kept alive for the next request there
        self.watched = None
        self.events = 0
        self.connecting = False
        self.candidates = []
        self.first_error = None
        self.url = None
        self.address = None
        self.request = b""
        self.out = b""
        self.parser = None
        self.reused = False
        self.retried = False
        self.sent_ns = 0
        self.sent_s = 0.0
        self.deadline = None
        self.arrival = None


class LoopSampler(Judging):
    """LeanProber's sampler for plain http:// URLs: one thread, ``concurrency`` keep-alive
    connections on non-blocking sockets, ``selectors.DefaultSelector``.

    Same samples as ``_http.Sampling.sample`` (URLs taken round-robin, ``count`` requests or
    for ``duration`` seconds; judged by the prober's ``_judged``) without threads queueing
    for the interpreter lock. A request's clock starts right before it is sent (before the
    connect when it needs a new connection, as ab counts it) and stops at the kernel's
    arrival time of the bytes that complete its response (``SO_TIMESTAMPNS``; a body that
    ends at the close: its last bytes), so the time a response waits while the loop serves
    other connections is not counted. Without a kernel timestamp, the time it is read.
    Responses are judged after the next request on their connection is sent, outside
    any request's timed interval.

    As LeanProber: a keep-alive connection the server closed while idle is reopened once
    and the request sent again, not counted as an error; ``Connection: close`` (or a body
    that ends at the close) opens a new connection for the next request; ``timeout``
    applies to connecting and to each wait for bytes; transport errors are failed samples
    with the same status_key and reason.
    """

    def __init__(self, prober, urls):
        self.method = prober.method
        self.expectations = prober.expectations
        self.timeout = prober.timeout
        self.plan = {}
        for url in urls:
            if url not in self.plan:
                self.plan[url] = request_plan(prober.method, url, prober.headers)
        self.stamp_option = SO_TIMESTAMPNS
        self.ancillary = socket.CMSG_SPACE(TIMESPEC.size) if self.stamp_option is not None else 0
        self.heads = {}
        self.verdicts = {}
        self.selector = None
        self.samples = []
        self.unjudged = []
        self.ready = []
        self.active = 0
        self.urls = []
        self.count = None
        self.issued = 0
        self.stop_at = None

    def run(self, urls, count=None, duration=None, concurrency=1):
        """Measure: ``count`` requests, or for ``duration`` seconds. Returns ``(samples, elapsed_s)``."""
        self.urls, self.count, self.issued = list(urls), count, 0
        self.samples, self.unjudged, self.ready, self.active = [], [], [], 0
        slots = [_Slot() for dummy in range(max(1, concurrency))]
        self.selector = selectors.DefaultSelector()
        started = time.perf_counter()
        self.stop_at = started + duration if duration else None
        try:
            self.ready.extend(reversed(slots))
            self._loop(slots)
        finally:
            for slot in slots:
                self._unwatch(slot)
                for sock in slot.socks.values():
                    sock.close()
                slot.socks = {}
            self.selector.close()
        return self.samples, time.perf_counter() - started

    def _take(self):
        if self.count is not None and self.issued >= self.count:
            return None
        if self.stop_at is not None and time.perf_counter() >= self.stop_at:
            return None
        self.issued += 1
        return self.urls[(self.issued - 1) % len(self.urls)]

    def _loop(self, slots):
        select = self.selector.select
        ready = self.ready
        next_check = time.perf_counter() + self.timeout
        while True:
            while ready:
                slot = ready.pop()
                url = self._take()
                if url is None:
                    self._unwatch(slot)
                else:
                    self._start(slot, url)
            if self.unjudged:
                self._judge()
            if not self.active:
                return
            now = time.perf_counter()
            if now >= next_check:
                # Every deadline set after this scan is later than the earliest one found.
                next_check = self._expire(slots, now)
                continue
            for key, dummy in select(next_check - now):
                self._event(key.data)

    def _expire(self, slots, now):
        nearest = now + self.timeout
        for slot in slots:
            if slot.deadline is None:
                continue
            if slot.deadline <= now:
                self._discard(slot)
                self.samples.append(self._sample(slot.url, False, None, "timeout", None,
                                                 TIMEOUT_REASON % self.timeout, "", time.perf_counter()))
                self._done(slot)
            elif slot.deadline < nearest:
                nearest = slot.deadline
        return nearest

    def _start(self, slot, url):
        slot.url = url
        slot.address, slot.request = self.plan[url]
        slot.out = slot.request
        slot.parser = ResponseParser(self.method, self.heads)
        slot.retried = False
        slot.arrival = None
        self.active += 1
        slot.sent_ns = time.time_ns()
        slot.sent_s = time.perf_counter()
        slot.deadline = slot.sent_s + self.timeout
        sock = slot.socks.get(slot.address)
        if sock is not slot.sock:
            self._unwatch(slot)  # the previous connection (another host) stays open, idle
        slot.sock = sock
        if sock is None:
            self._connect(slot)
        else:
            slot.reused = True
            self._send(slot)

    def _connect(self, slot):
        slot.reused = False
        slot.first_error = None
        try:
            slot.candidates = socket.getaddrinfo(slot.address[0], slot.address[1], 0, socket.SOCK_STREAM)
        except Exception as exc:  # an unknown host is a failed sample, as in LeanProber
            return self._fail(slot, exc)
        self._next_address(slot)

    def _next_address(self, slot):
        """Connect to the next address of the host (as socket.create_connection tries them in turn)."""
        while slot.candidates:
            family, kind, proto, dummy, sockaddr = slot.candidates.pop(0)
            sock = None
            try:
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.stamp_option is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, self.stamp_option, 1)
                    except OSError:
                        pass  # no timestamps on this socket: its responses end when they are read
                err = sock.connect_ex(sockaddr)
            except OSError as exc:
                if sock is not None:
                    sock.close()
                slot.first_error = slot.first_error or exc
                continue
            if err in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                slot.sock = slot.socks[slot.address] = sock
                slot.connecting = err != 0
                if slot.connecting:
                    self._watch(slot, selectors.EVENT_WRITE)
                else:
                    self._send(slot)
                return
            sock.close()
            slot.first_error = slot.first_error or OSError(err, os.strerror(err))
        self._fail(slot, slot.first_error or OSError("getaddrinfo returns an empty list"))

    def _event(self, slot):
        if slot.connecting:
            err = slot.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._discard(slot)
                slot.first_error = slot.first_error or OSError(err, os.strerror(err))
                return self._next_address(slot)
            slot.connecting = False
            return self._send(slot)
        if slot.out:
            return self._send(slot)
        return self._receive(slot)

    def _send(self, slot):
        try:
            sent = slot.sock.send(slot.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            return self._broken(slot, exc)
        slot.out = slot.out[sent:]
        self._watch(slot, selectors.EVENT_WRITE if slot.out else selectors.EVENT_READ)

    def _receive(self, slot):
        try:
            if self.ancillary:
                data, ancdata, dummy, dummy = slot.sock.recvmsg(RECV_BYTES, self.ancillary)
            else:
                data, ancdata = slot.sock.recv(RECV_BYTES), ()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            return self._broken(slot, exc)
        read_s = time.perf_counter()
        if not data:
            try:
                slot.parser.feed_eof()
            except Exception as exc:
                return self._broken(slot, exc)
            return self._complete(slot)  # a body that ends at the close: timed to its last bytes
        stamp = cmsg_timestamp_ns(ancdata, self.stamp_option) if ancdata else None
        slot.arrival = (stamp, read_s, time.time_ns() if stamp is not None else 0)
        try:
            done = slot.parser.feed(data)
        except Exception as exc:  # a malformed response is a failed sample, as in LeanProber
            return self._fail(slot, exc)
        if done:
            return self._complete(slot)
        slot.deadline = read_s + self.timeout
        return None

    def _complete(self, slot):
        parser = slot.parser
        stamp, read_s, read_ns = slot.arrival
        if stamp is not None and slot.sent_ns <= stamp <= read_ns:
            latency = (stamp - slot.sent_ns) / 1e9
            ended = read_s - (read_ns - stamp) / 1e9  # the arrival on the perf_counter clock
        else:
            latency = read_s - slot.sent_s
            ended = read_s
        if parser.will_close:
            self._discard(slot)
        self.unjudged.append((slot.url, parser.status, parser.content_type, parser.body,
                              ended - latency, ended))
        slot.deadline = None
        self.active -= 1
        url = self._take()  # the next request goes out now, as ab sends it, not after the other events
        if url is None:
            self._unwatch(slot)
        else:
            self._start(slot, url)

    def _judge(self):
        """Judge the responses received. The same status, Content-Type and body always get the
        same verdict: a small body's is kept (a health endpoint answers the same most of the time)."""
        verdicts = self.verdicts
        for url, status, content_type, body, started, ended in self.unjudged:
            key = (status, content_type, body)
            verdict = verdicts.get(key)
            if verdict is None:
                text = ""
                if self.method != "HEAD":
                    text = body.decode(charset_of(content_type), "replace")  # charset_of knows the codec
                verdict = self._verdict(status, text)
                if len(body) <= VERDICT_BODY_BYTES:
                    if len(verdicts) >= VERDICT_CACHE_SIZE:
                        verdicts.clear()
                    verdicts[key] = verdict
            self.samples.append(self._judged(url, status, None, started, ended, verdict))
        self.unjudged = []

    def _broken(self, slot, exc):
        """A transport error: a reused connection the server had closed is reopened once."""
        self._discard(slot)
        if isinstance(exc, (ConnectionResetError, BrokenPipeError)) and slot.reused and not slot.retried:
            slot.retried = True
            slot.deadline = time.perf_counter() + self.timeout
            slot.out = slot.request
            slot.parser = ResponseParser(self.method, self.heads)
            slot.arrival = None
            return self._connect(slot)
        return self._fail(slot, exc)

    def _fail(self, slot, exc):
        self._discard(slot)
        key, reason = classify_exception(exc)
        self.samples.append(self._sample(slot.url, False, None, key, None, reason, "", time.perf_counter()))
        self._done(slot)

    def _done(self, slot):
        slot.deadline = None
        self.active -= 1
        self.ready.append(slot)

    def _watch(self, slot, events):
        sock = slot.sock
        if slot.watched is not sock:
            self._unwatch(slot)
            self.selector.register(sock, events, slot)
        elif slot.events != events:
            self.selector.modify(sock, events, slot)
        slot.watched, slot.events = sock, events

    def _unwatch(self, slot):
        if slot.watched is not None:
            self.selector.unregister(slot.watched)
            slot.watched = None

    def _discard(self, slot):
        """Close the slot's current connection (the next request there opens a new one)."""
        if slot.sock is None:
            return
        if slot.watched is slot.sock:
            self._unwatch(slot)
        if slot.socks.get(slot.address) is slot.sock:
            del slot.socks[slot.address]
        slot.sock.close()
        slot.sock = None
        slot.connecting = False
