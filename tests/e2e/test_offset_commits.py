"""A batched consumer's offsets on a real broker (guichet_runtime.offsets): committed at
most once an interval and within it, before a rebalance takes partitions away, and at a
stop; never past a record not handled. The committed offsets are read from the broker."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker

from devstack.kafka_sasl import broker_security
from guichet_runtime.consumer import EventConsumer
from guichet_runtime.db import UnitOfWork, make_engine
from shared_models import FileSubmitted
from tests.e2e.support import eventually
from tests.e2e.test_runtime_batches import Database, _committed, _produce, _schema, _topics
from tests.unit.samples import file_submitted

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
async def databases(tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[Database]]]:
    """Fresh SQLite databases, each with the outbox, inbox and `applied` tables."""
    made: list[Database] = []

    async def new() -> Database:
        url = f"sqlite+aiosqlite:///{tmp_path / f'offsets-{len(made)}.db'}"
        metadata, outbox, inbox, applied = _schema()
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        made.append(Database(engine, outbox, inbox, applied, url))
        return made[-1]

    yield new
    for database in made:
        await database.engine.dispose()


@pytest.fixture
async def database(databases) -> Database:
    return await databases()


class Member:
    """One group member (its own broker connection) applying FileSubmitted in batches."""

    def __init__(self, bootstrap: str, database: Database, group: str, interval_ms: int):
        self.database = database
        self.calls: collections.Counter[str] = collections.Counter()
        self.batches = 0
        broker = KafkaBroker(bootstrap, security=broker_security(bootstrap))
        self.consumer = EventConsumer(
            broker,
            group,
            database.uow,
            batch_factory=self._batch,
            batch_max=50,
            batch_wait_ms=100,
            commit_interval_ms=interval_ms,
        )

    def _batch(self, consumer: str):  # type: ignore[no-untyped-def]
        self.batches += 1
        return self.database.batch(consumer)

    async def handler(self, event: FileSubmitted, uow: UnitOfWork) -> None:
        self.calls[event.file_id] += 1
        async with uow:
            await uow.conn.execute(
                self.database.applied.insert().values(event_id=str(event.event_id))
            )
            await uow.commit()

    async def start(self, topic: str) -> None:
        """Subscribed and in the group (its first assignment, maybe empty, arrived)."""
        self.consumer.subscribe([topic], {FileSubmitted: self.handler})
        self.consumer.attach()
        await self.consumer.broker.start()
        await until(lambda: self.consumer.membership.joined, "the member joined its group")

    async def stop(self) -> None:
        await self.consumer.stop_consuming()
        await self.consumer.broker.stop()


async def until(condition: Callable[[], object], what: str) -> None:
    async def probe() -> object:
        return condition()

    await eventually(probe, timeout=60, what=what)


async def applied(database: Database, count: int) -> None:
    async def done() -> bool:
        return await database.count(database.applied) == count

    await eventually(done, timeout=60, what=f"{count} records applied")


async def committed(bootstrap: str, group: str, count: int, timeout: float = 30) -> None:
    async def done() -> bool:
        return await _committed(bootstrap, group) == count

    await eventually(done, timeout=timeout, what=f"offsets committed past {count} records")


def files(prefix: str, count: int) -> list[FileSubmitted]:
    return [file_submitted(file_id=f"GU-{prefix}-{i:03d}") for i in range(count)]


async def test_offsets_wait_for_their_interval_and_are_committed_at_a_stop(
    kafka_bootstrap, database
):
    topic, group = await _topics(kafka_bootstrap), f"offsets-{uuid.uuid4().hex[:6]}"
    member = Member(kafka_bootstrap, database, group, interval_ms=600_000)
    await member.start(topic)
    try:
        await _produce(kafka_bootstrap, topic, files("FIRST", 1))
        await applied(database, 1)
        await committed(kafka_bootstrap, group, 1)  # the first batch: no commit before it
        await _produce(kafka_bootstrap, topic, files("LATER", 6))
        await applied(database, 7)
        await asyncio.sleep(1)
        # Handled and durable, their offsets wait for the interval (ten minutes here).
        assert await _committed(kafka_bootstrap, group) == 1
        assert member.consumer.offsets.commits == 1
    finally:
        await member.stop()
    # The stop committed them: a graceful stop redelivers nothing.
    assert await _committed(kafka_bootstrap, group) == 7
    assert set(member.calls.values()) == {1}


async def test_an_idle_member_commits_within_its_interval_and_less_often_than_batches(
    kafka_bootstrap, database
):
    topic, group = await _topics(kafka_bootstrap), f"offsets-{uuid.uuid4().hex[:6]}"
    member = Member(kafka_bootstrap, database, group, interval_ms=1500)
    await member.start(topic)
    try:
        for event in files("IDLE", 8):  # one by one, apart: a batch each
            await _produce(kafka_bootstrap, topic, [event])
            await asyncio.sleep(0.3)
        await applied(database, 8)
        # Nothing more arrives: the timer commits them within the interval.
        await committed(kafka_bootstrap, group, 8, timeout=10)
        assert member.consumer.offsets.pending == {}
        assert member.consumer.offsets.commits < member.batches
    finally:
        await member.stop()


async def test_a_rebalance_commits_what_was_handled_before_the_partitions_go(
    kafka_bootstrap, database, databases
):
    topic, group = await _topics(kafka_bootstrap), f"offsets-{uuid.uuid4().hex[:6]}"
    first = Member(kafka_bootstrap, database, group, interval_ms=600_000)
    await first.start(topic)
    second = None
    try:
        before = files("BEFORE", 12)
        await _produce(kafka_bootstrap, topic, before[:1])
        await committed(kafka_bootstrap, group, 1)  # the first batch: no commit before it
        await _produce(kafka_bootstrap, topic, before[1:])
        await applied(database, 12)
        assert await _committed(kafka_bootstrap, group) == 1  # the others wait
        # A second member joins: the first gives partitions up, committing them first, so
        # the second one is given none of those records again. Its database is its own, so
        # its inbox would not hide a record given again: it would be applied there.
        elsewhere = await databases()
        second = Member(kafka_bootstrap, elsewhere, group, interval_ms=600_000)
        await second.start(topic)
        await until(lambda: second.consumer.membership.partitions, "second one assigned")
        await committed(kafka_bootstrap, group, 12)
        after = files("AFTER", 12)
        await _produce(kafka_bootstrap, topic, after)

        async def after_applied() -> bool:
            counts = (
                await database.count(database.applied),
                await elsewhere.count(elsewhere.applied),
            )
            return sum(counts) == 24

        await eventually(after_applied, timeout=60, what="the later records applied")
        await asyncio.sleep(1)
        assert sum(second.calls.values()) > 0  # it does take records from now on
        assert not any(name.startswith("GU-BEFORE") for name in second.calls)
        assert set(first.calls.values()) | set(second.calls.values()) == {1}
    finally:
        if second is not None:
            await second.stop()
        await first.stop()
