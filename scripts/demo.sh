#!/usr/bin/env bash
# `make demo`: bring the sandbox up, install release 1.0.0 of the sample app behind the
# router, and show its /health fetched through haproxy and nginx.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/env.sh
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Sandbox: PostgreSQL, Redis, haproxy, nginx, supervisord (scripts/sandbox up)"
scripts/sandbox up

say "Install sample app 1.0.0 as the blue color and route traffic to it"
python scripts/demo_app.py install --version 1.0.0 --variant base --color blue >/dev/null

router="$(python -c 'import json;d=json.load(open(".sandbox/sandbox.json"));print(d["services"]["haproxy"]["port"], d["services"]["nginx"]["port"])')"
read -r haproxy_port nginx_port <<<"$router"
say "GET /health through haproxy (127.0.0.1:$haproxy_port)"
curl -fsS "http://127.0.0.1:$haproxy_port/health" | python -m json.tool
say "GET /ready through nginx (127.0.0.1:$nginx_port)"
curl -fsS "http://127.0.0.1:$nginx_port/ready" | python -m json.tool
printf '\nThe sandbox keeps running: scripts/sandbox status | scripts/sandbox down\n'
