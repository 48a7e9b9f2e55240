# -*- coding: utf-8 -*-
"""The deploy_report callback on a real run: playbooks/flag_rollout.yml with a canary whose
gate fails, enabled by ANSIBLE_CALLBACKS_ENABLED, its directory by PRODREADY_REPORT_DIR.

No app and no shared service: the hosts are local inventory hosts with their own .env files
in tmp_path (process manager `none`).
"""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from apptools import free_port
from helpers import ROOT, run_playbook

PLAYBOOK = ROOT / "playbooks" / "flag_rollout.yml"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SECRET = "report-secret-4b1d9c"


@pytest.fixture(scope="module")
def failed_rollout(tmp_path_factory):
    """One run: a no_log flag write (a secret value), then a two-stage rollout whose second
    stage fails its gate on the canary. Returns (tmp dir, process, report dict, report files)."""
    tmp = tmp_path_factory.mktemp("deploy-report")
    hosts = {}
    for name in ("canary1", "web2"):
        (tmp / name).mkdir()
        (tmp / name / ".env").write_text("A=0\n")
        hosts[name] = {"flag_rollout_env_file": str(tmp / name / ".env"),
                       "flag_rollout_restart": False,
                       "app_root": str(tmp / name),
                       "ansible_connection": "local", "ansible_python_interpreter": PYTHON}
    (tmp / "canary1" / "bad").write_text("")  # the gate fails where this marker exists
    inventory = tmp / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"app": {"hosts": hosts}}))
    (tmp / "secret.env").write_text("")
    playbook = tmp / "run.yml"
    playbook.write_text(yaml.safe_dump([
        {"name": "A secret written with no_log", "hosts": "canary1", "gather_facts": False, "tasks": [
            {"name": "Write the token", "no_log": True, "prodready.deploy.feature_flag": {
                "backend": "env_file", "path": str(tmp / "secret.env"), "flags": {"API_TOKEN": SECRET}}}]},
        {"ansible.builtin.import_playbook": str(PLAYBOOK)},
    ]))
    gate = {"command": {"name": "no marker",
                        "argv": ["test", "!", "-e", "{{ flag_rollout_env_file | dirname }}/bad"]}}
    stages = [{"name": "ok", "flags": {"B": 1}, "hosts": ["canary1"]},
              {"name": "bad", "flags": {"A": 1}, "hosts": ["canary1"], "gates": gate}]
    reports = tmp / "reports"
    proc = run_playbook(playbook, inventory=inventory, extra_vars={"flag_rollout_stages": stages},
                        env={"ANSIBLE_CALLBACKS_ENABLED": "prodready.deploy.deploy_report",
                             "PRODREADY_REPORT_DIR": str(reports)})
    files = sorted(reports.iterdir()) if reports.exists() else []
    report = json.loads(files[0].read_text()) if files and files[0].suffix == ".json" else None
    return tmp, proc, report, files


def test_report_files_are_private_and_hold_no_secret(failed_rollout):
    tmp, proc, report, files = failed_rollout
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert [f.suffix for f in files] == [".json", ".md"], out
    assert files[0].stem == files[1].stem and files[0].name.startswith("deploy-report-")
    assert stat.S_IMODE((tmp / "reports").stat().st_mode) == 0o700
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert SECRET not in path.read_text()
    assert SECRET not in out
    assert SECRET in (tmp / "secret.env").read_text()  # the no_log task did run
    # The no_log result is there as a fact, without its values.
    canary = report["hosts"]["canary1"]["events"]
    assert (canary[0]["kind"], canary[0]["task"], canary[0]["status"]) == ("censored", "Write the token", "changed")


