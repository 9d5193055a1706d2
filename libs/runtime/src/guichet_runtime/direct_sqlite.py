"""Statements built once, run on SQLite's own connection inside a transaction.

A statement built once (`guichet_runtime.statements.prepared`) still cost SQLAlchemy's
execution at each call: an execution context, its cache lookup, the parameters
processed through the compiled form, a cursor result and the greenlet hand-over of the
asyncio extension. Measured on this machine, inside a transaction: an insert of five
values 31.7 µs of CPU through `AsyncConnection.execute`, 5.1 µs when the same compiled
SQL and bind processors are applied here and the row given to sqlite3 (docs/performance.md).
A consumer sends such a statement for nearly every event, hundreds per file over the
services.

`DirectConnection` is the SQLite engine's connection class (`db.make_engine`). Its
`execute` takes the direct way only when all of this holds, and otherwise hands the call
to SQLAlchemy unchanged:

- the statement was built by a `prepared` builder (or is one of the runtime's own);
- a transaction is open (so `BEGIN IMMEDIATE` was sent by SQLAlchemy, and SQLite never
  waits for a lock inside it: `sqlite_inline`);
- nobody listens to the engine's statements (a test counting them sees every one);
- the compiled form needs nothing computed at execution: no Python-side column default,
  no expanding `IN`, no escaped bind name;
- no execution options.

What SQLAlchemy would have done and this does too: the same compiled SQL (compiled with
the caller's keys, as SQLAlchemy compiles), the bind processors of the columns' types
(UTC datetimes, JSON, enums), the result processors of the selected columns, the same
exception classes (`sqlalchemy.exc.IntegrityError`, …) and `rowcount`. The rows come back
as SQLAlchemy rows (`IteratorResult`), so callers read them as before.

Written by hand (about 140 lines of code): SQLAlchemy offers no lighter execution path for
a compiled statement, and its execution is what the profile showed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guichet_runtime.statements import is_prepared

Processor = Callable[[Any], Any] | None

#: The connection events that must see every statement: with a listener, no direct way.
_WATCHED = ("before_cursor_execute", "after_cursor_execute", "before_execute", "after_execute")


@dataclass(frozen=True, slots=True)
class Plan:
    """A statement compiled for its dialect (SQLite's, or asyncpg's: `direct_asyncpg`) with
    the caller's parameter names."""

    sql: str
    #: Positional parameters: (name, the caller's value?, fixed value, bind processor).
    binds: tuple[tuple[str, bool, Any, Processor], ...]
    #: A SELECT or RETURNING: it gives rows.
    returns_rows: bool
    #: The result columns' processors, by position (those that convert a value).
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]
    #: The rows' metadata, made once for every result of the statement.
    metadata: SimpleResultMetaData


class Rows(IteratorResult[Any]):
    """The rows of a statement run directly, with the statement's `rowcount`."""

    rowcount: int


#: (statement id, parameter names, dialect) -> its plan, or None where SQLAlchemy must run it.
_PLANS: dict[tuple[int, tuple[str, ...], str], Plan | None] = {}


def plan_of(statement: sa.Executable, keys: tuple[str, ...], dialect: Any) -> Plan | None:
    """The statement compiled once for these parameter names; None if it needs anything
    computed at execution (Python-side defaults, expanding IN, escaped names)."""
    key = (id(statement), keys, dialect.name)
    try:
        return _PLANS[key]
    except KeyError:
        pass
    plan = _compile(statement, keys, dialect)
    _PLANS[key] = plan
    return plan


def _compile(statement: Any, keys: tuple[str, ...], dialect: Any) -> Plan | None:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    if (
        compiled.positiontup is None
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.post_compile_params
        or compiled.literal_execute_params
        or compiled.escaped_bind_names
    ):
        return None
    processors = compiled._bind_processors
    binds = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        given = name in keys
        if not given and (bind.callable is not None or bind.required):
            return None
        binds.append((name, given, bind.value, processors.get(name)))
    columns = compiled._result_columns
    if not columns:
        return Plan(compiled.string, tuple(binds), False, (), SimpleResultMetaData(()))
    try:
        # Without the column's type as the server reports it (None here): a processor that
        # needs it (asyncpg's for a Float) refuses, and SQLAlchemy runs the statement.
        processors = [c.type._cached_result_processor(dialect, None) for c in columns]
    except (TypeError, sa.exc.InvalidRequestError):
        return None
    return Plan(
        compiled.string,
        tuple(binds),
        True,
        tuple((i, p) for i, p in enumerate(processors) if p is not None),
        SimpleResultMetaData(tuple(c.keyname for c in columns)),
    )


