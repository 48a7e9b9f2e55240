"""awx/credential_types.yml: each custom credential type injects, as secrets, exactly the
environment variables the collection reads on the controller (the roles' lookups, the
modules' env fallbacks, the deploy report's options)."""

import re
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TYPES = {t["name"]: t for t in yaml.safe_load((ROOT / "awx" / "credential_types.yml").read_text())}
# variable -> the files that read it, as a reader (lookup, env_fallback, callback option).
READERS = {
    "PGPASSWORD": ["roles/app/defaults/main.yml", "roles/preflight/defaults/main.yml", "plugins/module_utils/_postgres.py"],
    "PRODREADY_DATABASE_URL": ["roles/app/defaults/main.yml", "plugins/modules/alembic_migrate.py"],
    "REDIS_PASSWORD": ["roles/app/defaults/main.yml", "roles/preflight/defaults/main.yml", "plugins/module_utils/_redis.py"],
    "PRODREADY_REDIS_URL": ["plugins/module_utils/_redis.py"],
    "HEALTH_GATE_BEARER_TOKEN": ["roles/app/defaults/main.yml", "plugins/modules/health_gate.py"],
    "PRODREADY_NOTIFY_WEBHOOKS": ["plugins/callback/deploy_report.py"],
}


def test_the_four_types_and_what_they_inject():
    injected = {name: sorted(t["injectors"]["env"]) for name, t in TYPES.items()}
    assert injected == {
        "prodready-database": ["PGPASSWORD", "PRODREADY_DATABASE_URL"],
        "prodready-redis": ["PRODREADY_REDIS_URL", "REDIS_PASSWORD"],
        "prodready-http-gate": ["HEALTH_GATE_BEARER_TOKEN"],
        "prodready-notify": ["PRODREADY_NOTIFY_WEBHOOKS"],
    }
    assert all(t["kind"] == "cloud" for t in TYPES.values())  # custom types: cloud or net only


@pytest.mark.parametrize("variable", sorted(READERS))
def test_every_injected_variable_is_read_where_the_docs_say(variable):
    for path in READERS[variable]:
        # a quoted name (a lookup, an env_fallback) or a plugin option's `env: - name:`
        assert re.search(r"(['\"]|- name: )%s\b" % variable, (ROOT / path).read_text()), (variable, path)


@pytest.mark.parametrize("name", sorted(TYPES))
def test_templates_use_declared_fields_and_every_secret_is_marked(name):
    fields = {f["id"]: f for f in TYPES[name]["inputs"]["fields"]}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for variable, template in TYPES[name]["injectors"]["env"].items():
        used = set(re.findall(r"{{\s*(\w+)\s*}}", template))
        assert used and used <= set(fields), (variable, used)
        env.from_string(template).render(**{f: "x" for f in fields})
    for field_id, field in fields.items():
        if field_id != "format":
            assert field.get("secret") is True, field_id
    assert set(TYPES[name]["inputs"].get("required", [])) <= set(fields)


def test_the_notify_injection_is_a_webhook_the_report_takes():
    from ansible_collections.prodready.deploy.plugins.plugin_utils import _notify

    template = TYPES["prodready-notify"]["injectors"]["env"]["PRODREADY_NOTIFY_WEBHOOKS"]
    value = jinja2.Template(template).render(format="slack", webhook_url="https://hooks.example/T0/B0/secret")
    assert _notify.targets(value, "notify_webhooks") == [("slack", "https://hooks.example/T0/B0/secret", {})]
