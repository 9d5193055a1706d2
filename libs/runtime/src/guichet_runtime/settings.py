"""Configuration read from the environment (pydantic-settings)."""

from pathlib import Path
from typing import Literal

from pydantic import Field, IPvAnyNetwork, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from guichet_runtime.body_limit import DEFAULT_MAX_BODY_BYTES
from guichet_runtime.secrets import Environment

#: PostgreSQL: connections a process keeps at most (`database_pool_size`, the default of
#: guichet_runtime.db.make_engine).
POOL_SIZE = 12


class ServiceSettings(BaseSettings):
    """Settings every service shares; services subclass it for their own."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    service_name: str = Field(default="service", description="Name in traces, logs, groups.")
    environment: Environment = Field(
        default=Environment.PRODUCTION,
        description="dev or production; outside dev a service refuses to start without its "
        "secrets (the development stack sets ENVIRONMENT=dev).",
    )
    secrets_dir: Path = Field(
        default=Path("var/secrets"),
        description="Where development secrets are generated once (ENVIRONMENT=dev only).",
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1,
        description="Largest request body taken (413 beyond); upload routes have their own.",
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Proxies (addresses or networks, JSON list) whose X-Forwarded-For names "
        "the client, e.g. the Ingress; empty: the connection's peer is the client.",
    )
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers.")
    database_url: str = Field(
        default="sqlite+aiosqlite:///var/data/service.db",
        description="SQLAlchemy async URL of the service's own database, as its run-time role "
        "(on PostgreSQL: reading and writing its tables only, see MIGRATION_DATABASE_URL).",
    )
    database_pool_size: int = Field(
        default=POOL_SIZE,
        ge=1,
        description="PostgreSQL: connections this process opens at most, as it needs them, "
        "and keeps (a transaction beyond them waits for one). Every replica of every service "
        "counts against the server's max_connections.",
    )
    migration_database_url: str | None = Field(
        default=None,
        description="The same database as the role that owns it, for the migrations run at "
        "start (MIGRATE_AT_START); they then grant DATABASE_URL's role the rights on the tables. "
        "Unset: the migrations run as DATABASE_URL's role (SQLite, or no separate owner).",
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
        default=1.0,
        gt=0,
        description="Outbox poll interval when nothing woke the relay: every commit of this "
        "process that writes outbox rows wakes it at once, so the poll only picks up rows "
        "another process wrote (a command run beside the service) and retries after a "
        "failure (on PostgreSQL, while the relay listens for the commits' notifications: "
        "RELAY_LISTEN_POLL_SECONDS).",
    )
    relay_listen_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="PostgreSQL: the fallback poll interval while LISTEN/NOTIFY wakes the relay.",
    )
    relay_linger_ms: int = Field(
        default=5,
        ge=0,
        description="The relay's idempotent producer waits this long to fill a batch of records.",
    )
    consumer_batch_max: int = Field(
        default=100,
        ge=1,
        description="Records consumed per database transaction and offset commit (1: one at a "
        "time). Adapters use no batch transaction, their handler calls an agency: they handle "
        "several records at once instead, each on its own (AGENCY_CONCURRENCY).",
    )
    consumer_batch_wait_ms: int = Field(
        default=1000,
        ge=1,
        description="How long one poll of a batched consumer waits for records when none is "
        "there; a record arriving meanwhile is taken at once and the next poll follows at "
        "once (guichet_runtime.batch_poll), so this only sets how often an idle consumer "
        "wakes up.",
    )
    consumer_commit_interval_ms: int = Field(
        default=1000,
        ge=0,
        description="A batched consumer commits the offsets of the records it handled at most "
        "once per this interval, and within it (guichet_runtime.offsets); before a rebalance "
        "takes partitions away and at a stop as well. A crash redelivers at most this much "
        "(each record skipped by the inbox). 0: a commit after every batch.",
    )
    kafka_group_instance_id: str | None = Field(
        default=None,
        description="Static membership of the consumer group (Kafka's group.instance.id, "
        "KIP-345): a process restarted under the same id within the session timeout (10 s) "
        "takes its partitions back at once, with no rebalance, where a new member waits for "
        "the crashed one's session to expire. Unique per live process of a group (a second "
        "process with the same id fences the first). A static member does not leave the group "
        "when it stops: its partitions wait for it, or for the session timeout. Unset (the "
        "default): dynamic membership, a stop hands the partitions over at once.",
    )
    log_level: str = "INFO"
    log_format: str = Field(
        default="text",
        description="`json`: one JSON object per line with trace and span ids (production); "
        "`text`: human-readable lines (development).",
    )
    migrate_at_start: bool = Field(
        default=True,
        description="Run the Alembic migrations at start; off where a Job runs them before "
        "the rollout (readiness then waits until the database is at head).",
    )
    shutdown_grace_seconds: float = Field(
        default=20.0,
        description="SIGTERM: time to stop consuming, finish in-flight work and drain the "
        "outbox before exiting; keep it below the pod's terminationGracePeriodSeconds.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP endpoint of an OpenTelemetry Collector (the standard variable); "
        "set: spans are exported there.",
    )
    audit_anchor_key: SecretStr | None = Field(
        default=None,
        description="Signs the audit trail's daily anchors (HMAC-SHA256), in the services "
        "keeping a trail (intake, assignment); required outside dev, generated in dev.",
    )
    audit_anchor_check_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How often the anchoring worker looks whether today's anchor is due.",
    )
    intake_url: str | None = Field(
        default=None,
        description="Intake's base URL, where a service that does not keep a file's citizen "
        "asks whether the caller is them (GET /api/files/{file_id}/citizen, with the caller's "
        "own credentials): the citizen's export parts at assignment and notification. Unset: "
        "those routes answer 503.",
    )
    key_service_url: str | None = Field(
        default=None,
        description="Intake's base URL, for its key service (GET /internal/personal-data-keys/"
        "{key_id}): the citizens' data keys that open sealed personal fields (services "
        "other than intake that read personal data). Unset: sealed fields cannot be opened.",
    )
    key_service_token_url: str | None = Field(
        default=None,
        description="Token endpoint of the agents' issuer, where this service gets its "
        "client-credentials token for the key service.",
    )
    key_service_client_id: str = Field(
        default="", description="This service's OAuth2 client at the agents' issuer."
    )
    key_service_client_secret: SecretStr = Field(
        default=SecretStr(""), description="Secret of KEY_SERVICE_CLIENT_ID."
    )
    personal_data_key_ttl_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a citizen's data key is kept in memory (never on disk); a "
        "shredding reaches this service within this time.",
    )
    clock_file: Path | None = Field(
        default=None,
        description="A file holding today's date (ISO) to move time for rehearsals and tests "
        "(see guichet_runtime.clock); unset: the real Paris date.",
    )
