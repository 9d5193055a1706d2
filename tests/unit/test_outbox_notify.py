"""On PostgreSQL the outbox tells the relays itself (`guichet_runtime.db.OUTBOX_NOTIFY`): a
trigger run by each statement that inserts rows in it, its notification delivered at commit.
Each service's migrations create it, and it fires for the service's run-time role, the one
that writes the outbox. A rolled-back transaction and one that wrote no outbox row notify
nothing; a transaction's notifications are one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from guichet_runtime import migrations
from guichet_runtime.db import (
    OUTBOX_CHANNEL,
    make_engine,
    messaging_tables,
    service_metadata,
    utcnow,
    write_outbox,
)

pytestmark = pytest.mark.integration

OUTBOX, INBOX = messaging_tables(service_metadata())
BARRIER = "outbox_test_barrier"


def row(key: str) -> dict[str, Any]:
    return {
        "topic": "files.submitted",
        "key": key,
        "event_type": "FileSubmitted",
        "payload": "{}",
        "headers": "{}",
        "created_at": utcnow(),
    }


class Listener:
    """A LISTEN on the outbox's channel (a connection of its own, as the relay has) and on
    a barrier: once the barrier's notification is in, every notification of a transaction
    committed before it is in too (PostgreSQL delivers them in commit order)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.heard: list[str] = []
        self._barrier = asyncio.Event()

    async def start(self) -> None:
        await self.conn.add_listener(OUTBOX_CHANNEL, lambda *_: self.heard.append("outbox"))
        await self.conn.add_listener(BARRIER, lambda *_: self._barrier.set())

    async def settled(self) -> list[str]:
        """What was heard up to now: a barrier notified, and waited for."""
        self._barrier.clear()
        await self.conn.execute(f"NOTIFY {BARRIER}")
        await asyncio.wait_for(self._barrier.wait(), timeout=10)
        heard, self.heard = self.heard, []
        return heard


@pytest.fixture(params=["intake", "assignment", "notification", "adapter_sdk"])
async def migrated(request, postgres_factory) -> AsyncIterator[tuple[Any, Listener]]:
    """A service's database brought to head by its owner; an engine and a listener as its
    run-time role."""
    import asyncpg

    database = postgres_factory.service(f"outbox_{request.param}_{uuid.uuid4().hex[:8]}")
    runtime = migrations.runtime_role(database.url, database.migration_url)
    await migrations.upgrade(
        migrations.migrations_dir(request.param), database.migration_url, runtime
    )
    engine = make_engine(database.url)
    dsn = sa.make_url(database.url).set(drivername="postgresql")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    listener = Listener(conn)
    await listener.start()
    try:
        yield engine, listener
    finally:
        await conn.close()
        await engine.dispose()


async def test_a_commit_with_outbox_rows_notifies_the_relays_once(migrated):
    engine, listener = migrated
    async with engine.begin() as conn:
        assert await write_outbox(conn, OUTBOX, [row("F-1"), row("F-2")])
        assert await write_outbox(conn, OUTBOX, [row("F-3")])  # a second statement
        assert await listener.settled() == []  # nothing before the commit
    assert await listener.settled() == ["outbox"]


async def test_a_rollback_and_a_transaction_without_outbox_rows_notify_nothing(migrated):
    engine, listener = migrated
    async with engine.connect() as conn:
        await write_outbox(conn, OUTBOX, [row("F-1")])
        await conn.rollback()
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(INBOX), {"consumer": "test", "event_id": "e-1", "processed_at": utcnow()}
        )
    assert await listener.settled() == []
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(OUTBOX)) == 0
