"""The sandbox brings up real services, each answering where it says it listens."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import redis

import sandbox as sandbox_script  # scripts/sandbox.py (tests/conftest.py puts scripts/ on sys.path)

ROOT = Path(__file__).resolve().parents[2]


def haproxy(sandbox, command):
    return sandbox_script.haproxy_socket(sandbox["services"]["haproxy"]["admin_socket"], command)


def test_postgres_answers_as_app_user_with_password(sandbox):
    pg = sandbox["services"]["postgres"]
    with psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["app_user"],
                          dbname=pg["app_db"], password=sandbox["secrets"]["app_db_password"]) as conn:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            assert cur.fetchone()[0].startswith("15")
            cur.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'")
            assert cur.fetchone()[0] == 1


def test_postgres_refuses_a_wrong_password(sandbox):
    pg = sandbox["services"]["postgres"]
    try:
        psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["app_user"],
                         dbname=pg["app_db"], password="wrong", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        assert "password authentication failed" in str(exc)
    else:
        raise AssertionError("a wrong password was accepted")


def test_postgres_cluster_belongs_to_postgres_user(sandbox):
    data_dir = Path(sandbox["services"]["postgres"]["data_dir"])
    assert data_dir.stat().st_uid == __import__("pwd").getpwnam("postgres").pw_uid
    assert oct(data_dir.stat().st_mode & 0o777) == "0o700"


def test_redis_requires_its_password(sandbox):
    rd = sandbox["services"]["redis"]
    client = redis.Redis(host=rd["host"], port=rd["port"], password=sandbox["secrets"]["redis_password"])
    assert client.ping() is True
    anonymous = redis.Redis(host=rd["host"], port=rd["port"])
    try:
        anonymous.ping()
    except redis.AuthenticationError:
        pass
    else:
        raise AssertionError("redis answered without a password")


def test_haproxy_admin_socket_lists_both_colors(sandbox):
    stat = haproxy(sandbox, "show stat")
    servers = {line.split(",")[1] for line in stat.splitlines() if line.startswith("be_app,")}
    assert {"blue", "green", "BACKEND"} <= servers


def test_every_test_slot_has_its_own_backend_with_two_colors(sandbox):
    slots = sandbox["services"]["haproxy"]["slots"]
    stat = haproxy(sandbox, "show stat")
    ports = set()
    for name, slot in slots.items():
        servers = {line.split(",")[1] for line in stat.splitlines() if line.startswith(slot["backend"] + ",")}
        assert {"blue", "green"} <= servers, name
        ports.update([slot["port"], *slot["servers"].values()])
    assert len(ports) == 3 * len(slots)  # no two slots share a port


def test_nginx_serves_static_file_and_config_checks(sandbox):
    import requests

    resp = requests.get(sandbox["services"]["nginx"]["static_url"], timeout=5)
    assert resp.status_code == 200 and "static file" in resp.text
    ngx = sandbox["services"]["nginx"]
    proc = subprocess.run(["/usr/sbin/nginx", "-t", "-p", ngx["prefix"], "-c", ngx["config"]],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "upstream app_live" in Path(ngx["upstream_include"]).read_text()


def test_supervisord_answers(sandbox):
    sup = sandbox["services"]["supervisor"]
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", sup["config"], "pid"],
                          capture_output=True, text=True, check=False)
    assert proc.stdout.strip().isdigit()


def test_every_port_is_below_the_ephemeral_range(sandbox):
    assert all(port < 32768 for port in sandbox["ports"].values())


def test_secrets_file_is_private(sandbox):
    assert oct(os.stat(sandbox["secrets_file"]).st_mode & 0o777) == "0o600"


def test_up_is_idempotent_and_status_reports_up(sandbox):
    script = ROOT / "scripts" / "sandbox.py"
    before = {name: svc["pid"] for name, svc in sandbox["services"].items()}
    up = subprocess.run([sys.executable, str(script), "up"], capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr
    assert up.stdout.count("already running") == len(before)
    status = subprocess.run([sys.executable, str(script), "status"], capture_output=True, text=True,
                            check=False)
    assert status.returncode == 0 and status.stdout.count(" up ") == len(before)


def live_processes(marker):
    """Non-zombie processes whose command line mentions `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if state != "Z" and marker in cmdline:
            found.append((int(entry.name), cmdline))
    return found


def test_a_second_sandbox_comes_up_and_down_leaving_no_process(tmp_path):
    """A private sandbox (other dir, shifted ports) proves up/down from scratch."""
    env = dict(os.environ, PRODREADY_SANDBOX_DIR=str(tmp_path / "sb"), PRODREADY_PORT_OFFSET="2000")
    script = ROOT / "scripts" / "sandbox.py"
    up = subprocess.run([sys.executable, str(script), "up"], capture_output=True, text=True,
                        env=env, check=False)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "127.0.0.1:27432" in up.stdout and "127.0.0.1:30080" in up.stdout
        assert live_processes(str(tmp_path / "sb")), "no process runs from the new sandbox dir"
        # An outdated router config is reloaded by `up`, keeping the colors' admin states.
        sock = tmp_path / "sb" / "haproxy" / "admin.sock"
        sandbox_script.haproxy_socket(sock, "set server be_s2/green state ready")
        cfg = tmp_path / "sb" / "haproxy" / "haproxy.cfg"
        cfg.write_text(cfg.read_text().replace("backend be_s12", "backend be_s12_old"))
        again = subprocess.run([sys.executable, str(script), "up"], capture_output=True, text=True,
                               env=env, check=False)
        assert "haproxy    config changed: reloaded" in again.stdout, again.stdout + again.stderr
        assert "be_s12_old" not in cfg.read_text()
        states = {}
        for line in sandbox_script.haproxy_socket(sock, "show servers state be_s2").splitlines()[2:]:
            if line.strip():
                fields = line.split()
                states[fields[3]] = int(fields[6]) & 1  # srv_admin_state bit 1: forced maint
        assert states == {"blue": 1, "green": 0}
    finally:
        down = subprocess.run([sys.executable, str(script), "down"], capture_output=True,
                              text=True, env=env, check=False)
    assert down.returncode == 0, down.stderr
    assert live_processes(str(tmp_path / "sb")) == []
    # postgres' processes name the data dir only in the postmaster; check the port too.
    assert not any("27432" in cmd for pid, cmd in live_processes("postgres"))


def test_program_files_of_removed_directories_are_set_aside(tmp_path, capsys):
    """An interrupted test leaves its supervisord program file behind while its tmp directory
    is removed; supervisord would then refuse to start at all. `up` sets such files aside."""
    sup = sandbox_script.Supervisor(tmp_path, {}, {})
    programs = sup.dir / "programs"
    programs.mkdir(parents=True)
    live = tmp_path / "live"
    (live / "logs").mkdir(parents=True)
    (programs / "kept.conf").write_text(
        "[program:kept]\ncommand = /bin/true\ndirectory = %s\nstdout_logfile = %s/logs/kept.log\n" % (live, live))
    (programs / "gone-log.conf").write_text(
        "[program:gone-log]\ncommand = /bin/true\nstdout_logfile = %s/nowhere/blue.log\n" % tmp_path)
    (programs / "gone-dir.conf").write_text(
        "[program:gone-dir]\ncommand = /bin/true\ndirectory = %s/removed\n" % tmp_path)

    sup.set_aside_stale_programs()

    assert sorted(p.name for p in programs.glob("*.conf")) == ["kept.conf"]
    assert sorted(p.name for p in (programs / "stale").glob("*.conf")) == ["gone-dir.conf", "gone-log.conf"]
    said = capsys.readouterr().out
    assert "gone-log.conf set aside" in said and "%s/nowhere no longer exists" % tmp_path in said
    assert "gone-dir.conf set aside" in said and "kept.conf" not in said
