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

    def __init__(self, admin, healthy, ups_after=2, refuse=()):
        self.admin = dict(admin)
        self.healthy = healthy
        self.ups_after = ups_after
        self.polls = 0
        self.commands = []
        self.batches = []
        self.refuse = refuse

    def set_states(self, backend, plan):
        self.batches.append(list(plan))
        refused = []
        for server, state in plan:
            self.commands.append((server, state))
            if (server, state) in self.refuse:
                refused.append("set server %s/%s state %s: Permission denied" % (backend, server, state))
                continue
            self.admin[server] = state
        return refused

    def set_state(self, backend, server, state):
        assert not self.set_states(backend, [(server, state)])

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
        self.refuse_backup = refuse
        self.addresses = {"blue": "127.0.0.1:8001", "green": "127.0.0.1:8002"}

    def add_backup(self, backend, name, address):
        self.commands.append(("add", name, address))
        if "add" in self.refuse_backup:
            raise ProdreadyError("haproxy refused add server %s/%s %s backup: Backend "
                                 "must use a dynamic load balancing" % (backend, name, address))
        self.admin[name] = "ready"
        self.healthy[name] = True
        self.addresses[name] = address

    def delete_server(self, backend, name):
        self.commands.append(("del", name))
        if "del" in self.refuse_backup:
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


def run(api, check=False, clock=None, **kw):
    extra = dict(clock=clock) if clock else {}
    return router_switch.run_haproxy(FakeModule(params(**kw), check_mode=check), api=api,
                                     sleep=lambda s: None, **extra)


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
    maint_only = {"checked_up", "waited_up_s"}
    assert set(result) - COMMON_RESULT_KEYS == documented - {"diff", "upstream_address", "observed"} - maint_only
    maint = run(FakeApi({"blue": "ready", "green": "maint"}, {"blue": True, "green": True}), state="maint", live=None)
    assert maint_only <= set(maint) and set(maint) - COMMON_RESULT_KEYS <= documented


def test_observed_reads_what_serves_and_sends_nothing():
    api = BackupApi({"blue": "drain", "green": "ready", "prodready-backup-blue": "ready"},
                    {"blue": True, "green": True, "prodready-backup-blue": True})
    api.addresses["prodready-backup-blue"] = "127.0.0.1:8001"
    result = run(api, state="observed", live=None, servers={"blue": None, "green": None})
    assert api.commands == [] and result["changed"] is False
    assert result["live"] == ["green"]
    assert result["backup_server"] == [{"name": "prodready-backup-blue", "address": "127.0.0.1:8001"}]
    assert set(result["servers_state"]) == {"blue", "green", "prodready-backup-blue"}


def test_observed_reports_a_missing_server_as_missing_not_as_an_error():
    api = FakeApi({"blue": "ready"}, {"blue": True})
    result = run(api, state="observed", live=None, servers={"blue": None, "green": None})
    assert result["live"] == ["blue"] and set(result["servers_state"]) == {"blue"}


def test_observed_nginx_names_the_server_the_include_points_at(tmp_path):
    include = tmp_path / "up.conf"
    include.write_text("upstream app_live {\n    server 127.0.0.1:8002;\n    keepalive 16;\n}\n")
    module = FakeModule(dict(router="nginx", state="observed", live=None, upstream_include=str(include),
                             servers={"blue": "127.0.0.1:8001", "green": "127.0.0.1:8002"}))
    result = router_switch.observe_nginx(module.params)
    assert (result["live"], result["upstream_address"], result["changed"]) == ("green", "127.0.0.1:8002", False)
    assert router_switch.observe_nginx(dict(module.params, upstream_include=str(tmp_path / "none")))["live"] is None


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


