# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Percentiles, threshold checks and reason text for the gates (pure, no I/O).

A gate measures figures, compares them with thresholds, and says in one line every
threshold that was breached, with the measured value and the limit:
``p95 812 ms > 500 ms; error rate 4.0% > 1.0%``. These functions do all of that without
touching the network, so they are tested by tables in tests/unit.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

LATENCY_KEYS = ("p50", "p95", "p99", "max")
INCONCLUSIVE = "inconclusive"


def percentile(sorted_values, q):
    """The ``q``-th percentile (0..100) of an ascending list, linear interpolation.

    Same definition as numpy's default (``linear``): rank ``(n - 1) * q / 100``.
    Returns None for an empty list.
    """
    if not sorted_values:
        return None
    if not 0 <= q <= 100:
        raise ValueError("percentile q must be within 0..100, got %r" % (q,))
    rank = (len(sorted_values) - 1) * q / 100.0
    low = int(math.floor(rank))
    high = int(math.ceil(rank))
    if low == high:
        return float(sorted_values[low])
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def latency_summary(values_ms):
    """``{min, p50, p95, p99, max, mean}`` in ms (3 decimals) of a list, or None when empty."""
    if not values_ms:
        return None
    ordered = sorted(values_ms)
    summary = dict(
        min=ordered[0],
        p50=percentile(ordered, 50),
        p95=percentile(ordered, 95),
        p99=percentile(ordered, 99),
        max=ordered[-1],
        mean=sum(ordered) / len(ordered),
    )
    return dict((key, round(float(value), 3)) for key, value in summary.items())


def trailing_streak(outcomes):
    """Number of consecutive True values at the end of ``outcomes`` (completion order)."""
    streak = 0
    for ok in reversed(outcomes):
        if not ok:
            break
        streak += 1
    return streak


def format_ms(value):
    """``812.4`` -> ``812``, ``12.34`` -> ``12.3``, ``0.456`` -> ``0.46`` (ms, for reasons)."""
    if value >= 100:
        return "%.0f" % value
    if value >= 10:
        return "%.1f" % value
    return "%.2f" % value


def format_pct(fraction):
    """A fraction as a percentage with one decimal: ``0.04`` -> ``4.0%``.

    Tiny non-zero values keep two significant digits so they never print as ``0.0%``.
    """
    pct = fraction * 100.0
    if 0 < pct < 0.1:
        return "%.2g%%" % pct
    return "%.1f%%" % pct


def validate_fraction(name, value, allow_none=True):
    """Raise ProdreadyError unless ``value`` is a fraction within 0..1 (e.g. 0.01 = 1%)."""
    if value is None:
        if allow_none:
            return
        raise ProdreadyError("%s is required" % name)
    if value < 0 or value > 1:
        raise ProdreadyError("%s must be a fraction between 0 and 1 (0.01 = 1%%), got %s" % (name, value))


def validate_latency_thresholds(limits, name="max_latency_ms"):
    """Check a ``{p50, p95, p99, max}`` dict: known keys, numbers >= 0, ordered.

    A percentile can never exceed a higher one or the maximum, so ``p95: 800`` with
    ``max: 500`` can never pass and is rejected as a typo rather than silently judged.
    Returns the dict with float values.
    """
    if limits is None:
        return {}
    if not isinstance(limits, dict):
        raise ProdreadyError("%s must be a dict with keys among %s, got %r"
                             % (name, ", ".join(LATENCY_KEYS), limits))
    clean = {}
    for key, value in limits.items():
        if key not in LATENCY_KEYS:
            raise ProdreadyError("%s has an unknown key %r: use %s"
                                 % (name, key, ", ".join(LATENCY_KEYS)))
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ProdreadyError("%s.%s must be a number of milliseconds, got %r" % (name, key, value))
        if number < 0 or math.isnan(number):
            raise ProdreadyError("%s.%s must be 0 or greater, got %s" % (name, key, value))
        clean[key] = number
    present = [key for key in LATENCY_KEYS if key in clean]
    for i, low in enumerate(present):
        for high in present[i + 1:]:
            if clean[low] > clean[high]:
                raise ProdreadyError(
                    "%s.%s (%s ms) is greater than %s.%s (%s ms): a %s can never exceed the %s, "
                    "so this gate could never pass" % (name, low, format_ms(clean[low]), name, high,
                                                       format_ms(clean[high]), low, high))
    return clean


def validate_baseline(baseline):
    """Check that ``baseline`` looks like an earlier health_gate result; return its latency dict."""
    if not isinstance(baseline, dict):
        raise ProdreadyError("baseline must be an earlier health_gate result (a dict with latency_ms), got %r"
                             % (baseline,))
    latency = baseline.get("latency_ms")
    if not isinstance(latency, dict):
        raise ProdreadyError("baseline has no latency_ms figures (was the baseline run inconclusive?); "
                             "pass the registered result of an earlier health_gate")
    figures = {}
    for key in ("p50", "p95", "p99"):
        if latency.get(key) is not None:
            try:
                figures[key] = float(latency[key])
            except (TypeError, ValueError):
                raise ProdreadyError("baseline.latency_ms.%s must be a number, got %r" % (key, latency[key]))
    if not figures:
        raise ProdreadyError("baseline.latency_ms has none of p50, p95, p99")
    return figures


