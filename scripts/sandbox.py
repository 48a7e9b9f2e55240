"""The sandbox: real PostgreSQL, Redis, haproxy, nginx and supervisord on this machine.

One script brings every service the demo, the integration tests, molecule and the
benchmarks need up and down, unprivileged where it can, under a project-local directory
(``.sandbox/`` by default) and on fixed ports below 32768 (above that is the kernel's
range for outgoing ports, which TIME_WAIT sockets of load tests can occupy).

    scripts/sandbox up        # idempotent; waits until every service answers
    scripts/sandbox status    # what runs, with pid and address; exit 1 if anything is down
    scripts/sandbox down      # stops exactly what `up` started, by pid
    scripts/sandbox env       # shell exports (PGHOST, REDIS_URL, ...) for the running sandbox

Environment:
    PRODREADY_SANDBOX_DIR     where state lives (default: <repo>/.sandbox)
    PRODREADY_PORT_OFFSET     added to every port, to run a second sandbox beside the first
                              (the base ports run up to 28432: an offset must stay below ~4300,
                              or ports reach the kernel's outgoing range, which is refused)

The description of a running sandbox is ``<dir>/sandbox.json`` (ports, paths, pids) and
``<dir>/secrets.json`` (0600: passwords). Tests load both through ``load()``.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PRODREADY_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_OS_USER = "postgres"

BASE_PORTS = {
    "postgres": 25432,
    "redis": 26379,
    "haproxy": 28080,
    "haproxy_stats": 28090,
    "nginx": 28081,
    "blue": 28101,
    "green": 28102,
    # A second app slot behind its own haproxy frontend, for tests that deploy with the
    # blue_green role while the demo's app keeps the first slot.
    "test_router": 28180,
    "test_blue": 28201,
    "test_green": 28202,
}
# More app slots, each a haproxy frontend + backend with two colors, so that
# integration tests of different roles (rollback, fleets, restart strategy...) and molecule
# scenarios never share a backend: slot i listens on 28180+i, colors on 28209+2i/28210+2i.
# (s1..s20)
TEST_SLOTS = 20
for _i in range(1, TEST_SLOTS + 1):
    BASE_PORTS[f"s{_i}_router"] = 28180 + _i
    BASE_PORTS[f"s{_i}_blue"] = 28209 + 2 * _i
    BASE_PORTS[f"s{_i}_green"] = 28210 + 2 * _i

APP_DB = "app"
APP_DB_USER = "app"

# The fleet hosts' bridge (scripts/fleet_hosts.py: network namespaces with sshd, one per
# simulated host). PostgreSQL and Redis also listen on its address, so that the hosts reach
# them the way production hosts reach a database server; nothing else is routed there.
FLEET_BRIDGE = "prfleet0"
FLEET_ADDRESS = "10.231.0.1"
FLEET_SUBNET = "10.231.0.0/24"
FLEET_LISTENERS = ("postgres", "redis")


class SandboxError(Exception):
    """A service could not be brought up or down; the message says which and why."""


# --------------------------------------------------------------------------- layout


def sandbox_dir() -> Path:
    return Path(os.environ.get("PRODREADY_SANDBOX_DIR", ROOT / ".sandbox")).resolve()


def ports() -> dict:
    offset = int(os.environ.get("PRODREADY_PORT_OFFSET", "0"))
    result = {name: port + offset for name, port in BASE_PORTS.items()}
    too_high = [f"{n}={p}" for n, p in result.items() if p >= 32768]
    if too_high:
        raise SandboxError(
            "PRODREADY_PORT_OFFSET=%d puts ports in the kernel's outgoing range (>=32768): %s"
            % (offset, ", ".join(too_high))
        )
    return result


def venv_bin(name: str) -> str:
    candidate = ROOT / ".venv" / "bin" / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise SandboxError(f"{name} not found: run scripts/bootstrap.sh first")
    return found


def system_bin(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SandboxError(f"{name} not found: run scripts/bootstrap.sh (installs Debian packages)")


def pg_dir(base: Path) -> Path:
    """PostgreSQL's directory: inside the sandbox when the postgres user can reach it.

    initdb refuses to run as root, so the cluster belongs to the `postgres` OS user, who
    must be able to traverse every parent directory. A checkout under a private home
    (0700) is not reachable: then the cluster lives under /tmp, keyed by the sandbox path.
    """
    inside = base / "postgres"
    probe = subprocess.run(
        ["runuser", "-u", PG_OS_USER, "--", "test", "-x", str(base)],
        capture_output=True, check=False,
    )
    if probe.returncode == 0:
        return inside
    import hashlib

    key = hashlib.sha256(str(base).encode()).hexdigest()[:10]
    return Path("/tmp") / f"prodready-sandbox-pg-{key}"


# --------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[sandbox] {msg}", flush=True)


def run(argv, env=None, check=True, as_postgres=False, **kw):
    if as_postgres:
        argv = ["runuser", "-u", PG_OS_USER, "--"] + list(argv)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, **kw)
    if check and proc.returncode != 0:
        raise SandboxError(
            "%s exited %d: %s" % (" ".join(map(str, argv[:6])), proc.returncode,
                                  (proc.stderr or proc.stdout).strip()[-800:])
        )
    return proc


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate, what: str, timeout: float = 30.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise SandboxError(f"{what} did not answer within {timeout:.0f} s")


def read_pid(path: Path):
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid, expect: str = "") -> bool:
    """True if `pid` runs and its command line mentions `expect` (guards pid reuse)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return expect in cmdline if expect else True


