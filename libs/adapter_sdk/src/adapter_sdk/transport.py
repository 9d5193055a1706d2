"""The one place an adapter talks to its agency: HTTP through a circuit breaker, each
failure sorted into what to wait for, what to retry a few times, what never to retry."""

from __future__ import annotations

import time

import httpx
from opentelemetry import trace
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from adapter_sdk.config import AdapterConfig
from adapter_sdk.interface import AgencyCall, AgencyReply
from adapter_sdk.metrics import AdapterMetrics
from guichet_runtime.tls_context import client_tls


class AgencyUnavailable(Exception):
    """The agency cannot be reached (refused connection, 503, open circuit): wait, never
    dead-letter."""


class AgencyFailed(Exception):
    """The agency failed on this call (5xx, timeout): retry a few times, then dead-letter."""


class AgencyRejected(Exception):
    """The agency refused the call itself (4xx): retrying would not help."""


class Transport:
    def __init__(self, config: AdapterConfig, agency: str, metrics: AdapterMetrics) -> None:
        self.agency = agency
        self.metrics = metrics
        self.client = httpx.AsyncClient(
            base_url=config.agency_base_url,
            timeout=config.agency_timeout_seconds,
            limits=httpx.Limits(max_keepalive_connections=20),
            verify=client_tls(),
        )
        # A refused call (4xx) says nothing about the agency's health.
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=config.breaker_threshold,
            default_ttl=config.breaker_seconds,
            exclude=[AgencyRejected],
        )
        self.agency_seconds = 0.0  # time spent waiting for the agency, for the overhead figure

    async def send(self, call: AgencyCall) -> AgencyReply:
        tracer = trace.get_tracer("adapter_sdk")
        started = time.perf_counter()
        with tracer.start_as_current_span(
            f"{self.agency} {call.method} {call.path}", kind=trace.SpanKind.CLIENT
        ) as span:
            span.set_attribute("guichet.agency", self.agency)
            try:
                async with await self.breakers.get_breaker(self.agency):
                    reply = await self._send(call)
            except OpenedState as exc:
                self.metrics.calls.labels(self.agency, "circuit_ouvert").inc()
                raise AgencyUnavailable(
                    f"{self.agency} : circuit ouvert après des échecs répétés"
                ) from exc
            finally:
                elapsed = time.perf_counter() - started
                self.agency_seconds += elapsed
                self.metrics.agency_latency.labels(self.agency).observe(elapsed)
            span.set_attribute("http.status_code", reply.status)
            return reply

    async def _send(self, call: AgencyCall) -> AgencyReply:
        try:
            response = await self.client.request(
                call.method, call.path, content=call.body, headers=dict(call.headers)
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            self.metrics.calls.labels(self.agency, "injoignable").inc()
            raise AgencyUnavailable(f"{self.agency} injoignable : {exc!r}") from exc
        except httpx.TimeoutException as exc:
            self.metrics.calls.labels(self.agency, "delai_depasse").inc()
            raise AgencyFailed(
                f"{self.agency} n'a pas répondu à temps ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            self.metrics.calls.labels(self.agency, "injoignable").inc()
            raise AgencyUnavailable(f"{self.agency} : connexion interrompue : {exc!r}") from exc
        status = response.status_code
        if status == 503:
            self.metrics.calls.labels(self.agency, "indisponible").inc()
            raise AgencyUnavailable(f"{self.agency} indisponible (HTTP 503)")
        if status >= 500 or status == 429:
            self.metrics.calls.labels(self.agency, "erreur_serveur").inc()
            raise AgencyFailed(f"{self.agency} en erreur (HTTP {status}) : {response.text[:200]}")
        if status >= 400:
            self.metrics.calls.labels(self.agency, "refus_appel").inc()
            raise AgencyRejected(
                f"{self.agency} a refusé l'appel (HTTP {status}) : {response.text[:200]}"
            )
        self.metrics.calls.labels(self.agency, "ok").inc()
        return AgencyReply(status, response.content, dict(response.headers))

    async def close(self) -> None:
        await self.client.aclose()
