#!/usr/bin/env python
"""Fleet hosts: real SSH hosts on this machine, one network namespace each.

Production is a load balancer on its own host in front of N app hosts reached over SSH as
a deploy user with become. This script builds that on one machine, for the fleet tests:

    scripts/fleet_hosts.py up [--hosts N] [--router]   # idempotent: exactly N app hosts (+ r1)
    scripts/fleet_hosts.py status                      # each host's sshd, supervisord, haproxy
    scripts/fleet_hosts.py inventory                   # the Ansible inventory (YAML)
    scripts/fleet_hosts.py down                        # removes exactly what up made

A host (h1, h2, ... and the router r1) is a network namespace (prh1, ..., prr1) joined to
the bridge prfleet0 by a veth pair (prfleet-h1 <-> eth0), address 10.231.0.(10+i)/24
(r1: 10.231.0.10), and a private mount and UTS namespace (hostname h1) in which tmpfs
mounts give it its own /run, /tmp, /var/tmp, /dev/shm, /srv, /home, /var/log,
/etc/supervisor and /etc/haproxy, and hide the controller's own directories (/work, /root,
/usr/local, /opt, the checkout and the sandbox directory). /usr and /etc are the machine's:
Debian's /usr/bin/python3 with python3-psycopg2/-redis/-requests, sudo, supervisor.
In it run sshd (port 22 on the host's address, keys only, user `deploy`, who has
passwordless sudo) and supervisord in Debian's layout (/etc/supervisor/supervisord.conf,
programs in /etc/supervisor/conf.d/*.conf, socket /run/supervisor.sock); the router r1
also runs haproxy (/etc/haproxy/haproxy.cfg, admin socket /run/haproxy/admin.sock and
10.231.0.10:9999, frontend 10.231.0.10:8080, backend be_app with servers
<host>-blue/<host>-green on port 8101/8102 of every app host). The controller is
10.231.0.1 (the bridge), where the sandbox's PostgreSQL and Redis also listen. Nothing
else is routed to or from the hosts.

One process per host keeps its namespaces alive (a `sleep infinity` whose pid is recorded);
`exec_in(host, argv)` runs a command inside a host through it (nsenter), and
`host_path(host, path)` reads or writes a host's files from the controller.

State: <PRODREADY_SANDBOX_DIR>/fleet (default .sandbox/fleet): fleet.json, the deploy key
id_ed25519 (0600), each host's sshd key, inventory.yml. The `deploy` user and
/etc/sudoers.d/prodready-deploy are made once and kept by `down`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pwd
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from elsewhere
    sys.path.append(str(Path(__file__).resolve().parent))
import sandbox  # noqa: E402  (scripts/sandbox.py: layout, bridge, helpers)

from sandbox import (FLEET_ADDRESS, FLEET_BRIDGE, FLEET_SUBNET, ROOT, SandboxError,  # noqa: E402
                     haproxy_socket, port_open, wait_until, write_private)

PREFIX_LEN = int(FLEET_SUBNET.split("/")[1])
NET_BASE = FLEET_ADDRESS.rsplit(".", 1)[0]  # 10.231.0
ROUTER = "r1"
MAX_HOSTS = 100
DEPLOY_USER = "deploy"
SUDOERS = Path("/etc/sudoers.d/prodready-deploy")
ROUTER_PORT = 8080
ROUTER_ADMIN_PORT = 9999
COLOR_PORTS = {"blue": 8101, "green": 8102}
BACKEND = "be_app"
SUPERVISOR_CONF = "/etc/supervisor/supervisord.conf"
SUPERVISOR_PROGRAMS = "/etc/supervisor/conf.d"
SUPERVISOR_SOCKET = "/run/supervisor.sock"
HAPROXY_CONF = "/etc/haproxy/haproxy.cfg"
HAPROXY_SOCKET = "/run/haproxy/admin.sock"
SSHD_PIDFILE = "/run/sshd.pid"
SUPERVISORD_PIDFILE = "/run/supervisord.pid"
HAPROXY_PIDFILE = "/run/haproxy/haproxy.pid"
# What a host's processes start with: nothing of the controller's environment (its venv on
# PATH, ANSIBLE_*, passwords) reaches them.
HOST_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8", "HOME": "/root"}
NEEDS = {  # program -> Debian package (scripts/bootstrap.sh installs them)
    "/usr/sbin/sshd": "openssh-server", "/usr/bin/ssh-keygen": "openssh-client",
    "/usr/bin/sudo": "sudo", "/usr/sbin/visudo": "sudo", "/usr/bin/supervisord": "supervisor",
    "/usr/bin/python3": "python3", "/usr/bin/nsenter": "util-linux",
    "/usr/bin/unshare": "util-linux", "/usr/sbin/useradd": "passwd", "/usr/sbin/haproxy": "haproxy",
}
# Per host: its own empty directories (tmpfs), then the controller's hidden ones.
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")
PRIVATE_DIRS = ("/srv", "/home", "/var/log", "/etc/supervisor", "/etc/haproxy", "/usr/local", "/opt")
HIDDEN_DIRS = ("/work", "/root")
NEVER_HIDE = {"/", "/usr", "/etc", "/var", "/bin", "/sbin", "/lib", "/lib64", "/dev", "/proc", "/sys"}

# The process that holds a host's mount and UTS namespaces: it mounts the host's own
# directories, then sleeps. Its pid is the handle of the host (nsenter -t <pid>).
ANCHOR = r"""
set -eu
name=$1; shift
# Each tmpfs keeps the mode of the directory it covers (/tmp 1777, /root 0700...).
over() { mount -t tmpfs -o "mode=$(stat -c %%a "$1")${2:-}" tmpfs "$1"; }
over /run ,nosuid,nodev
for d in %s; do over "$d" ,nosuid,nodev; done
for d in %s; do [ ! -d "$d" ] || over "$d"; done
for d in "$@"; do over "$d"; done
hostname "$name"
mkdir -m 0700 /run/prfleet
: > /run/prfleet/hosts
chmod 0644 /run/prfleet/hosts
mount --bind /run/prfleet/hosts /etc/hosts
mkdir -m 0755 /run/sshd /run/haproxy /var/log/supervisor /etc/supervisor/conf.d
echo ready
exec sleep infinity </dev/null >/dev/null 2>&1
""" % (" ".join(SHARED_TMP), " ".join(PRIVATE_DIRS))


class FleetError(SandboxError):
    """A fleet host could not be brought up or down; the message says which and why."""


def log(msg: str) -> None:
    print(f"[fleet] {msg}", flush=True)


# --------------------------------------------------------------------------- layout


def fleet_dir() -> Path:
    return sandbox.sandbox_dir() / "fleet"


def address(name: str) -> str:
    return f"{NET_BASE}.10" if name == ROUTER else f"{NET_BASE}.{10 + int(name[1:])}"


def netns(name: str) -> str:
    return "pr" + name


def veth(name: str) -> str:
    return "prfleet-" + name


def mac(name: str) -> str:
    """A fixed, locally administered MAC per host: a host made again answers at the address
    the neighbours cached (a new random MAC would leave them sending to the old one ~30 s)."""
    return "02:00:" + ":".join("%02x" % int(part) for part in address(name).split("."))


def wanted_names(hosts: int, router: bool) -> list:
    return [f"h{i}" for i in range(1, hosts + 1)] + ([ROUTER] if router else [])


def load_state(base: Path) -> dict:
    try:
        return json.loads((base / "fleet.json").read_text())
    except FileNotFoundError:
        return {"hosts": {}}


def save_state(base: Path, state: dict) -> None:
    write_private(base / "fleet.json", json.dumps(state, indent=2) + "\n", mode=0o644)


@contextmanager
def locked(base: Path, name: str = ".lock"):
    """One `up`/`down` at a time (two pytest processes may ask for the fleet at once)."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / name, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def hidden_dirs() -> list:
    """The controller's directories a host must not see: /work, /root, and the checkout and
    sandbox directory wherever they are (unless a host's own tmpfs already covers them)."""
    covered = list(SHARED_TMP + PRIVATE_DIRS)
    result = []
    for path in list(HIDDEN_DIRS) + [str(ROOT), str(sandbox.sandbox_dir()), os.environ.get("HOME", "")]:
        path = os.path.realpath(path) if path else ""
        if not path or path in NEVER_HIDE or not os.path.isdir(path):
            continue
        if any(path == c or path.startswith(c.rstrip("/") + "/") for c in covered + result):
            continue
        result.append(path)
    return result


