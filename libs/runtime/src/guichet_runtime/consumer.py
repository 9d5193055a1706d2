"""Idempotent Kafka consumers with bounded retries and a dead-letter topic.

Contract of a subscription made here:
- the offset is committed only after the handler's transaction committed;
- an event already handled (same consumer, same event id) is skipped;
- a record that can never be processed (unknown type, invalid body, a handler that
  keeps failing for a non-infrastructure reason) goes to `<topic>.dlq` with the reason,
  then is acknowledged so the partition moves on;
- an infrastructure failure (database or network down) is not dead-lettered: the
  record is redelivered until the infrastructure is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import sqlalchemy.exc
from aiokafka import ConsumerRebalanceListener, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from guichet_runtime.crashpoints import crash_point
from guichet_runtime.db import AlreadyProcessed, UnitOfWork
from guichet_runtime.metrics import RuntimeMetrics
from guichet_runtime.personal_data import (
    CannotOpen,
    KeyUnavailable,
    PersonalData,
    PersonalDataErased,
)
from shared_models import Envelope, topics

log = logging.getLogger(__name__)

Handler = Callable[[Any, UnitOfWork], Awaitable[None]]
UowFactory = Callable[[tuple[str, str] | None], UnitOfWork]


class TransientError(Exception):
    """A failure that will go away by itself (a remote system down): retry, never dead-letter."""


class PermanentError(Exception):
    """A record that can never be processed: dead-letter it at once."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(
        exc,
        TransientError
        | KeyUnavailable
        | OSError
        | TimeoutError
        | sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError,
    )


def _retryable(exc: BaseException) -> bool:
    return not isinstance(exc, PermanentError | AlreadyProcessed)


async def _raw_body(msg: StreamMessage[Any]) -> bytes:
    # Decoding is ours (schema validation by event type), so the body stays bytes.
    return msg.body


class Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """What the group coordinator gave this process: `joined` once a first assignment
    (possibly empty) arrived, and the partitions it holds now."""

    def __init__(self) -> None:
        self.joined = False
        self.partitions: frozenset[TopicPartition] = frozenset()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.partitions = self.partitions - set(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.partitions = frozenset(assigned)
        self.joined = True


class EventConsumer:
    """Registers one consumer group's subscriptions on a broker."""

    def __init__(
        self,
        broker: KafkaBroker,
        group_id: str,
        uow_factory: UowFactory,
        *,
        attempts: int = 4,
        max_wait: float = 2.0,
        namespace: str = "",
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self._namespace = namespace
        self.metrics = metrics
        self.membership = Membership()
        self.subscriber: Any = None
        self.broker = broker
        self.group_id = group_id
        self._uow_factory = uow_factory
        self._attempts = attempts
        self._max_wait = max_wait
        self.dead_lettered = 0
        self._topics: list[str] = []
        self._by_type: dict[str, tuple[type[Envelope], Handler]] = {}
        self._attached = False
        #: Opens the events' sealed personal fields (guichet_runtime.personal_data).
        self.personal_data: PersonalData | None = None
        self.erased = 0

    def subscribe(
        self, topic_names: Iterable[str], handlers: dict[type[Envelope], Handler]
    ) -> None:
        """Route `handlers`' event types, read from `topic_names`, to their handlers."""
        self._topics.extend(t for t in topic_names if t not in self._topics)
        self._by_type.update({cls.event_type: (cls, handler) for cls, handler in handlers.items()})

    def attach(self) -> None:
        """Register one subscriber for every topic: one group member per process, so a
        start or a crash costs one rebalance, not one per topic."""
        if not self._topics or self._attached:
            return
        by_type = self._by_type

        async def consume(body: bytes, msg: KafkaMessage) -> None:
            await self._consume(body, msg, by_type)

        consume.__name__ = f"{self.group_id.replace('-', '_')}_consume"
        self.subscriber = self.broker.subscriber(
            *(self._namespace + t for t in self._topics),
            group_id=self._namespace + self.group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_raw_body,
            title=f"{self.group_id}",
            listener=self.membership,
        )
        self.subscriber(consume)
        self._attached = True

    @property
    def subscribes(self) -> bool:
        return bool(self._topics)

    async def stop_consuming(self) -> None:
        """Stop reading new records, wait (up to the broker's graceful timeout) for the
        one in flight to finish and its offset to be committed, then leave the group."""
        if self.subscriber is not None:
            await self.subscriber.stop()

    async def sample_lag(self) -> None:
        """Consumer lag per assigned partition: the log end offset minus this process's
        position (what the partition still holds for it)."""
        if self.metrics is None or self.subscriber is None:
            return
        consumer = getattr(self.subscriber, "consumer", None)
        group = self._namespace + self.group_id
        lag, service = self.metrics.consumer_lag, self.metrics.service
        lag.clear()
        if consumer is None:
            self.metrics.assigned_partitions.labels(service, group).set(0)
            return
        assigned = list(consumer.assignment())
        self.metrics.assigned_partitions.labels(service, group).set(len(assigned))
        if not assigned:
            return
        ends = await consumer.end_offsets(assigned)
        for tp in assigned:
            position = await consumer.position(tp)
            labels = (service, group, tp.topic, str(tp.partition))
            lag.labels(*labels).set(max(ends.get(tp, position) - position, 0))

    async def _consume(
        self, body: bytes, msg: KafkaMessage, by_type: dict[str, tuple[type[Envelope], Handler]]
    ) -> None:
        event_type = msg.headers.get("event_type", "")
        if event_type not in by_type:
            await self._dead_letter(msg, body, f"type d'événement inconnu: {event_type!r}")
            return
        cls, handler = by_type[event_type]
        key_id: str | None = None
        try:
            if self.personal_data is None:
                event = cls.model_validate_json(body)
            else:
                event, key_id = await self.personal_data.open(cls, body)
        except ValidationError as exc:
            await self._dead_letter(msg, body, f"événement invalide: {exc}")
            return
        except CannotOpen as exc:
            await self._dead_letter(msg, body, f"données personnelles illisibles: {exc}")
            return
        except PersonalDataErased as erased:
            await self._erased(erased)
            return
        # KeyUnavailable (the key service down) propagates: NACK, the record comes again.
        inbox_key = (self.group_id, str(event.event_id))
        started = time.perf_counter()
        outcome = "ok"
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=0.05, max=self._max_wait),
                retry=retry_if_exception(_retryable),
                reraise=True,
            ):
                with attempt:
                    uow = self._uow_factory(inbox_key)
                    if key_id is not None:
                        uow.use_personal_key(str(getattr(event, "file_id", "")), key_id)
                    await handler(event, uow)
            # Committed, offset not acknowledged yet: redelivered at restart, the inbox skips it.
            crash_point("consumer.after_commit_before_ack")
        except AlreadyProcessed:
            outcome = "duplicate"
            log.info("%s: event %s already processed", self.group_id, event.event_id)
        except Exception as exc:
            if is_transient(exc):
                outcome = "redelivered"
                log.warning("%s: transient failure, will redeliver: %r", self.group_id, exc)
                raise  # NACK: seek back, the record comes again
            outcome = "dead_letter"
            log.exception("%s: dead-lettering event %s", self.group_id, event.event_id)
            await self._dead_letter(msg, body, f"{type(exc).__name__}: {exc}")
        finally:
            if self.metrics is not None:
                self.metrics.observe_handler(event_type, outcome, time.perf_counter() - started)

    async def _erased(self, erased: PersonalDataErased) -> None:
        """The citizen's data key was shredded: the handler does not run (no message to an
        erased citizen, no copy of their data), the event is recorded as handled (inbox) and
        the partition moves on."""
        try:
            async with self._uow_factory((self.group_id, erased.event_id)) as uow:
                await uow.commit()
        except AlreadyProcessed:
            return
        self.erased += 1
        if self.metrics is not None:
            self.metrics.observe_handler(erased.event_type, "erased", 0.0)
        log.warning(
            "%s: %s %s of file %s not handled: the citizen's personal data was erased "
            "(data key %s shredded)",
            self.group_id,
            erased.event_type,
            erased.event_id,
            erased.file_id,
            erased.key_id,
        )

    async def _dead_letter(self, msg: KafkaMessage, body: bytes, reason: str) -> None:
        record = msg.raw_message
        if isinstance(record, tuple):  # batch subscribers only; ours read one record at a time
            raise TypeError("a batch of records cannot be dead-lettered as one")
        headers = {k: v for k, v in msg.headers.items() if isinstance(v, str)}
        headers.update(
            {
                "dlq_reason": reason[:2000],
                "dlq_consumer": self.group_id,
                "dlq_source_topic": record.topic,
                "dlq_source_partition": str(record.partition),
                "dlq_source_offset": str(record.offset),
            }
        )
        await self.broker.publish(
            body,
            topics.dead_letter(record.topic),
            key=record.key,
            headers=headers,  # namespaced already
        )
        self.dead_lettered += 1
        if self.metrics is not None:
            self.metrics.count_dead_letter(record.topic)
        log.error(
            "%s: record %s@%s dead-lettered: %s", self.group_id, record.topic, record.offset, reason
        )
