"""playbooks/exec.yml (a one-off command in a release's environment, audited) and the run
summaries the playbooks return with set_stats for AWX workflow nodes (deploy_result,
rollback_result, exec_result).

One module-scoped app on haproxy slot s16: the plain WSGI app of wsgi_app.py (no database),
each release with its own venv and the shared .env holding a secret. The tests run in order,
as an operator's day goes: commands in the live release, a deploy of 1.1.0 and a redeploy
(no-op), a command in the older release, a rollback, a release that fails to start.
"""

import hashlib
import json
from pathlib import Path

import pytest
import requests
import yaml

from apptools import retire_test_slot_app
from helpers import ROOT, run_playbook
from wsgi_app import CRASH_AT_START, artifact, local_vars, role_vars, slot_vars

pytestmark = [pytest.mark.slow]

SLOT = "s16"
APP = "exectest"
SECRET = "exec-s3cret-0f9d2c"  # a value of the shared .env: never in any output nor the audit log
SHOW_STATS = {"ANSIBLE_SHOW_CUSTOM_STATS": "true", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}


@pytest.fixture(scope="module")
def site(sandbox, tmp_path_factory):
    base = tmp_path_factory.mktemp("exec")
    for version, marker in (("1.0.0", ""), ("1.1.0", ""), ("1.2.0", CRASH_AT_START)):
        artifact(base / f"exectest-{version}.tar.gz", version, requirements="", marker=marker)
    root = base / "srv"
    hv = role_vars(sandbox, **local_vars(), **slot_vars(sandbox, SLOT), app_name=APP, app_root=str(root),
                   blue_green_artifact_src=str(base) + "/exectest-{{ blue_green_version }}.tar.gz",
                   blue_green_shared_env={"EXEC_SECRET": SECRET, "DEBUG": "false"})
    inventory = base / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"app": {"hosts": {"x1": hv}}}}}))
    backend = sandbox["services"]["haproxy"]["slots"][SLOT]["backend"]
    try:
        proc = deploy(inventory, "1.0.0")
        assert proc.returncode == 0, proc.output[-3000:]
        yield {"base": base, "root": root, "inventory": inventory, "url": hv["app_router_url"]}
    finally:
        retire_test_slot_app(sandbox, APP, ROOT, backend)


def deploy(inventory, version, env=None):
    return run_playbook(ROOT / "playbooks" / "deploy.yml", inventory=inventory, env=env,
                        extra_vars={"app_version": version, "deploy_preflight": False})


def run_exec(site, env=None, **extra):
    return run_playbook(ROOT / "playbooks" / "exec.yml", inventory=site["inventory"], extra_vars=extra, env=env)


def custom_stats(proc):
    """The run's set_stats data, from the default callback's CUSTOM STATS (results as JSON)."""
    lines = [line for line in proc.stdout.splitlines() if line.startswith("\tRUN: ")]
    assert len(lines) == 1, proc.output[-3000:]
    return json.loads(lines[0][len("\tRUN: "):])


def audit(site):
    return [json.loads(line) for line in (site["root"] / "audit.log").read_text().splitlines()]


def served(site):
    return requests.get(site["url"] + "/healthz", timeout=5).json()["build"]["version"]


PROBE = ("python -c 'import hashlib, os, sys; print(\"prefix\", sys.prefix); print(\"cwd\", os.getcwd());"
         " print(\"secret\", hashlib.sha256(os.environ[\"EXEC_SECRET\"].encode()).hexdigest())'")


def test_the_command_runs_in_the_live_release_with_its_venv_and_env_and_is_audited(site):
    proc = run_exec(site, env=SHOW_STATS, exec_command=PROBE)
    assert proc.returncode == 0, proc.output[-3000:]
    release = site["root"] / "releases" / "1.0.0"
    assert "prefix %s" % (release / ".venv") in proc.stdout
    assert "cwd %s" % release in proc.stdout
    assert "secret " + hashlib.sha256(SECRET.encode()).hexdigest() in proc.stdout
    assert "x1: rc 0 in " in proc.stdout and ".env: 2 variables" in proc.stdout
    line = audit(site)[-1]
    assert (line["action"], line["version"], line["rc"], line["result"], line["command"]) == (
        "exec", "1.0.0", 0, "success", PROBE)
    assert line["launched_by"] and line["duration_s"] >= 0
    result = custom_stats(proc)["exec_result"]["x1"]
    assert (result["result"], result["version"], result["rc"], result["reason"]) == ("success", "1.0.0", 0, None)
    assert Path(result["report"]).is_file()
    assert SECRET not in proc.output and SECRET not in (site["root"] / "audit.log").read_text()