@pytest.mark.parametrize("kw, message", [
    (dict(servers={"blue": "a:1"}), "live: green is not a key of servers (blue)"),
    (dict(router="nginx", servers={"green": 8001}),
     "servers: the address of green must be a string host:port, got 8001"),
    (dict(servers={"green": 8001}), "servers: the value of green must be a host:port string or null "
                                    "(with router=haproxy only the names matter), got 8001"),
    (dict(servers={}), "servers: empty; name the servers of this deploy"),
    (dict(live=["h1-green", "h2-green"], servers={"h1-green": None, "h1-blue": None}),
     "live: h2-green is not a key of servers (h1-blue, h1-green)"),
    (dict(live=[]), "live: the list of servers is empty"),
    (dict(live=["a", "a"]), "live: ['a', 'a'] names a server twice"),
    (dict(live=["a", 3]), "live: must be a server name or a list of server names, got ['a', 3]"),
    (dict(live={"a": 1}), "live: must be a server name or a list of server names, got {'a': 1}"),
    (dict(live=""), "live: must be a server name or a list of server names, got ''"),
    (dict(live="a;set server be_app/b state maint"), "live: 'a;set server be_app/b state maint' is not a "
                                                     "haproxy name"),
    (dict(servers={"green": None, "blue green": None}), "servers: 'blue green' is not a haproxy name"),
    (dict(backend="be app"), "backend: 'be app' is not a haproxy name"),
    (dict(live="prodready-backup-blue"), "live: prodready-backup-blue is the name of a runtime backup server"),
    (dict(router="nginx", live=["blue"], servers={"blue": "a:1"}, upstream_include="/x"),
     "live: a list of servers needs router=haproxy"),
    (dict(router="nginx", state="maint", live=None, servers={"blue": "a:1"}, upstream_include="/x"),
     "state: maint needs router=haproxy"),
    (dict(state="observed"), "live: not used with state=observed"),
    (dict(admin_socket=None, admin_address="unix@/run/x.sock"),
     "admin_address: 'unix@/run/x.sock' has an address prefix"),
    (dict(admin_socket=None, admin_address="lb1"), "admin_address: 'lb1' is not host:port"),
    (dict(wait_timeout=-1), "wait_timeout: must be 0 or more, got -1"),
    (dict(keepalive=0), "keepalive: must be 1 or more, got 0"),
])
def test_bad_options_name_the_option_and_the_value(kw, message):
    p = FakeModule(params(**kw)).params
    with pytest.raises(ProdreadyError) as err:
        router_switch.validate(p)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("kw", [
    dict(servers={"blue": None, "green": ""}),
    dict(servers={"blue": "127.0.0.1:1", "green": None}),
    dict(live=["h1-green", "h2-green"]),
    dict(state="maint", live=None, servers={"blue": None}),
    dict(state="ready", live=["blue"]),
    dict(admin_socket=None, admin_address="ipv4@127.0.0.1:9999"),
])
def test_good_options(kw):
    router_switch.validate(FakeModule(params(**kw)).params)


@pytest.mark.parametrize("args, fragment", [
    (dict(router="haproxy", live="green"), "router is haproxy but any of the following are missing: admin_socket, admin_address"),
    (dict(router="haproxy", live="green", admin_socket="/x", admin_address="lb1:1"),
     "parameters are mutually exclusive: admin_socket|admin_address"),
    (dict(router="haproxy", admin_socket="/x"), "state is live but all of the following are missing: live"),
    (dict(router="haproxy", state="ready", admin_socket="/x"), "state is ready but all of the following"),
])
def test_required_and_exclusive_options(capsys, args, fragment):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            router_switch.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and fragment in result["msg"], result["msg"]


# ---------------------------------------------------------------- shared backend, fleet

def fleet_api(admin=None, healthy=None, **kw):
    """A backend shared by three app hosts: h1..h3, blue serving, green in maint."""
    admin = admin or dict(sum([[("h%d-blue" % n, "ready"), ("h%d-green" % n, "maint")]
                               for n in (1, 2, 3)], []))
    healthy = dict(dict.fromkeys(admin, True), **(healthy or {}))
    return BackupApi(admin, healthy, **kw)


def with_addresses(api):
    for name in api.admin:
        api.addresses.setdefault(name, "10.0.0.%s:80%02d" % (name[1], len(name)))
    return api


def test_a_switch_with_servers_touches_only_those_servers():
    api = with_addresses(fleet_api())
    api.admin["prodready-backup-h2-blue"] = "ready"
    api.healthy["prodready-backup-h2-blue"] = True
    api.addresses["prodready-backup-h2-blue"] = "10.0.0.2:8001"
    before = dict(api.admin)
    result = run(api, live="h1-green", servers={"h1-blue": None, "h1-green": None})
    assert api.batches == [[("h1-green", "ready")], [("h1-blue", "drain")]]
    assert result["previous_live"] == "h1-blue" and result["backup_server"] is None
    assert set(result["servers_state"]) == {"h1-blue", "h1-green"}
    assert dict((k, v) for k, v in api.admin.items() if not k.startswith("h1-")) == \
        dict((k, v) for k, v in before.items() if not k.startswith("h1-"))
    # h2 still has two servers ready: not a reason to call h1 "not live"
    again = run(api, live="h1-green", servers={"h1-blue": None, "h1-green": None})
    assert again["changed"] is False and again["previous_live"] == "h1-green"


