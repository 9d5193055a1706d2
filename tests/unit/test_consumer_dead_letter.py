"""The idempotent consumer on FastStream's in-memory Kafka broker: records that can never
be processed go to `<topic>.dlq` with the reason, a redelivered event reaches its
handler once, an infrastructure failure is never dead-lettered. Every test runs with the
consumer reading one record at a time, reading batches (one transaction per batch, a
savepoint per record) and handling the records of a batch at once each on its own (what
adapters do)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from guichet_runtime.batch import BatchTransaction
from guichet_runtime.consumer import EventConsumer, PermanentError
from guichet_runtime.db import UnitOfWork
from shared_models import FileSubmitted, topics
from tests.unit.samples import file_submitted

TOPIC = topics.FILES_SUBMITTED
GROUP = "assignment"


@dataclass
class DeadLetter:
    topic: str
    body: bytes
    key: bytes
    headers: dict[str, str]


@dataclass
class Harness:
    """A broker in memory, one EventConsumer on TOPIC, a capture of its dead letters."""

    broker: KafkaBroker
    consumer: EventConsumer
    handled: list[FileSubmitted]
    dead_letters: list[DeadLetter]
    behaviour: dict[str, Callable[[], Awaitable[None]] | None] = field(default_factory=dict)

    async def publish(
        self, body: bytes | str, *, event_type: str = "FileSubmitted", key: bytes = b"GU-1"
    ) -> None:
        raw = body.encode() if isinstance(body, str) else body
        await self.broker.publish(
            raw,
            self.consumer._namespace + TOPIC,
            key=key,
            headers={"event_type": event_type, "content-type": "application/json"},
        )


async def _raw(msg: Any) -> bytes:
    return msg.body


@pytest.fixture(params=[(1, 1), (10, 1), (1, 8)], ids=["one-by-one", "batched", "concurrent"])
def reading(request) -> tuple[int, int]:
    """(batch_max, concurrent_max) of the consumer."""
    return request.param


@pytest.fixture
async def harness(service_db, request, reading) -> AsyncIterator[Harness]:
    """`request.param` (optional): the topic namespace."""
    namespace = getattr(request, "param", "")
    db = service_db("assignment")

    def batch(consumer: str) -> BatchTransaction:
        return BatchTransaction(db.engine, db.tables.outbox, db.tables.inbox, consumer=consumer)

    broker = KafkaBroker()
    handled: list[FileSubmitted] = []
    dead_letters: list[DeadLetter] = []
    behaviour: dict[str, Callable[[], Awaitable[None]] | None] = {"fail": None}

    async def handler(event: FileSubmitted, uow: UnitOfWork) -> None:
        async with uow:
            if behaviour["fail"] is not None:
                await behaviour["fail"]()
            handled.append(event)
            await uow.commit()

    consumer = EventConsumer(
        broker,
        GROUP,
        db.uow,
        attempts=3,
        max_wait=0.01,
        namespace=namespace,
        batch_factory=batch,
        batch_max=reading[0],
    )
    consumer.concurrent_max = reading[1]
    consumer.subscribe([TOPIC], {FileSubmitted: handler})
    consumer.attach()

    @broker.subscriber(namespace + topics.dead_letter(TOPIC), decoder=_raw)
    async def capture(body: bytes, msg: KafkaMessage) -> None:
        dead_letters.append(
            DeadLetter(msg.raw_message.topic, body, msg.raw_message.key, dict(msg.headers))
        )

    async with TestKafkaBroker(broker):
        yield Harness(broker, consumer, handled, dead_letters, behaviour)


async def test_a_valid_record_reaches_its_handler(harness):
    event = file_submitted()

    await harness.publish(event.model_dump_json())

    assert harness.handled == [event]
    assert harness.dead_letters == []


async def test_an_event_published_twice_reaches_its_handler_once(harness):
    event = file_submitted()

    await harness.publish(event.model_dump_json())
    await harness.publish(event.model_dump_json())

    assert harness.handled == [event]
    assert harness.dead_letters == []
    assert harness.consumer.dead_lettered == 0


async def test_a_body_that_is_not_valid_for_its_event_type_goes_to_the_dead_letter_topic(harness):
    await harness.publish(b'{"file_id": "GU-1", "life_event": 12', key=b"GU-1")
    body = json.loads(file_submitted().model_dump_json())
    body.pop("citizen")
    await harness.publish(json.dumps(body), key=b"GU-2")

    assert harness.handled == []
    assert [d.topic for d in harness.dead_letters] == [f"{TOPIC}.dlq", f"{TOPIC}.dlq"]
    truncated, incomplete = harness.dead_letters
    assert truncated.body == b'{"file_id": "GU-1", "life_event": 12'
    assert truncated.key == b"GU-1"
    assert truncated.headers["dlq_reason"].startswith("événement invalide")
    assert "citizen" in incomplete.headers["dlq_reason"]
    for letter in harness.dead_letters:
        assert letter.headers["dlq_consumer"] == GROUP
        assert letter.headers["dlq_source_topic"] == TOPIC
        assert letter.headers["event_type"] == "FileSubmitted"
    assert harness.consumer.dead_lettered == 2


async def test_an_unknown_event_type_goes_to_the_dead_letter_topic(harness):
    await harness.publish(file_submitted().model_dump_json(), event_type="FileLost")

    assert harness.handled == []
    [letter] = harness.dead_letters
    assert letter.headers["dlq_reason"] == "type d'événement inconnu: 'FileLost'"


async def test_a_record_without_event_type_goes_to_the_dead_letter_topic(harness):
    await harness.broker.publish(file_submitted().model_dump_json().encode(), TOPIC, key=b"GU-1")

    [letter] = harness.dead_letters
    assert "type d'événement inconnu" in letter.headers["dlq_reason"]


async def test_a_permanent_error_goes_to_the_dead_letter_topic_at_once(harness):
    attempts = []

    async def refuse() -> None:
        attempts.append(1)
        raise PermanentError("dossier incohérent")

    harness.behaviour["fail"] = refuse
    event = file_submitted()

    await harness.publish(event.model_dump_json())

    assert attempts == [1]  # never retried
    assert harness.handled == []
    [letter] = harness.dead_letters
    assert letter.headers["dlq_reason"] == "PermanentError: dossier incohérent"
    assert json.loads(letter.body)["event_id"] == str(event.event_id)


async def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(harness):
    attempts = []

    async def bug() -> None:
        attempts.append(1)
        raise ValueError("division par zéro")

    harness.behaviour["fail"] = bug

    await harness.publish(file_submitted().model_dump_json())

    assert len(attempts) == 3
    [letter] = harness.dead_letters
    assert letter.headers["dlq_reason"] == "ValueError: division par zéro"


async def test_a_handler_that_fails_once_is_retried_and_succeeds(harness):
    attempts = []

    async def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("première tentative")

    harness.behaviour["fail"] = flaky
    event = file_submitted()

    await harness.publish(event.model_dump_json())

    assert harness.handled == [event]
    assert harness.dead_letters == []


async def test_an_infrastructure_failure_is_retried_then_nacked_never_dead_lettered(harness):
    attempts = []

    async def database_down() -> None:
        attempts.append(1)
        raise ConnectionRefusedError("base de données injoignable")

    harness.behaviour["fail"] = database_down

    # The consumer re-raises (NACK: Kafka redelivers); in memory it reaches the publisher.
    with pytest.raises(ConnectionRefusedError):
        await harness.publish(file_submitted().model_dump_json())

    assert len(attempts) == 3
    assert harness.handled == []
    assert harness.dead_letters == []
    assert harness.consumer.dead_lettered == 0


async def test_after_an_infrastructure_failure_the_redelivered_event_is_handled(harness):
    down = {"now": True}

    async def database_down() -> None:
        if down["now"]:
            raise ConnectionRefusedError("base de données injoignable")

    harness.behaviour["fail"] = database_down
    event = file_submitted()
    with pytest.raises(ConnectionRefusedError):
        await harness.publish(event.model_dump_json())
    down["now"] = False

    await harness.publish(event.model_dump_json())  # the redelivery

    assert harness.handled == [event]  # the failed attempts left no inbox row behind


@pytest.mark.parametrize("harness", ["pile-7."], indirect=True)
async def test_with_a_namespace_dead_letters_stay_in_the_namespace(harness):
    await harness.publish(b"not json")

    [letter] = harness.dead_letters
    assert letter.topic == f"pile-7.{TOPIC}.dlq"
    assert letter.headers["dlq_source_topic"] == f"pile-7.{TOPIC}"


async def test_a_record_is_consumed_without_a_hop_to_a_worker_thread(harness, monkeypatch):
    # `msg: KafkaMessage` in the subscriber's signature made FastDepends resolve the record
    # on anyio's worker threads, a thread hop (≈ 0.2 ms of CPU) at every delivery.
    import anyio.to_thread

    hops: list[Any] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    event = file_submitted()

    await harness.publish(event.model_dump_json())

    assert harness.handled == [event]
    assert hops == []
