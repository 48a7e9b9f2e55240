#!/usr/bin/env bash
# `make demo`: the deploy story on the sandbox, each step printed.
#   1.0.0 first deploy -> 1.1.0 (backup + backward-compatible migration) under steady load
#   -> 1.2.0 "crash" (rejected before the switch) -> 1.2.1 "errors" (switched back
#   automatically, its migration downgraded and checked against the pre-deploy schema)
#   -> rollback.yml to 1.0.0 with the database restored from the pre-1.1.0 backup (router in
#   maintenance: the 503 window measured) -> a summary with the requests counted through the
#   router during all of it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/env.sh
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
deploy() {  # deploy VERSION: run the playbook, keep its output, show its last lines
  local version="$1" log="$ROOT/.cache/demo/deploy-$1.log"
  if ansible-playbook playbooks/deploy.yml -i inventories/local -e "app_version=$version" > "$log" 2>&1; then
    grep -E '^ *(- )?"?(app |start |backup:|sampleapp .* is live|previous:|migrations:|gate through)' "$log" | sed 's/^ *- *//; s/"//g' | sort -u | sed 's/^/    /'
    return 0
  fi
  # The failure message, whole (the callback may wrap it over several lines).
  awk '/stopped in phase/ {on=1} on && (/^$/ || /^(TASK|PLAY|RUNNING)/) {exit} on' "$log" | tail -n +1 \
    | tr -s ' \n' ' ' | sed 's/^.*Action failed: //; s/ Origin: .*$//' | fold -s -w 110 | sed 's/^ *//; s/^/    /'
  echo
  return 1
}
served() { curl -fsS "$router/health" | python -c 'import json,sys; print(json.load(sys.stdin)["version"])'; }

say "Sandbox: PostgreSQL, Redis, haproxy, nginx, supervisord (scripts/sandbox up)"
scripts/sandbox up | grep -E 'up in|already|listening|haproxy|postgres  '
export SANDBOX_DIR="${PRODREADY_SANDBOX_DIR:-$ROOT/.sandbox}"
router="http://127.0.0.1:$(python -c 'import json,os;print(json.load(open(os.environ["SANDBOX_DIR"] + "/sandbox.json"))["services"]["haproxy"]["port"])')"

say "Reset the demo slot (colors stopped, database recreated) and build the releases"
python scripts/demo_app.py reset
python scripts/demo_app.py wheels
mkdir -p .cache/demo
for spec in 1.0.0:base 1.1.0:good 1.2.0:crash 1.2.1:errors; do
  python examples/app/build.py --version "${spec%%:*}" --variant "${spec##*:}" >/dev/null
  printf '    built sampleapp-%s (%s)\n' "${spec%%:*}" "${spec##*:}"
done

say "Deploy 1.0.0 (first deploy)"
deploy 1.0.0
printf '    router serves: %s\n' "$(served)"

say "Steady load through haproxy starts (scripts/load_loop.py, 50 req/s)"
rm -f .cache/demo/load.json .cache/demo/load.json.stop
python scripts/load_loop.py "$router/health" --out .cache/demo/load.json --max-seconds 900 &
load_pid=$!
trap 'touch .cache/demo/load.json.stop; wait $load_pid 2>/dev/null || true' EXIT
sleep 1

say "Deploy 1.1.0: backup, migration 0003 (backward compatible), gates, switch"
deploy 1.1.0
printf '    router serves: %s\n' "$(served)"

say "Deploy 1.2.0 (the 'crash' variant): must be rejected before it takes traffic"
if deploy 1.2.0; then echo "    UNEXPECTED: the crash variant was deployed"; exit 1; fi
printf '    router still serves: %s\n' "$(served)"

say "Deploy 1.2.1 (the 'errors' variant): passes the direct gate, fails under traffic"
if deploy 1.2.1; then echo "    UNEXPECTED: the errors variant stayed live"; exit 1; fi
printf '    router serves: %s\n' "$(served)"

