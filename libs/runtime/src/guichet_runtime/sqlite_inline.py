"""SQLite on the event loop's own thread, for SQLAlchemy's asyncio engine.

SQLAlchemy's ``sqlite+aiosqlite`` dialect runs every statement on aiosqlite's worker
thread: a queue put, a thread wake-up, a hand-over of the GIL and a callback back to the
loop through its self-pipe, for each statement, begin and commit. Measured on this
project's 2-core machine: 3.2 ms of CPU for a transaction of four statements, against
0.95 ms when the same statements run on the loop's thread, and a third less CPU per file
for the product's services in ``make bench`` (docs/performance.md). SQLite on a local file in WAL
mode with ``synchronous=NORMAL`` does not wait for the disk on commit, so a statement
holds the loop for tens of microseconds, about what the hand-over itself cost.

What is kept from the aiosqlite dialect: everything SQLAlchemy does (the dialect, its
adapted connection and cursor, statement caching, pooling): only the driver connection
under it is replaced, through ``create_async_engine(..., module=inline_dbapi())``.

The one thing a thread gave for free is waiting for a lock without blocking the loop.
Here SQLite never waits (busy timeout 0): a statement refused with SQLITE_BUSY outside a
transaction (the ``BEGIN IMMEDIATE`` that takes the write lock, a pragma at connection)
is tried again after an asynchronous sleep, until ``LOCK_WAIT_SECONDS``; so another
engine or process holding the write lock (a second replica in a test, a migration, an
operator's tool) makes this one wait on the loop, not freeze it. Inside a transaction
that already holds the write lock (every write transaction begins IMMEDIATE), WAL mode
does not refuse a statement; if SQLite ever does, the error is raised as before.

Written by hand (about 150 lines of code) because no maintained driver does this: aiosqlite
is the thread hop itself, and SQLAlchemy's asyncio extension refuses a synchronous driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiosqlite  # its exception classes are sqlite3's; SQLAlchemy reads them there
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import await_

#: How long a statement waits for another connection's write lock before it fails.
LOCK_WAIT_SECONDS = 30.0

_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

_BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"


def lock_refused(error: sqlite3.OperationalError) -> bool:
    """SQLite refused the statement because another connection holds a lock."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _BUSY_CODES


async def _waiting_for_the_lock(
    conn: sqlite3.Connection, run: Callable[..., Any], *args: Any
) -> Any:
    """``run(*args)``; outside a transaction, a lock refusal is tried again after a sleep."""
    deadline: float | None = None
    pause = 0.001
    while True:
        outside = not conn.in_transaction
        try:
            return run(*args)
        except sqlite3.OperationalError as error:
            if not (outside and lock_refused(error)):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + LOCK_WAIT_SECONDS
            elif now >= deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)


class InlineCursor:
    """aiosqlite's cursor interface over a ``sqlite3.Cursor``, on the caller's thread."""

    __slots__ = ("_conn", "_cursor")

    def __init__(self, conn: sqlite3.Connection, cursor: sqlite3.Cursor) -> None:
        self._conn = conn
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        args = (sql,) if parameters is None else (sql, parameters)
        await _waiting_for_the_lock(self._conn, self._cursor.execute, *args)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        rows = list(parameters)  # a generator could not be replayed after a refusal
        await _waiting_for_the_lock(self._conn, self._cursor.executemany, sql, rows)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        if size is None:
            return self._cursor.fetchmany()
        return self._cursor.fetchmany(size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def __aiter__(self) -> AsyncIterator[Any]:
        for row in self._cursor:
            yield row

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class InlineConnection:
    """aiosqlite's connection interface over a ``sqlite3.Connection``, on the caller's thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        #: What SQLAlchemy's adapter looks at to know the connection is open.
        self._connection: sqlite3.Connection | None = conn

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn, self._conn.cursor())

    @property
    def sqlite_connection(self) -> sqlite3.Connection:
        """The ``sqlite3`` connection itself (``guichet_runtime.direct_sqlite``)."""
        return self._conn

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    def begin_immediate(self) -> None:
        """``BEGIN IMMEDIATE``, from SQLAlchemy's synchronous side (its "begin" event): at
        once when the write lock is free, else after waiting for it on the loop. Sent to
        sqlite3 itself: through SQLAlchemy's execution (a context, a cursor, a result) it
        cost a quarter of an empty transaction (docs/performance.md)."""
        try:
            try:
                self._conn.execute(_BEGIN_IMMEDIATE)
            except sqlite3.OperationalError as error:
                if not lock_refused(error):
                    raise
                await_(_waiting_for_the_lock(self._conn, self._conn.execute, _BEGIN_IMMEDIATE))
        except sqlite3.Error as error:  # as SQLAlchemy's execution would have raised it
            raise sa_exc.DBAPIError.instance(
                _BEGIN_IMMEDIATE, None, error, sqlite3.Error
            ) from error

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close at once (also SQLAlchemy's terminate, e.g. from the garbage collector)."""
        self._connection = None
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._conn.isolation_level = value


class _AdaptedInlineConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite adapter, its isolation level set directly (no queue)."""

    __slots__ = ()

    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level  # type: ignore[no-any-return]

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._connection.isolation_level = value

    # Commit and rollback on sqlite3 at once: SQLAlchemy's adapter awaits the driver's
    # coroutine, a round of greenlet switches for a call that never waits.

    def commit(self) -> None:
        sqlite = self._connection._connection
        if sqlite is not None:
            try:
                sqlite.commit()
            except Exception as error:
                # SQLite keeps the transaction open after a refused COMMIT (a deferred
                # constraint): end it, as PostgreSQL does. SQLAlchemy counts it as over
                # and would give the connection back to the pool inside it, where every
                # BEGIN after it would fail.
                if sqlite.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        sqlite.rollback()
                self._handle_exception(error)

    def rollback(self) -> None:
        if self._connection._connection is not None:
            try:
                self._connection._connection.rollback()
            except Exception as error:
                self._handle_exception(error)


class _InlineDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *args: Any, **kwargs: Any) -> _AdaptedInlineConnection:
        kwargs.pop("async_creator_fn", None)
        kwargs.pop("iter_chunk_size", None)
        kwargs.pop("loop", None)
        kwargs["timeout"] = 0  # never wait inside SQLite: see _waiting_for_the_lock
        kwargs["check_same_thread"] = False  # the pool may close it from the GC's thread
        driver: Any = InlineConnection(sqlite3.connect(*args, **kwargs))
        return _AdaptedInlineConnection(self, driver)


def inline_dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DB-API module to give ``create_async_engine(..., module=...)`` for a sqlite URL."""
    return _InlineDbapi(aiosqlite, sqlite3)
