"""The blue_green role deploys an app it has never seen, described by inventory variables alone.

The app here is a few lines of plain WSGI (standard library server) with its own Alembic
folder and a `/healthz` path whose JSON carries the version under `build.version`: nothing
like the sample app. It runs behind the sandbox's haproxy slot s9.
"""

import json

import pytest
import requests
import yaml

import demo_app
from apptools import create_app_db, drop_db, retire_test_slot_app, superuser_conn
from helpers import ROOT, run_playbook
from wsgi_app import artifact

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def notes_app(sandbox, tmp_path_factory):
    base = tmp_path_factory.mktemp("anyapp")
    name = create_app_db(sandbox, "t_notes_")
    pg = sandbox["services"]["postgres"]
    demo_app.ensure_wheels()
    # Requirements in two files plus a constraints file; ready once READY is in the release.
    artifact(base / "notes-2.0.tar.gz", "2.0", requirements="alembic==1.20.1\n", extra={
        "requirements-db.txt": "SQLAlchemy\npsycopg2-binary\n",
        "constraints.txt": "SQLAlchemy==2.1.9\npsycopg2-binary==2.9.13\n", "READY": ""})
    haproxy = sandbox["services"]["haproxy"]
    slot = haproxy["slots"]["s9"]
    sup = sandbox["services"]["supervisor"]
    # Hooks: task files of the site's own, run before/after chosen phases (e.g. to notify).
    hooks = {}
    for when in ("before", "after"):
        (base / f"{when}.yml").write_text(yaml.safe_dump([{
            "name": f"Record {when} the phase (test hook)",
            "ansible.builtin.lineinfile": {"path": str(base / "hooks.log"), "create": True, "mode": "0600",
                                           "line": when + " {{ blue_green_phase }} {{ blue_green_version }}"},
        }, {
            # From the release phase on, a hook can run the release's own venv.
            "name": "Run the release's Python (test hook)",
            "ansible.builtin.command": {"argv": ["{{ blue_green_release_venv }}/bin/python", "-c", "import sqlalchemy"]},
            "changed_when": False,
            "when": "blue_green_phase == 'migrate'",
        }]))
    for hook in ("before_lock", "after_plan", "before_migrate", "after_migrate", "after_switch", "after_finalize"):
        hooks[hook] = str(base / (hook.split("_", maxsplit=1)[0] + ".yml"))
    db_url = "postgresql+psycopg2://%s:%s@%s:%s/%s" % (
        pg["app_user"], sandbox["secrets"]["app_db_password"], pg["host"], pg["port"], name)
    host_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(ROOT / ".venv/bin/python"),
        "app_name": "notes",
        "app_root": str(base / "srv" / "notes"),
        "blue_green_artifact_src": str(base) + "/notes-{{ blue_green_version }}.tar.gz",
        "blue_green_pip_extra_args": f"--no-index --find-links {ROOT}/.cache/wheels",
        # The command of the version's range is the one that runs (the fallback cannot).
        "app_start_command": "/bin/false",
        "app_start_commands": [
            {"versions": "<2.0", "command": "/bin/false"},
            {"versions": ">=2.0.dev0,<3", "command": "{{ app_venv }}/bin/python {{ app_release_dir }}/app.py {{ app_port }}"}],
        "blue_green_requirements_file": ["requirements.txt", "requirements-db.txt"],
        "blue_green_constraints_files": ["constraints.txt"],
        "app_process_env": {"NOTES_MODE": "production"},
        "app_colors": {"blue": {"port": slot["servers"]["blue"]},
                       "green": {"port": slot["servers"]["green"]}},
        "app_process_manager": "supervisor",
        "app_supervisor_conf_dir": sup["programs_dir"],
        "app_supervisorctl": str(ROOT / ".venv/bin/supervisorctl"),
        "app_supervisor_config": sup["config"],
        "app_haproxy_admin_socket": haproxy["admin_socket"],
        "app_haproxy_backend": slot["backend"],
        "app_router_url": f"http://127.0.0.1:{slot['port']}",
        # The router checks /health (its own configuration); the gates use the app's path.
        "app_health_path": "/healthz",
        "app_ready_path": "/readyz",
        "app_version_path": "build.version",
        "app_database": {"db": name, "login_host": pg["host"], "login_port": pg["port"],
                         "login_user": pg["app_user"],
                         "login_password": sandbox["secrets"]["app_db_password"]},
        "app_database_url": db_url,
        "app_alembic": [{"config": "db/alembic.ini"}],
        "app_start_timeout": 90,
        "blue_green_gate_live": {"requests": 20, "concurrency": 2, "max_error_rate": 0.0},
        "blue_green_hooks": hooks,
    }
    inventory = base / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"notes1": host_vars}}}))
    yield {"inventory": inventory, "db": name, "root": base / "srv" / "notes", "slot": slot,
           "hooks_log": base / "hooks.log"}
    retire_test_slot_app(sandbox, "notes", ROOT, backend=slot["backend"])
    drop_db(sandbox, name)


def test_a_plain_wsgi_app_with_its_own_alembic_tree_deploys_by_variables(sandbox, notes_app):
    proc = run_playbook(ROOT / "playbooks" / "deploy.yml", inventory=notes_app["inventory"],
                        extra_vars={"app_version": "2.0", "deploy_hosts": "all"})
    output = proc.flat
    assert proc.returncode == 0, output[-4000:]
    assert "notes 2.0 is live on notes1" in output
    live = json.loads((notes_app["root"] / "state.json").read_text())["live_color"]
    port = notes_app["slot"]["servers"][live]
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["build"]["version"] == "2.0"
    conn = superuser_conn(sandbox, notes_app["db"])
    with conn.cursor() as cur:
        cur.execute("SELECT version_num FROM alembic_version")
        assert cur.fetchone()[0] == "n1"
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'notes'")
        assert cur.fetchone()[0] == 1
    conn.close()
    # The hooks ran at their phases, in the order of the phases.
    assert notes_app["hooks_log"].read_text().splitlines() == [
        "before lock 2.0", "after plan 2.0", "before migrate 2.0", "after migrate 2.0", "after switch 2.0",
        "after finalize 2.0"]
