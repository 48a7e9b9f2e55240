"""preflight_check: docs agree with the spec, returned keys are documented, local checks, input checks."""

import datetime
import os
import shutil
import socket
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))

from _argspec import validated  # noqa: E402
from ansible_collections.prodready.deploy.plugins.modules import preflight_check  # noqa: E402
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError  # noqa: E402

DOC = yaml.safe_load(preflight_check.DOCUMENTATION)
RETURN = yaml.safe_load(preflight_check.RETURN)


class FakeModule(object):
    """What run() uses of AnsibleModule: params, get_bin_path and run_command."""

    def __init__(self, params=None):
        self.params = params

    def get_bin_path(self, name, required=False):
        return shutil.which(name)

    def run_command(self, argv, data=None, binary_data=False):
        proc = subprocess.run(argv, input=data, capture_output=True, check=False)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def params(**overrides):
    values = dict((name, spec.get("default")) for name, spec in preflight_check.argument_spec().items())
    # Report only: these tests read the checks; test_failed_checks_fail_the_task the default.
    values["fail_on_breach"] = False
    values.update(overrides)
    return values


def compare(spec, docs, where):
    assert set(docs) == set(spec), (where, set(docs) ^ set(spec))
    for name, entry in spec.items():
        doc = docs[name]
        assert doc["type"] == entry["type"], (where, name)
        assert doc.get("default") == entry.get("default"), (where, name)
        assert doc.get("choices") == entry.get("choices"), (where, name)
        assert doc.get("elements") == entry.get("elements"), (where, name)
        assert bool(doc.get("required")) == bool(entry.get("required")), (where, name)
        assert doc.get("aliases") == entry.get("aliases"), (where, name)
        assert doc.get("description"), (where, name)
        if "options" in entry:
            compare(entry["options"], doc["suboptions"], "%s.%s" % (where, name))


def test_documented_options_match_argument_spec():
    compare(preflight_check.argument_spec(), DOC["options"], "options")


def test_secrets_are_no_log():
    spec = preflight_check.argument_spec()
    assert spec["postgres"]["options"]["login_password"]["no_log"] is True
    assert spec["redis"]["options"]["login_password"]["no_log"] is True
    assert spec["redis"]["options"]["url"]["no_log"] is True


def test_examples_use_only_documented_options():
    options = DOC["options"]
    for task in yaml.safe_load(preflight_check.EXAMPLES):
        args = task.get("prodready.deploy.preflight_check")
        if args is None:
            continue
        assert set(args) <= set(options), task["name"]
        for name in ("postgres", "redis"):
            assert set(args.get(name) or {}) <= set(options[name]["suboptions"]), task["name"]


def make_cert(tmp_path, days):
    key, cert = tmp_path / ("key-%dd.pem" % days), tmp_path / ("cert-%dd.pem" % days)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", str(days), "-subj", "/CN=preflight.test"],
                   check=True, capture_output=True)
    return cert


@pytest.fixture
def app_dir(tmp_path):
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=postgresql://app:pw@db/app\nJWT_SECRET_KEY=<CHANGE_IN_PRODUCTION>\n"
                   "DEBUG=true\nAPP_ENV=production\n")
    env.chmod(0o644)
    return tmp_path


def local_params(app_dir, **overrides):
    if "tls_certs" not in overrides:
        overrides["tls_certs"] = [{"path": str(make_cert(app_dir, 5)), "host": None, "port": 443,
                                   "server_name": None, "min_days": 14, "warn_days": 30}]
    disk = [{"path": str(app_dir), "min_free_mb": 1, "max_used_percent": None}]
    values = dict(min_cpu_count=1, min_mem_mb=1, disk=disk,
                  binaries=["sh", "no-such-program-xyz"], env_file=str(app_dir / ".env"),
                  env_required=["DATABASE_URL", "JWT_SECRET_KEY"], env_forbidden={"DEBUG": [True]},
                  env_expected={"APP_ENV": "production"}, secret_files=[str(app_dir / ".env")],
                  ports_listening=[])
    values.update(overrides)
    return params(**values)


