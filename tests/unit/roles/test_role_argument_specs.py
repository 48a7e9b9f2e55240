"""Every role documents and validates exactly the variables it defines.

A default without an argument spec is never validated; a spec without a default documents a
variable the role does not have (the host model moved the app's description to roles/app:
a role still listing app_* options would validate them twice, or describe them wrongly).
"""
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "defaults" / "main.yml").exists())


def defaults(role):
    return set(yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {})


def spec_options(role):
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return set(spec["argument_specs"]["main"]["options"])


@pytest.mark.parametrize("role", ROLES)
def test_every_default_has_an_argument_spec_and_back(role):
    # Variables the role sets for a color being started are defaults (documented), not options.
    set_by_roles = {"app_color", "app_color_version", "app_port", "app_release_dir", "app_venv"}
    assert defaults(role) - set_by_roles == spec_options(role) - set_by_roles


@pytest.mark.parametrize("role", ROLES)
def test_a_role_defines_only_its_own_prefix(role):
    prefix = {"app": "app_"}.get(role, role + "_")
    foreign = sorted(name for name in defaults(role) | spec_options(role) if not name.startswith(prefix))
    assert foreign == []


@pytest.mark.parametrize("role", [r for r in ROLES if r != "app"])
def test_roles_that_describe_the_app_depend_on_the_host_model(role):
    meta = yaml.safe_load((ROOT / "roles" / role / "meta" / "main.yml").read_text())
    uses_app = any("app_" in p.read_text() for p in (ROOT / "roles" / role / "tasks").glob("*.yml"))
    deps = [d["role"] if isinstance(d, dict) else d for d in meta.get("dependencies") or []]
    assert not uses_app or "prodready.deploy.app" in deps


@pytest.mark.parametrize("role", ROLES)
def test_the_argument_spec_shows_the_defaults_the_role_uses(role):
    """`ansible-doc -t role` shows `default:` from the spec; the role uses defaults/main.yml."""
    import argspec_defaults  # scripts/argspec_defaults.py (tests/conftest.py puts scripts/ on sys.path)

    assert argspec_defaults.differences(ROOT / "roles" / role) == []
