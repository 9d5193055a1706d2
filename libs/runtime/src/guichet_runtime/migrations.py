"""Alembic, driven from code: every service keeps its own migration scripts and runs
them at start-up (or a Kubernetes Job runs them before the rollout) against its own database.

Least privilege on PostgreSQL: the migrations run as the role that owns the database
(MIGRATION_DATABASE_URL), then grant the service's run-time role (DATABASE_URL's user) reading
and writing the tables, nothing else: it can create, alter or drop nothing, and reach no other
database (devstack.postgres and the CloudNativePG cluster create the two roles per database).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from guichet_runtime.db import OUTBOX_NOTIFY, OUTBOX_NOTIFY_DROPPED


def alembic_config(script_location: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(script_location: Path, url: str, grant_to: str | None = None) -> None:
    """Bring the database to the latest revision (idempotent); then, on PostgreSQL, grant
    role `grant_to` (the service's run-time role) the rights on the tables (see
    `grant_runtime_role`)."""
    if url.startswith("sqlite"):
        db_path = url.split(":///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    # env.py runs its own event loop, so it goes to a thread.
    await asyncio.to_thread(command.upgrade, alembic_config(script_location, url), "head")
    if grant_to and make_url(url).get_backend_name() == "postgresql":
        await grant_runtime_role(url, grant_to)


def runtime_role(database_url: str, migration_url: str | None) -> str | None:
    """The role the migrations grant the tables to: DATABASE_URL's user, when the migrations
    run as another one (MIGRATION_DATABASE_URL); None when there is no separate owner."""
    if not migration_url:
        return None
    runtime_user = make_url(database_url).username
    return runtime_user if runtime_user != make_url(migration_url).username else None


def runtime_grants(role: str) -> list[str]:
    """What the run-time role may do, granted by the owner after each upgrade: read and write
    the rows of the service's tables (also those later migrations create: default privileges),
    use their sequences; read the migrations' revision (the readiness probe), not change it."""
    who = '"' + role.replace('"', '""') + '"'
    dml = "SELECT, INSERT, UPDATE, DELETE"
    return [
        f"GRANT USAGE ON SCHEMA public TO {who}",
        f"GRANT {dml} ON ALL TABLES IN SCHEMA public TO {who}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {who}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {dml} ON TABLES TO {who}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {who}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {who}",
    ]


async def grant_runtime_role(owner_url: str, role: str) -> None:
    """Grant `role` the run-time rights on the database of `owner_url` (connected as its
    owner): `runtime_grants`. Idempotent."""
    engine = create_async_engine(owner_url)
    try:
        async with engine.begin() as conn:
            for statement in runtime_grants(role):
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


def run_env(target_metadata: sa.MetaData) -> None:
    """Body of each service's `migrations/env.py`."""
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("Alembic's configuration has no sqlalchemy.url")

    def do_run(connection: sa.Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,  # SQLite alters tables by copy
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
            await conn.commit()
        await engine.dispose()

    asyncio.run(run_async())


def create_outbox_notify() -> None:
    """In a migration: on PostgreSQL, the trigger by which the outbox tells the relays that
    a transaction wrote rows in it (`guichet_runtime.db.OUTBOX_NOTIFY`)."""
    if op.get_bind().dialect.name == "postgresql":
        for statement in OUTBOX_NOTIFY:
            op.execute(statement)


def drop_outbox_notify() -> None:
    """In a migration's downgrade: `create_outbox_notify` undone."""
    if op.get_bind().dialect.name == "postgresql":
        for statement in OUTBOX_NOTIFY_DROPPED:
            op.execute(statement)


def make_revision(package: str, message: str) -> None:
    """Developer tool: autogenerate the next revision of `package`'s migrations.

    `python -m guichet_runtime.migrations intake "add a column"`
    """
    script_location = migrations_dir(package)
    (script_location / "versions").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/scratch.db"
        cfg = alembic_config(script_location, url)
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True)


def upgrade_package(package: str, url: str, grant_to: str | None = None) -> None:
    """Operator's tool: bring `package`'s database to head, before a rollout (the Kubernetes
    migration Job): `python -m guichet_runtime.migrations upgrade intake`, as the owner
    MIGRATION_DATABASE_URL (else DATABASE_URL), granting DATABASE_URL's role the tables (its
    URL needs no password there: only its user is read). Adapters share one schema:
    `upgrade adapter_sdk`."""
    asyncio.run(upgrade(migrations_dir(package), url, grant_to))


def migrations_dir(package: str) -> Path:
    pkg = importlib.import_module(package)
    if pkg.__file__ is None:
        raise ValueError(f"{package} is a namespace package: it has no migrations folder")
    return Path(pkg.__file__).parent / "migrations"


if __name__ == "__main__":
    if sys.argv[1] == "upgrade":
        migration_url = os.environ.get("MIGRATION_DATABASE_URL") or None
        database_url = os.environ["DATABASE_URL"]
        upgrade_package(
            sys.argv[2],
            migration_url or database_url,
            runtime_role(database_url, migration_url),
        )
    else:
        make_revision(sys.argv[1], sys.argv[2])
