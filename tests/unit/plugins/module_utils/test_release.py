# -*- coding: utf-8 -*-
"""Unit tables for _release: artifact id, marker decisions, tar member checks, uv/pip argv,
credentials in pip arguments."""

import json

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _release
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

SHA = "9f2c4e0d8b1a7c3e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6"
F, D, S, H, X = _release.FILE, _release.DIR, _release.SYMLINK, _release.HARDLINK, _release.SPECIAL


@pytest.mark.parametrize("given, expected", [
    ("", ""),
    ("  ", ""),
    (None, ""),
    (SHA, SHA),
    (SHA.upper(), SHA),
    ("sha256:" + SHA, SHA),
    ("  %s\n" % SHA, SHA),
])
def test_normalize_sha256(given, expected):
    assert _release.normalize_sha256(given) == expected


@pytest.mark.parametrize("given", ["abc", SHA[:-1], SHA + "0", "md5:" + SHA, SHA[:-1] + "g"])
def test_normalize_sha256_refuses_what_is_not_a_digest(given):
    with pytest.raises(ProdreadyError, match="sha256: .* is not a sha256 digest"):
        _release.normalize_sha256(given)


@pytest.mark.parametrize("artifact_type, digest, requirement, expected", [
    ("tarball", SHA, "", SHA),
    ("tarball", SHA, "ignored==1", SHA),
    ("pip", None, " myapp==1.4.0 ", "myapp==1.4.0"),
])
def test_artifact_id(artifact_type, digest, requirement, expected):
    assert _release.artifact_id(artifact_type, digest, requirement) == expected


def test_sha256_mismatch_message_names_both_values():
    msg = _release.sha256_mismatch_message("/srv/a.tgz", "a" * 64, "b" * 64)
    assert "a" * 64 in msg and "b" * 64 in msg and "/srv/a.tgz" in msg and "refusing" in msg


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b"\xff", b'{"version": "1"}', b'{"artifact": 3}'])
def test_parse_marker_refuses_what_is_not_a_release_record(data):
    with pytest.raises(ProdreadyError, match="is not a release record"):
        _release.parse_marker(data, "/r/.release.json")


def test_marker_round_trip_and_absent():
    record = _release.make_marker("1.4.0", "tarball", SHA, "2026-12-06T10:00:00Z", "uv", "3.11.7", "/r/.venv")
    assert _release.parse_marker(_release.render_marker(record), "m") == record
    assert set(record) >= {"version", "artifact", "built_at", "installer", "python_version"}
    assert _release.parse_marker(None, "m") is None


def test_marker_of_the_former_release_tasks_is_understood():
    # blue_green's release.yml wrote {version, artifact, built_at}: such releases are reused.
    old = json.dumps({"version": "1.0.0", "artifact": SHA, "built_at": "2026-11-01T00:00:00+00:00"}).encode()
    assert _release.decide(_release.parse_marker(old, "m"), SHA, True) == _release.REUSE


@pytest.mark.parametrize("marker, artifact, venv_ready, action", [
    (None, SHA, False, _release.BUILD),
    (None, SHA, True, _release.BUILD),
    ({"artifact": SHA}, SHA, True, _release.REUSE),
    ({"artifact": SHA}, SHA, False, _release.REBUILD),
    ({"artifact": "c" * 64}, SHA, True, _release.CONFLICT),
    ({"artifact": "c" * 64}, SHA, False, _release.CONFLICT),
    ({"artifact": "myapp==1.0"}, "myapp==1.1", True, _release.CONFLICT),
])
def test_decide(marker, artifact, venv_ready, action):
    assert _release.decide(marker, artifact, venv_ready) == action


def test_conflict_message():
    msg = _release.conflict_message("1.4.0", "/srv/app/releases/1.4.0", "A" * 64, "B" * 64)
    assert msg == ("release 1.4.0 already exists in /srv/app/releases/1.4.0 built from %s, and the artifact "
                   "now is %s: a version must not change content; deploy it under a new version"
                   % ("A" * 64, "B" * 64))