def haproxy_socket(path, command: str) -> str:
    """Send one command to haproxy's admin socket and return its whole answer: through the
    collection's one runtime-API client (plugins/module_utils/_haproxy_runtime.py), which
    bootstrap.sh makes importable from .build/collections."""
    collections = str(ROOT / ".build" / "collections")
    if collections not in sys.path:
        sys.path.insert(0, collections)
    from ansible_collections.prodready.deploy.plugins.module_utils import _errors, _haproxy_runtime
    try:
        return _haproxy_runtime.RuntimeApi(str(path)).command(command)
    except _errors.ProdreadyError as exc:
        raise OSError(str(exc)) from None


def ensure_bridge(base: Path) -> None:
    """The fleet bridge with its address, up (idempotent). `base` records that we made it.

    Raises SandboxError when this machine does not permit it (no CAP_NET_ADMIN) or when its
    subnet is already routed through another interface.
    """
    ip = system_bin("ip")
    routed = run([ip, "-o", "-4", "route", "show", FLEET_SUBNET], check=False).stdout.split()
    if routed and routed[routed.index("dev") + 1] != FLEET_BRIDGE:
        raise SandboxError(f"{FLEET_SUBNET} is already routed through {routed[routed.index('dev') + 1]}: "
                           f"the fleet bridge {FLEET_BRIDGE} needs that subnet")
    if not Path("/sys/class/net", FLEET_BRIDGE).exists():
        proc = run([ip, "link", "add", FLEET_BRIDGE, "type", "bridge"], check=False)
        if proc.returncode == 0:
            (base / "bridge.created").write_text(FLEET_BRIDGE + "\n")
        elif not Path("/sys/class/net", FLEET_BRIDGE).exists():  # else made meanwhile by another up
            raise SandboxError(f"ip link add {FLEET_BRIDGE} type bridge: {proc.stderr.strip()} "
                               "(creating a bridge needs root with CAP_NET_ADMIN)")

    def has_address():
        return f" {FLEET_ADDRESS}/" in run([ip, "-o", "-4", "addr", "show", "dev", FLEET_BRIDGE]).stdout

    if not has_address():
        proc = run([ip, "addr", "add", f"{FLEET_ADDRESS}/{FLEET_SUBNET.split('/')[1]}", "dev", FLEET_BRIDGE],
                   check=False)
        if proc.returncode != 0 and not has_address():
            raise SandboxError(f"ip addr add {FLEET_ADDRESS} dev {FLEET_BRIDGE}: {proc.stderr.strip()}")
    run([ip, "link", "set", FLEET_BRIDGE, "up"])


