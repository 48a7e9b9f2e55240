"""The fault matrix (docs/reliability.md): each test injects a real fault into the sandbox under
a steady request loop and asserts on requests failed by the router, rows lost, the message and
the next run's convergence. The integration tests' fixtures and tools (tests/integration,
on sys.path by tests/conftest.py) serve here too."""

from apptest_fixtures import app_python, fresh_db, release_dir, run_app  # noqa: F401  pylint: disable=unused-import
