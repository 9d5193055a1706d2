"""A batched consumer's poll (guichet_runtime.batch_poll): an empty poll is followed at once
by the next one, without FastStream's sleep, and records are returned as aiokafka gave them."""

from __future__ import annotations

from typing import Any

import anyio
from aiokafka import ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker

from guichet_runtime.consumer import EventConsumer
from shared_models import FileSubmitted, topics


class Polls:
    """An aiokafka consumer's `getmany`, answering from a script and noting each call."""

    def __init__(self, *answers: dict[TopicPartition, list[Any]]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[int, int]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        self.calls.append((timeout_ms, max_records))
        return self.answers.pop(0)


def record(partition: int, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topics.FILES_SUBMITTED, partition, offset, 0, 0, None, b"{}", None, 2, 0, []
    )


async def test_an_empty_poll_is_followed_by_the_next_without_a_sleep(monkeypatch):
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:  # FastStream's own poll sleeps after an empty one
        sleeps.append(seconds)

    monkeypatch.setattr(anyio, "sleep", sleep)

    async def handler(event: FileSubmitted, uow: Any) -> None:
        raise AssertionError("not called")

    consumer = EventConsumer(
        KafkaBroker(),
        "assignment",
        lambda: None,  # type: ignore[arg-type,return-value]
        batch_factory=lambda name: None,  # type: ignore[arg-type,return-value]
        batch_max=100,
        batch_wait_ms=1000,
    )
    consumer.subscribe([topics.FILES_SUBMITTED], {FileSubmitted: handler})
    consumer.attach()
    first, second, third = record(0, 7), record(0, 8), record(1, 3)
    polls = Polls(
        {},
        {
            TopicPartition(topics.FILES_SUBMITTED, 0): [first, second],
            TopicPartition(topics.FILES_SUBMITTED, 1): [third],
        },
    )

    assert await consumer.subscriber.get_msg(polls) == ()
    assert await consumer.subscriber.get_msg(polls) == (first, second, third)

    assert sleeps == []
    assert polls.calls == [(1000, 100), (1000, 100)]
