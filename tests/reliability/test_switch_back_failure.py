"""A switch-back that cannot happen is an emergency, said so (haproxy slot s7).

With 1.0.0 live, a release that errors under traffic is deployed; once traffic is on it, the
router's admin socket disappears (this app's path to it is a symlink, removed by a
`before_gate_live` hook: the sandbox's other apps keep theirs). The live gate fails, the
revert cannot switch back: the run must say first that traffic is still on the failing
release, keep the gate's reason, leave the color that serves running and the database
migrated (that release needs it), write the audit line, and leave state.json saying what
is really live, so that `rollback.yml` works once the router is reachable again.
"""

import os

import pytest
import requests

from bluegreen_tools import db_revision, deploy, read_audit, read_state, slot_app, write_inventory
from helpers import ROOT, run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("switch_back_failure")]

SLOT = "s7"
APP = "sbfail"


@pytest.fixture(scope="module")
def stuck(sandbox, tmp_path_factory, app_python):
    base = tmp_path_factory.mktemp("sbfail")
    socket_link = base / "admin.sock"
    os.symlink(sandbox["services"]["haproxy"]["admin_socket"], socket_link)
    hook = base / "lose_the_router.yml"
    hook.write_text("- name: The router's admin socket goes away\n"
                    "  ansible.builtin.file: {path: %s, state: absent}\n" % socket_link)
    overrides = {
        "app_haproxy_admin_socket": str(socket_link),
        "blue_green_hooks": "{{ {'before_gate_live': '%s'} if blue_green_version == '1.2.1' else {} }}" % hook,
        "blue_green_switch_back_retries": 1,
        # The errors release answers 500 to half the requests after its 40th: past the idle gate
        # and the start's probes, within the live gate's 200.
        "blue_green_gate_live": {"requests": 200, "concurrency": 4, "max_error_rate": 0.01,
                                 "max_latency_ms": {"p95": 10000}},
    }
    try:
        with slot_app(sandbox, base, app_python, APP, SLOT, {"1.0.0": "base", "1.2.1": "errors"}, **overrides) as app:
            app["hv"]["blue_green_shared_env"] = dict(app["hv"]["blue_green_shared_env"], SIMULATE_ERRORS_AFTER="40")
            write_inventory(app["inventory"], {"h1": app["hv"]})
            proc = deploy(app["inventory"], "1.2.1", blue_green_db_rollback="downgrade")
            yield dict(app, proc=proc, socket_link=socket_link)
    finally:
        if not socket_link.exists():
            os.symlink(sandbox["services"]["haproxy"]["admin_socket"], socket_link)


def served(url, tries=20):
    """The versions the router answered with over `tries` requests (the errors release fails some)."""
    seen = set()
    for _attempt in range(tries):
        answer = requests.get(url + "/health", timeout=5)
        if answer.status_code == 200:
            seen.add(answer.json()["version"])
    return seen


def test_the_failure_starts_with_traffic_still_on_the_failing_release_and_keeps_the_gates_reason(stuck):
    proc = stuck["proc"]
    assert proc.returncode != 0
    message = proc.flat[proc.flat.index("TRAFFIC IS STILL ON THE FAILING RELEASE"):]
    assert message.startswith("TRAFFIC IS STILL ON THE FAILING RELEASE: sbfail 1.2.1 (green) serves on h1, the "
                              "switch back to 1.0.0 (blue) failed 2 times"), message[:400]
    assert "admin socket" in message[:600] or "admin_socket" in message[:600], message[:600]
    # The gate's own reason is still there, after the emergency.
    assert "stopped in phase gate_live (Gate the new color through the router)" in message
    assert "error rate" in message
    # What is really live: the failing release serves through the router, the database keeps
    # its schema, state.json and the audit log say so.
    assert served(stuck["url"]) == {"1.2.1"}
    assert db_revision(stuck["sandbox"], stuck["db"]) == "0004_audit"
    state = read_state(stuck["root"])
    assert (state["live_color"], state["live_version"], state["previous_version"]) == ("green", "1.2.1", "1.0.0")
    assert state["last_failure"]["phase"] == "gate_live" and state["last_failure"]["switch_back_error"]
    audit = read_audit(stuck["root"])[-1]
    assert (audit["action"], audit["result"], audit["live_version"]) == ("deploy", "switch_back_failed", "1.2.1")


def test_rollback_works_on_what_is_live_once_the_router_is_back(stuck):
    os.symlink(stuck["sandbox"]["services"]["haproxy"]["admin_socket"], stuck["socket_link"])
    proc = run_playbook(ROOT / "playbooks" / "rollback.yml", inventory=stuck["inventory"], timeout=600,
                        extra_vars={"deploy_hosts": "all", "rollback_to": "1.0.0", "rollback_db": "downgrade"})
    assert proc.returncode == 0, proc.output[-3000:]
    assert "already live" not in proc.flat
    assert served(stuck["url"]) == {"1.0.0"}
    assert db_revision(stuck["sandbox"], stuck["db"]) == "0002"
    assert read_state(stuck["root"])["live_version"] == "1.0.0"
