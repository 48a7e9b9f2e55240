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
fleet_was_up=0
scripts/fleet_hosts.py status >/dev/null 2>&1 && fleet_was_up=1
scripts/sandbox up || exit 1

# Molecule scenarios, one after the other, beside the pytest shards: each scenario has its own
# app, app root and haproxy slot (blue_green s7, rollback s2), so they share nothing with the
# tests. Their output is prefixed [molecule]; one status line per scenario goes to a file.
run_molecule() {
  for scenario in molecule/*/; do
    scenario="$(basename "$scenario")"
    # Each scenario its own working directory: molecule keeps a scenario's state there (a
    # shared one would let one scenario's "prepared" skip the next one's prepare).
    if MOLECULE_EPHEMERAL_DIRECTORY="$ROOT/.cache/molecule/$scenario" molecule test -s "$scenario"; then echo "ok      molecule $scenario"; else echo "FAILED  molecule $scenario"; fi >> "$1"
  done
}

step "molecule (delegated driver against this machine) and pytest: unit + integration"
# Two pytest processes side by side (the machine has 2 cores; most of a test's time is spent
# waiting on ansible-playbook and the apps). Every integration file that deploys owns its own
# haproxy slot; the files that share the demo's slot or the sandbox nginx run in shard 1 in
# order, every other file goes to shard 2. PRODREADY_TEST_SHARDS=1 runs one process, after
# the molecule scenarios.
molecule_results="$(mktemp)"
shard1=(tests/unit tests/integration/test_collection.py tests/integration/test_sample_app.py
        tests/integration/test_router_switch.py tests/integration/test_blue_green_nginx.py
        tests/integration/test_sandbox.py tests/integration/test_pg_backup.py
        tests/integration/test_alembic_migrate.py tests/integration/test_health_gate.py
        tests/integration/test_redis_cache_check.py tests/integration/test_preflight.py
        tests/integration/test_site.py
        # own slots or none, here to balance the shards (shard 2 holds the fleet and s7 files)
        tests/integration/test_backup_playbook.py tests/integration/test_exec_playbook.py
        tests/integration/test_awx_jobs.py tests/integration/test_restart_strategy.py
        tests/integration/test_any_app.py)
shard2=()
# The fault matrix (tests/reliability) runs last in shard 2: its files share haproxy slot s7
# with the molecule blue_green scenario, long done by then.
for f in tests/integration/test_*.py tests/reliability/test_*.py; do
  case " ${shard1[*]} " in *" $f "*) ;; *) shard2+=("$f") ;; esac
done
if [ "${PRODREADY_TEST_SHARDS:-2}" = "1" ]; then
  run_molecule "$molecule_results"
  pytest tests/unit tests/integration tests/reliability ${PYTEST_ARGS:-}; record "pytest" $?
else
  logs="$(mktemp -d)"
  set -o pipefail
  run_molecule "$molecule_results" 2>&1 | sed -u 's/^/[molecule] /' &
  pidm=$!
  PRODREADY_TEST_SHARD=0 pytest "${shard1[@]}" --durations=10 ${PYTEST_ARGS:-} 2>&1 \
    | sed -u 's/^/[shard 1] /' | tee "$logs/1" &
  pid1=$!
  PRODREADY_TEST_SHARD=1 pytest "${shard2[@]}" --durations=10 ${PYTEST_ARGS:-} 2>&1 \
    | sed -u 's/^/[shard 2] /' | tee "$logs/2" &
  pid2=$!
  wait "$pidm"
  wait "$pid1"; record "pytest shard 1" $?
  wait "$pid2"; record "pytest shard 2" $?
  set +o pipefail
  # Each shard's failures and summary line again, so the end of the log says what failed.
  step "pytest failures"
  grep -hE '^\[shard [12]\] (FAILED|ERROR|XPASS|=+ .*(passed|failed|error).* in )' "$logs/1" "$logs/2"
  rm -rf "$logs"
fi

# Fleet hosts (network namespaces with sshd, tests/integration/fleet_hosts.py): the pytest
# session that made them takes them down at its end, failed tests or not; this also covers a
# session that was killed. Hosts that were up before `make test` are left running.
if [ "$fleet_was_up" -eq 0 ]; then
  step "fleet hosts down"
  scripts/fleet_hosts.py down
fi
if [ "$was_up" -eq 0 ]; then
  step "sandbox down"
  scripts/sandbox down
fi
while read -r line; do
  results+=("$line")
  case "$line" in FAILED*) status=1 ;; esac
done < "$molecule_results"
rm -f "$molecule_results"
step "summary"
printf '%s\n' "${results[@]}"
exit "$status"
