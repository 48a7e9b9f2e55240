#!/usr/bin/env bash
# Prepare this machine to run the demo and the tests: Debian packages for the sandbox,
# the project venv with pinned Python requirements, and a collection path that points at
# this checkout. Safe to run again: every step is skipped when its result is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.requirements.sha256"

log() { printf '[bootstrap] %s\n' "$*"; }

# 1. Debian packages the sandbox runs (servers are started by scripts/sandbox, never as
#    system services).
need_pkgs=()
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || need_pkgs+=(haproxy)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need_pkgs+=(nginx)
command -v wrk >/dev/null 2>&1 || need_pkgs+=(wrk)
command -v ab >/dev/null 2>&1 || need_pkgs+=(apache2-utils)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_pkgs+=(postgresql-15)
command -v psql >/dev/null 2>&1 || need_pkgs+=(postgresql-client-15)
command -v runuser >/dev/null 2>&1 || need_pkgs+=(util-linux)
# Fleet hosts (scripts/fleet_hosts.py): sshd, sudo and a supervisord of their own run in
# network namespaces, the collection's modules under Debian's /usr/bin/python3 with the
# libraries they import on the host (module_utils: psycopg2, redis, requests, cryptography).
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_pkgs+=(openssh-client)
[ -x /usr/bin/sudo ] || need_pkgs+=(sudo)
[ -x /usr/bin/supervisord ] || need_pkgs+=(supervisor)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
for pkg in python3-psycopg2 python3-requests python3-redis python3-venv python3-cryptography; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need_pkgs+=("$pkg")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${need_pkgs[*]} (run as root, or install them)" >&2
    exit 1
  fi
  log "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start their own system services: the sandbox owns the servers.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; created_policy=1; fi
  # A daemon's default pid file before the install: one that appears is a service the
  # packages started (openssh-server, supervisor) despite the policy; it is stopped again.
  daemons=(/run/sshd.pid /run/supervisord.pid)
  before=""
  for pidfile in "${daemons[@]}"; do [ -s "$pidfile" ] && before="$before $pidfile"; done
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  [ "$created_policy" -eq 1 ] && rm -f "$policy"
  for pidfile in "${daemons[@]}"; do
    case " $before " in *" $pidfile "*) continue ;; esac
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "stopping the system-wide service the package started (pid $(cat "$pidfile"), $pidfile)"
      kill "$(cat "$pidfile")" || true
    fi
  done
fi

# 2. The project venv with pinned requirements (re-installed only when they change).
want="$(cat requirements.txt requirements-dev.txt examples/app/requirements.txt | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  log "installing Python requirements into .venv"
  # This machine's pip config lists optional local indexes; their absence is not an error.
  quiet_pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }
  quiet_pip install -q -r requirements-dev.txt
  printf '%s\n' "$want" > "$STAMP"
fi

# 2b. The oldest ansible-core meta/runtime.yml's requires_ansible claims, in a venv of its own
#     (tests/integration/test_oldest_ansible.py runs playbooks and modules with it).
OLD_VENV="$ROOT/.cache/venv-oldest-ansible"
want_old="$(cat requirements.txt requirements-oldest-ansible.txt | sha256sum | cut -d' ' -f1)"
if [ ! -x "$OLD_VENV/bin/python" ]; then
  log "creating $OLD_VENV"
  "$PYTHON" -m venv "$OLD_VENV"
fi
if [ "$(cat "$OLD_VENV/.requirements.sha256" 2>/dev/null)" != "$want_old" ]; then
  log "installing the oldest supported ansible-core into $OLD_VENV"
  "$OLD_VENV/bin/python" -m pip install -q -r requirements-oldest-ansible.txt \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
  printf '%s\n' "$want_old" > "$OLD_VENV/.requirements.sha256"
fi

# 3. The collection is the repository root: expose it as ansible_collections/prodready/deploy
#    so that ansible, pytest and molecule resolve prodready.deploy.* to this checkout.
coll="$ROOT/.build/collections/ansible_collections/prodready"
mkdir -p "$coll" "$ROOT/.ansible/tmp"
if [ "$(readlink "$coll/deploy" 2>/dev/null)" != "$ROOT" ]; then
  ln -sfn "$ROOT" "$coll/deploy"
fi
# 4. awx.awx (playbooks/awx_register.yml, tests/unit/test_awx_objects.py): Galaxy is not
#    reachable here, the ansible community package on PyPI ships the collection; only that
#    collection is unpacked from its wheel, beside this checkout's.
AWX_FROM="ansible==12.3.0"   # ships awx.awx 24.6.1
awx_dir="$ROOT/.build/collections/ansible_collections/awx"
if [ "$(cat "$awx_dir/awx/.installed-from" 2>/dev/null)" != "$AWX_FROM" ]; then
  log "installing awx.awx from $AWX_FROM"
  wheel_dir="$(mktemp -d)"
  "$VENV/bin/python" -m pip download -q --no-deps -d "$wheel_dir" "$AWX_FROM" \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
  rm -rf "$awx_dir/awx.new" && mkdir -p "$awx_dir/awx.new"
  "$VENV/bin/python" - "$wheel_dir"/ansible-*.whl "$awx_dir/awx.new" <<'PY'
import pathlib, sys, zipfile
prefix = "ansible_collections/awx/awx/"
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in wheel.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            dest = pathlib.Path(sys.argv[2], name[len(prefix):])
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(wheel.read(name))
PY
  printf '%s\n' "$AWX_FROM" > "$awx_dir/awx.new/.installed-from"
  rm -rf "$awx_dir/awx" "$wheel_dir" && mv "$awx_dir/awx.new" "$awx_dir/awx"
fi
log "ready: $VENV (ansible-core $("$VENV/bin/python" -c "import ansible.release as r; print(r.__version__)"))"
