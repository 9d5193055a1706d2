"""Prometheus metrics every service gets from the app factory, in its own registry (one
per app: tests build several apps in one process).

- HTTP latency per route template (`HttpMetrics`, plain ASGI);
- handler duration per event type and dead letters (called by `EventConsumer`);
- events published by the outbox relay, outbox backlog and consumer lag (sampled at
  scrape time by `RuntimeMetrics.refresh`, cheap: one COUNT and one offsets request);
- notifications by channel and outcome (`count_notification`, `metered_channels`);
- a service adds its own gauges with `gauge()` and a sampler with `samplers.append`.

Names start with `guichet_`; deploy/observability reads them (a test checks it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = logging.getLogger(__name__)

#: Seconds: handlers hold a transaction, HTTP routes answer people.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Sampler = Callable[[], Awaitable[None]]

#: Probes and scrapes: frequent, not what anybody waits for.
UNTIMED = ("/health", "/metrics")


class RuntimeMetrics:
    """The generic metrics of one service process."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_latency = Histogram(
            "guichet_http_request_duration_seconds",
            "HTTP requests by method, route template and status code.",
            ["service", "method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.handler_duration = Histogram(
            "guichet_handler_duration_seconds",
            "Time to handle one consumed event (retries included), by event type and outcome "
            "(ok, duplicate, dead_letter, redelivered).",
            ["service", "event_type", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            "guichet_dead_letters",
            "Records published to a dead-letter topic, by source topic.",
            ["service", "topic"],
            registry=r,
        )
        self.published = Counter(
            "guichet_events_published",
            "Events the outbox relay published, by event type.",
            ["service", "event_type"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "guichet_outbox_backlog",
            "Outbox rows committed but not yet published.",
            ["service"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "guichet_consumer_lag",
            "Records not yet consumed (high watermark minus position), per partition assigned "
            "to this process.",
            ["service", "group", "topic", "partition"],
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "guichet_consumer_assigned_partitions",
            "Partitions assigned to this process's consumer.",
            ["service", "group"],
            registry=r,
        )
        self.notifications = Counter(
            "guichet_notifications",
            "Notifications handed to a channel, by channel and outcome (sent, refused, failed).",
            ["service", "channel", "outcome"],
            registry=r,
        )
        self.samplers: list[Sampler] = []

    def gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        """A service's own gauge in this registry (labelled with the service too)."""
        return Gauge(name, documentation, ["service", *labels], registry=self.registry)

    # -- recorded by the runtime ------------------------------------------------------
    def observe_handler(self, event_type: str, outcome: str, seconds: float) -> None:
        self.handler_duration.labels(self.service, event_type, outcome).observe(seconds)

    def count_dead_letter(self, topic: str) -> None:
        self.dead_letters.labels(self.service, topic).inc()

    def count_published(self, event_type: str, n: int = 1) -> None:
        self.published.labels(self.service, event_type).inc(n)

    def count_notification(self, channel: str, outcome: str) -> None:
        """The hook of the notification service: one call per attempt on a channel."""
        self.notifications.labels(self.service, channel, outcome).inc()

    # -- scrape -----------------------------------------------------------------------
    async def refresh(self, timeout: float = 2.0) -> None:
        """Run the samplers (gauges computed at scrape time); one that fails or is slow
        keeps its last value, the scrape still answers."""
        for sampler in self.samplers:
            try:
                await asyncio.wait_for(sampler(), timeout)
            except Exception:
                log.warning("metrics sampler %s failed", sampler, exc_info=True)

    async def exposition(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)


def route_template(scope: Mapping[str, Any]) -> str:
    """The matched route's path template (`/api/files/{file_id}`), never the raw path:
    one series per route, whatever the identifiers."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


class HttpMetrics:
    """ASGI middleware timing every HTTP request by route template."""

    def __init__(self, app: Any, metrics: RuntimeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNTIMED):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_watch(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self.metrics.http_latency.labels(
                self.metrics.service, scope.get("method", ""), route_template(scope), str(status)
            ).observe(time.perf_counter() - started)


class Sender(Protocol):
    async def send(self, outgoing: Any) -> str: ...


class MeteredChannel:
    """A notification channel that counts its outcomes: `sent` when it returns, `refused`
    for the exceptions named permanent (the message will not be retried on it), `failed`
    for any other (retried later)."""

    def __init__(
        self,
        channel: Sender,
        name: str,
        metrics: RuntimeMetrics,
        permanent: tuple[type[BaseException], ...],
    ) -> None:
        self.channel = channel
        self.name = name
        self.metrics = metrics
        self.permanent = permanent

    async def send(self, outgoing: Any) -> str:
        try:
            reference = await self.channel.send(outgoing)
        except self.permanent:
            self.metrics.count_notification(self.name, "refused")
            raise
        except Exception:
            self.metrics.count_notification(self.name, "failed")
            raise
        self.metrics.count_notification(self.name, "sent")
        return reference

    def __getattr__(self, name: str) -> Any:  # close(), etc.: the wrapped channel's
        return getattr(self.channel, name)


def metered_channels(
    channels: Mapping[Any, Sender],
    metrics: RuntimeMetrics,
    permanent: tuple[type[BaseException], ...] = (),
) -> dict[Any, MeteredChannel]:
    """Wrap each channel (keyed by a str enum or a str) with `MeteredChannel`."""
    return {
        key: MeteredChannel(channel, str(key), metrics, permanent)
        for key, channel in channels.items()
    }
