"""Statements built once (`guichet_runtime.statements`) store what a statement built at each
call stores, and run on sqlite3 directly inside a transaction
(`guichet_runtime.direct_sqlite`): they store and read exactly what SQLAlchemy's execution
stores and reads, raise SQLAlchemy's exceptions, count the rows they change, roll back with
their savepoint, and hand to SQLAlchemy whatever they cannot do the same way."""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guichet_runtime.db import UtcDateTime, insert_ignore, make_engine
from guichet_runtime.statements import (
    inserting,
    param,
    params,
    prepared,
    update_params,
    update_row,
    updating,
)


class Colour(enum.StrEnum):
    BLUE = "bleu"
    RED = "rouge"


metadata = sa.MetaData()
rows = sa.Table(
    "rows",
    metadata,
    sa.Column("row_id", sa.String, primary_key=True),
    sa.Column("at", UtcDateTime()),
    sa.Column("on_day", sa.Date),
    sa.Column("data", sa.JSON),
    sa.Column("urgent", sa.Boolean),
    sa.Column("colour", sa.Enum(Colour, native_enum=False)),
    sa.Column("blob", sa.LargeBinary),
    sa.Column("count", sa.Integer, nullable=False, server_default="0"),
)
defaulted = sa.Table(
    "defaulted",
    metadata,
    sa.Column("row_id", sa.String, primary_key=True),
    sa.Column("made_at", sa.String, nullable=False, default=lambda: "made"),
)

#: 14:30 in Paris on 2 March 2027 (UTC+1): stored as 13:30 UTC.
PARIS = dt.datetime(2027, 3, 2, 14, 30, tzinfo=ZoneInfo("Europe/Paris"))
ROW = {
    "row_id": "r-1",
    "at": PARIS,
    "on_day": dt.date(2027, 3, 2),
    "data": {"décision": "accord", "montant": 412},
    "urgent": True,
    "colour": Colour.RED,
    "blob": b"\x00\xffsealed",
}


@prepared
def by_id() -> sa.Select[Any]:
    return sa.select(rows).where(rows.c.row_id == param(rows.c.row_id))


@prepared
def among(ids: tuple[str, ...]) -> sa.Select[Any]:
    return sa.select(rows.c.row_id).where(rows.c.row_id.in_(sa.bindparam("ids", expanding=True)))


@prepared
def claim_rows() -> Any:
    """A batch's inbox rows (`guichet_runtime.batch`): INSERT … DO NOTHING RETURNING."""
    return sqlite.insert(rows).on_conflict_do_nothing().returning(rows.c.row_id)


@prepared
def add_one() -> sa.Update:
    return rows.update().values(count=rows.c.count + 1).where(rows.c.row_id == param(rows.c.row_id))


async def _engine(tmp_path: Path, name: str) -> AsyncEngine:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / name}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


async def _write_and_read(
    conn: AsyncConnection,
) -> tuple[dict[str, Any], Any, Any, int, int, list[str], int]:
    await conn.execute(inserting(rows), ROW)
    await conn.execute(inserting(rows), [{"row_id": "r-2"}, {"row_id": "r-3"}])
    duplicate = await conn.execute(insert_ignore(conn, rows), {"row_id": "r-1"})
    # Several rows, one already there: the new ones come back, in the order given.
    claim = [{"row_id": "r-5"}, {"row_id": "r-3"}, {"row_id": "r-4"}]
    claimed = await conn.execute(claim_rows(), claim)
    claimed_ids, claimed_count = list(claimed.scalars()), claimed.rowcount
    changed = await update_row(conn, rows, {"row_id": "r-2"}, {"urgent": False, "data": [1]})
    await conn.execute(add_one(), params(row_id="r-1"))
    stored = dict(
        (
            await conn.exec_driver_sql(
                "SELECT row_id, at || '|' || on_day || '|' || data || '|' || urgent || '|'"
                " || colour || '|' || hex(blob) || '|' || count FROM rows WHERE row_id = 'r-1'"
                " UNION ALL SELECT row_id, data || '|' || urgent FROM rows WHERE row_id = 'r-2'"
            )
        ).all()
    )
    read = (await conn.execute(by_id(), params(row_id="r-1"))).one()
    scalar = await conn.scalar(by_id(), params(row_id="r-2"))
    return stored, read, scalar, duplicate.rowcount, changed, claimed_ids, claimed_count


async def test_a_prepared_statement_stores_and_reads_what_sqlalchemy_does(
    tmp_path: Path, through_sqlalchemy: list[str]
):
    direct = await _engine(tmp_path, "direct.db")
    classic = await _engine(tmp_path, "classic.db")
    # A listener on the statements sends every one through SQLAlchemy: the reference.
    sa.event.listen(classic.sync_engine, "before_cursor_execute", lambda *args: None)

    async with direct.begin() as conn:
        through_sqlalchemy.clear()
        got = await _write_and_read(conn)
        assert through_sqlalchemy == []  # every statement went to sqlite3 directly
    async with classic.begin() as conn:
        expected = await _write_and_read(conn)
        assert len(through_sqlalchemy) == 8
    await direct.dispose()
    await classic.dispose()

    assert got == expected
    stored, read, scalar, duplicate, changed, claimed_ids, claimed_count = got
    assert stored["r-1"].startswith("2027-03-02 13:30:00.000000|2027-03-02|")
    assert read.at == dt.datetime(2027, 3, 2, 13, 30, tzinfo=dt.UTC)
    assert (read.data, read.urgent, read.colour, read.blob) == (
        ROW["data"],
        True,
        Colour.RED,
        ROW["blob"],
    )
    assert read._mapping["count"] == 1
    assert scalar == "r-2"
    assert (duplicate, changed) == (0, 1)
    assert (claimed_ids, claimed_count) == (["r-5", "r-4"], 2)


