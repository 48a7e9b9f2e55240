#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: health_gate
short_description: Decide with numbers whether an HTTP service is healthy
version_added: 0.1.0
description:
  - Waits for a service to come up (in fractions of a second), then sends a sample of
    requests, optionally concurrent, and judges it on error rate, latency percentiles,
    consecutive successes and regression against an earlier result.
  - Each response is checked for its status, JSON fields, a body regex and the version
    the service reports.
  - The result always carries the measured figures, when the gate passes too, so a
    playbook can keep them as the baseline of the next deploy.
  - No data is never a pass. When no request completed, the gate fails as V(inconclusive).
  - Replaces the runbooks' C(curl -f /health), C(curl -w time_total), C(ab -n 100 -c 10)
    and C(jq .checks.redis).
author:
  - prodready.deploy maintainers (@prodready)
requirements:
  - requests (Python library), only for URLs an environment proxy applies to
options:
  url:
    description:
      - URL to check. Use O(urls) for several.
    type: str
  urls:
    description:
      - URLs to check. Requests go to them round-robin; each one has its figures in RV(per_url).
    type: list
    elements: str
  method:
    description:
      - HTTP method.
      - In check mode only V(GET), V(HEAD) and V(OPTIONS) are sent; with another method the
        gate reports what it would do and sends nothing.
    type: str
    default: GET
    choices: [GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE]
  headers:
    description:
      - Extra request headers. Put credentials in O(bearer_token), which is never logged.
    type: dict
    default: {}
  bearer_token:
    description:
      - "Sent as C(Authorization: Bearer <token>)."
      - Read from the E(HEALTH_GATE_BEARER_TOKEN) environment variable when not set.
    type: str
  expected_status:
    description:
      - HTTP statuses that count as success.
    type: list
    elements: int
    default: [200]
  json:
    description:
      - Expected JSON fields, as a dict of path to value.
      - A path is dotted object keys and C([N]) list indexes, for example V(checks.redis),
        V(checks.db.status) or V(items[0].id); an optional V($.) prefix is accepted.
        Wildcards and filters are rejected.
      - Values match when equal as JSON, or equal once written as text (V("1.4") matches V(1.4)).
    type: dict
  body_regex:
    description:
      - A regular expression the body must contain (Python C(re.search)).
    type: str
  expect_version:
    description:
      - The version the service must report. For a JSON object body it is the field at
        O(version_path); for any other body it is the whole body, stripped (a plain
        C(/version) endpoint).
    type: str
  version_path:
    description:
      - JSON path of the version field, same syntax as O(json).
    type: str
    default: version
  request_timeout:
    description:
      - Seconds to wait for each request's response (connect and read); a request without
        an answer by then counts as an error with status V(timeout).
      - Not the startup wait, which is O(wait_timeout).
      - C(timeout) is a deprecated alias, to be removed in 2.0.0.
    type: float
    default: 5.0
    aliases: [timeout]
  validate_certs:
    description:
      - Verify the server's TLS certificate.
    type: bool
    default: true
  ca_cert:
    description:
      - CA bundle (PEM) to verify the server's certificate with.
      - C(ca_path) is a deprecated alias, to be removed in 2.0.0.
    type: path
    aliases: [ca_path]
  client_cert:
    description:
      - Client certificate (PEM) for mutual TLS.
    type: path
  client_key:
    description:
      - Private key of O(client_cert).
    type: path
  follow_redirects:
    description:
      - Follow redirects. Off by default, so a redirect is judged like any other status.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait, before measuring, for every URL to give one good response (startup).
      - V(0) measures at once.
    type: float
    default: 0
  wait_interval:
    description:
      - Seconds between attempts while waiting; fractions such as V(0.2) are honoured.
    type: float
    default: 0.5
  requests:
    description:
      - Number of requests to measure. Defaults to V(10) when O(duration) is not set.
    type: int
  duration:
    description:
      - Measure for this many seconds instead of a number of requests.
    type: float
  concurrency:
    description:
      - Requests in flight at once (threads, each with its own persistent connection).
    type: int
    default: 1
  max_error_rate:
    description:
      - Highest acceptable fraction of failed requests, V(0.01) is 1%.
      - A request fails when it gets no response, an unexpected status, or a body that does
        not meet O(json), O(body_regex) or O(expect_version).
    type: float
    default: 0.0
  max_latency_ms:
    description:
      - Latency limits in milliseconds, a dict with any of the keys V(p50), V(p95), V(p99), V(max).
      - They must be ordered (p50 <= p95 <= p99 <= max), otherwise the gate could never pass.
    type: dict
  min_consecutive_successes:
    description:
      - The sample must end with at least this many successful requests in a row
        (completion order), so the service is healthy now, not only earlier in the sample.
    type: int
  baseline:
    description:
      - An earlier result of this module (for example registered against the old color).
        Its RV(latency_ms) p50, p95 and p99 are compared with this run's.
    type: dict
  max_regression:
    description:
      - With O(baseline), the fraction by which a percentile may exceed the baseline's,
        V(0.2) allows 20% slower.
    type: float
  fail_on_breach:
    description:
      - Fail the task when a threshold is breached. V(false) only reports (RV(passed) tells).
    type: bool
    default: true