def by_name(result):
    return dict((c["name"], c) for c in result["checks"])


def test_every_returned_key_is_documented(app_dir):
    result = preflight_check.run(FakeModule(local_params(app_dir)))
    assert set(result) - {"changed"} == set(RETURN), set(result) ^ set(RETURN)
    assert set(RETURN["checks"]["contains"]) == set(result["checks"][0])
    assert result["changed"] is False


def test_local_checks_report_every_problem(app_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = preflight_check.run(FakeModule(local_params(
            app_dir, ports_free=[port], ports_bind_address="127.0.0.1",
            ports_listening=[str(port)])))
    checks = by_name(result)
    failed = [c["name"] for c in result["failed_checks"]]
    assert failed == ["binary no-such-program-xyz", "env JWT_SECRET_KEY", "env DEBUG",
                      "file %s/.env" % app_dir, "tls %s/cert-5d.pem" % app_dir,
                      "port 127.0.0.1:%d free" % port]
    assert checks["port 127.0.0.1:%d listening" % port]["status"] == "ok"
    assert checks["cpu_count"]["status"] == "ok" and checks["env APP_ENV"]["status"] == "ok"
    assert result["passed"] is False
    assert result["counts"]["fail"] == 6
    for name in failed:
        assert name in result["table"]


def test_clean_setup_passes(app_dir):
    env = app_dir / ".env"
    env.write_text("DATABASE_URL=postgresql://app:pw@db/app\nJWT_SECRET_KEY=9f8e7d\nDEBUG=false\n"
                   "APP_ENV=production\n")
    env.chmod(0o600)
    cert = make_cert(app_dir, 90)
    result = preflight_check.run(FakeModule(local_params(
        app_dir, binaries=["sh"], tls_certs=[{"path": str(cert), "host": None, "port": 443,
                                              "server_name": None, "min_days": 14, "warn_days": 30}])))
    assert result["passed"] is True, result["table"]
    assert result["counts"]["fail"] == 0


def test_openssl_fallback_reads_the_same_end_date(app_dir, monkeypatch):
    cert = make_cert(app_dir, 5)
    entry = {"path": str(cert), "host": None, "port": 443, "server_name": None}
    with_crypto = preflight_check.cert_not_after(FakeModule(), entry)
    monkeypatch.setattr(preflight_check, "HAS_CRYPTOGRAPHY", False)
    assert preflight_check.cert_not_after(FakeModule(), entry) == with_crypto
    left = (with_crypto - datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)).days
    assert left in (4, 5)


def test_unreadable_env_file_fails_once_and_skips_variables(tmp_path):
    result = preflight_check.run(FakeModule(params(env_file=str(tmp_path / "missing.env"),
                                                   env_required=["A", "B"])))
    assert [(c["name"], c["status"]) for c in result["checks"]] == [
        ("env_file %s/missing.env" % tmp_path, "fail"), ("env A", "skip"), ("env B", "skip")]


def test_missing_secret_file_and_disk_path(tmp_path):
    result = preflight_check.run(FakeModule(params(
        secret_files=[str(tmp_path / "nope.json")],
        disk=[{"path": str(tmp_path / "nope"), "min_free_mb": 1, "max_used_percent": None}])))
    assert [(c["name"], c["status"]) for c in result["checks"]] == [
        ("disk %s/nope" % tmp_path, "fail"), ("file %s/nope.json" % tmp_path, "fail")]


def test_unreachable_database_skips_its_tables_and_indexes():
    pg = dict(db="app", login_host="127.0.0.1", login_port=1, login_user="app", login_password=None,
              login_unix_socket=None, ssl_mode="disable", schema="public", tables=["users"],
              indexes=["idx_po_status"], extensions=["timescaledb"])
    result = preflight_check.run(FakeModule(params(postgres=pg)))
    assert [c["status"] for c in result["checks"]] == ["fail", "skip", "skip", "skip"]
    assert "cannot connect to PostgreSQL app@127.0.0.1:1/app" in result["checks"][0]["detail"]


