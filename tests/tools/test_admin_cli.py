"""guichet-admin on the real broker: a real EventConsumer dead-letters two records, then the CLI
lists them, shows their reasons, replays one after a fix (once, however often it is asked),
parks the other; and shows a consumer group's lag.

Each test has its own topic namespace. The CLI runs in a worker thread (it calls asyncio.run)
while the consumer keeps running on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from typer.testing import CliRunner, Result

from devstack.kafka_sasl import ADMIN, access, broker_security, client_options
from guichet_admin.cli import app
from guichet_admin.kafka_io import TopicReader
from guichet_admin.lag import consumer_lag
from guichet_runtime.consumer import EventConsumer, PermanentError
from guichet_runtime.service import ensure_topics
from shared_models import FileSubmitted, topics
from tests.unit.samples import file_submitted

pytestmark = pytest.mark.integration

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(autouse=True)
def admin_credentials(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI (and its TopicReader) read KAFKA_SASL_* like on a cluster: here the super user
    (the operator principal's own rights are tested in tests/e2e/test_kafka_acls.py)."""
    for name, value in access(kafka_bootstrap).env(ADMIN).items():
        if name not in ("KAFKA_BOOTSTRAP", "CREATE_TOPICS"):  # options of each command
            monkeypatch.setenv(name, value)