def arguments(plan: Plan, values: Mapping[str, Any]) -> list[Any]:
    args = []
    for name, given, fixed, process in plan.binds:
        value = values[name] if given else fixed
        args.append(value if process is None else process(value))
    return args


class DirectConnection(AsyncConnection):
    """The SQLite engine's connection: `prepared` statements run on sqlite3 directly.

    Whether it may (nobody listens to its statements) and SQLite's connection under it are
    looked up once, at its first statement inside a transaction."""

    _sqlite: sqlite3.Connection | None = None
    _looked_up = False

    async def execute(
        self,
        statement: Any,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> Any:
        if execution_options is None and is_prepared(statement):
            sqlite = self._direct()
            if sqlite is not None:
                done = _run(sqlite, statement, parameters, self.dialect)
                if done is not None:
                    return done
        return await super().execute(statement, parameters, execution_options=execution_options)

    def _direct(self) -> sqlite3.Connection | None:
        """SQLite's connection under this one, when a statement may go to it directly."""
        if not self.in_transaction():
            return None
        if not self._looked_up:
            sync = self.sync_connection
            assert sync is not None
            if nobody_listens(sync):
                driver = sync.connection.driver_connection
                self._sqlite = getattr(driver, "sqlite_connection", None)
            self._looked_up = True
        return self._sqlite


def nobody_listens(sync: Any) -> bool:
    """No listener on the connection's statements: they may go to the driver directly."""
    dispatch = sync.dispatch
    return not any(getattr(dispatch, name) for name in _WATCHED)


@dataclass(frozen=True, slots=True)
class Call:
    """A statement's plan with the caller's rows of values (one, or several: executemany)."""

    plan: Plan
    rows_of_values: Sequence[Mapping[str, Any]]
    many: bool


def planned(
    statement: Any, parameters: Any, dialect: Any, *, rows_of_many: bool = False
) -> Call | None:
    """The plan of `statement` for `parameters` (a mapping, or a list of them for
    executemany); None when it must go through SQLAlchemy. An executemany that returns rows
    (RETURNING) is planned only for a caller that runs it row by row (`rows_of_many`)."""
    many = isinstance(parameters, Sequence) and not isinstance(parameters, Mapping)
    if many:
        if not parameters:
            return None
        rows_of_values: Sequence[Mapping[str, Any]] = parameters
    else:
        rows_of_values = [parameters or {}]
    keys = tuple(sorted(rows_of_values[0]))
    first = rows_of_values[0].keys()
    if many and any(values.keys() != first for values in rows_of_values):
        return None  # rows of different keys: SQLAlchemy says which value is missing
    plan = plan_of(statement, keys, dialect)
    if plan is None or (many and plan.returns_rows and not rows_of_many):
        return None
    return Call(plan, rows_of_values, many)


def _run(sqlite: sqlite3.Connection, statement: Any, parameters: Any, dialect: Any) -> Any:
    """Run `statement` on `sqlite`; None when it must go through SQLAlchemy."""
    call = planned(statement, parameters, dialect, rows_of_many=True)
    if call is None:
        return None
    plan, rows_of_values, many = call.plan, call.rows_of_values, call.many
    try:
        if many and plan.returns_rows:
            # A multi-row INSERT … RETURNING (a batch's inbox rows): one statement per row,
            # each a few microseconds on sqlite3, where SQLAlchemy renders and runs one
            # statement of all the rows ("insertmanyvalues") at about 20 µs a row.
            rows, rowcount = [], 0
            for values in rows_of_values:
                cursor = sqlite.execute(plan.sql, arguments(plan, values))
                rows.extend(cursor.fetchall())
                rowcount += cursor.rowcount
                cursor.close()
        else:
            if many:
                cursor = sqlite.executemany(plan.sql, [arguments(plan, v) for v in rows_of_values])
            else:
                cursor = sqlite.execute(plan.sql, arguments(plan, rows_of_values[0]))
            rows = cursor.fetchall() if plan.returns_rows else []
            rowcount = cursor.rowcount
            cursor.close()
    except sqlite3.Error as error:
        raise sa.exc.DBAPIError.instance(
            plan.sql, None, error, sqlite3.Error, dialect=dialect
        ) from error
    result = Rows(plan.metadata, iter(processed(plan, rows)))
    result.rowcount = rowcount
    return result


def processed(plan: Plan, rows: list[Any]) -> list[Any]:
    converters = plan.converters
    if not converters:
        return rows
    done = []
    for row in rows:
        values = list(row)
        for i, process in converters:
            values[i] = process(values[i])
        done.append(values)
    return done


class DirectEngine(AsyncEngine):
    """The SQLite engine (`db.make_engine`): its connections are `DirectConnection`s."""

    _connection_cls = DirectConnection