def test_report_tells_each_host_what_happened_and_why_it_stopped(failed_rollout):
    tmp, proc, report, files = failed_rollout
    assert report["outcome"] == "failed" and report["playbooks"] == ["run.yml"]
    assert sorted(report["hosts"]) == ["canary1", "web2"]
    stages = {host: [(e["stage"], e["action"]) for e in entry["events"] if e["kind"] == "stage"]
              for host, entry in report["hosts"].items()}
    assert stages == {
        "canary1": [("ok", "apply"), ("ok", "gate-pass"), ("bad", "apply"), ("bad", "gate-fail"), ("bad", "revert")],
        "web2": [("ok", "apply"), ("ok", "gate-pass"), ("bad", "revert")],
    }
    canary = report["hosts"]["canary1"]
    flags = [e["flags"] for e in canary["events"] if e["kind"] == "flags"]
    # applied ok, applied bad, then the revert restores bad then ok (previous -> current)
    assert flags == [{"B": {"previous": None, "current": "1"}}, {"A": {"previous": "0", "current": "1"}},
                     {"A": {"previous": "1", "current": "0"}}, {"B": {"previous": "1", "current": None}}]
    for host, reverted in (("canary1", "restored bad, ok"), ("web2", "restored ok")):
        entry = report["hosts"][host]
        assert entry["outcome"] == "failed"
        assert entry["stopped_reason"].startswith("flag_rollout: stage 'bad' gate failed: canary1: command no marker: exit 1")
        assert entry["reverted"] == [reverted]
        assert (tmp / host / ".env").read_text() == "A=0\n"
    # Times are in order and the same audit entries as on the hosts.
    times = [e["time"] for e in canary["events"]]
    assert times == sorted(times)


def test_summary_is_printed_one_block_per_host(failed_rollout):
    tmp, proc, report, files = failed_rollout
    summary = proc.stdout[proc.stdout.index("DEPLOY REPORT: FAILED (run.yml)"):]
    lines = summary.splitlines()
    assert lines[1] == "hosts: 2 failed"  # the hosts counted by outcome
    assert lines[2] == "canary1: FAILED"
    web2 = lines.index("web2: FAILED")
    canary_block, web2_block = lines[3:web2], lines[web2 + 1:]
    assert "  - stage bad: gate-fail (command no marker: exit 1 )" in canary_block
    assert "  reverted: restored bad, ok" in canary_block
    assert any(line.startswith("  stopped: flag_rollout: stage 'bad' gate failed: canary1") for line in canary_block)
    assert "  - stage bad: apply (changed A)" not in web2_block
    assert "  reverted: restored ok" in web2_block
    assert "report: %s, %s" % (files[0], files[1]) in summary
    markdown = files[1].read_text()
    assert "## canary1: failed" in markdown and "## web2: failed" in markdown


# ---------------------------------------------------------------------------------------------
# Fleet work on real runs: simulated hosts (ansible_connection local) behind a private haproxy
# whose backend holds every host's two colors (all pointing at one in-process HTTP server), the
# router host r1 outside the plays. The playbooks do fleet work the way the blue_green role does
# it: router tasks delegated to r1, a run_once fleet switch with a list of servers and its
# switch back, the fleet gate run once, set_fact with delegate_facts handing each host its own
# entry, and the hosts already switched switched back from the failing host (delegate_to them).

FLEET_HOSTS = {"rolling": ["h1", "h2", "h3"], "fleet_bad": ["g1", "g2"], "fleet_ok": ["f1", "f2"]}

HAPROXY_CFG = """global
    stats socket %(sock)s mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:%(front)d
    default_backend be_app
backend be_app
    option httpchk GET /health
    http-check expect status 200
    default-server inter 200ms fall 2 rise 1
%(servers)s
"""

