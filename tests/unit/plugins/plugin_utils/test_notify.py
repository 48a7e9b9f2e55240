# -*- coding: utf-8 -*-
"""_notify: webhook settings, what is posted, retries, and how a webhook is named in output."""

import json

import pytest

from ansible_collections.prodready.deploy.plugins.plugin_utils import _notify

SLACK = "https://hooks.slack.com/services/T000/B000/SECRETSECRET"


@pytest.mark.parametrize("value, expected", [
    (None, []),
    ("", []),
    ("slack=%s, https://ops.example/hook" % SLACK, [("slack", SLACK, {}), ("json", "https://ops.example/hook", {})]),
    (["json=http://127.0.0.1:9/x?token=t"], [("json", "http://127.0.0.1:9/x?token=t", {})]),
    ({"url": "https://ops.example/h", "format": "slack", "headers": {"X-Key": 1}},
     [("slack", "https://ops.example/h", {"X-Key": "1"})]),
])
def test_webhook_settings(value, expected):
    assert _notify.targets(value, "notify_webhooks") == expected


@pytest.mark.parametrize("value, message", [
    (["teams=https://x.example/"], "notify_webhooks[0]: format must be one of slack, json, got 'teams'"),
    ([{"url": "https://x.example/", "format": "xml"}], "notify_webhooks[0]: format must be one of slack, json, got 'xml'"),
    ([{"url": "ftp://x.example/secret"}], "notify_webhooks[0]: url must be an http(s):// URL with a host, got ftp://x.example/..."),
    ([42], "notify_webhooks[0]: expects a URL or a dict with url, got int"),
    (7, "notify_webhooks: expects a list of webhooks, got int"),
])
def test_a_webhook_that_cannot_be_used_is_named_without_its_secret(value, message):
    with pytest.raises(_notify.ConfigError) as err:
        _notify.targets(value, "notify_webhooks")
    assert str(err.value) == message


def test_a_webhook_is_named_by_its_scheme_and_host_only():
    assert _notify.redact(SLACK) == "https://hooks.slack.com/..."
    assert _notify.redact("http://127.0.0.1:8080/a?token=x") == "http://127.0.0.1:8080/..."


REPORT = {"outcome": "failed", "playbooks": ["deploy.yml"], "counts": {"live": 1, "failed": 1},
          "hosts": {"web1": {"outcome": "live", "live_version": "1.4.0", "events": [{"x": 1}]},
                    "web2": {"outcome": "failed", "stopped_reason": "gate_live: error rate 12% > 1%"}},
          "files": ["/r/deploy-report.json"]}


def test_what_each_format_posts():
    assert _notify.payload("slack", REPORT, "DEPLOY REPORT: FAILED") == {"text": "DEPLOY REPORT: FAILED"}
    long = _notify.payload("slack", REPORT, "x" * 5000)["text"]
    assert len(long) <= _notify.SLACK_TEXT_MAX and long.endswith("the report files hold it all)")
    body = _notify.payload("json", REPORT, "DEPLOY REPORT: FAILED")
    assert body["outcome"] == "failed" and body["summary"] == "DEPLOY REPORT: FAILED"
    assert body["hosts"]["web2"]["stopped_reason"].startswith("gate_live") and "events" not in body["hosts"]["web1"]
    json.dumps(body)  # serializable as it is


class Answers:
    """An opener answering with `answers` in turn: a status, or an exception to raise."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), 0

    def __call__(self, url, data, headers, timeout):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class HTTPError(Exception):
    def __init__(self, code):
        super(HTTPError, self).__init__("HTTP Error %d" % code)
        self.code = code


@pytest.mark.parametrize("answers, expected", [
    ((200,), (True, 1, "")),
    ((503, OSError("refused"), 204), (True, 3, "")),                 # retried until it takes it
    ((HTTPError(500), HTTPError(502), HTTPError(503)), (False, 3, "HTTP 503")),
    ((HTTPError(404),), (False, 1, "HTTP 404")),                     # a 4xx is final
    ((HTTPError(429), 200), (True, 2, "")),
    ((OSError("refused"),) * 3, (False, 3, "OSError: refused")),
])
def test_retries(answers, expected):
    slept = []
    opener = Answers(*answers)
    assert _notify.post("http://h/x", {"a": 1}, {}, 5, 3, 1.0, opener, sleep=slept.append) == expected
    assert slept == [1.0] * (expected[1] - 1)
