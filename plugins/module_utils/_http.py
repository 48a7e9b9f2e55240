# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP probing for health_gate (and rollback_start): the clients that send the requests.

Two probers with the same interface (``probe``, ``wait_until_up``, ``sample``, ``close``),
both timing a request with ``time.perf_counter`` from sending it until its whole body is
read, and ``make_prober()`` to pick one:

- ``LeanProber``, the default, on the standard library's ``http.client`` with one
  persistent connection per thread and host (about 5x less CPU per request than
  ``requests``, so the threads measure the service rather than their own client); it
  follows redirects when asked. Its ``sample()`` hands plain ``http://`` URLs without
  redirects to ``_http_loop.LoopSampler`` (one thread, an event loop);
- ``Prober`` over ``requests``, used only when an environment proxy applies to a URL.
  ``requests`` is imported then and only then: importing it costs a module call
  ~0.1-0.4 s, and a gate on a plain URL never needs it. Whether a proxy applies is
  decided here with requests' own NO_PROXY rules, without requests.

What a response must be and the figures of a sample are ``_http_verdict``'s (pure);
``build_expectations`` and ``aggregate`` are importable from here too, for the modules
that only need a prober and its figures.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
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
from ansible_collections.prodready.deploy.plugins.module_utils._http_loop import SO_TIMESTAMPNS, LoopSampler
from ansible_collections.prodready.deploy.plugins.module_utils._http_verdict import (
    TIMEOUT_REASON, Judging, aggregate, body_excerpt, build_expectations, charset_of, classify_exception,
    judge_response, short_transport_error)
from ansible_collections.prodready.deploy.plugins.module_utils._http_wire import request_target

__all__ = ["LeanProber", "LoopSampler", "Prober", "SO_TIMESTAMPNS", "Sampling", "aggregate", "build_expectations",
           "environment_proxy", "loop_applies", "make_prober", "tls_context"]

SAMPLING_SWITCH_INTERVAL_S = 0.0001
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 30
USER_AGENT = "prodready.deploy-health_gate"


# ---------------------------------------------------------------- sampling, shared by both probers

class Sampling(Judging):
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


# ---------------------------------------------------------------- which prober: environment proxies

def _is_ipv4_address(text):
    """Whether ``text`` is an IPv4 address as inet_aton reads it (requests' test)."""
    try:
        socket.inet_aton(text)
    except (OSError, ValueError):
        return False
    return True


def _is_ipv4_network(text):
    """``a.b.c.d/N`` with N in 1..32 (requests' check of a NO_PROXY CIDR entry)."""
    if text.count("/") != 1:
        return False
    address, bits = text.split("/")
    try:
        mask = int(bits)
    except ValueError:
        return False
    return 1 <= mask <= 32 and _is_ipv4_address(address)


def _in_ipv4_network(address, network):
    """Whether IPv4 ``address`` is in ``network`` (``a.b.c.d/N``, checked by _is_ipv4_network)."""
    base, bits = network.split("/")
    netmask = 0xFFFFFFFF ^ ((1 << (32 - int(bits))) - 1)
    as_int = struct.Struct(">I").unpack
    return (as_int(socket.inet_aton(address))[0] & netmask) == (as_int(socket.inet_aton(base))[0] & netmask)


def no_proxy_exempts(url, no_proxy):
    """Whether the NO_PROXY value ``no_proxy`` exempts ``url`` from a proxy, by requests' rules (pure).

    Entries are separated by commas. An IPv4 host matches an entry equal to it or a CIDR
    block holding it (``10.0.0.0/8``); another host matches an entry equal to it or to
    ``host:port``, or a domain it ends with (``example.com`` and ``.example.com`` both
    match ``app.example.com``).
    """
    parts = urlsplit(url)
    hostname = parts.hostname
    if hostname is None:
        return True
    entries = [entry for entry in (no_proxy or "").replace(" ", "").split(",") if entry]
    if _is_ipv4_address(hostname):
        return any(_in_ipv4_network(hostname, entry) if _is_ipv4_network(entry) else hostname == entry
                   for entry in entries)
    host_with_port = hostname + (":%d" % parts.port if parts.port else "")
    for entry in entries:
        entry = entry.lstrip(".")
        if entry in (hostname, host_with_port) or hostname.endswith("." + entry) \
                or host_with_port.endswith("." + entry):
            return True
    return False


def environment_proxy(url):
    """The proxy the environment sets for ``url``'s scheme (HTTP_PROXY, HTTPS_PROXY), or None
    when there is none or NO_PROXY exempts the URL.

    The decision requests takes (``requests.utils.get_environ_proxies``), so the URLs sent
    to the requests-based Prober are exactly those requests would proxy, without importing
    requests for the others.
    """
    parts = urlsplit(url)
    proxy = getproxies().get(parts.scheme)
    if not proxy or no_proxy_exempts(url, os.environ.get("no_proxy") or os.environ.get("NO_PROXY")):
        return None
    try:
        bypass = proxy_bypass(parts.hostname)  # the standard library's NO_PROXY rules, as requests asks too
    except (TypeError, socket.gaierror):
        bypass = False
    return None if bypass else proxy