def test_a_failing_command_fails_the_play_with_its_rc_and_the_end_of_stderr(site):
    command = "for i in $(seq 1 100); do echo line-$i >&2; done; echo 'no such table: orders' >&2; exit 3"
    proc = run_exec(site, env=SHOW_STATS, exec_command=command)
    assert proc.returncode != 0
    assert "exec on x1 in release 1.0.0: the command exited with rc 3: line-97 | line-98 | line-99 | line-100 | no such table: orders" \
        in proc.flat
    assert "stderr (last 40 of 101 lines, " in proc.flat and "line-60" not in proc.flat
    line = audit(site)[-1]
    assert (line["action"], line["rc"], line["result"]) == ("exec", 3, "failed")
    result = custom_stats(proc)["exec_result"]["x1"]
    assert result["result"] == "failed" and result["rc"] == 3 and "no such table: orders" in result["reason"]


@pytest.mark.parametrize("extra, message", [
    ({}, "exec_command: no command given"),
    ({"exec_command": "true", "exec_version": "9.9.9"},
     "exec_version: 9.9.9 is not a release on this host: no directory {root}/releases/9.9.9 (releases present: 1.0.0)"),
    ({"exec_command": "true", "exec_timeout": -5}, "exec_timeout: -5 is not a number of seconds, 0 (no limit) or more"),
    ({"exec_command": "true", "exec_hosts": "some"}, "exec_hosts: \"some\" is neither one"),
])
def test_bad_input_is_refused_naming_the_variable_and_runs_nothing(site, extra, message):
    before = len(audit(site))
    proc = run_exec(site, **extra)
    assert proc.returncode != 0
    assert message.format(root=site["root"]) in proc.flat, proc.flat[-2000:]
    assert "Traceback" not in proc.output
    assert len(audit(site)) == before


def test_check_mode_says_where_it_would_run_and_runs_nothing(site):
    before = len(audit(site))
    proc = run_playbook(ROOT / "playbooks" / "exec.yml", inventory=site["inventory"], check=True,
                        extra_vars={"exec_command": "touch ran"})
    assert proc.returncode == 0, proc.output[-2000:]
    assert "x1: check mode, not run; release 1.0.0" in proc.flat
    assert not (site["root"] / "releases" / "1.0.0" / "ran").exists() and len(audit(site)) == before


def test_a_command_is_refused_while_a_deploy_holds_the_lock(site):
    lock = site["root"] / "deploy.lock"
    lock.write_text(json.dumps({"owner": "deploy 9.0", "run_id": "r-held", "since_epoch": 1}))
    try:
        proc = run_exec(site, exec_command="true")
        assert proc.returncode != 0
        assert "exec refused on x1: exec_allow_locked: deploy 9.0 (run r-held) holds the deploy lock" in proc.flat
        proc = run_exec(site, exec_command="true", exec_allow_locked=True)
        assert proc.returncode == 0, proc.output[-2000:]
    finally:
        lock.unlink()


def test_deploy_returns_its_summary_with_set_stats_and_a_redeploy_is_a_noop(site):
    proc = deploy(site["inventory"], "1.1.0", env=SHOW_STATS)
    assert proc.returncode == 0, proc.output[-3000:]
    result = custom_stats(proc)["deploy_result"]["x1"]
    assert {k: result[k] for k in ("result", "version", "previous_version", "reason")} == {
        "result": "success", "version": "1.1.0", "previous_version": "1.0.0", "reason": None}
    state = json.loads((site["root"] / "state.json").read_text())
    assert result["color"] == state["live_color"] and result["run_id"] == state["run_id"]
    report = json.loads(Path(result["report"]).read_text())
    assert report["playbooks"] == ["deploy.yml"] and report["hosts"]["x1"]["outcome"] == "live"

    proc = deploy(site["inventory"], "1.1.0", env=SHOW_STATS)
    assert proc.returncode == 0, proc.output[-3000:]
    result = custom_stats(proc)["deploy_result"]["x1"]
    assert (result["result"], result["version"], result["color"], result["reason"]) == (
        "noop", "1.1.0", state["live_color"], None)


