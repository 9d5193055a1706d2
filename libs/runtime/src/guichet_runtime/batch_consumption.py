"""A batch of records through one transaction and one offset commit: how the services'
consumers read (guichet_runtime.consumer.EventConsumer with `batch_max` > 1)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from guichet_runtime.batch import BatchFactory
from guichet_runtime.crashpoints import crash_point
from guichet_runtime.failures import is_transient, lost_a_race
from guichet_runtime.record_span import headers_of, processing

if TYPE_CHECKING:
    from guichet_runtime.consumer import Decoded, EventConsumer, Handler
    from shared_models import Envelope

# The consumer's logger, as before the split: operators filter on it (docs/operations.md).
log = logging.getLogger("guichet_runtime.consumer")


class _Spoiled(Exception):
    """A record failed, or left its unit of work without committing, in a batch applied
    without savepoints: the batch is rolled back and applied again, record by record in
    savepoints. `failure`: the record's handler raised it (its first attempt, counted)."""

    def __init__(self, event_id: str, failure: Exception | None) -> None:
        how = "left without commit" if failure is None else type(failure).__name__
        super().__init__(f"event {event_id}: {how}")
        self.event_id = event_id
        self.failure = failure


class BatchConsumption:
    """A batch of records (FastStream's batch subscriber: aiokafka `getmany`) through one
    transaction and one offset commit (the subscriber's, after this returns)."""

    def __init__(
        self,
        consumer: EventConsumer,
        batch_factory: BatchFactory,
        by_type: dict[str, tuple[type[Envelope], Handler]],
    ) -> None:
        self._consumer = consumer
        self._batch_factory = batch_factory
        self._by_type = by_type
        self._tracer = trace.get_tracer(__name__)

    async def _decode(self, raw: Any) -> Decoded:
        headers = headers_of(raw)
        event_type = headers.get("event_type", "")
        record = await self._consumer.decode(self._by_type, event_type, raw.value or b"")
        record.raw, record.headers = raw, headers
        return record

    async def consume(self, raws: tuple[Any, ...]) -> None:
        records = []
        for raw in raws:
            record = await self._decode(raw)
            if record.ignored:
                self._consumer.observe_ignored(record.event_type)
            else:
                records.append(record)
        if not records:  # only events this service ignores: no transaction to open
            return
        try:
            outcomes = await self._apply_all(records)
        except Exception as exc:
            if lost_a_race(exc):  # rolled back: let the other transaction finish first
                await asyncio.sleep(random.uniform(0.05, 0.5))
            raise
        # Committed, offsets not acknowledged yet: redelivered at restart, the inbox skips them.
        crash_point("consumer.after_commit_before_ack")
        consumer = self._consumer
        for record in records:
            if record.reason is not None:
                await consumer.dead_letter(
                    record.raw, record.raw.value or b"", record.headers, record.reason
                )
        if consumer.metrics is not None:
            for event_type, outcome, seconds in outcomes:
                consumer.metrics.observe_handler(event_type, outcome, seconds)

    async def _apply_all(self, records: list[Decoded]) -> list[tuple[str, str, float]]:
        """The batch without savepoints; spoiled, rolled back and applied again with them."""
        try:
            return await self._in_one_transaction(records, savepoints=False)
        except _Spoiled as exc:
            spoiled = exc
        # Rolled back, nothing committed and nothing sent (a batch consumer's handlers only
        # write to its database): every record again, each in its savepoint.
        log.info(
            "%s: a batch of %d records is applied again, each in a savepoint (%s)",
            self._consumer.group_id,
            len(records),
            spoiled,
        )
        return await self._in_one_transaction(records, savepoints=True, spoiled=spoiled)

    async def _in_one_transaction(
        self, records: list[Decoded], *, savepoints: bool, spoiled: _Spoiled | None = None
    ) -> list[tuple[str, str, float]]:
        """Apply the valid records in one transaction; (event type, outcome, seconds) each.
        Without savepoints, raises `_Spoiled` (rolled back) at the first record that fails or
        leaves its unit of work without committing. With them, after `spoiled`: the record
        that spoiled the first pass has had its first attempt."""
        group = self._consumer.group_id
        valid = [r for r in records if r.reason is None and r.erased is None]
        erased = [r.erased for r in records if r.erased is not None]
        outcomes: list[tuple[str, str, float]] = []
        async with self._batch_factory(group) as batch:
            batch.savepoints = savepoints
            new = await batch.claim(
                [str(r.event.event_id) for r in valid if r.event is not None]
                + [e.event_id for e in erased]
            )
            for gone in erased:  # recorded as handled (inbox), the handler does not run
                if gone.event_id in new:
                    new.discard(gone.event_id)
                    async with batch.member(gone.event_id) as uow:
                        await uow.commit()
                    self._consumer.count_erased(gone)
                    outcomes.append((gone.event_type, "erased", 0.0))
            for record in valid:
                assert record.event is not None and record.handler is not None
                event_id = str(record.event.event_id)
                if event_id not in new:  # processed before, or twice in this batch
                    log.info("%s: event %s already processed", group, event_id)
                    outcomes.append((record.event_type, "duplicate", 0.0))
                    continue
                new.discard(event_id)
                started = time.perf_counter()
                if savepoints:
                    failed = spoiled.failure if spoiled and spoiled.event_id == event_id else None
                    outcome = await self._apply(record, batch.member, event_id, failed)
                else:
                    outcome = await self._apply_unguarded(record, batch, event_id)
                outcomes.append((record.event_type, outcome, time.perf_counter() - started))
                # Some records applied in the batch's transaction, nothing committed yet.
                crash_point("consumer.mid_batch")
            await batch.commit()
        return outcomes

    async def _apply_unguarded(self, record: Decoded, batch: Any, event_id: str) -> str:
        """Run the record's handler once, straight in the batch's transaction. A lost race
        propagates (the batch rolls back for redelivery, as with savepoints); any other
        failure, or a unit of work left without commit, spoils the batch."""
        assert record.handler is not None
        with processing(self._tracer, record.raw, record.headers):
            try:
                await record.handler(record.event, record.keyed(batch.member(event_id)))
            except Exception as exc:
                if lost_a_race(exc):
                    raise
                raise _Spoiled(event_id, exc) from exc
        if batch.spoiled:
            raise _Spoiled(event_id, None)
        return "ok"

    async def _apply(
        self, record: Decoded, member: Any, event_id: str, failed: Exception | None = None
    ) -> str:
        """Run the record's handler in its savepoint (`failed`: its first attempt, made in the
        batch's first pass, failed so); an infrastructure failure propagates (the batch rolls
        back, every partition is rewound), any other failure marks the record for the
        dead-letter topic."""
        assert record.handler is not None
        with processing(self._tracer, record.raw, record.headers):
            try:
                handler, event = record.handler, record.event
                await self._consumer.with_attempts(
                    lambda: handler(event, record.keyed(member(event_id))),
                    in_batch=True,
                    failed=failed,
                )
            except Exception as exc:
                if is_transient(exc):
                    log.warning(
                        "%s: transient failure, the batch will be redelivered: %r",
                        self._consumer.group_id,
                        exc,
                    )
                    raise
                log.exception("%s: dead-lettering event %s", self._consumer.group_id, event_id)
                record.reason = f"{type(exc).__name__}: {exc}"
                return "dead_letter"
        return "ok"