# --------------------------------------------------------------------------- helpers


def run(argv, check=True, **kw):
    return sandbox.run([str(a) for a in argv], check=check, env=HOST_ENV, **kw)


def ip(*args, check=True):
    return run(["ip", *args], check=check)


def alive(pid) -> bool:
    """True if `pid` is a live process (zombies count as dead: nothing reaps them here)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def netns_inode(ns: str):
    try:
        return os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return None


def in_netns(pid, ns: str) -> bool:
    """True if `pid` lives and runs in network namespace `ns` (guards against pid reuse)."""
    inode = netns_inode(ns)
    try:
        link = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return False
    return inode is not None and link == f"net:[{inode}]" and alive(pid)


def netns_pids(ns: str) -> list:
    """Every live process in network namespace `ns`."""
    inode = netns_inode(ns)
    if inode is None:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "net") == f"net:[{inode}]" and alive(entry.name):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def anchor_of(name: str, base: Path | None = None) -> int:
    host = load_state(base or fleet_dir())["hosts"].get(name)
    if not host or not in_netns(host.get("anchor"), host["netns"]):
        raise FleetError(f"fleet host {name} is not up (scripts/fleet_hosts.py up)")
    return host["anchor"]


def host_path(name: str, path: str, base: Path | None = None) -> Path:
    """`path` inside host `name`, as the controller reaches it (/proc/<anchor>/root/...)."""
    return Path(f"/proc/{anchor_of(name, base)}/root") / path.lstrip("/")


def exec_in(name: str, argv, input=None, timeout: float = 60, check: bool = False,
            base: Path | None = None) -> subprocess.CompletedProcess:
    """Run `argv` as root inside host `name` (its network, mount and UTS namespaces), with a
    clean environment; returns the CompletedProcess (text stdout/stderr)."""
    anchor = anchor_of(name, base)
    return subprocess.run(["nsenter", "-t", str(anchor), "-n", "-m", "-u", "--", *map(str, argv)],
                          input=input, capture_output=True, text=True, timeout=timeout,
                          check=check, env=HOST_ENV)


def read_pid_in(anchor: int, pidfile: str):
    return sandbox.read_pid(Path(f"/proc/{anchor}/root") / pidfile.lstrip("/"))


def daemon(anchor: int, pidfile: str, ns: str):
    """The pid in the host's `pidfile` if that process lives in the host, else None."""
    pid = read_pid_in(anchor, pidfile)
    return pid if pid and in_netns(pid, ns) else None


