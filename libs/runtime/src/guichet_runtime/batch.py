"""One database transaction for a batch of consumed records.

A consumer reading records in batches (guichet_runtime.consumer) opens one `BatchTransaction`:
- `claim` writes the inbox rows of the whole batch in one statement and says which events
  were not processed before (the others are skipped without calling their handler);
- every record's handler gets a `BatchMember`, a unit of work of the batch's transaction.
  A batch is first applied without savepoints (`savepoints` False): almost every batch has
  no failure, and two savepoint statements per record were a fifth of a service's
  statements. When a record fails, or a handler leaves its unit of work without committing,
  the batch is `spoiled`: the consumer rolls it all back and applies it again with a
  SAVEPOINT per record (`savepoints` True), where a handler that fails rolls back its own
  savepoint only (guichet_runtime.batch_consumption);
- `commit` writes the outbox rows of every record applied in one statement, removes the
  inbox rows of the records not applied (failed, dead-lettered, or whose handler committed
  nothing), and commits once.

Handlers are written once (`async with uow: ... await uow.commit()`) and run unchanged in
both modes: a `BatchMember` is a `UnitOfWork`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guichet_runtime.db import (
    AUDIT_TRAILS,
    LaterRows,
    UnitOfWork,
    after_commit,
    insert_ignore_of,
    utcnow,
    write_later,
    write_outbox,
)
from guichet_runtime.statements import prepared
from guichet_runtime.transactions import begun, ended

if TYPE_CHECKING:
    from guichet_runtime.audit import AuditTrail
    from guichet_runtime.personal_data import PersonalData

log = logging.getLogger(__name__)


@prepared
def _claim(dialect: str, inbox: sa.Table) -> Any:
    """A batch's inbox rows: INSERT … ON CONFLICT DO NOTHING RETURNING event_id."""
    return insert_ignore_of(dialect, inbox).returning(inbox.c.event_id)


BatchFactory = Callable[[str], "BatchTransaction"]


