"""The one place an adapter talks to its agency: HTTP through a circuit breaker, each
failure sorted into what to wait for, what to retry a few times, what never to retry.

The client is aiohttp's: a call costs about a third of the CPU it did through httpx (whose
HTTP/1.1 is parsed by h11, in Python; aiohttp's by llhttp, in C), and an adapter makes
several calls per file (docs/performance.md)."""

from __future__ import annotations

import time

import aiohttp
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
        self.base_url = config.agency_base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=config.agency_timeout_seconds,  # includes waiting for a pooled connection
            sock_read=config.agency_timeout_seconds,
        )
        self._session: aiohttp.ClientSession | None = None  # made on the loop, at first call
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

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=100,
                    # Idle connections closed after 5 s, well before the agencies' servers
                    # close theirs (guichet_runtime.service.KEEP_ALIVE_SECONDS): a call never
                    # starts on a connection the server is closing.
                    keepalive_timeout=5.0,
                    ssl=client_tls(),
                ),
                timeout=self.timeout,
            )
        return self._session

    async def _send(self, call: AgencyCall) -> AgencyReply:
        try:
            async with self._client().request(
                call.method,
                f"{self.base_url}{call.path}",
                data=call.body or None,
                headers=dict(call.headers),
            ) as response:
                status = response.status
                content = await response.read()
                headers = {name.lower(): value for name, value in response.headers.items()}
        # Refused, unknown host, TLS refused, or no connection made in time.
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            self.metrics.calls.labels(self.agency, "injoignable").inc()
            raise AgencyUnavailable(f"{self.agency} injoignable : {exc!r}") from exc
        except TimeoutError as exc:  # the agency took the call and did not answer
            self.metrics.calls.labels(self.agency, "delai_depasse").inc()
            raise AgencyFailed(
                f"{self.agency} n'a pas répondu à temps ({type(exc).__name__})"
            ) from exc
        except aiohttp.ClientError as exc:  # connection dropped mid-call, truncated answer
            self.metrics.calls.labels(self.agency, "injoignable").inc()
            raise AgencyUnavailable(f"{self.agency} : connexion interrompue : {exc!r}") from exc
        if status == 503:
            self.metrics.calls.labels(self.agency, "indisponible").inc()
            raise AgencyUnavailable(f"{self.agency} indisponible (HTTP 503)")
        text = content[:400].decode("utf-8", "replace")[:200]
        if status >= 500 or status == 429:
            self.metrics.calls.labels(self.agency, "erreur_serveur").inc()
            raise AgencyFailed(f"{self.agency} en erreur (HTTP {status}) : {text}")
        if status >= 400:
            self.metrics.calls.labels(self.agency, "refus_appel").inc()
            raise AgencyRejected(f"{self.agency} a refusé l'appel (HTTP {status}) : {text}")
        self.metrics.calls.labels(self.agency, "ok").inc()
        return AgencyReply(status, content, headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
