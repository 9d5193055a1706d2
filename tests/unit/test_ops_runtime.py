"""The runtime's operations surface without a broker: readiness checks, the ops routes
(live, ready, metrics), the metrics recorded by the consumer, the relay and the
notification channels, and the JSON log lines carrying trace ids."""

from __future__ import annotations

import http.server
import importlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from faststream.kafka import KafkaBroker, TestKafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from guichet_runtime.consumer import EventConsumer
from guichet_runtime.db import make_engine
from guichet_runtime.logs import JsonFormatter
from guichet_runtime.metrics import HttpMetrics, MeteredChannel, RuntimeMetrics
from guichet_runtime.probes import Readiness, install_ops_routes, started_only
from guichet_runtime.relay import OutboxRelay
from guichet_runtime.telemetry import otlp_exporter
from shared_models import FileSubmitted, topics
from tests.unit.conftest import ServiceDb
from tests.unit.samples import file_submitted


def migrations_of(service: str) -> Path:
    module = importlib.import_module(service)
    assert module.__file__ is not None
    return Path(module.__file__).parent / "migrations"


def consumer(metrics: RuntimeMetrics | None = None, subscribed: bool = True) -> EventConsumer:
    c = EventConsumer(KafkaBroker(), "assignment", lambda key: None, metrics=metrics)  # type: ignore[arg-type,return-value]
    if subscribed:
        c.subscribe([topics.FILES_SUBMITTED], {FileSubmitted: _ignore})
    return c


async def _ignore(event: Any, uow: Any) -> None:
    return None


def samples(metrics: RuntimeMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: RuntimeMetrics, name: str, **labels: str) -> float:
    wanted = frozenset({"service": metrics.service, **labels}.items())
    return samples(metrics).get((name, wanted), 0.0)


# --------------------------------------------------------------------------- readiness


async def test_ready_when_database_answers_at_head_and_consumer_joined(assignment_db: ServiceDb):
    c = consumer()
    readiness = Readiness(assignment_db.engine, migrations_of("assignment"), c)
    readiness.started = True
    c.membership.joined = True  # what the rebalance listener sets on a first assignment
    ok, body = await readiness.check()
    assert ok, body
    assert body["status"] == "ready"
    assert body["checks"]["consumer"]["detail"] == "idle member (no partition)"
    assert set(body["checks"]) == {"started", "database", "migrations", "consumer"}


