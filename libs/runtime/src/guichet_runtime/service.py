"""The shell every service runs in: a FastAPI app whose lifespan starts the database,
migrations, Kafka broker, outbox relay and background workers, and stops them gracefully
(see `create_app`). Probes: `/health/live`, `/health/ready` (guichet_runtime.probes) and
`/health` (started, what the test supervisor waits on); Prometheus text at `/metrics`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import sys
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from fastapi import FastAPI, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine

from guichet_runtime.audit import AuditTrail, trail_of
from guichet_runtime.batch import BatchTransaction
from guichet_runtime.body_limit import BodySizeLimit
from guichet_runtime.consumer import EventConsumer
from guichet_runtime.db import UnitOfWork, make_engine, messaging_tables
from guichet_runtime.errors import install_french_validation
from guichet_runtime.kafka_security import client_options, kafka_security
from guichet_runtime.key_service import ClientCredentials, KeyServiceClient
from guichet_runtime.logs import setup_logging
from guichet_runtime.metrics import HttpMetrics, RuntimeMetrics
from guichet_runtime.personal_data import KeyCache, PersonalData
from guichet_runtime.policy import Policy, declared
from guichet_runtime.probes import Readiness, install_ops_routes
from guichet_runtime.refusals import install_refusals
from guichet_runtime.relay import OutboxRelay
from guichet_runtime.secrets import MissingSecret
from guichet_runtime.settings import ServiceSettings
from guichet_runtime.telemetry import current_trace_id, setup_tracing
from guichet_runtime.tls_context import client_tls
from shared_models import topics as topic_names

log = logging.getLogger(__name__)

T = TypeVar("T")


async def ensure_topics(
    bootstrap: str | Mapping[str, Any],
    declared: dict[str, int],
    replication: int = 1,
    timeout: float = 30,
) -> None:
    """Create the declared topics (name -> partitions) that are missing, each with its
    retention (shared_models.topics.retention), then wait until
    every one has a leader, so a subscriber started next finds them ready. `bootstrap`: the
    servers, or an aiokafka client's keyword arguments (see kafka_security.client_options)."""
    options = {"bootstrap_servers": bootstrap} if isinstance(bootstrap, str) else bootstrap
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(n, p, replication, topic_configs=topic_names.retention(n).configs())
            for n, p in declared.items()
            if n not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for error in response.topic_errors:  # (topic, error_code[, message])
                # Already there: another service created it meanwhile.
                if error[1] not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(error[1])(f"cannot create topic {error[0]}: {error[2:]}")
        deadline = time.monotonic() + timeout
        while True:
            metadata = await admin.describe_topics(list(declared))
            ready = {
                t["topic"]
                for t in metadata
                if t["error_code"] == 0
                and t["partitions"]
                and all(p["leader"] >= 0 for p in t["partitions"])
            }
            if ready >= declared.keys():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not ready: {sorted(declared.keys() - ready)}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


