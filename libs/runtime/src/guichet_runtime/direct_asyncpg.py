"""Statements built once, run on asyncpg's own connection inside a transaction.

The PostgreSQL counterpart of `guichet_runtime.direct_sqlite`: a statement built by a
`prepared` builder is compiled once per parameter names (the same `Plan`, for the asyncpg
dialect: `$n` placeholders with their casts, the bind processors of the columns' types, the
result processors of the selected columns) and sent by asyncpg itself, whose statement
cache prepares it once per connection; SQLAlchemy's execution (an execution context, its
cache lookup, the greenlet hand-over of the asyncio extension, the adapted cursor) is left
out. `DirectPgConnection.execute` takes the direct way only when all of this holds, and
otherwise hands the call to SQLAlchemy unchanged:

- the statement was built by a `prepared` builder (or is one of the runtime's own);
- SQLAlchemy began a transaction (its BEGIN is sent to asyncpg here, at the first statement,
  as SQLAlchemy's asyncpg cursor sends it);
- nobody listens to the engine's statements;
- the plan needs nothing computed at execution (`direct_sqlite.plan_of`), and its result
  columns' processors do not depend on the column's type as the server reports it (a
  `Float`'s does: such a statement goes through SQLAlchemy).

It reaches into SQLAlchemy through underscored names: to send the BEGIN
(`_start_transaction`, under the connection's `_execute_mutex`), to translate asyncpg's
errors (`_handle_exception_no_connection`) and, when one says the connection is lost, to
renew the pool as SQLAlchemy does (`pool._invalidate`); `tests/unit/test_direct_asyncpg.py`
must run on any SQLAlchemy upgrade.

What SQLAlchemy would have done and this does too: the same SQL and converted values, the
same exception classes (asyncpg's errors translated as SQLAlchemy's asyncpg dialect
translates them, then wrapped as `sqlalchemy.exc.IntegrityError`, …, with the `sqlstate`
that `failures.lost_a_race` reads), a lost connection invalidated, and `rowcount`; the rows
come back as SQLAlchemy rows.

Written by hand (about 120 lines of code), for the reason `direct_sqlite` was: SQLAlchemy
offers no lighter execution path for a compiled statement, and on PostgreSQL that execution
was the largest part of the services' CPU per statement (docs/performance.md).
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guichet_runtime.direct_sqlite import (
    Plan,
    Rows,
    arguments,
    nobody_listens,
    planned,
    processed,
)
from guichet_runtime.statements import is_prepared

#: The rows a command touched, from its status ("UPDATE 3", "INSERT 0 1", "DELETE 2").
_COUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+|MERGE) (\d+)")


class DirectPgConnection(AsyncConnection):
    """The PostgreSQL engine's connection: `prepared` statements run on asyncpg directly.

    Whether it may (nobody listens to its statements) is looked up once, at its first
    statement inside a transaction; asyncpg's connection, at every statement (the pool may
    have replaced it)."""

    _may: bool | None = None

    async def execute(
        self,
        statement: Any,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> Any:
        if execution_options is None and is_prepared(statement):
            try:
                driver = await self._direct()
                done = None
                if driver is not None:
                    done = await _run(driver, statement, parameters, self.dialect)
            except sa.exc.DBAPIError as failed:
                await self._invalidate_if_lost(failed)
                raise
            if done is not None:
                return done
        return await super().execute(statement, parameters, execution_options=execution_options)

    async def _invalidate_if_lost(self, failed: sa.exc.DBAPIError) -> None:
        """What SQLAlchemy does when its own statement finds the connection lost: this
        connection is invalidated (the rollback that follows does not use it), and the
        pool's other connections are renewed at their next checkout."""
        sync = self.sync_connection
        if sync is None or sync.invalidated:
            return
        proxied = sync.connection
        orig: Any = failed.orig
        if not self.dialect.is_disconnect(orig, proxied.dbapi_connection, None):
            return
        failed.connection_invalidated = True
        sync.engine.pool._invalidate(proxied, failed)
        await self.invalidate(failed)

    async def _direct(self) -> asyncpg.Connection | None:
        """asyncpg's connection under this one, inside the transaction SQLAlchemy began:
        at its first statement the BEGIN is sent here, as SQLAlchemy's asyncpg cursor sends
        it (`AsyncAdapt_asyncpg_connection._start_transaction`, under its lock)."""
        if not self.in_transaction():
            return None
        sync = self.sync_connection
        assert sync is not None
        if self._may is None:
            self._may = nobody_listens(sync)
        if not self._may:
            return None
        driver = sync.connection.driver_connection
        if driver is None:
            return None
        if not driver.is_in_transaction():
            adapted: Any = sync.connection.dbapi_connection
            dbapi = self.dialect.loaded_dbapi
            async with adapted._execute_mutex:
                if adapted._transaction is None:
                    try:
                        await adapted._start_transaction()
                    except dbapi.Error as error:  # as SQLAlchemy wraps it (a lost connection:
                        # an InterfaceError, transient)
                        raise sa.exc.DBAPIError.instance(
                            "BEGIN", None, error, dbapi.Error, dialect=self.dialect
                        ) from error
            if not driver.is_in_transaction():  # autocommit: SQLAlchemy's way
                return None
        return driver


async def _run(driver: asyncpg.Connection, statement: Any, parameters: Any, dialect: Any) -> Any:
    """Run `statement` on `driver`; None when it must go through SQLAlchemy."""
    call = planned(statement, parameters, dialect)
    if call is None:
        return None
    plan, rows_of_values, many = call.plan, call.rows_of_values, call.many
    try:
        if many:
            await driver.executemany(plan.sql, [arguments(plan, v) for v in rows_of_values])
            rows: list[Any] = []
            count = -1
        elif plan.returns_rows:
            rows = [
                tuple(r) for r in await driver.fetch(plan.sql, *arguments(plan, rows_of_values[0]))
            ]
            count = len(rows)
        else:
            status = await driver.execute(plan.sql, *arguments(plan, rows_of_values[0]))
            found = _COUNT.match(status or "")
            rows, count = [], int(found.group(1)) if found else -1
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise _translated(plan, error, dialect) from error
    result = Rows(plan.metadata, iter(processed(plan, rows)))
    result.rowcount = count
    return result


def _translated(plan: Plan, error: Exception, dialect: Any) -> sa.exc.DBAPIError:
    """asyncpg's `error` as SQLAlchemy's asyncpg dialect raises it (its DB-API class, with
    the SQLSTATE), wrapped as SQLAlchemy wraps it (`IntegrityError`, `OperationalError`…)."""
    dbapi = dialect.loaded_dbapi
    try:
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(dbapi, error)
    except dbapi.Error as adapted:
        wrapped = sa.exc.DBAPIError.instance(plan.sql, None, adapted, dbapi.Error, dialect=dialect)
        assert isinstance(wrapped, sa.exc.DBAPIError)
        return wrapped
    raise AssertionError("asyncpg's error was not translated")  # pragma: no cover


class DirectPgEngine(AsyncEngine):
    """The PostgreSQL engine (`db.make_engine`): its connections are `DirectPgConnection`s."""

    _connection_cls = DirectPgConnection
