"""The topics the runtime's ensure_topics (services, adapters) and the development stack's
administrator (devstack.kafka_sasl) create carry the retention declared in
shared_models.topics.RETENTIONS, on the real broker (tests/deploy/test_topic_retention.py
checks Strimzi's KafkaTopics against the same declaration)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devstack.kafka_sasl import access, client_options
from devstack.kafka_sasl import create_topics as stack_create_topics
from guichet_runtime.service import ensure_topics
from shared_models import topics

pytestmark = pytest.mark.integration

RETAINED = ("cleanup.policy", "retention.ms")


async def described(options, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        for _code, _message, _type, name, entries in response.resources:
            found[name] = {entry[0]: entry[1] for entry in entries if entry[0] in RETAINED}
    return found


async def test_the_runtime_and_the_stack_create_topics_with_the_declared_retention(
    kafka_bootstrap,
):
    namespace = f"ret{uuid.uuid4().hex[:8]}."
    kinds = {
        topics.FILES_SUBMITTED: topics.PARTITIONS,
        topics.agency_requests("caf"): topics.PARTITIONS,
        topics.dead_letter(topics.FILES_SUBMITTED): 1,
        topics.parked(topics.FILES_SUBMITTED): 1,
        topics.replayed(topics.FILES_SUBMITTED): 1,
    }
    options = client_options(kafka_bootstrap)
    by_runtime = {f"{namespace}rt.{name}": n for name, n in kinds.items()}
    await ensure_topics(options, by_runtime)
    by_stack = {f"{namespace}st.{name}": n for name, n in kinds.items()}
    await stack_create_topics(access(kafka_bootstrap), by_stack)
    found = await described(options, [*by_runtime, *by_stack])
    for name in [*by_runtime, *by_stack]:
        assert found[name] == topics.retention(name).configs(), name