def nsenter(anchor: int, argv, what: str) -> None:
    proc = subprocess.run(["nsenter", "-t", str(anchor), "-n", "-m", "-u", "--", *map(str, argv)],
                          capture_output=True, text=True, env=HOST_ENV, check=False,
                          start_new_session=True, timeout=60)
    if proc.returncode != 0:
        raise FleetError(f"{what}: {' '.join(map(str, argv[:4]))} exited {proc.returncode}: "
                         f"{(proc.stderr or proc.stdout).strip()[-800:]}")


def unix_socket_answers(path: Path) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect(str(path))
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- machine setup


def preflight() -> None:
    if os.geteuid() != 0:
        raise FleetError("must run as root (network namespaces, mounts, sshd)")
    missing = sorted({pkg for path, pkg in NEEDS.items() if not os.access(path, os.X_OK)})
    for etc, pkg in (("/etc/supervisor", "supervisor"), ("/etc/haproxy", "haproxy")):
        if not Path(etc).is_dir():  # a host mounts its own over it
            missing.append(pkg)
    if missing:
        raise FleetError(f"missing Debian packages: {', '.join(sorted(set(missing)))} "
                         "(run scripts/bootstrap.sh)")


def ensure_deploy_user() -> pwd.struct_passwd:
    """The `deploy` OS user (shared /etc/passwd; its home lives in each host's /home)."""
    try:
        user = pwd.getpwnam(DEPLOY_USER)
    except KeyError:
        # '*': no password, yet not locked (sshd without PAM refuses locked accounts).
        run(["useradd", "--no-create-home", "--home-dir", f"/home/{DEPLOY_USER}",
             "--shell", "/bin/bash", "--user-group", "--password", "*", DEPLOY_USER])
        log(f"user {DEPLOY_USER} created (home /home/{DEPLOY_USER} inside each host)")
        user = pwd.getpwnam(DEPLOY_USER)
    if user.pw_dir != f"/home/{DEPLOY_USER}":
        raise FleetError(f"user {DEPLOY_USER} exists with home {user.pw_dir}; fleet hosts need "
                         f"/home/{DEPLOY_USER} (their own tmpfs /home)")
    return user


