#!/usr/bin/env bash
# `make test`: lint, sanity, then unit + integration tests in ONE pytest run against the
# sandbox, whose summary line is the result. The sandbox is taken down at the end when
# this script brought it up.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/env.sh
status=0
results=()   # one "step: ok|FAILED" line per step, printed again at the very end
step() { printf '\n==> %s\n' "$*"; }
record() { # record <name> <rc>
  if [ "$2" -eq 0 ]; then results+=("ok      $1"); else results+=("FAILED  $1"); status=1; fi
}

step "ansible-lint (production profile)"
ansible-lint --profile production; record "ansible-lint" $?

step "ansible-test sanity"
bash scripts/sanity.sh; record "ansible-test sanity" $?

step "sandbox up"
was_up=0
scripts/sandbox status >/dev/null 2>&1 && was_up=1
scripts/sandbox up || exit 1

step "molecule (delegated driver against this machine)"
for scenario in molecule/*/; do
  scenario="$(basename "$scenario")"
  molecule test -s "$scenario"; record "molecule $scenario" $?
done

step "pytest: unit + integration"
# Two pytest processes side by side (the machine has 2 cores; most of a test's time is spent
# waiting on ansible-playbook and the apps). Every integration file that deploys owns its own
# haproxy slot; the files that share the demo's slot or the sandbox nginx run in shard 1 in
# order, every other file goes to shard 2. PRODREADY_TEST_SHARDS=1 runs one process.
shard1=(tests/unit tests/integration/test_collection.py tests/integration/test_sample_app.py
        tests/integration/test_router_switch.py tests/integration/test_blue_green_nginx.py
        tests/integration/test_sandbox.py tests/integration/test_pg_backup.py
        tests/integration/test_alembic_migrate.py tests/integration/test_health_gate.py
        tests/integration/test_redis_cache_check.py tests/integration/test_preflight.py
        tests/integration/test_site.py)
shard2=()
for f in tests/integration/test_*.py; do
  case " ${shard1[*]} " in *" $f "*) ;; *) shard2+=("$f") ;; esac
done
if [ "${PRODREADY_TEST_SHARDS:-2}" = "1" ]; then
  pytest tests/unit tests/integration ${PYTEST_ARGS:-}; record "pytest" $?
else
  logs="$(mktemp -d)"
  set -o pipefail
  PRODREADY_TEST_SHARD=0 pytest "${shard1[@]}" --durations=10 ${PYTEST_ARGS:-} 2>&1 \
    | sed -u 's/^/[shard 1] /' | tee "$logs/1" &
  pid1=$!
  PRODREADY_TEST_SHARD=1 pytest "${shard2[@]}" --durations=10 ${PYTEST_ARGS:-} 2>&1 \
    | sed -u 's/^/[shard 2] /' | tee "$logs/2" &
  pid2=$!
  wait "$pid1"; record "pytest shard 1" $?
  wait "$pid2"; record "pytest shard 2" $?
  set +o pipefail
  # Each shard's failures and summary line again, so the end of the log says what failed.
  step "pytest failures"
  grep -hE '^\[shard [12]\] (FAILED|ERROR|XPASS|=+ .*(passed|failed|error).* in )' "$logs/1" "$logs/2"
  rm -rf "$logs"
fi

if [ "$was_up" -eq 0 ]; then
  step "sandbox down"
  scripts/sandbox down
fi
step "summary"
printf '%s\n' "${results[@]}"
exit "$status"