ROLLING_PLAYBOOK = r"""
- name: Rolling deploy (serial 2, then 1)
  hosts: rolling
  gather_facts: false
  serial: [2, 1]
  vars:
    host_servers: "{{ {inventory_hostname ~ '-blue': none, inventory_hostname ~ '-green': none} }}"
    peers: >-
      {{ ansible_play_hosts_all | difference([inventory_hostname]) | map('extract', hostvars)
         | selectattr('deployed', 'defined') | map(attribute='inventory_hostname') | sort | list }}
  tasks:
    - name: Hand each host of the batch its plan
      ansible.builtin.set_fact:
        prodready_report: {kind: note, text: "plan: {{ item }}-blue -> {{ item }}-green"}
      delegate_to: "{{ item }}"
      delegate_facts: true
      loop: "{{ ansible_play_batch }}"
      run_once: true

    - name: Deploy with automatic revert
      block:
        - name: Send traffic to the new color
          prodready.deploy.router_switch:
            router: haproxy
            admin_socket: "{{ admin_socket }}"
            servers: "{{ host_servers }}"
            live: "{{ inventory_hostname }}-green"
          delegate_to: r1

        - name: Gate the new color through the router
          prodready.deploy.health_gate:
            url: "http://127.0.0.1:{{ front }}/{{ 'broken' if inventory_hostname == 'h3' else 'health' }}"
            requests: 3

        - name: Record the new state
          prodready.deploy.deploy_state:
            path: "{{ root }}/{{ inventory_hostname }}/state.json"
            update: {host: "{{ inventory_hostname }}", live_color: green, live_version: "2.0", previous_version: "1.0"}
            audit_log: "{{ root }}/{{ inventory_hostname }}/audit.log"
            audit: {action: deploy, result: success, version: "2.0"}

        - name: Remember this host went live
          ansible.builtin.set_fact:
            deployed: true
      rescue:
        - name: Switch traffic back to the previous color
          prodready.deploy.router_switch:
            router: haproxy
            admin_socket: "{{ admin_socket }}"
            servers: "{{ host_servers }}"
            live: "{{ inventory_hostname }}-blue"
          delegate_to: r1

        - name: Switch traffic back on the hosts already switched
          prodready.deploy.router_switch:
            router: haproxy
            admin_socket: "{{ admin_socket }}"
            servers: "{{ {item ~ '-blue': none, item ~ '-green': none} }}"
            live: "{{ item }}-blue"
          delegate_to: r1
          loop: "{{ peers }}"

        - name: Record the fleet revert on the hosts already switched
          prodready.deploy.deploy_state:
            path: "{{ root }}/{{ item }}/state.json"
            update: {live_color: blue, live_version: "1.0", previous_version: "2.0"}
            audit_log: "{{ root }}/{{ item }}/audit.log"
            audit:
              action: fleet_revert
              result: reverted
              version: "2.0"
              reason: "{{ inventory_hostname }} failed in phase gate_live: {{ ansible_failed_result.msg }}"
          delegate_to: "{{ item }}"
          loop: "{{ peers }}"

        - name: Fail with the reason
          ansible.builtin.fail:
            msg: >-
              deploy of 2.0 on {{ inventory_hostname }} stopped in phase gate_live: {{ ansible_failed_result.msg }}.
              Traffic: switched back to blue. Fleet: switched back {{ peers | join(', ') }}.
"""

