"""playbooks/promote.yml: staging first, then production with the very same artifact.

Two simulated hosts of one inventory, `stage1` (group staging, haproxy slot s10) and
`prod1` (group prod, slot s11), run the plain WSGI app of wsgi_app.py without a database.
"""

import json

import pytest
import requests
import yaml

from apptools import retire_test_slot_app
from helpers import ROOT, run_playbook
from wsgi_app import CRASH_AT_START, artifact, local_vars, role_vars, slot_vars

pytestmark = [pytest.mark.slow]


def host_vars(sandbox, base, host, slot_name):
    return role_vars(sandbox, **local_vars(), **slot_vars(sandbox, slot_name),
                     app_name=f"promo-{host}", app_root=str(base / host / "srv"),
                     blue_green_artifact_src=str(base / host) + "/notes-{{ blue_green_version }}.tar.gz")


@pytest.fixture(scope="module")
def site(sandbox, tmp_path_factory):
    base = tmp_path_factory.mktemp("promote")
    hosts = {"stage1": "s10", "prod1": "s11"}
    for host in hosts:
        (base / host).mkdir()
    inventory = base / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "app": {"hosts": {h: host_vars(sandbox, base, h, s) for h, s in hosts.items()}},
        "staging": {"hosts": {"stage1": None}},
        "prod": {"hosts": {"prod1": None}},
    }}}))
    slots = sandbox["services"]["haproxy"]["slots"]
    yield {"base": base, "inventory": inventory,
           "url": {h: "http://127.0.0.1:%d/healthz" % slots[s]["port"] for h, s in hosts.items()}}
    for host, slot in hosts.items():
        retire_test_slot_app(sandbox, f"promo-{host}", ROOT, backend=slots[slot]["backend"])


def build(site, host, version, marker=""):
    artifact(site["base"] / host / f"notes-{version}.tar.gz", version, requirements="", marker=marker)


def served(site, host):
    return requests.get(site["url"][host], timeout=5).json()["build"]["version"]


def state(site, host):
    return json.loads((site["base"] / host / "srv" / "state.json").read_text())


def run_promote(site, version):
    proc = run_playbook(ROOT / "playbooks" / "promote.yml", inventory=site["inventory"],
                        extra_vars={"app_version": version})
    return proc.returncode, proc.flat


def test_promote_deploys_staging_then_production_with_the_same_artifact(site):
    for host in ("stage1", "prod1"):
        build(site, host, "1.0")
    rc, out = run_promote(site, "1.0")
    assert rc == 0, out[-4000:]
    assert served(site, "stage1") == served(site, "prod1") == "1.0"
    assert state(site, "prod1")["artifact"] == state(site, "stage1")["artifact"]
    assert out.index("Deploy to staging") < out.index("Deploy to production")
    assert "promoting 1.0 (artifact sha256 %s)" % state(site, "stage1")["artifact"] in out


def test_production_refuses_an_artifact_that_is_not_the_one_staging_runs(site):
    build(site, "stage1", "1.1")
    build(site, "prod1", "1.1", marker="\n# rebuilt on another machine\n")
    rc, out = run_promote(site, "1.1")
    assert rc != 0
    assert served(site, "stage1") == "1.1"
    assert served(site, "prod1") == "1.0"  # production never switched
    assert "refusing to build a release from it" in out and state(site, "stage1")["artifact"] in out


def test_a_staging_failure_never_reaches_production(site):
    for host in ("stage1", "prod1"):
        build(site, host, "1.2", marker=CRASH_AT_START)
    rc, out = run_promote(site, "1.2")
    assert rc != 0
    flat = " ".join(out.split())  # the yaml callback folds long messages
    assert "stopped in phase start" in flat and "did not stay up: FATAL" in flat, out[-3000:]
    assert "refusing to start: broken build" in flat  # the release's own last log line
    assert "Deploy to production" not in out
    assert served(site, "stage1") == "1.1"
    assert served(site, "prod1") == "1.0"
    assert state(site, "prod1")["live_version"] == "1.0"
