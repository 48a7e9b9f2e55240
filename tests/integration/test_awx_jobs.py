"""Each job template of awx/job_templates.yml run the way AWX runs it: through ansible-runner
(the engine of AWX's jobs) with the template's playbook, the survey's answers and the
variables AWX adds (awx_user_name, awx_job_id, awx_job_template_name, awx_url) as extra vars,
and the secrets a credential injects as environment, against a real app on haproxy slot s17.

One module-scoped app (1.0.0 deployed by ansible-playbook); the jobs then run in order, as a
workflow would: preflight, deploy 1.1.0, status, rollback as a dry run (job type check) and
for real, a flag rollout, a backup, a command through exec; each with the environment its
template's credentials inject (awx/credential_types.yml), a local webhook as the notify one. Each
asserts on the runner's status and rc, the job events, the set_stats each job returns to a
workflow's next node (the stats event's artifact_data), the audit lines naming who launched it
and the job, and that neither the database nor the Redis password appears in any artifact.
No AWX server exists here: awx_register.yml is checked by tests/unit/test_awx_objects.py and
a run against a closed port (the modules' own argument validation).
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import ansible_runner
import jinja2
import pytest
import yaml

from bluegreen_tools import read_audit, read_state, served_version, slot_app
from helpers import ROOT, ansible_env, run_playbook

pytestmark = [pytest.mark.xdist_group("awx_jobs_s17")]

SLOT = "s17"
APP = "awxjobs"
AWX_USER = "alice"
AWX_URL = "https://awx.example.com"
GATE_TOKEN = "gate-token-5e1b77"  # the http gate credential's bearer token


def job_templates():
    return {jt["name"]: jt for jt in yaml.safe_load((ROOT / "awx" / "job_templates.yml").read_text())}


def credential_env(credential, inputs):
    """The environment AWX injects for the credential `credential` ("prodready database": a
    credential of the type prodready-database of awx/credential_types.yml) with these inputs:
    the type's env injectors rendered as AWX renders them."""
    types = {t["name"]: t for t in yaml.safe_load((ROOT / "awx" / "credential_types.yml").read_text())}
    injectors = types[credential.replace(" ", "-")]["injectors"]["env"]
    return {name: jinja2.Template(template).render(**inputs) for name, template in injectors.items()}


class Receiver:
    """A local webhook (the notify credential's URL): records each POSTed JSON body."""

    def __init__(self):
        self.posts = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                receiver.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hooks/T0/SECRETHOOK" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Job:
    """One finished ansible-runner job: its Runner, events, custom stats and artifact files."""

    def __init__(self, runner, artifacts):
        self.runner = runner
        self.status, self.rc = runner.status, runner.rc
        self.events = list(runner.events)
        self.stdout = (artifacts / "stdout").read_text()
        stats = [e for e in self.events if e["event"] == "playbook_on_stats"]
        assert len(stats) == 1, self.stdout[-3000:]
        self.stats = stats[0]["event_data"]
        self.custom = self.stats.get("artifact_data", {})
        self.files = {path: path.read_text(errors="replace") for path in artifacts.rglob("*") if path.is_file()}

    def ok_events(self, task):
        return [e["event_data"] for e in self.events
                if e["event"] == "runner_on_ok" and e["event_data"].get("task") == task]


