"""examples/site: a site repository that uses the INSTALLED collection by playbook FQCN.

The collection is built and installed into the site copy's `collections/` (as
`ansible-galaxy collection install -r requirements.yml -p collections` would do), then:
every site playbook passes --syntax-check against the real-looking prod inventory, and
promote.yml deploys the plain WSGI app over two sandbox inventories at once
(`-i inventories/sbx-staging -i inventories/sbx-prod`, haproxy slots s12 and s13).
"""

import json
import os
import shutil
import subprocess

import pytest
import requests
import yaml

from apptools import retire_test_slot_app
from helpers import ROOT, ansible_env
from wsgi_app import artifact, local_vars, role_vars, slot_vars

pytestmark = [pytest.mark.slow]

PLAYBOOKS = ["deploy.yml", "rollback.yml", "promote.yml", "preflight.yml", "flag_rollout.yml"]
SLOTS = {"staging": "s12", "prod": "s13"}


@pytest.fixture(scope="module")
def site(sandbox, tmp_path_factory):
    base = tmp_path_factory.mktemp("site")
    site_dir = base / "site"
    shutil.copytree(ROOT / "examples" / "site", site_dir)
    env = ansible_env()
    galaxy = str(ROOT / ".venv" / "bin" / "ansible-galaxy")
    build = subprocess.run([galaxy, "collection", "build", "--force", "--output-path", str(base / "dist"), str(ROOT)],
                           capture_output=True, text=True, env=env, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = sorted((base / "dist").glob("prodready-deploy-*.tar.gz"))[-1]
    install = subprocess.run([galaxy, "collection", "install", "--force", "-p", str(site_dir / "collections"), str(tarball)],
                             capture_output=True, text=True, env=env, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    # The site's own ansible.cfg and collections dir, never the checkout's.
    env.pop("ANSIBLE_COLLECTIONS_PATH")
    env["ANSIBLE_CONFIG"] = str(site_dir / "ansible.cfg")
    env["PRODREADY_REPORT_DIR"] = str(base / "reports")
    write_sandbox_inventories(sandbox, site_dir)
    yield {"dir": site_dir, "env": env}
    slots = sandbox["services"]["haproxy"]["slots"]
    for env_name, slot in SLOTS.items():
        retire_test_slot_app(sandbox, f"site-{env_name}", ROOT, backend=slots[slot]["backend"])


def write_sandbox_inventories(sandbox, site_dir):
    """Sandbox stand-ins for inventories/staging and inventories/prod, same group layout."""
    # The site's app is a gunicorn shop; here the plain WSGI app stands in for it.
    app_vars = yaml.safe_dump(role_vars(
        sandbox, blue_green_artifact_src=str(site_dir / "dist") + "/notes-{{ blue_green_version }}.tar.gz"))
    (site_dir / "dist").mkdir()
    artifact(site_dir / "dist" / "notes-1.0.tar.gz", "1.0", requirements="")
    for env_name, slot_name in SLOTS.items():
        host = f"sbx-{env_name}-app1"
        inv = site_dir / "inventories" / f"sbx-{env_name}"
        (inv / "group_vars").mkdir(parents=True)
        (inv / "group_vars" / "app.yml").write_text(app_vars)
        (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
            "app": {"hosts": {host: None}},
            env_name: {"hosts": {host: None}},
        }}}))
        (inv / "group_vars" / f"{env_name}.yml").write_text(yaml.safe_dump(dict(
            local_vars(), **slot_vars(sandbox, slot_name),
            app_name=f"site-{env_name}", app_root=str(site_dir / "srv" / env_name))))


def playbook(site, *args):
    argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=site["env"], cwd=str(site["dir"]),
                          timeout=900, check=False)


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_every_site_playbook_imports_the_installed_collection(site, name):
    proc = playbook(site, name, "-i", "inventories/prod", "--syntax-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The collection came from the site's collections/ dir, not from this checkout.
    assert (site["dir"] / "collections" / "ansible_collections" / "prodready" / "deploy" / "playbooks" / name).exists()


def test_promote_over_two_inventories_from_the_site(site, sandbox):
    extra = site["dir"] / "extra.json"
    extra.write_text(json.dumps({"app_version": "1.0"}))
    os.chmod(extra, 0o600)
    proc = playbook(site, "promote.yml", "-i", "inventories/sbx-staging", "-i", "inventories/sbx-prod",
                    "-e", "@" + str(extra))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    slots = sandbox["services"]["haproxy"]["slots"]
    for env_name, slot in SLOTS.items():
        url = "http://127.0.0.1:%d/healthz" % slots[slot]["port"]
        assert requests.get(url, timeout=5).json()["build"]["version"] == "1.0"
        state = json.loads((site["dir"] / "srv" / env_name / "state.json").read_text())
        assert state["live_version"] == "1.0"
    # Each deploy play ran on its own environment only.
    plays = {chunk.split("]", 1)[0]: chunk for chunk in out.split("PLAY [")[1:]}
    # (a task result line names its host in brackets: "ok: [host]")
    prod_play = plays["Deploy to production with the artifact staging runs"]
    assert "[sbx-staging-app1]" in plays["Deploy to staging"] and "[sbx-prod-app1]" not in plays["Deploy to staging"]
    assert "[sbx-prod-app1]" in prod_play and "[sbx-staging-app1]" not in prod_play
    assert "from sbx-staging-app1" in prod_play  # the artifact staging runs, named