def test_without_servers_the_whole_backend_takes_part():
    api = with_addresses(fleet_api())
    result = run(api, live="h1-green")
    # every other server of the backend, the other hosts' too (in maint ones included, as ever)
    assert api.batches[1] == [("h1-blue", "drain"), ("h2-blue", "drain"), ("h2-green", "drain"),
                              ("h3-blue", "drain"), ("h3-green", "drain")]
    assert result["previous_live"] == "h1-blue"


def test_fleet_switch_in_two_batches_and_list_results():
    api = with_addresses(fleet_api())
    greens = ["h1-green", "h2-green", "h3-green"]
    result = run(api, live=greens, servers=dict.fromkeys(api.admin), keep_previous_as_backup=True)
    assert api.batches[:2] == [[(name, "ready") for name in greens],
                               [(name.replace("green", "blue"), "drain") for name in greens]]
    assert result["live"] == greens and result["previous_live"] == ["h1-blue", "h2-blue", "h3-blue"]
    assert [b["name"] for b in result["backup_server"]] == [
        "prodready-backup-h1-blue", "prodready-backup-h2-blue", "prodready-backup-h3-blue"]
    assert result["switch_ms"] >= 0 and result["at"].endswith("Z")
    everyone = ["h%d-%s" % (n, c) for n in (1, 2, 3) for c in ("blue", "green")]
    back = run(api, live=result["previous_live"], servers=dict.fromkeys(everyone))
    assert back["previous_live"] == greens and back["backup_server"] == []
    assert [c for c in api.commands if c[0] == "del"] == [("del", "prodready-backup-h%d-blue" % n) for n in (1, 2, 3)]


def test_fleet_switch_one_server_never_up_puts_every_one_back():
    api = with_addresses(fleet_api(healthy={"h2-green": False}))
    api.admin["h3-green"] = "drain"
    greens = ["h1-green", "h2-green", "h3-green"]
    with pytest.raises(ProdreadyError) as err:
        router_switch.run_haproxy(FakeModule(params(live=greens, wait_timeout=0.2)), api=api,
                                  sleep=lambda s: None, monotonic=iter([0, 0.1, 0.3]).__next__)
    assert api.batches == [[(name, "ready") for name in greens],
                           [("h1-green", "maint"), ("h2-green", "maint"), ("h3-green", "drain")]]
    msg = str(err.value)
    assert msg.startswith("haproxy: 1 of 3 servers did not become UP within 0.3 s: be_app/h2-green status DOWN, "
                          "check L4CON (Connection refused)")
    assert "h1-green maint, h2-green maint, h3-green drain" in msg
    assert err.value.details["previous_live"] == ["h1-blue", "h2-blue", "h3-blue"]
    assert err.value.details["servers_state"]["h1-blue"]["admin_state"] == "ready"


class DyingApi(FakeApi):
    """Answers the first read, then the runtime API stops answering reads."""

    def states(self, backend):
        if self.polls >= 1:
            raise ProdreadyError("admin_address: cannot run 'show servers state be_app' on haproxy's admin "
                                 "address 10.0.0.5:9999: timed out")
        return FakeApi.states(self, backend)


def test_a_runtime_api_lost_during_the_wait_puts_back_and_says_so():
    api = DyingApi({"blue": "ready", "green": "maint"}, {"blue": True, "green": True})
    with pytest.raises(ProdreadyError) as err:
        run(api)
    assert api.batches == [[("green", "ready")], [("green", "maint")]]
    assert str(err.value) == ("admin_address: cannot run 'show servers state be_app' on haproxy's admin address "
                              "10.0.0.5:9999: timed out; the servers' states could not be read back: admin_address: "
                              "cannot run 'show servers state be_app' on haproxy's admin address 10.0.0.5:9999: "
                              "timed out")
    assert err.value.details["previous_live"] == "blue" and err.value.details["servers_state"] == {}


def test_a_drain_haproxy_refuses_fails_the_switch_saying_both_serve():
    api = with_addresses(fleet_api(refuse=()))
    api.refuse = (("h1-blue", "drain"),)
    with pytest.raises(ProdreadyError) as err:
        run(api, live="h1-green", servers={"h1-blue": None, "h1-green": None})
    assert "haproxy: h1-green serves, but haproxy refused to take the others out of rotation" in str(err.value)
    assert "set server be_app/h1-blue state drain: Permission denied" in str(err.value)
    assert err.value.details["live"] == "h1-green"


