"""Release metadata: what ansible-doc, antsibull-changelog, antsibull-docs and Galaxy read.

Every module documents version_added 0.1.0 (the first release) and its attributes with the
support it really has; the action groups hold modules that share their family's options; the
tarball carries only what an installed collection uses; LICENSE is the GPLv3 text; the
changelog is released; the docsite layout passes antsibull-docs' linter.
"""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit" / "plugins" / "modules"))
from _db_modules_helpers import documented_attributes, documented_options  # noqa: E402
MODULES = {path.stem: importlib.import_module("ansible_collections.prodready.deploy.plugins.modules." + path.stem)
           for path in sorted((ROOT / "plugins" / "modules").glob("*.py")) if path.stem != "__init__"}
RUNTIME = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
GROUPS = RUNTIME["action_groups"]
# The options that make each family: every member takes all of them with the same type, and
# every module that takes all of them is a member.
FAMILY_OPTIONS = {
    "postgres": ["db", "login_host", "login_port", "login_user", "login_password", "login_unix_socket", "ssl_mode"],
    "redis": ["db", "login_host", "login_port", "login_user", "login_password", "url", "tls", "validate_certs",
              "ca_cert", "client_cert", "client_key", "connect_timeout"],
    "http": ["url", "urls", "headers", "bearer_token", "validate_certs", "ca_cert", "client_cert", "client_key",
             "request_timeout", "follow_redirects"],
    "lock": ["owner", "controller", "run_id", "lock_timeout"],
    "router": ["router", "backend", "admin_address", "admin_socket", "wait_timeout"],
}
ALLOWED_TOP_LEVEL = {"MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.rst", "bindep.txt", "meta",
                     "plugins", "roles", "playbooks", "docs", "changelogs"}


def documentation(module):
    """The module's DOCUMENTATION with the collection's doc fragments it names merged in (their
    options and attributes), as ansible-doc shows it."""
    doc = yaml.safe_load(module.DOCUMENTATION)
    doc.update(options=documented_options(module), attributes=documented_attributes(module))
    return doc


def module_source(name):
    return (ROOT / "plugins" / "modules" / ("%s.py" % name)).read_text()


def test_every_plugin_is_new_in_0_1_0():
    wrong = []
    for path in sorted((ROOT / "plugins").glob("*/*.py")):
        if path.parent.name in ("module_utils", "plugin_utils", "doc_fragments", "action") or path.name == "__init__.py":
            continue
        match = re.search(r'^DOCUMENTATION = r?"""(.*?)"""', path.read_text(), re.S | re.M)
        assert match, "%s has no DOCUMENTATION" % path
        doc = yaml.safe_load(match.group(1))
        if str(doc.get("version_added")) != "0.1.0":
            wrong.append("%s: %r" % (path.relative_to(ROOT), doc.get("version_added")))
    assert wrong == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_check_mode_and_diff_mode_attributes_say_what_the_module_does(name):
    attributes = documentation(MODULES[name]).get("attributes") or {}
    source = module_source(name)
    check = attributes.get("check_mode", {}).get("support")
    diff = attributes.get("diff_mode", {}).get("support")
    assert check == ("full" if "supports_check_mode=True" in source else "none")
    # A module that returns a diff says so; one that returns none says none.
    returns_diff = bool(re.search(r'module\._diff', source))
    assert (diff in ("full", "partial")) == returns_diff, (diff, returns_diff)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_platform_and_action_group_attributes_match_meta_runtime(name):
    attributes = documentation(MODULES[name]).get("attributes") or {}
    assert attributes["platform"]["platforms"] == "posix"
    groups = sorted("prodready.deploy.%s" % g for g, members in GROUPS.items() if name in members)
    assert sorted(attributes["action_group"]["membership"]) == groups


def test_the_deploy_group_holds_every_module():
    assert sorted(GROUPS["deploy"]) == sorted(MODULES)


