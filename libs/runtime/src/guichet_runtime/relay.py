"""The outbox relay: publishes committed outbox rows to Kafka, then deletes them.

At-least-once: a crash between publish and delete republishes the rows; consumers
deduplicate on event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from opentelemetry import context as otel_context
from opentelemetry import propagate
from sqlalchemy.ext.asyncio import AsyncEngine

from guichet_runtime.crashpoints import crash_point
from guichet_runtime.metrics import RuntimeMetrics

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox: sa.Table,
        broker: Any,
        *,
        batch_size: int = 500,
        idle_seconds: float = 0.25,
        namespace: str = "",
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self._namespace = namespace
        self._metrics = metrics
        self._engine = engine
        self._outbox = outbox
        self._broker = broker
        self._batch_size = batch_size
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

    async def _run(self) -> None:
        delay = self._idle
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
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
        table = self._outbox
        async with self._engine.connect() as conn:
            await conn.begin()
            # Several replicas may relay the same outbox (PostgreSQL): each takes other rows,
            # and keeps them locked until they are published and deleted.
            query = sa.select(table).order_by(table.c.id).limit(self._batch_size)
            rows = (await conn.execute(query.with_for_update(skip_locked=True))).all()
            if not rows:
                await conn.rollback()
                return 0
            await self._publish(rows)
            await conn.execute(sa.delete(table).where(table.c.id.in_([r.id for r in rows])))
            await conn.commit()
        return self._count(rows)

    async def _publish_unlocked(self) -> int:
        """SQLite: one process relays its own outbox, and the database has one connection
        (one writer). Read the batch, let the connection go, publish, then delete in a short
        transaction: a broker that is slow or down never holds up the service's writes."""
        table = self._outbox
        async with self._engine.connect() as conn:
            query = sa.select(table).order_by(table.c.id).limit(self._batch_size)
            rows = (await conn.execute(query)).all()
            await conn.rollback()
        if not rows:
            return 0
        await self._publish(rows)
        async with self._engine.begin() as conn:
            await conn.execute(sa.delete(table).where(table.c.id.in_([r.id for r in rows])))
        return self._count(rows)

    async def _publish(self, rows: Sequence[Any]) -> None:
        crash_point("relay.before_publish")  # committed, not published: published at restart
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
        crash_point("relay.after_publish")  # published, not deleted: republished at restart

    def _count(self, rows: Sequence[Any]) -> int:
        self.published += len(rows)
        if self._metrics is not None:
            for row in rows:
                self._metrics.count_published(row.event_type)
        return len(rows)
