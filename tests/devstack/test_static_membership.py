"""KAFKA_GROUP_INSTANCE_ID (guichet_runtime.settings, static membership, KIP-345) on the real
broker: the runtime's consumer joins its group under that id, and a process started again
under it takes its partitions back in the same generation (no rebalance), where a dynamic
member is a new member in a new generation. devstack's stacks give each service its name as
its id, so a service restarted after a crash consumes again at once instead of waiting out
the dead process's session (10 s)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker

from devstack.kafka_sasl import access, broker_security, client_options, create_topics
from guichet_runtime.consumer import EventConsumer

pytestmark = pytest.mark.integration


async def joined(bootstrap: str, namespace: str, instance_id: str | None) -> tuple[Any, Any]:
    """A runtime consumer of `namespace`'s topic, started and in its group."""
    broker = KafkaBroker(bootstrap, security=broker_security(bootstrap))
    consumer = EventConsumer(
        broker,
        "static",
        lambda key=None: None,  # type: ignore[arg-type,return-value]
        namespace=namespace,
        group_instance_id=instance_id,
    )
    consumer.subscribe(["events"], {})
    consumer.attach()
    await broker.start()
    for _ in range(300):
        if consumer.membership.joined:
            return broker, consumer
        await asyncio.sleep(0.1)
    await broker.stop()
    raise AssertionError("the consumer never joined its group")


async def members(bootstrap: str, group: str) -> list[str]:
    """The member ids of the group, as the broker describes them."""
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    (described,) = response.groups
    # (error, group, state, protocol type, protocol, members); a member's id comes first.
    return [m[0] for m in described[5]]


@pytest.mark.parametrize("instance_id", ["intake", None], ids=["static", "dynamic"])
async def test_a_restart_under_the_instance_id_takes_the_partitions_back_in_the_same_generation(
    kafka_bootstrap, instance_id
):
    namespace = f"sm{uuid.uuid4().hex[:8]}."
    await create_topics(access(kafka_bootstrap), {f"{namespace}events": 3})
    group = f"{namespace}static"

    broker, consumer = await joined(kafka_bootstrap, namespace, instance_id)
    first = consumer.subscriber.consumer._coordinator.generation
    (member,) = await members(kafka_bootstrap, group)
    await broker.stop()  # a static member does not leave: to the group, as a crash

    broker, consumer = await joined(kafka_bootstrap, namespace, instance_id)
    try:
        again = consumer.subscriber.consumer._coordinator.generation
        assert len(consumer.membership.partitions) == 3
        (rejoined,) = await members(kafka_bootstrap, group)  # the first one is gone
        assert rejoined != member
        if instance_id:
            assert again == first  # the broker handed the same assignment back
        else:
            assert again > first  # a dynamic member's stop and join: two rebalances
    finally:
        await broker.stop()