@dataclass
class Runtime:
    """What a service's composition root assembles; handed to its routes and workers."""

    settings: ServiceSettings
    metadata: sa.MetaData
    migrations_dir: Path
    engine: AsyncEngine
    outbox: sa.Table
    inbox: sa.Table
    broker: KafkaBroker
    tracer_provider: TracerProvider
    relay: OutboxRelay
    consumer: EventConsumer
    metrics: RuntimeMetrics
    startup: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    workers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    shutdown: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    commit_listeners: list[Callable[[], None]] = field(default_factory=list)
    #: The service's audit trail (guichet_runtime.audit), when its metadata has the tables.
    audit: AuditTrail | None = None
    #: Seals and opens personal fields (guichet_runtime.personal_data), when the service's
    #: metadata has `personal_data_key_refs`.
    personal_data: PersonalData | None = None
    #: Set when the service starts stopping: workers end their round and return.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def pause(self, seconds: float) -> bool:
        """A worker's sleep between rounds, cut short by the stop; True once stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        return self.stopping.is_set()

    def uow(self, inbox_key: tuple[str, str] | None = None) -> UnitOfWork:
        return UnitOfWork(
            self.engine,
            self.outbox,
            self.inbox,
            inbox_key=inbox_key,
            on_commit=self._committed,
            on_outbox=self.relay.wake,
            audit=self.audit,
            personal_data=self.personal_data,
        )

    def use_personal_data(self, personal_data: PersonalData) -> None:
        """Seal (outbox) and open (consumer) personal fields with `personal_data`."""
        self.personal_data = personal_data
        self.consumer.personal_data = personal_data

    def batch(self, consumer: str) -> BatchTransaction:
        """One transaction for a batch of records consumed by `consumer` (its group)."""
        return BatchTransaction(
            self.engine,
            self.outbox,
            self.inbox,
            consumer=consumer,
            on_commit=self._committed,
            on_outbox=self.relay.wake,
            audit=self.audit,
            personal_data=self.personal_data,
        )

    def _committed(self) -> None:
        # The relay is woken by the commits that wrote outbox rows only (`on_outbox`): a
        # round that finds nothing costs two transactions.
        for listener in self.commit_listeners:
            listener()


def build_runtime(
    settings: ServiceSettings, metadata: sa.MetaData, migrations_dir: Path
) -> Runtime:
    """Assemble the runtime; nothing connects until the app's lifespan starts."""
    setup_logging(settings.service_name, settings.log_level, settings.log_format)
    tracer_provider = setup_tracing(
        settings.service_name, settings.otel_spans_file, settings.otel_exporter_otlp_endpoint
    )
    metrics = RuntimeMetrics(settings.service_name)
    outbox = metadata.tables.get("outbox")
    inbox = metadata.tables.get("inbox")
    if outbox is None or inbox is None:
        outbox, inbox = messaging_tables(metadata)
    engine = make_engine(settings.database_url, settings.database_pool_size)
    broker = KafkaBroker(
        settings.kafka_bootstrap,
        middlewares=[KafkaTelemetryMiddleware(tracer_provider=tracer_provider)],
        client_id=settings.service_name,
        security=kafka_security(settings),
        # Where topics are owned elsewhere (Strimzi, a devstack Stack's admin), a principal may
        # not create any: no attempt per subscriber.
        allow_auto_create_topics=settings.create_topics,
        log_level=logging.DEBUG,
        # On stop, a subscriber waits this long for the record in flight (half the grace).
        graceful_timeout=settings.shutdown_grace_seconds / 2,
        # No FastDepends injection: the consumers take the decoded body and read the record
        # from the context (guichet_runtime.consumer); nothing to validate or inject.
        apply_types=False,
    )
    relay = OutboxRelay(
        engine,
        outbox,
        broker,
        batch_size=settings.relay_batch_size,
        idle_seconds=settings.relay_idle_seconds,
        namespace=settings.topic_namespace,
        metrics=metrics,
        producer_options=client_options(settings)
        | {"client_id": f"{settings.service_name}-relay", "linger_ms": settings.relay_linger_ms},
        listen_poll_seconds=settings.relay_listen_poll_seconds,
    )
    runtime = Runtime(
        settings=settings,
        metadata=metadata,
        migrations_dir=migrations_dir,
        engine=engine,
        outbox=outbox,
        inbox=inbox,
        broker=broker,
        tracer_provider=tracer_provider,
        relay=relay,
        consumer=None,  # type: ignore[arg-type]
        metrics=metrics,
    )
    runtime.audit = trail_of(metadata)
    runtime.consumer = EventConsumer(
        broker,
        settings.service_name,
        runtime.uow,
        namespace=settings.topic_namespace,
        metrics=metrics,
        batch_factory=runtime.batch,
        batch_max=settings.consumer_batch_max,
        batch_wait_ms=settings.consumer_batch_wait_ms,
        group_instance_id=settings.kafka_group_instance_id,
        commit_interval_ms=settings.consumer_commit_interval_ms,
    )
    metrics.samplers += [relay.sample_backlog, runtime.consumer.sample_lag]
    refs = metadata.tables.get("personal_data_key_refs")
    if refs is not None and settings.key_service_url:
        runtime.use_personal_data(PersonalData(key_service_keys(runtime), refs))
    return runtime