class BatchTransaction:
    """`async with BatchTransaction(...) as batch:` opens the transaction; `await
    batch.commit()` makes the applied records durable at once; leaving without commit rolls
    everything back (inbox rows included: the records come again)."""

    def __init__(
        self,
        engine: AsyncEngine,
        outbox: sa.Table,
        inbox: sa.Table,
        *,
        consumer: str,
        on_commit: Callable[[], None] | None = None,
        audit: AuditTrail | None = None,
        personal_data: PersonalData | None = None,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        #: Called after a commit that wrote outbox rows (the relay's wake-up); `on_commit`
        #: after every commit.
        self._on_outbox = on_outbox
        #: Seals the personal fields of what the batch's records emit (as a UnitOfWork does).
        self.personal_data = personal_data
        self.outbox = outbox
        self.inbox = inbox
        self.consumer = consumer
        self.audit = audit if audit is not None else AUDIT_TRAILS.get(outbox.metadata)
        self._on_commit = on_commit
        self._conn: AsyncConnection | None = None
        self._claimed: set[str] = set()
        self._applied: set[str] = set()
        self._pending: list[dict[str, Any]] = []
        self._learnt: list[tuple[str, str]] = []
        self._later: LaterRows = {}
        #: The driver's connection under `conn` (sqlite_inline's, aiosqlite's or asyncpg's).
        self._driver: Any = None
        #: PostgreSQL (a round trip per statement): the savepoint statements sent together go
        #: in one simple query, and a record's RELEASE goes with the next record's SAVEPOINT
        #: or with the COMMIT (which releases every savepoint). SQLite: one by one, at once.
        self.releases_later = engine.dialect.name == "postgresql"
        #: The savepoint of the last record applied is still open (`releases_later`).
        self.release_pending = False
        #: Each record in a savepoint of its own (the second pass over a spoiled batch).
        self.savepoints = False
        #: Without savepoints, a member left without committing: its writes cannot be undone
        #: alone, the batch must be rolled back and applied again with savepoints.
        self.spoiled = False

    @property
    def conn(self) -> AsyncConnection:
        assert self._conn is not None, "use the batch inside `async with`"
        return self._conn

    async def __aenter__(self) -> BatchTransaction:
        self._conn = await begun(self.engine)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            await ended(conn, commit=False)  # closed even when the rollback fails
        except Exception:  # the connection is gone (the reason we are leaving)
            log.warning("batch rollback failed", exc_info=True)

    async def claim(self, event_ids: Sequence[str]) -> set[str]:
        """Insert the batch's inbox rows in one statement; returns the ids that were not
        processed before by this consumer (a redelivered event is not among them)."""
        unique = list(dict.fromkeys(event_ids))
        if not unique:
            return set()
        now = utcnow()
        # One statement built the same for every batch (SQLAlchemy's "insertmanyvalues"
        # renders the rows as one multi-row INSERT … RETURNING): compiled once, not once
        # per batch size, and no cache key computed over the rows.
        statement = _claim(self.conn.dialect.name, self.inbox)
        rows = [{"consumer": self.consumer, "event_id": e, "processed_at": now} for e in unique]
        claimed = set((await self.conn.execute(statement, rows)).scalars())
        self._claimed |= claimed
        return claimed

    async def savepoint_sql(self, *statements: str) -> None:
        """Savepoint statements (no parameters, no result), sent to the driver's own
        connection: through SQLAlchemy's execution (a context, a cursor result, events) each
        cost about as much as a service's own statement, and a batch sends two per record
        (28 of intake's 88 statements per file). The batch's transaction is already open at
        the driver (`claim` ran first), so the savepoint belongs to it; SQLAlchemy knows
        nothing of savepoints sent as text either way. On PostgreSQL the statements go in
        one simple query (one round trip); SQLite's driver takes one statement at a time."""
        if self._driver is None:
            raw = await self.conn.get_raw_connection()
            self._driver = raw.driver_connection
        for sql in ["; ".join(statements)] if self.releases_later else statements:
            result = await self._driver.execute(sql)
            close = getattr(result, "close", None)  # SQLite's cursor; asyncpg returns a status
            if close is not None:
                await close()

    def member(self, event_id: str) -> BatchMember:
        """The unit of work of one record of the batch (a SAVEPOINT when `savepoints`)."""
        return BatchMember(self, event_id)

    def applied(
        self,
        event_id: str,
        outbox_rows: list[dict[str, Any]],
        learnt: list[tuple[str, str]],
        later: LaterRows,
    ) -> None:
        """A member committed: its outbox rows, the rows it inserts at commit and the key
        refs it learnt go with the batch."""
        self._applied.add(event_id)
        self._pending.extend(outbox_rows)
        self._learnt.extend(learnt)
        for statement, rows in later.items():
            self._later.setdefault(statement, []).extend(rows)

    async def commit(self) -> None:
        conn = self.conn
        not_applied = self._claimed - self._applied
        if not_applied:  # as in a unit of work that did not commit: no inbox row is left
            inbox = self.inbox
            await conn.execute(
                sa.delete(inbox).where(
                    inbox.c.consumer == self.consumer, inbox.c.event_id.in_(not_applied)
                )
            )
        await write_later(conn, self._later)
        self._later = {}
        wrote_outbox = await write_outbox(conn, self.outbox, self._pending)
        self._pending = []
        self._conn = None
        await ended(conn, commit=True)
        learnt, self._learnt = self._learnt, []
        after_commit(self.personal_data, learnt, wrote_outbox, self._on_outbox, self._on_commit)


#: The name of every record's savepoint: they are not nested (each is released or rolled
#: back before, or as, the next record's is opened).
SAVEPOINT = "guichet_record"


class BatchMember(UnitOfWork):
    """One record's unit of work inside a batch. Without savepoints (a batch's first pass)
    it writes straight into the batch's transaction, and leaving without commit spoils the
    batch (`BatchTransaction.spoiled`). With savepoints: `async with` opens a SAVEPOINT of
    the batch's transaction, `commit` releases it (its outbox rows are written with the batch's;
    on PostgreSQL the RELEASE goes with the next record's SAVEPOINT or with the COMMIT, one
    round trip per record instead of two), leaving without commit rolls back this record's
    writes only.

    The savepoint statements are sent as written to the driver's connection
    (`BatchTransaction.savepoint_sql`), not through `begin_nested()`: SQLAlchemy gives each
    savepoint a new name, so it compiled both statements again for every record (and they
    pushed the service's own statements out of its compiled cache)."""

    def __init__(self, batch: BatchTransaction, event_id: str) -> None:
        super().__init__(
            batch.engine,
            batch.outbox,
            batch.inbox,
            audit=batch.audit,
            personal_data=batch.personal_data,
        )
        self._batch = batch
        self._event_id = event_id
        self._in_savepoint = False

    async def __aenter__(self) -> BatchMember:
        batch = self._batch
        self._conn = batch.conn
        if not batch.savepoints:
            return self
        if batch.release_pending:  # the previous record's, in the same round trip
            batch.release_pending = False
            await batch.savepoint_sql(f"RELEASE SAVEPOINT {SAVEPOINT}", f"SAVEPOINT {SAVEPOINT}")
        else:
            await batch.savepoint_sql(f"SAVEPOINT {SAVEPOINT}")
        self._in_savepoint = True
        return self

    async def _close(self, *, commit: bool) -> None:
        conn, self._conn = self._conn, None
        self._later = {}  # handed to the batch by `commit`; otherwise never written
        batch = self._batch
        if conn is not None and not commit and not batch.savepoints:
            batch.spoiled = True  # its writes are mixed with the other records'
        if conn is None or not self._in_savepoint:
            return
        self._in_savepoint = False
        if commit and batch.releases_later:
            batch.release_pending = True
        elif commit:
            await batch.savepoint_sql(f"RELEASE SAVEPOINT {SAVEPOINT}")
        else:
            await batch.savepoint_sql(
                f"ROLLBACK TO SAVEPOINT {SAVEPOINT}", f"RELEASE SAVEPOINT {SAVEPOINT}"
            )

    async def commit(self) -> None:
        await self._before_commit()
        pending, self._pending = self._pending, []
        learnt, self._learnt = self._learnt, []
        later, self._later = self._later, {}
        await self._close(commit=True)
        self._batch.applied(self._event_id, pending, learnt, later)
