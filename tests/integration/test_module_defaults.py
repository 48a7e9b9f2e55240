"""module_defaults per family (meta/runtime.yml action groups), through real ansible-playbook.

One play sets PostgreSQL, Redis and HTTP options once each, for their own group, and runs
pg_backup (check mode), redis_cache_check and health_gate with none of them in the tasks. The
environment holds wrong passwords, so the connections work only if the groups' values reached
the modules. The same PostgreSQL options under the `deploy` group (every module) break
health_gate with "Unsupported parameters": why the families exist.
"""

import json

import pytest
import yaml

from health_server import HealthServer
from helpers import run_playbook


@pytest.fixture(scope="module")
def server():
    srv = HealthServer().start()
    yield srv
    srv.stop()


def connections(sandbox):
    pg, redis = sandbox["services"]["postgres"], sandbox["services"]["redis"]
    postgres = dict(login_host=pg["host"], login_port=pg["port"], login_user=pg["app_user"],
                    login_password=sandbox["secrets"]["app_db_password"], db=pg["app_db"])
    cache = dict(login_host=redis["host"], login_port=redis["port"], login_password=sandbox["secrets"]["redis_password"])
    return postgres, cache


def play(module_defaults, tasks, out):
    return [{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "module_defaults": module_defaults,
        "tasks": tasks + [{"name": "results", "check_mode": False, "ansible.builtin.copy": {
            "content": "{{ {'backup': backup | default(None), 'cache': cache | default(None), "
                       "'gate': gate | default(None)} | to_json }}",
            "dest": str(out), "mode": "0600"}}],
    }]


def test_each_family_group_sets_its_own_modules_options(sandbox, server, tmp_path):
    postgres, cache = connections(sandbox)
    out = tmp_path / "results.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play(
        {
            "group/prodready.deploy.postgres": postgres,
            "group/prodready.deploy.redis": cache,
            "group/prodready.deploy.http": {"request_timeout": 3, "validate_certs": False,
                                            "headers": {"X-Deploy": "module-defaults"}},
        },
        [
            {"name": "backup (check mode)", "prodready.deploy.pg_backup": {
                "dest_dir": str(tmp_path / "backups"), "label": "module-defaults",
                "bin_dir": sandbox["services"]["postgres"]["bin_dir"]},
             "check_mode": True, "register": "backup"},
            {"name": "cache", "prodready.deploy.redis_cache_check": {}, "register": "cache"},
            {"name": "gate", "prodready.deploy.health_gate": {"url": server.url("/fast"), "requests": 3},
             "register": "gate"},
        ], out)))
    proc = run_playbook(playbook, env={"PGPASSWORD": "wrong", "REDIS_PASSWORD": "wrong"})
    assert proc.returncode == 0, proc.output[-3000:]
    assert "Unsupported parameters" not in proc.output
    results = json.loads(out.read_text())
    assert results["backup"]["changed"] is True
    assert results["backup"]["path"].startswith(str(tmp_path / "backups") + "/")
    assert results["cache"]["passed"] is True and results["cache"]["ping_ms"] >= 0
    assert results["gate"]["passed"] is True and results["gate"]["samples"] == 3
    assert not (tmp_path / "backups").exists()  # check mode wrote nothing


def test_postgres_options_under_the_deploy_group_break_the_other_modules(sandbox, server, tmp_path):
    postgres = connections(sandbox)[0]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play(
        {"group/prodready.deploy.deploy": postgres},
        [{"name": "gate", "prodready.deploy.health_gate": {"url": server.url("/fast"), "requests": 1},
          "register": "gate"}], tmp_path / "results.json")))
    proc = run_playbook(playbook)
    assert proc.returncode != 0
    assert "Unsupported parameters" in proc.flat and "login_host" in proc.flat