def test_exec_version_runs_in_an_older_release(site):
    proc = run_exec(site, exec_command=PROBE, exec_version="1.0.0")
    assert proc.returncode == 0, proc.output[-3000:]
    assert "prefix %s" % (site["root"] / "releases" / "1.0.0" / ".venv") in proc.stdout
    assert audit(site)[-1]["version"] == "1.0.0"


def test_rollback_returns_its_summary_with_set_stats_and_a_rollback_to_the_live_version_is_a_noop(site):
    proc = run_playbook(ROOT / "playbooks" / "rollback.yml", inventory=site["inventory"], env=SHOW_STATS)
    assert proc.returncode == 0, proc.output[-3000:]
    assert served(site) == "1.0.0"
    result = custom_stats(proc)["rollback_result"]["x1"]
    state = json.loads((site["root"] / "state.json").read_text())
    assert {k: result[k] for k in ("result", "version", "previous_version", "color", "reason")} == {
        "result": "success", "version": "1.0.0", "previous_version": "1.1.0", "color": state["live_color"], "reason": None}
    assert result["run_id"] and Path(result["report"]).is_file()

    proc = run_playbook(ROOT / "playbooks" / "rollback.yml", inventory=site["inventory"], env=SHOW_STATS,
                        extra_vars={"rollback_to": "1.0.0"})
    assert proc.returncode == 0, proc.output[-3000:]
    result = custom_stats(proc)["rollback_result"]["x1"]
    assert (result["result"], result["version"], result["color"], result["reason"]) == (
        "noop", "1.0.0", state["live_color"], None)


def test_a_failed_deploy_returns_failed_with_the_reason(site):
    live = json.loads((site["root"] / "state.json").read_text())["live_color"]
    proc = deploy(site["inventory"], "1.2.0", env=SHOW_STATS)
    assert proc.returncode != 0
    assert served(site) == "1.0.0"
    result = custom_stats(proc)["deploy_result"]["x1"]
    assert (result["result"], result["version"], result["previous_version"], result["color"]) == (
        "failed", "1.2.0", "1.0.0", live)
    assert "refusing to start: broken build" in result["reason"] and result["run_id"]


def test_a_flag_rollout_returns_its_summary_with_set_stats(tmp_path):
    """No app needed: flags in a .env, command gates, no restart."""
    (tmp_path / "srv" / "shared").mkdir(parents=True)
    env_file = tmp_path / "srv" / "shared" / ".env"
    env_file.write_text("MODE=prod\n")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"app": {"hosts": {"f1": dict(
        local_vars(), app_root=str(tmp_path / "srv"))}}}}}))
    stages = {"flag_rollout_restart": False, "flag_rollout_stages": [
        {"name": "one", "flags": {"FEATURE_A": "true"}, "gates": {"command": {"argv": ["true"]}}},
        {"name": "two", "flags": {"FEATURE_B": "true"}, "gates": {"command": {"argv": ["false"], "name": "always fails"}}}]}

    proc = run_playbook(ROOT / "playbooks" / "flag_rollout.yml", inventory=inventory, env=SHOW_STATS,
                        extra_vars=dict(stages, flag_rollout_until="one"))
    assert proc.returncode == 0, proc.output[-3000:]
    assert custom_stats(proc)["flag_rollout_result"]["f1"] == {
        "result": "success", "stage": "one", "stages": ["one"], "flags": {"FEATURE_A": "true"}, "reverted": [],
        "reason": None, "report": custom_stats(proc)["flag_rollout_result"]["f1"]["report"]}

    proc = run_playbook(ROOT / "playbooks" / "flag_rollout.yml", inventory=inventory, env=SHOW_STATS, extra_vars=stages)
    assert proc.returncode != 0
    result = custom_stats(proc)["flag_rollout_result"]["f1"]
    assert (result["result"], result["stage"], result["stages"], result["reverted"]) == ("failed", "two", ["one", "two"], ["two", "one"])
    assert result["reason"] == "flag_rollout: stage 'two' gate failed: f1: command always fails: exit 1"
    assert result["flags"] == {"FEATURE_A": "true", "FEATURE_B": "true"} and Path(result["report"]).is_file()
    assert env_file.read_text() == "MODE=prod\nFEATURE_A=true\n"
