"""The AWX objects of awx/*.yml are what the awx.awx modules take and what the playbooks read.

- Every object passes its awx.awx module's argument validation: the option names, types,
  choices and suboptions of the module's DOCUMENTATION (awx.awx 24.6.1, shipped in the
  `ansible` 12.3.0 wheel on PyPI; scripts/bootstrap.sh unpacks it into .build/collections),
  checked with ansible-core's own ArgumentSpecValidator.
- Every survey is one AWX's API accepts (the rules of JobTemplateSurveySpec._validate_spec_data
  in ansible/awx, awx/api/views/__init__.py), and each of its variables is one the job's
  playbook or its roles read (the roles' meta/argument_specs.yml, or the playbook and the task
  file it names), with choices the role accepts.
- The workflow: every node runs a job template of awx/job_templates.yml (or is an approval),
  its extra_data answers that template's survey, an approval comes before the deploy, a failed
  deploy goes to the rollback and every path ends in the notify node.
"""

import ast
import json
import re
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROOT = Path(__file__).resolve().parents[2]
AWX = ROOT / "awx"
AWX_COLLECTION = ROOT / ".build" / "collections" / "ansible_collections" / "awx" / "awx"
# awx/<kind>.yml -> the awx.awx module that takes its items (credential_types.yml is another
# engineer's file: checked here when it exists).
KINDS = {
    "execution_environments": "execution_environment",
    "credential_types": "credential_type",
    "projects": "project",
    "inventories": "inventory",
    "inventory_sources": "inventory_source",
    "job_templates": "job_template",
    "workflow_job_templates": "workflow_job_template",
}
# AWX's survey question types and the Python type of their default (JobTemplateSurveySpec.ALLOWED_TYPES).
SURVEY_TYPES = {"text": str, "textarea": str, "password": str, "integer": int, "float": (int, float),
                "multiplechoice": str, "multiselect": str}
# Variables AWX itself passes to every job (the roles and the deploy report read them).
AWX_VARIABLES = {"awx_user_name", "awx_job_id", "awx_job_template_name", "awx_url", "tower_user_name", "tower_job_id"}


def objects(kind):
    path = AWX / ("%s.yml" % kind)
    return yaml.safe_load(path.read_text()) if path.exists() else []


def awx_module_doc(module):
    path = AWX_COLLECTION / "plugins" / "modules" / ("%s.py" % module)
    if not path.exists():
        pytest.fail("awx.awx is not installed in %s: run scripts/bootstrap.sh" % AWX_COLLECTION)
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DOCUMENTATION":
            return yaml.safe_load(node.value.value)
    raise AssertionError("no DOCUMENTATION in %s" % path)


def spec_from_doc(options):
    """An argument spec from a DOCUMENTATION options block (names, types, choices, suboptions)."""
    spec = {}
    for name, doc in options.items():
        entry = {key: doc[key] for key in ("type", "choices", "elements", "aliases", "required") if key in doc}
        if "suboptions" in doc:
            entry["options"] = spec_from_doc(doc["suboptions"])
        spec[name] = entry
    return spec


def job_templates():
    return {jt["name"]: jt for jt in objects("job_templates")}


def survey_variables(template):
    return [q["variable"] for q in template.get("survey_spec", {}).get("spec", [])]


def role_options(role):
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"]


def role_dependencies(role):
    meta = yaml.safe_load((ROOT / "roles" / role / "meta" / "main.yml").read_text()) or {}
    return [dep["role"].split(".")[-1] for dep in meta.get("dependencies") or []]


