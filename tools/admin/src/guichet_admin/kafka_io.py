"""Reading whole topics and publishing records with plain aiokafka clients (no consumer group:
the operators' reads never move a service's offsets)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from guichet_admin.errors import AdminError
from guichet_admin.letters import DeadLetter, Position, decode_headers
from shared_models import topics

#: How long reading a topic to its end may take before the tool gives up.
READ_TIMEOUT = 60.0


class KafkaAccess(BaseSettings):
    """Credentials, from the same variables as the services': none on a laptop, SASL
    SCRAM-SHA-512 over TLS on a cluster (the operators' KafkaUser)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    kafka_sasl_username: str = Field(default="", description="SASL user; empty: plaintext.")
    kafka_sasl_password: SecretStr = Field(default=SecretStr(""), description="Its password.")
    kafka_ca_file: Path | None = Field(default=None, description="CA of Kafka's TLS listener.")
    kafka_security_protocol: Literal["SASL_SSL", "SASL_PLAINTEXT"] = Field(
        default="SASL_SSL", description="SASL_PLAINTEXT on the local broker (devstack.kafka)."
    )

    def client_options(self, bootstrap: str) -> dict[str, Any]:
        """Keyword arguments of every aiokafka client (consumer, producer, admin)."""
        options: dict[str, Any] = {"bootstrap_servers": bootstrap}
        if self.kafka_sasl_username:
            options |= {
                "security_protocol": self.kafka_security_protocol,
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password.get_secret_value(),
            }
            if self.kafka_security_protocol == "SASL_SSL":
                options["ssl_context"] = ssl.create_default_context(
                    cafile=str(self.kafka_ca_file) if self.kafka_ca_file else None
                )
        return options


def client_options(bootstrap: str) -> dict[str, Any]:
    return KafkaAccess().client_options(bootstrap)


class TopicReader:
    """`async with TopicReader(bootstrap) as reader:` then `await reader.read(topic)`."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(
            **client_options(bootstrap),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._admin = AIOKafkaAdminClient(**client_options(bootstrap))

    async def __aenter__(self) -> TopicReader:
        await self._admin.start()
        try:
            await self._consumer.start()
            # Let the consumer's internal task begin: aiokafka's stop() right after start()
            # cancels it before its first step and re-raises the CancelledError.
            await asyncio.sleep(0)
        except BaseException:
            await self._admin.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._consumer.stop()
        finally:
            await self._admin.close()

    async def topics(self) -> set[str]:
        return set(await self._admin.list_topics())

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partitions; [] when it does not exist."""
        [described] = await self._admin.describe_topics([topic])
        if described["error_code"] != 0:
            return []
        return sorted(int(p["partition"]) for p in described["partitions"])

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(partitions)
        return ends

    async def read(self, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
        """Every record the topic holds now, in (partition, offset) order; [] if it does not
        exist."""
        tps = [TopicPartition(topic, p) for p in await self.partitions(topic)]
        if not tps:
            return []
        self._consumer.assign(tps)
        begin = await self._consumer.beginning_offsets(tps)
        end = await self._consumer.end_offsets(tps)
        for tp in tps:
            self._consumer.seek(tp, begin[tp])
        remaining = {tp for tp in tps if end[tp] > begin[tp]}
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + READ_TIMEOUT
        while remaining:
            if time.monotonic() > deadline:
                raise AdminError(f"reading {topic} to its end took over {READ_TIMEOUT:.0f} s")
            batch = await self._consumer.getmany(*remaining, timeout_ms=500)
            for tp, recs in batch.items():
                records.extend(r for r in recs if r.offset < end[tp])
            for tp in list(remaining):
                if await self._consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        self._consumer.assign([])
        return sorted(records, key=lambda r: (r.partition, r.offset))


def as_letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        position=Position(record.topic, record.partition, record.offset),
        timestamp=dt.datetime.fromtimestamp(record.timestamp / 1000, dt.UTC),
        key=record.key,
        value=record.value or b"",
        headers=decode_headers(record.headers),
    )


class Publisher:
    """An idempotent producer waiting for every in-sync replica (acks=all)."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(
            **client_options(bootstrap), acks="all", enable_idempotence=True
        )

    async def __aenter__(self) -> Publisher:
        await self._producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def publish(
        self, topic: str, value: bytes, key: bytes | None, headers: Mapping[str, str]
    ) -> Position:
        """Publish and wait for the broker's acknowledgement; returns where the record landed."""
        sent = await asyncio.wait_for(
            self._producer.send_and_wait(
                topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
            ),
            timeout=READ_TIMEOUT,
        )
        return Position(sent.topic, sent.partition, sent.offset)


async def ensure_topic(bootstrap: str, name: str, timeout: float = 30.0) -> None:
    """Create a one-partition topic if missing (replicated like the cluster allows, up to 3),
    then wait for its leader."""
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        if name not in await admin.list_topics():
            brokers = len((await admin.describe_cluster())["brokers"])
            replicas = max(1, min(3, brokers))
            configs = topics.retention(name).configs()  # an operators' ledger's
            response = await admin.create_topics(
                [NewTopic(name, 1, replicas, topic_configs=configs)]
            )
            for error in response.topic_errors:  # (topic, error_code[, message])
                if error[1] not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(error[1])(f"cannot create topic {error[0]}: {error[2:]}")
        deadline = time.monotonic() + timeout
        while True:
            [described] = await admin.describe_topics([name])
            partitions = described["partitions"]
            if described["error_code"] == 0 and partitions and partitions[0]["leader"] >= 0:
                return
            if time.monotonic() > deadline:
                raise AdminError(f"topic {name} has no leader after {timeout:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