def gate_breaches(figures, max_error_rate=None, max_latency_ms=None,
                  min_consecutive_successes=None, baseline=None, max_regression=None):
    """Every breached threshold of an HTTP sample, as a list of short sentences.

    ``figures`` holds ``samples``, ``error_rate``, ``latency_ms`` (summary or None) and
    ``consecutive_successes``. No completed sample is never a pass: the only breach is then
    ``inconclusive: no request completed``. ``baseline`` is the latency dict returned by
    validate_baseline(); ``max_regression`` a fraction (0.2 = 20% slower allowed).
    """
    if not figures.get("samples"):
        return [INCONCLUSIVE + ": no request completed"]
    breaches = []
    latency = figures.get("latency_ms") or {}
    for key in LATENCY_KEYS:
        limit = (max_latency_ms or {}).get(key)
        if limit is None:
            continue
        measured = latency.get(key)
        if measured is None:
            breaches.append("%s unknown (no response received) > %s ms" % (key, format_ms(limit)))
        elif measured > limit:
            breaches.append("%s %s ms > %s ms" % (key, format_ms(measured), format_ms(limit)))
    if max_error_rate is not None and figures["error_rate"] > max_error_rate:
        breaches.append("error rate %s > %s" % (format_pct(figures["error_rate"]), format_pct(max_error_rate)))
    if min_consecutive_successes and figures.get("consecutive_successes", 0) < min_consecutive_successes:
        breaches.append("consecutive successes %d < %d" % (figures.get("consecutive_successes", 0),
                                                           min_consecutive_successes))
    if baseline and max_regression is not None:
        for key in ("p50", "p95", "p99"):
            if key not in baseline or latency.get(key) is None:
                continue
            allowed = baseline[key] * (1.0 + max_regression)
            if latency[key] > allowed:
                breaches.append("%s %s ms > baseline %s ms + %s (%s ms)"
                                % (key, format_ms(latency[key]), format_ms(baseline[key]),
                                   format_pct(max_regression), format_ms(allowed)))
    return breaches


def format_status_counts(status_counts):
    """``{"200": 96, "500": 4}`` -> ``200 x96, 500 x4`` (numeric statuses first)."""
    def order(item):
        key = str(item[0])
        return (0, int(key), "") if key.isdigit() else (1, 0, key)
    return ", ".join("%s x%d" % (key, count) for key, count in sorted(status_counts.items(), key=order))


def format_failure(first_failure):
    """One line for the first failing response: status, method, URL, what was wrong, body excerpt."""
    if not first_failure:
        return ""
    status = first_failure.get("status")
    text = "%s %s %s" % (status if status is not None else "no response",
                         first_failure.get("method", "GET"), first_failure.get("url"))
    if first_failure.get("reason"):
        text += ": %s" % first_failure["reason"]
    if first_failure.get("body_excerpt"):
        text += "; body: %r" % first_failure["body_excerpt"]
    return text


def gate_message(name, breaches, status_counts=None, first_failure=None):
    """The failure message: ``name failed: <breaches>; statuses: ...; first failure: ...``."""
    msg = "%s failed: %s" % (name, "; ".join(breaches))
    if status_counts:
        msg += " | statuses: %s" % format_status_counts(status_counts)
    if first_failure:
        msg += " | first failure: %s" % format_failure(first_failure)
    return msg


def hit_ratio(hits, misses):
    """hits / (hits + misses), or None when there was no lookup."""
    total = hits + misses
    if total <= 0:
        return None
    return hits / float(total)


def cache_breaches(figures, min_hit_ratio=None, min_samples=1, max_memory_ratio=None,
                   max_evicted_keys=None):
    """Every breached cache threshold, as short sentences (see gate_breaches).

    ``figures``: ``hits``, ``misses`` (deltas over ``window_s``), ``used_memory``,
    ``maxmemory`` (0 = no limit), ``evicted_keys`` (delta). A hit ratio over fewer than
    ``min_samples`` lookups is ``inconclusive`` and fails, it is never a pass.
    """
    breaches = []
    if min_hit_ratio is not None:
        lookups = figures["hits"] + figures["misses"]
        if lookups < max(min_samples or 0, 1):
            breaches.append("%s: %d hits+misses in %s s < min_samples %d"
                            % (INCONCLUSIVE, lookups, _fmt_seconds(figures.get("window_s", 0)),
                               max(min_samples or 0, 1)))
        else:
            ratio = hit_ratio(figures["hits"], figures["misses"])
            if ratio < min_hit_ratio:
                breaches.append("hit ratio %s < %s (%d hits, %d misses in %s s)"
                                % (format_pct(ratio), format_pct(min_hit_ratio), figures["hits"],
                                   figures["misses"], _fmt_seconds(figures.get("window_s", 0))))
    if max_memory_ratio is not None:
        ratio, limit_name, limit = memory_ratio(figures)
        if ratio is not None and ratio > max_memory_ratio:
            breaches.append("memory %s of %s > %s (%d of %d bytes)"
                            % (format_pct(ratio), limit_name, format_pct(max_memory_ratio),
                               figures["used_memory"], limit))
    if max_evicted_keys is not None and figures.get("evicted_keys") is not None:
        if figures["evicted_keys"] > max_evicted_keys:
            breaches.append("evicted keys %d > %d in %s s" % (figures["evicted_keys"], max_evicted_keys,
                                                              _fmt_seconds(figures.get("window_s", 0))))
    return breaches


def memory_ratio(figures):
    """``(used/limit, limit name, limit)``: maxmemory, or system memory when maxmemory is 0.

    Returns ``(None, None, 0)`` when neither limit is known.
    """
    for key, label in (("maxmemory", "maxmemory"), ("total_system_memory", "system memory")):
        limit = figures.get(key) or 0
        if limit > 0:
            return figures["used_memory"] / float(limit), label, limit
    return None, None, 0


def _fmt_seconds(value):
    return ("%.1f" % value).rstrip("0").rstrip(".") if value else "0"
