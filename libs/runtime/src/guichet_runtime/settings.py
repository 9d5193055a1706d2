"""Configuration read from the environment (pydantic-settings)."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings every service shares; services subclass it for their own."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    service_name: str = Field(default="service", description="Name in traces, logs, groups.")
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers.")
    database_url: str = Field(
        default="sqlite+aiosqlite:///var/data/service.db",
        description="SQLAlchemy async URL of the service's own database.",
    )
    kafka_sasl_username: str = Field(
        default="",
        description="SASL SCRAM-SHA-512 user (its KafkaUser on a cluster); empty: none.",
    )
    kafka_sasl_password: SecretStr = Field(
        default=SecretStr(""), description="Password of KAFKA_SASL_USERNAME."
    )
    kafka_ca_file: Path | None = Field(
        default=None, description="CA certificates trusted for Kafka's TLS listener."
    )
    kafka_security_protocol: Literal["SASL_SSL", "SASL_PLAINTEXT"] = Field(
        default="SASL_SSL",
        description="With a SASL user: over TLS (a cluster), or SASL_PLAINTEXT (the local broker "
        "on the loopback, see devstack.kafka).",
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    topic_namespace: str = Field(
        default="",
        description="Prefix of every topic and consumer group, so several stacks share a cluster.",
    )
    create_topics: bool = Field(
        default=True,
        description="Declare the system's topics at start (off where Strimzi owns them).",
    )
    otel_spans_file: Path | None = Field(
        default=None, description="Write finished spans as JSON lines to this file."
    )
    relay_batch_size: int = 500
    relay_idle_seconds: float = Field(
        default=0.25, description="Outbox poll interval when nothing woke the relay."
    )
    log_level: str = "INFO"
    clock_file: Path | None = Field(
        default=None,
        description="A file holding today's date (ISO) to move time for rehearsals and tests "
        "(see guichet_runtime.clock); unset: the real Paris date.",
    )