def loop_applies(urls, follow_redirects):
    """Whether LoopSampler measures ``urls``: plain http://, no redirect to follow, no proxy."""
    if follow_redirects:
        return False
    return all(urlsplit(url).scheme == "http" and not environment_proxy(url) for url in urls)


# ---------------------------------------------------------------- Prober: requests, for proxies

def import_requests():
    """The ``requests`` module, imported now: only a URL behind an environment proxy needs it.

    Raises ProdreadyError with Ansible's missing-library message when it is not installed.
    """
    try:
        import requests
        import requests.adapters
    except ImportError:
        from ansible.module_utils.basic import missing_required_lib
        raise ProdreadyError(missing_required_lib("requests", reason="to send requests through an environment "
                                                  "proxy (HTTP_PROXY, HTTPS_PROXY)"),
                             exception=traceback.format_exc())
    return requests


def classify_requests_exception(requests, exc):
    """``(status_key, reason)`` of a failure raised through ``requests``: its own exception types
    first (they are OSErrors too), then the standard library's."""
    text = short_transport_error(str(exc))
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout", "timed out: %s" % text
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls_error", "TLS error: %s" % text
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection_error", "connection failed: %s" % text
    return classify_exception(exc)


class Prober(Sampling):
    """Sends requests through one pooled ``requests.Session`` and judges each response.

    Used for URLs behind an environment proxy (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), which
    requests resolves; LeanProber serves every other case.
    """

    def __init__(self, method, headers, timeout, expectations, concurrency=1, verify=True,
                 cert=None, follow_redirects=False, pool_hosts=1):
        self.requests = requests = import_requests()
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
        adapter = requests.adapters.HTTPAdapter(pool_connections=max(1, pool_hosts),
                                                pool_maxsize=max(1, concurrency), max_retries=0, pool_block=False)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self):
        """Close the session's pooled connections."""
        self.session.close()

    def _prepare(self, url):
        """The PreparedRequest and proxies of ``url``, built once and copied per request."""
        with self._prepare_lock:
            if url not in self._prepared:
                self._prepared[url] = self.session.prepare_request(self.requests.Request(self.method, url))
                self._proxies[url] = self.requests.utils.get_environ_proxies(url)
            return self._prepared[url].copy(), self._proxies[url]

    def probe(self, url):
        """One request -> sample dict (ok, status, status_key, latency_ms, reason, body_excerpt, end)."""
        status = None
        try:
            prepared, proxies = self._prepare(url)
        except Exception as exc:
            key, reason = classify_requests_exception(self.requests, exc)
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
            key, reason = classify_requests_exception(self.requests, exc)
            return self._sample(url, False, None, key, None, reason, "", ended)


# ---------------------------------------------------------------- LeanProber: http.client

def redirect_method(method, status):
    """The method a redirected request uses: 303 turns any method but HEAD into GET, and
    301/302 turn POST into GET, as browsers and requests do; 307/308 keep it (pure)."""
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method


def tls_context(verify=True, cert=None):
    """An ``ssl.SSLContext`` for ``verify`` (True, False or a CA bundle path) and ``cert``
    (a PEM path or a ``(cert, key)`` pair), matching what requests would check.

    ``verify=True`` trusts the system store and certifi's bundle (requests' default), so a
    certificate requests accepted is still accepted.
    """
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with requests
        certifi = None
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
        raise ProdreadyError("ca_cert %r cannot be used as a CA bundle: %s" % (verify, exc))
    if cert:
        certfile, keyfile = cert if isinstance(cert, tuple) else (cert, None)
        try:
            context.load_cert_chain(certfile, keyfile)
        except (IOError, OSError, ssl.SSLError) as exc:
            raise ProdreadyError("client_cert %r / client_key %r cannot be loaded: %s" % (certfile, keyfile, exc))
    return context


class LeanProber(Sampling):
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
        """Measure like ``Sampling.sample``: with LoopSampler (one thread, ``concurrency``
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
        return Sampling.sample(self, urls, count=count, duration=duration, concurrency=concurrency)

    def close(self):
        """Close every connection of every thread."""
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all = []


def make_prober(urls, method, headers, timeout, expectations, concurrency=1, verify=True, cert=None,
                follow_redirects=False):
    """LeanProber, or the requests-based Prober when an environment proxy applies to a URL.

    A bad CA bundle or client certificate fails here, before the first request, naming
    the option; so does a proxied URL without the requests library.
    """
    if any(environment_proxy(url) for url in urls):
        return Prober(method, headers, timeout, expectations, concurrency=concurrency, verify=verify,
                      cert=cert, follow_redirects=follow_redirects, pool_hosts=len(urls))
    prober = LeanProber(method, headers, timeout, expectations, verify=verify, cert=cert,
                        follow_redirects=follow_redirects)
    if any(urlsplit(url).scheme == "https" for url in urls):
        prober.prepare_tls()
    return prober
