"""Fixtures for integration tests that run the sample app against the sandbox."""

from apptest_fixtures import app_python, fresh_db, release_dir, run_app  # noqa: F401  pylint: disable=unused-import
