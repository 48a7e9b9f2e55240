# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP probing for health_gate.

Two halves:

- pure helpers (no I/O): URL validation, the JSON path syntax (``checks.redis.status``,
  ``items[0].id``), judging one response against the expectations, aggregating samples;
- two adapters with the same interface (``probe``, ``wait_until_up``, ``sample``, ``close``):
  ``LeanProber``, the default, on the standard library's ``http.client`` with one
  persistent connection per thread and host (about 5x less CPU per request than
  ``requests``, so the threads measure the service rather than their own client), and
  ``Prober`` over ``requests``, used when an environment proxy applies to a URL.
  ``make_prober()`` picks one. Both time a request with ``time.perf_counter`` from
  sending it until its whole body is read;
- ``LoopSampler``, what ``LeanProber.sample()`` uses for plain ``http://`` URLs without
  redirects: one thread, ``concurrency`` keep-alive connections on non-blocking sockets
  and a selector, a small incremental response reader (``ResponseParser``), and the
  kernel's arrival time of each response (``SO_TIMESTAMPNS``) as its end, so the time a
  response waits in the socket buffer while the loop serves other connections is not
  counted as the service's latency.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import codecs
import errno
import json
import os
import platform
import re
import selectors
import socket
import ssl
import struct
import sys
import threading
import time
import traceback

from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.parse import urljoin, urlsplit
from ansible.module_utils.six.moves.urllib.request import getproxies, proxy_bypass

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._stats import (
    latency_summary, trailing_streak)

try:
    import certifi
except ImportError:  # pragma: no cover - certifi comes with requests
    certifi = None

REQUESTS_IMPORT_ERROR = None
try:
    import requests
    from requests.adapters import HTTPAdapter
    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - depends on the controller's environment
    requests = None
    HTTPAdapter = object
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

BODY_EXCERPT_CHARS = 200
SAMPLING_SWITCH_INTERVAL_S = 0.0001
_SEGMENT = re.compile(r"^(?P<key>[A-Za-z0-9_\-]+)?(?P<idx>(\[\d+\])*)$")
_MISSING = object()


# ---------------------------------------------------------------- pure helpers

def validate_url(url, option="url"):
    """Raise ProdreadyError unless ``url`` is an absolute http(s) URL with a host and valid port."""
    if not isinstance(url, str) or not url.strip():
        raise ProdreadyError("%s must be a non-empty http:// or https:// URL, got %r" % (option, url))
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise ProdreadyError("%s %r is not a valid URL: %s" % (option, url, exc))
    if parts.scheme not in ("http", "https"):
        raise ProdreadyError("%s %r is not a valid URL: the scheme must be http or https, got %r"
                             % (option, url, parts.scheme or "(none)"))
    if not parts.hostname:
        raise ProdreadyError("%s %r is not a valid URL: it has no host" % (option, url))
    if re.search(r"\s", url):
        raise ProdreadyError("%s %r is not a valid URL: it contains whitespace" % (option, url))


def parse_json_path(path):
    """``checks.redis.status`` / ``items[0].id`` / ``$.a.b`` -> list of keys (str) and indexes (int).

    The syntax is deliberately small: dotted object keys made of letters, digits, ``_`` and
    ``-``, and ``[N]`` list indexes; a numeric dotted segment (``items.0``) also indexes a
    list. Anything else (wildcards, filters, quotes, empty segments) is rejected with a
    message, rather than matching nothing and failing later for an unclear reason.
    """
    hint = "use dotted keys and [N] indexes, e.g. checks.redis.status or items[0].id"
    if not isinstance(path, str) or not path:
        raise ProdreadyError("JSON path %r is empty: %s" % (path, hint))
    text = path[2:] if path.startswith("$.") else path
    segments = []
    for raw in text.split("."):
        match = _SEGMENT.match(raw)
        if not raw or not match or (match.group("key") is None and not match.group("idx")):
            raise ProdreadyError("JSON path %r has unsupported syntax at %r: %s" % (path, raw, hint))
        if match.group("key") is not None:
            segments.append(match.group("key"))
        for index in re.findall(r"\[(\d+)\]", match.group("idx")):
            segments.append(int(index))
    return segments


