"""LoopSampler (plugins/module_utils/_http_loop): judged like the probers, without a server."""

from ansible_collections.prodready.deploy.plugins.module_utils import _http_loop as loop
from ansible_collections.prodready.deploy.plugins.module_utils._http import LeanProber
from ansible_collections.prodready.deploy.plugins.module_utils._http_verdict import build_expectations


def test_loop_sampler_judges_like_the_probers_and_keeps_small_verdicts():
    prober = LeanProber("GET", {}, 1.0, build_expectations([200], json_checks={"status": "ok"}))
    sampler = loop.LoopSampler(prober, ["http://127.0.0.1:9/health"])
    url, big = "http://127.0.0.1:9/health", b'{"status": "down", "pad": "%s"}' % (b"x" * loop.VERDICT_BODY_BYTES)
    sampler.unjudged = [(url, 200, "application/json", b'{"status": "ok"}', 1.0, 1.002),
                        (url, 200, "application/json", b'{"status": "ok"}', 2.0, 2.001),
                        (url, 503, "text/plain; charset=latin-1", b'{"status": "down"}', 3.0, 3.5),
                        (url, 200, "application/json", big, 4.0, 4.1)]
    sampler._judge()
    assert [s["ok"] for s in sampler.samples] == [True, True, False, False]
    assert [round(s["latency_ms"], 6) for s in sampler.samples] == [2.0, 1.0, 500.0, 100.0]
    assert sampler.samples[2] == prober._judged(url, 503, '{"status": "down"}', 3.0, 3.5)
    assert sampler.samples[3]["reason"] == 'JSON status is "down", expected "ok"'
    assert len(sampler.verdicts) == 2 and sampler.unjudged == []  # the big body's verdict is not kept