FLEET_PLAYBOOK = r"""
- name: Fleet-atomic deploy
  hosts: "{{ fleet_group }}"
  gather_facts: false
  vars:
    fleet_servers: >-
      {{ dict(ansible_play_hosts_all | product(['-blue', '-green']) | map('join') | list
              | zip(ansible_play_hosts_all | product(['-blue', '-green']) | map('first') | list)) }}
  tasks:
    - name: Hand every host its plan
      ansible.builtin.set_fact:
        prodready_report: {kind: note, text: "plan: {{ item }}-blue -> {{ item }}-green"}
      delegate_to: "{{ item }}"
      delegate_facts: true
      loop: "{{ ansible_play_hosts_all }}"
      run_once: true

    - name: Deploy the fleet with automatic revert
      block:
        - name: Move the whole fleet's traffic at once
          prodready.deploy.router_switch:
            router: haproxy
            admin_socket: "{{ admin_socket }}"
            servers: "{{ fleet_servers }}"
            live: "{{ ansible_play_hosts_all | map('regex_replace', '$', '-green') | list }}"
          delegate_to: r1
          run_once: true
          register: fleet_switch

        - name: Gate the fleet through the router
          prodready.deploy.health_gate:
            url: "http://127.0.0.1:{{ front }}/{{ gate_path }}"
            requests: 5
          register: fleet_gate
          run_once: true
          failed_when: false

        - name: Fail every host when the fleet's gate failed
          ansible.builtin.fail:
            msg: "{{ fleet_gate.msg | default('the gate through the router failed') }}"
          when: not fleet_gate.passed

        - name: Record the new state
          prodready.deploy.deploy_state:
            path: "{{ root }}/{{ inventory_hostname }}/state.json"
            update: {host: "{{ inventory_hostname }}", live_color: green, live_version: "2.0", previous_version: "1.0"}
            audit_log: "{{ root }}/{{ inventory_hostname }}/audit.log"
            audit: {action: deploy, result: success, version: "2.0"}
      rescue:
        - name: Switch the whole fleet back at once
          prodready.deploy.router_switch:
            router: haproxy
            admin_socket: "{{ admin_socket }}"
            servers: "{{ fleet_servers }}"
            live: "{{ fleet_switch.previous_live }}"
          delegate_to: r1
          run_once: true

        - name: Fail with the reason
          ansible.builtin.fail:
            msg: >-
              deploy of 2.0 on {{ inventory_hostname }} stopped in phase gate_live: {{ ansible_failed_result.msg }}.
              Traffic: switched back to {{ fleet_switch.previous_live | join(', ') }}.
"""


