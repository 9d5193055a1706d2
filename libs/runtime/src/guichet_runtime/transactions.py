"""A transaction opened in one hand-over to SQLAlchemy's synchronous side, and ended in one.

SQLAlchemy's asyncio extension runs each call of an `AsyncConnection` in a new greenlet:
`await engine.connect()`, `await conn.begin()`, `await conn.commit()` and
`await conn.close()` are four hand-overs, each with its own greenlet, for what the driver
does in two statements. Measured on this project's 2-core machine, an empty transaction
on SQLite cost 125 µs of CPU that way, against 5 µs on sqlite3 itself; the services open
about 23 transactions per three-agency file (docs/performance.md). Here the connection is
checked out and its transaction begun in one hand-over (`begun`), and committed or rolled
back and closed in one (`ended`). SQLAlchemy's own `Engine.connect`, `Connection.begin`,
`commit`, `rollback` and `close` do the work, with their events, pool and invalidation of
a lost connection, exactly as before: only the greenlets between them are saved.

`transaction(engine)` is `engine.begin()` made of the two.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn


async def begun(engine: AsyncEngine) -> AsyncConnection:
    """A connection of `engine` with its transaction begun (what `await engine.connect()`
    then `await conn.begin()` give), of the engine's own connection class."""
    sync = await greenlet_spawn(_connected_and_begun, engine.sync_engine)
    connection_class: Any = getattr(engine, "_connection_cls", AsyncConnection)
    return connection_class(engine, sync)  # type: ignore[no-any-return]


def _connected_and_begun(engine: Engine) -> Connection:
    conn = engine.connect()
    try:
        conn.begin()
    except BaseException:
        conn.close()
        raise
    return conn


async def ended(conn: AsyncConnection, *, commit: bool) -> None:
    """Commit (or roll back) `conn`'s transaction, then close it, whatever the commit or
    rollback raised (that error is raised after the close)."""
    sync = conn.sync_connection
    if sync is not None:
        await greenlet_spawn(_ended, sync, commit)


def _ended(conn: Connection, commit: bool) -> None:
    try:
        if commit:
            conn.commit()
        else:
            conn.rollback()
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """`async with engine.begin() as conn:`: committed when the block ends, rolled back
    when it raises."""
    conn = await begun(engine)
    try:
        yield conn
    except BaseException:
        await ended(conn, commit=False)
        raise
    await ended(conn, commit=True)
