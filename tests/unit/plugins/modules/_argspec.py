"""Module parameters as Ansible validates them: aliases resolved, defaults set, deprecated
aliases reported. For tests that check an option and its old name mean the same."""

from types import SimpleNamespace

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


def validate_args(module, args, **checks):
    """ansible-core's validation of `args` against `module.argument_spec()` (the
    ValidationResult: validated_parameters, errors, _deprecations)."""
    return ArgumentSpecValidator(module.argument_spec(), **checks).validate(dict(args))


def validated(module, args, **checks):
    """`args` as the module's run() would see them; fails the test on a validation error."""
    result = validate_args(module, args, **checks)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def deprecated_aliases_used(module, args):
    """Names of the deprecated aliases Ansible warns about for `args`."""
    return sorted(d["msg"].split("'")[1] for d in validate_args(module, args)._deprecations)


def fake_module(module, args, check_mode=False, diff=False, **checks):
    """What the modules' run() reads of AnsibleModule, with `args` validated."""
    return SimpleNamespace(params=validated(module, args, **checks), check_mode=check_mode, _diff=diff)