@pytest.mark.parametrize("members, strip, kept", [
    ([("app/x.py", F, ""), ("requirements.txt", F, "")], 0, ["app/x.py", "requirements.txt"]),
    ([("./app/x.py", F, ""), (".", D, ""), ("./", D, "")], 0, ["app/x.py"]),
    ([("app", D, ""), ("app/link", S, "x.py"), ("app/x.py", F, "")], 0, ["app", "app/link", "app/x.py"]),
    ([("app/up", S, "../README"), ("README", F, "")], 0, ["app/up", "README"]),
    ([("a/b/c", S, "../../d")], 0, ["a/b/c"]),
    ([("hard", H, "app/x.py"), ("app/x.py", F, "")], 0, ["hard", "app/x.py"]),
    ([("myapp-1.0", D, ""), ("myapp-1.0/app.py", F, ""), ("myapp-1.0/req.txt", F, "")], 1, ["app.py", "req.txt"]),
    ([("myapp-1.0/l", H, "myapp-1.0/app.py"), ("myapp-1.0/app.py", F, "")], 1, ["l", "app.py"]),
    ([("top.txt", F, ""), ("d/e/f.txt", F, "")], 2, ["f.txt"]),
])
def test_plan_members_keeps_safe_members(members, strip, kept):
    planned, problems = _release.plan_members(members, strip)
    assert problems == []
    assert [entry[1] for entry in planned] == kept


def test_plan_members_renames_hard_link_targets_when_stripping():
    planned = _release.plan_members([("p/l", H, "p/a.py"), ("p/a.py", F, "")], 1)[0]
    assert planned[0] == (0, "l", "a.py")


@pytest.mark.parametrize("members, strip, problem", [
    ([("../evil", F, "")], 0, "'../evil' (a '..' in its path)"),
    ([("app/../../evil", F, "")], 0, "(a '..' in its path)"),
    ([("/etc/cron.d/x", F, "")], 0, "'/etc/cron.d/x' (an absolute path)"),
    ([("link", S, "/etc/passwd")], 0, "'link' (a symlink to '/etc/passwd', outside the release)"),
    ([("link", S, "../outside")], 0, "a symlink to '../outside', outside"),
    ([("a/link", S, "../../outside")], 0, "outside the release"),
    ([("hard", H, "/etc/shadow")], 0, "'hard' (a hard link to '/etc/shadow', outside the release)"),
    ([("hard", H, "../x")], 0, "a hard link to '../x'"),
    ([("p/hard", H, "top")], 1, "a hard link to 'top'"),
    ([("dev", X, "")], 0, "'dev' (a device or fifo)"),
    ([("d", S, "."), ("d/x", F, "")], 0, "'d/x' (below the symlink 'd')"),
    # the lexical check alone would pass d/b/c (d/b is the release root, c's target is its parent)
    ([("d/b", S, ".."), ("d/b/c", S, "..")], 0, "'d/b/c' (below the symlink 'd/b')"),
])
def test_plan_members_refuses_unsafe_members(members, strip, problem):
    problems = _release.plan_members(members, strip)[1]
    assert any(problem in p for p in problems), problems


def test_unsafe_members_message_lists_them_with_a_limit():
    problems = ["'m%d' (a '..' in its path)" % i for i in range(13)]
    msg = _release.unsafe_members_message("/a.tgz", problems)
    assert msg.startswith("artifact /a.tgz has members that would be written outside the release directory: 'm0'")
    assert "'m9'" in msg and "'m10'" not in msg and "and 3 more; refusing to unpack it" in msg


@pytest.mark.parametrize("requested, artifact_type, default_exists, files", [
    (None, "tarball", True, ["requirements.txt"]),
    (None, "tarball", False, []),
    (None, "pip", True, []),
    ([], "tarball", True, []),
    (["req/prod.txt", "/abs/extra.txt"], "tarball", False, ["req/prod.txt", "/abs/extra.txt"]),
])
def test_requirement_files(requested, artifact_type, default_exists, files):
    assert _release.requirement_files(requested, artifact_type, default_exists) == files


@pytest.mark.parametrize("pip_args, unsupported", [
    ([], []),
    (["--no-index", "--find-links", "/srv/wheels"], []),
    (["--no-index", "--find-links=/srv/wheels"], []),
    (["-f/srv/wheels", "-i", "https://u:p@idx/simple"], []),
    (["--index-url", "https://idx/simple", "--extra-index-url", "https://idx2/simple", "--pre"], []),
    (["--trusted-host", "idx", "--no-deps", "--require-hashes", "--compile", "-q"], []),
    (["--timeout", "5"], ["--timeout"]),
    (["--prefer-binary", "--no-index", "--retries=3"], ["--prefer-binary", "--retries"]),
    (["--user"], ["--user"]),
    (["--progress-bar", "off"], ["--progress-bar"]),
])
def test_uv_unsupported(pip_args, unsupported):
    assert _release.uv_unsupported(pip_args) == unsupported


@pytest.mark.parametrize("requested, uv_bin, pip_args, installer, why", [
    ("auto", "/usr/bin/uv", [], "uv", "uv found at /usr/bin/uv"),
    ("auto", None, [], "pip", "uv not found"),
    ("auto", "/usr/bin/uv", ["--prefer-binary"], "pip", "uv does not take the pip_args --prefer-binary"),
    ("pip", "/usr/bin/uv", [], "pip", "installer=pip"),
    ("uv", "/usr/bin/uv", ["--no-index"], "uv", "installer=uv"),
])
def test_choose_installer(requested, uv_bin, pip_args, installer, why):
    assert _release.choose_installer(requested, uv_bin, pip_args) == (installer, why)