touch .cache/demo/load.json.stop
wait "$load_pid" || true
trap - EXIT

say "Roll back to 1.0.0 with the database restored (rollback.yml -e rollback_db=restore)"
rm -f .cache/demo/rollback-load.json .cache/demo/rollback-load.json.stop
python scripts/load_loop.py "$router/health" --out .cache/demo/rollback-load.json --max-seconds 600 &
load_pid=$!
trap 'touch .cache/demo/rollback-load.json.stop; wait $load_pid 2>/dev/null || true' EXIT
sleep 1
# The demo database has pg_stat_statements, which only a superuser can create: the restore
# logs in as the sandbox superuser (password read from secrets.json by the inventory, never
# on a command line). The restored database keeps the app role as its owner.
cat > .cache/demo/rollback-vars.yml <<'YML'
rollback_db: restore
# A release started on this shared, loaded machine may take longer than the deploys' 20 s.
app_start_timeout: 90
app_database:
  db: "{{ sandbox.services.postgres.app_db }}"
  login_host: "{{ sandbox.services.postgres.host }}"
  login_port: "{{ sandbox.services.postgres.port }}"
  login_user: "{{ sandbox.services.postgres.superuser }}"
  login_password: "{{ sandbox_secrets.postgres_superuser_password }}"
YML
if ! ansible-playbook playbooks/rollback.yml -i inventories/local -e @.cache/demo/rollback-vars.yml > .cache/demo/rollback.log 2>&1; then
  awk '/rollback of .* stopped at/ {on=1} on && (/^$/ || /^(TASK|PLAY)/) {exit} on' .cache/demo/rollback.log \
    | tr -s ' \n' ' ' | sed 's/^.*Action failed: //; s/ Origin: .*$//' | fold -s -w 110 | sed 's/^ *//; s/^/    /'
  echo; exit 1
fi
# The summary lines of the rollback (the yaml callback may quote them with ' or ").
grep -E "^ *(- )?[\"']?(sampleapp rolled back|router serves|database:|restore:|sampleapp-)" .cache/demo/rollback.log \
  | sed "s/^ *- *//; s/[\"']//g" | sort -u | sed 's/^/    /' || true
sleep 1
touch .cache/demo/rollback-load.json.stop
wait "$load_pid" || true
trap - EXIT
printf '    router serves: %s\n' "$(served)"

say "Summary"
python - <<'PY'
import json
s = json.load(open(".cache/demo/load.json"))
import os
st = json.load(open(os.environ["SANDBOX_DIR"] + "/apps/sampleapp/state.json"))
print(f"    live: {st['live_version']} on {st['live_color']} (rolled back from {st['last_rollback']['from']})")
print(f"    database revision: {', '.join(st['db_revisions'])}; backup {st['backup_path']}")
print(f"    requests through haproxy during the deploys: {s['requests']} ({s['ok']} OK)")
print(f"    failed by the router (connection errors, 502/503/504): {s['router_failures']}")
print(f"    5xx answered by the 'errors' release during its gate window, before the automatic switch back: {s['app_5xx']}")
print(f"    versions served: {s['versions']}")
r = json.load(open(".cache/demo/rollback-load.json"))
lr = st["last_rollback"]
print(f"    rollback {lr['from']} -> {lr['to']} with database {lr['db']}: router answered 503 for "
      f"{lr['unavailable_s']:.2f} s (maintenance while the backup was restored and swapped in)")
print(f"    requests through haproxy during the rollback: {r['requests']} ({r['ok']} OK, "
      f"{r['router_failures']} refused by the router in that window)")
print(f"    rows written after the backup, discarded by the restore: {lr['discarded_rows'] or 'none'}; "
      f"the replaced database is kept as {lr['replaced_db']}")
PY
say "GET /health through haproxy ($router)"
curl -fsS "$router/health" | python -m json.tool
printf '\nAudit trail: %s/apps/sampleapp/audit.log   Playbook logs: .cache/demo/\n' "$SANDBOX_DIR"
