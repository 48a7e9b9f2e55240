"""Several services of one app deployed in order (runbook 001: backend, health check, then
frontend): `-e '{"deploy_services": ["backend", "frontend"]}'`.

Each service is an inventory host of group `service_<name>` (here both on this machine, like
`ansible_host` aliases of one server), haproxy slots s14 (backend) and s15 (frontend); the
plain WSGI app of wsgi_app.py stands in for both.
"""

import json

import pytest
import requests
import yaml

from apptools import retire_test_slot_app
from helpers import ROOT, run_playbook
from wsgi_app import CRASH_AT_START, artifact, local_vars, role_vars, slot_vars

pytestmark = [pytest.mark.slow]

SERVICES = {"backend": "s14", "frontend": "s15"}


@pytest.fixture(scope="module")
def app(sandbox, tmp_path_factory):
    base = tmp_path_factory.mktemp("services")
    haproxy = sandbox["services"]["haproxy"]
    groups = {}
    for name, slot_name in SERVICES.items():
        (base / name).mkdir()
        groups[f"service_{name}"] = {"hosts": {f"web1-{name}": dict(
            slot_vars(sandbox, slot_name),
            app_name=f"svc-{name}",
            app_root=str(base / name / "srv"),
            blue_green_artifact_src=str(base / name) + "/app-{{ blue_green_version }}.tar.gz")}}
    common = role_vars(sandbox, **local_vars())
    inventory = base / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "vars": common,
        "children": {"app": {"children": {g: None for g in groups}}, **groups}}}))
    yield {"base": base, "inventory": inventory,
           "url": {n: "http://127.0.0.1:%d/healthz" % haproxy["slots"][s]["port"] for n, s in SERVICES.items()}}
    for name, slot in SERVICES.items():
        retire_test_slot_app(sandbox, f"svc-{name}", ROOT, backend=haproxy["slots"][slot]["backend"])


def served(app, name):
    return requests.get(app["url"][name], timeout=5).json()["build"]["version"]


def deploy(app, version, services=("backend", "frontend")):
    proc = run_playbook(ROOT / "playbooks" / "deploy.yml", inventory=app["inventory"],
                        extra_vars={"app_version": version, "deploy_services": list(services)})
    out = proc.flat
    # From the first deploy batch on (the preflight play before it names every host).
    return proc.returncode, out[out.find("PLAY [Blue-green deploy]"):]


def test_services_deploy_in_the_order_given_each_gated_before_the_next(app):
    for name in SERVICES:
        artifact(app["base"] / name / "app-1.0.tar.gz", "1.0", requirements="")
    rc, out = deploy(app, "1.0", services=("frontend", "backend"))
    assert rc == 0, out[-4000:]
    assert served(app, "backend") == served(app, "frontend") == "1.0"
    # frontend was live (gated through its router) before backend's first task ran
    assert out.index("svc-frontend 1.0 is live on web1-frontend") < out.index("web1-backend")


def test_a_failing_later_service_switches_the_earlier_ones_back(app):
    artifact(app["base"] / "backend" / "app-1.1.tar.gz", "1.1", requirements="")
    artifact(app["base"] / "frontend" / "app-1.1.tar.gz", "1.1", requirements="", marker=CRASH_AT_START)
    rc, out = deploy(app, "1.1")
    assert rc != 0
    assert out.index("svc-backend 1.1 is live on web1-backend") < out.index("web1-frontend")
    assert served(app, "frontend") == "1.0"  # never switched: rejected before the switch
    assert served(app, "backend") == "1.0", out[-4000:]  # switched, then switched back
    state = json.loads((app["base"] / "backend" / "srv" / "state.json").read_text())
    assert state["live_version"] == "1.0"
