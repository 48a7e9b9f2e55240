# -*- coding: utf-8 -*-
"""Observe, then act, pure: what the router serves against state.json, and what is done about it."""

from ansible_collections.prodready.deploy.plugins.module_utils import _reconcile as rc

NAMES = {"blue": "h1-blue", "green": "h1-green"}
STATE = {"live_color": "blue", "live_version": "1.0.0", "colors": {"blue": "1.0.0", "green": "0.9.0"},
         "db_revisions_before": ["0001"], "db_revisions": ["0002"]}
VERSIONS = {"blue": "1.0.0", "green": "1.1.0"}


def server(admin="ready", status="UP"):
    return {"admin_state": admin, "operational_state": "running", "status": status}


def observed(blue=None, green=None, **extra):
    states = dict(extra)
    if blue:
        states["h1-blue"] = blue
    if green:
        states["h1-green"] = green
    states["h2-green"] = server()  # another host's server in the shared backend: never counted
    return {"servers_state": states}


def decide(state, seen, run_id="run-2", versions=None):
    serving, backups, words = rc.observed_colors("haproxy", seen, NAMES)
    answers = VERSIONS if versions is None else versions
    return rc.reconcile(state, serving, backups, words, run_id, answers.get)


def test_a_router_that_agrees_with_the_state_changes_nothing():
    decision = decide(STATE, observed(server(), server("drain", "DRAIN")))
    assert decision == dict(live_color="blue", live_version="1.0.0", update={}, repair=None, text="", event=None,
                            revisions_before=None)


def test_the_color_the_router_serves_wins_over_the_state_and_the_state_is_corrected():
    decision = decide(STATE, observed(server("drain", "DRAIN"), server()))
    assert (decision["live_color"], decision["live_version"]) == ("green", "1.1.0")
    assert decision["text"].startswith("the router serves green (1.1.0) but state.json says blue (1.0.0)")
    assert decision["update"]["live_color"] == "green" and decision["update"]["previous_version"] == "1.0.0"
    assert decision["update"]["colors"] == {"blue": "1.0.0", "green": "1.1.0"}
    assert decision["repair"] is None  # the router is right: nothing to send it
    assert decision["event"]["action"] == "reconcile" and decision["event"]["result"] == "adopted"


def test_an_interrupted_runs_intent_is_adopted_when_its_switch_happened():
    record = {"live_color": "green", "live_version": "1.1.0", "db_revisions_before": ["0002"],
              "db_revisions": ["0003"], "backup_path": "/b/pre-1.1.0-run-1.dump", "run_id": "run-1"}
    state = dict(STATE, pending={"run_id": "run-1", "version": "1.1.0", "color": "green",
                                 "started_at": "2026-12-07T10:00:00Z", "record": record})
    decision = decide(state, observed(server("drain", "DRAIN"), server(),
                                      **{"prodready-backup-h1-blue": server()}))
    assert "the run run-1 (started 2026-12-07T10:00:00Z) was interrupted after its switch" in decision["text"]
    # Its revisions before, its backup: what a later downgrade or restore rollback needs.
    assert decision["update"]["db_revisions_before"] == ["0002"]
    assert decision["update"]["backup_path"] == "/b/pre-1.1.0-run-1.dump"
    assert decision["update"]["pending"] is None
    # The runtime backup server the killed run left goes: the router is put on green again.
    assert decision["repair"] == "green"
    assert "prodready-backup-h1-blue" in decision["text"]
    assert decision["event"]["interrupted_run"] == "run-1"


def test_an_intent_whose_switch_did_not_happen_is_dropped_with_words_on_the_database():
    record = {"db_revisions_before": ["0002"], "db_revisions": ["0003"]}
    state = dict(STATE, pending={"run_id": "run-1", "version": "1.1.0", "color": "green", "record": record})
    decision = decide(state, observed(server(), server("maint", "MAINT")))
    assert decision["live_color"] == "blue" and decision["update"] == {"pending": None}
    assert "interrupted with traffic not on its new color green (1.1.0)" in decision["text"]
    assert "the database may be at 0003 (before: 0002, which this run records as the revisions to go back to)" \
        in decision["text"]
    assert decision["revisions_before"] == ["0002"]
    assert decision["repair"] is None


