"""Database engine, messaging tables and the unit of work.

A unit of work is one database transaction in which a handler writes its domain
changes, the inbox row of the event it handles and the outbox rows of the events it
emits: all of it commits, or none.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from opentelemetry import propagate
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from guichet_runtime.direct_sqlite import DirectEngine
from guichet_runtime.settings import POOL_SIZE
from guichet_runtime.sqlite_inline import inline_dbapi
from guichet_runtime.statements import inserting, prepared
from guichet_runtime.transactions import begun, ended
from shared_models import Envelope, personal_fields

if TYPE_CHECKING:
    from guichet_runtime.audit import AuditTrail, Entry
    from guichet_runtime.personal_data import PersonalData


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


#: Named constraints, so migrations can alter them (SQLite alters a table by copying it).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> sa.MetaData:
    return sa.MetaData(naming_convention=NAMING_CONVENTION)


BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


#: PostgreSQL: the channel the outbox notifies (LISTEN/NOTIFY) when a transaction wrote rows
#: in it, so the relay (of any replica) wakes at its commit instead of at its next poll.
OUTBOX_CHANNEL = "guichet_outbox"

#: PostgreSQL: the outbox notifies `OUTBOX_CHANNEL` itself, from a trigger run once per
#: statement that inserts in it. The notification is delivered at commit (none after a
#: rollback), and the server folds a transaction's identical notifications into one. It was
#: a statement of the writer's own, `SELECT pg_notify(…)`: one more round trip per
#: transaction that emits. The function runs with the rights of the role that inserts (the
#: service's run-time role); `pg_notify` is everyone's.
OUTBOX_NOTIFY = (
    "CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); RETURN NULL; END $$",
    "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
    "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()",
)

#: What undoes `OUTBOX_NOTIFY` (a migration's downgrade).
OUTBOX_NOTIFY_DROPPED = (
    "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
    "DROP FUNCTION IF EXISTS outbox_notify()",
)


def messaging_tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """Add the outbox and inbox tables to a service's metadata."""
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("headers", sa.Text, nullable=False, comment="JSON: trace context"),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    for statement in OUTBOX_NOTIFY:
        # Tables made by `create_all` (tests, tools) get the trigger too; migrations run
        # the same statements (`guichet_runtime.migrations.create_outbox_notify`).
        ddl = sa.DDL(statement)  # type: ignore[no-untyped-call]  # (SQLAlchemy's own typing)
        sa.event.listen(outbox, "after_create", ddl.execute_if(dialect="postgresql"))
    inbox = sa.Table(
        "inbox",
        metadata,
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("processed_at", UtcDateTime, nullable=False),
    )
    return outbox, inbox


def make_engine(url: str, pool_size: int = POOL_SIZE) -> AsyncEngine:
    """One pooled engine per process; SQLite is serialised through one connection.

    SQLite runs on the event loop's thread (guichet_runtime.sqlite_inline), not on
    aiosqlite's: a third of the CPU per statement was the hand-over between threads.

    PostgreSQL: at most `pool_size` connections, opened when first needed and then kept (a
    transaction beyond them waits for one). SQLAlchemy's "overflow" connections are not
    used: one was closed as soon as it was given back to a pool holding its `pool_size`
    idle ones, so a process whose concurrency hovered about that size opened and closed
    connections all the time. PostgreSQL forks a process and authenticates for each: in
    `make bench` France Travail's adapter (callbacks and agency calls at once) opened 285
    connections for 500 files.
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=60, module=inline_dbapi()
        )

        @sa_event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's BEGIN below take the write lock up front: a deferred
            # transaction upgrading to a write can fail with SQLITE_BUSY mid-way.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # No busy timeout inside SQLite: the driver waits for a lock asynchronously.
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa_event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.connection.driver_connection.begin_immediate()

        # Its connections run the statements built once on sqlite3 directly.
        return DirectEngine(engine.sync_engine)
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)
    ping_when_idle(engine, IDLE_PING_SECONDS)
    # Its connections run the statements built once on asyncpg directly (imported here: a
    # service on SQLite does not load asyncpg).
    from guichet_runtime.direct_asyncpg import DirectPgEngine  # noqa: PLC0415

    return DirectPgEngine(engine.sync_engine)


#: PostgreSQL: a pooled connection left idle this long is pinged before it is used again.
IDLE_PING_SECONDS = 5.0


def ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """SQLAlchemy's pre-ping (a round trip before each use, so that a connection the server
    closed meanwhile, a restart or a fail-over, is replaced before a statement fails on it),
    for a connection that was idle `idle_seconds` or more only.

    `pool_pre_ping` pinged at every checkout, that is once per transaction: about an
    eighth of the services' CPU per file on PostgreSQL went to those pings, and a sixth of
    PostgreSQL's (docs/performance.md). A connection checked in moments ago is taken as it
    is; should the server have gone in those moments, its statement fails as one in
    flight would have (a transient failure: the record comes again), and SQLAlchemy then
    replaces every connection of the pool. A failed ping raises `DisconnectionError`: the
    pool discards that connection and checks out another, as the pre-ping does."""
    dialect = engine.sync_engine.dialect

    @sa_event.listens_for(engine.sync_engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = monotonic()

    @sa_event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or monotonic() - idle_since < idle_seconds:
            return  # a new connection, or one used moments ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"idle connection lost: {exc!r}") from exc
        if alive is False:
            raise sa.exc.DisconnectionError("idle connection lost")


def insert_ignore(conn: AsyncConnection, table: sa.Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for the connection's dialect, built once per dialect
    and table: executed with its row (`conn.execute(insert_ignore(conn, t), row)`), it is
    not built again nor given a new cache key (guichet_runtime.statements)."""
    return insert_ignore_of(conn.dialect.name, table)