def run_job(app, template, answers, job_id, check=False, extra=None):
    """The job AWX would launch from `template` with these survey answers (the survey's
    defaults for the rest), as user alice, job `job_id`, with the environment its credentials
    inject."""
    jt = job_templates()[template]
    extravars = {q["variable"]: q["default"] for q in jt["survey_spec"]["spec"] if "default" in q}
    extravars.update(answers)
    extravars.update({"awx_user_name": AWX_USER, "awx_job_id": job_id, "awx_job_template_name": template,
                      "awx_url": AWX_URL})
    # The playbooks' default host group is `app`; this inventory has its one host ungrouped.
    extravars.update({"deploy_hosts": "all", "preflight_hosts": "all", "flag_rollout_target_hosts": "all"})
    extravars.update(extra or {})
    private = app["base"] / ("job-%d" % job_id)
    private.mkdir(mode=0o700)
    secrets = app["sandbox"]["secrets"]
    inputs = {"prodready database": {"password": secrets["app_db_password"], "database_url": app["hv"]["app_database_url"]},
              "prodready redis": {"password": secrets["redis_password"]},
              "prodready http gate": {"bearer_token": GATE_TOKEN},
              "prodready notify": {"webhook_url": app["webhook"].url, "format": "slack"}}
    envvars = ansible_env({"PRODREADY_REPORT_DIR": str(private / "reports")})
    for credential in jt["credentials"][1:]:  # the first is the SSH key (a local connection here)
        envvars.update(credential_env(credential, inputs[credential]))
    runner = ansible_runner.run(private_data_dir=str(private), project_dir=str(ROOT), ident="job",
                                playbook=str(ROOT / jt["playbook"]), inventory=str(app["inventory"]),
                                extravars=extravars, envvars=envvars, cmdline="--check" if check else None,
                                quiet=True, timeout=900)
    return Job(runner, private / "artifacts" / "job")


def notified(app, job_id):
    """The summaries the job posted to the notify credential's webhook."""
    return [post["text"] for post in app["webhook"].posts if "(AWX job %d " % job_id in post["text"]]


def assert_no_secret(app, job):
    """Neither password in the job's events, stdout or any other artifact. One exception, made
    by ansible-runner itself: artifacts/<ident>/command records the environment it ran
    ansible-playbook with, the credentials' injected variables included (0600; AWX deletes the
    private data dir after the job) - checked to hold them there only."""
    command = next(path for path in job.files if path.name == "command")
    assert oct(command.stat().st_mode & 0o777) == "0o600"
    recorded = json.loads(job.files[command])
    secrets = app["sandbox"]["secrets"]
    for name, secret in (("database password", secrets["app_db_password"]), ("redis password", secrets["redis_password"]),
                         ("gate token", GATE_TOKEN), ("webhook path", "SECRETHOOK")):
        leaked = [str(path) for path, text in job.files.items() if secret in text and path != command]
        assert leaked == [], (name, leaked)
        assert secret not in json.dumps(job.events)
        assert secret not in json.dumps(dict(recorded, env={}))


def audited(app, job_id):
    return [line for line in read_audit(app["root"]) if (line.get("job") or {}).get("id") == str(job_id)]


@pytest.fixture(scope="module")
def app(sandbox, tmp_path_factory, app_python):
    base = tmp_path_factory.mktemp("awx-jobs")
    webhook = Receiver()
    try:
        with slot_app(sandbox, base, app_python, APP, SLOT, {"1.0.0": "base", "1.1.0": "good"}) as deployed:
            yield dict(deployed, webhook=webhook)
    finally:
        webhook.stop()


def test_every_job_template_is_covered_here():
    covered = {"prodready preflight", "prodready deploy", "prodready status", "prodready rollback",
               "prodready flag rollout", "prodready backup", "prodready exec"}
    assert set(job_templates()) == covered


