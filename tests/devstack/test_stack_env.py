"""The development and test stacks run every process with ENVIRONMENT=dev (secrets generated
once in the workdir), the web trusted to name the client, and, on test stacks, the
per-client rate limits lifted (every test client is 127.0.0.1); `guichet-dev run` keeps the
services' own limits."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import create_async_engine

from devstack.stack import Stack
from devstack.stack_migrations import migrate_all, migrations_package
from guichet_runtime import revisions
from guichet_runtime.migrations import migrations_dir


def test_every_process_of_the_stack_runs_in_dev(tmp_path):
    stack = Stack(tmp_path, "127.0.0.1:9")
    stack._define()
    for name in ("intake", "assignment", "notification", "web", "adapter-caf"):
        env = stack.processes[name].env
        assert env["ENVIRONMENT"] == "dev", name
        assert env["SECRETS_DIR"] == str(tmp_path / "secrets"), name
        assert "127.0.0.1/32" in json.loads(env["TRUSTED_PROXIES"]), name
    limits = json.loads(stack.processes["intake"].env["RATE_LIMITS"])
    assert limits["files_per_client"] == "100000/hour"


def test_make_run_keeps_the_services_own_limits(tmp_path):
    stack = Stack(tmp_path, "127.0.0.1:9", rate_limits={})
    stack._define()
    assert "RATE_LIMITS" not in stack.processes["intake"].env


async def test_a_stack_migrated_first_starts_its_services_as_kubernetes_does(tmp_path):
    """The bench's stack: every database brought to head by the migration Job's own command
    before the services start, and the services told not to migrate (they never load
    Alembic, as in a Kubernetes pod)."""
    stack = Stack(tmp_path, "127.0.0.1:9", migrate_first=True)
    stack._define()
    stack.data_dir.mkdir(parents=True)
    migrate_all(stack.processes, tmp_path, timeout=90)
    with_database = {
        name: package
        for name in stack.processes
        if (package := migrations_package(name)) and "DATABASE_URL" in stack.processes[name].env
    }
    assert {"intake", "assignment", "notification", "web", "adapter-caf"} <= set(with_database)
    for name, package in with_database.items():
        assert stack.processes[name].env["MIGRATE_AT_START"] == "false", name
        engine = create_async_engine(stack.processes[name].env["DATABASE_URL"])
        try:
            assert await revisions.at_head(migrations_dir(package), engine), name
        finally:
            await engine.dispose()
    migrating_at_start = Stack(tmp_path / "other", "127.0.0.1:9")  # tests, `guichet-dev run`
    migrating_at_start._define()
    assert "MIGRATE_AT_START" not in migrating_at_start.processes["intake"].env