def remove_bridge(base: Path) -> None:
    """Delete the fleet bridge if `base` created it and no host is attached to it any more."""
    marker = base / "bridge.created"
    if not marker.exists():
        return
    if not Path("/sys/class/net", FLEET_BRIDGE).exists():
        marker.unlink()
        return
    attached = sorted(p.name for p in Path("/sys/class/net", FLEET_BRIDGE, "brif").iterdir())
    if attached:
        log(f"bridge     {FLEET_BRIDGE} kept: fleet hosts still attached ({', '.join(attached)}; "
            "scripts/fleet_hosts.py down)")
        return
    run([system_bin("ip"), "link", "del", FLEET_BRIDGE])
    marker.unlink()
    log(f"bridge     {FLEET_BRIDGE} removed")


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def load_secrets(base: Path) -> dict:
    path = base / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "postgres_superuser_password": secrets.token_urlsafe(18),
        "app_db_password": secrets.token_urlsafe(18),
        "redis_password": secrets.token_urlsafe(18),
    }
    write_private(path, json.dumps(values, indent=2) + "\n")
    return values


# --------------------------------------------------------------------------- services


class Service:
    name = ""
    expect = ""  # substring of the process command line, to recognise our pid

    def __init__(self, base: Path, port_map: dict, secret: dict):
        self.base = base
        self.ports = port_map
        self.secrets = secret
        self.dir = base / self.name

    @property
    def pidfile(self) -> Path:
        return self.dir / f"{self.name}.pid"

    def pid(self):
        return read_pid(self.pidfile)

    def running(self) -> bool:
        return pid_alive(self.pid(), self.expect)

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        terminate(self.pid(), self.expect, self.name)

    def describe(self) -> dict:
        return {}


def terminate(pid, expect: str, name: str, timeout: float = 20.0) -> None:
    if not pid_alive(pid, expect):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, expect):
            return
        time.sleep(0.05)
    log(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f} s: killing it")
    os.kill(pid, signal.SIGKILL)


