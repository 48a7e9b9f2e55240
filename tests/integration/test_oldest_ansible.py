"""The oldest ansible-core meta/runtime.yml's requires_ansible claims runs the collection.

scripts/bootstrap.sh installs it (requirements-oldest-ansible.txt) into
.cache/venv-oldest-ansible. Every playbook passes its syntax check there, and a play runs
modules from each action group family (with module_defaults) and validates the host model's
argument spec, its modules shipped with that ansible-core's module_utils. A whole deploy story
(first deploy, an upgrade with backup and migration, a failing release switched back and
downgraded) was run by hand with ansible-core 2.16.19 when requires_ansible was lowered.
"""

import json
import re
import subprocess

import pytest
import yaml

from health_server import HealthServer
from helpers import ROOT, ansible_env

OLD_BIN = ROOT / ".cache" / "venv-oldest-ansible" / "bin"
REQUIRES = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["requires_ansible"]

pytestmark = pytest.mark.skipif(not (OLD_BIN / "ansible-playbook").exists(),
                                reason="no .cache/venv-oldest-ansible: run scripts/bootstrap.sh")


def old_env():
    return ansible_env({"PATH": "%s:%s" % (OLD_BIN, ansible_env()["PATH"]),
                        "ANSIBLE_PYTHON_INTERPRETER": str(OLD_BIN / "python")})


def playbook(*argv):
    proc = subprocess.run([str(OLD_BIN / "ansible-playbook"), *argv], capture_output=True, text=True,
                          env=old_env(), cwd=str(ROOT), timeout=600, check=False)
    proc.output = proc.stdout + proc.stderr
    return proc


def test_the_venv_holds_the_version_requires_ansible_names():
    version = subprocess.run([str(OLD_BIN / "python"), "-c", "import ansible.release as r; print(r.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    oldest = re.fullmatch(r">=(\d+\.\d+)\.0", REQUIRES).group(1)
    assert version.startswith(oldest + "."), (version, REQUIRES)


def test_every_playbook_passes_the_syntax_check():
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        proc = playbook("--syntax-check", "-i", "inventories/local", str(path))
        assert proc.returncode == 0, (path.name, proc.output[-2000:])
        assert "does not support Ansible version" not in proc.output


def test_modules_of_each_family_and_the_host_model_run(sandbox, tmp_path):
    pg, redis = sandbox["services"]["postgres"], sandbox["services"]["redis"]
    server = HealthServer().start()
    out = tmp_path / "results.json"
    try:
        (tmp_path / "play.yml").write_text(yaml.safe_dump([{
            "hosts": "localhost", "connection": "local", "gather_facts": False,
            "module_defaults": {
                "group/prodready.deploy.postgres": {
                    "login_host": pg["host"], "login_port": pg["port"], "login_user": pg["app_user"],
                    "login_password": sandbox["secrets"]["app_db_password"], "db": pg["app_db"]},
                "group/prodready.deploy.redis": {
                    "login_host": redis["host"], "login_port": redis["port"],
                    "login_password": sandbox["secrets"]["redis_password"]},
                "group/prodready.deploy.http": {"request_timeout": 3},
            },
            "tasks": [
                {"name": "host model", "ansible.builtin.import_role": {"name": "prodready.deploy.app"}},
                {"name": "backup", "prodready.deploy.pg_backup": {"dest_dir": str(tmp_path / "backups"),
                                                                  "bin_dir": pg["bin_dir"]}, "register": "backup"},
                {"name": "cache", "prodready.deploy.redis_cache_check": {}, "register": "cache"},
                {"name": "gate", "prodready.deploy.health_gate": {"url": server.url("/fast"), "requests": 3},
                 "register": "gate"},
                {"name": "flags", "register": "flags", "prodready.deploy.feature_flag": {
                    "path": str(tmp_path / ".env"), "create": True, "flags": {"NEW_CHECKOUT": True}}},
                {"name": "results", "ansible.builtin.copy": {
                    "content": "{{ {'backup': backup, 'cache': cache, 'gate': gate, 'flags': flags} | to_json }}",
                    "dest": str(out), "mode": "0600"}},
            ],
        }]))
        proc = playbook(str(tmp_path / "play.yml"))
    finally:
        server.stop()
    assert proc.returncode == 0, proc.output[-3000:]
    assert "does not support Ansible version" not in proc.output
    results = json.loads(out.read_text())
    assert results["backup"]["verified"] is True and results["backup"]["sha256"]
    assert results["cache"]["passed"] is True
    assert results["gate"]["passed"] is True and results["gate"]["samples"] == 3
    assert (tmp_path / ".env").read_text() == "NEW_CHECKOUT=true\n"
