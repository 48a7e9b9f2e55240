"""Helpers shared by integration tests: superuser connection, alembic runs, free ports."""

import os
import socket
import subprocess

import psycopg2


def superuser_conn(sandbox, db="postgres"):
    pg = sandbox["services"]["postgres"]
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user="postgres", dbname=db,
                            password=sandbox["secrets"]["postgres_superuser_password"])
    conn.autocommit = True
    return conn


def free_port():
    """A free TCP port below 32768 (above is the kernel's ephemeral range).

    Each pytest process of `make test` (PRODREADY_TEST_SHARD=0, 1) and each pytest-xdist
    worker (gw0, gw1...) searches its own range (29100-29299, 29300-29499...), so two
    processes never race for the same port.
    """
    shard = os.environ.get("PRODREADY_TEST_SHARD", "")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    if shard.isdigit():
        index = int(shard)
    else:
        index = int(worker[2:]) if worker[2:].isdigit() else 0
    start = 29100 + 200 * (index % 4)
    for port in range(start, start + 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in %d-%d" % (start, start + 199))


def alembic(app_python, release, url, *args):
    env = dict(os.environ, DATABASE_URL=url)
    return subprocess.run([str(app_python), "-m", "alembic", "-c", "alembic.ini", *args],
                          cwd=release, env=env, capture_output=True, text=True, check=False)


def create_app_db(sandbox, prefix):
    """A new empty database owned by the app role, named `<prefix><random>`."""
    import uuid

    name = prefix + uuid.uuid4().hex[:8]
    conn = superuser_conn(sandbox)  # autocommit; `with conn` would open a transaction
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} OWNER {sandbox['services']['postgres']['app_user']}")
    conn.close()
    return name


def drop_db(sandbox, name):
    conn = superuser_conn(sandbox)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def retire_test_slot_app(sandbox, app, root, backend=None):
    """Stop and forget both colors of `app` and put its slot's servers in maintenance.

    `backend` defaults to the `be_test` slot; pass `sandbox[...]["slots"]["s3"]["backend"]` etc.
    """
    import demo_app  # scripts/demo_app.py

    sup = sandbox["services"]["supervisor"]
    ctl = [str(root / ".venv" / "bin" / "supervisorctl"), "-c", sup["config"]]
    for color in ("blue", "green"):
        subprocess.run(ctl + ["stop", f"{app}-{color}"], capture_output=True, check=False)
        (demo_app.Path(sup["programs_dir"]) / f"{app}-{color}.conf").unlink(missing_ok=True)
        backend = backend or sandbox["services"]["haproxy"]["test_backend"]
        demo_app.haproxy_cmd(sandbox, f"set server {backend}/{color} state maint")
    # Only this app's programs: a bare `update` would also act on other tests' new programs.
    subprocess.run(ctl + ["update", f"{app}-blue", f"{app}-green"], capture_output=True, check=False)


def private_nginx_conf(prefix, include, port, next_upstream=False):
    """nginx.conf of a private nginx under `prefix` (with logs/ and tmp/ in it) that listens on
    `port` and proxies, keep-alive, to the upstream `app_live` of the file `include`."""
    retry = "\n            proxy_next_upstream error timeout;" if next_upstream else ""
    return """user root;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/logs/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %(d)s/tmp/body;
    proxy_temp_path %(d)s/tmp/proxy;
    fastcgi_temp_path %(d)s/tmp/fastcgi;
    uwsgi_temp_path %(d)s/tmp/uwsgi;
    scgi_temp_path %(d)s/tmp/scgi;
    include %(inc)s;
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            proxy_pass http://app_live;
            proxy_http_version 1.1;
            proxy_set_header Connection "";%(retry)s
        }
    }
}
""" % dict(d=prefix, inc=include, port=port, retry=retry)