class Postgres(Service):
    name = "postgres"
    expect = "postgres"

    def __init__(self, *a):
        super().__init__(*a)
        self.dir = pg_dir(self.base)
        self.data = self.dir / "data"
        self.run_dir = self.dir / "run"

    @property
    def pidfile(self) -> Path:
        return self.data / "postmaster.pid"

    def env(self) -> dict:
        env = dict(os.environ)
        env["PGPASSWORD"] = self.secrets["postgres_superuser_password"]
        return env

    def ready(self) -> bool:
        proc = run([PG_BIN / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.ports["postgres"])],
                   check=False)
        return proc.returncode == 0

    def start(self) -> None:
        pw = pwd.getpwnam(PG_OS_USER)
        for d in (self.dir, self.run_dir, self.dir / "log"):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, pw.pw_uid, pw.pw_gid)
            os.chmod(d, 0o700)
        if not (self.data / "PG_VERSION").exists():
            log("initdb (PostgreSQL cluster owned by the postgres OS user)")
            pwfile = self.dir / "pwfile"
            write_private(pwfile, self.secrets["postgres_superuser_password"] + "\n")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            try:
                run([PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8",
                     "--locale=C.UTF-8", "--auth=scram-sha-256", f"--pwfile={pwfile}"],
                    as_postgres=True)
            finally:
                pwfile.unlink(missing_ok=True)
            with open(self.data / "postgresql.auto.conf", "a") as fh:
                fh.write(
                    "\n# prodready sandbox\n"
                    f"listen_addresses = '127.0.0.1,{FLEET_ADDRESS}'\n"
                    f"unix_socket_directories = '{self.run_dir}'\n"
                    "max_connections = 200\n"
                    "shared_preload_libraries = 'pg_stat_statements'\n"
                    # A throwaway cluster: durability settings traded for test speed.
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                )
        # Fleet hosts connect from the bridge subnet (password auth like 127.0.0.1). The
        # bridge address is given on the command line too, for clusters made before it; a
        # missing bridge only costs a warning in the log (127.0.0.1 still binds).
        hba = self.data / "pg_hba.conf"
        if FLEET_SUBNET not in hba.read_text():
            with open(hba, "a") as fh:
                fh.write(f"# prodready fleet hosts (scripts/fleet_hosts.py)\n"
                         f"host    all             all             {FLEET_SUBNET:<24}scram-sha-256\n")
        run([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.dir / "log" / "postgres.log",
             "-o", f"-p {self.ports['postgres']} -c listen_addresses=127.0.0.1,{FLEET_ADDRESS}",
             "-w", "-t", "60", "start"], as_postgres=True)
        wait_until(self.ready, "PostgreSQL")
        self.provision()

    def psql(self, sql: str, db: str = "postgres") -> str:
        proc = run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                    "-p", str(self.ports["postgres"]), "-U", "postgres", "-d", db, "-c", sql],
                   env=self.env())
        return proc.stdout.strip()

    def provision(self) -> None:
        """The application's role and database (idempotent)."""
        pw = self.secrets["app_db_password"].replace("'", "''")
        if not self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{APP_DB_USER}'"):
            self.psql(f"CREATE ROLE {APP_DB_USER} LOGIN CREATEDB PASSWORD '{pw}'")
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{APP_DB}'"):
            self.psql(f"CREATE DATABASE {APP_DB} OWNER {APP_DB_USER}")
        self.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", db=APP_DB)

    def stop(self) -> None:
        if self.running():
            run([PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop"],
                as_postgres=True, check=False)
        super().stop()

    def describe(self) -> dict:
        return {
            "host": "127.0.0.1",
            "port": self.ports["postgres"],
            "socket_dir": str(self.run_dir),
            "data_dir": str(self.data),
            "superuser": "postgres",
            "app_db": APP_DB,
            "app_user": APP_DB_USER,
            "bin_dir": str(PG_BIN),
        }


class Redis(Service):
    name = "redis"
    expect = "redis-server"

    def conf(self) -> Path:
        return self.dir / "redis.conf"

    def ready(self) -> bool:
        env = dict(os.environ, REDISCLI_AUTH=self.secrets["redis_password"])
        proc = run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.ports["redis"]), "ping"],
                   env=env, check=False)
        return proc.stdout.strip() == "PONG"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_private(self.conf(), "\n".join([
            f"port {self.ports['redis']}",
            f"bind 127.0.0.1 -{FLEET_ADDRESS}",  # '-': skipped while the bridge is missing
            "protected-mode yes",
            "daemonize yes",
            f"pidfile {self.pidfile}",
            f"logfile {self.dir / 'redis.log'}",
            f"dir {self.dir}",
            'save ""',
            "appendonly no",
            "maxmemory 1gb",
            "maxmemory-policy allkeys-lru",
            f"requirepass {self.secrets['redis_password']}",
            "",
        ]))
        run([system_bin("redis-server"), str(self.conf())])
        wait_until(self.ready, "Redis")

    def describe(self) -> dict:
        return {"host": "127.0.0.1", "port": self.ports["redis"], "db": 0}


