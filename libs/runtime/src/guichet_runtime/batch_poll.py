"""How a batched consumer waits for records.

FastStream's batch subscriber polls with `getmany(timeout_ms=batch_timeout_ms)` and, after
an empty poll, sleeps `batch_timeout_ms` again before the next one. aiokafka's `getmany`
already returns as soon as any record is there, so that sleep buys nothing: it only delays
the first record after a quiet spell by up to the sleep, and it forces the wait to be short
(a long one would be a long delay), so an idle consumer woke up twenty times a second.

`wait_for_records` gives the subscriber a poll without the sleep: one `getmany` waiting up
to `wait_ms` (a record arriving meanwhile is taken at once), then at once the next. The
wait now only sets how often an idle consumer wakes up; stopping the subscriber cancels the
poll, so it does not delay a stop either.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord


def wait_for_records(subscriber: Any, max_records: int, wait_ms: int) -> None:
    """Replace FastStream's `BatchSubscriber.get_msg` on this one subscriber (the method
    its consume loop calls for each batch) with a poll that does not sleep when empty."""

    async def get_msg(consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
        records = await consumer.getmany(timeout_ms=wait_ms, max_records=max_records)
        return tuple(chain.from_iterable(records.values()))

    subscriber.get_msg = get_msg