def key_service_keys(runtime: Runtime) -> KeyCache:
    """The citizens' data keys from intake's key service, in memory for a short while."""
    settings = runtime.settings
    client = httpx.AsyncClient(timeout=10.0, verify=client_tls())
    credentials = ClientCredentials(
        client,
        settings.key_service_token_url or "",
        settings.key_service_client_id,
        settings.key_service_client_secret.get_secret_value(),
    )
    service = KeyServiceClient(client, settings.key_service_url or "", credentials)
    runtime.shutdown.append(client.aclose)
    return KeyCache(service.fetch, settings.personal_data_key_ttl_seconds)


class TraceIdHeader:
    """Puts the request's trace id in an `X-Trace-Id` response header, so a caller (or a
    support agent) can find the whole journey of a file in the traces. Plain ASGI:
    Starlette's BaseHTTPMiddleware costs a task per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_trace_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                trace_id = current_trace_id()
                if trace_id:
                    message.setdefault("headers", []).append((b"x-trace-id", trace_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_trace_id)


async def stop_gracefully(runtime: Runtime, tasks: list[asyncio.Task[None]]) -> None:
    """SIGTERM (uvicorn ends the lifespan): stop consuming (the record in flight finishes
    and its offset is committed), let the workers end their round, publish what the
    outbox holds, then close the broker and the database; all within the grace period.
    What does not fit stays durable: an uncommitted record is redelivered, an outbox row
    is published by the next process (consumers deduplicate by event id)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    deadline = began + runtime.settings.shutdown_grace_seconds

    def left(share: float = 1.0) -> float:
        return max((deadline - loop.time()) * share, 0.5)

    runtime.stopping.set()
    await _bounded("stop consuming", runtime.consumer.stop_consuming(), left(0.6))
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=left(0.5))
        if pending:  # a worker that does not watch `stopping`, or is stuck
            log.warning("workers still running at stop, cancelled:\n%s", _stacks(pending))
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await _bounded("drain the outbox", runtime.relay.stop(), left(0.8))
    await _bounded("close the broker", runtime.broker.stop(), left())
    for hook in runtime.shutdown:
        await _bounded("close a client", hook(), left())
    left_in_outbox = await _bounded("count the outbox", runtime.relay.backlog(), left())
    await _bounded("close the database", runtime.engine.dispose(), left())
    runtime.tracer_provider.shutdown()
    log.info(
        "%s stopped gracefully in %.1fs (outbox left: %s)",
        runtime.settings.service_name,
        loop.time() - began,
        "?" if left_in_outbox is None else left_in_outbox,
    )


async def _bounded(what: str, step: Awaitable[T], seconds: float) -> T | None:
    """One shutdown step within `seconds`; on timeout or failure, say what was running
    and go on (what is left is durable)."""
    try:
        return await asyncio.wait_for(step, seconds)
    except TimeoutError:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        log.warning("stop: %s took over %.1fs; tasks:\n%s", what, seconds, _stacks(others))
    except Exception:
        log.warning("stop: %s failed", what, exc_info=True)
    return None


def _stacks(tasks: Iterable[asyncio.Task[Any]]) -> str:
    out = io.StringIO()
    for task in tasks:
        task.print_stack(limit=8, file=out)
    return out.getvalue()[-8000:]


async def migrate_at_start(settings: ServiceSettings, migrations_dir: Path) -> None:
    """When MIGRATE_AT_START: the database brought to head as its owner (MIGRATION_DATABASE_URL,
    else DATABASE_URL), DATABASE_URL's role granted the tables. Alembic is imported only then:
    a service that does not migrate (Kubernetes: a Job does) never loads it
    (guichet_runtime.revisions)."""
    if not settings.migrate_at_start:
        return
    from guichet_runtime import migrations  # noqa: PLC0415

    await migrations.upgrade(
        migrations_dir,
        settings.migration_database_url or settings.database_url,
        migrations.runtime_role(settings.database_url, settings.migration_database_url),
    )


