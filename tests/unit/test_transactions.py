"""A transaction opened and ended in one hand-over each (guichet_runtime.transactions), on
SQLite and on a real PostgreSQL: what it writes is committed or rolled back as with
`engine.begin()`, its connection always goes back to the pool (a failed begin, a failed
commit), and it is the engine's own connection class (statements built once go direct)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from guichet_runtime import sqlite_inline
from guichet_runtime.db import make_engine
from guichet_runtime.direct_sqlite import DirectConnection
from guichet_runtime.transactions import begun, ended, transaction

metadata = sa.MetaData()
parents = sa.Table("parents", metadata, sa.Column("id", sa.Integer, primary_key=True))
children = sa.Table(
    "children",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # Checked at commit: a commit that fails, on both databases.
    sa.Column(
        "parent_id",
        sa.Integer,
        sa.ForeignKey("parents.id", deferrable=True, initially="DEFERRED"),
        nullable=False,
    ),
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    else:
        url = request.getfixturevalue("postgres_factory")(f"tx_{uuid.uuid4().hex[:12]}")
    made = make_engine(url)
    async with made.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield made
    finally:
        await made.dispose()


async def ids(engine: AsyncEngine, table: sa.Table) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(table.c.id).order_by(table.c.id))).scalars())


def checked_out(engine: AsyncEngine) -> int:
    return engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined, no-any-return]


async def test_a_block_commits_and_one_that_raises_rolls_back(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        assert conn.in_transaction()
        await conn.execute(parents.insert(), [{"id": 1}, {"id": 2}])
    with pytest.raises(RuntimeError, match="handler failed"):
        async with transaction(engine) as conn:
            await conn.execute(parents.insert().values(id=3))
            raise RuntimeError("handler failed")
    assert await ids(engine, parents) == [1, 2]
    assert checked_out(engine) == 0


async def test_begun_and_ended_commit_or_roll_back(engine: AsyncEngine) -> None:
    conn = await begun(engine)
    assert type(conn).__name__ in {"DirectConnection", "DirectPgConnection"}
    assert conn.in_transaction()
    await conn.execute(parents.insert().values(id=1))
    await ended(conn, commit=False)
    assert checked_out(engine) == 0
    conn = await begun(engine)
    await conn.execute(parents.insert().values(id=2))
    await ended(conn, commit=True)
    assert await ids(engine, parents) == [2]
    assert checked_out(engine) == 0


async def test_a_failed_commit_writes_nothing_and_frees_the_connection(
    engine: AsyncEngine,
) -> None:
    conn = await begun(engine)
    await conn.execute(parents.insert().values(id=1))
    await conn.execute(children.insert().values(id=1, parent_id=99))  # no such parent
    with pytest.raises(sa.exc.IntegrityError):
        await ended(conn, commit=True)
    assert checked_out(engine) == 0
    assert await ids(engine, parents) == []
    # The engine goes on.
    async with transaction(engine) as conn:
        await conn.execute(parents.insert().values(id=1))
        await conn.execute(children.insert().values(id=1, parent_id=1))
    assert await ids(engine, children) == [1]


async def test_a_begin_refused_frees_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: another engine holds the write lock longer than a statement waits for it."""
    monkeypatch.setattr(sqlite_inline, "LOCK_WAIT_SECONDS", 0.2)
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    first, second = make_engine(url), make_engine(url)
    try:
        async with first.begin() as conn:
            await conn.run_sync(metadata.create_all)
        holder = await begun(first)
        await holder.execute(parents.insert().values(id=1))
        with pytest.raises(sa.exc.OperationalError, match="database is locked"):
            await begun(second)
        assert checked_out(second) == 0
        await ended(holder, commit=True)
        conn = await begun(second)
        assert isinstance(conn, DirectConnection)
        await conn.execute(parents.insert().values(id=2))
        await ended(conn, commit=True)
        assert await ids(first, parents) == [1, 2]
    finally:
        await second.dispose()
        await first.dispose()