def test_maint_one_batch_with_the_backup_servers_of_its_servers_only():
    api = with_addresses(fleet_api())
    for name in ("prodready-backup-h1-blue", "prodready-backup-h2-blue"):
        api.admin[name], api.healthy[name] = "ready", True
        api.addresses[name] = "10.0.0.9:1"
    check = run(api, check=True, state="maint", live=None, servers={"h1-blue": None, "h1-green": None})
    assert check["changed"] and api.batches == []
    result = run(api, state="maint", live=None, servers={"h1-blue": None, "h1-green": None},
                 clock=lambda: 1796117400.25)
    assert api.batches == [[("h1-blue", "maint"), ("prodready-backup-h1-blue", "maint")]]
    assert result["at"] == "2026-12-01T09:30:00.250000Z" and result["changed"]
    assert result["previous_live"] == ["h1-blue"] and result["live"] == [] and result["backup_server"] == []
    assert set(result["servers_state"]) == {"h1-blue", "h1-green", "prodready-backup-h1-blue"}
    assert api.admin["prodready-backup-h2-blue"] == "ready" and api.admin["h2-blue"] == "ready"
    again = run(api, state="maint", live=None, servers={"h1-blue": None, "h1-green": None})
    assert again["changed"] is False and len(api.batches) == 1
    everything = run(api, state="maint", live=None)
    assert len(api.batches) == 2 and set(api.admin.values()) == {"maint"} and everything["changed"]


def test_ready_puts_back_only_the_named_servers():
    api = with_addresses(fleet_api(admin={"blue": "maint", "green": "maint", "h2-blue": "maint"}))
    result = run(api, state="ready", live="blue", servers={"blue": None, "green": None})
    assert api.batches == [[("blue", "ready")]]
    assert api.admin == {"blue": "ready", "green": "maint", "h2-blue": "maint"}
    assert result["live"] == "blue" and result["previous_live"] is None and result["changed"]
    assert run(api, state="ready", live="blue")["changed"] is False


def test_ready_fails_naming_the_server_not_up_and_leaves_it_ready():
    api = with_addresses(fleet_api(admin={"blue": "maint", "green": "maint"}, healthy={"blue": False}))
    with pytest.raises(ProdreadyError) as err:
        router_switch.run_haproxy(FakeModule(params(state="ready", live=["blue"], wait_timeout=0.2)), api=api,
                                  sleep=lambda s: None, monotonic=iter([0, 0.1, 0.1, 0.3]).__next__)
    assert str(err.value).startswith("haproxy: be_app/blue ready but not UP within 0.3 s: blue status DOWN")
    assert api.admin["blue"] == "ready" and err.value.details["live"] == ["blue"]


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


def test_maint_with_live_checks_the_next_server_up_before_traffic_stops():
    """A restore's target in maint is drained (haproxy checks it, no new request reaches it)
    until it is UP, then every other server goes to maint: made ready it serves at once."""
    api = FakeApi({"blue": "ready", "green": "maint"}, {"blue": True, "green": True}, ups_after=0)
    result = run(api, state="maint", live="green")
    assert api.batches == [[("green", "drain")], [("blue", "maint")]]
    assert api.admin == {"blue": "maint", "green": "drain"}
    assert result["checked_up"] == ["green"] and result["changed"] and result["previous_live"] == ["blue"]
    # already checked (drained and UP): the one batch; the live server itself drains
    api = FakeApi({"blue": "ready", "green": "drain"}, {"blue": True, "green": True}, ups_after=0)
    run(api, state="maint", live="green")
    assert api.batches == [[("blue", "maint")]]
    api = FakeApi({"blue": "ready", "green": "drain"}, {"blue": True, "green": True}, ups_after=0)
    run(api, state="maint", live="blue")
    assert api.batches == [[("blue", "drain"), ("green", "maint")]]


def test_maint_with_live_not_up_stops_no_traffic_and_names_the_check():
    api = FakeApi({"blue": "ready", "green": "maint"}, {"blue": True, "green": False}, ups_after=0)
    with pytest.raises(ProdreadyError) as err:
        run(api, state="maint", live="green", wait_timeout=0.05)
    text = str(err.value)
    assert text.startswith("haproxy: traffic was not stopped: be_app/green, which must take the traffic "
                           "after the maintenance, is not UP within ")
    assert "green status DOWN, check L4CON (Connection refused)" in text
    assert api.batches == [[("green", "drain")], [("green", "maint")]]
    assert api.admin == {"blue": "ready", "green": "maint"}