def ensure_sudoers() -> None:
    text = (f"# prodready fleet hosts (scripts/fleet_hosts.py): Ansible's become as {DEPLOY_USER}\n"
            f"{DEPLOY_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n")
    if SUDOERS.exists() and SUDOERS.read_text() == text:
        return
    tmp = SUDOERS.with_name(SUDOERS.name + ".tmp")  # a name with a dot: sudo ignores it
    write_private(tmp, text, mode=0o440)
    try:
        run(["visudo", "-cf", tmp])
        os.replace(tmp, SUDOERS)
    finally:
        tmp.unlink(missing_ok=True)
    log(f"{SUDOERS} written (passwordless sudo for {DEPLOY_USER})")


def ensure_keys(base: Path, names) -> None:
    """The deploy key (id_ed25519, 0600) and each host's sshd key, made once."""
    key = base / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "prodready-fleet", "-f", key])
    os.chmod(key, 0o600)
    for name in names:
        hostkey = base / "hosts" / name / "ssh_host_ed25519_key"
        if not hostkey.exists():
            hostkey.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(hostkey.parent, 0o700)
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", hostkey])
        os.chmod(hostkey, 0o600)


# --------------------------------------------------------------------------- host files


def sshd_config(name: str) -> str:
    return f"""# prodready fleet host {name} (scripts/fleet_hosts.py)
ListenAddress {address(name)}
Port 22
HostKey /run/prfleet/ssh_host_ed25519_key
PidFile {SSHD_PIDFILE}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers {DEPLOY_USER}
AuthorizedKeysFile .ssh/authorized_keys
# No PAM: its session modules expect systemd/logind, which these machines do not have.
UsePAM no
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
MaxStartups 100:30:200
MaxSessions 100
"""


def supervisord_config(name: str) -> str:
    return f"""; prodready fleet host {name}: Debian's supervisor layout (scripts/fleet_hosts.py)
[unix_http_server]
file = {SUPERVISOR_SOCKET}
chmod = 0700

[supervisord]
logfile = /var/log/supervisor/supervisord.log
pidfile = {SUPERVISORD_PIDFILE}
childlogdir = /var/log/supervisor

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://{SUPERVISOR_SOCKET}

[include]
files = {SUPERVISOR_PROGRAMS}/*.conf
"""


def haproxy_config(app_hosts) -> str:
    servers = "\n".join(
        f"    server {h}-{color} {address(h)}:{port} check" + ("" if color == "blue" else " disabled")
        for h in app_hosts for color, port in COLOR_PORTS.items())
    return f"""# prodready fleet router {ROUTER} (scripts/fleet_hosts.py). Every app host's two colors
# are servers of one backend; a deploy switches them with runtime-API commands on the
# admin socket (no reload). Blue starts ready, green in maintenance.
global
    pidfile {HAPROXY_PIDFILE}
    stats socket {HAPROXY_SOCKET} mode 600 level admin
    stats socket ipv4@{address(ROUTER)}:{ROUTER_ADMIN_PORT} level admin
    stats timeout 30s
    server-state-file /run/haproxy/server-state

defaults
    mode http
    load-server-state-from-file global
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 2s
    timeout http-keep-alive 10s
    option redispatch
    retries 2

frontend fe_app
    bind {address(ROUTER)}:{ROUTER_PORT}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter 500 fall 2 rise 1 init-addr last,libc,none
{servers}
"""


def etc_hosts(names) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{FLEET_ADDRESS}\tcontroller"]
    lines += [f"{address(n)}\t{n}" for n in sorted(names, key=lambda n: (n != ROUTER, n))]
    return "\n".join(lines) + "\n"


def put(anchor: int, path: str, text: str, mode: int, owner=None) -> bool:
    """Write `text` to `path` inside the host (through /proc/<anchor>/root); True if changed."""
    target = Path(f"/proc/{anchor}/root") / path.lstrip("/")
    try:
        if target.read_text() == text:
            return False
    except OSError:
        pass
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(target, mode)
    if owner:
        os.chown(target, owner.pw_uid, owner.pw_gid)
    return True


# --------------------------------------------------------------------------- one host