class Supervisor(Service):
    name = "supervisor"
    expect = "supervisord"

    def conf(self) -> Path:
        return self.dir / "supervisord.conf"

    def ctl(self, *args, check=True):
        return run([venv_bin("supervisorctl"), "-c", str(self.conf()), *args], check=check)

    def ready(self) -> bool:
        return self.ctl("pid", check=False).stdout.strip().isdigit()

    def set_aside_stale_programs(self) -> None:
        """Move program files whose directory or log directory is gone to programs/stale.

        supervisord refuses to start at all when one included program names a log
        directory that no longer exists, which is what an interrupted test run leaves
        behind (its tmp directory is removed, its program file stays)."""
        programs = self.dir / "programs"
        for conf in sorted(programs.glob("*.conf")):
            missing = []
            for line in conf.read_text(errors="replace").splitlines():
                key, sep, value = line.partition("=")
                key, value = key.strip(), value.strip()
                if not sep or not value:
                    continue
                if key == "directory" and not Path(value).is_dir():
                    missing.append(value)
                elif key.endswith("_logfile") and value.startswith("/") \
                        and not Path(value).parent.is_dir():
                    missing.append(str(Path(value).parent))
            if missing:
                stale = programs / "stale"
                stale.mkdir(exist_ok=True)
                conf.replace(stale / conf.name)
                log(f"supervisor: {conf.name} set aside to {stale}: {', '.join(missing)} no longer exists")

    def start(self) -> None:
        (self.dir / "programs").mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        self.set_aside_stale_programs()
        sock = self.dir / "supervisor.sock"
        write_private(self.conf(), "\n".join([
            "[unix_http_server]",
            f"file = {sock}",
            "chmod = 0700",
            "",
            "[supervisord]",
            f"pidfile = {self.pidfile}",
            f"logfile = {self.dir / 'supervisord.log'}",
            f"childlogdir = {self.dir / 'logs'}",
            "logfile_maxbytes = 5MB",
            "loglevel = info",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl = unix://{sock}",
            "",
            "[include]",
            f"files = {self.dir / 'programs'}/*.conf",
            "",
        ]))
        run([venv_bin("supervisord"), "-c", str(self.conf())])
        wait_until(self.ready, "supervisord")

    def stop(self) -> None:
        if self.running():
            # `shutdown` stops every program first, then supervisord itself.
            self.ctl("shutdown", check=False)
        super().stop()

    def describe(self) -> dict:
        return {"config": str(self.conf()), "programs_dir": str(self.dir / "programs"),
                "socket": str(self.dir / "supervisor.sock")}


