"""The shell every service runs in: a FastAPI app whose lifespan starts the database,
migrations, Kafka broker, outbox relay and background workers, and stops them in
reverse order. `/health` answers for Kubernetes probes and the test supervisor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

from guichet_runtime import migrations
from guichet_runtime.consumer import EventConsumer
from guichet_runtime.db import UnitOfWork, make_engine, messaging_tables
from guichet_runtime.errors import install_french_validation
from guichet_runtime.kafka_security import client_options, kafka_security
from guichet_runtime.refusals import install_refusals
from guichet_runtime.relay import OutboxRelay
from guichet_runtime.settings import ServiceSettings
from guichet_runtime.telemetry import current_trace_id, setup_tracing
from shared_models import topics as topic_names

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap: str | Mapping[str, Any],
    declared: dict[str, int],
    replication: int = 1,
    timeout: float = 30,
) -> None:
    """Create the declared topics (name -> partitions) that are missing, then wait until
    every one has a leader, so a subscriber started next finds them ready. `bootstrap`: the
    servers, or an aiokafka client's keyword arguments (see kafka_security.client_options)."""
    options = {"bootstrap_servers": bootstrap} if isinstance(bootstrap, str) else bootstrap
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, p, replication) for n, p in declared.items() if n not in existing]
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
    startup: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    workers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    shutdown: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    commit_listeners: list[Callable[[], None]] = field(default_factory=list)

    def uow(self, inbox_key: tuple[str, str] | None = None) -> UnitOfWork:
        return UnitOfWork(
            self.engine, self.outbox, self.inbox, inbox_key=inbox_key, on_commit=self._committed
        )

    def _committed(self) -> None:
        self.relay.wake()
        for listener in self.commit_listeners:
            listener()


def build_runtime(
    settings: ServiceSettings, metadata: sa.MetaData, migrations_dir: Path
) -> Runtime:
    """Assemble the runtime; nothing connects until the app's lifespan starts."""
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    tracer_provider = setup_tracing(settings.service_name, settings.otel_spans_file)
    outbox = metadata.tables.get("outbox")
    inbox = metadata.tables.get("inbox")
    if outbox is None or inbox is None:
        outbox, inbox = messaging_tables(metadata)
    engine = make_engine(settings.database_url)
    broker = KafkaBroker(
        settings.kafka_bootstrap,
        middlewares=[KafkaTelemetryMiddleware(tracer_provider=tracer_provider)],
        client_id=settings.service_name,
        security=kafka_security(settings),
        # Where topics are owned elsewhere (Strimzi, a devstack Stack's admin), a principal may
        # not create any: no attempt per subscriber.
        allow_auto_create_topics=settings.create_topics,
        log_level=logging.DEBUG,
    )
    relay = OutboxRelay(
        engine,
        outbox,
        broker,
        batch_size=settings.relay_batch_size,
        idle_seconds=settings.relay_idle_seconds,
        namespace=settings.topic_namespace,
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
    )
    runtime.consumer = EventConsumer(
        broker, settings.service_name, runtime.uow, namespace=settings.topic_namespace
    )
    return runtime


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


def create_app(runtime: Runtime, *, title: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = runtime.settings
        await migrations.upgrade(runtime.migrations_dir, settings.database_url)
        if settings.create_topics:
            await ensure_topics(
                client_options(settings),
                {settings.topic_namespace + t: n for t, n in topic_names.all_topics().items()},
            )
        for hook in runtime.startup:  # before consuming: e.g. seed reference data
            await hook()
        await runtime.broker.start()
        runtime.relay.start()
        tasks = [asyncio.create_task(worker()) for worker in runtime.workers]
        app.state.ready = True
        log.info("%s started", settings.service_name)
        try:
            yield
        finally:
            app.state.ready = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runtime.relay.stop()
            await runtime.broker.stop()
            for hook in runtime.shutdown:
                await hook()
            await runtime.engine.dispose()
            runtime.tracer_provider.shutdown()

    runtime.consumer.attach()
    app = FastAPI(title=title, lifespan=lifespan)
    app.state.ready = False
    app.state.runtime = runtime

    @app.get("/health", tags=["ops"])
    async def health(response: Response) -> dict[str, str]:
        if not app.state.ready:
            response.status_code = 503
            return {"status": "starting"}
        return {"status": "ok", "service": runtime.settings.service_name}

    app.add_middleware(TraceIdHeader)
    install_french_validation(app)
    install_refusals(app)
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=runtime.tracer_provider, excluded_urls="health"
    )
    return app


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run the service until SIGINT/SIGTERM (uvicorn handles both gracefully)."""
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
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
    serve(bootstrap(settings), settings)