def reclaim_leftover(base: Path, name: str) -> None:
    """A namespace or veth of host `name` that no fleet.json records: remove it when nothing
    runs in it any more (what a killed run of another checkout leaves behind: the namespace
    outlives its processes), refuse it while a process still does (another fleet is up)."""
    ns, dev = netns(name), veth(name)
    has_ns, has_dev = netns_inode(ns) is not None, Path("/sys/class/net", dev).exists()
    if not has_ns and not has_dev:
        return
    running = netns_pids(ns) if has_ns else []
    if running:
        raise FleetError(
            f"network namespace {ns} exists with {len(running)} processes running in it "
            f"(pids {', '.join(map(str, running[:5]))}) but is not recorded in {base / 'fleet.json'}: "
            f"another fleet is up (stop it with its own scripts/fleet_hosts.py down)")
    if has_ns:
        ip("netns", "del", ns)
    try:
        wait_until(lambda: not Path("/sys/class/net", dev).exists(), "veth removal", timeout=2)
    except SandboxError:
        ip("link", "del", dev, check=False)
    ip("neigh", "flush", "to", address(name), check=False)
    log(f"{name:<3} leftover {ns if has_ns else dev} removed: nothing ran in it "
        "(left by a run that was killed)")


def claim(state: dict, base: Path, name: str) -> dict:
    """Record host `name` before anything of it exists, so that `down` finds it after a crash;
    reclaim what a killed run left under its name, refuse what another live fleet uses."""
    host = state["hosts"].get(name)
    if host is None:
        reclaim_leftover(base, name)
        host = {"netns": netns(name), "veth": veth(name), "address": address(name),
                "role": "router" if name == ROUTER else "app", "anchor": None}
        state["hosts"][name] = host
        save_state(base, state)
    return host


def ensure_network(name: str, host: dict) -> None:
    ns, dev = host["netns"], host["veth"]
    if netns_inode(ns) is None:
        proc = ip("netns", "add", ns, check=False)
        if proc.returncode != 0:
            raise FleetError(f"ip netns add {ns}: {proc.stderr.strip()} "
                             "(network namespaces need root with CAP_SYS_ADMIN and CAP_NET_ADMIN)")
    peer_ok = ip("-n", ns, "link", "show", "eth0", check=False).returncode == 0
    if Path("/sys/class/net", dev).exists() and not peer_ok:
        ip("link", "del", dev)
    if not Path("/sys/class/net", dev).exists():
        ip("link", "add", dev, "type", "veth", "peer", "name", "eth0", "address", mac(name), "netns", ns)
    ip("link", "set", dev, "master", FLEET_BRIDGE, "up")
    if f" {host['address']}/" not in ip("-n", ns, "-o", "-4", "addr", "show", "dev", "eth0").stdout:
        ip("-n", ns, "addr", "add", f"{host['address']}/{PREFIX_LEN}", "dev", "eth0")
    ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", ns, "link", "set", "eth0", "up")


def start_anchor(name: str, host: dict) -> int:
    argv = ["ip", "netns", "exec", host["netns"], "unshare", "--mount", "--uts", "--propagation",
            "private", "/bin/sh", "-c", ANCHOR, f"prfleet-{name}", name, *hidden_dirs()]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=HOST_ENV, start_new_session=True)
    said = proc.stdout.readline().decode().strip()
    if said != "ready":
        proc.wait(timeout=30)
        raise FleetError(f"host {name}: its mount namespace could not be set up: "
                         f"{proc.stderr.read().decode().strip()[-800:] or 'exit %s' % proc.returncode}")
    proc.stdout.close()
    proc.stderr.close()
    return proc.pid


def ensure_host_files(name: str, host: dict, names, user, base: Path) -> dict:
    """The host's configuration and keys inside its tmpfs; which of them changed."""
    anchor = host["anchor"]
    seed = base / "hosts" / name
    root = Path(f"/proc/{anchor}/root")
    changed = {}
    put(anchor, "/run/prfleet/hosts", etc_hosts(names), 0o644)
    changed["sshd"] = put(anchor, "/run/prfleet/sshd_config", sshd_config(name), 0o600)
    put(anchor, "/run/prfleet/ssh_host_ed25519_key", (seed / "ssh_host_ed25519_key").read_text(), 0o600)
    home = root / "home" / DEPLOY_USER
    for d, mode in ((home, 0o755), (home / ".ssh", 0o700)):
        d.mkdir(exist_ok=True)
        os.chmod(d, mode)
        os.chown(d, user.pw_uid, user.pw_gid)
    put(anchor, f"/home/{DEPLOY_USER}/.ssh/authorized_keys", (base / "id_ed25519.pub").read_text(), 0o600, user)
    changed["supervisord"] = put(anchor, SUPERVISOR_CONF, supervisord_config(name), 0o644)
    if name == ROUTER:
        changed["haproxy"] = put(anchor, HAPROXY_CONF,
                                 haproxy_config([n for n in names if n != ROUTER]), 0o644)
    return changed


