"""Shared fixtures of the unit tests: a recording tracer, each service's real SQLite
database (migrated once per session with the service's own Alembic scripts, then copied
for every test) with a unit-of-work factory and small readers for its tables, and the
notification channels against real in-process back ends (tests.unit.channel_doubles).

No Kafka broker, no subprocess.
"""

from __future__ import annotations

import importlib
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from devstack import providers
from guichet_runtime import migrations
from guichet_runtime.db import UnitOfWork, make_engine
from guichet_runtime.tls_context import client_tls
from notification.channels import EmailChannel, LetterChannel, SmsChannel
from notification.mailer import SmtpMailer
from shared_models import Event, NotificationChannel, parse_event
from tests.unit.channel_doubles import SENDER, Sink
from tests.unit.tokens import Tokens

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


# --------------------------------------------------------------------------- channels


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[Sink]:
    """The SMTP sink, on free ports (mail to BOUNCING is refused)."""
    s = Sink(tmp_path)
    await s.start()
    yield s
    failures = s.failures()
    s.stop.set()
    await s.task
    assert not failures, f"the SMTP sink could not store: {failures}"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, httpx.Client]]:
    """The SMS gateway and postal service simulator: (base URL, its HTTP client)."""
    server = providers.make_server("127.0.0.1", 0, tmp_path / "providers")
    # Stopped at each test's end: shutdown() waits for the loop's next look (0.5 s by default).
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with httpx.Client(base_url=url, verify=client_tls()) as client:
        yield url, client
    server.shutdown()
    server.server_close()


@pytest.fixture
async def channels(
    sink: Sink, gateway: tuple[str, httpx.Client]
) -> AsyncIterator[dict[NotificationChannel, Any]]:
    mailer = SmtpMailer("127.0.0.1", sink.port)
    sms, post = SmsChannel(gateway[0]), LetterChannel(gateway[0])
    yield {
        NotificationChannel.EMAIL: EmailChannel(mailer, SENDER),
        NotificationChannel.SMS: sms,
        NotificationChannel.LETTER: post,
    }
    await mailer.close()
    await sms.close()
    await post.close()


# --------------------------------------------------------------------------- access tokens


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    """Callers' `Authorization` headers from one in-process provider (tests.unit.tokens);
    `tokens.install(app)` has an app verify them."""
    return Tokens()


# --------------------------------------------------------------------------- direct statements


@pytest.fixture
def through_sqlalchemy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements that reached SQLAlchemy's execution (the others went to the driver
    directly: guichet_runtime.direct_sqlite, direct_asyncpg)."""
    seen: list[str] = []
    original = AsyncConnection.execute

    async def execute(self: AsyncConnection, statement: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(statement).split()[0])
        return await original(self, statement, *args, **kwargs)

    monkeypatch.setattr(AsyncConnection, "execute", execute)
    return seen
