"""Statements built once and executed with their parameters, for the consumers' hot paths.

A Core statement built at each call (`sa.select(t).where(t.c.id == x)`,
`t.update().where(...).values(...)`, `insert(t).values(row)`) costs SQLAlchemy its
construction and a new cache key before the compiled form is found in its cache. Measured
on this machine (SQLite on the loop's thread, inside a transaction): a primary-key select
92 → 46 µs of CPU, an insert 148 → 60 µs, a three-condition update 215 → 67 µs when the
statement is built once with bind parameters and executed with a dict of values
(docs/performance.md). A service's statements sent for every event are written that way:
built at first use (`functools.cache`: no work at import time), their values named with
`param`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

S = TypeVar("S")

#: The ids of the statements `prepared` builders returned (kept alive by their cache).
_PREPARED: set[int] = set()


def param(column: sa.Column[Any]) -> sa.BindParameter[Any]:
    """A bind parameter typed as `column` (its bind processing: UTC datetimes, JSON, enums),
    named `p_<column>` (a SET value may not take its column's own name)."""
    return sa.bindparam(f"p_{column.name}", type_=column.type)


def params(**values: Any) -> dict[str, Any]:
    """The values of `param(column)` parameters: `params(file_id=x)` → `{"p_file_id": x}`."""
    return {f"p_{name}": value for name, value in values.items()}


def prepared(build: Callable[..., S]) -> Callable[..., S]:
    """A statement builder called once per arguments (`functools.cache`), whose statement
    SQLite's connection may run directly (`guichet_runtime.direct_sqlite`): marked when
    built, nothing more at each call."""

    @functools.cache
    @functools.wraps(build)
    def statement(*args: Any) -> S:
        built = build(*args)
        _PREPARED.add(id(built))
        return built

    return statement


def is_prepared(statement: object) -> bool:
    """`statement` was built by a `prepared` builder."""
    return id(statement) in _PREPARED


@prepared
def inserting(table: sa.Table) -> sa.Insert:
    """`INSERT INTO table`, executed with a row or a list of rows (the columns are the row's
    keys, as SQLAlchemy compiles an insert without values)."""
    return sa.insert(table)


@prepared
def updating(table: sa.Table, where: tuple[str, ...], values: tuple[str, ...]) -> sa.Update:
    """`UPDATE table SET <values> WHERE <where>` (each an equality), executed with
    `update_params(where, values)`."""
    c = table.c
    return (
        table.update()
        .where(*(c[k] == sa.bindparam(f"w_{k}", type_=c[k].type) for k in where))
        .values({k: param(c[k]) for k in values})
    )


def update_params(where: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The parameters of `updating(table, tuple(where), tuple(values))`."""
    return {**{f"w_{k}": v for k, v in where.items()}, **params(**values)}


async def update_row(
    conn: AsyncConnection, table: sa.Table, where: dict[str, Any], values: dict[str, Any]
) -> int:
    """Set `values` on the rows of `table` matching `where` (equalities) with a statement
    built once per table and column names; returns how many rows changed."""
    statement = updating(table, tuple(where), tuple(values))
    result = await conn.execute(statement, update_params(where, values))
    return int(result.rowcount)