def ensure_daemons(name: str, host: dict, changed: dict) -> None:
    anchor, ns = host["anchor"], host["netns"]
    root = Path(f"/proc/{anchor}/root")
    pid = daemon(anchor, SSHD_PIDFILE, ns)
    if pid and changed.get("sshd"):
        os.kill(pid, signal.SIGHUP)  # sshd re-reads its config
    if not pid:
        nsenter(anchor, ["/usr/sbin/sshd", "-t", "-f", "/run/prfleet/sshd_config"], f"host {name}: sshd config")
        nsenter(anchor, ["/usr/sbin/sshd", "-f", "/run/prfleet/sshd_config", "-E", "/var/log/sshd.log"],
                f"host {name}: sshd")
    if not daemon(anchor, SUPERVISORD_PIDFILE, ns):
        nsenter(anchor, ["/usr/bin/supervisord", "-c", SUPERVISOR_CONF], f"host {name}: supervisord")
    if name == ROUTER:
        sock = root / HAPROXY_SOCKET.lstrip("/")
        pid = daemon(anchor, HAPROXY_PIDFILE, ns)
        if pid and changed.get("haproxy"):
            # New servers (more app hosts): reload keeping every server's admin state.
            write_private(root / "run/haproxy/server-state", haproxy_socket(sock, "show servers state"), 0o644)
            nsenter(anchor, ["/usr/sbin/haproxy", "-c", "-q", "-f", HAPROXY_CONF], f"host {name}: haproxy config")
            nsenter(anchor, ["/usr/sbin/haproxy", "-D", "-f", HAPROXY_CONF, "-p", HAPROXY_PIDFILE, "-sf", pid],
                    f"host {name}: haproxy reload")
            wait_until(lambda: daemon(anchor, HAPROXY_PIDFILE, ns) not in (None, pid), f"host {name}: haproxy reload")
        elif not pid:
            nsenter(anchor, ["/usr/sbin/haproxy", "-c", "-q", "-f", HAPROXY_CONF], f"host {name}: haproxy config")
            nsenter(anchor, ["/usr/sbin/haproxy", "-D", "-f", HAPROXY_CONF, "-p", HAPROXY_PIDFILE],
                    f"host {name}: haproxy")


def host_ready(name: str, host: dict) -> dict:
    """What answers on host `name`: sshd (TCP 22), supervisord (its socket), haproxy."""
    anchor, ns = host.get("anchor"), host["netns"]
    if not in_netns(anchor, ns):
        return {"anchor": False}
    root = Path(f"/proc/{anchor}/root")
    ready = {"anchor": True,
             "sshd": bool(daemon(anchor, SSHD_PIDFILE, ns)) and port_open(22, host["address"]),
             "supervisord": bool(daemon(anchor, SUPERVISORD_PIDFILE, ns))
             and unix_socket_answers(root / SUPERVISOR_SOCKET.lstrip("/"))}
    if name == ROUTER:
        ready["haproxy"] = bool(daemon(anchor, HAPROXY_PIDFILE, ns)) \
            and unix_socket_answers(root / HAPROXY_SOCKET.lstrip("/"))
    return ready


def remove_hosts(hosts: dict) -> None:
    """Stop every process of these hosts (by pid: all of each one's network namespace, the
    hosts side by side: supervisord takes up to a second to notice SIGTERM), then remove
    their namespaces and veths."""
    pids = {name: netns_pids(host["netns"]) for name, host in hosts.items()}
    stop_processes([pid for found in pids.values() for pid in found])
    for name, host in hosts.items():
        remove_network(name, host, len(pids[name]))


