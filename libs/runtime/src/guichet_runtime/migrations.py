"""Alembic, driven from code: every service keeps its own migration scripts and runs
them at start-up against its own database."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def alembic_config(script_location: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(script_location: Path, url: str) -> None:
    """Bring the database to the latest revision (idempotent)."""
    if url.startswith("sqlite"):
        db_path = url.split(":///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    # env.py runs its own event loop, so it goes to a thread.
    await asyncio.to_thread(command.upgrade, alembic_config(script_location, url), "head")


async def at_head(script_location: Path, engine: AsyncEngine) -> bool:
    """Whether the database's current revision(s) are the scripts' head(s)."""
    heads = set(ScriptDirectory(str(script_location)).get_heads())
    async with engine.connect() as conn:
        current = await conn.run_sync(
            lambda sync: set(MigrationContext.configure(sync).get_current_heads())
        )
    return current == heads


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


def upgrade_package(package: str, url: str) -> None:
    """Operator's tool: bring `package`'s database to head, before a rollout (the Kubernetes
    migration Job): `python -m guichet_runtime.migrations upgrade intake` with DATABASE_URL set.
    Adapters share one schema: `upgrade adapter_sdk`."""
    asyncio.run(upgrade(migrations_dir(package), url))


def migrations_dir(package: str) -> Path:
    pkg = importlib.import_module(package)
    if pkg.__file__ is None:
        raise ValueError(f"{package} is a namespace package: it has no migrations folder")
    return Path(pkg.__file__).parent / "migrations"


if __name__ == "__main__":
    if sys.argv[1] == "upgrade":
        upgrade_package(sys.argv[2], os.environ["DATABASE_URL"])
    else:
        make_revision(sys.argv[1], sys.argv[2])
