"""Batched consumption on FastStream's in-memory Kafka broker and a real database, SQLite and
PostgreSQL: one transaction per batch (inbox rows claimed in one statement, outbox rows
written once; no savepoint until a record fails, then the batch again with a savepoint per
record), a poison record isolated without applying the others twice, an infrastructure
failure rolling the whole batch back for redelivery."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber, DefaultSubscriber

import assignment
from guichet_runtime import migrations
from guichet_runtime.batch import BatchTransaction
from guichet_runtime.consumer import EventConsumer, PermanentError, is_transient, lost_a_race
from guichet_runtime.db import UnitOfWork, make_engine
from guichet_runtime.sqlite_inline import InlineConnection
from guichet_runtime.statements import prepared
from shared_models import FileSubmitted, topics
from tests.unit.conftest import ServiceDb
from tests.unit.samples import file_submitted

TOPIC = topics.FILES_SUBMITTED
GROUP = "assignment"
HEADERS = {"event_type": "FileSubmitted", "content-type": "application/json"}

#: A domain table of the test: a handler writes its event's id there (unique: twice fails).
applied = sa.Table("applied", sa.MetaData(), sa.Column("event_id", sa.String, primary_key=True))


@dataclass
class Batches:
    broker: KafkaBroker
    db: Any
    consumer: EventConsumer
    batch: Callable[[str], BatchTransaction]
    calls: list[str] = field(default_factory=list)
    commits: int = 0
    relay_wakes: int = 0
    dead_letters: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    #: event id -> the exception its handler raises (every attempt)
    failing: dict[str, BaseException] = field(default_factory=dict)
    #: event ids whose handler leaves its unit of work without committing
    silent: set[str] = field(default_factory=set)
    #: the handler's row goes in at commit (`UnitOfWork.insert_at_commit`), not at once
    later: bool = False

    async def send(self, *bodies: bytes | str) -> None:
        raw = [b.encode() if isinstance(b, str) else b for b in bodies]
        await self.broker.publish_batch(*raw, topic=TOPIC, headers=HEADERS)

    async def applied(self) -> list[str]:
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(sa.select(applied.c.event_id))).scalars())

    async def inbox(self) -> set[str]:
        rows = await self.db.rows(self.db.tables.inbox)
        return {r.event_id for r in rows}

    async def outbox_ids(self) -> list[str]:
        return [json.loads(r.payload)["file_id"] for r in await self.db.outbox()]


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request, service_db) -> AsyncIterator[ServiceDb]:
    """assignment's database, migrated: SQLite's file, or a PostgreSQL database (where the
    savepoint statements go in fewer round trips, `BatchTransaction.savepoint_sql`)."""
    if request.param == "sqlite":
        yield service_db("assignment")
        return
    url = request.getfixturevalue("postgres_factory")(f"batches_{uuid.uuid4().hex[:12]}")
    await migrations.upgrade(Path(assignment.__file__).parent / "migrations", url)
    engine = make_engine(url)
    try:
        yield ServiceDb(url, engine, assignment.tables)
    finally:
        await engine.dispose()


@pytest.fixture
async def batches(database) -> AsyncIterator[Batches]:
    db = database
    async with db.engine.begin() as conn:
        await conn.run_sync(applied.metadata.create_all)
    broker = KafkaBroker()
    state: dict[str, Batches] = {}

    def batch(consumer: str) -> BatchTransaction:
        def committed() -> None:
            state["it"].commits += 1

        def outbox_written() -> None:
            state["it"].relay_wakes += 1

        return BatchTransaction(
            db.engine,
            db.tables.outbox,
            db.tables.inbox,
            consumer=consumer,
            on_commit=committed,
            on_outbox=outbox_written,
        )

    async def handler(event: FileSubmitted, uow: UnitOfWork) -> None:
        it = state["it"]
        event_id = str(event.event_id)
        it.calls.append(event_id)
        async with uow:
            if it.later:
                uow.insert_at_commit(_insert_applied(), [{"event_id": event_id}])
            else:
                await uow.conn.execute(applied.insert().values(event_id=event_id))
            uow.emit(TOPIC + ".echo", event)
            if event_id in it.failing:
                raise it.failing[event_id]
            if event_id in it.silent:
                return
            await uow.commit()

    consumer = EventConsumer(
        broker, GROUP, db.uow, attempts=2, max_wait=0.01, batch_factory=batch, batch_max=50
    )
    consumer.subscribe([TOPIC], {FileSubmitted: handler})
    consumer.attach()

    async def raw(msg: Any) -> bytes:
        return msg.body

    @broker.subscriber(topics.dead_letter(TOPIC), decoder=raw)
    async def capture(body: bytes, msg: KafkaMessage) -> None:
        state["it"].dead_letters.append((msg.body, dict(msg.headers)))

    async with TestKafkaBroker(broker):
        state["it"] = Batches(broker, db, consumer, batch)
        yield state["it"]


@prepared
def _insert_applied() -> sa.Insert:
    return applied.insert()


def events(n: int) -> list[FileSubmitted]:
    return [file_submitted(file_id=f"GU-{i}") for i in range(n)]


async def test_a_batch_is_applied_in_one_transaction(batches):
    sent = events(5)

    await batches.send(*(e.model_dump_json() for e in sent))

    ids = [str(e.event_id) for e in sent]
    assert batches.calls == ids
    assert sorted(await batches.applied()) == sorted(ids)
    assert await batches.inbox() == set(ids)
    assert await batches.outbox_ids() == [e.file_id for e in sent]  # in the records' order
    assert batches.commits == 1
    assert batches.relay_wakes == 1


async def test_a_batch_that_emits_nothing_does_not_wake_the_relay(batches):
    sent = events(2)
    batches.silent.update(str(e.event_id) for e in sent)  # both commit nothing

    await batches.send(*(e.model_dump_json() for e in sent))

    assert await batches.outbox_ids() == []
    assert (batches.commits, batches.relay_wakes) == (1, 0)


async def test_a_poison_record_is_dead_lettered_and_the_others_applied_once(batches):
    sent = events(5)
    poison = str(sent[2].event_id)
    batches.failing[poison] = PermanentError("dossier incohérent")

    await batches.send(*(e.model_dump_json() for e in sent))

    ids = [str(e.event_id) for e in sent]
    others = [str(e.event_id) for i, e in enumerate(sent) if i != 2]
    # The first pass, without savepoints, stopped at the poison record and was rolled back
    # (had it not been, the second pass's inserts would break the table's primary key);
    # the second applied the others, each in its savepoint. A permanent failure is not
    # tried again: the poison record's handler ran once.
    assert batches.calls == ids[:3] + others
    assert sorted(await batches.applied()) == sorted(others)  # its savepoint rolled back
    assert await batches.inbox() == set(others)
    assert await batches.outbox_ids() == [e.file_id for i, e in enumerate(sent) if i != 2]
    [(body, headers)] = batches.dead_letters
    assert json.loads(body)["event_id"] == poison
    assert headers["dlq_reason"] == "PermanentError: dossier incohérent"
    assert headers["dlq_consumer"] == GROUP
    assert batches.commits == 1


async def test_a_failing_record_is_retried_in_its_savepoint_then_dead_lettered(batches):
    sent = events(3)
    batches.failing[str(sent[1].event_id)] = ValueError("division par zéro")

    await batches.send(*(e.model_dump_json() for e in sent))

    first, failing, last = (str(e.event_id) for e in sent)
    # Its first attempt in the first pass (rolled back), its second in its savepoint.
    assert batches.calls == [first, failing, first, failing, last]
    assert sorted(await batches.applied()) == sorted([str(sent[0].event_id), str(sent[2].event_id)])
    [(_, headers)] = batches.dead_letters
    assert headers["dlq_reason"] == "ValueError: division par zéro"


async def test_an_invalid_body_in_a_batch_is_dead_lettered_after_the_others_commit(batches):
    sent = events(2)

    await batches.send(sent[0].model_dump_json(), b'{"file_id": "GU-9"', sent[1].model_dump_json())

    assert sorted(await batches.applied()) == sorted(str(e.event_id) for e in sent)
    [(body, headers)] = batches.dead_letters
    assert body == b'{"file_id": "GU-9"'
    assert headers["dlq_reason"].startswith("événement invalide")


async def test_a_redelivered_batch_applies_nothing_twice(batches):
    sent = events(4)
    bodies = [e.model_dump_json() for e in sent]
    await batches.send(*bodies[:2])

    await batches.send(*bodies)  # the first two again (an offset not committed), two new

    assert batches.calls == [str(e.event_id) for e in sent]
    assert sorted(await batches.applied()) == sorted(str(e.event_id) for e in sent)
    assert await batches.outbox_ids() == [e.file_id for e in sent]


async def test_an_event_twice_in_one_batch_is_applied_once(batches):
    [event] = events(1)

    await batches.send(event.model_dump_json(), event.model_dump_json())

    assert batches.calls == [str(event.event_id)]
    assert await batches.applied() == [str(event.event_id)]


async def test_an_infrastructure_failure_rolls_the_whole_batch_back(batches):
    sent = events(3)
    failing = str(sent[2].event_id)
    batches.failing[failing] = ConnectionRefusedError("base de données injoignable")

    with pytest.raises(ConnectionRefusedError):  # NACK: every partition rewound, redelivered
        await batches.send(*(e.model_dump_json() for e in sent))

    assert await batches.applied() == []
    assert await batches.inbox() == set()
    assert await batches.outbox_ids() == []
    assert batches.dead_letters == []
    assert batches.commits == 0

    del batches.failing[failing]
    batches.calls.clear()
    await batches.send(*(e.model_dump_json() for e in sent))  # the redelivery

    assert batches.calls == [str(e.event_id) for e in sent]
    assert sorted(await batches.applied()) == sorted(str(e.event_id) for e in sent)


async def test_a_handler_that_commits_nothing_leaves_no_inbox_row(batches):
    sent = events(2)
    batches.silent.add(str(sent[0].event_id))

    await batches.send(*(e.model_dump_json() for e in sent))

    assert await batches.applied() == [str(sent[1].event_id)]
    assert await batches.inbox() == {str(sent[1].event_id)}  # as a unit of work rolled back
    assert await batches.outbox_ids() == [sent[1].file_id]


@pytest.mark.parametrize(
    ("batch_max", "subscriber"), [(1, DefaultSubscriber), (2, BatchSubscriber)]
)
async def test_batch_size_one_reads_one_record_at_a_time_as_before(batches, batch_max, subscriber):
    async def handler(event: FileSubmitted, uow: UnitOfWork) -> None:
        raise AssertionError("not called")

    consumer = EventConsumer(
        KafkaBroker(), GROUP, batches.db.uow, batch_factory=batches.batch, batch_max=batch_max
    )
    consumer.subscribe([TOPIC], {FileSubmitted: handler})
    consumer.attach()

    assert type(consumer.subscriber) is subscriber


class _Deadlock(Exception):
    sqlstate = "40P01"


def deadlock() -> sa.exc.DBAPIError:
    return sa.exc.DBAPIError("UPDATE agents …", {}, _Deadlock("deadlock detected"))


def test_a_deadlock_or_a_serialization_failure_is_a_lost_race_and_transient():
    assert lost_a_race(deadlock()) and is_transient(deadlock())
    assert not lost_a_race(sa.exc.DBAPIError("SELECT 1", {}, Exception("syntax")))
    assert not lost_a_race(ValueError("40P01"))


async def test_a_lost_race_rolls_the_batch_back_at_once_for_redelivery(batches):
    sent = events(3)
    batches.failing[str(sent[1].event_id)] = deadlock()

    with pytest.raises(sa.exc.DBAPIError):  # NACK: the batch comes again
        await batches.send(*(e.model_dump_json() for e in sent))

    # Not retried in its savepoint while the batch held the first record's locks.
    assert batches.calls == [str(sent[0].event_id), str(sent[1].event_id)]
    assert await batches.applied() == []
    assert await batches.inbox() == set()
    assert batches.dead_letters == []


async def test_savepoints_cost_one_round_trip_per_record_on_postgresql(batches, monkeypatch):
    sent: list[str] = []  # what the driver was sent, one item per round trip
    for driver in (asyncpg.Connection, InlineConnection):
        real = driver.execute

        async def spied(self: Any, sql: str, *args: Any, real: Any = real) -> Any:
            if sql.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
                sent.append(sql)
            return await real(self, sql, *args)

        monkeypatch.setattr(driver, "execute", spied)
    records = events(4)
    poison = str(records[2].event_id)
    batches.failing[poison] = ValueError("dossier incohérent")  # fails at every attempt

    await batches.send(*(e.model_dump_json() for e in records))

    # The first pass had no savepoint; after its rollback, the second (below) tried the
    # failing record's second attempt in its savepoint, and undid it.
    save, release, back = (
        "SAVEPOINT guichet_record",
        "RELEASE SAVEPOINT guichet_record",
        "ROLLBACK TO SAVEPOINT guichet_record",
    )
    if batches.db.engine.dialect.name == "postgresql":
        # A record's RELEASE goes with the next one's SAVEPOINT, the last one's with COMMIT.
        assert sent == [
            save,
            f"{release}; {save}",
            f"{release}; {save}",
            f"{back}; {release}",  # the poison record, undone at once
            save,
        ]
    else:  # SQLite: no round trips; each statement on its own, as before
        assert sent == [save, release, save, release, save, back, release, save, release]
    assert sorted(await batches.applied()) == sorted(
        str(e.event_id) for e in records if str(e.event_id) != poison
    )


async def test_a_batch_without_failure_sends_no_savepoint_statement(batches, monkeypatch):
    sent: list[str] = []
    real = BatchTransaction.savepoint_sql

    async def spied(self: BatchTransaction, *statements: str) -> None:
        sent.extend(statements)
        await real(self, *statements)

    monkeypatch.setattr(BatchTransaction, "savepoint_sql", spied)
    records = events(4)

    await batches.send(*(e.model_dump_json() for e in records))

    assert sent == []
    assert batches.calls == [str(e.event_id) for e in records]
    assert sorted(await batches.applied()) == sorted(str(e.event_id) for e in records)
    assert batches.commits == 1


async def test_a_unit_of_work_left_without_commit_is_undone_alone(batches):
    sent = events(3)
    silent = str(sent[1].event_id)
    batches.silent.add(silent)  # it inserted its row, emitted, and left without commit

    await batches.send(*(e.model_dump_json() for e in sent))

    kept = [str(sent[0].event_id), str(sent[2].event_id)]
    assert sorted(await batches.applied()) == sorted(kept)
    assert await batches.inbox() == set(kept)
    assert await batches.outbox_ids() == [sent[0].file_id, sent[2].file_id]
    assert batches.commits == 1
    assert batches.dead_letters == []


@pytest.mark.parametrize("savepoints", [False, True], ids=["first pass", "with savepoints"])
async def test_rows_inserted_at_commit_go_in_one_execution_and_only_if_committed(
    batches, monkeypatch, savepoints
):
    batches.later = True
    executions: list[int] = []
    real = BatchTransaction.commit

    async def counted(self: BatchTransaction) -> None:
        executions.extend(len(rows) for rows in self._later.values())
        await real(self)

    monkeypatch.setattr(BatchTransaction, "commit", counted)
    sent = events(4)
    ids = [str(e.event_id) for e in sent]
    if savepoints:  # a poison and a record left without commit: the second pass
        batches.failing[ids[1]] = PermanentError("dossier incohérent")
        batches.silent.add(ids[2])

    await batches.send(*(e.model_dump_json() for e in sent))

    kept = [ids[0], ids[3]] if savepoints else ids
    assert executions == [len(kept)]  # the batch's rows, one statement
    assert sorted(await batches.applied()) == sorted(kept)  # in order, theirs only
    assert await batches.inbox() == set(kept)
    assert batches.commits == 1


async def test_a_unit_of_work_writes_its_rows_at_commit_and_none_without(batches):
    async with batches.db.uow() as uow:
        uow.insert_at_commit(_insert_applied(), [{"event_id": "a"}])
        uow.insert_at_commit(_insert_applied(), [{"event_id": "b"}, {"event_id": "c"}])
        assert (await uow.conn.execute(sa.select(applied))).all() == []  # not yet
        await uow.commit()
    async with batches.db.uow() as uow:
        uow.insert_at_commit(_insert_applied(), [{"event_id": "d"}])
    assert sorted(await batches.applied()) == ["a", "b", "c"]