class Haproxy(Service):
    name = "haproxy"
    expect = "haproxy"

    def conf(self) -> Path:
        return self.dir / "haproxy.cfg"

    @property
    def admin_socket(self) -> Path:
        return self.dir / "admin.sock"

    def ready(self) -> bool:
        return port_open(self.ports["haproxy"]) and self.admin_socket.exists()

    @property
    def state_file(self) -> Path:
        return self.dir / "server-state"

    def render(self) -> str:
        p = self.ports
        return f"""# prodready sandbox router. Both colors are servers of one backend; a deploy
# switches traffic with runtime-API commands on the admin socket (no reload).
global
    pidfile {self.pidfile}
    stats socket {self.admin_socket} mode 600 level admin
    stats timeout 30s
    log stdout format raw local0 notice
    server-state-file {self.state_file}

defaults
    mode http
    load-server-state-from-file global
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # A health check may take this long on a loaded machine before it counts as failed
    # (the default is `inter`): checks that flap under load look like failed releases.
    timeout check 3s
    timeout http-keep-alive 10s
    option redispatch
    retries 2

frontend fe_app
    bind 127.0.0.1:{p['haproxy']}
    default_backend be_app

backend be_app
    option httpchk GET /health
    http-check expect status 200
    default-server inter 1s fall 3 rise 1
    server blue 127.0.0.1:{p['blue']} check disabled
    server green 127.0.0.1:{p['green']} check disabled

frontend fe_test
    bind 127.0.0.1:{p['test_router']}
    default_backend be_test

backend be_test
    option httpchk GET /health
    http-check expect status 200
    default-server inter 1s fall 3 rise 1
    server blue 127.0.0.1:{p['test_blue']} check disabled
    server green 127.0.0.1:{p['test_green']} check disabled

{self.slot_sections()}
listen stats
    bind 127.0.0.1:{p['haproxy_stats']}
    stats enable
    stats uri /stats
"""

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file.unlink(missing_ok=True)  # a fresh router starts with every color off
        write_private(self.conf(), self.render(), mode=0o644)
        haproxy = system_bin("haproxy")
        run([haproxy, "-c", "-q", "-f", str(self.conf())])
        run([haproxy, "-D", "-f", str(self.conf()), "-p", str(self.pidfile)])
        wait_until(self.ready, "haproxy")

    def outdated(self) -> bool:
        """True when the running router's config is not the one this version renders."""
        try:
            return self.conf().read_text() != self.render()
        except OSError:
            return True

    def reload(self) -> None:
        """Load a new config, keeping every server's admin state (ready/drain/maint).

        The states are saved from the admin socket into the server-state file, the new
        process loads them, binds beside the old one and tells it to finish (-sf): no
        connection is refused and running deploys keep their live color.
        """
        states = haproxy_socket(self.admin_socket, "show servers state")
        write_private(self.state_file, states, mode=0o644)
        old = self.pid()
        write_private(self.conf(), self.render(), mode=0o644)
        haproxy = system_bin("haproxy")
        run([haproxy, "-c", "-q", "-f", str(self.conf())])
        run([haproxy, "-D", "-f", str(self.conf()), "-p", str(self.pidfile), "-sf", str(old)])
        wait_until(lambda: self.pid() != old and self.ready(), "haproxy reload")

    def slot_sections(self) -> str:
        p = self.ports
        out = []
        for i in range(1, TEST_SLOTS + 1):
            out.append(f"""frontend fe_s{i}
    bind 127.0.0.1:{p[f's{i}_router']}
    default_backend be_s{i}

backend be_s{i}
    option httpchk GET /health
    http-check expect status 200
    default-server inter 1s fall 3 rise 1
    server blue 127.0.0.1:{p[f's{i}_blue']} check disabled
    server green 127.0.0.1:{p[f's{i}_green']} check disabled
""")
        return "\n".join(out)

    def describe(self) -> dict:
        slots = {f"s{i}": {"backend": f"be_s{i}", "port": self.ports[f"s{i}_router"],
                           "servers": {"blue": self.ports[f"s{i}_blue"], "green": self.ports[f"s{i}_green"]}}
                 for i in range(1, TEST_SLOTS + 1)}
        return {"host": "127.0.0.1", "port": self.ports["haproxy"], "config": str(self.conf()),
                "slots": slots,
                "admin_socket": str(self.admin_socket), "backend": "be_app",
                "servers": {"blue": self.ports["blue"], "green": self.ports["green"]},
                "test_backend": "be_test", "test_port": self.ports["test_router"],
                "test_servers": {"blue": self.ports["test_blue"], "green": self.ports["test_green"]},
                "stats_url": f"http://127.0.0.1:{self.ports['haproxy_stats']}/stats"}


