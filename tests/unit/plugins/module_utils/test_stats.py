"""Percentiles, thresholds and reason text: plugins/module_utils/_stats.py."""

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _stats
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError


@pytest.mark.parametrize("values, q, expected", [
    ([], 50, None),
    ([5], 0, 5.0), ([5], 99, 5.0),
    ([1, 2, 3, 4], 50, 2.5),
    ([1, 2, 3, 4, 5], 50, 3.0),
    (list(range(1, 101)), 95, 95.05),
    (list(range(1, 101)), 99, 99.01),
    (list(range(1, 101)), 100, 100.0),
    ([10, 20], 25, 12.5),
])
def test_percentile(values, q, expected):
    result = _stats.percentile(values, q)
    assert result == (pytest.approx(expected) if expected is not None else None)


def test_percentile_rejects_q_out_of_range():
    with pytest.raises(ValueError):
        _stats.percentile([1, 2], 101)


def test_latency_summary():
    assert _stats.latency_summary([]) is None
    summary = _stats.latency_summary([4.0, 1.0, 3.0, 2.0])
    assert summary == {"min": 1.0, "p50": 2.5, "p95": 3.85, "p99": 3.97, "max": 4.0, "mean": 2.5}


@pytest.mark.parametrize("outcomes, expected", [
    ([], 0), ([True, True], 2), ([True, False, True, True], 2), ([True, True, False], 0),
])
def test_trailing_streak(outcomes, expected):
    assert _stats.trailing_streak(outcomes) == expected


@pytest.mark.parametrize("value, text", [(812.4, "812"), (500, "500"), (12.34, "12.3"), (0.456, "0.46")])
def test_format_ms(value, text):
    assert _stats.format_ms(value) == text


@pytest.mark.parametrize("value, text", [(0.04, "4.0%"), (0.01, "1.0%"), (0.0, "0.0%"), (0.0002, "0.02%"), (1, "100.0%")])
def test_format_pct(value, text):
    assert _stats.format_pct(value) == text


@pytest.mark.parametrize("limits, fragment", [
    ({"p95": 800, "max": 500}, "max_latency_ms.p95 (800 ms) is greater than max_latency_ms.max (500 ms)"),
    ({"p50": 300, "p99": 200}, "max_latency_ms.p50 (300 ms) is greater than max_latency_ms.p99"),
    ({"p95": -1}, "max_latency_ms.p95 must be 0 or greater, got -1"),
    ({"p90": 100}, "unknown key 'p90'"),
    ({"p95": "fast"}, "max_latency_ms.p95 must be a number of milliseconds"),
    ([100], "must be a dict"),
])
def test_validate_latency_thresholds_rejects(limits, fragment):
    with pytest.raises(ProdreadyError) as err:
        _stats.validate_latency_thresholds(limits)
    assert fragment in str(err.value)


@pytest.mark.parametrize("limits, expected", [
    (None, {}), ({}, {}), ({"p95": 500, "max": 500}, {"p95": 500.0, "max": 500.0}),
    ({"p50": "20", "p99": 100, "max": None}, {"p50": 20.0, "p99": 100.0}),
])
def test_validate_latency_thresholds_accepts(limits, expected):
    assert _stats.validate_latency_thresholds(limits) == expected


@pytest.mark.parametrize("value, ok", [(None, True), (0, True), (0.5, True), (1, True), (-0.1, False), (5, False)])
def test_validate_fraction(value, ok):
    if ok:
        _stats.validate_fraction("max_error_rate", value)
    else:
        with pytest.raises(ProdreadyError, match="max_error_rate must be a fraction between 0 and 1"):
            _stats.validate_fraction("max_error_rate", value)


@pytest.mark.parametrize("baseline, fragment", [
    ("fast", "baseline must be an earlier health_gate result"),
    ({"passed": False, "latency_ms": None}, "baseline has no latency_ms figures"),
    ({"latency_ms": {"max": 3}}, "has none of p50, p95, p99"),
    ({"latency_ms": {"p95": "x"}}, "baseline.latency_ms.p95 must be a number"),
])
def test_validate_baseline_rejects(baseline, fragment):
    with pytest.raises(ProdreadyError) as err:
        _stats.validate_baseline(baseline)
    assert fragment in str(err.value)


FIG = dict(samples=100, error_rate=0.04, consecutive_successes=3,
           latency_ms={"min": 1.0, "p50": 20.0, "p95": 812.0, "p99": 900.0, "max": 950.0, "mean": 60.0})


