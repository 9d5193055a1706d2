"""Idempotent Kafka consumers with bounded retries and a dead-letter topic.

Contract of a subscription made here:
- the offset is committed only after the handler's transaction committed;
- an event already handled (same consumer, same event id) is skipped;
- a record that can never be processed (unknown type, invalid body, a handler that
  keeps failing for a non-infrastructure reason) goes to `<topic>.dlq` with the reason,
  then is acknowledged so the partition moves on;
- an infrastructure failure (database or network down) is not dead-lettered: the
  record is redelivered until the infrastructure is back;
- an event type the subscription declares `ignored` (a shared topic's events this service
  has nothing to do with) is acknowledged as it comes: not decoded, not recorded in the
  inbox, not traced, no transaction (a batch of nothing else opens none).

Records are read one at a time (`batch_max` 1); or several are handled at once, each on
its own (`concurrent_max` > 1, what adapters use: their handler calls an agency, see
`ConcurrentConsumption`); or in batches (`batch_max` > 1): a batch is one database
transaction (the inbox rows claimed in one statement, a SAVEPOINT per record, the outbox
rows written in one statement) and one offset commit after it. A record that fails rolls
back its savepoint only and is dead-lettered (or retried, by the same rules) after the
batch committed; an infrastructure failure rolls the whole batch back and rewinds every
partition to its first record (guichet_runtime.batch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pydantic import ValidationError

from guichet_runtime.batch import BatchFactory
from guichet_runtime.batch_consumption import BatchConsumption
from guichet_runtime.batch_poll import wait_for_records
from guichet_runtime.concurrent_consumption import ConcurrentConsumption
from guichet_runtime.crashpoints import crash_point
from guichet_runtime.db import AlreadyProcessed, UnitOfWork
from guichet_runtime.failures import LOCK_CONFLICTS as LOCK_CONFLICTS
from guichet_runtime.failures import PermanentError as PermanentError
from guichet_runtime.failures import TransientError as TransientError
from guichet_runtime.failures import is_transient as is_transient
from guichet_runtime.failures import lost_a_race as lost_a_race
from guichet_runtime.membership import Membership
from guichet_runtime.metrics import RuntimeMetrics
from guichet_runtime.offsets import OffsetCommits
from guichet_runtime.personal_data import (
    CannotOpen,
    PersonalData,
    PersonalDataErased,
)
from guichet_runtime.retries import with_attempts
from shared_models import Envelope, topics

log = logging.getLogger(__name__)

Handler = Callable[[Any, UnitOfWork], Awaitable[None]]
UowFactory = Callable[[tuple[str, str] | None], UnitOfWork]


def _retryable(exc: BaseException) -> bool:
    return not isinstance(exc, PermanentError | AlreadyProcessed)


def _retryable_in_batch(exc: BaseException) -> bool:
    """In a batch, a lost race is not retried in its savepoint (the batch still holds the
    locks of the records before it): the whole batch rolls back and comes again."""
    return _retryable(exc) and not lost_a_race(exc)


async def _raw_body(msg: StreamMessage[Any]) -> bytes:
    # Decoding is ours (schema validation by event type), so the body stays bytes.
    return msg.body


@dataclass
class Decoded:
    """A consumed record, decoded: its handler and event (its personal fields opened, with the
    data key they were sealed with), or why it can never be handled (the dead-letter reason),
    or the erasure its shredded key means, or that this service ignores its type.
    `raw`/`headers`: the record, in a batch."""

    event_type: str
    ignored: bool = False
    handler: Handler | None = None
    event: Envelope | None = None
    key_id: str | None = None
    reason: str | None = None
    erased: PersonalDataErased | None = None
    raw: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def keyed(self, uow: UnitOfWork) -> UnitOfWork:
        """`uow`, told the file's data key (what it emits for the file is sealed with it)."""
        if self.key_id is not None:
            uow.use_personal_key(str(getattr(self.event, "file_id", "")), self.key_id)
        return uow


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
        batch_factory: BatchFactory | None = None,
        batch_max: int = 1,
        batch_wait_ms: int = 1000,
        group_instance_id: str | None = None,
        commit_interval_ms: int = 0,
    ) -> None:
        self._namespace = namespace
        #: Static membership (ServiceSettings.kafka_group_instance_id); None: dynamic.
        self.group_instance_id = group_instance_id
        self._batch_factory = batch_factory
        #: Records per batch (1: one at a time, one transaction each); set before `attach`.
        self.batch_max = batch_max
        #: Records handled at once, each on its own transactions (ConcurrentConsumption);
        #: 1: not at all. Takes precedence over `batch_max`; set before `attach`.
        self.concurrent_max = 1
        self.batch_wait_ms = batch_wait_ms
        self.metrics = metrics
        #: The batched subscribers' offsets (guichet_runtime.offsets): committed at most
        #: once per `commit_interval_ms` (0: after every batch), never past a record not
        #: handled.
        self.offsets = OffsetCommits(commit_interval_ms / 1000)
        self.membership = Membership(self.offsets)
        self.subscriber: Any = None
        self.broker = broker
        self.group_id = group_id
        self._uow_factory = uow_factory
        self._attempts = attempts
        self._max_wait = max_wait
        self.dead_lettered = 0
        self._topics: list[str] = []
        self._by_type: dict[str, tuple[type[Envelope], Handler]] = {}
        self._ignored: set[str] = set()
        self._attached = False
        #: Opens the events' sealed personal fields (guichet_runtime.personal_data).
        self.personal_data: PersonalData | None = None
        self.erased = 0

    def subscribe(
        self,
        topic_names: Iterable[str],
        handlers: dict[type[Envelope], Handler],
        *,
        ignored: Iterable[type[Envelope]] = (),
    ) -> None:
        """Route `handlers`' event types, read from `topic_names`, to their handlers.
        `ignored`: event types of these topics this service has nothing to do with (a shared
        topic): acknowledged as they come, without decoding, inbox row, span or transaction.
        Any other type is unknown, and dead-lettered."""
        self._topics.extend(t for t in topic_names if t not in self._topics)
        handled = set(self._by_type) | {cls.event_type for cls in handlers}
        skipped = self._ignored | {cls.event_type for cls in ignored}
        if both := sorted(handled & skipped):
            raise ValueError(f"{self.group_id}: both handled and ignored: {', '.join(both)}")
        self._ignored = skipped
        self._by_type.update({cls.event_type: (cls, handler) for cls, handler in handlers.items()})

    def attach(self) -> None:
        """Register one subscriber for every topic: one group member per process, so a
        start or a crash costs one rebalance, not one per topic."""
        if not self._topics or self._attached:
            return
        by_type = self._by_type
        options: dict[str, Any] = {
            "group_id": self._namespace + self.group_id,
            "auto_offset_reset": "earliest",
            "ack_policy": AckPolicy.NACK_ON_ERROR,
            "decoder": _raw_body,
            "title": f"{self.group_id}",
            "listener": self.membership,
        }
        if self.group_instance_id:
            options["group_instance_id"] = self.group_instance_id
        name = f"{self.group_id.replace('-', '_')}_consume"
        topic_names = [self._namespace + t for t in self._topics]
        if self.concurrent_max > 1:
            at_once = ConcurrentConsumption(self, by_type).consume
            self._subscribe_batches(topic_names, options, self.concurrent_max, at_once, name)
        elif self.batch_max > 1 and self._batch_factory is not None:
            batches = BatchConsumption(self, self._batch_factory, by_type)
            self._subscribe_batches(topic_names, options, self.batch_max, batches.consume, name)
        else:
            current: Any = self.broker.context.get_local  # the record: see _consume's docstring

            async def consume(body: Any) -> None:
                await self._consume(body, current("message"), by_type)

            consume.__name__ = name
            self.subscriber = self.broker.subscriber(*topic_names, **options)
            self.subscriber(consume)
        self._attached = True

    def _subscribe_batches(
        self,
        topic_names: list[str],
        options: dict[str, Any],
        max_records: int,
        consume: Callable[[tuple[Any, ...]], Awaitable[None]],
        name: str,
    ) -> None:
        """One batch subscriber (at most `max_records` a poll) giving its records to `consume`.

        Its offsets are committed by `self.offsets` (at most once an interval) rather than by
        FastStream after each batch (`AckPolicy.MANUAL`); a batch that raises is handed back
        as FastStream's NACK_ON_ERROR does (`nack`: every partition rewound to its first
        record of the batch)."""
        current: Any = self.broker.context.get_local  # the records: see _consume's docstring
        offsets, group = self.offsets, self.group_id

        async def consume_batch(body: Any) -> None:
            message = current("message")
            try:
                await consume(message.raw_message)
            except Exception:
                try:
                    await message.nack()
                except Exception:  # logged, as FastStream's own NACK_ON_ERROR logs it
                    log.exception("%s: the batch could not be handed back", group)
                raise
            await offsets.handled(message.consumer, message.raw_message)

        consume_batch.__name__ = name
        self.subscriber = self.broker.subscriber(
            *topic_names,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=self.batch_wait_ms,
            **(options | {"ack_policy": AckPolicy.MANUAL}),
        )
        wait_for_records(self.subscriber, max_records, self.batch_wait_ms)
        self.subscriber(consume_batch)

    @property
    def subscribes(self) -> bool:
        return bool(self._topics)

    @property
    def handled_types(self) -> frozenset[str]:
        """The event types this consumer hands to a handler."""
        return frozenset(self._by_type)

    @property
    def ignored_types(self) -> frozenset[str]:
        """The event types of its topics this consumer declares it has nothing to do with."""
        return frozenset(self._ignored)

    async def stop_consuming(self) -> None:
        """Stop reading new records, wait (up to the broker's graceful timeout) for the
        one in flight to finish and its offset to be committed, then leave the group. The
        offsets waiting for their interval are committed first, and the batch in flight's
        at once (`OffsetCommits.stop`)."""
        await self.offsets.stop()
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

    async def decode(
        self, by_type: dict[str, tuple[type[Envelope], Handler]], event_type: str, body: bytes
    ) -> Decoded:
        """The record's event for its handler, or why it cannot be handled. KeyUnavailable
        (the key service down) propagates: the record (or the batch) comes again."""
        decoded = Decoded(event_type)
        if event_type in self._ignored:
            decoded.ignored = True
            return decoded
        if event_type not in by_type:
            decoded.reason = f"type d'événement inconnu: {event_type!r}"
            return decoded
        cls, decoded.handler = by_type[event_type]
        try:
            if self.personal_data is None:
                decoded.event = cls.model_validate_json(body)
            else:
                decoded.event, decoded.key_id = await self.personal_data.open(cls, body)
        except ValidationError as exc:
            decoded.reason = f"événement invalide: {exc}"
        except CannotOpen as exc:
            decoded.reason = f"données personnelles illisibles: {exc}"
        except PersonalDataErased as erased:
            decoded.erased = erased
        return decoded

    async def _consume(
        self, body: bytes, msg: KafkaMessage, by_type: dict[str, tuple[type[Envelope], Handler]]
    ) -> None:
        """One record. `msg` is read from FastStream's context by the subscriber, not injected
        (`msg: KafkaMessage`): FastDepends resolved that on a worker thread, a thread hop per
        delivery (≈ 0.2 ms of CPU, docs/performance.md)."""
        record = msg.raw_message
        if isinstance(record, tuple):  # batch subscribers only; this one reads one record
            raise TypeError("a batch of records cannot be handled as one record")
        headers = {k: v for k, v in msg.headers.items() if isinstance(v, str)}
        await self.handle(body, headers, record, by_type)

    async def handle(
        self,
        body: bytes,
        headers: dict[str, str],
        record: Any,
        by_type: dict[str, tuple[type[Envelope], Handler]],
    ) -> None:
        """One record on its own: its handler's transactions, retries, dead letter. A
        transient failure propagates once the attempts are spent (the record comes again)."""
        decoded = await self.decode(by_type, headers.get("event_type", ""), body)
        if decoded.ignored:
            self.observe_ignored(decoded.event_type)
            return
        if decoded.reason is not None:
            await self.dead_letter(record, body, headers, decoded.reason)
            return
        if decoded.erased is not None:
            await self._erased(decoded.erased)
            return
        event, handler, event_type = decoded.event, decoded.handler, decoded.event_type
        assert event is not None and handler is not None
        inbox_key = (self.group_id, str(event.event_id))
        started = time.perf_counter()
        outcome = "ok"
        try:
            await self.with_attempts(
                lambda: handler(event, decoded.keyed(self._uow_factory(inbox_key)))
            )
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
            await self.dead_letter(record, body, headers, f"{type(exc).__name__}: {exc}")
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
        self.count_erased(erased)
        if self.metrics is not None:
            self.metrics.observe_handler(erased.event_type, "erased", 0.0)

    def observe_ignored(self, event_type: str) -> None:
        """A record of a type this service ignores was acknowledged without handling."""
        if self.metrics is not None:
            self.metrics.observe_handler(event_type, "ignored", 0.0)

    def count_erased(self, erased: PersonalDataErased) -> None:
        """An event whose personal data was erased was recorded as handled, not handled."""
        self.erased += 1
        log.warning(
            "%s: %s %s of file %s not handled: the citizen's personal data was erased "
            "(data key %s shredded)",
            self.group_id,
            erased.event_type,
            erased.event_id,
            erased.file_id,
            erased.key_id,
        )

    async def with_attempts(
        self,
        call: Callable[[], Awaitable[None]],
        *,
        in_batch: bool = False,
        failed: BaseException | None = None,
    ) -> None:
        """A handler's attempts: a failure other than PermanentError is tried again, after
        0.05 s, 0.1 s, 0.2 s... (at most `max_wait`), `attempts` times in all. `failed`: the
        first attempt was made already and failed so (a batch's first pass); the schedule
        goes on from there, or `failed` is raised if it is not worth another attempt."""
        await with_attempts(
            call,
            attempts=self._attempts,
            first_wait=0.05,
            max_wait=self._max_wait,
            retry=_retryable_in_batch if in_batch else _retryable,
            failed=failed,
        )

    async def dead_letter(
        self, record: Any, body: bytes, headers: dict[str, str], reason: str
    ) -> None:
        """Publish `record` (its body and string headers) to `<topic>.dlq` with `reason`."""
        headers = dict(headers)
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