def code_text(path):
    """The file without its comment lines (a name in a comment is read by nobody)."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def playbook_variables(playbook):
    """{variable: role options entry or None}: what the playbook and the roles it runs read."""
    text = code_text(ROOT / playbook)
    known = {}
    roles = set(re.findall(r"prodready\.deploy\.(\w+)", text))
    for role in sorted(roles):
        for name in [role] + role_dependencies(role):
            if (ROOT / "roles" / name / "meta" / "argument_specs.yml").exists():
                known.update(role_options(name))
    # A role option may default to another variable (blue_green_version: "{{ app_version }}").
    sources = [json.dumps([option.get("default") for option in known.values()])]
    sources.append(text)
    sources += [code_text(ROOT / "roles" / role / "tasks" / ("%s.yml" % tasks_from))
                for role in roles for tasks_from in re.findall(r"tasks_from:\s*(\w+)", text)]
    for source in sources:
        for name in re.findall(r"\b[a-z_][a-z0-9_]*\b", source):
            known.setdefault(name, None)
    return known


def test_the_awx_collection_checked_against_is_the_pinned_one():
    manifest = json.loads((AWX_COLLECTION / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == "24.6.1"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_object_passes_its_awx_module_argument_validation(kind):
    doc = awx_module_doc(KINDS[kind])
    validator = ArgumentSpecValidator(spec_from_doc(doc["options"]))
    items = objects(kind)
    if kind != "credential_types":
        assert items, "awx/%s.yml holds no object" % kind
    assert len({item["name"] for item in items}) == len(items), "duplicate names in awx/%s.yml" % kind
    for item in items:
        result = validator.validate(item)
        assert not result.error_messages, (kind, item["name"], result.error_messages)
        assert result.unsupported_parameters == set(), (kind, item["name"], result.unsupported_parameters)


def test_the_validation_refuses_what_the_module_would():
    validator = ArgumentSpecValidator(spec_from_doc(awx_module_doc("job_template")["options"]))
    assert validator.validate({"name": "x", "job_type": "dry"}).error_messages
    assert validator.validate({"name": "x", "survey": {}}).unsupported_parameters == {"survey"}
    nodes = ArgumentSpecValidator(spec_from_doc(awx_module_doc("workflow_job_template")["options"]))
    wrong = nodes.validate({"name": "w", "workflow_nodes": [{"identifier": "a", "related": {"on_failure": []}}]})
    assert wrong.unsupported_parameters or wrong.error_messages


@pytest.mark.parametrize("template", sorted(job_templates()) + ["workflow: %s" % w["name"] for w in
                                                                objects("workflow_job_templates")])
def test_every_survey_is_one_the_awx_api_accepts(template):
    if template.startswith("workflow: "):
        obj = {w["name"]: w for w in objects("workflow_job_templates")}[template[len("workflow: "):]]
    else:
        obj = job_templates()[template]
    assert obj["survey_enabled"] is True
    survey = obj["survey_spec"]
    assert isinstance(survey["name"], str) and isinstance(survey["description"], str) and survey["spec"]
    variables = survey_variables(obj)
    assert len(set(variables)) == len(variables), variables
    for question in survey["spec"]:
        for field, kind in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
            assert isinstance(question.get(field), kind), (template, question, field)
        assert question["type"] in SURVEY_TYPES, question
        for limit in ("min", "max"):
            assert limit not in question or isinstance(question[limit], int), question
        default = question.get("default", "")
        if default != "":
            assert isinstance(default, SURVEY_TYPES[question["type"]]), question
        if question["type"] in ("multiplechoice", "multiselect"):
            assert question.get("choices"), question
            assert default == "" or default in question["choices"], question
        if question["type"] in ("text", "textarea") and default != "":
            assert question.get("min", 0) <= len(default) <= question.get("max", 1024), question
        if question["type"] in ("integer", "float") and default != "":
            assert question["min"] <= default <= question["max"], question
        if question["required"] and question["type"] != "password":
            # AWX refuses a launch without the answer: a default lets an operator accept it.
            assert "default" in question or question["type"] == "text", question


@pytest.mark.parametrize("template", sorted(job_templates()))
def test_every_survey_variable_is_one_the_playbook_reads(template):
    obj = job_templates()[template]
    assert (ROOT / obj["playbook"]).is_file(), obj["playbook"]
    known = playbook_variables(obj["playbook"])
    for question in obj["survey_spec"]["spec"]:
        name = question["variable"]
        assert name in known, "%s: survey variable %s is read by neither %s nor its roles" % (
            template, name, obj["playbook"])
        option = known[name]
        if option and question["type"] == "multiplechoice" and "choices" in option:
            assert set(question["choices"]) <= set(option["choices"]), (name, question["choices"], option["choices"])
        if option and question["type"] == "integer":
            assert option["type"] == "int", (name, option)


def test_the_survey_variable_check_finds_a_wrong_name():
    known = playbook_variables("playbooks/rollback.yml")
    assert "rollback_db" in known and "deploy_serial" in known and "app_name" in known
    assert "app_version" in playbook_variables("playbooks/deploy.yml")
    assert "rollback_database" not in known and "batch_size" not in known


def test_job_templates_name_objects_that_are_registered():
    projects = {p["name"] for p in objects("projects")}
    inventories = {i["name"] for i in objects("inventories")}
    environments = {e["name"] for e in objects("execution_environments")}
    for name, obj in job_templates().items():
        assert obj["project"] in projects and obj["inventory"] in inventories, name
        assert obj["execution_environment"] in environments, name
        # One credential per type: the ssh key and the secrets the playbook's modules use.
        assert obj["credentials"][0] == "prodready ssh" and len(set(obj["credentials"])) == len(obj["credentials"])
    for source in objects("inventory_sources"):
        assert source["inventory"] in inventories and source["source_project"] in projects
        assert (ROOT / source["source_path"]).is_file(), source["source_path"]
    for project in objects("projects"):
        assert project["default_environment"] in environments


def test_the_templates_that_change_something_offer_a_dry_run():
    for name in ("prodready deploy", "prodready rollback", "prodready flag rollout", "prodready backup"):
        assert job_templates()[name]["ask_job_type_on_launch"] is True, name
        assert job_templates()[name]["allow_simultaneous"] is False, name


def walk(nodes, start, edges=("success_nodes", "failure_nodes", "always_nodes")):
    """The identifiers reachable from `start`."""
    by_id = {node["identifier"]: node for node in nodes}
    seen, todo = set(), [start]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for edge in edges:
            todo.extend(n["identifier"] for n in by_id[current].get("related", {}).get(edge, []))
    return seen


def test_the_workflow_preflight_approval_deploy_rollback_notify():
    workflows = objects("workflow_job_templates")
    assert [w["name"] for w in workflows] == ["prodready deploy production"]
    workflow = workflows[0]
    nodes = workflow["workflow_nodes"]
    by_id = {node["identifier"]: node for node in nodes}
    templates = job_templates()
    children = {node["identifier"] for node in nodes for edge in node.get("related", {}).values() for node in edge}
    roots = [node["identifier"] for node in nodes if node["identifier"] not in children]
    assert roots == ["preflight"]
    for node in nodes:
        target = node["unified_job_template"]
        assert target["type"] in ("job_template", "workflow_approval"), node
        if target["type"] == "job_template":
            assert target["name"] in templates, target
            # AWX takes a node's extra_data only for a survey question of its template.
            asked = set(survey_variables(templates[target["name"]]))
            assert set(node.get("extra_data", {})) <= asked, (node["identifier"], node.get("extra_data"))
            for question in templates[target["name"]]["survey_spec"]["spec"]:
                if question["variable"] in node.get("extra_data", {}) and "choices" in question:
                    assert node["extra_data"][question["variable"]] in question["choices"]
        for edge in node.get("related", {}).values():
            assert {n["identifier"] for n in edge} <= set(by_id), node
    kind = {i: by_id[i]["unified_job_template"].get("type") for i in by_id}
    name = {i: by_id[i]["unified_job_template"]["name"] for i in by_id}
    deploy = [i for i in by_id if name[i] == "prodready deploy"]
    assert len(deploy) == 1
    deploy = deploy[0]
    # No way to the deploy but through an approval.
    approvals = [i for i in by_id if kind[i] == "workflow_approval"]
    assert approvals and by_id[approvals[0]]["unified_job_template"]["timeout"] > 0
    assert deploy not in walk([dict(n, related={}) if n["identifier"] in approvals else n for n in nodes], "preflight")
    assert name[by_id["preflight"]["identifier"]] == "prodready preflight"
    # A failed deploy rolls back; whatever happens ends in notify (the status job).
    failure = [n["identifier"] for n in by_id[deploy]["related"]["failure_nodes"]]
    assert [name[i] for i in failure] == ["prodready rollback"]
    assert by_id[failure[0]]["extra_data"]["rollback_db"] == "none"
    notify = [i for i in by_id if name[i] == "prodready status"]
    assert len(notify) == 1
    for node in nodes:
        if node["identifier"] != notify[0]:
            assert notify[0] in walk(nodes, node["identifier"]), node["identifier"]
    assert [n["identifier"] for n in by_id[failure[0]]["related"]["always_nodes"]] == notify
    # The workflow's answers reach every node: each is asked by one of its templates.
    asked = set().union(*(survey_variables(templates[name[i]]) for i in by_id if kind[i] == "job_template"))
    assert set(survey_variables(workflow)) <= asked, set(survey_variables(workflow)) - asked
