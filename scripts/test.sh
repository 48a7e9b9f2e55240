#!/usr/bin/env bash
# `make test`: lint, sanity, then unit + integration tests in ONE pytest run against the
# sandbox, whose summary line is the result. The sandbox is taken down at the end when
# this script brought it up.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/env.sh
status=0
step() { printf '\n==> %s\n' "$*"; }

step "ansible-lint (production profile)"
ansible-lint --profile production || status=1

step "ansible-test sanity"
bash scripts/sanity.sh || status=1

step "sandbox up"
was_up=0
scripts/sandbox status >/dev/null 2>&1 && was_up=1
scripts/sandbox up || exit 1

step "molecule (delegated driver against this machine)"
for scenario in molecule/*/; do
  scenario="$(basename "$scenario")"
  molecule test -s "$scenario" || status=1
done

step "pytest: unit + integration"
# One process: several integration scenarios share sandbox slots (the demo's colors, the
# test slot be_test, supervisord) and run in order. PYTEST_ARGS="-n 2 --dist loadfile" runs
# files on two workers for a quicker local run (not safe for the demo and blue_green files
# at once; xdist's loadgroup did not keep groups together with pytest 9.2 + xdist 3.8).
pytest tests/unit tests/integration ${PYTEST_ARGS:-} || status=1

if [ "$was_up" -eq 0 ]; then
  step "sandbox down"
  scripts/sandbox down
fi
exit "$status"
