"""Shared fixtures of the unit tests: a recording tracer, and each service's real SQLite
database (migrated once per session with the service's own Alembic scripts, then copied
for every test), with a unit-of-work factory and small readers for its tables.

No Kafka broker, no subprocess.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine

from guichet_runtime import migrations
from guichet_runtime.db import UnitOfWork, make_engine
from shared_models import Event, parse_event

SERVICES = ("intake", "assignment", "notification")


# --------------------------------------------------------------------------- tracing


@pytest.fixture(scope="session")
def tracer() -> trace.Tracer:
    """A recording tracer, so trace context is really propagated (an SDK provider is
    installed once per process; another test may have installed one already)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    return trace.get_tracer("unit-tests")


# --------------------------------------------------------------------------- databases


@dataclass
class ServiceDb:
    """One service's own SQLite database, migrated to head."""

    url: str
    engine: AsyncEngine
    tables: ModuleType

    def uow(self, inbox_key: tuple[str, str] | None = None) -> UnitOfWork:
        return UnitOfWork(self.engine, self.tables.outbox, self.tables.inbox, inbox_key=inbox_key)

    async def rows(self, table: sa.Table | str, *where: Any, order_by: Any = None) -> list[sa.Row]:
        if isinstance(table, str):
            table = self.tables.metadata.tables[table]
        query = sa.select(table).where(*where)
        if order_by is not None:
            query = query.order_by(order_by)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def outbox(self) -> list[sa.Row]:
        return await self.rows(self.tables.outbox, order_by=self.tables.outbox.c.id)

    async def outbox_events(self) -> list[tuple[str, Event]]:
        """(topic, parsed event) of every outbox row, in id order."""
        return [(r.topic, parse_event(r.event_type, r.payload)) for r in await self.outbox()]

    async def execute(self, statement: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(statement)


@pytest.fixture(scope="session")
async def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each service's database, migrated once with its own Alembic scripts."""
    folder = tmp_path_factory.mktemp("templates")
    templates = {}
    for service in SERVICES:
        package = importlib.import_module(service)
        path = folder / f"{service}.db"
        await migrations.upgrade(
            Path(package.__file__).parent / "migrations", f"sqlite+aiosqlite:///{path}"
        )
        templates[service] = path
    return templates


@pytest.fixture
async def service_db(
    migrated_templates: dict[str, Path], tmp_path: Path
) -> AsyncIterator[Callable[[str], ServiceDb]]:
    """service name -> a fresh copy of that service's migrated database."""
    engines: list[AsyncEngine] = []

    def make(service: str) -> ServiceDb:
        path = tmp_path / f"{service}-{len(engines)}.db"
        shutil.copyfile(migrated_templates[service], path)
        url = f"sqlite+aiosqlite:///{path}"
        engine = make_engine(url)
        engines.append(engine)
        return ServiceDb(url, engine, importlib.import_module(f"{service}.tables"))

    yield make
    for engine in engines:
        await engine.dispose()


@pytest.fixture
def intake_db(service_db: Callable[[str], ServiceDb]) -> ServiceDb:
    return service_db("intake")


@pytest.fixture
def assignment_db(service_db: Callable[[str], ServiceDb]) -> ServiceDb:
    return service_db("assignment")


@pytest.fixture
def notification_db(service_db: Callable[[str], ServiceDb]) -> ServiceDb:
    return service_db("notification")
