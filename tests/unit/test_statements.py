"""Statements built once (`guichet_runtime.statements`) store exactly what the same
statement built at each call stored: the parameters named with `param(column)` are typed
as their column, so its bind processing (UTC datetimes, JSON) still runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from guichet_runtime.db import UtcDateTime, make_engine
from guichet_runtime.statements import param, params

metadata = sa.MetaData()
rows = sa.Table(
    "rows",
    metadata,
    sa.Column("row_id", sa.String, primary_key=True),
    sa.Column("at", UtcDateTime()),
    sa.Column("data", sa.JSON),
)

#: 14:30 in Paris on 2 March 2027 (UTC+1): stored as 13:30 UTC.
PARIS = dt.datetime(2027, 3, 2, 14, 30, tzinfo=ZoneInfo("Europe/Paris"))
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
