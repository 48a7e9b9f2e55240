# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The deploy report's notifications: the summary posted to webhooks (Slack-compatible or
generic JSON) at the end of a run, retried, bounded by a timeout, never failing the run.
Controller side only (the deploy_report callback)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

from ansible.module_utils.six.moves.urllib.parse import urlsplit

FORMATS = ("slack", "json")
SLACK_TEXT_MAX = 3500  # Slack cuts a message's text at 4000 characters; keep room for the header
RETRY_STATUSES = (408, 425, 429, 500, 502, 503, 504)


class ConfigError(ValueError):
    """A webhook entry that cannot be used, said naming the setting."""


def targets(value, setting):
    """[(format, url, headers)] from `value`: a list (or a comma-separated string, as an
    environment variable holds it) of URLs, ``<format>=<url>`` strings, or dicts {url,
    format, headers}; the format defaults to json. Raises ConfigError naming `setting`."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError("%s: expects a list of webhooks, got %s" % (setting, type(value).__name__))
    out = []
    for index, entry in enumerate(value):
        where = "%s[%d]" % (setting, index)
        headers = {}
        if isinstance(entry, dict):
            url, fmt, headers = entry.get("url"), entry.get("format") or "json", entry.get("headers") or {}
        elif isinstance(entry, str):
            fmt, sep, rest = entry.partition("=")
            named = sep and "://" not in fmt  # <format>=<url>, not a URL holding "="
            url, fmt = (rest, fmt) if named else (entry, "json")
        else:
            raise ConfigError("%s: expects a URL or a dict with url, got %s" % (where, type(entry).__name__))
        if fmt not in FORMATS:
            raise ConfigError("%s: format must be one of %s, got %r" % (where, ", ".join(FORMATS), fmt))
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("%s: url must be an http(s):// URL with a host, got %s" % (where, redact(url or "")))
        if not isinstance(headers, dict):
            raise ConfigError("%s: headers must be a dict" % where)
        out.append((fmt, url, dict((str(k), str(v)) for k, v in headers.items())))
    return out


def redact(url):
    """How a webhook is named in output: its scheme, host and port only (a Slack webhook's path
    is its secret; a query may carry a token)."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or "?"
        if parts.port:
            netloc += ":%d" % parts.port
        return "%s://%s/..." % (parts.scheme or "?", netloc)
    except ValueError:
        return "(unparsable URL)"


def payload(fmt, report, summary):
    """The body posted to a webhook of format `fmt` for `report` (the deploy report dict) and
    its `summary` (the text printed at the end of the run)."""
    if fmt == "slack":
        text = summary if len(summary) <= SLACK_TEXT_MAX else summary[:SLACK_TEXT_MAX - 40] + "\n... (cut; the report files hold it all)"
        return {"text": text}
    hosts = {}
    for host, entry in (report.get("hosts") or {}).items():
        hosts[host] = dict((key, entry.get(key)) for key in ("outcome", "live_version", "stopped_reason", "reverted"))
    return {"source": "prodready.deploy", "kind": "deploy_report", "outcome": report.get("outcome"),
            "playbooks": report.get("playbooks"), "started": report.get("started"), "finished": report.get("finished"),
            "duration_s": report.get("duration_s"), "check_mode": report.get("check_mode"),
            "counts": report.get("counts"), "hosts": hosts, "launched_by": report.get("launched_by"),
            "job": report.get("job"),
            "files": report.get("files"), "summary": summary}


def post(url, body, headers, timeout, retries, delay, opener, sleep=time.sleep):
    """POST `body` (a dict, as JSON) to `url`, up to `retries` tries `delay` s apart on a
    connection error, a timeout or a retryable status (408, 429, 5xx); another 4xx is final.
    `opener(url, data, headers, timeout)` returns the HTTP status or raises. Returns (ok,
    tries, what went wrong last)."""
    data = json.dumps(body, sort_keys=True, default=str).encode("utf-8")
    all_headers = {"Content-Type": "application/json", "User-Agent": "prodready-deploy-report"}
    all_headers.update(headers or {})
    problem = ""
    tries = max(1, int(retries))
    for attempt in range(1, tries + 1):
        try:
            status = opener(url, data, all_headers, timeout)
        except Exception as exc:  # any failure of one try is retried: a notification never fails the run
            status = getattr(exc, "code", None)  # an HTTPError: judged by its status below
            if not isinstance(status, int):
                status, problem = None, _reason(exc)
        if status is not None:
            if 200 <= status < 300:
                return True, attempt, ""
            problem = "HTTP %s" % status
            if status not in RETRY_STATUSES:
                return False, attempt, problem
        if attempt < tries:
            sleep(delay)
    return False, tries, problem


def _reason(exc):
    """A one-line reason for a try that got no answer."""
    reason = getattr(exc, "reason", None)
    return "%s: %s" % (type(exc).__name__, reason if reason is not None else exc)