def test_every_awx_object_passes_the_awx_modules_own_argument_validation(tmp_path):
    # No AWX here: each object of awx/ given to its awx.awx module (the real argument spec, not
    # its documentation) against a closed port fails at the connection, after the validation;
    # a wrong option or value would fail before it.
    kinds = {"execution_environments": "execution_environment", "credential_types": "credential_type",
             "projects": "project", "inventories": "inventory", "inventory_sources": "inventory_source",
             "job_templates": "job_template", "workflow_job_templates": "workflow_job_template"}
    # Read as data, as awx_register.yml reads them (the credential types' {{ }} are AWX's).
    tasks = [{"name": kind, "awx.awx.%s" % module: "{{ item }}", "ignore_errors": True, "register": kind,
              "loop": "{{ lookup('ansible.builtin.file', '%s/awx/%s.yml') | from_yaml }}" % (ROOT, kind),
              "loop_control": {"label": "{{ item.name }}"}} for kind, module in kinds.items()]
    tasks.append({"name": "results", "ansible.builtin.copy": {
        "dest": str(tmp_path / "results.json"), "mode": "0600",
        "content": "{{ {%s} | to_json }}" % ", ".join("'%s': %s.results" % (kind, kind) for kind in kinds)}})
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "module_defaults": {"group/awx.awx.controller": {
                                         "controller_host": "https://127.0.0.1:9", "validate_certs": False}},
                                     "tasks": tasks}]))
    proc = run_playbook(play, timeout=300)
    assert proc.returncode == 0, proc.output[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for kind, items in results.items():
        assert items, kind
        for item in items:
            assert item["failed"] and "Connection refused" in item["msg"], (kind, item["item"]["name"], item["msg"])


def test_register_playbook_reaches_awx_and_keeps_the_token_out_of_its_output():
    proc = run_playbook(ROOT / "playbooks" / "awx_register.yml", timeout=300, verbosity=3,
                        extra_vars={"awx_host": "https://127.0.0.1:9", "awx_validate_certs": False,
                                    "awx_token": "token-secret-7f3a"})
    assert proc.returncode != 0
    assert "https://127.0.0.1:9/api/v2/execution_environments/?name=prodready-deploy-ee" in proc.flat
    assert "Connection refused" in proc.flat
    assert "token-secret-7f3a" not in proc.output
    refused = run_playbook(ROOT / "playbooks" / "awx_register.yml", timeout=120,
                           extra_vars={"awx_host": "https://127.0.0.1:9", "awx_state": "gone", "awx_token": "x"})
    assert refused.returncode != 0 and "awx_state present or absent (got gone)" in refused.flat


def test_preflight_job_passes_and_returns_its_table(app):
    # In production the env file is checked (DEBUG=true refused): preflight_app_root, an
    # inventory variable of a real fleet, names the app root whose shared/.env it reads.
    job = run_job(app, "prodready preflight", {"preflight_environment": "production"}, 4710,
                  extra={"preflight_app_root": str(app["root"])})
    assert (job.status, job.rc) == ("successful", 0), job.stdout[-3000:]
    assert job.stats["failures"] == {} and job.stats["ok"].get("h1", 0) > 0
    assert_no_secret(app, job)


def test_deploy_job_deploys_the_version_asked_and_returns_deploy_result(app):
    job = run_job(app, "prodready deploy", {"app_version": "1.1.0"}, 4711)
    assert (job.status, job.rc) == ("successful", 0), job.stdout[-3000:]
    assert served_version(app["url"]) == "1.1.0"
    # The workflow's next node reads this (AWX passes a job's set_stats on as extra vars).
    result = job.custom["deploy_result"]["h1"]
    assert (result["result"], result["version"], result["previous_version"]) == ("success", "1.1.0", "1.0.0")
    assert result["report"].startswith(str(app["base"] / "job-4711" / "reports"))
    assert job.stats["failures"] == {} and job.stats["changed"]["h1"] > 0
    switched = [e for e in job.events if e["event"] == "runner_on_ok"
                and e["event_data"].get("task_action") == "prodready.deploy.router_switch"]
    assert switched and switched[-1]["event_data"]["res"]["changed"] is True
    # Who and which job: the audit lines, state.json and the report posted to the webhook.
    deployed = [line for line in audited(app, 4711) if line["action"] == "deploy"]
    assert deployed and deployed[-1]["result"] == "success" and deployed[-1]["launched_by"] == AWX_USER
    assert deployed[-1]["job"]["url"] == AWX_URL + "/#/jobs/playbook/4711"
    state = read_state(app["root"])
    assert (state["live_version"], state["deployed_by"], state["job"]["id"]) == ("1.1.0", AWX_USER, "4711")
    posted = notified(app, 4711)
    assert len(posted) == 1 and posted[0].startswith("DEPLOY REPORT: OK (deploy.yml)")
    assert "launched by alice (AWX job 4711 %s/#/jobs/playbook/4711)" % AWX_URL in posted[0]
    assert_no_secret(app, job)


def test_status_job_returns_deploy_status(app):
    job = run_job(app, "prodready status", {"status_format": "json"}, 4712)
    assert (job.status, job.rc) == ("successful", 0), job.stdout[-3000:]
    status = job.custom["deploy_status"]["h1"]
    assert (status["live_version"], status["idle_version"]) == ("1.1.0", "1.0.0"), status
    assert sorted(color["answers"] for color in status["colors"]) == ["1.0.0", "1.1.0"]
    assert (status["last_runs"][0]["action"], status["last_runs"][0]["version"]) == ("deploy", "1.1.0")
    shown = [e for e in job.ok_events("Show the status") if e["host"] == "h1"]
    assert shown and shown[0]["res"]["msg"]["h1"]["live_version"] == "1.1.0"
    assert job.stats["changed"] == {}
    # The workflow's notify node: the end state reaches the webhook.
    assert len(notified(app, 4712)) == 1
    assert_no_secret(app, job)


def test_rollback_dry_run_changes_nothing(app):
    job = run_job(app, "prodready rollback", {"rollback_db": "none"}, 4713, check=True)
    assert (job.status, job.rc) == ("successful", 0), job.stdout[-3000:]
    plan = job.ok_events("Show the plan")
    assert plan and plan[0]["res"]["msg"][0].endswith(": 1.1.0 (green) -> 1.0.0"), plan
    assert "check mode: nothing will be changed" in plan[0]["res"]["msg"]
    assert notified(app, 4713) == []  # a dry run notifies nobody
    assert served_version(app["url"]) == "1.1.0" and read_state(app["root"])["live_version"] == "1.1.0"
    assert_no_secret(app, job)


def test_rollback_job_returns_to_the_previous_version(app):
    job = run_job(app, "prodready rollback", {"rollback_db": "none"}, 4714)
    assert (job.status, job.rc) == ("successful", 0), job.stdout[-3000:]
    assert served_version(app["url"]) == "1.0.0"
    result = job.custom["rollback_result"]["h1"]
    assert (result["result"], result["version"], result["previous_version"]) == ("success", "1.0.0", "1.1.0")
    rolled = [line for line in audited(app, 4714) if line["action"] == "rollback"]
    assert rolled and {line["launched_by"] for line in rolled} == {AWX_USER}
    assert_no_secret(app, job)


def test_flag_rollout_job_applies_a_stage_and_returns_flag_rollout_result(app):
    stages = app["base"] / "rollout.yml"
    # A stage file may carry the role's other variables too (this app re-reads nothing: no restart).
    stages.write_text(yaml.safe_dump({"flag_rollout_restart": False, "flag_rollout_stages": [
        {"name": "awx-flag", "flags": {"AWX_FLAG": "on"}, "restart": False,
         "gates": {"health_gate": {"url": app["url"] + "/health", "requests": 3}}}]}))
    job = run_job(app, "prodready flag rollout", {"flag_rollout_stages_file": str(stages)}, 4715)
    assert (job.status, job.rc) == ("successful", 0), job.stdout[-3000:]
    assert "AWX_FLAG=on" in (app["root"] / "shared" / ".env").read_text()
    result = job.custom["flag_rollout_result"]["h1"]
    assert result["result"] == "success", result
    assert_no_secret(app, job)


def test_backup_job_takes_a_verified_backup_and_returns_backup_result(app):
    job = run_job(app, "prodready backup", {"backup_label": "awx-4716"}, 4716)
    assert (job.status, job.rc) == ("successful", 0), job.stdout[-3000:]
    result = job.custom["backup_result"]["h1"]
    assert result["label"] == "awx-4716" and result["path"].startswith(str(app["root"] / "backups")), result
    assert result["verified"] is True and result["row_counts"], result
    assert (app["root"] / "backups").is_dir() and any((app["root"] / "backups").iterdir())
    assert [line for line in audited(app, 4716) if line["launched_by"] == AWX_USER]
    assert_no_secret(app, job)


def test_exec_job_runs_the_command_in_the_live_release_and_returns_exec_result(app):
    job = run_job(app, "prodready exec", {"exec_command": "python -c 'import sampleapp; print(\"exec-ok\")'"}, 4717)
    assert (job.status, job.rc) == ("successful", 0), job.stdout[-3000:]
    result = job.custom["exec_result"]["h1"]
    assert (result["result"], result["rc"], result["version"]) == ("success", 0, "1.0.0"), result
    assert "exec-ok" in job.stdout
    execs = [line for line in audited(app, 4717) if line["action"] == "exec"]
    assert execs and execs[-1]["launched_by"] == AWX_USER
    assert_no_secret(app, job)
