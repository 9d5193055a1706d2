"""The outbox relay: publishes committed outbox rows to Kafka, then deletes them.

At-least-once: a crash between publish and delete republishes the rows; consumers
deduplicate on event id.

A batch of rows goes through one idempotent aiokafka producer (`producer_options`; records
sent in id order, batched by the producer's linger, retried without reordering or
duplicating) and is deleted in one statement. The trace context the unit of work recorded
travels as the records' headers. Without `producer_options` (unit tests' in-memory broker)
rows go through the FastStream broker.

PostgreSQL: a commit that wrote outbox rows notifies `OUTBOX_CHANNEL` (the outbox's trigger,
`guichet_runtime.db.OUTBOX_NOTIFY`); the relay LISTENs and wakes at once (the poll stays,
slower, as a fallback). Several replicas relay one outbox: each claims rows with `FOR UPDATE
SKIP LOCKED` and publishes only the rows of a key whose earlier rows are not held by another
replica, so events of a file keep their order. A replica that held rows back so tries again
`HELD_BACK_RETRY_SECONDS` later: the other replica's delete notifies nothing, and the
held-back rows would otherwise wait for the next commit or the poll (5 s; a test with a 60 s
poll waited out its minute once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from opentelemetry import context as otel_context
from opentelemetry import propagate
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guichet_runtime.crashpoints import crash_point
from guichet_runtime.db import OUTBOX_CHANNEL
from guichet_runtime.metrics import RuntimeMetrics
from guichet_runtime.statements import param, params, prepared
from guichet_runtime.transactions import begun, ended, transaction

log = logging.getLogger(__name__)

#: How soon a replica looks again after holding rows back behind another replica's batch.
HELD_BACK_RETRY_SECONDS = 0.1


@prepared
def _oldest(outbox: sa.Table, batch_size: int) -> sa.Select[Any]:
    """The outbox's oldest rows, in id order."""
    return sa.select(outbox).order_by(outbox.c.id).limit(batch_size)


