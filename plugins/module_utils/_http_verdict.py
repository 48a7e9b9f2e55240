# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What health_gate expects of a response and what it concludes: the pure half of _http.

No I/O and no HTTP client here (importing this module never imports ``requests``):

- URL validation; the JSON path syntax (``checks.redis.status``, ``items[0].id``) and
  reading a path in a decoded document; values compared as JSON or as text;
- ``build_expectations`` (status, JSON fields, body regex, the version a service
  reports), validated once before any request, and ``judge_response``, the verdict on
  one response; ``charset_of``, how its body is decoded;
- ``classify_exception``, the verdict on a transport failure (timeout, TLS error,
  connection error);
- ``Judging``, the sample dicts every sampler produces, and ``aggregate``, the figures
  of a list of samples (counts, latency percentiles, the first failure).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import codecs
import json
import re
import socket
import ssl

from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.parse import urlsplit

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._stats import (
    latency_summary, trailing_streak)

BODY_EXCERPT_CHARS = 200
TIMEOUT_REASON = "timed out: no answer within the request timeout of %s s"
_SEGMENT = re.compile(r"^(?P<key>[A-Za-z0-9_\-]+)?(?P<idx>(\[\d+\])*)$")
MISSING = object()


# ---------------------------------------------------------------- expectations

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


def parse_json_path(path, name="JSON path", example="checks.redis.status or items[0].id"):
    """``checks.redis.status`` / ``items[0].id`` / ``$.a.b`` -> list of keys (str) and indexes (int).

    The syntax is deliberately small: dotted object keys made of letters, digits, ``_`` and
    ``-``, and ``[N]`` list indexes; a numeric dotted segment (``items.0``) also indexes a
    list. Anything else (wildcards, filters, quotes, empty segments) is rejected with a
    message, rather than matching nothing and failing later for an unclear reason. The
    message calls the path ``name`` and suggests ``example``.
    """
    hint = "use dotted keys and [N] indexes, e.g. %s" % example
    if not isinstance(path, str) or not path:
        raise ProdreadyError("%s %r is empty: %s" % (name, path, hint))
    text = path[2:] if path.startswith("$.") else path
    segments = []
    for raw in text.split("."):
        match = _SEGMENT.match(raw)
        if not raw or not match or (match.group("key") is None and not match.group("idx")):
            raise ProdreadyError("%s %r has unsupported syntax at %r: %s" % (name, path, raw, hint))
        if match.group("key") is not None:
            segments.append(match.group("key"))
        for index in re.findall(r"\[(\d+)\]", match.group("idx")):
            segments.append(int(index))
    return segments


def lookup_json(document, segments):
    """Value at ``segments`` in a decoded JSON document, or the MISSING marker."""
    node = document
    for segment in segments:
        if isinstance(segment, int) or (isinstance(node, list) and segment.isdigit()):
            index = int(segment)
            if not isinstance(node, list) or index >= len(node):
                return MISSING
            node = node[index]
        elif isinstance(node, dict) and segment in node:
            node = node[segment]
        else:
            return MISSING
    return node


def canonical(value):
    """A JSON value written as text the way a service writes it: ``true``, ``null``, ``2`` for 2.0."""
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
    return canonical(actual) == canonical(expected)


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
    document = MISSING
    if expectations["json"] or expectations["expect_version"] is not None:
        try:
            document = json.loads(text) if text else MISSING
        except ValueError:
            document = MISSING
    if expectations["json"]:
        if document is MISSING:
            return "body is not JSON, cannot check %s" % ", ".join(check[0] for check in expectations["json"])
        for path, segments, expected in expectations["json"]:
            actual = lookup_json(document, segments)
            if actual is MISSING:
                return "JSON %s is missing, expected %s" % (path, json.dumps(expected))
            if not values_match(actual, expected):
                return "JSON %s is %s, expected %s" % (path, json.dumps(actual), json.dumps(expected))
    if expectations["regex"] is not None and not expectations["regex"].search(text or ""):
        return "body does not match body_regex %r" % expectations["body_regex"]
    wanted = expectations["expect_version"]
    if wanted is not None:
        if isinstance(document, dict):
            actual = lookup_json(document, expectations["version_segments"])
            if actual is MISSING:
                return "version field %s is missing, expected version %s" % (expectations["version_path"], wanted)
            actual = canonical(actual)
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


# ---------------------------------------------------------------- transport failures

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
    """``(status_key, reason)`` for a transport failure: timeout, tls_error, connection_error, error.

    The standard library's exceptions; the requests-based prober classifies its own first.
    """
    name = type(exc).__name__
    text = short_transport_error(str(exc))
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout", "timed out: %s" % text
    if isinstance(exc, ssl.SSLError) or isinstance(exc, ssl.CertificateError):
        return "tls_error", "TLS error: %s" % text
    if isinstance(exc, (OSError, http_client.RemoteDisconnected)):
        return "connection_error", "connection failed: %s" % text
    return "error", "%s: %s" % (name, text)


# ---------------------------------------------------------------- samples

class Judging(object):
    """The sample dicts, shared by the probers and LoopSampler (they set method and expectations).

    A sample: ``url``, ``method``, ``ok``, ``status``, ``status_key`` (the status, or the
    kind of transport failure), ``latency_ms``, ``reason``, ``body_excerpt`` and ``end``
    (its completion on the ``time.perf_counter`` clock).
    """

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