@pytest.mark.parametrize("group", sorted(FAMILY_OPTIONS))
def test_a_family_group_holds_exactly_the_modules_that_take_its_options(group):
    specs = {name: module.argument_spec() for name, module in MODULES.items()}
    family = FAMILY_OPTIONS[group]
    takes_all = sorted(name for name, spec in specs.items() if set(family) <= set(spec))
    assert sorted(GROUPS[group]) == takes_all
    for option in family:
        types = {name: specs[name][option].get("type", "str") for name in GROUPS[group]}
        assert len(set(types.values())) == 1, (option, types)


def test_every_group_is_documented_with_its_options():
    assert set(GROUPS) == {"deploy"} | set(FAMILY_OPTIONS)
    readme = (ROOT / "README.md").read_text()
    guide = (ROOT / "docs" / "docsite" / "rst" / "module_defaults.rst").read_text()
    for group, options in FAMILY_OPTIONS.items():
        readme_row = next(line for line in readme.splitlines() if line.startswith("| `group/prodready.deploy.%s`" % group))
        assert sorted(re.findall(r"`(\w+)`", readme_row.split("|")[2])) == sorted(GROUPS[group])
        assert re.findall(r"`(\w+)`", readme_row.split("|")[3]) == options
        row = guide.split("* - ``group/prodready.deploy.%s``" % group)[1].split("* - ")[0].split("\n\n")[0]
        modules, guide_options = row.split("\n     - ")[1:]
        assert sorted(re.findall(r"<prodready\.deploy\.(\w+)#module>", modules)) == sorted(GROUPS[group])
        assert re.findall(r"``(\w+)``", guide_options) == options


def test_license_is_the_gplv3_text_galaxy_names():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007")
    assert "END OF TERMS AND CONDITIONS" in text
    assert yaml.safe_load((ROOT / "galaxy.yml").read_text())["license"] == ["GPL-3.0-or-later"]


def test_the_tarball_holds_only_what_the_installed_collection_uses(tarball_names):
    top = {name.split("/")[0] for name in tarball_names}
    assert top <= ALLOWED_TOP_LEVEL, sorted(top - ALLOWED_TOP_LEVEL)
    for needed in ("LICENSE", "README.md", "CHANGELOG.rst", "changelogs/changelog.yaml", "meta/runtime.yml",
                   "meta/execution-environment.yml", "meta/ee-requirements.txt", "bindep.txt",
                   "docs/docsite/links.yml", "docs/docsite/extra-docs.yml", "playbooks/deploy.yml",
                   "roles/blue_green/tasks/main.yml", "plugins/modules/pg_backup.py"):
        assert needed in tarball_names
    assert not [n for n in tarball_names if n.startswith("changelogs/fragments/") or "__pycache__" in n]


def test_changelog_0_1_0_is_released_with_a_summary_and_every_module():
    config = yaml.safe_load((ROOT / "changelogs" / "config.yaml").read_text())
    assert config["keep_fragments"] is True  # fragments stay for the engineers adding more
    changelog = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text())
    release = changelog["releases"]["0.1.0"]
    assert release["changes"]["release_summary"]
    assert sorted(m["name"] for m in release["modules"]) == sorted(MODULES), (
        "a module is new since the changelog was generated: run `antsibull-changelog release --update-existing` "
        "(docs/development.md, Releasing)")
    assert "v0.1.0" in (ROOT / "CHANGELOG.rst").read_text()


def test_docsite_layout_passes_antsibull_docs_lint():
    """The extra docs and links (plugin docs: tests/integration/test_docsite.py, ~15 s)."""
    links = yaml.safe_load((ROOT / "docs" / "docsite" / "links.yml").read_text())
    assert links["edit_on_github"]["repository"] == "prodready/deploy"
    extra = yaml.safe_load((ROOT / "docs" / "docsite" / "extra-docs.yml").read_text())
    for section in extra["sections"]:
        for page in section["toctree"]:
            assert (ROOT / "docs" / "docsite" / "rst" / ("%s.rst" % page)).exists()
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "antsibull-docs"), "lint-collection-docs", "--no-plugin-docs",
                           str(ROOT)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