async def test_not_ready_names_each_failed_check(tmp_path: Path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/empty.db")  # never migrated
    try:
        readiness = Readiness(engine, migrations_of("assignment"), consumer())
        ok, body = await readiness.check()
        assert not ok and body["failed"] == ["started"]
        readiness.started = True
        ok, body = await readiness.check()
        assert not ok
        assert body["failed"] == ["migrations", "consumer"]
        assert body["checks"]["database"]["ok"] is True
        assert body["checks"]["migrations"]["detail"] == "not at head"
    finally:
        await engine.dispose()


async def test_unreachable_database_fails_readiness(tmp_path: Path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/no/such/folder/x.db")
    try:
        readiness = Readiness(engine, migrations_of("assignment"), consumer(subscribed=False))
        readiness.started = True
        ok, body = await readiness.check()
        assert not ok and "database" in body["failed"]
        assert body["checks"]["consumer"]["detail"] == "no subscription"
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- routes


async def test_ops_routes_live_ready_and_metrics_by_route_template():
    metrics = RuntimeMetrics("essai")
    app = FastAPI()
    app.state.ready = False
    install_ops_routes(app, service="essai", metrics=metrics, ready=started_only(app))

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    app.add_middleware(HttpMetrics, metrics=metrics)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/health/live")).json() == {"status": "alive", "service": "essai"}
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["failed"] == ["started"]
        app.state.ready = True
        assert (await client.get("/health/ready")).status_code == 200
        for n in range(3):
            await client.get(f"/items/{n}")
        text = (await client.get("/metrics")).text
    assert "guichet_http_request_duration_seconds_count{" in text
    count = value(
        metrics,
        "guichet_http_request_duration_seconds_count",
        method="GET",
        route="/items/{item_id}",
        status="200",
    )
    assert count == 3  # one series for the template, whatever the identifiers


# --------------------------------------------------------------------------- recorded


async def test_consumer_times_handlers_and_counts_dead_letters():
    metrics = RuntimeMetrics("assignment")
    broker = KafkaBroker()
    c = EventConsumer(broker, "assignment", lambda key: None, metrics=metrics)  # type: ignore[arg-type,return-value]
    c.subscribe([topics.FILES_SUBMITTED], {FileSubmitted: _ignore})
    c.attach()
    async with TestKafkaBroker(broker) as test_broker:
        event = file_submitted()
        headers = {"event_type": "FileSubmitted", "content-type": "application/json"}
        await test_broker.publish(
            event.model_dump_json().encode(), topics.FILES_SUBMITTED, key=b"k", headers=headers
        )
        await test_broker.publish(
            b"{}", topics.FILES_SUBMITTED, key=b"k", headers={"event_type": "Inconnu"}
        )
    handled = value(
        metrics, "guichet_handler_duration_seconds_count", event_type="FileSubmitted", outcome="ok"
    )
    assert handled == 1
    dead = value(metrics, "guichet_dead_letters_total", topic=topics.FILES_SUBMITTED)
    assert dead == 1


class FakeBroker:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def publish(self, body: bytes, topic: str, **kwargs: Any) -> Any:
        self.sent.append(topic)

        async def done() -> None:
            return None

        return done()


async def test_relay_counts_published_events_and_samples_the_backlog(intake_db: ServiceDb):
    metrics = RuntimeMetrics("intake")
    outbox = intake_db.tables.outbox
    async with intake_db.uow() as uow:
        uow.emit(topics.FILES_SUBMITTED, file_submitted())
        uow.emit(topics.FILES_SUBMITTED, file_submitted())
        await uow.commit()
    relay = OutboxRelay(intake_db.engine, outbox, FakeBroker(), metrics=metrics)
    await relay.sample_backlog()
    assert value(metrics, "guichet_outbox_backlog") == 2
    assert await relay.publish_pending() == 2
    await relay.sample_backlog()
    assert value(metrics, "guichet_outbox_backlog") == 0
    assert value(metrics, "guichet_events_published_total", event_type="FileSubmitted") == 2
    assert await intake_db.rows(outbox) == []


class Refused(Exception):
    pass


class FlakyChannel:
    def __init__(self, behaviours: list[Exception | None]) -> None:
        self.behaviours = behaviours

    async def send(self, outgoing: Any) -> str:
        outcome = self.behaviours.pop(0)
        if outcome is not None:
            raise outcome
        return "ref-1"


async def test_metered_channel_counts_sent_refused_and_failed():
    metrics = RuntimeMetrics("notification")
    channel = MeteredChannel(
        FlakyChannel([None, Refused("550"), OSError("down")]), "email", metrics, (Refused,)
    )
    assert await channel.send(object()) == "ref-1"
    with pytest.raises(Refused):
        await channel.send(object())
    with pytest.raises(OSError):
        await channel.send(object())
    for outcome in ("sent", "refused", "failed"):
        got = value(metrics, "guichet_notifications_total", channel="email", outcome=outcome)
        assert got == 1, outcome


# --------------------------------------------------------------------------- logs


def test_json_log_lines_carry_the_trace_and_span_ids(tracer: trace.Tracer):
    formatter = JsonFormatter("intake")
    record = logging.LogRecord(
        "intake.commands", logging.WARNING, __file__, 1, "dossier %s", ("GU-1",), None
    )
    outside = json.loads(formatter.format(record))
    assert outside["trace_id"] is None and outside["span_id"] is None
    with tracer.start_as_current_span("essai") as span:
        line = formatter.format(record)
        ctx = span.get_span_context()
    parsed = json.loads(line)
    assert "\n" not in line
    assert parsed["trace_id"] == format(ctx.trace_id, "032x")
    assert parsed["span_id"] == format(ctx.span_id, "016x")
    assert parsed["message"] == "dossier GU-1"
    assert parsed["level"] == "WARNING" and parsed["logger"] == "intake.commands"
    assert parsed["service"] == "intake" and parsed["timestamp"].endswith("Z")


async def test_relay_stop_lets_the_batch_finish_then_drains(intake_db: ServiceDb):
    relay = OutboxRelay(intake_db.engine, intake_db.tables.outbox, FakeBroker(), idle_seconds=5)
    relay.start()
    async with intake_db.uow() as uow:
        for _ in range(3):
            uow.emit(topics.FILES_SUBMITTED, file_submitted())
        await uow.commit()  # no wake(): the loop sleeps; the stop's drain publishes them
    await relay.stop()
    assert relay.published == 3
    assert await relay.backlog() == 0


def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_set():
    """OTEL_EXPORTER_OTLP_ENDPOINT: the spans reach the collector's /v1/traces."""
    received: list[tuple[str, str, int]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            self.rfile.read(length)
            received.append((self.path, self.headers["Content-Type"], length))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        provider = TracerProvider()  # not the global one: setup_tracing installs that
        provider.add_span_processor(SimpleSpanProcessor(otlp_exporter(endpoint)))
        with provider.get_tracer("essai").start_as_current_span("dépôt"):
            pass
        provider.shutdown()
    finally:
        server.shutdown()
    assert received and received[0][0] == "/v1/traces"
    assert received[0][1] == "application/x-protobuf" and received[0][2] > 0
