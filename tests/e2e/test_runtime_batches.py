"""The runtime's batched consumer and batched outbox relay on the real broker, on SQLite and
PostgreSQL, without a stack: a batch holding a poison record (dead-lettered with its reason,
the others applied once, the offsets committed past it), and the relay publishing a batch
once in order per key, with two relays sharing one PostgreSQL outbox (SKIP LOCKED, woken by
LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import collections
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.kafka_sasl import access, broker_security, client_options, create_topics
from guichet_runtime.batch import BatchTransaction
from guichet_runtime.consumer import EventConsumer, PermanentError
from guichet_runtime.db import (
    UnitOfWork,
    make_engine,
    messaging_tables,
    service_metadata,
    utcnow,
)
from guichet_runtime.relay import OutboxRelay
from shared_models import FileSubmitted, topics
from tests.e2e.support import eventually, read_topic
from tests.unit.samples import file_submitted

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GROUP = "batches"


@dataclass
class Database:
    engine: AsyncEngine
    outbox: sa.Table
    inbox: sa.Table
    applied: sa.Table
    url: str

    def uow(self, inbox_key: tuple[str, str] | None = None) -> UnitOfWork:
        return UnitOfWork(self.engine, self.outbox, self.inbox, inbox_key=inbox_key)

    def batch(self, consumer: str) -> BatchTransaction:
        return BatchTransaction(self.engine, self.outbox, self.inbox, consumer=consumer)

    async def count(self, table: sa.Table) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def _schema() -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    metadata = service_metadata()
    outbox, inbox = messaging_tables(metadata)
    applied = sa.Table("applied", metadata, sa.Column("event_id", sa.String(36), primary_key=True))
    return metadata, outbox, inbox, applied


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'batches.db'}"
    else:
        url = request.getfixturevalue("postgres_factory")(f"batches_{uuid.uuid4().hex[:8]}")
    metadata, outbox, inbox, applied = _schema()
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield Database(engine, outbox, inbox, applied, url)
    await engine.dispose()


async def _topics(bootstrap: str, partitions: int = 3) -> str:
    name = f"rt-{uuid.uuid4().hex[:8]}.files.submitted"
    await create_topics(access(bootstrap), {name: partitions, topics.dead_letter(name): 1})
    return name


async def _produce(bootstrap: str, topic: str, events: list[FileSubmitted]) -> None:
    producer = AIOKafkaProducer(**client_options(bootstrap))
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                topic,
                event.model_dump_json().encode(),
                key=event.file_id.encode(),
                headers=[("event_type", b"FileSubmitted")],
            )
    finally:
        await producer.stop()


async def _committed(bootstrap: str, group: str) -> int:
    """Records the group has committed past, over every partition (a fresh topic)."""
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(meta.offset for meta in offsets.values() if meta.offset > 0)


async def _consume_all_but_one_poison(
    bootstrap: str, database: Database, consumer: EventConsumer, topic: str, sent: list[Any]
) -> list[dict[str, Any]]:
    """Run `consumer` until every record of `sent` but one poison is applied and the offsets
    are committed past them all; the dead letters of `topic`."""
    consumer.attach()
    await consumer.broker.start()
    try:

        async def all_applied() -> bool:
            return await database.count(database.applied) == len(sent) - 1

        await eventually(all_applied, timeout=60, what="every record but the poison applied")
        letters = await read_topic(bootstrap, topics.dead_letter(topic), lambda rs: rs)

        async def committed_past_all() -> bool:
            return await _committed(bootstrap, consumer.group_id) == len(sent)

        await eventually(committed_past_all, timeout=30, what="offsets committed past them all")
    finally:
        await consumer.broker.stop()
    return letters


async def test_a_poison_record_in_a_batch_is_dead_lettered_and_the_others_applied_once(
    kafka_bootstrap, database
):
    topic = await _topics(kafka_bootstrap)
    group = f"{GROUP}-{uuid.uuid4().hex[:6]}"
    sent = [file_submitted(file_id=f"GU-BATCH-{i:03d}") for i in range(30)]
    poison = sent[11]
    calls: collections.Counter[str] = collections.Counter()
    commits: list[int] = []

    async def handler(event: FileSubmitted, uow: UnitOfWork) -> None:
        calls[event.file_id] += 1
        async with uow:
            await uow.conn.execute(database.applied.insert().values(event_id=str(event.event_id)))
            uow.emit(topics.REFERENTS_ASSIGNED, event)
            if event.file_id == poison.file_id:
                raise PermanentError("dossier incohérent")
            await uow.commit()

    def batch(consumer: str) -> BatchTransaction:
        commits.append(1)
        return database.batch(consumer)

    await _produce(kafka_bootstrap, topic, sent)  # there before the consumer: read in batches
    broker = KafkaBroker(kafka_bootstrap, security=broker_security(kafka_bootstrap))
    consumer = EventConsumer(
        broker, group, database.uow, attempts=2, max_wait=0.01, batch_factory=batch, batch_max=50
    )
    consumer.subscribe([topic], {FileSubmitted: handler})
    letters = await _consume_all_but_one_poison(kafka_bootstrap, database, consumer, topic, sent)

    [letter] = letters
    assert letter["key"] == poison.file_id
    assert letter["dlq_reason"] == "PermanentError: dossier incohérent"
    assert letter["dlq_consumer"] == group
    # The poison's handler ran once (a permanent error is not tried again). The records read
    # before it in its batch ran twice: in the batch's first pass, without savepoints,
    # rolled back at the poison; then each in its savepoint. That rollback left nothing
    # behind (the applied table's primary key refuses a second insert) and sent nothing
    # (the outbox, written at commit, has each row once). Every other record ran once.
    assert calls[poison.file_id] == 1
    assert set(calls) == {e.file_id for e in sent}
    assert set(calls.values()) <= {1, 2}
    assert await database.count(database.applied) == len(sent) - 1
    assert await database.count(database.inbox) == len(sent) - 1
    assert await database.count(database.outbox) == len(sent) - 1  # the poison's rolled back
    assert len(commits) < len(sent), "the records were read in batches"
    print(f"{len(sent)} records in {len(commits)} batch transaction(s) on {database.url[:10]}")


async def test_records_handled_at_once_stay_within_the_bound_in_order_per_file_and_commit(
    kafka_bootstrap, database
):
    """What adapters do (ConcurrentConsumption): the records of different files handled at
    once, never more than `concurrent_max`, those of one file in their order, each in its
    own transaction, a poison record dead-lettered alone, the offsets committed past all."""
    topic = await _topics(kafka_bootstrap)
    group = f"{GROUP}-{uuid.uuid4().hex[:6]}"
    sent = [file_submitted(file_id=f"GU-AT-ONCE-{i % 12:03d}") for i in range(36)]
    poison = sent[7]
    calls: collections.Counter[str] = collections.Counter()
    order: dict[str, list[str]] = collections.defaultdict(list)
    in_flight = {"now": 0, "most": 0}

    async def handler(event: FileSubmitted, uow: UnitOfWork) -> None:
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        try:
            calls[str(event.event_id)] += 1
            await asyncio.sleep(0.02)  # an agency's answer takes a while
            if event.event_id == poison.event_id:
                raise PermanentError("demande incohérente")
            async with uow:
                await uow.conn.execute(
                    database.applied.insert().values(event_id=str(event.event_id))
                )
                uow.emit(topics.REFERENTS_ASSIGNED, event)
                await uow.commit()
            order[event.file_id].append(str(event.event_id))
        finally:
            in_flight["now"] -= 1

    await _produce(kafka_bootstrap, topic, sent)  # there before the consumer: read together
    broker = KafkaBroker(kafka_bootstrap, security=broker_security(kafka_bootstrap))
    consumer = EventConsumer(broker, group, database.uow, attempts=2, max_wait=0.01)
    consumer.concurrent_max = 4
    consumer.subscribe([topic], {FileSubmitted: handler})
    letters = await _consume_all_but_one_poison(kafka_bootstrap, database, consumer, topic, sent)

    [letter] = letters
    assert letter["dlq_reason"] == "PermanentError: demande incohérente"
    assert calls == {str(e.event_id): 1 for e in sent}  # nothing handled twice
    assert 1 < in_flight["most"] <= 4, in_flight
    for file_id, handled in order.items():  # each file's records in the order produced
        produced = [str(e.event_id) for e in sent if e.file_id == file_id]
        assert handled == [e for e in produced if e != str(poison.event_id)]
    assert await database.count(database.inbox) == len(sent) - 1
    assert await database.count(database.outbox) == len(sent) - 1
    print(f"at most {in_flight['most']} records in flight on {database.url[:10]}")


def _rows(keys: int, per_key: int, traceparent: str, block: int) -> list[dict[str, Any]]:
    """Outbox rows; each body says its key and its rank in the key. The keys are in two
    groups, each group's keys interleaved, and the rows alternate between the groups every
    `block` rows (a relay's batch): while one replica holds a batch of one group's keys, the
    next batch by id is the other group's, which the other replica may publish at once (a
    key's row waits only while an earlier row of the same key is held)."""
    groups = [range(keys // 2), range(keys // 2, keys)]
    streams = [[(k, rank) for rank in range(per_key) for k in group] for group in groups]
    ordered: list[tuple[int, int]] = []
    while any(streams):
        for stream in streams:
            ordered.extend(stream[:block])
            del stream[:block]
    rows = []
    for k, rank in ordered:
        key = f"GU-RELAY-{k}"
        body = {"event_id": str(uuid.uuid4()), "key": key, "rank": rank}
        rows.append(
            {
                "topic": "relay.order",
                "key": key,
                "event_type": "Essai",
                "payload": json.dumps(body),
                "headers": json.dumps({"traceparent": traceparent}),
                "created_at": utcnow(),
            }
        )
    return rows


async def test_the_relay_publishes_each_row_once_in_order_per_key(kafka_bootstrap, database):
    """SQLite: one relay. PostgreSQL: two relays (two replicas) on one outbox, rows committed
    while they run reach them by LISTEN/NOTIFY (their poll is a minute); both publish, and
    each key keeps its order across them."""
    namespace = f"rt-{uuid.uuid4().hex[:8]}."
    topic = namespace + "relay.order"
    await create_topics(access(kafka_bootstrap), {topic: 3})
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    keys, per_key, batch = 6, 60, 25
    rows = _rows(keys, per_key, traceparent, block=batch)
    first, later = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    async with database.engine.begin() as conn:
        await conn.execute(sa.insert(database.outbox), first)

    replicas = 2 if database.engine.dialect.name == "postgresql" else 1
    engines = [database.engine] + [make_engine(database.url) for _ in range(replicas - 1)]
    relays = [
        OutboxRelay(
            engine,
            database.outbox,
            None,
            batch_size=batch,
            idle_seconds=60,
            listen_poll_seconds=60,
            namespace=namespace,
            # Each batch's transaction lasts at least the linger: the other replica, woken
            # by the same notifications, claims the next batch meanwhile (with one replica
            # fast enough to drain every batch back to back, the other could find each key's
            # earliest row held and publish nothing: [360, 0] on a loaded machine).
            producer_options=client_options(kafka_bootstrap) | {"linger_ms": 100},
        )
        for engine in engines
    ]
    for relay in relays:
        relay.start()
    try:
        await asyncio.sleep(1)
        for start in range(0, len(later), 30):  # committed while the relays run
            uow = database.uow()
            async with uow:
                await uow.conn.execute(sa.insert(database.outbox), later[start : start + 30])
                await uow.commit()
            if database.engine.dialect.name != "postgresql":
                for relay in relays:
                    relay.wake()  # SQLite: the service's own commits wake its relay

        async def drained() -> bool:
            return await database.count(database.outbox) == 0

        await eventually(drained, timeout=60, what="the outbox published")
        records = await read_topic(
            kafka_bootstrap, topic, lambda rs: len(rs) >= len(rows), timeout=60
        )
    finally:
        for relay in relays:
            await relay.stop()
        for engine in engines[1:]:
            await engine.dispose()

    ids = collections.Counter(r["body"]["event_id"] for r in records)
    assert len(ids) == len(rows) and set(ids.values()) == {1}, "each row published once"
    by_key: dict[str, list[int]] = collections.defaultdict(list)
    for record in records:  # read_topic keeps each partition's order; a key has one partition
        assert record["key"] == record["body"]["key"]
        by_key[record["key"]].append(record["body"]["rank"])
    assert by_key == {f"GU-RELAY-{k}": list(range(per_key)) for k in range(keys)}
    assert {r["traceparent"] for r in records} == {traceparent}  # the emitter's trace
    assert {r["event_type"] for r in records} == {"Essai"}
    published = [relay.published for relay in relays]
    assert sum(published) == len(rows)
    if replicas == 2:
        assert all(published), f"both replicas relayed: {published}"
    print(f"published per relay: {published}")


async def test_a_row_held_back_behind_another_replicas_batch_goes_once_that_batch_is_gone(
    kafka_bootstrap, postgres_factory
):
    """Two rows of one key, the first in another replica's batch (locked, being published):
    the relay publishes the other key's row, holds the second back, and publishes it once
    the other replica deleted the first, though that delete notifies nothing and the relay's
    poll is a minute away."""
    url = postgres_factory(f"held_{uuid.uuid4().hex[:8]}")
    metadata, outbox, _, _ = _schema()
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    namespace = f"rt-{uuid.uuid4().hex[:8]}."
    await create_topics(access(kafka_bootstrap), {namespace + "relay.order": 3})
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    rows = _rows(2, 2, traceparent, block=2)  # key 0 rank 0, rank 1, then key 1's two rows
    async with engine.begin() as conn:
        await conn.execute(sa.insert(outbox), rows)
        first = await conn.scalar(sa.select(sa.func.min(outbox.c.id)))
    other = await engine.connect()  # the other replica, in the middle of its batch
    await other.begin()
    await other.execute(sa.select(outbox).where(outbox.c.id == first).with_for_update())
    relay = OutboxRelay(
        engine,
        outbox,
        None,
        idle_seconds=60,
        listen_poll_seconds=60,
        namespace=namespace,
        producer_options=client_options(kafka_bootstrap),
    )
    relay.start()
    try:

        async def left(count: int) -> bool:
            async with engine.connect() as conn:
                return await conn.scalar(sa.select(sa.func.count()).select_from(outbox)) == count

        await eventually(lambda: left(2), timeout=30, what="the other key's rows published")
        assert relay.held_back == 1  # key 0's second row, behind the other replica's first
        await other.execute(sa.delete(outbox).where(outbox.c.id == first))
        await other.commit()  # the other replica published it: no notification

        await eventually(lambda: left(0), timeout=10, what="the held-back row, at once")
    finally:
        await relay.stop()
        await other.close()
        await engine.dispose()
    assert relay.published == 3
