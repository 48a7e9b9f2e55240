"""SIGKILL of the controller at every phase boundary of a deploy (haproxy slot s7).

test_interrupted_deploy.py kills ansible-playbook after the migration and right after the
switch; this file kills it at each other boundary: after the backup, the release, the start
of the new color, its idle gate, the live gate, and after finalize (its module call releases
the lock with the record: the next run is a no-op).
Each kill is followed by the same deploy again, under one steady request loop through haproxy
for both runs. The next run must take the dead run's lock over (said in words), converge
(the version live, state.json without a pending intent, no lock, no runtime backup server,
the database at the release's revision) and fail no request.

One app on one slot for all boundaries, one version per boundary (1.1.0 migrates 0002 -> 0003,
the later ones run on 0003): each case starts from what the previous one converged to.
"""

import json

import pytest

from bluegreen_tools import LoadLoop, backup_servers, db_revision, deploy, read_audit, read_state, served_version, slot_app

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("switch_back_failure")]

SLOT = "s7"
APP = "phasekill"
# The hook after which the controller is killed, and the version that deploy brings.
BOUNDARIES = [("after_backup", "1.1.0"), ("after_release", "1.2.0"), ("after_start", "1.3.0"),
              ("after_gate_idle", "1.4.0"), ("after_gate_live", "1.5.0"), ("after_finalize", "1.6.0")]


@pytest.fixture(scope="module")
def app(sandbox, tmp_path_factory, app_python):
    releases = dict([("1.0.0", "base")] + [(version, "good") for _boundary, version in BOUNDARIES])
    with slot_app(sandbox, tmp_path_factory.mktemp("phasekill"), app_python, APP, SLOT, releases, kill_hook=True) as app:
        yield app


@pytest.mark.parametrize("boundary, version", BOUNDARIES, ids=[b for b, _v in BOUNDARIES])
def test_a_kill_at_a_phase_boundary_is_converged_by_the_next_run(app, boundary, version):
    root = app["root"]
    before = read_state(root)["live_version"]
    with LoadLoop(app["url"] + "/health") as load:
        cut = deploy(app["inventory"], version, kill_at=boundary)
        assert cut.returncode != 0, cut.output[-3000:]
        assert "The controller is killed" in cut.output and "PLAY RECAP" not in cut.output
        lock_file = root / "deploy.lock"
        # finalize releases the lock in the same module call that records the release.
        killed_lock = json.loads(lock_file.read_text()) if boundary != "after_finalize" else None
        assert lock_file.exists() == (killed_lock is not None)
        # Run as AWX runs it: the audit lines, state.json and the report name who and which job.
        proc = deploy(app["inventory"], version, awx_user_name="alice", awx_job_id=4242, awx_url="https://awx.example")
    assert proc.returncode == 0, proc.output[-3000:]
    assert "launched by alice (AWX job 4242 https://awx.example/#/jobs/playbook/4242)" in proc.output
    # No request failed through the router, during the killed run, between the runs, or the next.
    assert load.failed == [] and load.ok > 0, load.failed[:10]
    assert load.versions <= {before, version}
    if killed_lock:
        # The dead run's lock was taken over, said in words and audited.
        assert "taken over from" in proc.flat and "no longer runs" in proc.flat
        takeovers = [line for line in read_audit(root) if line["action"] == "lock_takeover"]
        assert takeovers and takeovers[-1]["holder"]["run_id"] == killed_lock["run_id"]
        deployed = [line for line in read_audit(root) if line["action"] == "deploy"][-1]
        assert (deployed["result"], deployed["launched_by"], deployed["job"]["id"]) == ("success", "alice", "4242")
        if boundary != "after_gate_live":  # past its switch the killed run's own record is adopted
            assert read_state(root)["deployed_by"] == "alice" and read_state(root)["job"]["id"] == "4242"
    else:
        # The killed run had finished: the next one finds its release live, nothing to do.
        assert "nothing to do" in proc.flat and "taken over" not in proc.flat
    # Converged: the release live, nothing of the killed run left behind.
    state = read_state(root)
    assert (state["live_version"], state["colors"][state["live_color"]]) == (version, version)
    assert state["previous_version"] == before and "pending" not in state
    assert not lock_file.exists()
    assert backup_servers(app["sandbox"], app["backend"]) == []
    assert served_version(app["url"]) == version
    assert db_revision(app["sandbox"], app["db"]) == "0003"