def test_nothing_configured_is_an_empty_pass():
    result = preflight_check.run(FakeModule(params()))
    assert result["checks"] == [] and result["passed"] is True


@pytest.mark.parametrize("option", ["fail_on_breach", "fail_on_error"])
def test_failed_checks_fail_the_task(tmp_path, option):
    """By default (fail_on_breach, or its deprecated alias fail_on_error, true) a failed check
    fails the task with a message naming it, and the result's keys come with the failure."""
    args = dict(secret_files=[str(tmp_path / "nope.json")])
    assert validated(preflight_check, args)["fail_on_breach"] is True
    with pytest.raises(ProdreadyError) as err:
        preflight_check.run(FakeModule(validated(preflight_check, dict(args, **{option: True}))))
    assert str(err.value).startswith("preflight: 1 of 1 checks failed: file %s/nope.json" % tmp_path)
    assert err.value.details["passed"] is False
    assert [c["name"] for c in err.value.details["failed_checks"]] == ["file %s/nope.json" % tmp_path]
    report = preflight_check.run(FakeModule(validated(preflight_check, dict(args, **{option: False}))))
    assert report["passed"] is False and report["failed_checks"] == err.value.details["failed_checks"]


@pytest.mark.parametrize("overrides, fragment", [
    (dict(env_required=["A"]), "env_required is set but neither env_file nor env_values is"),
    (dict(env_forbidden={"DEBUG": [True]}), "env_forbidden is set but neither env_file nor env_values is"),
    (dict(min_cpu_count=-1), "min_cpu_count: must be 0 or more, got -1"),
    (dict(disk=[{"path": "/", "min_free_mb": None, "max_used_percent": 120}]),
     "disk[0].max_used_percent must be between 0 and 100"),
    (dict(disk=[{"path": "/", "min_free_mb": None, "max_used_percent": None}]),
     "disk[0] (/) sets neither min_free_mb nor max_used_percent"),
    (dict(ports_free=[70000]), "ports_free: 70000 is not a port"),
    (dict(ports_listening=["db:http"]), "ports_listening: 'db:http' does not end with a port"),
    (dict(env_file="/x", env_forbidden={"DEBUG": None}), "env_forbidden.DEBUG must be a value or a list"),
])
def test_bad_input_is_a_clear_error(overrides, fragment):
    with pytest.raises(ProdreadyError) as err:
        preflight_check.run(FakeModule(params(**overrides)))
    assert fragment in str(err.value)


def test_mem_total_reads_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        8167848 kB\nMemFree:  1 kB\n")
    assert preflight_check.mem_total_mb(str(meminfo)) == 7976
    meminfo.write_text("MemFree:  1 kB\n")
    with pytest.raises(ProdreadyError):
        preflight_check.mem_total_mb(str(meminfo))


def test_bind_and_connect_errors():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert preflight_check.bind_error("127.0.0.1", port)
        assert preflight_check.connect_error("127.0.0.1", port) is None
    assert preflight_check.bind_error("127.0.0.1", port) is None
    assert preflight_check.connect_error("127.0.0.1", port)
    assert os.environ is not None


def test_env_values_are_checked_like_a_file():
    result = preflight_check.run(FakeModule(params(
        env_values={"JWT_SECRET_KEY": "changeme", "DEBUG": True, "DATABASE_URL": "postgresql://s3cr3t@db/app"},
        env_required=["JWT_SECRET_KEY", "DATABASE_URL", "REDIS_URL"], env_forbidden={"DEBUG": ["true"]})))
    assert [(c["name"], c["status"], c["detail"]) for c in result["checks"]] == [
        ("env JWT_SECRET_KEY", "fail", "still a placeholder (changeme)"),
        ("env DATABASE_URL", "ok", "set"),
        ("env REDIS_URL", "fail", "missing from env_values"),
        ("env DEBUG", "fail", "must not be true")]
    assert "s3cr3t" not in repr(result)
