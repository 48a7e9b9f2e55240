"""The probers of plugins/module_utils/_http: which one, TLS files, sampling, proxies without requests."""

import os
import subprocess
import sys

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _http
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError
from ansible_collections.prodready.deploy.plugins.module_utils._http_verdict import build_expectations


@pytest.mark.parametrize("method, status, expected", [
    ("POST", 303, "GET"), ("PUT", 303, "GET"), ("HEAD", 303, "HEAD"),
    ("POST", 302, "GET"), ("POST", 301, "GET"), ("PUT", 302, "PUT"),
    ("POST", 307, "POST"), ("DELETE", 308, "DELETE"), ("GET", 302, "GET"),
])
def test_redirect_method_follows_requests_rules(method, status, expected):
    assert _http.redirect_method(method, status) == expected


@pytest.mark.parametrize("env, url, proxied", [
    ({}, "http://10.0.0.5/health", False),
    ({"http_proxy": "http://proxy:3128"}, "http://10.0.0.5/health", True),
    ({"http_proxy": "http://proxy:3128", "no_proxy": "10.0.0.5"}, "http://10.0.0.5/health", False),
    ({"https_proxy": "http://proxy:3128"}, "http://10.0.0.5/health", False),
    ({"https_proxy": "http://proxy:3128"}, "https://app.example.com/health", True),
])
def test_environment_proxy_decides_the_prober(monkeypatch, env, url, proxied):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert bool(_http.environment_proxy(url)) is proxied
    prober = _http.make_prober([url], "GET", {}, 1.0, build_expectations([200]))
    assert type(prober).__name__ == ("Prober" if proxied else "LeanProber")
    prober.close()


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(verify="/nonexistent/ca.pem"), "ca_cert '/nonexistent/ca.pem' cannot be used as a CA bundle"),
    (dict(cert="/nonexistent/client.pem"), "client_cert '/nonexistent/client.pem' / client_key None cannot be loaded"),
    (dict(cert=("/nonexistent/c.pem", "/nonexistent/k.pem")), "client_key '/nonexistent/k.pem' cannot be loaded"),
])
def test_tls_files_fail_before_the_first_request(kwargs, fragment):
    with pytest.raises(ProdreadyError) as err:
        _http.make_prober(["https://127.0.0.1:9/"], "GET", {}, 1.0, build_expectations([200]), **kwargs)
    assert fragment in str(err.value)


def test_plain_http_needs_no_tls_files():
    prober = _http.make_prober(["http://127.0.0.1:9/"], "GET", {}, 1.0, build_expectations([200]),
                               cert="/nonexistent/client.pem")
    assert type(prober).__name__ == "LeanProber"


class _CountingProber(_http.Sampling):
    """A prober without I/O: probe() records the switch interval it ran under."""

    def __init__(self):
        self.seen = []
        self.expectations = build_expectations([200])

    def probe(self, url):
        import sys
        self.seen.append(sys.getswitchinterval())
        return self._sample(url, True, 200, "200", 1.0, None, "", 0.0)


@pytest.mark.parametrize("concurrency, during", [(1, None), (4, _http.SAMPLING_SWITCH_INTERVAL_S)])
def test_sample_shortens_the_switch_interval_only_while_sampling(concurrency, during):
    import sys
    before = sys.getswitchinterval()
    prober = _CountingProber()
    samples, elapsed = prober.sample(["u"], count=8, concurrency=concurrency)
    assert len(samples) == 8 and sys.getswitchinterval() == before
    expected = before if during is None else during
    assert all(abs(seen - expected) < 1e-9 for seen in prober.seen), prober.seen  # stored as microseconds


@pytest.mark.parametrize("urls, follow, applies", [
    (["http://127.0.0.1:8080/health"], False, True),
    (["http://127.0.0.1:8080/health", "http://10.0.0.5/ready"], False, True),
    (["http://127.0.0.1:8080/health", "https://app.example.com/ready"], False, False),
    (["http://127.0.0.1:8080/health"], True, False),
])
def test_loop_applies(monkeypatch, urls, follow, applies):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert _http.loop_applies(urls, follow) is applies
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    assert _http.loop_applies(urls, follow) is False


# ------------------------------------------------------------------ environment proxies, decided without requests

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
              "NO_PROXY", "REQUEST_METHOD")


