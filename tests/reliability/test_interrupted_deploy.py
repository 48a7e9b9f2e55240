"""A deploy killed between its switch and its record (haproxy slot s7, after the switch-back test).

With 1.0.0 live, a deploy of 1.1.0 (one more migration) is killed with SIGKILL - the
ansible-playbook process, as an operator's ^C ^C or a lost CI runner would - when its live
gate starts: the router serves 1.1.0 on green, with the runtime backup server of blue still in
the backend, while state.json still says blue (1.0.0) and the lock names a run that is gone.

The next run must observe the router before it plans: take the lock over (printed and
audited), adopt what is really live with the record the killed run wrote before its switch (its
backup, the revisions before its migration), remove the leftover backup server, never restart
the color that serves, with 0 requests failed through the router; and a rollback from there
must downgrade the database to where it was before 1.1.0.
"""

import json

import pytest

from bluegreen_tools import LoadLoop, backup_servers, db_revision, deploy, read_audit, read_state, served_version, slot_app
from helpers import ROOT, run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("switch_back_failure")]

SLOT = "s7"
APP = "killed"


@pytest.fixture(scope="module")
def killed(sandbox, tmp_path_factory, app_python):
    with slot_app(sandbox, tmp_path_factory.mktemp("killed"), app_python, APP, SLOT, {"1.0.0": "base", "1.1.0": "good"},
                  kill_hook=True) as app:
        proc = deploy(app["inventory"], "1.1.0", kill_at="before_gate_live")
        yield dict(app, proc=proc)


def test_the_kill_leaves_the_router_on_the_new_release_and_state_json_behind(killed):
    assert killed["proc"].returncode != 0
    assert served_version(killed["url"]) == "1.1.0"
    state = read_state(killed["root"])
    assert (state["live_color"], state["live_version"]) == ("blue", "1.0.0")
    # The intent recorded before the switch: what the next run adopts.
    assert state["pending"]["version"] == "1.1.0" and state["pending"]["color"] == "green"
    assert state["pending"]["record"]["db_revisions_before"] == ["0002"]
    assert backup_servers(killed["sandbox"], killed["backend"]) == ["prodready-backup-blue"]
    # The lock names the killed controller, and its modules kept it beating (its mtime) up to
    # the gate the kill interrupted: the heartbeat is what a run on another controller judges.
    lock = killed["root"] / "deploy.lock"
    record = json.loads(lock.read_text())
    assert record["controller"]["pid"] and record["run_id"]
    assert lock.stat().st_mtime - record["since_epoch"] > 2.0


def test_status_shows_the_lock_the_killed_run_left_and_its_intent(killed, tmp_path):
    """playbooks/status.yml on the killed deploy (reads only): the table and the JSON say
    who holds the lock, the interrupted deploy, what each color answers and the last runs."""
    before = (killed["root"] / "state.json").read_bytes()
    out = tmp_path / "status.json"
    table = run_playbook(ROOT / "playbooks" / "status.yml", inventory=killed["inventory"],
                         extra_vars={"deploy_hosts": "all", "status_file": str(out)})
    assert table.returncode == 0, table.output[-3000:]
    lock = json.loads((killed["root"] / "deploy.lock").read_text())
    # blue serves 1.0.0 as recorded; green answers the 1.1.0 the killed run started (not recorded yet).
    assert ("h1 blue 1.0.0 green 1.1.0 root@" in table.flat or "h1 blue 1.0.0 green 1.1.0 " in table.flat), table.output
    assert ("h1: a deploy of 1.1.0 (run %s" % lock["run_id"]) in table.flat and "was interrupted" in table.flat
    assert ("(run %s," % lock["run_id"]) in table.flat and "beat" in table.flat
    status = json.loads(out.read_text())["h1"]
    assert (status["live_color"], status["live_version"]) == ("blue", "1.0.0")
    assert {c["color"]: c["answers"] for c in status["colors"]} == {"blue": "1.0.0", "green": "1.1.0"}
    assert status["lock"]["run_id"] == lock["run_id"] and status["lock"]["controller"]["pid"]
    assert status["pending"]["version"] == "1.1.0"
    assert status["last_runs"][0]["action"] == "deploy" and status["last_runs"][0]["version"] == "1.0.0"
    as_json = run_playbook(ROOT / "playbooks" / "status.yml", inventory=killed["inventory"],
                           extra_vars={"deploy_hosts": "all", "status_format": "json"})
    assert as_json.returncode == 0, as_json.output[-3000:]
    assert "pending_rollback: null" in as_json.output and "live_version: 1.0.0" in as_json.output
    assert (killed["root"] / "state.json").read_bytes() == before  # nothing changed


def test_the_next_run_adopts_what_the_router_serves_with_no_failed_request(killed):
    with LoadLoop(killed["url"] + "/health") as load:
        proc = deploy(killed["inventory"], "1.1.0")
    assert proc.returncode == 0, proc.output[-3000:]
    assert load.failed == [] and load.ok > 0, load.failed[:10]
    assert load.versions == {"1.1.0"}  # the serving color was never restarted nor switched
    # Said in words: the lock taken over, the interrupted run, what is done.
    assert "taken over from" in proc.flat and "no longer runs" in proc.flat
    assert "the router serves green (1.1.0) but state.json says blue (1.0.0)" in proc.flat
    assert "was interrupted after its switch: its record is adopted" in proc.flat
    assert "already live on green, which serves it: nothing to do" in proc.flat
    state = read_state(killed["root"])
    assert (state["live_color"], state["live_version"], state["previous_version"]) == ("green", "1.1.0", "1.0.0")
    assert state["db_revisions_before"] == ["0002"] and "pending" not in state
    assert backup_servers(killed["sandbox"], killed["backend"]) == []
    assert not (killed["root"] / "deploy.lock").exists()
    actions = [line["action"] for line in read_audit(killed["root"])]
    assert "lock_takeover" in actions and "reconcile" in actions
    reconcile = [line for line in read_audit(killed["root"]) if line["action"] == "reconcile"][-1]
    assert reconcile["interrupted_run"] and reconcile["live_version"] == "1.1.0"


