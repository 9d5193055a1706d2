"""The consumer opens sealed personal fields before the handler (crypto-shredding,
docs/data-protection.md), on FastStream's in-memory broker: the handler sees plain values and
the file's key is remembered; a record sealed with a shredded key is erased (no handler, no
dead letter, recorded once); a tampered one is dead-lettered. One record at a time, and in
batches (one transaction per batch, a savepoint per record)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from guichet_runtime.batch import BatchTransaction
from guichet_runtime.consumer import EventConsumer
from guichet_runtime.db import UnitOfWork
from guichet_runtime.personal_data import KeyShredded, PersonalData, new_data_key
from shared_models import FileSubmitted, topics
from tests.unit.samples import file_submitted

TOPIC = topics.FILES_SUBMITTED


class Keys:
    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}

    async def get(self, key_id: str) -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise KeyShredded(key_id)
        return key


@dataclass
class Harness:
    broker: KafkaBroker
    consumer: EventConsumer
    sealing: PersonalData
    keys: Keys
    db: Any
    handled: list[FileSubmitted]
    dead_letters: list[dict[str, str]]

    async def publish(self, body: str) -> None:
        await self.broker.publish(
            body.encode(), TOPIC, key=b"GU-1", headers={"event_type": "FileSubmitted"}
        )


@pytest.fixture(params=[1, 50], ids=["one-by-one", "batched"])
async def harness(service_db, request) -> AsyncIterator[Harness]:
    db = service_db("assignment")
    keys = Keys()
    sealing = PersonalData(keys, db.tables.personal_data_key_refs)
    broker = KafkaBroker()
    handled: list[FileSubmitted] = []
    dead_letters: list[dict[str, str]] = []

    def uow(inbox_key: tuple[str, str] | None = None) -> UnitOfWork:
        tables = db.tables
        return UnitOfWork(
            db.engine, tables.outbox, tables.inbox, inbox_key=inbox_key, personal_data=sealing
        )

    async def handler(event: FileSubmitted, work: UnitOfWork) -> None:
        async with work:
            handled.append(event)
            await work.commit()

    def batch(consumer: str) -> BatchTransaction:
        tables = db.tables
        return BatchTransaction(
            db.engine, tables.outbox, tables.inbox, consumer=consumer, personal_data=sealing
        )

    consumer = EventConsumer(
        broker,
        "assignment",
        uow,
        attempts=2,
        max_wait=0.01,
        batch_factory=batch,
        batch_max=request.param,
    )
    consumer.personal_data = sealing
    consumer.subscribe([TOPIC], {FileSubmitted: handler})
    consumer.attach()

    async def raw(msg: Any) -> bytes:
        return bytes(msg.body)

    @broker.subscriber(topics.dead_letter(TOPIC), decoder=raw)
    async def capture(body: bytes, msg: KafkaMessage) -> None:
        dead_letters.append(dict(msg.headers))

    async with TestKafkaBroker(broker):
        yield Harness(broker, consumer, sealing, keys, db, handled, dead_letters)


async def sealed(h: Harness, event: FileSubmitted) -> tuple[str, str]:
    key_id, key = new_data_key()
    h.keys.keys[key_id] = key
    return key_id, await h.sealing.seal(event, key_id)


async def test_the_handler_sees_plain_values_and_the_files_key_is_remembered(harness):
    event = file_submitted()
    key_id, payload = await sealed(harness, event)

    await harness.publish(payload)

    assert harness.handled == [event] and harness.dead_letters == []
    refs = await harness.db.rows("personal_data_key_refs")
    assert [(r.file_id, r.key_id) for r in refs] == [(event.file_id, key_id)]


async def test_a_record_sealed_with_a_shredded_key_is_erased_once_without_dead_letter(harness):
    event = file_submitted()
    key_id, payload = await sealed(harness, event)
    harness.keys.keys[key_id] = None  # shredded

    await harness.publish(payload)
    await harness.publish(payload)  # redelivered

    assert harness.handled == [] and harness.dead_letters == []
    assert harness.consumer.erased == 1
    inbox = await harness.db.rows("inbox")
    assert [r.event_id for r in inbox] == [str(event.event_id)]


async def test_a_tampered_sealed_field_goes_to_the_dead_letter_topic(harness):
    _, payload = await sealed(harness, file_submitted())
    record = json.loads(payload)
    record["citizen"]["ciphertext"] = record["description"]["ciphertext"]

    await harness.publish(json.dumps(record))

    assert harness.handled == []
    [letter] = harness.dead_letters
    assert letter["dlq_reason"].startswith("données personnelles illisibles")


async def test_a_record_that_is_not_json_goes_to_the_dead_letter_topic_and_the_next_is_handled(
    harness,
):
    """Sealing on, as in production: a body that does not even parse is dead-lettered as an
    invalid event, as without sealing, rather than retried for ever (the partition stuck)."""
    event = file_submitted()
    _, payload = await sealed(harness, event)

    await harness.publish('{"file_id": "GU-CASSE", "life_event": 42')
    await harness.publish(payload)

    [letter] = harness.dead_letters
    assert letter["dlq_reason"].startswith("événement invalide")
    assert harness.handled == [event]