def test_this_runs_own_intent_is_not_an_interrupted_run():
    state = dict(STATE, pending={"run_id": "run-2", "version": "1.1.0", "color": "green", "record": {}})
    assert decide(state, observed(server(), server("drain", "DRAIN")))["update"] == {}


def test_two_serving_colors_keep_the_state_s_live_one_and_drain_the_other():
    decision = decide(STATE, observed(server(), server()))
    assert decision["live_color"] == "blue" and decision["repair"] == "blue"
    assert "the router sends traffic to blue and green at once" in decision["text"]
    assert decision["update"] == {}


def test_no_serving_color_gives_traffic_back_to_the_live_one_when_it_answers():
    decision = decide(STATE, observed(server("maint", "MAINT"), server("maint", "MAINT")))
    assert decision["repair"] == "blue"
    assert decision["text"].startswith("the router sends no traffic to any color (blue maint/MAINT, green maint/MAINT)")
    silent = decide(STATE, observed(server("maint", "MAINT"), server("maint", "MAINT")), versions={})
    assert silent["repair"] is None and "does not answer" in silent["text"]


def test_a_leftover_backup_server_alone_is_removed():
    decision = decide(STATE, observed(server(), server("drain", "DRAIN"), **{"prodready-backup-h1-green": server()}))
    assert decision["repair"] == "blue" and decision["live_color"] == "blue"
    assert "runtime backup server prodready-backup-h1-green left by an interrupted run is removed" in decision["text"]


def test_another_hosts_backup_server_is_not_this_hosts_business():
    seen = observed(server(), server("drain", "DRAIN"), **{"prodready-backup-h2-blue": server()})
    assert decide(STATE, seen)["repair"] is None


def test_nginx_serving_is_the_address_the_upstream_points_at():
    names = {"blue": "127.0.0.1:8101", "green": "127.0.0.1:8102"}
    assert rc.observed_colors("nginx", {"upstream_address": "127.0.0.1:8102"}, names) == (["green"], [], {})
    assert rc.observed_colors("nginx", {"upstream_address": None}, names) == ([], [], {})


def test_a_first_deploy_with_nothing_serving_is_not_a_divergence():
    assert decide({}, observed(server("maint", "MAINT"), server("maint", "MAINT")))["text"] == ""


def test_an_nginx_upstream_pointing_at_a_color_that_does_not_answer_is_not_adopted():
    names = {"blue": "127.0.0.1:8101", "green": "127.0.0.1:8102"}
    serving, backups, seen = rc.observed_colors("nginx", {"upstream_address": "127.0.0.1:8102"}, names)
    decision = rc.reconcile({}, serving, backups, seen, "run-2", {}.get, checked=False)
    assert decision["live_color"] is None and decision["update"] == {}
    assert decision["text"] == "the router points at green, which does not answer; state.json says nothing is live"


def test_a_restart_in_place_that_went_live_is_adopted():
    record = {"db_revisions_before": ["0002"], "db_revisions": ["0003"], "run_id": "run-1"}
    state = dict(STATE, pending={"run_id": "run-1", "version": "1.1.0", "color": "blue", "record": record})
    decision = decide(state, observed(server(), server("maint", "MAINT")), versions={"blue": "1.1.0"})
    assert (decision["live_color"], decision["live_version"]) == ("blue", "1.1.0")
    assert "was interrupted after its release went live: its record is adopted" in decision["text"]
    assert decision["update"]["db_revisions_before"] == ["0002"] and decision["update"]["pending"] is None
    assert decision["revisions_before"] is None


def test_a_read_of_another_backend_says_nothing_about_this_host():
    other = {"servers_state": {"h2-blue": server(), "h2-green": server("drain", "DRAIN")}}
    assert rc.none_present("haproxy", other, NAMES) is True
    assert rc.none_present("haproxy", observed(server(), server("drain", "DRAIN")), NAMES) is False
    assert rc.none_present("nginx", {"upstream_address": None}, NAMES) is False