@prepared
def insert_ignore_of(dialect: str, table: sa.Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


#: A service's audit trail by its metadata, registered by `guichet_runtime.audit.audit_tables`.
AUDIT_TRAILS: dict[sa.MetaData, AuditTrail] = {}


async def write_outbox(conn: AsyncConnection, outbox: sa.Table, rows: list[dict[str, Any]]) -> bool:
    """A transaction's outbox rows in one statement (on PostgreSQL the table's trigger tells
    the relays, at commit: `OUTBOX_NOTIFY`); False when there are none."""
    if not rows:
        return False
    await conn.execute(inserting(outbox), rows)
    return True


#: Rows a transaction inserts at its commit (`UnitOfWork.insert_at_commit`): statement (a
#: statement is hashed by identity) -> its rows, in the order they were given.
LaterRows = dict[Any, list[dict[str, Any]]]


async def write_later(conn: AsyncConnection, later: LaterRows) -> None:
    """The rows kept for the commit: one execution (executemany) per statement."""
    for statement, rows in later.items():
        await conn.execute(statement, rows)


def after_commit(
    personal_data: PersonalData | None,
    learnt: list[tuple[str, str]],
    wrote_outbox: bool,
    on_outbox: Callable[[], None] | None,
    on_commit: Callable[[], None] | None,
) -> None:
    """What follows a commit (a unit of work's or a batch's): the key refs it read or wrote
    become known to the process, the relay wakes if it wrote events, the listeners run."""
    if learnt and personal_data is not None:
        personal_data.learn(learnt)
    if wrote_outbox and on_outbox is not None:
        on_outbox()
    if on_commit is not None:
        on_commit()


class AlreadyProcessed(Exception):
    """The event was handled before by this consumer (redelivery)."""


class UnitOfWork:
    """`async with uow:` opens a transaction; `await uow.commit()` makes it durable.

    Leaving the block without commit rolls everything back, outbox rows included.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        outbox: sa.Table,
        inbox: sa.Table,
        *,
        inbox_key: tuple[str, str] | None = None,
        on_commit: Callable[[], None] | None = None,
        audit: AuditTrail | None = None,
        personal_data: PersonalData | None = None,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        #: Called after a commit that wrote outbox rows (the relay's wake-up); `on_commit`
        #: after every commit.
        self._on_outbox = on_outbox
        #: Seals the events' personal fields at commit (guichet_runtime.personal_data).
        self.personal_data = personal_data
        #: file id -> the citizen's data key id learnt in this unit of work (recorded at
        #: commit, and sealing what it emits for the file).
        self.personal_keys: dict[str, str] = {}
        self._outbox = outbox
        self._inbox = inbox
        self._inbox_key = inbox_key
        self._on_commit = on_commit
        self._pending: list[dict[str, Any]] = []
        #: The service's audit trail (`guichet_runtime.audit.AuditTrail`), when it keeps one:
        #: given, or found next to the outbox in the service's metadata.
        self._audit = audit if audit is not None else AUDIT_TRAILS.get(outbox.metadata)
        self._audited: list[Entry] = []
        #: Key refs (file id, key id) read or written here: known to the process at commit.
        self._learnt: list[tuple[str, str]] = []
        self._conn: AsyncConnection | None = None
        self.emitted: list[tuple[str, Envelope]] = []
        #: Rows inserted at commit (`insert_at_commit`).
        self._later: LaterRows = {}

    @property
    def conn(self) -> AsyncConnection:
        assert self._conn is not None, "use the unit of work inside `async with`"
        return self._conn

    async def __aenter__(self) -> UnitOfWork:
        self._conn = await begun(self._engine)
        if self._inbox_key is not None:
            consumer, event_id = self._inbox_key
            result = await self._conn.execute(
                insert_ignore(self._conn, self._inbox),
                {"consumer": consumer, "event_id": event_id, "processed_at": utcnow()},
            )
            if result.rowcount == 0:
                await self._close(commit=False)
                raise AlreadyProcessed(event_id)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close(commit=False)

    async def _close(self, *, commit: bool) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        self._later = {}
        await ended(conn, commit=commit)

    def insert_at_commit(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        """Insert `rows` with `statement` (an INSERT built once: `prepared`, `insert_ignore`)
        when this unit of work commits, in one execution with the other rows given for it,
        in a batch with those of the batch's other records: for rows nothing reads back in
        the transaction that writes them (a timeline's lines). Not committed, not written."""
        self._later.setdefault(statement, []).extend(rows)

    def emit(self, topic: str, event: Envelope) -> None:
        """Queue `event` for `topic`; it is written to the outbox at commit."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the relay publishes later, in this trace
        self._pending.append(
            {
                "topic": topic,
                "key": event.key(),
                "event_type": event.event_type,
                "payload": event.model_dump_json(),
                "headers": json.dumps(carrier),
                "created_at": utcnow(),
            }
        )
        self.emitted.append((topic, event))

    def use_personal_key(self, file_id: str, key_id: str) -> None:
        """The file's personal data is sealed with `key_id`: remembered at commit, and what
        this unit of work emits for the file is sealed with it."""
        self.personal_keys[file_id] = key_id

    def learnt_key(self, file_id: str, key_id: str) -> None:
        """A key ref read or written in this unit of work: the process knows it once this
        commits."""
        self._learnt.append((file_id, key_id))

    async def _seal_pending(self) -> None:
        sealing = self.personal_data
        if sealing is None:
            return
        for known_file, known_key in self.personal_keys.items():
            if await sealing.remember(self.conn, known_file, known_key):
                self.learnt_key(known_file, known_key)
        if not self._pending:
            return
        emitted = self.emitted[-len(self._pending) :]
        for row, (_, event) in zip(self._pending, emitted, strict=True):
            file_id = getattr(event, "file_id", None)
            if file_id is None or not personal_fields(type(event)):
                continue
            key_id = await sealing.file_key(self, file_id)
            if key_id is not None:
                row["payload"] = await sealing.seal(event, key_id, self.conn)

    @property
    def audit_trail(self) -> AuditTrail | None:
        return self._audit

    def record(self, entry: Entry) -> None:
        """Queue an audit entry (`guichet_runtime.audit.Entry`); it is chained at commit, in
        this transaction, so the action and its trace commit together or not at all."""
        if self._audit is None:
            raise RuntimeError("this service keeps no audit trail")
        self._audited.append(entry)

    async def _before_commit(self) -> None:
        """What every commit writes first, in its transaction: the audit entries (last, so the
        chain's head stays locked for a few statements only) and the file keys learnt, with
        the pending events' personal fields sealed. A batch member does the same."""
        if self._audited and self._audit is not None:
            await self._audit.append(self.conn, self._audited)
            self._audited = []
        await self._seal_pending()

    async def commit(self) -> None:
        await self._before_commit()
        await write_later(self.conn, self._later)
        wrote_outbox = await write_outbox(self.conn, self._outbox, self._pending)
        self._pending = []
        await self._close(commit=True)
        learnt, self._learnt = self._learnt, []
        after_commit(self.personal_data, learnt, wrote_outbox, self._on_outbox, self._on_commit)
