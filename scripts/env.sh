# Source this file to get the project's environment: venv on PATH, Ansible state kept
# inside the checkout (never in $HOME), the collection resolved to this checkout.
_pr_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PRODREADY_ROOT="$_pr_root"
export PATH="$_pr_root/.venv/bin:$PATH"
export ANSIBLE_HOME="$_pr_root/.ansible"
export ANSIBLE_LOCAL_TEMP="$_pr_root/.ansible/tmp"
export ANSIBLE_REMOTE_TEMP="$_pr_root/.ansible/tmp"
export ANSIBLE_COLLECTIONS_PATH="$_pr_root/.build/collections"
export ANSIBLE_CONFIG="$_pr_root/ansible.cfg"
export ANSIBLE_SSH_CONTROL_PATH_DIR="$_pr_root/.ansible/cp"
# Facts never shadow variables (ansible.cfg says why; molecule writes its own ansible.cfg).
export ANSIBLE_INJECT_FACT_VARS=False
# By hand: molecule test -s <scenario>; make test gives each scenario .cache/molecule/<scenario>.
export MOLECULE_EPHEMERAL_DIRECTORY="$_pr_root/.cache/molecule"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$_pr_root/.cache}"
unset _pr_root