def stop_processes(pids) -> None:
    """SIGTERM, up to 10 s, then SIGKILL for what is left."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            log(f"pid {pid} ignored SIGTERM for 10 s: killing it")
            os.kill(pid, signal.SIGKILL)
    for pid in pids:  # our own children (anchors started by this process): reap them
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def remove_network(name: str, host: dict, stopped: int) -> None:
    ns = host["netns"]
    if netns_inode(ns) is not None:
        ip("netns", "del", ns)
    # The veth goes with the namespace, asynchronously: delete it only if it stays.
    try:
        wait_until(lambda: not Path("/sys/class/net", host["veth"]).exists(), "veth removal", timeout=2)
    except SandboxError:
        ip("link", "del", host["veth"], check=False)
    ip("neigh", "flush", "to", host["address"], check=False)
    log(f"{name:<3} down ({stopped} processes stopped, {ns} and {host['veth']} removed)")


# --------------------------------------------------------------------------- fleet


def up(hosts: int = 2, router: bool = False, base: Path | None = None, owner: str = "") -> dict:
    """Exactly `hosts` app hosts (+ the router): idempotent; hosts beyond them are removed.
    Returns the state (fleet.json) and writes inventory.yml. `owner` is recorded when this
    call makes the fleet (the CLI: "cli"; the tests' fixture leaves a "cli" fleet running)."""
    if not 1 <= hosts <= MAX_HOSTS:
        raise FleetError(f"--hosts must be between 1 and {MAX_HOSTS}")
    base = base or fleet_dir()
    preflight()
    t0 = time.monotonic()
    with locked(base):
        os.chmod(base, 0o700)
        state = load_state(base)
        if not state["hosts"]:
            state["owner"] = owner
        names = wanted_names(hosts, router)
        extra = {n: h for n, h in state["hosts"].items() if n not in names}
        if extra:
            remove_hosts(extra)
            state["hosts"] = {n: h for n, h in state["hosts"].items() if n in names}
            save_state(base, state)
        try:
            sandbox.ensure_bridge(base)
        except SandboxError as exc:
            raise FleetError(f"bridge {FLEET_BRIDGE}: {exc} (fleet hosts need root with CAP_NET_ADMIN)") from None
        user = ensure_deploy_user()
        ensure_sudoers()
        ensure_keys(base, names)
        (ROOT / ".ansible" / "cp").mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in names:
            claim(state, base, name)

        def bring_up(name):
            host = state["hosts"][name]
            ensure_network(name, host)
            if not in_netns(host.get("anchor"), host["netns"]):
                # A host whose anchor died is made again; what still ran in it (an sshd in
                # the old mount namespace holding port 22...) is stopped first.
                stop_processes(netns_pids(host["netns"]))
                host["anchor"] = start_anchor(name, host)
            changed = ensure_host_files(name, host, names, user, base)
            ensure_daemons(name, host, changed)

        # The hosts side by side: most of a host's time is its daemons starting.
        with ThreadPoolExecutor(max_workers=min(len(names), 8)) as pool:
            futures = [pool.submit(bring_up, name) for name in names]
        save_state(base, state)  # the anchors (down finds a host's processes without them too)
        for future in futures:
            future.result()
        for name in names:
            host = state["hosts"][name]
            try:
                wait_until(lambda h=host, n=name: all(host_ready(n, h).values()), f"host {name}", timeout=30)
            except SandboxError:
                down_ones = [k for k, v in host_ready(name, host).items() if not v]
                raise FleetError(f"host {name}: {', '.join(down_ones)} did not answer within 30 s "
                                 f"(logs: {host_path(name, '/var/log')})") from None
            log(f"{name:<3} up: {host['address']} (netns {host['netns']}, pid {host['anchor']})")
        state.update(bridge=FLEET_BRIDGE, controller=FLEET_ADDRESS)
        save_state(base, state)
        write_private(base / "inventory.yml", inventory(state, base), mode=0o644)
    log(f"{len(names)} hosts up in {time.monotonic() - t0:.1f} s; inventory {base / 'inventory.yml'}")
    return state


def down(base: Path | None = None) -> None:
    base = base or fleet_dir()
    if not (base / "fleet.json").exists():
        log("nothing to stop")
        return
    with locked(base):
        state = load_state(base)
        if not state["hosts"]:
            log("no fleet hosts to stop")
        remove_hosts(state["hosts"])
        state["hosts"] = {}
        state.pop("owner", None)
        save_state(base, state)
        (base / "inventory.yml").unlink(missing_ok=True)
        sandbox.remove_bridge(base)


def status(base: Path | None = None) -> int:
    base = base or fleet_dir()
    state = load_state(base)
    if not state["hosts"]:
        log("no fleet hosts (scripts/fleet_hosts.py up)")
        return 1
    bad = 0
    for name, host in state["hosts"].items():
        ready = host_ready(name, host)
        bad += 0 if all(ready.values()) else 1
        said = "  ".join(f"{k} {'up' if v else 'DOWN'}" for k, v in ready.items())
        log(f"{name:<3} {host['address']:<13} {host['netns']:<6} {said}")
    return 1 if bad else 0


def yaml_str(value) -> str:
    return json.dumps(str(value))  # a JSON string is a YAML double-quoted scalar


def inventory(state: dict, base: Path | None = None) -> str:
    """The Ansible inventory of the fleet (YAML): groups `app` and `router`."""
    base = base or fleet_dir()
    ports = sandbox.ports()
    app = [n for n in state["hosts"] if n != ROUTER]
    ssh_args = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
                f"-o IdentitiesOnly=yes -o ControlPath={ROOT / '.ansible' / 'cp' / '%C'}")
    out = [
        "# Fleet hosts on this machine (scripts/fleet_hosts.py): app hosts and the router,",
        "# reached over SSH as deploy with become. Written by `scripts/fleet_hosts.py up`.",
        "all:",
        "  vars:",
        f"    ansible_user: {DEPLOY_USER}",
        "    ansible_become: true",
        "    ansible_python_interpreter: /usr/bin/python3",
        f"    ansible_ssh_private_key_file: {yaml_str(base / 'id_ed25519')}",
        f"    ansible_ssh_common_args: {yaml_str(ssh_args)}",
        "    ansible_ssh_pipelining: true",
        "    # The hosts' own temp dir (the controller's ANSIBLE_REMOTE_TEMP is not on them).",
        "    ansible_remote_tmp: \"~/.ansible/tmp\"",
        "    # The controller as the hosts reach it: the sandbox's PostgreSQL and Redis.",
        f"    fleet_controller_address: {FLEET_ADDRESS}",
        f"    fleet_postgres_host: {FLEET_ADDRESS}",
        f"    fleet_postgres_port: {ports['postgres']}",
        f"    fleet_redis_host: {FLEET_ADDRESS}",
        f"    fleet_redis_port: {ports['redis']}",
        f"    fleet_supervisor_config: {SUPERVISOR_CONF}",
        f"    fleet_supervisor_conf_dir: {SUPERVISOR_PROGRAMS}",
        f"    fleet_color_ports: {{blue: {COLOR_PORTS['blue']}, green: {COLOR_PORTS['green']}}}",
    ]
    if ROUTER in state["hosts"]:
        out += [
            f"    fleet_router_url: http://{address(ROUTER)}:{ROUTER_PORT}",
            f"    fleet_haproxy_admin_socket: {HAPROXY_SOCKET}",
            f"    fleet_haproxy_admin_tcp: {address(ROUTER)}:{ROUTER_ADMIN_PORT}",
            f"    fleet_haproxy_backend: {BACKEND}",
        ]
    out += ["  children:", "    app:", "      hosts:"]
    out += [f"        {n}:\n          ansible_host: {address(n)}" for n in app] or ["        {}"]
    if ROUTER in state["hosts"]:
        out += ["    router:", "      hosts:", f"        {ROUTER}:", f"          ansible_host: {address(ROUTER)}"]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=["up", "down", "status", "inventory"])
    parser.add_argument("--hosts", type=int, default=2, help="app hosts h1..hN (up; default 2)")
    parser.add_argument("--router", action="store_true", help="also the router host r1 with haproxy (up)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("[fleet] must run as root (network namespaces, mounts, sshd)", file=sys.stderr)
        return 2
    try:
        if args.command == "up":
            up(args.hosts, args.router, owner="cli")
        elif args.command == "down":
            down()
        elif args.command == "status":
            return status()
        else:
            state = load_state(fleet_dir())
            if not state["hosts"]:
                raise FleetError("no fleet hosts (scripts/fleet_hosts.py up)")
            sys.stdout.write(inventory(state))
        return 0
    except (SandboxError, OSError, subprocess.SubprocessError) as exc:
        print(f"[fleet] error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[fleet] interrupted: run it again, or `down` (both finish what was started)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
