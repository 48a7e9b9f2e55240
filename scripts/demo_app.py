"""Sample-app helpers for the demo and the tests: build, unpack, venv, run, route.

    scripts/demo_app.py build --version 1.0.0 --variant base
    scripts/demo_app.py install --version 1.0.0 --variant base --color blue

`install` is the hand-made path of the foundation demo: unpack a release under the
sandbox's app root, build its venv (from a local wheel cache, so a second venv costs
seconds), migrate, run it as a supervisord program on the color's port, and mark that
color live in haproxy (runtime API) and nginx (upstream include + reload). The
blue_green role does the same with gates, backups and rollback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_SRC = ROOT / "examples" / "app"
WHEELS = ROOT / ".cache" / "wheels"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(APP_SRC))

import sandbox  # noqa: E402


def log(msg):
    print(f"[demo_app] {msg}", flush=True)


def requirements_key() -> str:
    return hashlib.sha256((APP_SRC / "requirements.txt").read_bytes()).hexdigest()[:16]


def ensure_wheels() -> Path:
    """A wheel cache of the app's requirements, so venvs install without the network."""
    stamp = WHEELS / f".{requirements_key()}"
    if not stamp.exists():
        WHEELS.mkdir(parents=True, exist_ok=True)
        log("building the wheel cache for the app's requirements (once)")
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(WHEELS), "-r",
                        str(APP_SRC / "requirements.txt")], check=True,
                       stderr=subprocess.DEVNULL)
        stamp.write_text("ok\n")
    return WHEELS


def ensure_venv(venv: Path, requirements: Path) -> Path:
    """Create `venv` with `requirements` from the wheel cache; no-op when already built."""
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    want = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python
    wheels = ensure_wheels()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                    str(wheels), "-r", str(requirements)], check=True, stderr=subprocess.DEVNULL)
    stamp.write_text(want + "\n")
    return python


def build(version: str, variant: str, out: Path | None = None) -> dict:
    import build as app_build  # examples/app/build.py

    return app_build.build(version, variant, out or (ROOT / "examples" / "app" / "dist"))


def unpack(tarball: Path, dest: Path) -> Path:
    """Unpack a release tarball into `dest` (atomically: a temp dir renamed at the end)."""
    if (dest / "RELEASE.json").exists():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
    tmp.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp, filter="data")
    os.replace(tmp, dest)
    return dest


def database_url(info: dict) -> str:
    pg = info["services"]["postgres"]
    return "postgresql+psycopg2://%s:%s@%s:%s/%s" % (
        pg["app_user"], info["secrets"]["app_db_password"], pg["host"], pg["port"], pg["app_db"])


def redis_url(info: dict, db: int = 0) -> str:
    rd = info["services"]["redis"]
    return "redis://:%s@%s:%s/%d" % (info["secrets"]["redis_password"], rd["host"], rd["port"], db)


def write_env_file(path: Path, values: dict) -> None:
    """A 0600 .env (it holds the database password), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{k}={v}\n" for k, v in values.items())
    os.replace(tmp, path)


def migrate(python: Path, release: Path, env_file: Path) -> None:
    env = dict(os.environ)
    env.update(_read_env(env_file))
    subprocess.run([str(python), "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
                   cwd=release, env=env, check=True, capture_output=True)


def _read_env(path: Path) -> dict:
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def wait_http(url: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return json.loads(resp.read())
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s: {last}")


def supervisor_program(info: dict, name: str, release: Path, python: Path, port: int,
                       env_file: Path, version: str) -> None:
    """Write a supervisord program for one color; (re)start it unless it already serves `version`."""
    programs = Path(info["services"]["supervisor"]["programs_dir"])
    conf = programs / f"{name}.conf"
    text = "\n".join([
        f"[program:{name}]",
        f"command = {python} -m sampleapp --port {port}",
        f"directory = {release}",
        f"environment = APP_ENV_FILE=\"{env_file}\"",
        "autostart = true",
        "autorestart = unexpected",
        "startsecs = 1",
        "stopsignal = TERM",
        "stopwaitsecs = 15",
        "redirect_stderr = true",
        "",
    ])
    conf.write_text(text)
    ctl = [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", info["services"]["supervisor"]["config"]]
    subprocess.run(ctl + ["reread"], check=True, capture_output=True)
    # `update` starts a new program and restarts one whose configuration changed.
    subprocess.run(ctl + ["update", name], check=True, capture_output=True)
    try:
        running = wait_http(f"http://127.0.0.1:{port}/health", timeout=5).get("version")
    except RuntimeError:
        running = None
    if running != version:
        subprocess.run(ctl + ["restart", name], check=False, capture_output=True)


def haproxy_cmd(info: dict, command: str) -> str:
    return sandbox.haproxy_socket(info["services"]["haproxy"]["admin_socket"], command)


def wait_until_up(info: dict, backend: str, server: str, timeout: float = 15.0) -> None:
    """Wait until haproxy's health check reports `server` UP (it then takes traffic)."""
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        for line in haproxy_cmd(info, "show stat").splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == backend and fields[1] == server:
                status = fields[17]
        if status.startswith("UP"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"haproxy {backend}/{server} not UP after {timeout:.0f} s (status {status})")


