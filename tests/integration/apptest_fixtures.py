"""Fixtures for the tests that run the sample app against the sandbox (tests/integration,
tests/reliability: each conftest.py imports them)."""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

import demo_app as app_tools  # scripts/demo_app.py
from apptools import free_port, superuser_conn

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def app_python(sandbox):
    """An interpreter with the sample app's requirements (one venv shared by these tests)."""
    return app_tools.ensure_venv(ROOT / ".cache" / "test-app-venv",
                                 ROOT / "examples" / "app" / "requirements.txt")


@pytest.fixture
def fresh_db(sandbox):
    """A new empty database owned by the app role; dropped afterwards. Yields its URL."""
    name = "t_app_" + uuid.uuid4().hex[:10]
    conn = superuser_conn(sandbox)  # autocommit; `with conn` would open a transaction
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} OWNER {sandbox['services']['postgres']['app_user']}")
    conn.close()
    pg = sandbox["services"]["postgres"]
    url = "postgresql+psycopg2://%s:%s@%s:%s/%s" % (
        pg["app_user"], sandbox["secrets"]["app_db_password"], pg["host"], pg["port"], name)
    yield {"name": name, "url": url}
    conn = superuser_conn(sandbox)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


@pytest.fixture(scope="session")
def release_dir(tmp_path_factory):
    """Factory: (version, variant) -> an unpacked release directory of the sample app."""
    base = tmp_path_factory.mktemp("releases")

    def make(version, variant):
        art = app_tools.build(version, variant, base / "dist")
        return app_tools.unpack(Path(art["path"]), base / f"{version}-{variant}")

    return make


@pytest.fixture
def run_app(app_python, sandbox, tmp_path):
    """Factory: start a release as a real process; returns (base_url, Popen). Stops them after."""
    procs = []

    def start(release, db_url, env_lines=(), wait=True, redis_db=7):
        port = free_port()
        env_file = tmp_path / f"env-{port}"
        env_file.write_text("\n".join([
            f"DATABASE_URL={db_url}",
            f"REDIS_URL={app_tools.redis_url(sandbox, redis_db)}",
            f"CACHE_PREFIX=t{port}_",
            *env_lines, ""]))
        env_file.chmod(0o600)
        log = open(tmp_path / f"app-{port}.log", "w")
        proc = subprocess.Popen([str(app_python), "-m", "sampleapp", "--port", str(port)],
                                cwd=release, env=dict(os.environ, APP_ENV_FILE=str(env_file)),
                                stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        if wait:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                try:
                    requests.get(url + "/health", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.05)
        proc.log_path = tmp_path / f"app-{port}.log"
        proc.env_file = env_file
        return url, proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
