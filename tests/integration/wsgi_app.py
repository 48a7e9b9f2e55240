"""A tiny app that is nothing like the sample app: plain WSGI (standard library server), its
own Alembic folder, `/healthz` with the version under `build.version`. Used by the tests that
prove the roles deploy any app by variables (test_any_app) and by the promote test.
"""

import io
import tarfile

from helpers import ROOT

APP_PY = '''\
import json, os, sys
from wsgiref.simple_server import make_server, WSGIRequestHandler

VERSION = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")).read().strip()


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def app(environ, start_response):
    if environ["PATH_INFO"] == "/health":  # what the router's own health check requests
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    if environ["PATH_INFO"] == "/healthz":
        body = json.dumps({"ok": True, "build": {"version": VERSION}}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if environ["PATH_INFO"] == "/readyz":  # ready once a READY file is beside the code
        here = os.path.dirname(os.path.abspath(__file__))
        ready = os.path.exists(os.path.join(here, "READY"))
        start_response("200 OK" if ready else "503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"ready" if ready else b"warming up"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


make_server("127.0.0.1", int(sys.argv[1]), app, handler_class=Quiet).serve_forever()
'''

ENV_PY = '''\
import os
from alembic import context
from sqlalchemy import create_engine, pool

url = context.config.get_main_option("sqlalchemy.url") or os.environ["NOTES_DB"]
if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with create_engine(url, poolclass=pool.NullPool).connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
'''

REVISION = '''\
import sqlalchemy as sa
from alembic import op

revision = "n1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text))


def downgrade():
    op.drop_table("notes")
'''


# A marker that makes a release refuse to start.
CRASH_AT_START = "raise SystemExit('refusing to start: broken build')\n"

DB_REQUIREMENTS = "alembic==1.20.1\nSQLAlchemy==2.1.9\npsycopg2-binary==2.9.13\n"


def artifact(path, version, requirements=DB_REQUIREMENTS, marker="", extra=None):
    """Write the app's release tarball for `version`; `marker` (code put first in app.py) changes
    it; `extra` adds or replaces files (name -> text)."""
    files = {
        "app.py": marker + APP_PY,  # first: code after serve_forever() never runs
        "VERSION": version + "\n",
        "requirements.txt": requirements,
        "db/alembic.ini": "[alembic]\nscript_location = db/migrations\nsqlalchemy.url =\n",
        "db/migrations/env.py": ENV_PY,
        "db/migrations/script.py.mako": "",
        "db/migrations/versions/n1_notes.py": REVISION,
    }
    files.update(extra or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


START_COMMAND = "{{ app_venv }}/bin/python {{ app_release_dir }}/app.py {{ app_port }}"


def role_vars(sandbox, **overrides):
    """blue_green variables that run this app, without a database, under the sandbox's
    supervisor; `overrides` adds the app's name, root, artifact and router, or replaces any."""
    sup = sandbox["services"]["supervisor"]
    hv = {
        "blue_green_requirements_file": "",
        "app_start_command": START_COMMAND,
        "app_process_manager": "supervisor",
        "app_supervisor_conf_dir": sup["programs_dir"],
        "app_supervisorctl": str(ROOT / ".venv/bin/supervisorctl"),
        "app_supervisor_config": sup["config"],
        # The router checks /health (its own configuration); the gates use the app's path.
        "app_health_path": "/healthz",
        "app_ready_path": "",
        "app_version_path": "build.version",
        "app_database": {},
        "app_alembic": [],
        "blue_green_backup": False,
        "app_start_timeout": 60,
        "blue_green_gate_live": {"requests": 10, "concurrency": 2, "max_error_rate": 0.0},
    }
    hv.update(overrides)
    return hv


def local_vars():
    """The connection of a simulated host: this machine, the checkout's Python."""
    return {"ansible_connection": "local", "ansible_python_interpreter": str(ROOT / ".venv/bin/python")}


def slot_vars(sandbox, slot_name):
    """The colors and router of one sandbox haproxy slot."""
    haproxy = sandbox["services"]["haproxy"]
    slot = haproxy["slots"][slot_name]
    return {
        "app_colors": {c: {"port": slot["servers"][c]} for c in ("blue", "green")},
        "app_haproxy_admin_socket": haproxy["admin_socket"],
        "app_haproxy_backend": slot["backend"],
        "app_router_url": f"http://127.0.0.1:{slot['port']}",
    }
