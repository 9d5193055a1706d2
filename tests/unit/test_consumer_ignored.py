"""Event types a consumer declares it ignores (`EventConsumer.subscribe(..., ignored=[...])`),
read among a batch or on their own: acknowledged untouched, no transaction, no inbox row;
a type neither handled nor ignored still dead-lettered. On the batches of
tests/unit/test_consumer_batches.py (its fixtures, SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from faststream.kafka import KafkaBroker

from guichet_runtime.batch_consumption import BatchConsumption
from guichet_runtime.consumer import EventConsumer
from shared_models import FileSubmitted, ReferentChangeRequested
from tests.unit.test_consumer_batches import (  # noqa: F401  (the `batches`, `database` fixtures)
    GROUP,
    HEADERS,
    TOPIC,
    Batches,
    batches,
    database,
    events,
)

IGNORED = {"event_type": "ReferentChangeRequested", "content-type": "application/json"}


@dataclass
class _Record:
    """A consumed record as aiokafka gives it (what BatchConsumption reads of it)."""

    value: bytes
    headers: list[tuple[str, bytes]]
    topic: str = TOPIC
    partition: int = 0
    offset: int = 0
    key: bytes | None = None


def _record(body: str, headers: dict[str, str]) -> _Record:
    return _Record(body.encode(), [(k, v.encode()) for k, v in headers.items()])


def _ignoring(it: Batches) -> EventConsumer:
    """The batches' consumer, told that ReferentChangeRequested shares its topic and is not
    its business."""
    it.consumer.subscribe([TOPIC], {}, ignored=[ReferentChangeRequested])
    return it.consumer


async def test_a_batch_of_ignored_events_opens_no_transaction(batches):  # noqa: F811
    consumer = _ignoring(batches)
    # Not even decoded: a body no event model would accept is not dead-lettered either.
    ignored = [_record("not an event", IGNORED), _record("{}", IGNORED)]

    await BatchConsumption(consumer, batches.batch, consumer._by_type).consume(tuple(ignored))

    assert batches.calls == [] and batches.dead_letters == []
    assert batches.commits == 0
    assert await batches.inbox() == set()


async def test_ignored_events_leave_no_inbox_row_among_handled_ones(batches):  # noqa: F811
    consumer = _ignoring(batches)
    sent = events(2)
    mixed = (
        _record(sent[0].model_dump_json(), HEADERS),
        _record("{}", IGNORED),
        _record(sent[1].model_dump_json(), HEADERS),
    )

    await BatchConsumption(consumer, batches.batch, consumer._by_type).consume(mixed)

    ids = [str(e.event_id) for e in sent]
    assert batches.calls == ids
    assert await batches.inbox() == set(ids)
    assert batches.commits == 1
    assert batches.dead_letters == []


async def test_an_ignored_event_read_on_its_own_is_acknowledged_untouched(batches):  # noqa: F811
    consumer = _ignoring(batches)

    await consumer.handle(b"{}", IGNORED, _record("{}", IGNORED), consumer._by_type)

    assert batches.calls == [] and batches.dead_letters == []
    assert await batches.inbox() == set()
    # A type neither handled nor ignored is still unknown: dead-lettered, as before.
    unknown = {**IGNORED, "event_type": "SomethingElse"}
    await consumer.handle(b"{}", unknown, _record("{}", unknown), consumer._by_type)
    assert [h["dlq_reason"] for _, h in batches.dead_letters] == [
        "type d'événement inconnu: 'SomethingElse'"
    ]


def test_a_type_cannot_be_both_handled_and_ignored(batches):  # noqa: F811
    with pytest.raises(ValueError, match="FileSubmitted"):
        batches.consumer.subscribe([TOPIC], {}, ignored=[FileSubmitted])
    consumer = EventConsumer(KafkaBroker(), GROUP, batches.db.uow)
    consumer.subscribe([TOPIC], {}, ignored=[ReferentChangeRequested])
    with pytest.raises(ValueError, match="ReferentChangeRequested"):
        consumer.subscribe([TOPIC], {ReferentChangeRequested: batches.consumer.with_attempts})