notes:
  - Latency is measured from sending the request (or opening its connection) until the whole
    response has arrived. Percentiles use linear interpolation.
  - For C(http://) URLs without O(follow_redirects), one thread keeps O(concurrency) persistent
    connections and waits for all of them at once; each response ends at the time the kernel
    received its last bytes (C(SO_TIMESTAMPNS) on Linux), so the time it waits to be read
    while other responses are handled is not counted. Elsewhere, the time it is read.
  - For C(https://) URLs or O(follow_redirects), requests are sent with Python's C(http.client),
    one persistent connection per thread and host, timed with C(time.perf_counter) until the
    body is read. When an environment proxy (E(HTTP_PROXY), E(HTTPS_PROXY), E(NO_PROXY)) applies
    to a URL, they go through the C(requests) library instead.
  - Latency percentiles include every request that got an HTTP response; requests that got
    none (refused, timed out) count as errors and have no latency.
extends_documentation_fragment:
  - prodready.deploy.platform
attributes:
  check_mode:
    support: full
    description: Sends only GET, HEAD and OPTIONS requests (they only read) and judges them as usual; other methods are not sent and RV(passed) is V(null).
  diff_mode:
    support: none
    description: Nothing is edited.

  action_group:
    support: full
    membership: [prodready.deploy.deploy, prodready.deploy.http]
    description: In C(module_defaults), C(group/prodready.deploy.deploy) and C(group/prodready.deploy.http) set this module's options."""

EXAMPLES = r"""
- name: Wait up to 30 s for the idle color, then gate on 50 requests
  prodready.deploy.health_gate:
    url: "http://127.0.0.1:8002/health"
    wait_timeout: 30
    wait_interval: 0.2
    requests: 50
    concurrency: 4
    json:
      status: ok
      checks.redis: ok
    max_error_rate: 0.0
    max_latency_ms: {p95: 500, max: 2000}
  register: green_gate

- name: Gate through the router on the new version, no slower than the old color by 20%
  prodready.deploy.health_gate:
    urls:
      - "https://app.example.com/health"
      - "https://app.example.com/ready"
    expect_version: "1.4.0"
    duration: 10
    concurrency: 8
    max_error_rate: 0.01
    baseline: "{{ blue_gate }}"
    max_regression: 0.2
    min_consecutive_successes: 5

- name: Report only, keep the figures
  prodready.deploy.health_gate:
    url: "https://api.example.com/v1/orders?limit=1"
    bearer_token: "{{ api_token }}"
    ca_cert: /etc/ssl/internal-ca.pem
    max_latency_ms: {p99: 800}
    fail_on_breach: false
  register: api_gate

- name: Plain-text version endpoint (runbook 001's rollback verification)
  prodready.deploy.health_gate:
    url: "http://127.0.0.1:8001/version"
    expect_version: "1.3.2"
    requests: 3
"""

RETURN = r"""
passed:
  description: Whether every threshold was met. V(null) when check mode did not send the requests.
  returned: always
  type: bool
  sample: false
reason:
  description:
    - Every breached threshold with the measured value and the limit, separated by C(; ).
    - V(passed) when the gate passed; starts with V(inconclusive) when no request completed.
  returned: always
  type: str
  sample: "p95 812 ms > 500 ms; error rate 4.0% > 1.0%"
breaches:
  description: The breached thresholds, one sentence each (the parts of RV(reason)).
  returned: always
  type: list
  elements: str
  sample: ["p95 812 ms > 500 ms", "error rate 4.0% > 1.0%"]
samples:
  description: Number of measured requests that completed (with a response or an error).
  returned: always
  type: int
  sample: 100
errors:
  description: Number of failed requests.
  returned: always
  type: int
  sample: 4
error_rate:
  description: RV(errors) / RV(samples), a fraction (0 when there is no sample).
  returned: always
  type: float
  sample: 0.04
status_counts:
  description:
    - Count per HTTP status, and per transport failure (V(connection_error), V(timeout),
      V(tls_error), V(error)).
  returned: always
  type: dict
  sample: {"200": 96, "500": 4}
latency_ms:
  description: Latency figures in ms of requests that got a response; V(null) when none did.
  returned: always
  type: dict
  sample: {"min": 1.2, "p50": 3.4, "p95": 812.0, "p99": 950.1, "max": 990.5, "mean": 40.2}
consecutive_successes:
  description: Successful requests in a row at the end of the sample.
  returned: always
  type: int
  sample: 12
first_failure:
  description: The first failed request (completion order), V(null) when none failed.
  returned: always
  type: dict
  sample: {"url": "http://127.0.0.1:8002/health", "method": "GET", "status": 500,
           "reason": "status 500 not in expected [200]", "body_excerpt": "{\"status\": \"error\"}"}
elapsed_s:
  description: Seconds spent measuring (after the startup wait).
  returned: always
  type: float
  sample: 2.35
wait_s:
  description: Seconds spent waiting for the service to come up.
  returned: always
  type: float
  sample: 0.41
requests_per_s:
  description: Throughput of the measurement, RV(samples) / RV(elapsed_s).
  returned: always
  type: float
  sample: 850.2
per_url:
  description:
    - Figures per URL, keyed by URL, each with C(samples), C(errors), C(error_rate),
      C(status_counts), C(latency_ms), C(consecutive_successes) and C(first_failure).
  returned: always
  type: dict
  sample: {"http://127.0.0.1:8002/health": {"samples": 50, "errors": 0, "error_rate": 0.0,
           "status_counts": {"200": 50}, "latency_ms": {"min": 1.0, "p50": 2.0, "p95": 3.0,
           "p99": 3.2, "max": 3.3, "mean": 2.1}, "consecutive_successes": 50, "first_failure": null}}
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._heartbeat import Heartbeat
from ansible_collections.prodready.deploy.plugins.module_utils import _options
from ansible_collections.prodready.deploy.plugins.module_utils import _http
from ansible_collections.prodready.deploy.plugins.module_utils import _http_verdict as verdict
from ansible_collections.prodready.deploy.plugins.module_utils._options import renamed_from
from ansible_collections.prodready.deploy.plugins.module_utils import _stats

DEFAULT_REQUESTS = 10
MAX_CONCURRENCY = 256
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def argument_spec():
    return dict(
        url=dict(type="str"),
        urls=dict(type="list", elements="str"),
        method=dict(type="str", default="GET", choices=["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]),
        headers=dict(type="dict", default={}),
        bearer_token=dict(type="str", no_log=True, fallback=(env_fallback, ["HEALTH_GATE_BEARER_TOKEN"])),
        expected_status=dict(type="list", elements="int", default=[200]),
        json=dict(type="dict"),
        body_regex=dict(type="str"),
        expect_version=dict(type="str"),
        version_path=dict(type="str", default="version"),
        request_timeout=renamed_from(dict(type="float", default=5.0), "timeout"),
        validate_certs=dict(type="bool", default=True),
        ca_cert=renamed_from(dict(type="path"), "ca_path"),
        client_cert=dict(type="path"),
        client_key=dict(type="path", no_log=False),
        follow_redirects=dict(type="bool", default=False),
        wait_timeout=dict(type="float", default=0.0),
        wait_interval=dict(type="float", default=0.5),
        requests=dict(type="int"),
        duration=dict(type="float"),
        concurrency=dict(type="int", default=1),
        max_error_rate=dict(type="float", default=0.0),
        max_latency_ms=dict(type="dict"),
        min_consecutive_successes=dict(type="int"),
        baseline=dict(type="dict"),
        max_regression=dict(type="float"),
        fail_on_breach=dict(type="bool", default=True),
    )


def validate(params):
    """Check every value before the first request; returns (urls, thresholds, expectations)."""
    problem = _options.negative_option(params, argument_spec())
    if problem:
        raise ProdreadyError(problem)
    urls = [params["url"]] if params.get("url") is not None else list(params.get("urls") or [])
    if not urls:
        raise ProdreadyError("urls must list at least one URL")
    for url in urls:
        verdict.validate_url(url, "url" if params.get("url") is not None else "urls")
    for name in ("request_timeout", "wait_interval"):
        if params[name] <= 0:
            raise ProdreadyError("%s must be greater than 0 seconds, got %s" % (name, params[name]))
    if params["wait_timeout"] < 0:
        raise ProdreadyError("wait_timeout must be 0 or greater, got %s" % params["wait_timeout"])
    if params.get("requests") is not None and params["requests"] < 1:
        raise ProdreadyError("requests must be 1 or greater, got %s" % params["requests"])
    if params.get("duration") is not None and params["duration"] <= 0:
        raise ProdreadyError("duration must be greater than 0 seconds, got %s" % params["duration"])
    if not 1 <= params["concurrency"] <= MAX_CONCURRENCY:
        raise ProdreadyError("concurrency must be between 1 and %d, got %s" % (MAX_CONCURRENCY, params["concurrency"]))
    _stats.validate_fraction("max_error_rate", params["max_error_rate"])
    if params.get("min_consecutive_successes") is not None:
        wanted = params["min_consecutive_successes"]
        if wanted < 0:
            raise ProdreadyError("min_consecutive_successes must be 0 or greater, got %s" % wanted)
        if params.get("requests") is not None and wanted > params["requests"]:
            raise ProdreadyError("min_consecutive_successes (%s) is greater than requests (%s): the gate could "
                                 "never pass" % (wanted, params["requests"]))
    if params.get("max_regression") is not None and params["max_regression"] < 0:
        raise ProdreadyError("max_regression must be 0 or greater (0.2 = 20%% slower allowed), got %s"
                             % params["max_regression"])
    if params.get("client_key") and not params.get("client_cert"):
        raise ProdreadyError("client_key is set but client_cert is not: both are needed for mutual TLS")
    thresholds = dict(
        max_error_rate=params["max_error_rate"],
        max_latency_ms=_stats.validate_latency_thresholds(params.get("max_latency_ms")),
        min_consecutive_successes=params.get("min_consecutive_successes"),
        baseline=_stats.validate_baseline(params["baseline"]) if params.get("baseline") is not None else None,
        max_regression=params.get("max_regression"),
    )
    expectations = verdict.build_expectations(
        params["expected_status"], params.get("json"), params.get("body_regex"),
        params.get("expect_version"), params["version_path"])
    return urls, thresholds, expectations


def _empty_figures():
    return dict(samples=0, errors=0, error_rate=0.0, status_counts={}, latency_ms=None,
                consecutive_successes=0, first_failure=None)


def run(module):
    """Wait, measure and judge `module.params`; returns the result dict, raises
    ProdreadyError on a breach (unless fail_on_breach is false)."""
    params = module.params
    check_mode = module.check_mode
    urls, thresholds, expectations = validate(params)
    headers = dict(params.get("headers") or {})
    if params.get("bearer_token"):
        headers["Authorization"] = "Bearer %s" % params["bearer_token"]
    result = dict(changed=False, passed=None, reason="", breaches=[], elapsed_s=0.0, wait_s=0.0,
                  requests_per_s=0.0, per_url={})
    result.update(_empty_figures())
    if check_mode and params["method"] not in SAFE_METHODS:
        result["reason"] = "check mode: %s requests to %s not sent" % (params["method"], ", ".join(urls))
        return result

    cert = None
    if params.get("client_cert"):
        cert = (params["client_cert"], params["client_key"]) if params.get("client_key") else params["client_cert"]
    verify = params["ca_cert"] if params["validate_certs"] and params.get("ca_cert") else params["validate_certs"]
    prober = _http.make_prober(urls, params["method"], headers, params["request_timeout"], expectations,
                               concurrency=params["concurrency"], verify=verify, cert=cert,
                               follow_redirects=params["follow_redirects"])
    try:
        breaches = []
        if params["wait_timeout"] > 0:
            waited, failure = prober.wait_until_up(urls, params["wait_timeout"], params["wait_interval"])
            result["wait_s"] = round(waited, 3)
            if failure is not None:
                breaches.append("%s: not up within wait_timeout %s s" % (_stats.INCONCLUSIVE, params["wait_timeout"]))
                result["first_failure"] = verdict.failure_record(failure)
        if not breaches:
            count = params.get("requests")
            if count is None and params.get("duration") is None:
                count = DEFAULT_REQUESTS
            samples, elapsed = prober.sample(urls, count=count, duration=params.get("duration"),
                                             concurrency=params["concurrency"])
            result.update(verdict.aggregate(samples))
            result["elapsed_s"] = round(elapsed, 3)
            result["requests_per_s"] = round(len(samples) / elapsed, 1) if elapsed > 0 else 0.0
            result["per_url"] = dict((url, verdict.aggregate([s for s in samples if s["url"] == url])) for url in urls)
            breaches = _stats.gate_breaches(result, **thresholds)
    finally:
        prober.close()

    result["breaches"] = breaches
    result["passed"] = not breaches
    result["reason"] = "; ".join(breaches) if breaches else "passed"
    if breaches and params["fail_on_breach"]:
        msg = _stats.gate_message("health_gate", breaches, result["status_counts"], result["first_failure"])
        details = dict(result)
        raise ProdreadyError(msg, **details)
    return result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[["url", "urls"], ["requests", "duration"]],
        required_one_of=[["url", "urls"]],
        required_together=[["baseline", "max_regression"]],
    )
    try:
        with Heartbeat():  # keeps this run's deploy lock alive while the module works
            module.exit_json(**run(module))
    except ProdreadyError as e:
        module.fail_json(msg=str(e), **e.details)


if __name__ == "__main__":
    main()
