"""Records handled at once, each on its own (guichet_runtime.consumer.ConcurrentConsumption,
what adapters use: their handler calls an agency), on a real SQLite database: the records of
different files overlap, those of one file keep their order, a poison record is dead-lettered
without the others being handled twice, and a transient failure hands the batch back with
what was handled committed, so that the redelivery calls nobody twice. FastStream's
in-memory broker captures the dead letters; the batch is given as aiokafka records (keys
and offsets of their own, which FastStream's in-memory `publish_batch` cannot set). The
bound on records in flight and the offset commit are checked on the real broker
(tests/e2e/test_runtime_batches.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from guichet_runtime.consumer import (
    ConcurrentConsumption,
    EventConsumer,
    PermanentError,
    TransientError,
)
from guichet_runtime.db import UnitOfWork
from shared_models import FileSubmitted, topics
from tests.unit.samples import file_submitted

TOPIC = topics.agency_requests("caf")
GROUP = "adapter-caf"


@dataclass
class Desk:
    """An adapter-like handler: it looks up whether it recorded the event already (as an
    adapter looks its request up), if not 'calls the agency' (a side effect outside the
    database, counted per event), then records the call in its unit of work (the inbox row)."""

    consumption: ConcurrentConsumption
    consumer: EventConsumer
    db: Any
    #: event id -> times the agency was called for it
    calls: dict[str, int] = field(default_factory=dict)
    #: file ids in the order their handling started / ended
    started: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    #: file id -> exception raised after the call, before the record (every attempt)
    failing: dict[str, BaseException] = field(default_factory=dict)
    #: what every handler waits at before calling, if set
    barrier: asyncio.Barrier | None = None
    dead_letters: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    async def handler(self, event: FileSubmitted, uow: UnitOfWork) -> None:
        self.started.append(event.file_id)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.barrier is not None:
                await asyncio.wait_for(self.barrier.wait(), 5)
            event_id = str(event.event_id)
            if event_id in {r.event_id for r in await self.db.rows(self.db.tables.inbox)}:
                async with uow:  # AlreadyProcessed: the consumer counts a duplicate
                    await uow.commit()
            await asyncio.sleep(0.01)  # the agency's answer takes a while
            self.calls[event_id] = self.calls.get(event_id, 0) + 1
            if event.file_id in self.failing:
                raise self.failing[event.file_id]
            async with uow:
                uow.emit(TOPIC + ".acknowledged", event)
                await uow.commit()
            self.ended.append(event.file_id)
        finally:
            self.in_flight -= 1

    async def consume(self, *events: FileSubmitted, bodies: dict[int, bytes] | None = None) -> None:
        """Hand `events` to the consumption as one batch (one partition, their offsets in
        order); `bodies` replaces some records' bodies (index -> bytes)."""
        records = [
            ConsumerRecord(
                topic=TOPIC,
                partition=0,
                offset=offset,
                timestamp=0,
                timestamp_type=0,
                key=e.file_id.encode(),
                value=(bodies or {}).get(offset, e.model_dump_json().encode()),
                checksum=None,
                serialized_key_size=len(e.file_id),
                serialized_value_size=0,
                headers=[("event_type", b"FileSubmitted")],
            )
            for offset, e in enumerate(events)
        ]
        await self.consumption.consume(tuple(records))


@pytest.fixture
async def desk(service_db) -> AsyncIterator[Desk]:
    db = service_db("assignment")
    broker = KafkaBroker()
    consumer = EventConsumer(broker, GROUP, db.uow, attempts=2, max_wait=0.01)
    consumer.concurrent_max = 8
    state: dict[str, Desk] = {}

    async def handler(event: FileSubmitted, uow: UnitOfWork) -> None:
        await state["it"].handler(event, uow)

    consumer.subscribe([TOPIC], {FileSubmitted: handler})

    async def raw(msg: Any) -> bytes:
        return msg.body

    @broker.subscriber(topics.dead_letter(TOPIC), decoder=raw)
    async def capture(body: bytes, msg: KafkaMessage) -> None:
        state["it"].dead_letters.append((body, dict(msg.headers)))

    async with TestKafkaBroker(broker):
        state["it"] = Desk(ConcurrentConsumption(consumer, consumer._by_type), consumer, db)
        yield state["it"]


def files(*names: str) -> list[FileSubmitted]:
    return [file_submitted(file_id=name) for name in names]


async def test_the_records_of_different_files_are_handled_at_once(desk):
    first, second, third = files("GU-A", "GU-B", "GU-C")
    # Each handler waits for the three to be there: one at a time, the first would wait in vain.
    desk.barrier = asyncio.Barrier(3)

    await desk.consume(first, second, third)

    assert desk.most_in_flight == 3
    assert sorted(desk.ended) == ["GU-A", "GU-B", "GU-C"]
    assert set(desk.calls.values()) == {1}


async def test_the_records_of_one_file_are_handled_in_their_order_one_after_the_other(desk):
    events = [file_submitted(file_id="GU-A") for _ in range(4)] + files("GU-B")

    await desk.consume(*events)

    assert [f for f in desk.ended if f == "GU-A"] == ["GU-A"] * 4
    own = [str(e.event_id) for e in events[:4]]
    assert [e for e in desk.calls if e in own] == own  # called in the records' order
    assert desk.most_in_flight == 2  # the other file's record alongside, never two of GU-A


async def test_a_poison_record_is_dead_lettered_and_the_others_are_handled_once(desk):
    good, poison, other = files("GU-A", "GU-B", "GU-C")
    desk.failing["GU-B"] = PermanentError("l'organisme refuse cette demande")

    await desk.consume(good, poison, other)

    assert sorted(desk.ended) == ["GU-A", "GU-C"]
    assert desk.calls == {str(good.event_id): 1, str(poison.event_id): 1, str(other.event_id): 1}
    [(body, headers)] = desk.dead_letters
    assert body == poison.model_dump_json().encode()
    assert "l'organisme refuse cette demande" in headers["dlq_reason"]


async def test_an_invalid_body_is_dead_lettered_and_the_others_handled(desk):
    good, broken = files("GU-A", "GU-B")

    await desk.consume(good, broken, bodies={1: b"{pas du json"})

    assert desk.ended == ["GU-A"]
    [(body, headers)] = desk.dead_letters
    assert body == b"{pas du json" and headers["dlq_reason"].startswith("événement invalide")


async def test_a_transient_failure_hands_the_batch_back_and_the_redelivery_calls_nobody_twice(
    desk,
):
    events = files("GU-A", "GU-B", "GU-C")
    later_of_b = file_submitted(file_id="GU-B")
    desk.failing["GU-B"] = TransientError("base de données injoignable")

    with pytest.raises(TransientError):
        await desk.consume(*events, later_of_b)

    # The other files finished and committed; GU-B's later record waited behind its failure.
    assert sorted(desk.ended) == ["GU-A", "GU-C"]
    assert str(later_of_b.event_id) not in desk.calls
    assert desk.calls[str(events[1].event_id)] == 2  # its attempts, no dead letter
    assert desk.dead_letters == []

    del desk.failing["GU-B"]
    await desk.consume(*events, later_of_b)  # the batch again, as Kafka redelivers it

    assert desk.calls == {
        str(events[0].event_id): 1,
        str(events[1].event_id): 3,
        str(events[2].event_id): 1,
        str(later_of_b.event_id): 1,
    }
    assert desk.ended.count("GU-A") == 1 and desk.ended.count("GU-C") == 1
    assert desk.ended[-2:] == ["GU-B", "GU-B"]