async def test_a_refused_statement_raises_sqlalchemys_exception_and_a_savepoint_undoes_it(
    tmp_path: Path,
):
    engine = await _engine(tmp_path, "rows.db")
    async with engine.begin() as conn:
        await conn.execute(inserting(rows), {"row_id": "r-1"})
        with pytest.raises(sa.exc.IntegrityError, match="UNIQUE constraint failed"):
            await conn.execute(inserting(rows), {"row_id": "r-1"})
        await conn.exec_driver_sql("SAVEPOINT member")
        await conn.execute(inserting(rows), {"row_id": "r-2"})
        await conn.exec_driver_sql("ROLLBACK TO SAVEPOINT member")
        await conn.exec_driver_sql("RELEASE SAVEPOINT member")
        ids = (await conn.execute(sa.select(rows.c.row_id))).scalars().all()
    await engine.dispose()
    assert ids == ["r-1"]


async def test_what_cannot_run_directly_goes_through_sqlalchemy(
    tmp_path: Path, through_sqlalchemy: list[str]
):
    engine = await _engine(tmp_path, "rows.db")
    async with engine.connect() as conn:  # no transaction open yet: SQLAlchemy begins it
        await conn.execute(inserting(rows), {"row_id": "r-1"})
        assert through_sqlalchemy == ["INSERT"]
        # An expanding IN, a Python-side default, a statement not built once.
        found = (await conn.execute(among(("r-1",)), {"ids": ["r-1", "r-9"]})).scalars().all()
        await conn.execute(inserting(defaulted), {"row_id": "d-1"})
        await conn.execute(sa.select(rows.c.row_id).where(rows.c.row_id == "r-1"))
        made = await conn.scalar(sa.select(defaulted.c.made_at))
        await conn.commit()
    await engine.dispose()
    assert found == ["r-1"]
    assert made == "made"
    assert through_sqlalchemy == ["INSERT", "SELECT", "INSERT", "SELECT", "SELECT"]


async def test_rows_of_different_keys_get_sqlalchemys_refusal(
    tmp_path: Path, through_sqlalchemy: list[str]
):
    engine = await _engine(tmp_path, "rows.db")
    async with engine.begin() as conn:
        with pytest.raises(sa.exc.StatementError, match="urgent"):
            await conn.execute(
                inserting(rows), [{"row_id": "r-1", "urgent": True}, {"row_id": "r-2"}]
            )
        ids = (await conn.execute(sa.select(rows.c.row_id))).scalars().all()
    await engine.dispose()
    assert ids == []
    assert through_sqlalchemy[0] == "INSERT"


def test_update_params_name_the_where_and_the_values_apart():
    statement = updating(rows, ("row_id",), ("row_id", "urgent"))
    assert update_params({"row_id": "a"}, {"row_id": "b", "urgent": True}) == {
        "w_row_id": "a",
        "p_row_id": "b",
        "p_urgent": True,
    }
    assert updating(rows, ("row_id",), ("row_id", "urgent")) is statement


# Statements built once (`param`, `params`) store exactly what the same statement built at
# each call stored: the parameters are typed as their column, so its bind processing runs.
DATA = {"décision": "accord", "montant": 412}


def built_once() -> sa.Update:
    c = rows.c
    return (
        rows.update().where(c.row_id == param(c.row_id)).values(at=param(c.at), data=param(c.data))
    )


async def test_a_statement_built_once_stores_what_one_built_each_time_stores(tmp_path: Path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'rows.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(rows.insert(), [{"row_id": "each"}, {"row_id": "once"}])
        await conn.execute(rows.update().where(rows.c.row_id == "each").values(at=PARIS, data=DATA))
        await conn.execute(built_once(), params(row_id="once", at=PARIS, data=DATA))
        stored = dict(
            (await conn.exec_driver_sql("SELECT row_id, at || ' ' || data FROM rows")).all()
        )
        read = {r.row_id: (r.at, r.data) for r in await conn.execute(sa.select(rows))}
    await engine.dispose()

    assert stored["once"] == stored["each"]
    assert stored["once"].startswith("2027-03-02 13:30:00")  # UTC, as UtcDateTime writes it
    assert read["once"] == (dt.datetime(2027, 3, 2, 13, 30, tzinfo=dt.UTC), DATA)


def test_params_name_the_values_of_param_columns():
    assert params(row_id="GU-1", at=None) == {"p_row_id": "GU-1", "p_at": None}
    assert param(rows.c.at).key == "p_at"
    assert isinstance(param(rows.c.at).type, UtcDateTime)
