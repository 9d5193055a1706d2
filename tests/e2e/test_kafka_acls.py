"""Kafka refuses whoever it should, on the real broker (the session's local broker, with
SASL/SCRAM-SHA-512 and the ACLs `shared_models.topology.acls` derives, see devstack.kafka_sasl):
no credentials, a wrong password, a principal reading a topic it does not consume or joining
another's consumer group, an adapter touching another agency's topics. And lets each principal
do what its declaration says, the operators reading dead letters included."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)

from devstack.kafka_sasl import KafkaAccess, access
from shared_models import topics, topology

pytestmark = pytest.mark.integration

AGENCIES = ("caf", "dgfip", "france_travail", "cpam")
TIMEOUT = 30


@pytest.fixture(scope="module")
def kafka(kafka_bootstrap: str) -> Iterator[tuple[KafkaAccess, str]]:
    """The broker's credentials and a fresh namespace with its topics and ACLs."""
    found = access(kafka_bootstrap)
    if not found.sasl:
        pytest.skip("this broker does not authenticate (GUICHET_KAFKA_SASL=0 or external)")
    namespace = f"acl-{uuid.uuid4().hex[:6]}."
    found.prepare_blocking(namespace, AGENCIES)
    yield found, namespace


async def produce(kafka: KafkaAccess, user: str, topic: str) -> int:
    producer = AIOKafkaProducer(**kafka.client_options(user), request_timeout_ms=10_000)
    await producer.start()
    try:
        sent = await asyncio.wait_for(producer.send_and_wait(topic, b"{}", key=b"k"), TIMEOUT)
        return sent.offset
    finally:
        await producer.stop()


async def consume(kafka: KafkaAccess, user: str, topic: str, group: str | None) -> bytes | None:
    """The first record of `topic`, read as `user` in `group` (None: no group)."""
    consumer = AIOKafkaConsumer(
        topic, **kafka.client_options(user), group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        return (await asyncio.wait_for(consumer.getone(), TIMEOUT)).value
    finally:
        await consumer.stop()


async def test_a_client_without_credentials_is_refused(kafka):
    broker, _ = kafka
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await admin.start()
    await admin.close()


async def test_a_client_that_does_not_speak_tls_is_refused(kafka):
    broker, _ = kafka
    if not broker.ca_file:
        pytest.skip("this broker listens without TLS (GUICHET_KAFKA_TLS=0)")
    options = broker.client_options("intake")
    options = {k: v for k, v in options.items() if k != "ssl_context"}
    admin = AIOKafkaAdminClient(
        **options | {"security_protocol": "SASL_PLAINTEXT"}, request_timeout_ms=5000
    )
    with pytest.raises(KafkaConnectionError):
        await admin.start()
    await admin.close()


async def test_a_wrong_password_is_refused(kafka):
    broker, _ = kafka
    options = broker.client_options("intake") | {"sasl_plain_password": "pas-le-bon"}
    admin = AIOKafkaAdminClient(**options, request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await admin.start()
    await admin.close()


async def test_intake_cannot_join_the_group_of_adapter_caf(kafka):
    broker, ns = kafka
    # Intake does read the CAF's requests (topology.intake), but not as the adapter's group.
    assert topics.agency_requests("caf") in topology.intake(AGENCIES).consumes
    await produce(broker, "admin", ns + topics.agency_requests("caf"))
    with pytest.raises(GroupAuthorizationFailedError):
        await consume(broker, "intake", ns + topics.agency_requests("caf"), ns + "adapter-caf")


async def test_intake_cannot_read_a_topic_it_does_not_consume(kafka):
    broker, ns = kafka
    assert topics.FILES_SUBMITTED not in topology.intake(AGENCIES).consumes
    with pytest.raises(TopicAuthorizationFailedError):
        await consume(broker, "intake", ns + topics.FILES_SUBMITTED, ns + "intake")


async def test_adapter_caf_reads_and_answers_for_the_caf_only(kafka):
    broker, ns = kafka
    await produce(broker, "admin", ns + topics.agency_requests("caf"))
    group = ns + topics.adapter_service("caf")
    assert await consume(broker, "adapter-caf", ns + topics.agency_requests("caf"), group)
    assert await produce(broker, "adapter-caf", ns + topics.agency_answers("caf")) >= 0
    with pytest.raises(TopicAuthorizationFailedError):
        await consume(broker, "adapter-caf", ns + topics.agency_requests("dgfip"), group)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(broker, "adapter-caf", ns + topics.agency_answers("dgfip"))


async def test_the_operator_reads_dead_letters_that_services_cannot(kafka):
    broker, ns = kafka
    dead_letters = ns + topics.dead_letter(topics.FILES_SUBMITTED)
    await produce(broker, "assignment", dead_letters)  # assignment parks what it cannot handle
    assert await consume(broker, topology.OPERATOR, dead_letters, None) == b"{}"
    with pytest.raises(TopicAuthorizationFailedError):
        await consume(broker, "intake", dead_letters, None)
    # Replay: the operators write the original topic back.
    assert await produce(broker, topology.OPERATOR, ns + topics.FILES_SUBMITTED) >= 0
