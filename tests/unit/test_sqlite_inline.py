"""SQLite on the event loop's thread (guichet_runtime.sqlite_inline), through make_engine.

What the thread of aiosqlite gave must still hold: waiting for another connection's write
lock does not freeze the loop, a wait that lasts too long fails cleanly with nothing
written, and every SQLAlchemy path the services use (transactions, rollbacks, bulk
inserts, streamed results) behaves as on any SQLite driver.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from guichet_runtime import sqlite_inline
from guichet_runtime.db import make_engine

metadata = sa.MetaData()
rows = sa.Table(
    "rows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("label", sa.String, nullable=False, unique=True),
)


async def _engine(path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


async def _labels(engine) -> list[str]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(rows.c.label).order_by(rows.c.id))
        return list(result.scalars())


async def test_statements_run_on_the_loops_own_thread(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")

    @sa_event.listens_for(engine.sync_engine, "connect")
    def _thread_function(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.create_function("thread_of_sqlite", 0, threading.get_ident)

    try:
        async with engine.connect() as conn:
            seen = (await conn.execute(sa.text("SELECT thread_of_sqlite()"))).scalar_one()
        assert seen == threading.get_ident()
    finally:
        await engine.dispose()


async def test_a_transaction_commits_rolls_back_and_inserts_in_bulk(tmp_path: Path) -> None:
    engine = await _engine(tmp_path / "a.db")
    try:
        async with engine.begin() as conn:
            await conn.execute(rows.insert(), [{"label": f"r{i}"} for i in range(50)])
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(rows.insert().values(label="kept?"))
                await conn.execute(rows.insert().values(label="r0"))  # unique: refused
        assert await _labels(engine) == [f"r{i}" for i in range(50)]

        async with engine.connect() as conn:
            streamed = [row.label async for row in await conn.stream(sa.select(rows))]
        assert len(streamed) == 50
    finally:
        await engine.dispose()


async def test_waiting_for_another_writer_leaves_the_loop_running(tmp_path: Path) -> None:
    """Two engines on one file in one process (two replicas in a test, a migration):
    the second BEGIN IMMEDIATE waits for the first's commit without holding the loop."""
    path = tmp_path / "a.db"
    first = await _engine(path)
    second = make_engine(f"sqlite+aiosqlite:///{path}")
    ticks = 0
    first_holds = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def hold_the_lock() -> None:
        async with first.begin() as conn:
            await conn.execute(rows.insert().values(label="first"))
            first_holds.set()
            await asyncio.sleep(0.5)  # an await inside a write transaction

    async def write_after() -> int:
        await first_holds.wait()
        before = ticks
        async with second.begin() as conn:
            waited = ticks - before
            await conn.execute(rows.insert().values(label="second"))
        return waited

    clock = asyncio.create_task(ticker())
    try:
        _, ticks_while_waiting = await asyncio.wait_for(
            asyncio.gather(hold_the_lock(), write_after()), timeout=20
        )
    finally:
        clock.cancel()
        await second.dispose()
    # The loop went on ticking (every 10 ms) for most of the half second the lock was held.
    assert ticks_while_waiting >= 20
    assert await _labels(first) == ["first", "second"]
    await first.dispose()


async def test_a_lock_held_too_long_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_inline, "LOCK_WAIT_SECONDS", 0.2)
    path = tmp_path / "a.db"
    first = await _engine(path)
    second = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with first.begin() as conn:
            await conn.execute(rows.insert().values(label="first"))
            with pytest.raises(sa.exc.OperationalError, match="database is locked"):
                async with second.begin() as other:
                    await other.execute(rows.insert().values(label="second"))
        assert await _labels(first) == ["first"]
        # The refused engine is usable once the lock is free.
        async with second.begin() as other:
            await other.execute(rows.insert().values(label="second"))
        assert await _labels(first) == ["first", "second"]
    finally:
        await second.dispose()
        await first.dispose()


def test_only_a_lock_refusal_is_waited_for() -> None:
    def refusal(code: int) -> sqlite3.OperationalError:
        error = sqlite3.OperationalError("x")
        error.sqlite_errorcode = code  # type: ignore[attr-defined]
        return error

    assert sqlite_inline.lock_refused(refusal(sqlite3.SQLITE_BUSY))
    assert sqlite_inline.lock_refused(refusal(sqlite3.SQLITE_LOCKED))
    assert sqlite_inline.lock_refused(refusal(517))  # SQLITE_BUSY_SNAPSHOT
    assert not sqlite_inline.lock_refused(refusal(sqlite3.SQLITE_IOERR))
    assert not sqlite_inline.lock_refused(sqlite3.OperationalError("no code"))
