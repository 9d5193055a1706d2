"""Records of different files handled at once, each on its own: how adapters consume
(guichet_runtime.consumer.EventConsumer with `concurrent_max` > 1)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from guichet_runtime.crashpoints import crash_point
from guichet_runtime.record_span import headers_of, processing

if TYPE_CHECKING:
    from guichet_runtime.consumer import EventConsumer, Handler
    from shared_models import Envelope


class ConcurrentConsumption:
    """Records of different files handled at once, for handlers with a side effect outside
    the database (an adapter calls its agency): FastStream's batch subscriber (aiokafka
    `getmany`, at most `concurrent_max` records) and one offset commit after the batch.

    Each record is handled on its own, exactly as one read at a time (EventConsumer.handle:
    its own transactions, retries, dead letter), so a record never waits for another's
    transaction and a batch is never rolled back over records already handled. The records
    of one key (one file) are handled in their order, those of different keys at once: at
    most `concurrent_max` handlers run together. A record that fails for good is
    dead-lettered and the others go on; a transient failure lets the others finish, then
    hands the batch back (every partition rewound to its first record): what was committed
    is skipped when it comes again (the inbox, the handler's own record of its side effect).
    """

    def __init__(
        self, consumer: EventConsumer, by_type: dict[str, tuple[type[Envelope], Handler]]
    ) -> None:
        self._consumer = consumer
        self._by_type = by_type
        self._tracer = trace.get_tracer(__name__)

    async def consume(self, raws: tuple[Any, ...]) -> None:
        by_key: dict[Any, list[Any]] = {}
        for raw in raws:
            by_key.setdefault(raw.key, []).append(raw)
        outcomes = await asyncio.gather(
            *(self._in_order(same_key) for same_key in by_key.values()), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # NACK: the whole batch comes again, the handled records skipped

    async def _in_order(self, raws: Iterable[Any]) -> None:
        """One key's records, one after the other; the first failure stops them (the records
        after it come again with the batch, in their order)."""
        consumer = self._consumer
        for raw in raws:
            headers = headers_of(raw)
            with processing(self._tracer, raw, headers):
                await consumer.handle(raw.value or b"", headers, raw, self._by_type)
            # This record handled (committed), the batch's offsets not committed yet.
            crash_point("consumer.mid_batch")