def create_app(
    runtime: Runtime, *, title: str, body_limits: Sequence[tuple[str, int]] = ()
) -> FastAPI:
    """The service's app. Request bodies are limited to MAX_BODY_BYTES, except on the paths
    of `body_limits` (regular expression, limit in bytes), e.g. an upload route."""
    readiness = Readiness(runtime.engine, runtime.migrations_dir, runtime.consumer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = runtime.settings
        await migrate_at_start(settings, runtime.migrations_dir)
        if settings.create_topics:
            await ensure_topics(
                client_options(settings),
                {settings.topic_namespace + t: n for t, n in topic_names.all_topics().items()},
            )
        runtime.stopping = asyncio.Event()  # this loop's
        for hook in runtime.startup:  # before consuming: e.g. seed reference data
            await hook()
        await runtime.broker.start()
        runtime.relay.start()
        tasks = [asyncio.create_task(worker()) for worker in runtime.workers]
        app.state.ready = readiness.started = True
        log.info("%s started", settings.service_name)
        try:
            yield
        finally:
            app.state.ready = readiness.started = False
            await stop_gracefully(runtime, tasks)

    runtime.consumer.attach()
    app = FastAPI(title=title, lifespan=lifespan)
    app.state.ready = False
    app.state.runtime = runtime

    @app.get("/health", tags=["ops"], dependencies=[declared(Policy.OPS)])
    async def health(response: Response) -> dict[str, str]:
        """Started and not stopping (what the test supervisor and devstack wait on)."""
        if not app.state.ready:
            response.status_code = 503
            return {"status": "starting"}
        return {"status": "ok", "service": runtime.settings.service_name}

    install_ops_routes(
        app, service=runtime.settings.service_name, metrics=runtime.metrics, ready=readiness.check
    )
    app.add_middleware(TraceIdHeader)
    app.add_middleware(HttpMetrics, metrics=runtime.metrics)
    app.add_middleware(
        BodySizeLimit, max_bytes=runtime.settings.max_body_bytes, overrides=body_limits
    )
    install_french_validation(app)
    install_refusals(app)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=runtime.tracer_provider,
        excluded_urls="health,metrics",
        # No internal span per ASGI message (`http send`, `http receive`): they say nothing
        # the request's span does not, and cost about 100 µs of CPU a request.
        exclude_spans=["receive", "send"],
    )
    return app


#: How long a service keeps an idle HTTP connection open (uvicorn's default: 5 s). Longer than
#: any of our clients keeps one for reuse (the web's backends 30 s, httpx's default 5 s): a
#: server closing an idle connection just as a client sends on it makes the client fail with
#: "Server disconnected without sending a response" (the web once showed Lucas an error page
#: where intake's refusal was due). The client must be the one to close first.
KEEP_ALIVE_SECONDS = 65


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run the service until SIGINT/SIGTERM. uvicorn stops accepting connections, waits a
    few seconds for the open requests, then ends the lifespan (`stop_gracefully`)."""
    json_logs = settings.log_format.lower() == "json"
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        # libuv's event loop (uvloop): about 6 % less CPU per file over the services in
        # 1,500-file bursts; HTTP parsed by httptools (llhttp, C) rather than h11 (pure
        # Python): docs/performance.md.
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=max(min(5, int(settings.shutdown_grace_seconds / 4)), 1),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        # JSON: uvicorn's loggers propagate to the root's JSON handler.
        log_config=None if json_logs else uvicorn.config.LOGGING_CONFIG,
    )


def main(settings_cls: type[ServiceSettings], bootstrap: Callable[..., FastAPI]) -> None:
    """Console entry point of a service: settings from the environment, `--host`/`--port`
    override them (as the container commands do)."""
    parser = argparse.ArgumentParser(description=bootstrap.__module__.split(".")[0])
    parser.add_argument("--host", help="interface to listen on (HTTP_HOST)")
    parser.add_argument("--port", type=int, help="HTTP port (HTTP_PORT)")
    args = parser.parse_args()
    overrides = {
        k: v for k, v in (("http_host", args.host), ("http_port", args.port)) if v is not None
    }
    settings = settings_cls(**overrides)
    try:
        app = bootstrap(settings)
    except MissingSecret as missing:
        sys.exit(f"{settings.service_name} refuses to start: {missing}")
    serve(app, settings)
