"""health_gate against a real HTTP server (tests/integration/health_server.py).

Thresholds are judged in-process through the module's run() (each case in milliseconds),
and the behaviours a user sees through Ansible (failure message, secrets, bad input
without a traceback, check mode) through real `ansible-playbook` runs.
"""

import re
import subprocess
import time
from types import SimpleNamespace

import pytest

from ansible_collections.prodready.deploy.plugins.modules import health_gate
from ansible_collections.prodready.deploy.plugins.module_utils import _http
from ansible_collections.prodready.deploy.plugins.module_utils import _http_loop
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from health_server import TOKEN, HealthServer
from helpers import run_module


@pytest.fixture(scope="module")
def server():
    srv = HealthServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tls")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    srv = HealthServer(certfile=str(cert), keyfile=str(key)).start()
    srv.cert = str(cert)
    yield srv
    srv.stop()


def params(**overrides):
    values = dict((name, spec.get("default")) for name, spec in health_gate.argument_spec().items())
    values.update(overrides)
    return values


def module(**overrides):
    """What run() uses of AnsibleModule, for params(**overrides)."""
    return SimpleNamespace(params=params(**overrides), check_mode=False)


def gate(**overrides):
    """run() that returns the result whether the gate passed or failed."""
    try:
        return health_gate.run(module(**overrides))
    except ProdreadyError as err:
        result = dict(err.details)
        result["msg"] = str(err)
        return result


# ------------------------------------------------------------------ responses

def test_fast_endpoint_passes_and_returns_the_figures(server):
    result = gate(url=server.url("/fast"), requests=20, concurrency=4, json={"checks.redis": "ok"},
                  max_latency_ms={"p95": 1000, "max": 5000}, max_error_rate=0.0)
    assert result["passed"] is True and result["reason"] == "passed" and "msg" not in result
    assert result["samples"] == 20 and result["errors"] == 0
    assert result["status_counts"] == {"200": 20}
    assert set(result["latency_ms"]) == {"min", "p50", "p95", "p99", "max", "mean"}
    assert result["latency_ms"]["min"] <= result["latency_ms"]["p50"] <= result["latency_ms"]["p95"] \
        <= result["latency_ms"]["p99"] <= result["latency_ms"]["max"]
    assert result["consecutive_successes"] == 20


def test_down_endpoint_fails_with_status_and_body(server):
    result = gate(url=server.url("/down"), requests=3)
    assert result["passed"] is False
    assert result["reason"] == "error rate 100.0% > 0.0%"
    assert result["status_counts"] == {"503": 3}
    assert result["first_failure"] == {"url": server.url("/down"), "method": "GET", "status": 503,
                                       "reason": "status 503 not in expected [200]",
                                       "body_excerpt": '{"status": "down"}'}
    assert "first failure: 503 GET %s" % server.url("/down") in result["msg"]


def test_expected_status_accepts_other_codes(server):
    assert gate(url=server.url("/down"), requests=2, expected_status=[503])["passed"] is True


def test_unreachable_service_counts_connection_errors():
    result = gate(url="http://127.0.0.1:9/health", requests=2, request_timeout=1)
    assert result["status_counts"] == {"connection_error": 2}
    assert result["latency_ms"] is None
    assert "connection failed: [Errno 111] Connection refused" in result["msg"]


def test_read_timeout_is_a_failed_sample(server):
    result = gate(url=server.url("/slow/800"), requests=1, request_timeout=0.2)
    assert result["status_counts"] == {"timeout": 1}
    assert result["first_failure"]["reason"].startswith("timed out")


def test_wrong_json_names_the_field(server):
    result = gate(url=server.url("/wrong-json"), requests=2, json={"status": "ok", "checks.redis": "ok"})
    assert result["passed"] is False
    assert result["first_failure"]["reason"] == 'JSON checks.redis is "down", expected "ok"'
    assert '"redis": "down"' in result["first_failure"]["body_excerpt"]


def test_json_paths_with_list_indexes(server):
    assert gate(url=server.url("/meta"), requests=1, json={"items[0].id": 7, "$.build.info.version": "2.0.1"})["passed"]
    result = gate(url=server.url("/meta"), requests=1, json={"items[1].id": 7})
    assert result["first_failure"]["reason"] == "JSON items[1].id is missing, expected 7"


