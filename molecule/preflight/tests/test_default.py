"""Testinfra checks of the preflight scenario: the role only reads, it changed nothing."""

import os

ROOT = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "preflight")


def test_bad_env_file_is_reported_not_repaired(host):
    env = host.file(os.path.join(ROOT, "bad", "shared", ".env"))
    assert env.mode == 0o644
    assert "JWT_SECRET_KEY=<CHANGE_IN_PRODUCTION>\n" in env.content_string
    assert "DEBUG=true\n" in env.content_string


def test_good_env_file_untouched(host):
    env = host.file(os.path.join(ROOT, "good", "shared", ".env"))
    assert env.mode == 0o600
    assert env.content_string.splitlines()[0] == "DATABASE_URL=postgresql://app@127.0.0.1/app"


def test_nothing_else_was_written(host):
    for root in ("good", "bad"):
        listing = host.check_output("find %s -mindepth 1 -printf '%%P\\n'", os.path.join(ROOT, root))
        assert sorted(listing.splitlines()) == ["shared", "shared/.env", "tls.key", "tls.pem"], root
