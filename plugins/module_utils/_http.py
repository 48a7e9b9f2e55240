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
  sending it until its whole body is read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import socket
import ssl
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

class _Sampling(object):
    """The startup wait and the concurrent sampler, shared by both probers (they define probe())."""

    method = "GET"

    def _sample(self, url, ok, status, status_key, latency_ms, reason, excerpt, ended):
        return dict(url=url, method=self.method, ok=ok, status=status, status_key=status_key,
                    latency_ms=latency_ms, reason=reason, body_excerpt=excerpt, end=ended)

    def _judged(self, url, status, text, started, ended):
        reason = judge_response(status, text, self.expectations)
        return self._sample(url, reason is None, status, str(status), (ended - started) * 1000.0,
                            reason, body_excerpt(text) if reason else "", ended)

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


def charset_of(content_type, default="utf-8"):
    """The ``charset=`` of a Content-Type header value, else ``default`` (pure)."""
    match = re.search(r"charset=[\"']?([A-Za-z0-9._:-]+)", content_type or "", re.IGNORECASE)
    return match.group(1) if match else default


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
            return self._sample(url, False, None, "timeout", None, "timed out: no answer within timeout=%s s"
                                % self.timeout, "", time.perf_counter())
        except Exception as exc:  # every transport failure is a failed sample, not a crash
            ended = time.perf_counter()
            key, reason = classify_exception(exc)
            return self._sample(url, False, None, key, None, reason, "", ended)
        text = body.decode(charset_of(content_type), "replace") if method != "HEAD" else ""
        return self._judged(url, status, text, started, ended)

    def close(self):
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all = []


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