def test_not_json_body_with_json_expectations(server):
    result = gate(url=server.url("/not-json"), requests=1, json={"status": "ok"})
    assert result["first_failure"]["reason"] == "body is not JSON, cannot check status"


def test_body_regex(server):
    assert gate(url=server.url("/not-json"), requests=1, body_regex=r"^all\s+good$")["passed"] is True
    result = gate(url=server.url("/not-json"), requests=1, body_regex="degraded")
    assert result["first_failure"]["reason"] == "body does not match body_regex 'degraded'"


@pytest.mark.parametrize("path, kwargs, reason", [
    ("/fast", dict(expect_version="1.4.0"), None),
    ("/old-version", dict(expect_version="1.4.0"), 'version is "1.3.0", expected "1.4.0"'),
    ("/version", dict(expect_version="1.3.2"), None),
    ("/version", dict(expect_version="1.4.0"), 'version is "1.3.2", expected "1.4.0"'),
    ("/meta", dict(expect_version="2.0.1", version_path="build.info.version"), None),
    ("/meta", dict(expect_version="2.0.1"), "version field version is missing, expected version 2.0.1"),
])
def test_expect_version(server, path, kwargs, reason):
    result = gate(url=server.url(path), requests=2, **kwargs)
    assert result["passed"] is (reason is None)
    if reason:
        assert result["first_failure"]["reason"] == reason