@prepared
def _up_to(outbox: sa.Table) -> sa.Delete:
    """The outbox's rows up to an id (`params(id=…)`)."""
    return sa.delete(outbox).where(outbox.c.id <= param(outbox.c.id))


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox: sa.Table,
        broker: Any,
        *,
        batch_size: int = 500,
        idle_seconds: float = 1.0,
        namespace: str = "",
        metrics: RuntimeMetrics | None = None,
        producer_options: dict[str, Any] | None = None,
        listen_poll_seconds: float = 5.0,
    ) -> None:
        self._namespace = namespace
        self._producer_options = producer_options
        self._producer: AIOKafkaProducer | None = None
        self._listen_poll = listen_poll_seconds
        self._listening = False
        self._listener: asyncio.Task[None] | None = None
        #: Rows the last round left for later: an earlier row of their key was held.
        self.held_back = 0
        self._metrics = metrics
        self._engine = engine
        self._outbox = outbox
        self._broker = broker
        self._batch_size = batch_size
        # Built once (guichet_runtime.statements): the oldest rows locked for a replica of
        # several (PostgreSQL), and their deletion by id.
        self._claim = _oldest(outbox, batch_size).with_for_update(skip_locked=True)
        self._delete = sa.delete(outbox).where(outbox.c.id.in_(sa.bindparam("ids", expanding=True)))
        self._idle = idle_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        """Called after a commit, so events leave without waiting for the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        if self._engine.dialect.name == "postgresql":
            self._listener = asyncio.create_task(self._listen(), name="outbox-listen")

    async def _listen(self) -> None:
        """PostgreSQL: LISTEN on the outbox channel (a connection of its own), wake on every
        notification; reconnect after a failure, the poll covering the gap."""
        url = self._engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                await self._listen_once(dsn)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox relay: LISTEN failed; polling meanwhile", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=5.0)

    async def _listen_once(self, dsn: str) -> None:
        """Listen until the relay stops or the connection is lost."""
        import asyncpg  # noqa: PLC0415  (PostgreSQL only: a relay on SQLite never loads it)

        lost = asyncio.Event()
        conn = await asyncpg.connect(dsn)
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
            self._listening = True
            self._wake.set()  # rows committed before we listened
            waits = {asyncio.create_task(self._stop.wait()), asyncio.create_task(lost.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()
        finally:
            self._listening = False
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def backlog(self) -> int:
        """Outbox rows committed and not yet published."""
        async with self._engine.connect() as conn:
            count = await conn.scalar(sa.select(sa.func.count()).select_from(self._outbox))
        return int(count or 0)

    async def sample_backlog(self) -> None:
        if self._metrics is not None:
            self._metrics.outbox_backlog.labels(self._metrics.service).set(await self.backlog())

    async def stop(self) -> None:
        """Let the loop finish its batch (never cut between a publish and its delete),
        then publish what is committed. The caller bounds the time."""
        self._stop.set()
        self._wake.set()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._task is not None:
            try:
                await asyncio.shield(self._task)
            except asyncio.CancelledError:  # the caller gave up: stop the loop too
                self._task.cancel()
                raise
            finally:
                if self._task.done():
                    self._task = None
        # A last drain, so a clean stop leaves nothing behind.
        try:
            while await self.publish_pending():
                pass
        except Exception:  # broker already gone: the rows stay for the next start
            log.warning("outbox not drained at stop", exc_info=True)
        await self.close_producer()

    async def close_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()
            except Exception:
                log.warning("relay producer not closed cleanly", exc_info=True)

    async def _run(self) -> None:
        delay = self._idle
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                poll = max(delay, self._listen_poll) if self._listening else delay
                if self.held_back:
                    poll = HELD_BACK_RETRY_SECONDS
                await asyncio.wait_for(self._wake.wait(), timeout=poll)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                while await self.publish_pending() == self._batch_size and not self._stop.is_set():
                    pass
                delay = self._idle
            except Exception:
                log.exception("outbox relay failed; retrying")
                delay = min(max(delay * 2, 0.5), 10.0)

    async def publish_pending(self) -> int:
        """Publish one batch of outbox rows in id order; returns how many."""
        if self._engine.dialect.name == "sqlite":
            return await self._publish_unlocked()
        async with self._engine.connect() as conn:
            await conn.begin()
            # Several replicas may relay the same outbox (PostgreSQL): each takes other rows,
            # and keeps them locked until they are published and deleted.
            claimed = (await conn.execute(self._claim)).all()
            rows = await self._in_key_order(conn, claimed)
            self.held_back = len(claimed) - len(rows)
            if not rows:
                await conn.rollback()
                return 0
            await self._publish(rows)
            await conn.execute(self._delete, {"ids": [r.id for r in rows]})
            await conn.commit()
        return self._count(rows)

    async def _in_key_order(self, conn: AsyncConnection, claimed: Sequence[Any]) -> list[Any]:
        """The claimed rows that can go now: a key's row waits while an earlier row of that
        key is held by another replica (skipped by SKIP LOCKED), so a file's events keep
        their order. The rows left out stay locked until this transaction ends."""
        if not claimed:
            return []
        table = self._outbox
        ids = [r.id for r in claimed]
        keys = list({r.key for r in claimed})
        held = sa.select(table.c.key, sa.func.min(table.c.id)).where(
            table.c.key.in_(keys), table.c.id.not_in(ids)
        )
        first_held = dict((await conn.execute(held.group_by(table.c.key))).all())
        return [r for r in claimed if r.key not in first_held or r.id < first_held[r.key]]

    async def _publish_unlocked(self) -> int:
        """SQLite: one process relays its own outbox, and the database has one connection
        (one writer). Read the batch, let the connection go, publish, then delete in a short
        transaction: a broker that is slow or down never holds up the service's writes."""
        conn = await begun(self._engine)
        try:
            rows = (await conn.execute(_oldest(self._outbox, self._batch_size))).all()
        finally:
            await ended(conn, commit=False)
        if not rows:
            return 0
        await self._publish(rows)
        async with transaction(self._engine) as conn:
            # The rows read were the outbox's oldest: every row up to the last one read was
            # read (a row written since has a greater id; only this relay deletes), so the
            # deletion needs no list of ids, which SQLAlchemy renders again at each round.
            await conn.execute(_up_to(self._outbox), params(id=rows[-1].id))
        return self._count(rows)

    async def _publish(self, rows: Sequence[Any]) -> None:
        crash_point("relay.before_publish")  # committed, not published: published at restart
        if self._producer_options is not None:
            await self._produce(rows)
        else:
            await self._publish_through_broker(rows)
        crash_point("relay.after_publish")  # published, not deleted: republished at restart

    async def _produce(self, rows: Sequence[Any]) -> None:
        """One idempotent producer: every row sent in id order, then all acknowledgements
        awaited (a failure leaves the rows in the outbox, sent again at the next round)."""
        producer = self._producer
        if producer is None:
            assert self._producer_options is not None
            producer = AIOKafkaProducer(
                **self._producer_options, enable_idempotence=True, acks="all"
            )
            await producer.start()
            self._producer = producer
        futures = []
        try:
            for row in rows:
                headers = [
                    ("event_type", row.event_type.encode()),
                    ("content-type", b"application/json"),
                ]
                headers += [(k, v.encode()) for k, v in json.loads(row.headers).items()]
                futures.append(
                    await producer.send(
                        self._namespace + row.topic,
                        row.payload.encode(),
                        key=row.key.encode(),
                        headers=headers,
                    )
                )
            await asyncio.gather(*futures)
        except Exception:
            # A producer in doubt (fenced, timed out) is replaced: the next round starts clean.
            for future in futures:
                future.cancel()
            await self.close_producer()
            raise

    async def _publish_through_broker(self, rows: Sequence[Any]) -> None:
        futures = []
        for row in rows:
            carrier = json.loads(row.headers)
            token = otel_context.attach(propagate.extract(carrier))
            try:
                futures.append(
                    await self._broker.publish(
                        row.payload.encode(),
                        self._namespace + row.topic,
                        key=row.key.encode(),
                        headers={
                            "event_type": row.event_type,
                            "content-type": "application/json",
                        },
                        no_confirm=True,
                    )
                )
            finally:
                otel_context.detach(token)
        await asyncio.gather(*futures)

    def _count(self, rows: Sequence[Any]) -> int:
        self.published += len(rows)
        if self._metrics is not None:
            for row in rows:
                self._metrics.count_published(row.event_type)
        return len(rows)
