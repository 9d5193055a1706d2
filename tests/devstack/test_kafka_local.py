"""The Kafka broker run from Maven jars (devstack.kafka) serves real aiokafka clients."""

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from devstack.kafka import LocalKafka
from guichet_runtime.service import ensure_topics

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    with LocalKafka(ROOT, tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


async def test_keyed_message_round_trip(kafka):
    topic = f"devstack-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka.bootstrap, {topic: 3})
    await ensure_topics(kafka.bootstrap, {topic: 3})  # idempotent: already-exists is not an error

    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        partitions = await producer.partitions_for(topic)
        sent = await producer.send_and_wait(topic, b"dossier-created", key=b"citizen-42")
    finally:
        await producer.stop()
    assert partitions == {0, 1, 2}

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert (msg.key, msg.value) == (b"citizen-42", b"dossier-created")
    assert (msg.partition, msg.offset) == (sent.partition, sent.offset)


async def test_topics_are_not_auto_created(kafka):
    name = f"never-created-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        [meta] = await admin.describe_topics(
            [name]
        )  # a metadata request would auto-create it if enabled
        assert meta["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION
        assert name not in await admin.list_topics()
    finally:
        await admin.close()


def test_busy_port_is_refused(kafka, tmp_path):
    with pytest.raises(RuntimeError, match="already in use"):
        LocalKafka(ROOT, tmp_path, port=kafka.port).start()
