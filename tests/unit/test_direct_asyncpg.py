"""Statements built once run on asyncpg directly inside a transaction
(`guichet_runtime.direct_asyncpg`), on a real PostgreSQL: they store and read exactly what
SQLAlchemy's execution stores and reads, raise SQLAlchemy's exceptions (with the SQLSTATE),
count the rows they change, and hand to SQLAlchemy whatever they cannot do the same way."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guichet_runtime.db import insert_ignore, make_engine
from guichet_runtime.failures import is_transient
from guichet_runtime.statements import inserting, param, params, prepared, update_row
from tests.unit.test_db_idle_ping import terminate
from tests.unit.test_direct_sqlite import (
    PARIS,
    ROW,
    Colour,
    add_one,
    among,
    by_id,
    defaulted,
    metadata,
    rows,
)

measures = sa.Table(
    "measures",
    sa.MetaData(),
    sa.Column("measure_id", sa.String, primary_key=True),
    sa.Column("value", sa.Float),
)


@prepared
def measure_by_id() -> sa.Select[Any]:
    return sa.select(measures).where(measures.c.measure_id == param(measures.c.measure_id))


@pytest.fixture
async def engines(postgres_factory) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """The services' engine (direct) and the same with a statement listener (every statement
    through SQLAlchemy: the reference), each on a database of its own."""
    made = []
    for _ in range(2):
        engine = make_engine(postgres_factory(f"direct_{uuid.uuid4().hex[:12]}"))
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.run_sync(measures.metadata.create_all)
        made.append(engine)
    direct, classic = made
    sa.event.listen(classic.sync_engine, "before_cursor_execute", lambda *args: None)
    yield direct, classic
    for engine in made:
        await engine.dispose()


async def _write_and_read(conn: AsyncConnection) -> tuple[Any, ...]:
    await conn.execute(inserting(rows), ROW)
    await conn.execute(inserting(rows), [{"row_id": "r-2"}, {"row_id": "r-3"}])
    duplicate = await conn.execute(insert_ignore(conn, rows), {"row_id": "r-1"})
    changed = await update_row(conn, rows, {"row_id": "r-2"}, {"urgent": False, "data": [1]})
    await conn.execute(add_one(), params(row_id="r-1"))
    stored = dict(
        (
            await conn.exec_driver_sql(
                "SELECT row_id, concat_ws('|', at AT TIME ZONE 'UTC', on_day, data::text, urgent,"
                " colour, encode(blob, 'hex'), count) FROM rows ORDER BY row_id"
            )
        ).all()
    )
    read = (await conn.execute(by_id(), params(row_id="r-1"))).one()
    scalar = await conn.scalar(by_id(), params(row_id="r-2"))
    return stored, tuple(read), read._mapping["count"], scalar, duplicate.rowcount, changed


async def test_a_prepared_statement_stores_and_reads_what_sqlalchemy_does(
    engines, through_sqlalchemy: list[str]
):
    direct, classic = engines

    async with direct.begin() as conn:
        through_sqlalchemy.clear()
        got = await _write_and_read(conn)
        # Every one went to asyncpg directly, the first with the transaction's BEGIN.
        assert through_sqlalchemy == []
    async with classic.begin() as conn:
        expected = await _write_and_read(conn)

    assert got == expected
    stored, read, count, scalar, duplicate, changed = got
    assert stored["r-1"].startswith("2027-03-02 13:30:00|2027-03-02|")
    assert read[1] == PARIS and read[2:7] == (
        ROW["on_day"],
        ROW["data"],
        True,
        Colour.RED,
        ROW["blob"],
    )
    assert (count, scalar, duplicate, changed) == (1, "r-2", 0, 1)


async def test_a_refused_statement_raises_sqlalchemys_exception_with_its_sqlstate(engines):
    direct, _ = engines
    async with direct.begin() as conn:
        await conn.execute(inserting(rows), {"row_id": "r-1"})
        await conn.exec_driver_sql("SAVEPOINT member")
        with pytest.raises(sa.exc.IntegrityError, match="duplicate key") as refused:
            await conn.execute(inserting(rows), {"row_id": "r-1"})
        assert refused.value.orig.sqlstate == "23505"  # type: ignore[union-attr]
        assert not is_transient(refused.value)
        await conn.exec_driver_sql("ROLLBACK TO SAVEPOINT member")
        await conn.execute(inserting(rows), {"row_id": "r-2"})
        ids = (await conn.execute(sa.select(rows.c.row_id).order_by(rows.c.row_id))).scalars()
        assert ids.all() == ["r-1", "r-2"]


async def test_what_cannot_run_directly_goes_through_sqlalchemy(
    engines, through_sqlalchemy: list[str]
):
    direct, _ = engines
    async with direct.connect() as conn:  # no transaction open yet: SQLAlchemy begins it
        await conn.execute(inserting(rows), {"row_id": "r-1"})
        await conn.execute(inserting(measures), {"measure_id": "m-1", "value": 2.5})
        assert through_sqlalchemy == ["INSERT"]  # the second one went directly
        # An expanding IN, a Python-side default, a statement not built once, a Float read.
        found = (await conn.execute(among(("r-1",)), {"ids": ["r-1", "r-9"]})).scalars().all()
        await conn.execute(inserting(defaulted), {"row_id": "d-1"})
        await conn.execute(sa.select(rows.c.row_id).where(rows.c.row_id == "r-1"))
        made = await conn.scalar(sa.select(defaulted.c.made_at))
        value = (await conn.execute(measure_by_id(), params(measure_id="m-1"))).one().value
        await conn.commit()
    assert (found, made, value) == (["r-1"], "made", 2.5)
    assert through_sqlalchemy == ["INSERT", "SELECT", "INSERT", "SELECT", "SELECT", "SELECT"]


@pytest.mark.parametrize("which", [0, 1], ids=["direct", "sqlalchemy"])
async def test_a_begin_that_fails_raises_sqlalchemys_transient_exception(engines, which):
    direct = engines[which]
    async with direct.begin() as conn:  # one connection in the pool, used moments ago
        await conn.execute(inserting(rows), {"row_id": "r-1"})
        pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
    await terminate(direct.url.render_as_string(hide_password=False), pid)

    # The next checkout takes it (not pinged: used moments ago); the BEGIN sent with the
    # first statement finds it gone. Directly as through SQLAlchemy: a transient failure
    # (the record comes again), the pool renewed.
    with pytest.raises(sa.exc.DBAPIError) as lost:
        async with direct.begin() as conn:
            await conn.execute(by_id(), params(row_id="r-1"))

    assert is_transient(lost.value)
    async with direct.begin() as conn:  # SQLAlchemy renewed the pool
        assert await conn.scalar(by_id(), params(row_id="r-1")) == "r-1"
