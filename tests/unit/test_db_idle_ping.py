"""PostgreSQL: a pooled connection idle for a while is pinged before use, and replaced if the
server closed it meanwhile; one used moments ago is not pinged (a round trip per transaction
was an eighth of the services' CPU per file). On a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from guichet_runtime.db import make_engine, ping_when_idle


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.text("SELECT pg_backend_pid()")))


async def terminate(url: str, pid: int) -> None:
    """The server closes that connection, as a restart or a fail-over would, and the client
    has seen it close: the backend is gone, and the event loop has read the end of the
    socket (else a statement sent at once can read the server's farewell as its answer,
    which asyncpg reports as "another operation is in progress")."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(200):
            if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"backend {pid} still there after 2 s")
    finally:
        await conn.close()
    await asyncio.sleep(0.05)


@pytest.fixture
def url(postgres_factory) -> str:
    return postgres_factory(f"idle_ping_{uuid.uuid4().hex[:12]}")


def counting_pings(engine: AsyncEngine) -> list[int]:
    pings: list[int] = []
    dialect = engine.sync_engine.dialect
    real = dialect.do_ping

    def do_ping(dbapi_connection):
        pings.append(1)
        return real(dbapi_connection)

    dialect.do_ping = do_ping  # type: ignore[method-assign]
    return pings


async def test_a_connection_closed_while_idle_is_replaced_before_use(url):
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle_seconds=0.0)  # every checked-in connection counts as idle
    try:
        first = await backend_pid(engine)
        await terminate(url, first)

        second = await backend_pid(engine)  # no error: the ping found it closed

        assert second != first
    finally:
        await engine.dispose()


async def test_without_the_ping_a_closed_connection_fails_once_then_is_replaced(url):
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle_seconds=3600.0)  # used moments ago: not pinged
    try:
        first = await backend_pid(engine)
        await terminate(url, first)

        with pytest.raises(sa.exc.DBAPIError) as failed:
            await backend_pid(engine)
        assert failed.value.connection_invalidated  # SQLAlchemy drops the pool's connections

        assert await backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_the_services_engine_pings_only_a_connection_left_idle(url, monkeypatch):
    engine = make_engine(url)
    pings = counting_pings(engine)
    try:
        for _ in range(5):  # one after the other: each takes the connection just checked in
            await backend_pid(engine)
        assert pings == []

        clock = time.monotonic
        monkeypatch.setattr("guichet_runtime.db.monotonic", lambda: clock() + 60)
        await backend_pid(engine)  # as if a minute later
        assert pings == [1]
    finally:
        await engine.dispose()


async def test_the_services_engine_keeps_the_connections_it_opened_and_opens_no_more(url):
    """Bursts of concurrent transactions reuse the connections the first burst opened: none
    is closed when given back (each new one is a PostgreSQL process forked and
    authenticated), and never more than the pool's size are open; a transaction beyond them
    waits for one."""
    engine = make_engine(url, pool_size=6)
    opened: list[int] = []
    sa.event.listen(engine.sync_engine, "connect", lambda *_: opened.append(1))

    async def transaction_of_a_moment() -> None:
        async with engine.begin() as conn:
            await conn.execute(sa.text("SELECT pg_sleep(0.05)"))

    try:
        for _ in range(3):
            await asyncio.gather(*(transaction_of_a_moment() for _ in range(6)))
        assert len(opened) == 6

        await asyncio.gather(*(transaction_of_a_moment() for _ in range(10)))
        assert len(opened) == 6
        assert engine.sync_engine.pool.checkedin() == 6
    finally:
        await engine.dispose()
