# -*- coding: utf-8 -*-
"""Unit tests of router_switch: docs agree with the code, the haproxy flow on a fake API."""

import json

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.prodready.deploy.plugins.modules import router_switch
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations", "rc"}


class FakeModule(object):
    def __init__(self, params, check_mode=False, diff=False):
        self.params = dict((k, v.get("default")) for k, v in router_switch.argument_spec().items())
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


class FakeApi(object):
    """A backend whose servers become UP after `ups_after` polls when healthy."""

    def __init__(self, admin, healthy, ups_after=2):
        self.admin = dict(admin)
        self.healthy = healthy
        self.ups_after = ups_after
        self.polls = 0
        self.commands = []

    def set_state(self, backend, server, state):
        self.commands.append((server, state))
        self.admin[server] = state

    def states(self, backend):
        self.polls += 1
        out = {}
        for name, adm in self.admin.items():
            if adm == "maint":
                status = "MAINT"
            elif not self.healthy[name]:
                status = "DOWN"
            elif adm == "drain":
                status = "DRAIN"
            else:
                status = "UP" if self.polls > self.ups_after or name != "green" else "DOWN"
            out[name] = dict(admin_state=adm, operational_state="running", status=status,
                             check_status="L7OK" if self.healthy[name] else "L4CON",
                             last_chk="" if self.healthy[name] else "Connection refused",
                             check_desc="")
        return out


class BackupApi(FakeApi):
    """FakeApi whose servers have addresses and that takes add/del server commands; `refuse`
    holds the verbs ("add", "del") it answers with an error."""

    def __init__(self, admin, healthy, refuse=()):
        FakeApi.__init__(self, admin, healthy, ups_after=0)
        self.refuse = refuse
        self.addresses = {"blue": "127.0.0.1:8001", "green": "127.0.0.1:8002"}

    def add_backup(self, backend, name, address):
        self.commands.append(("add", name, address))
        if "add" in self.refuse:
            raise ProdreadyError("haproxy refused add server %s/%s %s backup: Backend "
                                 "must use a dynamic load balancing" % (backend, name, address))
        self.admin[name] = "ready"
        self.healthy[name] = True
        self.addresses[name] = address

    def delete_server(self, backend, name):
        self.commands.append(("del", name))
        if "del" in self.refuse:
            self.admin[name] = "maint"
            return "Server still has connections attached to it, cannot remove it."
        del self.admin[name]
        return None

    def states(self, backend):
        out = FakeApi.states(self, backend)
        for name, srv in out.items():
            srv["address"] = self.addresses[name]
        return out


def params(**kw):
    base = dict(router="haproxy", live="green", admin_socket="/x.sock")
    base.update(kw)
    return base


def run(api, check=False, **kw):
    return router_switch.run_haproxy(FakeModule(params(**kw), check_mode=check), api=api,
                                     sleep=lambda s: None)


def test_documented_options_match_argument_spec():
    doc = yaml.safe_load(router_switch.DOCUMENTATION)
    spec = router_switch.argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, opt in spec.items():
        documented = doc["options"][name]
        assert documented.get("type", "str") == opt.get("type", "str"), name
        assert documented.get("default") == opt.get("default"), name
        assert documented.get("choices") == opt.get("choices"), name
        assert bool(documented.get("required", False)) == bool(opt.get("required", False))
    assert all(a.get("description") for a in doc["attributes"].values())
    for name, opt in doc["options"].items():
        assert all(isinstance(line, str) for line in opt["description"]), name
    for task in yaml.safe_load(router_switch.EXAMPLES):
        assert set(task["prodready.deploy.router_switch"]) <= set(doc["options"])


def test_every_returned_key_is_documented():
    documented = set(yaml.safe_load(router_switch.RETURN))
    result = run(FakeApi({"blue": "ready", "green": "maint"}, {"blue": True, "green": True}))
    assert set(result) - COMMON_RESULT_KEYS == documented - {"diff"}


def test_switch_order_and_result():
    api = FakeApi({"blue": "ready", "green": "maint"}, {"blue": True, "green": True})
    result = run(api)
    assert api.commands == [("green", "ready"), ("blue", "drain")]
    assert result["changed"] and result["previous_live"] == "blue" and result["live"] == "green"
    assert result["servers_state"]["blue"]["admin_state"] == "drain"
    again = run(api)
    assert again["changed"] is False and api.commands == [("green", "ready"), ("blue", "drain")]


def test_keep_previous_as_backup_adds_the_old_address_as_a_backup_server():
    api = BackupApi({"blue": "ready", "green": "maint"}, {"blue": True, "green": True})
    module = FakeModule(params(keep_previous_as_backup=True))
    result = router_switch.run_haproxy(module, api=api, sleep=lambda s: None)
    assert api.commands == [("green", "ready"), ("blue", "drain"),
                            ("add", "prodready-backup-blue", "127.0.0.1:8001")]
    assert result["backup_server"] == {"name": "prodready-backup-blue", "address": "127.0.0.1:8001"}
    assert result["servers_state"]["prodready-backup-blue"]["admin_state"] == "ready"
    assert module.warnings == []
    # Again with keep: nothing to do, the backup server stays.
    again = run(api, keep_previous_as_backup=True)
    assert again["changed"] is False and again["backup_server"]["name"] == "prodready-backup-blue"
    # Without keep (the end of a deploy): the backup server is deleted, nothing else is sent.
    done = run(api)
    assert done["changed"] is True and done["backup_server"] is None
    assert api.commands[3:] == [("del", "prodready-backup-blue")]
    assert set(done["servers_state"]) == {"blue", "green"}
    assert run(api)["changed"] is False