def route_to(info: dict, color: str) -> None:
    """Send router traffic to `color`: haproxy by runtime API, nginx by include + reload."""
    other = "green" if color == "blue" else "blue"
    backend = info["services"]["haproxy"]["backend"]
    haproxy_cmd(info, f"set server {backend}/{color} state ready")
    wait_until_up(info, backend, color)
    haproxy_cmd(info, f"set server {backend}/{other} state maint")
    ngx = info["services"]["nginx"]
    port = info["ports"][color]
    Path(ngx["upstream_include"]).write_text(
        "upstream app_live {\n    server 127.0.0.1:%d;\n    keepalive 16;\n}\n" % port)
    nginx = "/usr/sbin/nginx"
    subprocess.run([nginx, "-t", "-q", "-p", ngx["prefix"], "-c", ngx["config"]], check=True,
                   capture_output=True)
    subprocess.run([nginx, "-p", ngx["prefix"], "-c", ngx["config"], "-s", "reload"], check=True,
                   capture_output=True)


def install(version: str, variant: str, color: str) -> dict:
    info = sandbox.load()
    app_root = Path(info["apps_dir"]) / "sampleapp"
    art = build(version, variant)
    log(f"built {Path(art['path']).name} (sha256 {art['sha256'][:12]}…, revisions {', '.join(art['revisions'])})")
    release = unpack(Path(art["path"]), app_root / "releases" / version)
    t0 = time.monotonic()
    python = ensure_venv(release / ".venv", release / "requirements.txt")
    log(f"release {version} unpacked to {release}, venv ready in {time.monotonic() - t0:.1f} s")
    env_file = app_root / "shared" / ".env"
    if not env_file.exists():
        write_env_file(env_file, {
            "DATABASE_URL": database_url(info),
            "REDIS_URL": redis_url(info),
            "CACHE_PREFIX": "app_",
            "DEBUG": "false",
        })
    migrate(python, release, env_file)
    log("migrations applied (alembic upgrade head)")
    port = info["ports"][color]
    supervisor_program(info, f"sampleapp-{color}", release, python, port, env_file, version)
    health = wait_http(f"http://127.0.0.1:{port}/health")
    log(f"{color} answers on :{port} with version {health['version']}")
    route_to(info, color)
    return {"release": str(release), "color": color, "port": port, "health": health}


def reset(app: str = "sampleapp") -> None:
    """Put the demo slot back to empty: colors stopped and removed, router servers in
    maintenance, the app database recreated, the app root removed. `make demo` starts here
    so that it can run again and again."""
    info = sandbox.load()
    sup = info["services"]["supervisor"]
    ctl = [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", sup["config"]]
    for color in ("blue", "green"):
        subprocess.run(ctl + ["stop", f"{app}-{color}"], capture_output=True, check=False)
        (Path(sup["programs_dir"]) / f"{app}-{color}.conf").unlink(missing_ok=True)
        haproxy_cmd(info, f"set server {info['services']['haproxy']['backend']}/{color} state maint")
    subprocess.run(ctl + ["update", f"{app}-blue", f"{app}-green"], capture_output=True, check=False)
    pg = info["services"]["postgres"]
    env = dict(os.environ, PGPASSWORD=info["secrets"]["postgres_superuser_password"])

    def psql(db, sql):
        subprocess.run(["psql", "-X", "-q", "-h", pg["host"], "-p", str(pg["port"]), "-U", "postgres",
                        "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql], env=env, check=True, capture_output=True)

    psql("postgres", f"DROP DATABASE IF EXISTS {pg['app_db']} WITH (FORCE)")
    # Databases a previous demo's restore rollback replaced (kept by pg_backup swap) go too.
    listed = subprocess.run(["psql", "-X", "-At", "-h", pg["host"], "-p", str(pg["port"]), "-U", "postgres",
                             "-d", "postgres", "-c", "SELECT datname FROM pg_database WHERE datname ~ "
                             f"'^{pg['app_db']}_(replaced|restore)_[0-9TZ]+$'"],
                            env=env, check=True, capture_output=True, text=True).stdout.split()
    for name in listed:
        psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql("postgres", f"CREATE DATABASE {pg['app_db']} OWNER {pg['app_user']}")
    psql(pg["app_db"], "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    subprocess.run(["rm", "-rf", str(Path(info["apps_dir"]) / app)], check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--version", required=True)
    b.add_argument("--variant", default="good")
    i = sub.add_parser("install")
    i.add_argument("--version", required=True)
    i.add_argument("--variant", default="base")
    i.add_argument("--color", default="blue", choices=["blue", "green"])
    sub.add_parser("reset")
    sub.add_parser("wheels")
    args = parser.parse_args(argv)
    if args.command == "reset":
        reset()
    elif args.command == "wheels":
        ensure_wheels()
    elif args.command == "build":
        print(json.dumps(build(args.version, args.variant)))
    else:
        print(json.dumps(install(args.version, args.variant, args.color)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
