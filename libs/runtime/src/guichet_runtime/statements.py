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

from typing import Any

import sqlalchemy as sa


def param(column: sa.Column[Any]) -> sa.BindParameter[Any]:
    """A bind parameter typed as `column` (its bind processing: UTC datetimes, JSON, enums),
    named `p_<column>` (a SET value may not take its column's own name)."""
    return sa.bindparam(f"p_{column.name}", type_=column.type)


def params(**values: Any) -> dict[str, Any]:
    """The values of `param(column)` parameters: `params(file_id=x)` → `{"p_file_id": x}`."""
    return {f"p_{name}": value for name, value in values.items()}