def test_switching_back_deletes_the_backup_server_and_never_drains_it():
    api = BackupApi({"blue": "drain", "green": "ready", "prodready-backup-blue": "ready"},
                    {"blue": True, "green": False, "prodready-backup-blue": True})
    api.addresses["prodready-backup-blue"] = "127.0.0.1:8001"
    result = run(api, live="blue")
    assert api.commands == [("blue", "ready"), ("green", "drain"), ("del", "prodready-backup-blue")]
    assert result["backup_server"] is None and result["live"] == "blue"


def test_a_switch_with_keep_replaces_a_backup_server_of_another_color():
    api = BackupApi({"blue": "maint", "green": "ready", "prodready-backup-blue": "maint"},
                    {"blue": True, "green": True, "prodready-backup-blue": True})
    api.addresses["prodready-backup-blue"] = "127.0.0.1:8001"
    run(api, live="blue", keep_previous_as_backup=True)
    assert api.commands[-2:] == [("del", "prodready-backup-blue"),
                                 ("add", "prodready-backup-green", "127.0.0.1:8002")]


@pytest.mark.parametrize("refuse, fragment", [
    ("add", "without a backup server (keep_previous_as_backup needs haproxy 2.4"),
    ("del", "did not delete the backup server be_app/prodready-backup-blue"),
])
def test_a_refused_backup_command_warns_and_the_switch_stands(refuse, fragment):
    admin = {"blue": "ready", "green": "maint"}
    healthy = {"blue": True, "green": True}
    if refuse == "del":
        admin["prodready-backup-blue"] = "ready"
        healthy["prodready-backup-blue"] = True
    api = BackupApi(admin, healthy, refuse=(refuse,))
    api.addresses["prodready-backup-blue"] = "127.0.0.1:8001"
    module = FakeModule(params(keep_previous_as_backup=(refuse == "add")))
    result = router_switch.run_haproxy(module, api=api, sleep=lambda s: None)
    assert result["changed"] and result["live"] == "green"
    assert result["servers_state"]["green"]["admin_state"] == "ready"
    assert len(module.warnings) == 1 and fragment in module.warnings[0]
    assert result["backup_server"] is None


def test_check_mode_reports_the_backup_server_it_would_delete():
    api = BackupApi({"blue": "maint", "green": "ready", "prodready-backup-blue": "ready"},
                    {"blue": True, "green": True, "prodready-backup-blue": True})
    api.addresses["prodready-backup-blue"] = "127.0.0.1:8001"
    result = run(api, check=True)
    assert result["changed"] is True and api.commands == []


def test_old_state_maint():
    api = FakeApi({"blue": "ready", "green": "maint"}, {"blue": True, "green": True})
    run(api, old_state="maint")
    assert api.commands[-1] == ("blue", "maint")


def test_check_mode_sends_nothing():
    api = FakeApi({"blue": "ready", "green": "maint"}, {"blue": True, "green": True})
    result = run(api, check=True)
    assert result["changed"] and result["previous_live"] == "blue" and api.commands == []


def test_never_up_restores_and_fails():
    api = FakeApi({"blue": "ready", "green": "maint"}, {"blue": True, "green": False})
    with pytest.raises(ProdreadyError) as err:
        router_switch.run_haproxy(FakeModule(params(wait_timeout=0.2)), api=api,
                                  sleep=lambda s: None,
                                  monotonic=iter([0, 0.1, 0.3, 0.3]).__next__)
    assert api.commands == [("green", "ready"), ("green", "maint")]
    assert "be_app/green did not become UP" in str(err.value)
    assert "L4CON" in str(err.value) and "Connection refused" in str(err.value)
    assert err.value.details["previous_live"] == "blue"


def test_unknown_server():
    api = FakeApi({"blue": "ready", "green": "maint"}, {"blue": True, "green": True})
    with pytest.raises(ProdreadyError) as err:
        run(api, live="red")
    assert "live: server red is not in haproxy backend be_app (servers: blue, green)" \
        == str(err.value)


@pytest.mark.parametrize("kw, fragment", [
    (dict(servers={"blue": "a:1"}), "live: green is not a key of servers"),
    (dict(servers={"green": 8001}), "servers: the address of green must be a string"),
    (dict(wait_timeout=-1), "wait_timeout"),
    (dict(keepalive=0), "keepalive"),
])
def test_bad_options(kw, fragment):
    p = FakeModule(params(**kw)).params
    with pytest.raises(ProdreadyError) as err:
        router_switch.check_options(p)
    assert fragment in str(err.value)


def test_required_if_nginx(capsys):
    with patch_module_args(dict(router="nginx", live="blue")):
        with pytest.raises(SystemExit):
            router_switch.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and "servers" in result["msg"] and "upstream_include" in result["msg"]


def test_nginx_check_mode_and_idempotence(tmp_path):
    inc = tmp_path / "upstream.conf"
    inc.write_text("upstream app_live {\n    server 127.0.0.1:1;\n    keepalive 16;\n}\n")
    servers = {"blue": "127.0.0.1:1", "green": "127.0.0.1:2"}
    module = FakeModule(dict(router="nginx", live="green", servers=servers,
                             upstream_include=str(inc)), check_mode=True, diff=True)
    result = router_switch.run_nginx(module)
    assert result["changed"] and result["previous_live"] == "blue" and not result["reloaded"]
    assert "127.0.0.1:2" in result["diff"]["after"]
    assert "127.0.0.1:1" in inc.read_text()
    module.params["live"] = "blue"
    same = router_switch.run_nginx(module)
    assert same["changed"] is False and same["previous_live"] == "blue"