class Nginx(Service):
    name = "nginx"
    expect = "nginx"

    def conf(self) -> Path:
        return self.dir / "nginx.conf"

    @property
    def upstream_include(self) -> Path:
        return self.dir / "upstream.conf"

    def ready(self) -> bool:
        return port_open(self.ports["nginx"])

    def start(self) -> None:
        for sub in ("logs", "tmp", "www/static"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        static = self.dir / "www" / "static" / "index.html"
        if not static.exists():
            static.write_text("<!doctype html><title>sandbox</title><p>static file for benchmarks\n")
        if not self.upstream_include.exists():
            # The file a deploy rewrites (then `nginx -t`, then reload) to switch colors.
            self.upstream_include.write_text(
                "upstream app_live {\n"
                f"    server 127.0.0.1:{self.ports['blue']};\n"
                "    keepalive 16;\n"
                "}\n"
            )
        d = self.dir
        text = f"""# prodready sandbox: private nginx instance (own prefix, pid and logs).
user root;
worker_processes 1;
pid {self.pidfile};
error_log {d / 'logs' / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    access_log {d / 'logs' / 'access.log'};
    client_body_temp_path {d / 'tmp'} 1;
    proxy_temp_path {d / 'tmp' / 'proxy'};
    fastcgi_temp_path {d / 'tmp' / 'fastcgi'};
    uwsgi_temp_path {d / 'tmp' / 'uwsgi'};
    scgi_temp_path {d / 'tmp' / 'scgi'};
    include {self.upstream_include};
    server {{
        listen 127.0.0.1:{self.ports['nginx']};
        location /static/ {{ root {d / 'www'}; }}
        location / {{
            proxy_pass http://app_live;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""
        write_private(self.conf(), text, mode=0o644)
        nginx = system_bin("nginx")
        run([nginx, "-t", "-q", "-p", str(d), "-c", str(self.conf())])
        run([nginx, "-p", str(d), "-c", str(self.conf())])
        wait_until(self.ready, "nginx")

    def describe(self) -> dict:
        return {"host": "127.0.0.1", "port": self.ports["nginx"], "config": str(self.conf()),
                "prefix": str(self.dir), "upstream_include": str(self.upstream_include),
                "pidfile": str(self.pidfile),
                "static_url": f"http://127.0.0.1:{self.ports['nginx']}/static/index.html"}


SERVICES = [Postgres, Redis, Supervisor, Haproxy, Nginx]


# --------------------------------------------------------------------------- commands


def build(base: Path):
    port_map = ports()
    secret = load_secrets(base)
    return port_map, secret, [cls(base, port_map, secret) for cls in SERVICES]


def describe(base: Path, port_map: dict, services) -> dict:
    return {
        "dir": str(base),
        "root": str(ROOT),
        "ports": port_map,
        "apps_dir": str(base / "apps"),
        "secrets_file": str(base / "secrets.json"),
        "services": {s.name: dict(s.describe(), pid=s.pid()) for s in services},
    }


def env_exports(info: dict, secret: dict) -> str:
    pg = info["services"]["postgres"]
    rd = info["services"]["redis"]
    values = {
        "PGHOST": pg["host"],
        "PGPORT": pg["port"],
        "PGUSER": pg["app_user"],
        "PGDATABASE": pg["app_db"],
        "PGPASSWORD": secret["app_db_password"],
        "DATABASE_URL": "postgresql+psycopg2://%s:%s@%s:%s/%s" % (
            pg["app_user"], secret["app_db_password"], pg["host"], pg["port"], pg["app_db"]),
        "REDIS_URL": "redis://:%s@%s:%s/0" % (secret["redis_password"], rd["host"], rd["port"]),
        "REDISCLI_AUTH": secret["redis_password"],
        "SANDBOX_ROUTER_URL": "http://127.0.0.1:%s" % info["services"]["haproxy"]["port"],
        "SANDBOX_NGINX_URL": "http://127.0.0.1:%s" % info["services"]["nginx"]["port"],
    }
    return "".join(f"export {k}='{v}'\n" for k, v in values.items())


def cmd_up(base: Path) -> int:
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)  # the postgres user must traverse it
    port_map, secret, services = build(base)
    try:
        ensure_bridge(base)
        bridged = True
        log(f"bridge     {FLEET_BRIDGE} {FLEET_ADDRESS} (fleet hosts reach PostgreSQL and Redis there)")
    except SandboxError as exc:
        log(f"bridge     skipped, fleet hosts will not reach PostgreSQL/Redis: {exc}")
        bridged = False
    for svc in services:
        if svc.running() and svc.ready():
            if getattr(svc, "outdated", lambda: False)():
                svc.reload()
                log(f"{svc.name:<10} config changed: reloaded, states kept (pid {svc.pid()})")
                continue
            log(f"{svc.name:<10} already running (pid {svc.pid()})")
            if bridged and svc.name in FLEET_LISTENERS and not port_open(port_map[svc.name], FLEET_ADDRESS):
                log(f"{svc.name:<10} does not listen on {FLEET_ADDRESS} (started before the fleet bridge), "
                    "so fleet hosts cannot reach it: restart with scripts/sandbox down && scripts/sandbox up")
            continue
        if svc.running():
            log(f"{svc.name:<10} running but not answering: restarting it")
            svc.stop()
        port = port_map.get(svc.name)
        if port and port_open(port):
            raise SandboxError(
                f"{svc.name}: port {port} is taken by another process; "
                "stop it or set PRODREADY_PORT_OFFSET")
        t0 = time.monotonic()
        svc.start()
        log(f"{svc.name:<10} up in {time.monotonic() - t0:.1f} s (pid {svc.pid()})")
    info = describe(base, port_map, services)
    write_private(base / "sandbox.json", json.dumps(info, indent=2) + "\n", mode=0o644)
    write_private(base / "sandbox.env", env_exports(info, secret))
    print_summary(info)
    return 0


def print_summary(info: dict) -> None:
    s = info["services"]
    log("listening:")
    pg = s["postgres"]
    log(f"  postgres   127.0.0.1:{pg['port']}  (socket {pg['socket_dir']}, db {pg['app_db']}, user {pg['app_user']})")
    log(f"  redis      127.0.0.1:{s['redis']['port']}  (password in {info['secrets_file']})")
    log(f"  haproxy    127.0.0.1:{s['haproxy']['port']}  (admin socket {s['haproxy']['admin_socket']}, stats {s['haproxy']['stats_url']})")
    log(f"  nginx      127.0.0.1:{s['nginx']['port']}  (upstream include {s['nginx']['upstream_include']})")
    log(f"  supervisor {s['supervisor']['socket']}")
    log(f"  app colors blue :{info['ports']['blue']}  green :{info['ports']['green']}")
    log(f"shell exports: source {info['dir']}/sandbox.env")


def cmd_down(base: Path) -> int:
    if not base.exists():
        log("nothing to stop")
        return 0
    services = build(base)[2]
    for svc in reversed(services):
        pid = svc.pid()
        if svc.running():
            svc.stop()
            log(f"{svc.name:<10} stopped (pid {pid})")
        else:
            log(f"{svc.name:<10} not running")
    remove_bridge(base)
    return 0


def cmd_status(base: Path) -> int:
    if not (base / "secrets.json").exists():
        log("not initialised (run: scripts/sandbox up)")
        return 1
    port_map, _secret, services = build(base)
    bad = 0
    for svc in services:
        running = svc.running()
        ready = running and svc.ready()
        state = "up" if ready else ("not answering" if running else "down")
        bad += 0 if ready else 1
        where = port_map.get(svc.name, "")
        log(f"{svc.name:<10} {state:<14} pid {svc.pid() or '-':<8} {('127.0.0.1:%s' % where) if where else ''}")
    return 1 if bad else 0


def cmd_env(base: Path) -> int:
    info_path = base / "sandbox.json"
    if not info_path.exists():
        raise SandboxError("the sandbox is not up (run: scripts/sandbox up)")
    sys.stdout.write((base / "sandbox.env").read_text())
    return 0


def load(base: Path | None = None) -> dict:
    """The running sandbox's description with its secrets merged in (for tests, tools)."""
    base = base or sandbox_dir()
    info = json.loads((base / "sandbox.json").read_text())
    info["secrets"] = json.loads((base / "secrets.json").read_text())
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("[sandbox] must run as root (PostgreSQL runs as the postgres user)", file=sys.stderr)
        return 2
    base = sandbox_dir()
    try:
        return {"up": cmd_up, "down": cmd_down, "status": cmd_status, "env": cmd_env}[args.command](base)
    except SandboxError as exc:
        print(f"[sandbox] error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
