# -*- coding: utf-8 -*-
"""The deploy_report callback on a real run: playbooks/flag_rollout.yml with a canary whose
gate fails, enabled by ANSIBLE_CALLBACKS_ENABLED, its directory by PRODREADY_REPORT_DIR.

No app and no shared service: the hosts are local inventory hosts with their own .env files
in tmp_path (process manager `none`).
"""

import json
import stat

import pytest
import yaml

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
                       "flag_rollout_process_manager": "none",
                       "flag_rollout_audit_log": str(tmp / name / "audit.log"),
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
    assert lines[1] == "canary1: FAILED"
    web2 = lines.index("web2: FAILED")
    canary_block, web2_block = lines[2:web2], lines[web2 + 1:]
    assert "  - stage bad: gate-fail (command no marker: exit 1 )" in canary_block
    assert "  reverted: restored bad, ok" in canary_block
    assert any(line.startswith("  stopped: flag_rollout: stage 'bad' gate failed: canary1") for line in canary_block)
    assert "  - stage bad: apply (changed A)" not in web2_block
    assert "  reverted: restored ok" in web2_block
    assert "report: %s, %s" % (files[0], files[1]) in summary
    markdown = files[1].read_text()
    assert "## canary1: failed" in markdown and "## web2: failed" in markdown
