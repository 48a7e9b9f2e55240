#!/usr/bin/env bash
# ansible-test sanity on this checkout. ansible-test needs the collection under
# ansible_collections/<namespace>/<name>, so the committed and staged files (plus new
# untracked ones) are copied into a temporary tree. Its state lives in .cache/ (never $HOME).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
HOME_DIR="$ROOT/.cache/ansible-test-home"
# (not under a dot-directory: ansible-test skips files below one)
SANITY_DIR="${SANITY_DIR:-${TMPDIR:-/tmp}/prodready-sanity-$(id -u)}"
TREE="$SANITY_DIR/ansible_collections/prodready/deploy"
PY="${SANITY_PYTHON:-3.11}"

# ansible-test downloads a get-pip script per pip version; provide every version it may ask for.
pip_version="$(python - <<'PY'
import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
m = re.search(r"pip='([0-9.]+)'", src)
print(m.group(1) if m else "24.2")
PY
)"
mkdir -p "$HOME_DIR/.ansible/test/cache"
for v in $pip_version; do
  cp "$ROOT/scripts/ansible-test-pip-bootstrap.py" "$HOME_DIR/.ansible/test/cache/get_pip_${v//./_}.py"
done

# Refresh the copy but keep tests/output: ansible-test reuses its sanity venvs from there.
mkdir -p "$TREE"
find "$TREE" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
find "$TREE/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} + 2>/dev/null || true
cd "$ROOT"
git ls-files --cached --others --exclude-standard -z | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
  | tar --null -T - -cf - | tar -xf - -C "$TREE"
cd "$TREE"
HOME="$HOME_DIR" ansible-test sanity --venv --python "$PY" --requirements --color no "$@"
