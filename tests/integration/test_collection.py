"""The collection builds, installs, documents its modules, and the demo tells its story."""

import json
import re
import subprocess
import tarfile

import pytest

from helpers import ROOT, ansible_env

MODULES = ["alembic_migrate", "color_process", "deploy_begin", "deploy_lock", "deploy_state", "deploy_status",
           "feature_flag",
           "health_gate", "pg_backup", "preflight_check", "redis_cache_check", "release_build", "release_exec", "rollback_start",
           "router_switch"]


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), check=False,
                          cwd=str(ROOT), **kw)


def test_build_excludes_local_state_and_installs(tmp_path):
    out = tmp_path / "dist"
    proc = run([str(ROOT / ".venv/bin/ansible-galaxy"), "collection", "build", "--force",
                "--output-path", str(out), str(ROOT)])
    assert proc.returncode == 0, proc.stderr
    tarball = out / "prodready-deploy-0.1.0.tar.gz"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert manifest["collection_info"]["namespace"] == "prodready"
    assert manifest["collection_info"]["name"] == "deploy"
    forbidden = {".venv", ".sandbox", ".cache", ".build", ".ansible", ".bench-tmp", ".reports", "dist"}
    leaked = [n for n in names if n.split("/")[0] in forbidden or "__pycache__" in n
              or n.startswith(("tests/output", "examples/app/dist"))]
    assert leaked == []
    assert "meta/runtime.yml" in names and "plugins/module_utils/_errors.py" in names

    dest = tmp_path / "collections"
    proc = run([str(ROOT / ".venv/bin/ansible-galaxy"), "collection", "install", "--force", "-p", str(dest),
                str(tarball)])
    assert proc.returncode == 0, proc.stderr
    assert (dest / "ansible_collections/prodready/deploy/meta/runtime.yml").exists()


def test_ansible_doc_lists_every_module_with_docs():
    for module in MODULES:
        if not (ROOT / "plugins/modules" / f"{module}.py").exists():
            continue  # each module's own tests require it; this checks the docs of those present
        proc = run([str(ROOT / ".venv/bin/ansible-doc"), "--json", f"prodready.deploy.{module}"])
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)[f"prodready.deploy.{module}"]
        assert doc["doc"]["short_description"] and doc["examples"] and doc["return"]


def test_runtime_action_group_lists_every_module():
    import yaml

    runtime = yaml.safe_load((ROOT / "meta/runtime.yml").read_text())
    assert sorted(runtime["action_groups"]["deploy"]) == MODULES
    assert MODULES == sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


@pytest.mark.xdist_group("demo_slot")
def test_demo_tells_the_deploy_story(sandbox):
    """`make demo` (scripts/demo.sh): 1.0.0, 1.1.0 under load, crash rejected, errors reverted, restore rollback."""
    for run_number in (1,):  # once: the suite must stay fast; `make demo` resets its slot itself
        proc = subprocess.run(["bash", str(ROOT / "scripts/demo.sh")], capture_output=True,
                              text=True, check=False, cwd=str(ROOT), timeout=1200)
        out = proc.stdout
        assert proc.returncode == 0, (run_number, out[-3000:] + proc.stderr[-2000:])
        assert "sampleapp 1.1.0 is live on sandbox-app1" in out
        assert "router still serves: 1.1.0" in out
        assert "stopped in phase start" in out and "stopped in phase gate_live" in out
        assert "switched back to green (1.1.0)" in out
        summary = json.loads((ROOT / ".cache/demo/load.json").read_text())
        assert summary["requests"] > 100 and summary["versions"].get("1.1.0", 0) > 0
        # Through haproxy, the router fails no request in the whole story: no connection
        # error, no 502/503/504 (the bad release's gate window falls back to the previous
        # color, a runtime backup server); the release's own 5xx are counted apart.
        assert summary["errors"] == {} and summary["router_failures"] == 0, summary
        assert f"failed by the router (connection errors, 502/503/504): {summary['router_failures']}" in out
        # The story ends with a restore rollback to 1.0.0: its 503 window measured and printed.
        assert "live: 1.0.0 on" in out and "(rolled back from 1.1.0)" in out
        assert "GET /health through haproxy" in out and '"version": "1.0.0"' in out
        rollback = json.loads((ROOT / ".cache/demo/rollback-load.json").read_text())
        assert rollback["errors"] == {} and rollback["versions"].get("1.0.0", 0) > 0
        assert f"{rollback['router_failures']} refused by the router in that window" in out
        assert re.search(r"rollback 1\.1\.0 -> 1\.0\.0 with database restore: router answered 503 for \d+\.\d\d s", out)