@pytest.mark.parametrize("env", [
    {},
    {"http_proxy": "http://proxy:3128"},
    {"HTTP_PROXY": "http://proxy:3128", "HTTPS_PROXY": "http://sproxy:3128"},
    {"all_proxy": "http://proxy:3128"},  # requests' environ proxies are looked up by scheme only
    {"http_proxy": "http://proxy:3128", "no_proxy": "10.0.0.0/8"},
    {"http_proxy": "http://proxy:3128", "no_proxy": "10.0.0.0/33,192.168.1.7"},
    {"http_proxy": "http://proxy:3128", "NO_PROXY": "example.com"},
    {"http_proxy": "http://proxy:3128", "no_proxy": ".example.com, localhost"},
    {"http_proxy": "http://proxy:3128", "https_proxy": "http://proxy:3128", "no_proxy": "app.example.com:8443"},
    {"http_proxy": "http://proxy:3128", "no_proxy": "*"},
    {"http_proxy": "http://proxy:3128", "no_proxy": "ample.com,127.0.0.1"},
    {"http_proxy": "http://proxy:3128", "no_proxy": "", "NO_PROXY": "example.com"},
])
@pytest.mark.parametrize("url", [
    "http://10.0.0.5/health", "http://192.168.1.7:8080/", "http://127.0.0.1:8001/health",
    "http://app.example.com/", "https://app.example.com:8443/ready", "https://app.example.com/ready",
    "http://example.com/", "http://notexample.com/", "http://localhost:8000/", "http://[::1]:8000/",
])
def test_environment_proxy_decides_as_requests_does(monkeypatch, env, url):
    requests_utils = pytest.importorskip("requests.utils")
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    expected = requests_utils.get_environ_proxies(url).get(url.split(":", 1)[0]) or None
    assert _http.environment_proxy(url) == expected


@pytest.mark.parametrize("url, no_proxy, exempt", [
    ("http://10.1.2.3/", "10.0.0.0/8", True),
    ("http://11.1.2.3/", "10.0.0.0/8", False),
    ("http://10.1.2.3/", "10.1.2.3", True),
    ("http://10.1.2.3/", "10.1.2.4,10.1.2.3/32", True),
    ("http://a.example.com/", "example.com", True),
    ("http://a.example.com/", ".example.com", True),
    ("http://badexample.com/", "example.com", False),
    ("http://a.example.com:81/", "a.example.com:80", False),
    ("http://a.example.com:80/", "a.example.com:80", True),
    ("http://a.example.com/", "", False),
    ("http://a.example.com/", None, False),
])
def test_no_proxy_exempts(url, no_proxy, exempt):
    assert _http.no_proxy_exempts(url, no_proxy) is exempt


def _python(code, env=None):
    """Run ``code`` in a fresh interpreter with the collection importable; its stdout."""
    full_env = dict((k, v) for k, v in os.environ.items() if k not in PROXY_VARS)
    full_env.update(env or {}, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


GATE_A_PLAIN_URL = """
import sys
from types import SimpleNamespace
from ansible_collections.prodready.deploy.plugins.modules import health_gate, rollback_start
params = dict((name, spec.get("default")) for name, spec in health_gate.argument_spec().items())
params.update(url="http://127.0.0.1:9/health", requests=2, concurrency=2, fail_on_breach=False,
              json={"status": "ok"}, expect_version="1.0")
result = health_gate.run(SimpleNamespace(params=params, check_mode=False))
assert result["samples"] == 2 and result["status_counts"] == {"connection_error": 2}, result
print(sorted(name for name in ("requests", "urllib3") if name in sys.modules))
"""


def test_a_plain_http_gate_never_imports_requests():
    assert _python(GATE_A_PLAIN_URL) == "[]"


def test_a_proxied_url_imports_requests_and_uses_it():
    code = ("import sys\n"
            "from ansible_collections.prodready.deploy.plugins.module_utils import _http, _http_verdict\n"
            "prober = _http.make_prober(['http://10.0.0.5/health'], 'GET', {}, 1.0, "
            "_http_verdict.build_expectations([200]))\n"
            "print(type(prober).__name__, 'requests' in sys.modules)")
    assert _python(code, env={"http_proxy": "http://127.0.0.1:9"}) == "Prober True"


def test_a_proxied_url_without_requests_names_the_library(monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setitem(sys.modules, "requests", None)  # "import requests" raises ImportError
    with pytest.raises(ProdreadyError) as err:
        _http.make_prober(["http://10.0.0.5/health"], "GET", {}, 1.0, build_expectations([200]))
    assert "Failed to import the required Python library (requests)" in str(err.value)
    assert "environment proxy" in str(err.value) and "exception" in err.value.details