class _Health(BaseHTTPRequestHandler):
    """/health answers 200 (the colors' health check and a passing gate), /broken 503."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        code = 503 if self.path == "/broken" else 200
        body = b'{"status": "ok", "version": "2.0"}'
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


def _wait_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail("nothing listens on %d" % port)


@pytest.fixture(scope="module")
def fleet_router(tmp_path_factory):
    """The colors' HTTP server and a private haproxy with every host's blue (ready) and green
    (disabled) server in one backend. Returns {front, admin_socket, root, inventory}."""
    health = ThreadingHTTPServer(("127.0.0.1", free_port()), _Health)
    health.daemon_threads = True
    health.handle_error = lambda request, address: None  # haproxy's checks reset their connections
    threading.Thread(target=health.serve_forever, daemon=True).start()
    workdir = tempfile.mkdtemp(prefix="dr-hap-", dir="/tmp")  # short: UNIX socket path limit
    front = free_port()
    sock = os.path.join(workdir, "admin.sock")
    servers = "\n".join(
        "    server %s-%s 127.0.0.1:%d check%s" % (host, color, health.server_port, "" if color == "blue" else " disabled")
        for hosts in FLEET_HOSTS.values() for host in hosts for color in ("blue", "green"))
    cfg = os.path.join(workdir, "haproxy.cfg")
    with open(cfg, "w") as handle:
        handle.write(HAPROXY_CFG % dict(sock=sock, front=front, servers=servers))
    pid = os.path.join(workdir, "haproxy.pid")
    subprocess.run(["haproxy", "-D", "-f", cfg, "-p", pid], check=True)
    try:
        _wait_port(front)
        root = tmp_path_factory.mktemp("fleet-report")
        groups = dict((group, {"hosts": dict((host, {}) for host in hosts)}) for group, hosts in FLEET_HOSTS.items())
        groups["router"] = {"hosts": {"r1": {}}}
        for hosts in FLEET_HOSTS.values():
            for host in hosts:
                (root / host).mkdir()
        inventory = root / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": PYTHON,
                     "admin_socket": sock, "front": front, "root": str(root)},
            "children": groups}}))
        yield {"front": front, "admin_socket": sock, "root": root, "inventory": inventory}
    finally:
        with open(pid) as handle:
            for line in handle.read().split():
                try:
                    os.kill(int(line), signal.SIGTERM)
                except OSError:
                    pass
        health.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


def _run_fleet(router, name, text, extra_vars=None):
    """Runs a playbook with the report enabled; returns (process, report dict, markdown, summary)."""
    playbook = router["root"] / ("%s.yml" % name)
    playbook.write_text(text)
    reports = router["root"] / ("reports-%s" % name)
    proc = run_playbook(playbook, inventory=router["inventory"], extra_vars=extra_vars,
                        env={"ANSIBLE_CALLBACKS_ENABLED": "prodready.deploy.deploy_report",
                             "PRODREADY_REPORT_DIR": str(reports)})
    files = sorted(reports.iterdir()) if reports.exists() else []
    assert [f.suffix for f in files] == [".json", ".md"], proc.stdout + proc.stderr
    summary = proc.stdout[proc.stdout.index("DEPLOY REPORT: "):]
    return proc, json.loads(files[0].read_text()), files[1].read_text(), summary


@pytest.fixture(scope="module")
def rolling_revert(fleet_router):
    return _run_fleet(fleet_router, "rolling", ROLLING_PLAYBOOK)


@pytest.fixture(scope="module")
def fleet_gate_failed(fleet_router):
    return _run_fleet(fleet_router, "fleet-bad", FLEET_PLAYBOOK, {"fleet_group": "fleet_bad", "gate_path": "broken"})


@pytest.fixture(scope="module")
def fleet_live(fleet_router):
    return _run_fleet(fleet_router, "fleet-ok", FLEET_PLAYBOOK, {"fleet_group": "fleet_ok", "gate_path": "health"})


def _kinds(entry, kind):
    return [e for e in entry["events"] if e["kind"] == kind]


def test_rolling_hosts_switched_back_by_the_failing_host_are_switched_back_not_ok(rolling_revert):
    proc, report, markdown, summary = rolling_revert
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert sorted(report["hosts"]) == ["h1", "h2", "h3"]  # nothing under r1, the router
    assert report["counts"]["switched_back"] == 2 and report["counts"]["failed"] == 1 and report["outcome"] == "failed"
    for host in ("h1", "h2"):
        entry = report["hosts"][host]
        assert entry["stats"]["failures"] == 0  # ansible says ok: the report does not
        assert entry["outcome"] == "switched_back", entry
        back = entry["switched_back"]
        assert back["by"] == "h3" and back["to"] == "1.0"
        assert back["reason"].startswith("h3 failed in phase gate_live: ")
        # Its own switch via the router, then its switch back, run by h3 via the router.
        switches = [(e["live"], e["direction"], e.get("by"), e.get("via")) for e in _kinds(entry, "router_switch")]
        assert switches == [(host + "-green", "forward", None, "r1"), (host + "-blue", "back", "h3", "r1")]
        assert [(e["action"], e.get("by")) for e in _kinds(entry, "state")] == [("deploy", None), ("fleet_revert", "h3")]
        # delegate_facts: its own entry, set by the batch's run_once task.
        assert [e["text"].startswith("plan: %s-blue -> %s-green" % (host, host)) for e in _kinds(entry, "note")] == [True]
    h3 = report["hosts"]["h3"]
    assert h3["outcome"] == "failed"
    assert h3["stopped_reason"].startswith("deploy of 2.0 on h3 stopped in phase gate_live: ")
    assert h3["stopped_reason"].endswith("Fleet: switched back h1, h2.")
    assert h3["reverted"] == ["traffic back to h3-blue"]
    assert [e["text"].startswith("plan: h3-blue -> h3-green") for e in _kinds(h3, "note")] == [True]
    assert [e["passed"] for e in _kinds(h3, "gate")] == [False]
    # The peers' switch backs are not under the host that ran them.
    assert [e["live"] for e in _kinds(h3, "router_switch")] == ["h3-green", "h3-blue"]
    assert not any(e.get("action") == "fleet_revert" for e in _kinds(h3, "state"))
    assert report["fleet"]["events"] == []  # the run_once tasks were delegate_facts: each host's own

    lines = summary.splitlines()
    assert lines[1] == "hosts: 2 switched back, 1 failed"
    assert "h1: SWITCHED BACK to 1.0" in lines and "h3: FAILED" in lines
    assert any(line.startswith("  switched back: by h3 via r1: h3 failed in phase gate_live") for line in lines)
    assert "- hosts: 2 switched back, 1 failed" in markdown
    assert "## h1: switched back to 1.0" in markdown and "## h3: failed" in markdown


def test_a_failed_fleet_gate_switches_the_whole_fleet_back_once(fleet_gate_failed):
    proc, report, markdown, summary = fleet_gate_failed
    assert proc.returncode != 0, proc.stdout + proc.stderr
    fleet = report["fleet"]
    assert [(e["kind"], e.get("direction"), e["hosts"]) for e in fleet["events"]] == [
        ("router_switch", "forward", ["g1", "g2"]), ("gate", None, ["g1", "g2"]), ("router_switch", "back", ["g1", "g2"])]
    assert fleet["switch"]["live"] == ["g1-green", "g2-green"] and fleet["switch"]["host"] == "r1"
    assert fleet["switch"]["switch_ms"] > 0
    assert fleet["switch_back"]["live"] == ["g1-blue", "g2-blue"]
    assert fleet["gate"]["passed"] is False and fleet["gate"]["samples"] == 5
    for host in ("g1", "g2"):
        entry = report["hosts"][host]
        assert entry["outcome"] == "switched_back"
        assert entry["switched_back"]["fleet"] is True
        assert entry["stopped_reason"].startswith("deploy of 2.0 on %s stopped in phase gate_live" % host)
        assert _kinds(entry, "router_switch") == [] and _kinds(entry, "gate") == []  # listed once, in the fleet section
        assert [e["text"].startswith("plan: %s-blue -> %s-green" % (host, host)) for e in _kinds(entry, "note")] == [True]
    lines = summary.splitlines()
    assert lines[1] == "hosts: 2 switched back"
    assert sum(1 for line in lines if line.startswith("  - fleet switch: g1-green, g2-green live at once, ")) == 1
    assert sum(1 for line in lines if line.startswith("  - fleet switch back: g1-blue, g2-blue live at once, ")) == 1
    assert markdown.count("fleet switch: g1-green, g2-green live at once") == 1
    assert "## g1: switched back" in markdown


def test_a_fleet_switch_is_listed_once_for_the_batch_and_every_host_is_live(fleet_live):
    proc, report, markdown, summary = fleet_live
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["outcome"] == "ok" and report["counts"]["live"] == 2
    fleet = report["fleet"]
    assert [e["kind"] for e in fleet["events"]] == ["router_switch", "gate"]
    assert (fleet["switch"]["live"], fleet["switch"]["previous_live"]) == (["f1-green", "f2-green"], ["f1-blue", "f2-blue"])
    assert fleet["switch"]["hosts"] == ["f1", "f2"] and fleet["gate"]["passed"] is True and fleet["switch_back"] is None
    for host in ("f1", "f2"):
        entry = report["hosts"][host]
        assert (entry["outcome"], entry["live_version"]) == ("live", "2.0")
        assert entry["fleet_events"] == [0, 1]
    lines = summary.splitlines()
    assert lines[:2] == ["DEPLOY REPORT: OK (fleet-ok.yml)", "hosts: 2 live on 2.0"]
    assert sum(1 for line in lines if line.startswith("  - fleet switch: f1-green, f2-green live at once, ")
               and line.endswith(" ms (via r1; for f1, f2)")) == 1
    assert "f1: LIVE on 2.0" in lines and "f2: LIVE on 2.0" in lines
    assert "## Fleet" in markdown and "## f1: live on 2.0" in markdown