@pytest.mark.parametrize("uv_bin, pip_args, match", [
    (None, [], "installer: uv was asked for but not found"),
    ("/usr/bin/uv", ["--timeout", "3"], "installer: uv does not take the pip_args --timeout"),
])
def test_choose_installer_refuses_uv_it_cannot_honour(uv_bin, pip_args, match):
    with pytest.raises(ProdreadyError, match=match):
        _release.choose_installer("uv", uv_bin, pip_args)


def test_venv_argv():
    assert _release.venv_argv("uv", "/bin/uv", "/usr/bin/python3", "/r/.venv") == [
        "/bin/uv", "venv", "--no-project", "--no-python-downloads", "--python", "/usr/bin/python3", "/r/.venv"]
    assert _release.venv_argv("pip", None, "/usr/bin/python3", "/r/.venv") == [
        "/usr/bin/python3", "-m", "venv", "/r/.venv"]


@pytest.mark.parametrize("installer, requirements, constraints, requirement, expected", [
    ("uv", ["requirements.txt"], [], None,
     ["/bin/uv", "pip", "install", "--python", "/r/.venv/bin/python", "--no-index", "-f", "/w",
      "-r", "requirements.txt"]),
    ("pip", ["requirements.txt"], ["c.txt"], None,
     ["/r/.venv/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index", "-f", "/w",
      "-r", "requirements.txt", "-c", "c.txt"]),
    ("uv", [], ["/abs/c.txt"], "myapp==1.4.0",
     ["/bin/uv", "pip", "install", "--python", "/r/.venv/bin/python", "--no-index", "-f", "/w",
      "-c", "/abs/c.txt", "myapp==1.4.0"]),
    ("pip", ["a.txt", "b.txt"], [], None,
     ["/r/.venv/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index", "-f", "/w",
      "-r", "a.txt", "-r", "b.txt"]),
])
def test_install_argv(installer, requirements, constraints, requirement, expected):
    argv = _release.install_argv(installer, "/bin/uv", "/r/.venv/bin/python", ["--no-index", "-f", "/w"],
                                 requirements, constraints, requirement)
    assert argv == expected


@pytest.mark.parametrize("text, redacted", [
    ("--index-url https://deploy:s3cret@pypi.example/simple", "--index-url https://********@pypi.example/simple"),
    ("https://__token__:pypi-AgEIcHlwaS5vcmc@idx/simple/", "https://********@idx/simple/"),
    ("git+https://ghp_abc123@github.example/o/r.git", "git+https://********@github.example/o/r.git"),
    ("--find-links /srv/wheels", "--find-links /srv/wheels"),
    ("https://idx/simple/pkg@1.0", "https://idx/simple/pkg@1.0"),
    ("mail me: ops@example.com", "mail me: ops@example.com"),
    ("a https://u:p@h1/ and https://v:q@h2/", "a https://********@h1/ and https://********@h2/"),
])
def test_redact(text, redacted):
    assert _release.redact(text) == redacted


def test_secrets_in_pip_args():
    args = ["--index-url", "https://deploy:s3cret@pypi.example/simple", "--extra-index-url",
            "https://tok3n@other/simple", "--no-index"]
    assert _release.secrets_in(args) == {"deploy:s3cret", "s3cret", "tok3n"}
    assert _release.secrets_in([]) == set() and _release.secrets_in(None) == set()


def test_command_line_and_tail_are_redacted():
    argv = ["pip", "install", "-i", "https://u:pw@h/simple"]
    assert _release.command_line(argv) == "pip install -i https://********@h/simple"
    output = "\n".join("line %d" % i for i in range(30)) + "\n\nERROR: from https://u:pw@h/simple\n\n"
    tail = _release.tail(output, lines=3)
    assert tail == "line 28\nline 29\nERROR: from https://********@h/simple"
    assert _release.tail("") == "" and _release.tail(None) == ""


@pytest.mark.parametrize("text, version", [
    ("home = /usr/bin\nimplementation = CPython\nuv = 0.13.9\nversion_info = 3.11.7\n", "3.11.7"),
    ("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n", "3.11.2"),
    ("home=/usr/bin\nVersion = 3.12.1", "3.12.1"),
    ("home = /usr/bin\n", None),
    ("", None),
])
def test_parse_pyvenv_cfg(text, version):
    assert _release.parse_pyvenv_cfg(text) == version