def lookup_json(document, segments):
    """Value at ``segments`` in a decoded JSON document, or the module's _MISSING marker."""
    node = document
    for segment in segments:
        if isinstance(segment, int) or (isinstance(node, list) and segment.isdigit()):
            index = int(segment)
            if not isinstance(node, list) or index >= len(node):
                return _MISSING
            node = node[index]
        elif isinstance(node, dict) and segment in node:
            node = node[segment]
        else:
            return _MISSING
    return node


def _canonical(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def values_match(actual, expected):
    """Equal as JSON values, or equal once written as text (``"1.4"`` matches ``1.4``, ``"true"`` True)."""
    if actual == expected and type(actual) is type(expected):
        return True
    if isinstance(actual, (dict, list)) or isinstance(expected, (dict, list)):
        return actual == expected
    return _canonical(actual) == _canonical(expected)


def body_excerpt(text, limit=BODY_EXCERPT_CHARS):
    """First ``limit`` characters of a body with whitespace runs collapsed, ``...`` if cut."""
    if not text:
        return ""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[:limit] + "..."


def build_expectations(expected_status, json_checks=None, body_regex=None, expect_version=None,
                       version_path="version"):
    """Validate the response expectations once, before any request (bad input fails early)."""
    statuses = set()
    for status in expected_status or [200]:
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ProdreadyError("expected_status must list HTTP statuses between 100 and 599, got %r" % (status,))
        statuses.add(status)
    checks = []
    for path, expected in (json_checks or {}).items():
        try:
            checks.append((path, parse_json_path(path), expected))
        except ProdreadyError as exc:
            raise ProdreadyError("json: %s" % exc)
    regex = None
    if body_regex is not None:
        try:
            regex = re.compile(body_regex)
        except re.error as exc:
            raise ProdreadyError("body_regex %r is not a valid regular expression: %s" % (body_regex, exc))
    version_segments = None
    if expect_version is not None:
        try:
            version_segments = parse_json_path(version_path)
        except ProdreadyError as exc:
            raise ProdreadyError("version_path: %s" % exc)
    return dict(statuses=statuses, json=checks, regex=regex, body_regex=body_regex,
                expect_version=None if expect_version is None else str(expect_version),
                version_path=version_path, version_segments=version_segments)


def judge_response(status, text, expectations):
    """None when a response meets every expectation, else why it does not (first reason found)."""
    if status not in expectations["statuses"]:
        return "status %s not in expected %s" % (status, sorted(expectations["statuses"]))
    document = _MISSING
    if expectations["json"] or expectations["expect_version"] is not None:
        try:
            document = json.loads(text) if text else _MISSING
        except ValueError:
            document = _MISSING
    if expectations["json"]:
        if document is _MISSING:
            return "body is not JSON, cannot check %s" % ", ".join(check[0] for check in expectations["json"])
        for path, segments, expected in expectations["json"]:
            actual = lookup_json(document, segments)
            if actual is _MISSING:
                return "JSON %s is missing, expected %s" % (path, json.dumps(expected))
            if not values_match(actual, expected):
                return "JSON %s is %s, expected %s" % (path, json.dumps(actual), json.dumps(expected))
    if expectations["regex"] is not None and not expectations["regex"].search(text or ""):
        return "body does not match body_regex %r" % expectations["body_regex"]
    wanted = expectations["expect_version"]
    if wanted is not None:
        if isinstance(document, dict):
            actual = lookup_json(document, expectations["version_segments"])
            if actual is _MISSING:
                return "version field %s is missing, expected version %s" % (expectations["version_path"], wanted)
            actual = _canonical(actual)
        else:
            actual = (text or "").strip()
        if actual != wanted:
            return "version is %s, expected %s" % (json.dumps(actual), json.dumps(wanted))
    return None


def aggregate(samples):
    """Figures of a list of samples (dicts with ok, status_key, latency_ms, end, ...).

    Latency percentiles cover every request that got an HTTP response, failed checks
    included (a slow 500 is still slow); connection errors and timeouts have no latency.
    """
    ordered = sorted(samples, key=lambda s: s["end"])
    errors = sum(1 for s in ordered if not s["ok"])
    counts = {}
    for sample in ordered:
        counts[sample["status_key"]] = counts.get(sample["status_key"], 0) + 1
    latencies = [s["latency_ms"] for s in ordered if s["latency_ms"] is not None]
    first = next((s for s in ordered if not s["ok"]), None)
    return dict(
        samples=len(ordered),
        errors=errors,
        error_rate=round(errors / float(len(ordered)), 6) if ordered else 0.0,
        status_counts=counts,
        latency_ms=latency_summary(latencies),
        consecutive_successes=trailing_streak([s["ok"] for s in ordered]),
        first_failure=failure_record(first) if first else None,
    )


def failure_record(sample):
    """The public ``first_failure`` dict of a failed sample."""
    return dict(url=sample["url"], method=sample["method"], status=sample["status"],
                reason=sample["reason"], body_excerpt=sample["body_excerpt"])


# ---------------------------------------------------------------- adapter (I/O)

class _Judging(object):
    """The sample dicts, shared by the probers and LoopSampler (they set method and expectations)."""

    method = "GET"
    expectations = None

    def _sample(self, url, ok, status, status_key, latency_ms, reason, excerpt, ended):
        return dict(url=url, method=self.method, ok=ok, status=status, status_key=status_key,
                    latency_ms=latency_ms, reason=reason, body_excerpt=excerpt, end=ended)

    def _verdict(self, status, text):
        """``(reason, body excerpt)`` of a response: ``(None, "")`` when it meets the expectations."""
        reason = judge_response(status, text, self.expectations)
        return reason, body_excerpt(text) if reason else ""

    def _judged(self, url, status, text, started, ended, verdict=None):
        reason, excerpt = verdict or self._verdict(status, text)
        return self._sample(url, reason is None, status, str(status), (ended - started) * 1000.0,
                            reason, excerpt, ended)


class _Sampling(_Judging):
    """The startup wait and the concurrent sampler, shared by both probers (they define probe())."""

    def wait_until_up(self, urls, wait_timeout, wait_interval):
        """Probe every URL until each has answered one good response, or the timeout passes.

        Returns ``(waited_s, None)`` when all are up, ``(waited_s, last_failed_sample)`` if not.
        The interval is a float: 0.2 s between attempts is 0.2 s, not rounded to a second.
        """
        started = time.perf_counter()
        deadline = started + wait_timeout
        pending = list(urls)
        last = None
        while pending:
            sample = self.probe(pending[0])
            if sample["ok"]:
                pending.pop(0)
                continue
            last = sample
            now = time.perf_counter()
            if now >= deadline:
                return now - started, last
            time.sleep(max(0.0, min(wait_interval, deadline - now)))
        return time.perf_counter() - started, None

    def sample(self, urls, count=None, duration=None, concurrency=1):
        """Measure with ``concurrency`` threads: ``count`` requests, or for ``duration`` seconds.

        URLs are taken round-robin. Returns ``(samples, elapsed_s)``.
        """
        lock = threading.Lock()
        state = dict(next=0)
        samples = []
        started = time.perf_counter()
        deadline = started + duration if duration else None

        def take():
            with lock:
                index = state["next"]
                if count is not None and index >= count:
                    return None
                if deadline is not None and time.perf_counter() >= deadline:
                    return None
                state["next"] = index + 1
                return urls[index % len(urls)]

        def worker():
            while True:
                url = take()
                if url is None:
                    return
                result = self.probe(url)
                with lock:
                    samples.append(result)

        threads = [threading.Thread(target=worker) for dummy in range(max(1, concurrency))]
        # A thread whose response has arrived waits for the interpreter lock up to the
        # switch interval (5 ms by default) before it can stop its clock: that wait would be
        # measured as the service's latency. 0.1 ms keeps it small (measured at c=8 on a
        # static file: p50 21-27 ms -> 4-5 ms, 3x the throughput); restored afterwards.
        switch_interval = sys.getswitchinterval()
        if concurrency > 1:
            sys.setswitchinterval(min(switch_interval, SAMPLING_SWITCH_INTERVAL_S))
        try:
            for thread in threads:
                thread.daemon = True
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(switch_interval)
        return samples, time.perf_counter() - started


class Prober(_Sampling):
    """Sends requests through one pooled ``requests.Session`` and judges each response.

    Used for URLs behind an environment proxy (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), which
    requests resolves; LeanProber serves every other case.
    """

    def __init__(self, method, headers, timeout, expectations, concurrency=1, verify=True,
                 cert=None, follow_redirects=False, pool_hosts=1):
        if not HAS_REQUESTS:
            raise ProdreadyError("the requests Python library is required", exception=REQUESTS_IMPORT_ERROR)
        self.method = method
        self.timeout = timeout
        self.expectations = expectations
        self.verify = verify
        self.cert = cert
        self.follow_redirects = follow_redirects
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        # Proxy settings from the environment (HTTP(S)_PROXY, NO_PROXY) are resolved once per
        # URL below instead of on every request: requests re-reads os.environ and netrc per
        # call, which cost ~3x the request itself on a fast local endpoint.
        self.session.trust_env = False
        if verify is False:
            # The user chose not to verify (validate_certs: false); one warning per request
            # on stderr would only bury the gate's own output.
            import urllib3
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._prepared = {}
        self._proxies = {}
        self._prepare_lock = threading.Lock()
        # One connection per thread and host: the pool never makes a thread wait for a socket.
        adapter = HTTPAdapter(pool_connections=max(1, pool_hosts), pool_maxsize=max(1, concurrency),
                              max_retries=0, pool_block=False)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self):
        self.session.close()

    def _prepare(self, url):
        """The PreparedRequest and proxies of ``url``, built once and copied per request."""
        with self._prepare_lock:
            if url not in self._prepared:
                self._prepared[url] = self.session.prepare_request(requests.Request(self.method, url))
                self._proxies[url] = requests.utils.get_environ_proxies(url)
            return self._prepared[url].copy(), self._proxies[url]

    def probe(self, url):
        """One request -> sample dict (ok, status, status_key, latency_ms, reason, body_excerpt, end)."""
        status = None
        try:
            prepared, proxies = self._prepare(url)
        except Exception as exc:
            key, reason = classify_exception(exc)
            return self._sample(url, False, None, key, None, reason, "", time.perf_counter())
        started = time.perf_counter()
        try:
            response = self.session.send(prepared, timeout=self.timeout, verify=self.verify, cert=self.cert,
                                         proxies=proxies, allow_redirects=self.follow_redirects)
            text = response.text if self.method != "HEAD" else ""
            ended = time.perf_counter()
            status = response.status_code
            reason = judge_response(status, text, self.expectations)
            return self._sample(url, reason is None, status, str(status), (ended - started) * 1000.0,
                                reason, body_excerpt(text) if reason else "", ended)
        except Exception as exc:  # every transport failure is a failed sample, not a crash
            ended = time.perf_counter()
            key, reason = classify_exception(exc)
            return self._sample(url, False, None, key, None, reason, "", ended)


REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 30
USER_AGENT = "prodready.deploy-health_gate"
TIMEOUT_REASON = "timed out: no answer within timeout=%s s"


def charset_of(content_type, default="utf-8"):
    """The ``charset=`` of a Content-Type header value, else ``default`` (pure); ``default``
    too when Python knows no such codec (a server's typo must not crash the judging)."""
    match = re.search(r"charset=[\"']?([A-Za-z0-9._:-]+)", content_type or "", re.IGNORECASE)
    if not match:
        return default
    try:
        return codecs.lookup(match.group(1)).name
    except LookupError:
        return default


def redirect_method(method, status):
    """The method a redirected request uses: 303 turns any method but HEAD into GET, and
    301/302 turn POST into GET, as browsers and requests do; 307/308 keep it (pure)."""
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method


def request_target(parts):
    """The request-target (path and query) of a split URL: ``/health?x=1``, ``/`` for none."""
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return target


def environment_proxy(url):
    """The proxy the environment sets for ``url`` (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY minus
    NO_PROXY), or None."""
    parts = urlsplit(url)
    proxies = getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    if HAS_REQUESTS:
        # requests' NO_PROXY rules (CIDR blocks, ports) are the ones its Prober follows.
        return requests.utils.get_environ_proxies(url).get(parts.scheme) or None
    return None if proxy_bypass(parts.hostname) else proxy