@pytest.mark.parametrize("kwargs, expected", [
    ({}, []),
    ({"max_error_rate": 0.05}, []),
    ({"max_latency_ms": {"p95": 500.0}, "max_error_rate": 0.01},
     ["p95 812 ms > 500 ms", "error rate 4.0% > 1.0%"]),
    ({"max_latency_ms": {"p50": 20.0, "max": 1000.0}}, []),
    ({"max_latency_ms": {"p50": 10.0, "p99": 899.0, "max": 900.0}},
     ["p50 20.0 ms > 10.0 ms", "p99 900 ms > 899 ms", "max 950 ms > 900 ms"]),
    ({"min_consecutive_successes": 3}, []),
    ({"min_consecutive_successes": 5}, ["consecutive successes 3 < 5"]),
    ({"baseline": {"p50": 18.0, "p95": 600.0}, "max_regression": 0.2},
     ["p95 812 ms > baseline 600 ms + 20.0% (720 ms)"]),
    ({"baseline": {"p50": 18.0, "p95": 700.0}, "max_regression": 0.2}, []),
    ({"baseline": {"p95": 600.0}, "max_regression": None}, []),
])
def test_gate_breaches(kwargs, expected):
    assert _stats.gate_breaches(FIG, **kwargs) == expected


def test_gate_breaches_no_sample_is_inconclusive_never_pass():
    assert _stats.gate_breaches(dict(samples=0, error_rate=0.0, latency_ms=None)) == \
        ["inconclusive: no request completed"]


def test_gate_breaches_latency_limit_without_any_response():
    fig = dict(samples=3, error_rate=1.0, latency_ms=None, consecutive_successes=0)
    assert _stats.gate_breaches(fig, max_latency_ms={"p95": 100.0}) == \
        ["p95 unknown (no response received) > 100 ms"]


def test_gate_message_names_breaches_statuses_and_first_failure():
    msg = _stats.gate_message("health_gate", ["p95 812 ms > 500 ms", "error rate 4.0% > 1.0%"],
                              {"500": 4, "200": 96, "timeout": 1},
                              {"url": "http://h/health", "method": "GET", "status": 500,
                               "reason": "status 500 not in expected [200]", "body_excerpt": "boom"})
    assert msg == ("health_gate failed: p95 812 ms > 500 ms; error rate 4.0% > 1.0% | statuses: "
                   "200 x96, 500 x4, timeout x1 | first failure: 500 GET http://h/health: "
                   "status 500 not in expected [200]; body: 'boom'")


@pytest.mark.parametrize("hits, misses, expected", [(0, 0, None), (9, 1, 0.9), (0, 5, 0.0)])
def test_hit_ratio(hits, misses, expected):
    assert _stats.hit_ratio(hits, misses) == expected


CACHE = dict(hits=900, misses=100, window_s=5.0, used_memory=950, maxmemory=1000,
             total_system_memory=10000, evicted_keys=3)


@pytest.mark.parametrize("figures, kwargs, expected", [
    (CACHE, {}, []),
    (CACHE, {"min_hit_ratio": 0.9, "min_samples": 1000}, []),
    (CACHE, {"min_hit_ratio": 0.95, "min_samples": 100},
     ["hit ratio 90.0% < 95.0% (900 hits, 100 misses in 5 s)"]),
    (CACHE, {"min_hit_ratio": 0.5, "min_samples": 1001},
     ["inconclusive: 1000 hits+misses in 5 s < min_samples 1001"]),
    (dict(CACHE, hits=0, misses=0), {"min_hit_ratio": 0.5, "min_samples": 0},
     ["inconclusive: 0 hits+misses in 5 s < min_samples 1"]),
    (CACHE, {"max_memory_ratio": 0.9}, ["memory 95.0% of maxmemory > 90.0% (950 of 1000 bytes)"]),
    (dict(CACHE, maxmemory=0), {"max_memory_ratio": 0.9}, []),
    (dict(CACHE, maxmemory=0, used_memory=9500), {"max_memory_ratio": 0.9},
     ["memory 95.0% of system memory > 90.0% (9500 of 10000 bytes)"]),
    (CACHE, {"max_evicted_keys": 3}, []),
    (CACHE, {"max_evicted_keys": 0}, ["evicted keys 3 > 0 in 5 s"]),
])
def test_cache_breaches(figures, kwargs, expected):
    assert _stats.cache_breaches(figures, **kwargs) == expected