async def cli(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def wait_for(condition: Any, timeout: float = 60) -> None:
    for _ in range(int(timeout * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("condition not met in time")


async def consumed_all(stack: Stack, timeout: float = 60) -> None:
    """Until the consumer's group committed every record of its topic (as many offsets as
    records, lag zero): what it will ever handle of what is there, it has handled."""
    records = len(await stack.source_records())
    rows: list = []
    for _ in range(int(timeout * 10)):
        rows = await consumer_lag(stack.bootstrap, stack.namespace, "assignment")
        if sum(r.committed for r in rows) == records and not any(r.lag for r in rows):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the group has not committed its {records} records: {rows}")


@dataclass
class Stack:
    bootstrap: str
    namespace: str
    consumer: EventConsumer
    handled: list[FileSubmitted] = field(default_factory=list)
    broken: list[bool] = field(default_factory=lambda: [True])

    @property
    def source(self) -> str:
        return self.namespace + topics.FILES_SUBMITTED

    def opts(self) -> list[str]:
        return ["--bootstrap", self.bootstrap, "--namespace", self.namespace]

    async def publish(self, body: bytes, key: bytes) -> None:
        producer = AIOKafkaProducer(**client_options(self.bootstrap))
        await producer.start()
        try:
            await producer.send_and_wait(
                self.source,
                body,
                key=key,
                headers=[
                    ("event_type", b"FileSubmitted"),
                    ("content-type", b"application/json"),
                    ("traceparent", TRACEPARENT.encode()),
                ],
            )
        finally:
            await producer.stop()

    async def source_records(self) -> list[Any]:
        async with TopicReader(self.bootstrap) as reader:
            return await reader.read(self.source)


@pytest.fixture
async def stack(kafka_bootstrap: str) -> AsyncIterator[Stack]:
    """The assignment group's real consumer on files.submitted, its handler broken until the
    test fixes it."""
    namespace = f"adm{uuid.uuid4().hex[:8]}."
    await ensure_topics(
        client_options(kafka_bootstrap),
        {
            namespace + topics.FILES_SUBMITTED: topics.PARTITIONS,
            namespace + topics.dead_letter(topics.FILES_SUBMITTED): 1,
        },
    )
    broker = KafkaBroker(kafka_bootstrap, security=broker_security(kafka_bootstrap))
    consumer = EventConsumer(
        broker,
        "assignment",
        lambda _key: None,
        attempts=1,
        namespace=namespace,  # type: ignore[arg-type,return-value]
    )
    state = Stack(kafka_bootstrap, namespace, consumer)

    async def handler(event: FileSubmitted, _uow: Any) -> None:
        if state.broken[0]:
            raise PermanentError("a bug in the handler")
        state.handled.append(event)

    consumer.subscribe([topics.FILES_SUBMITTED], {FileSubmitted: handler})
    consumer.attach()
    await broker.start()
    try:
        yield state
    finally:
        await broker.stop()


async def test_dead_letters_listed_shown_replayed_once_and_parked(stack: Stack) -> None:
    event = file_submitted()
    await stack.publish(event.model_dump_json().encode(), event.key().encode())
    await stack.publish(b'{"not": "a file"}', b"GU-POISON")
    await wait_for(lambda: stack.consumer.dead_lettered == 2)
    opts = stack.opts()

    listed = as_json(await cli("dlq", "list", *opts, "--json"))
    assert [t["topic"] for t in listed] == ["files.submitted.dlq"]
    assert listed[0] | {"oldest_pending": None} == {
        "topic": "files.submitted.dlq",
        "total": 2,
        "pending": 2,
        "replayed": 0,
        "parked": 0,
        "oldest_pending": None,
    }
    human = await cli("dlq", "list", *opts)
    assert human.exit_code == 0 and "files.submitted.dlq" in human.stdout

    letters = as_json(await cli("dlq", "show", "files.submitted.dlq", *opts, "--json"))
    by_key = {x["key"]: x for x in letters}
    bug, poison = by_key[event.key()], by_key["GU-POISON"]
    assert bug["reason"] == "PermanentError: a bug in the handler"
    assert bug["consumer"] == "assignment" and bug["event_id"] == str(event.event_id)
    assert bug["payload"]["file_id"] == event.file_id
    assert bug["source"].startswith(stack.source + ":")
    assert poison["reason"].startswith("événement invalide")
    shown = await cli("dlq", "show", "files.submitted", "--offset", str(poison["offset"]), *opts)
    assert shown.exit_code == 0, shown.output
    assert "événement invalide" in shown.stdout and '"not": "a file"' in shown.stdout

    # The fix is deployed; the operator replays the letter, twice by mistake.
    stack.broken[0] = False
    replayed = as_json(
        await cli(
            "dlq", "replay", "files.submitted.dlq", "--offset", str(bug["offset"]), *opts, "--json"
        )
    )
    assert replayed["replayed"] == 1
    await wait_for(lambda: len(stack.handled) == 1)
    assert stack.handled[0].event_id == event.event_id
    assert len(await stack.source_records()) == 3
    again = await cli("dlq", "replay", "files.submitted.dlq", "--offset", str(bug["offset"]), *opts)
    assert again.exit_code == 0 and "already replayed" in again.stdout
    assert len(await stack.source_records()) == 3

    [republished] = [
        r
        for r in await stack.source_records()
        if ("dlq_replayed_from", bug["position"].encode()) in r.headers
    ]
    headers = {k: v.decode() for k, v in republished.headers}
    assert republished.key == event.key().encode()
    assert json.loads(republished.value) == json.loads(event.model_dump_json())
    assert headers["traceparent"] == TRACEPARENT and headers["event_type"] == "FileSubmitted"
    assert not any(k.startswith("dlq_") and k != "dlq_replayed_from" for k in headers)

    parked = as_json(
        await cli(
            "dlq",
            "park",
            "files.submitted.dlq",
            "--offset",
            str(poison["offset"]),
            "--reason",
            "corrupt body, the citizen submits again",
            "--operator",
            "alice",
            *opts,
            "--json",
        )
    )
    assert parked["parked"] == 1
    listed = as_json(await cli("dlq", "list", *opts, "--json"))
    assert listed[0] | {"oldest_pending": None} == {
        "topic": "files.submitted.dlq",
        "total": 2,
        "pending": 0,
        "replayed": 1,
        "parked": 1,
        "oldest_pending": None,
    }
    assert as_json(await cli("dlq", "show", "files.submitted.dlq", *opts, "--json")) == []
    shown = as_json(
        await cli(
            "dlq", "show", "files.submitted.dlq", "--offset", str(poison["offset"]), *opts, "--json"
        )
    )
    assert shown["status"] == "parked"
    assert shown["parked"]["reason"] == "corrupt body, the citizen submits again"
    assert shown["parked"]["by"] == "alice"

    # Neither --all nor an explicit offset replays a parked letter; nothing more is published.
    nothing = as_json(await cli("dlq", "replay", "files.submitted.dlq", "--all", *opts, "--json"))
    assert nothing["replayed"] == 0
    refused = await cli(
        "dlq", "replay", "files.submitted.dlq", "--offset", str(poison["offset"]), *opts
    )
    assert refused.exit_code == 1 and "parked" in refused.stderr
    assert len(await stack.source_records()) == 3
    await consumed_all(stack)  # the three records, and nothing more, went through the consumer
    assert len(stack.handled) == 1 and stack.consumer.dead_lettered == 2


async def test_replay_all_republishes_each_pending_letter_once(stack: Stack) -> None:
    events = [file_submitted(file_id=f"GU-2025-REPLAYA{chr(65 + i)}") for i in range(3)]
    for event in events:
        await stack.publish(event.model_dump_json().encode(), event.key().encode())
    await wait_for(lambda: stack.consumer.dead_lettered == 3)
    stack.broken[0] = False
    opts = stack.opts()
    first = as_json(await cli("dlq", "replay", "files.submitted", "--all", *opts, "--json"))
    second = as_json(await cli("dlq", "replay", "files.submitted", "--all", *opts, "--json"))
    assert (first["replayed"], second["replayed"]) == (3, 0)
    await wait_for(lambda: len(stack.handled) == 3)
    assert sorted(e.file_id for e in stack.handled) == sorted(e.file_id for e in events)
    assert len(await stack.source_records()) == 6


async def test_usage_and_unreachable_errors_are_plain_messages(kafka_bootstrap: str) -> None:
    opts = ["--bootstrap", kafka_bootstrap, "--namespace", f"adm{uuid.uuid4().hex[:8]}."]
    missing = await cli("dlq", "show", "files.submitted.dlq", *opts)
    assert missing.exit_code == 1 and "no topic" in missing.stderr
    both = await cli("dlq", "replay", "files.submitted.dlq", "--offset", "0", "--all", *opts)
    assert both.exit_code == 2
    unreachable = await cli("dlq", "list", "--bootstrap", "127.0.0.1:1")
    assert unreachable.exit_code == 1 and "error: Kafka at 127.0.0.1:1" in unreachable.stderr


async def test_lag_shows_a_group_with_records_not_committed(kafka_bootstrap: str) -> None:
    namespace = f"adm{uuid.uuid4().hex[:8]}."
    topic = namespace + topics.FILES_SUBMITTED
    await ensure_topics(client_options(kafka_bootstrap), {topic: 1})
    producer = AIOKafkaProducer(**client_options(kafka_bootstrap))
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, b"{}", key=f"GU-{i}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        **client_options(kafka_bootstrap),
        group_id=namespace + "assignment",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit({TopicPartition(topic, 0): 1})
    finally:
        await consumer.stop()

    rows = as_json(
        await cli("lag", "--bootstrap", kafka_bootstrap, "--namespace", namespace, "--json")
    )
    assert [
        (r["group"], r["topic"], r["partition"], r["committed"], r["end"], r["lag"]) for r in rows
    ] == [("assignment", "files.submitted", 0, 1, 3, 2)]
    human = await cli("lag", "--bootstrap", kafka_bootstrap, "--namespace", namespace)
    assert human.exit_code == 0 and "total lag: assignment 2" in human.stdout