def test_a_rollback_after_it_downgrades_to_where_the_database_was(killed):
    assert db_revision(killed["sandbox"], killed["db"]) == "0003"
    proc = run_playbook(ROOT / "playbooks" / "rollback.yml", inventory=killed["inventory"], timeout=600,
                        extra_vars={"deploy_hosts": "all", "rollback_to": "1.0.0", "rollback_db": "downgrade"})
    assert proc.returncode == 0, proc.output[-3000:]
    assert served_version(killed["url"]) == "1.0.0"
    assert db_revision(killed["sandbox"], killed["db"]) == "0002"


def test_a_rollback_right_after_a_kill_starts_from_what_the_router_serves(killed):
    again = deploy(killed["inventory"], "1.1.0", kill_at="before_gate_live")
    assert again.returncode != 0
    assert served_version(killed["url"]) == "1.1.0" and read_state(killed["root"])["live_version"] == "1.0.0"
    with LoadLoop(killed["url"] + "/health") as load:
        proc = run_playbook(ROOT / "playbooks" / "rollback.yml", inventory=killed["inventory"], timeout=600,
                            extra_vars={"deploy_hosts": "all", "rollback_to": "1.0.0", "rollback_db": "downgrade"})
    assert proc.returncode == 0, proc.output[-3000:]
    assert "already live" not in proc.flat
    assert "was interrupted after its switch: its record is adopted" in proc.flat
    assert load.failed == [], load.failed[:10]
    assert served_version(killed["url"]) == "1.0.0"
    assert db_revision(killed["sandbox"], killed["db"]) == "0002"
    assert backup_servers(killed["sandbox"], killed["backend"]) == []


def test_a_kill_after_the_migration_keeps_the_revisions_the_live_release_runs_on(killed):
    """Killed once the database is migrated, before the switch: 1.0.0 still serves on 0003; the
    next run says so, deploys, and records 0002 (not 0003) as the revisions to go back to."""
    assert read_state(killed["root"])["live_version"] == "1.0.0"
    cut = deploy(killed["inventory"], "1.1.0", kill_at="after_migrate")
    assert cut.returncode != 0
    assert served_version(killed["url"]) == "1.0.0" and db_revision(killed["sandbox"], killed["db"]) == "0003"
    assert read_state(killed["root"])["pending"]["record"]["db_revisions_before"] == ["0002"]
    with LoadLoop(killed["url"] + "/health") as load:
        proc = deploy(killed["inventory"], "1.1.0")
    assert proc.returncode == 0, proc.output[-3000:]
    assert load.failed == [], load.failed[:10]
    assert "was interrupted with traffic not on its new color" in proc.flat
    assert "the database may be at 0003 (before: 0002" in proc.flat
    state = read_state(killed["root"])
    assert (state["live_version"], state["db_revisions_before"], state["db_revisions"]) == ("1.1.0", ["0002"], ["0003"])
    assert "pending" not in state


def test_a_rollback_killed_after_its_switch_is_taken_up_by_the_next_one(killed):
    """A rollback whose controller dies after its switch and before its downgrade: 1.0.0 serves
    on the 1.1.0 schema. The next rollback must not call it "already live": it takes the killed
    one up (its intent, state.json pending_rollback), downgrades, verifies and finalizes."""
    root = killed["root"]
    assert read_state(root)["live_version"] == "1.1.0" and db_revision(killed["sandbox"], killed["db"]) == "0003"
    args = {"deploy_hosts": "all", "rollback_to": "1.0.0", "rollback_db": "downgrade"}
    with LoadLoop(killed["url"] + "/health") as load:
        cut = run_playbook(ROOT / "playbooks" / "rollback.yml", inventory=killed["inventory"], timeout=600,
                           extra_vars=args, kill_at="TASK [prodready.deploy.rollback : Downgrade the database")
        assert cut.returncode != 0 and "PLAY RECAP" not in cut.output, cut.output[-3000:]
        # Killed between its switch (rollback_start, warm 1.0.0) and its database step.
        assert served_version(killed["url"]) == "1.0.0" and db_revision(killed["sandbox"], killed["db"]) == "0003"
        left = read_state(root)
        assert left["live_version"] == "1.1.0" and left["pending_rollback"]["to"] == "1.0.0"
        proc = run_playbook(ROOT / "playbooks" / "rollback.yml", inventory=killed["inventory"], timeout=600,
                            extra_vars=args)
    assert proc.returncode == 0, proc.output[-3000:]
    assert load.failed == [] and load.ok > 0, load.failed[:10]
    assert "already live" not in proc.flat
    assert ("a rollback 1.1.0 -> 1.0.0 (run %s, database downgrade) was interrupted after its switch"
            % left["pending_rollback"]["run_id"]) in proc.flat
    assert db_revision(killed["sandbox"], killed["db"]) == "0002"
    state = read_state(root)
    assert (state["live_version"], state["last_rollback"]["from"], state["last_rollback"]["to"]) == ("1.0.0", "1.1.0", "1.0.0")
    assert state["previous_color"] == left["live_color"] and "pending_rollback" not in state
    assert not (root / "deploy.lock").exists()