def test_methods(server):
    for method in ("HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        result = gate(url=server.url("/fast"), requests=1, method=method)
        assert result["passed"] is True, method
        assert result["per_url"][server.url("/fast")]["status_counts"] == {"200": 1}


def test_headers_and_bearer_token(server):
    assert gate(url=server.url("/auth"), requests=1)["status_counts"] == {"401": 1}
    assert gate(url=server.url("/auth"), requests=1, bearer_token=TOKEN)["passed"] is True
    assert gate(url=server.url("/auth"), requests=1, headers={"Authorization": "Bearer " + TOKEN})["passed"] is True


def test_redirects_are_judged_unless_followed(server):
    assert gate(url=server.url("/redirect"), requests=1)["status_counts"] == {"302": 1}
    assert gate(url=server.url("/redirect"), requests=1, follow_redirects=True)["passed"] is True


def test_several_urls_have_their_own_figures(server):
    fast, flaky = server.url("/fast"), server.url("/flaky/2?t=urls")
    result = gate(urls=[fast, flaky], requests=8, max_error_rate=0.5)
    assert result["passed"] is True
    assert result["samples"] == 8 and result["errors"] == 2
    assert result["per_url"][fast]["errors"] == 0 and result["per_url"][fast]["samples"] == 4
    assert result["per_url"][flaky]["errors"] == 2 and result["per_url"][flaky]["status_counts"] == {"200": 2, "500": 2}


# ------------------------------------------------------------------ thresholds

def test_error_rate_threshold(server):
    ok = gate(url=server.url("/flaky/4?t=ok"), requests=40, concurrency=4, max_error_rate=0.25)
    assert ok["passed"] is True and ok["errors"] == 10 and ok["error_rate"] == 0.25
    bad = gate(url=server.url("/flaky/4?t=bad"), requests=40, concurrency=4, max_error_rate=0.1)
    assert bad["passed"] is False
    assert bad["reason"] == "error rate 25.0% > 10.0%"
    assert "statuses: 200 x30, 500 x10" in bad["msg"]
    assert "first failure: 500 GET %s: status 500 not in expected [200]; body: " % server.url("/flaky/4?t=bad") in bad["msg"]
    assert bad["first_failure"]["body_excerpt"].startswith('{"status": "error", "detail": "flaky failure #')


def test_p50_threshold(server):
    assert gate(url=server.url("/slow/150"), requests=3, max_latency_ms={"p50": 5000})["passed"] is True
    result = gate(url=server.url("/slow/150"), requests=3, max_latency_ms={"p50": 100})
    assert re.fullmatch(r"p50 1\d\d ms > 100 ms", result["reason"]), result["reason"]


def test_p95_p99_and_max_are_judged_separately(server):
    # 1 slow request in 40: p95 stays fast while p99 and max see the slow one.
    result = gate(url=server.url("/tail/50/300?t=sep"), requests=40, max_latency_ms={"p95": 100})
    assert result["passed"] is True
    result = gate(url=server.url("/tail/50/300?t=sep2"), requests=40,
                  max_latency_ms={"p50": 100, "p95": 100, "p99": 100, "max": 250})
    assert result["passed"] is False
    assert [b.split(" ")[0] for b in result["breaches"]] == ["p99", "max"]
    assert re.fullmatch(r"p99 \d+(\.\d)? ms > 100 ms; max \d\d\d ms > 250 ms", result["reason"]), result["reason"]


def test_p95_breach_message(server):
    # 2 slow of 20 (requests 1 and 11): p95 interpolates between two slow ones.
    result = gate(url=server.url("/tail/10/300?t=p95"), requests=20, max_latency_ms={"p95": 100}, max_error_rate=0.01)
    assert re.fullmatch(r"p95 \d\d\d ms > 100 ms", result["reason"]), result["reason"]
    assert "health_gate failed: p95" in result["msg"] and "statuses: 200 x20" in result["msg"]


def test_several_breaches_are_all_named(server):
    result = gate(url=server.url("/flaky/4?t=several"), requests=8, max_error_rate=0.01,
                  max_latency_ms={"max": 0})
    assert re.fullmatch(r"max \d+(\.\d+)? ms > 0\.00 ms; error rate 25\.0% > 1\.0%", result["reason"]), result["reason"]


def test_min_consecutive_successes(server):
    recovered = gate(url=server.url("/recover/a/3"), requests=10, max_error_rate=0.5, min_consecutive_successes=7)
    assert recovered["passed"] is True and recovered["consecutive_successes"] == 7
    failing = gate(url=server.url("/fail-last/b/8"), requests=10, max_error_rate=0.5, min_consecutive_successes=1)
    assert failing["passed"] is False
    assert failing["reason"] == "consecutive successes 0 < 1"


def test_baseline_regression(server):
    baseline = gate(url=server.url("/fast"), requests=5)
    assert baseline["passed"] is True
    slower = gate(url=server.url("/slow/200"), requests=3, baseline=baseline, max_regression=0.5)
    assert slower["passed"] is False
    assert re.match(r"p50 2\d\d ms > baseline \d+(\.\d+)? ms \+ 50\.0% \(\d+(\.\d+)? ms\)", slower["breaches"][0])
    slow_baseline = gate(url=server.url("/slow/200"), requests=3)
    same = gate(url=server.url("/slow/200"), requests=3, baseline=slow_baseline, max_regression=0.5)
    assert same["passed"] is True


def test_fail_on_breach_false_only_reports(server):
    result = health_gate.run(module(url=server.url("/down"), requests=2, fail_on_breach=False))
    assert result["passed"] is False and result["reason"] == "error rate 100.0% > 0.0%"


def test_no_completed_sample_is_inconclusive(server):
    result = gate(url=server.url("/fast"), duration=1e-9)
    assert result["samples"] == 0
    assert result["passed"] is False and result["reason"] == "inconclusive: no request completed"
    report = health_gate.run(module(url=server.url("/fast"), duration=1e-9, fail_on_breach=False))
    assert report["passed"] is False


# ------------------------------------------------------------------ waiting and sampling

def test_startup_wait_in_fractions_of_a_second(server):
    path = "/startup/w1/400"
    result = gate(url=server.url(path), wait_timeout=10, wait_interval=0.05, requests=3)
    assert result["passed"] is True and result["wait_s"] >= 0.4
    # Whole-second polling would have sent 2 probes; 0.05 s polling sends at least 5 in 0.4 s.
    assert server.requests_to(path) - 3 >= 5


def test_service_that_never_comes_up_is_inconclusive(server):
    result = gate(url=server.url("/startup/never/600000"), wait_timeout=0.3, wait_interval=0.05)
    assert result["passed"] is False
    assert result["reason"] == "inconclusive: not up within wait_timeout 0.3 s"
    assert result["samples"] == 0 and result["first_failure"]["status"] == 503


def test_duration_based_sampling(server):
    result = gate(url=server.url("/fast"), duration=0.5, concurrency=2)
    assert result["passed"] is True and result["samples"] > 0 and result["elapsed_s"] >= 0.5


def test_concurrency_sends_requests_in_parallel(server):
    result = gate(url=server.url("/inflight/200"), requests=8, concurrency=8)
    assert result["passed"] is True
    assert server.state.max_inflight == 8


def test_each_thread_keeps_one_connection(server):
    before = server.state.connections
    result = gate(url=server.url("/fast"), requests=40, concurrency=4)
    assert result["passed"] is True and result["samples"] == 40
    assert server.state.connections - before == 4


@pytest.mark.parametrize("path", ["/close", "/drop"])
def test_connections_closed_by_the_server_are_reopened_not_errors(server, path):
    # /close says "Connection: close"; /drop closes without saying so, as an idle timeout
    # does: the next request on that socket fails and is sent again on a new connection.
    before = server.state.connections
    result = gate(url=server.url(path), requests=6, concurrency=1)
    assert result["passed"] is True and result["errors"] == 0 and result["samples"] == 6
    assert server.state.connections - before == 6


# ------------------------------------------------------------------ event-loop sampler (plain http://)

@pytest.fixture
def loop_runs(monkeypatch):
    """The concurrency of every LoopSampler run (the module's sampler for plain http:// URLs)."""
    calls = []
    run = _http.LoopSampler.run

    def spy(self, urls, **kwargs):
        calls.append(kwargs["concurrency"])
        return run(self, urls, **kwargs)
    monkeypatch.setattr(_http.LoopSampler, "run", spy)
    return calls


def _threaded(monkeypatch, **overrides):
    """gate() on the threaded sampler, the path before LoopSampler (still used for https)."""
    with monkeypatch.context() as patch:
        patch.setattr(_http, "loop_applies", lambda urls, follow_redirects: False)
        return gate(**overrides)


def _outcome(result, mode):
    """What must not depend on the sampler: counts, statuses, reasons, first failure."""
    def same(value):
        if isinstance(value, str):
            return re.sub(r"flaky failure #\d+", "flaky failure #N", value.replace(mode, "MODE"))
        if isinstance(value, dict):
            return dict((same(key), same(item)) for key, item in value.items())
        return value
    outcome = dict((key, same(result.get(key))) for key in (
        "passed", "reason", "breaches", "samples", "errors", "error_rate", "status_counts", "first_failure", "msg"))
    outcome["per_url"] = same(dict((url, (f["samples"], f["errors"], f["status_counts"]))
                                   for url, f in result["per_url"].items()))
    outcome["has_latency"] = result["latency_ms"] is not None
    return outcome


@pytest.mark.parametrize("paths, kwargs", [
    (["/fast"], dict(requests=40, json={"checks.redis": "ok"}, max_latency_ms={"p95": 5000})),
    (["/flaky/4"], dict(requests=40, max_error_rate=0.1)),
    (["/fast", "/flaky/2"], dict(requests=16, max_error_rate=0.5)),
    (["/down"], dict(requests=8)),
    (["/wrong-json"], dict(requests=8, json={"status": "ok", "checks.redis": "ok"})),
    (["/old-version"], dict(requests=8, expect_version="1.4.0")),
    (["/version"], dict(requests=8, expect_version="1.3.2")),
    (["/not-json"], dict(requests=8, body_regex="degraded")),
    (["/auth"], dict(requests=8, bearer_token=TOKEN)),
    (["/auth"], dict(requests=8)),
    (["/fast"], dict(requests=8, method="HEAD")),
    (["/fast"], dict(requests=8, method="POST")),
    (["/redirect"], dict(requests=8)),
    (["/chunked"], dict(requests=16, json={"checks.db": "ok"})),
    (["/until-close"], dict(requests=16, json={"checks.db": "ok"})),
    (["/close", "/drop"], dict(requests=16)),
    (["/slow/800"], dict(requests=4, request_timeout=0.2)),
])
def test_loop_sampler_gives_the_threaded_samplers_results(server, monkeypatch, loop_runs, paths, kwargs):
    def urls(mode):
        return [server.url("%s?t=%s-%s" % (path, mode, "-".join(paths))) for path in paths]
    loop = gate(urls=urls("loop"), concurrency=8, **kwargs)
    threaded = _threaded(monkeypatch, urls=urls("thread"), concurrency=8, **kwargs)
    assert loop_runs == [8]
    assert _outcome(loop, "loop") == _outcome(threaded, "thread")


def test_loop_sampler_connection_refused_like_the_threaded_one(monkeypatch, loop_runs):
    loop = gate(url="http://127.0.0.1:9/health", requests=16, concurrency=8, request_timeout=1)
    assert loop_runs == [8]
    assert loop["status_counts"] == {"connection_error": 16} and loop["latency_ms"] is None
    assert loop["first_failure"]["reason"] == "connection failed: [Errno 111] Connection refused"
    threaded = _threaded(monkeypatch, url="http://127.0.0.1:9/health", requests=16, concurrency=8, request_timeout=1)
    assert _outcome(loop, "x") == _outcome(threaded, "x")


def test_loop_sampler_keeps_one_connection_per_concurrent_request(server, loop_runs):
    before = server.state.connections
    result = gate(url=server.url("/fast"), requests=80, concurrency=8)
    assert loop_runs == [8]
    assert result["passed"] is True and result["samples"] == 80 and result["status_counts"] == {"200": 80}
    assert server.state.connections - before == 8


def test_loop_sampler_sends_concurrency_requests_at_once(server, loop_runs):
    server.state.max_inflight = 0
    result = gate(url=server.url("/inflight/200"), requests=8, concurrency=8)
    assert result["passed"] is True and server.state.max_inflight == 8
    assert result["elapsed_s"] < 0.6  # one round of 200 ms, not eight


@pytest.mark.parametrize("path", ["/close", "/drop", "/until-close"])
def test_loop_sampler_reopens_connections_the_server_closed(server, loop_runs, path):
    # /close says so; /drop closes after answering as if keep-alive (the next request on it
    # fails and is sent again once on a new connection); /until-close's body ends at the close.
    before = server.state.connections
    result = gate(url=server.url(path), requests=24, concurrency=8, json={"checks.redis": "ok"})
    assert loop_runs == [8]
    assert result["passed"] is True and result["errors"] == 0 and result["samples"] == 24
    assert server.state.connections - before == 24


def test_loop_sampler_chunked_responses_keep_the_connection(server, loop_runs):
    before = server.state.connections
    result = gate(url=server.url("/chunked"), requests=24, concurrency=8, json={"checks.redis": "ok"})
    assert result["passed"] is True and result["status_counts"] == {"200": 24}
    assert server.state.connections - before == 8


def test_loop_sampler_timeout_does_not_hold_the_other_connections(server, loop_runs):
    fast, slow = server.url("/fast?t=loop-timeout"), server.url("/slow/800?t=loop-timeout")
    result = gate(urls=[fast, slow], requests=8, concurrency=4, request_timeout=0.3, max_error_rate=0.5)
    assert loop_runs == [4]
    assert result["per_url"][fast]["status_counts"] == {"200": 4}
    assert result["per_url"][slow]["status_counts"] == {"timeout": 4}
    assert result["per_url"][slow]["first_failure"]["reason"] == "timed out: no answer within the request timeout of 0.3 s"
    assert result["passed"] is True and result["elapsed_s"] < 0.8


def test_loop_sampler_duration(server, loop_runs):
    result = gate(url=server.url("/fast"), duration=0.3, concurrency=8)
    assert loop_runs == [8]
    assert result["passed"] is True and result["samples"] >= 8 and result["elapsed_s"] >= 0.3
    assert result["status_counts"] == {"200": result["samples"]}


@pytest.mark.parametrize("timestamps", [True, False])
def test_loop_sampler_latency_excludes_the_wait_in_the_socket_buffer(server, monkeypatch, loop_runs, timestamps):
    # Judging each response takes 50 ms here, while the other connection's response has
    # already arrived: with the kernel's arrival timestamps that wait is not latency; without
    # them (the fallback, when the kernel gives none) a response ends when it is read.
    judged = _http.LoopSampler._judged

    def slow_judged(self, *args):
        time.sleep(0.05)
        return judged(self, *args)
    monkeypatch.setattr(_http.LoopSampler, "_judged", slow_judged)
    if not timestamps:
        monkeypatch.setattr(_http_loop, "SO_TIMESTAMPNS", None)
    elif _http_loop.SO_TIMESTAMPNS is None:
        pytest.skip("no SO_TIMESTAMPNS on this platform")
    result = gate(url=server.url("/fast"), requests=12, concurrency=2)
    assert loop_runs == [2] and result["passed"] is True and result["samples"] == 12
    if timestamps:
        assert result["latency_ms"]["p50"] < 20, result["latency_ms"]
    else:
        assert result["latency_ms"]["p50"] > 40, result["latency_ms"]


def test_https_and_redirects_keep_the_threaded_sampler(server, loop_runs):
    assert gate(url=server.url("/redirect"), requests=4, concurrency=2, follow_redirects=True)["passed"] is True
    assert loop_runs == []


# ------------------------------------------------------------------ TLS

def test_tls_options(tls_server):
    url = tls_server.url("/fast")
    untrusted = gate(url=url, requests=1)
    assert untrusted["status_counts"] == {"tls_error": 1}
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted["first_failure"]["reason"]
    assert gate(url=url, requests=1, ca_cert=tls_server.cert)["passed"] is True
    assert gate(url=url, requests=1, validate_certs=False)["passed"] is True


# ------------------------------------------------------------------ through Ansible

def test_failing_gate_through_ansible_names_everything(server):
    url = server.url("/flaky/4?t=ansible")
    result = run_module("health_gate", {"url": url, "requests": 40, "concurrency": 4, "max_error_rate": 0.1,
                                        "max_latency_ms": {"p95": 5000}})
    assert result["failed"] is True
    assert result["msg"].startswith("health_gate failed: error rate 25.0% > 10.0% | statuses: 200 x30, 500 x10 | "
                                    "first failure: 500 GET " + url + ": status 500 not in expected [200]; body: ")
    assert result["passed"] is False and result["samples"] == 40 and result["errors"] == 10
    assert result["latency_ms"]["p95"] is not None
    assert "Traceback" not in result["_stdout"]


def test_bearer_token_never_appears_in_output(server):
    result = run_module("health_gate", {"url": server.url("/auth"), "bearer_token": TOKEN, "requests": 2},
                        verbosity=3)
    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True and result["changed"] is False
    assert TOKEN not in result["_stdout"]


def test_bearer_token_from_environment(server):
    # Exported in the controller's environment (as AWX credentials do). A task's
    # `environment:` keyword would be echoed by Ansible itself at -vvv.
    result = run_module("health_gate", {"url": server.url("/auth"), "requests": 1},
                        env={"HEALTH_GATE_BEARER_TOKEN": TOKEN}, verbosity=3)
    assert result["passed"] is True
    assert TOKEN not in result["_stdout"]


def test_check_mode_still_measures_a_get(server):
    result = run_module("health_gate", {"url": server.url("/fast"), "requests": 3}, check=True)
    assert result["passed"] is True and result["samples"] == 3 and result["changed"] is False


@pytest.mark.parametrize("args, msg", [
    ({"url": "htp//127.0.0.1/health"}, "url 'htp//127.0.0.1/health' is not a valid URL: the scheme must be http or https"),
    ({"url": "http://127.0.0.1:9/", "max_error_rate": 1.5}, "max_error_rate must be a fraction between 0 and 1 (0.01 = 1%), got 1.5"),
    ({"url": "http://127.0.0.1:9/", "max_error_rate": -0.5}, "max_error_rate: must be 0 or more, got -0.5"),
    ({"url": "http://127.0.0.1:9/", "max_latency_ms": {"p95": -1}}, "max_latency_ms.p95 must be 0 or greater, got -1"),
    ({"url": "http://127.0.0.1:9/", "max_latency_ms": {"p95": 800, "max": 500}},
     "max_latency_ms.p95 (800 ms) is greater than max_latency_ms.max (500 ms)"),
    ({"url": "http://127.0.0.1:9/", "json": {"checks[?(@.ok)]": True}},
     "json: JSON path 'checks[?(@.ok)]' has unsupported syntax"),
])
def test_bad_input_through_ansible_is_a_clear_message(args, msg):
    result = run_module("health_gate", args)
    assert result["failed"] is True
    assert msg in result["msg"]
    assert "Traceback" not in result["_stdout"]
