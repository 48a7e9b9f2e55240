"""Helpers for module unit tests: documented options and return keys vs the code."""

import importlib

import yaml


def _documented(module, key):
    """The `key` section (options, attributes) of DOCUMENTATION merged with its doc fragments'."""
    doc = yaml.safe_load(module.DOCUMENTATION)
    merged = dict(doc.get(key) or {})
    for fragment in doc.get("extends_documentation_fragment") or []:
        name = fragment.split(".")[-1]
        frag = importlib.import_module(
            "ansible_collections.prodready.deploy.plugins.doc_fragments." + name)
        merged.update(yaml.safe_load(frag.ModuleDocFragment.DOCUMENTATION).get(key) or {})
    return merged


def documented_options(module):
    """Options of DOCUMENTATION merged with its doc fragments."""
    return _documented(module, "options")


def documented_attributes(module):
    """Attributes of DOCUMENTATION merged with its doc fragments (platform comes from one)."""
    return _documented(module, "attributes")


def documented_returns(module):
    return set(yaml.safe_load(module.RETURN))


def assert_spec_matches_docs(module, spec):
    options = documented_options(module)
    assert set(options) == set(spec), "options differ: %s" % (set(options) ^ set(spec))
    for name, spec_item in spec.items():
        doc_item = options[name]
        assert doc_item.get("type", "str") == spec_item.get("type", "str"), name
        assert doc_item.get("default") == spec_item.get("default"), name
        assert doc_item.get("choices") == spec_item.get("choices"), name
        assert doc_item.get("elements") == spec_item.get("elements"), name
        assert sorted(doc_item.get("aliases") or []) == sorted(spec_item.get("aliases") or []), name


# Keys every module result may carry that RETURN does not document (added by Ansible).
ANSIBLE_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations",
                "exception", "_ansible_no_log", "skipped", "_stdout"}


def assert_documented(module, result):
    undocumented = set(result) - documented_returns(module) - ANSIBLE_KEYS
    assert not undocumented, "returned but not in RETURN: %s" % sorted(undocumented)


class FakeModule(object):
    """The bits of AnsibleModule the modules' run() uses, with real subprocess calls."""

    def __init__(self, params, spec, check_mode=False):
        self.params = dict((k, v.get("default")) for k, v in spec.items())
        self.params.update(params)
        self.check_mode = check_mode
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)

    def get_bin_path(self, name, required=False, opt_dirs=None):
        import shutil
        for d in opt_dirs or []:
            import os
            if os.path.exists(os.path.join(d, name)):
                return os.path.join(d, name)
        return shutil.which(name)

    def run_command(self, argv, environ_update=None, data=None, binary_data=False, cwd=None):
        import os
        import subprocess
        env = dict(os.environ)
        env.update(environ_update or {})
        if data is not None and not binary_data:
            data += "\n"
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, input=data, cwd=cwd, check=False)
        return proc.returncode, proc.stdout, proc.stderr