def tls_context(verify=True, cert=None):
    """An ``ssl.SSLContext`` for ``verify`` (True, False or a CA bundle path) and ``cert``
    (a PEM path or a ``(cert, key)`` pair), matching what requests would check.

    ``verify=True`` trusts the system store and certifi's bundle (requests' default), so a
    certificate requests accepted is still accepted.
    """
    try:
        if verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif verify is True:
            context = ssl.create_default_context()
            if certifi is not None:
                context.load_verify_locations(certifi.where())
        else:
            context = ssl.create_default_context(cafile=verify)
    except (IOError, OSError, ssl.SSLError) as exc:
        raise ProdreadyError("ca_path %r cannot be used as a CA bundle: %s" % (verify, exc))
    if cert:
        certfile, keyfile = cert if isinstance(cert, tuple) else (cert, None)
        try:
            context.load_cert_chain(certfile, keyfile)
        except (IOError, OSError, ssl.SSLError) as exc:
            raise ProdreadyError("client_cert %r / client_key %r cannot be loaded: %s" % (certfile, keyfile, exc))
    return context


class LeanProber(_Sampling):
    """Sends requests with ``http.client``: one persistent connection per thread and host.

    Same interface and samples as Prober. The time of a request is measured around the
    request only (send, status line, headers, whole body), never around judging it; a
    keep-alive connection the server closed while idle is reopened once, not counted as
    an error. Redirects are followed like requests does when ``follow_redirects`` is set
    (``Authorization`` is dropped when the host changes).
    """

    def __init__(self, method, headers, timeout, expectations, verify=True, cert=None,
                 follow_redirects=False):
        self.method = method
        self.timeout = timeout
        self.expectations = expectations
        self.follow_redirects = follow_redirects
        self.headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
        self.headers.update(headers or {})
        self._context = None
        self._tls = (verify, cert)
        self._local = threading.local()
        self._all = []
        self._all_lock = threading.Lock()

    def prepare_tls(self):
        """Build the TLS context now (a bad CA bundle or client certificate fails here)."""
        if self._context is None:
            self._context = tls_context(*self._tls)

    def _connection(self, scheme, netloc, fresh=False):
        """This thread's connection to ``scheme://netloc``; ``fresh`` replaces it by a new one."""
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        key = (scheme, netloc)
        conn = pool.get(key)
        if conn is not None and not fresh:
            return conn, True
        if conn is not None:
            conn.close()
        if scheme == "https":
            self.prepare_tls()
            conn = http_client.HTTPSConnection(netloc, timeout=self.timeout, context=self._context)
        else:
            conn = http_client.HTTPConnection(netloc, timeout=self.timeout)
        pool[key] = conn
        with self._all_lock:
            self._all.append(conn)
        return conn, False

    def _drop(self, scheme, netloc):
        conn = self._local.pool.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def _exchange(self, method, parts, headers):
        """One request/response on this thread's connection -> (status, headers, body bytes)."""
        conn, reused = self._connection(parts.scheme, parts.netloc)
        for attempt in (1, 2):
            try:
                conn.request(method, request_target(parts), headers=headers)
                response = conn.getresponse()
                body = response.read()
                if response.will_close:
                    self._drop(parts.scheme, parts.netloc)
                return response.status, response.getheader("Content-Type"), response.getheader("Location"), body
            except (http_client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: reopen it once.
                if not reused or attempt == 2:
                    self._drop(parts.scheme, parts.netloc)
                    raise
                conn, reused = self._connection(parts.scheme, parts.netloc, fresh=True)
            except Exception:
                self._drop(parts.scheme, parts.netloc)
                raise

    def probe(self, url):
        """One request -> sample dict (ok, status, status_key, latency_ms, reason, body_excerpt, end)."""
        method, headers = self.method, self.headers
        parts = urlsplit(url)
        started = time.perf_counter()
        try:
            for dummy in range(MAX_REDIRECTS + 1):
                status, content_type, location, body = self._exchange(method, parts, headers)
                if not (self.follow_redirects and status in REDIRECT_STATUSES and location):
                    break
                target = urlsplit(urljoin(parts.geturl(), location))
                if target.hostname != parts.hostname and "Authorization" in headers:
                    headers = dict((k, v) for k, v in headers.items() if k != "Authorization")
                method, parts = redirect_method(method, status), target
            else:
                raise http_client.HTTPException("more than %d redirects" % MAX_REDIRECTS)
            ended = time.perf_counter()
        except socket.timeout:
            return self._sample(url, False, None, "timeout", None, TIMEOUT_REASON % self.timeout, "",
                                time.perf_counter())
        except Exception as exc:  # every transport failure is a failed sample, not a crash
            ended = time.perf_counter()
            key, reason = classify_exception(exc)
            return self._sample(url, False, None, key, None, reason, "", ended)
        text = body.decode(charset_of(content_type), "replace") if method != "HEAD" else ""
        return self._judged(url, status, text, started, ended)

    def sample(self, urls, count=None, duration=None, concurrency=1):
        """Measure like ``_Sampling.sample``: with LoopSampler (one thread, ``concurrency``
        connections) for plain http:// URLs without redirects, with threads otherwise.

        Returns ``(samples, elapsed_s)``.
        """
        if loop_applies(urls, self.follow_redirects):
            try:
                sampler = LoopSampler(self, urls)
            except ValueError:
                sampler = None  # a header or URL http.client refuses: the threaded path reports it per request
            if sampler is not None:
                return sampler.run(urls, count=count, duration=duration, concurrency=concurrency)
        return _Sampling.sample(self, urls, count=count, duration=duration, concurrency=concurrency)

    def close(self):
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all = []


# ---------------------------------------------------------------- event-loop sampler

MAX_HEAD_BYTES = 65536
HEAD_CACHE_SIZE = 256
VERDICT_CACHE_SIZE = 256
VERDICT_BODY_BYTES = 16384
RECV_BYTES = 65536
NO_BODY_STATUSES = (204, 304)
# Linux's SO_TIMESTAMPNS (SO_TIMESTAMPNS_OLD) is 35 on the architectures that take the
# generic socket option numbers; Python's socket module does not export it.
_GENERIC_SOCKET_MACHINES = ("x86", "i386", "i486", "i586", "i686", "amd64", "aarch64", "arm", "ppc", "powerpc",
                            "s390", "riscv", "loongarch")
TIMESPEC = struct.Struct("@ll")


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


def cmsg_timestamp_ns(ancdata, option):
    """The kernel's arrival time (ns since the epoch, CLOCK_REALTIME) in the ancillary data
    of ``recvmsg()``, or None when there is none (pure)."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == option and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack(data[:TIMESPEC.size])
            return seconds * 1000000000 + nanoseconds
    return None


def loop_applies(urls, follow_redirects):
    """Whether LoopSampler measures ``urls``: plain http://, no redirect to follow, no proxy."""
    if follow_redirects:
        return False
    return all(urlsplit(url).scheme == "http" and not environment_proxy(url) for url in urls)


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


class LoopSampler(_Judging):
    """LeanProber's sampler for plain http:// URLs: one thread, ``concurrency`` keep-alive
    connections on non-blocking sockets, ``selectors.DefaultSelector``.

    Same samples as ``_Sampling.sample`` (URLs taken round-robin, ``count`` requests or
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


def make_prober(urls, method, headers, timeout, expectations, concurrency=1, verify=True, cert=None,
                follow_redirects=False):
    """LeanProber, or the requests-based Prober when an environment proxy applies to a URL.

    A bad CA bundle or client certificate fails here, before the first request, naming
    the option.
    """
    if any(environment_proxy(url) for url in urls):
        return Prober(method, headers, timeout, expectations, concurrency=concurrency, verify=verify,
                      cert=cert, follow_redirects=follow_redirects, pool_hosts=len(urls))
    prober = LeanProber(method, headers, timeout, expectations, verify=verify, cert=cert,
                        follow_redirects=follow_redirects)
    if any(urlsplit(url).scheme == "https" for url in urls):
        prober.prepare_tls()
    return prober


def short_transport_error(text, limit=200):
    """The useful part of a urllib3/requests error text (``[Errno 111] Connection refused``).

    requests wraps the socket error in several layers of ``Max retries exceeded...``;
    the innermost errno sentence is what an operator acts on.
    """
    match = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text or "")
    if match:
        return match.group(0).strip()
    match = re.search(r"(Read timed out\.?|timed out\.?|connect timeout=[\d.]+|read timeout=[\d.]+)", text or "")
    if match:
        return match.group(0)
    return text if len(text or "") <= limit else text[:limit] + "..."


def classify_exception(exc):
    """``(status_key, reason)`` for a transport failure: timeout, tls_error, connection_error, error."""
    name = type(exc).__name__
    text = short_transport_error(str(exc))
    if requests is not None:
        if isinstance(exc, requests.exceptions.Timeout):
            return "timeout", "timed out: %s" % text
        if isinstance(exc, requests.exceptions.SSLError):
            return "tls_error", "TLS error: %s" % text
        if isinstance(exc, requests.exceptions.ConnectionError):
            return "connection_error", "connection failed: %s" % text
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout", "timed out: %s" % text
    if isinstance(exc, ssl.SSLError) or isinstance(exc, ssl.CertificateError):
        return "tls_error", "TLS error: %s" % text
    if isinstance(exc, (OSError, http_client.RemoteDisconnected)):
        return "connection_error", "connection failed: %s" % text
    return "error", "%s: %s" % (name, text)
