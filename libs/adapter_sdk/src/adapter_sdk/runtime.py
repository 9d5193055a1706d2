"""The runtime around an adapter, written once for every agency: subscription (the
guichet runtime's idempotent EventConsumer), retries with backoff, a circuit breaker,
the dead-letter topic for what can never succeed, callbacks (adapter_sdk.callbacks) and
reconciliation (adapter_sdk.reconcile), supporting documents, the exchange ledger,
legal-clock events, traces and metrics."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from opentelemetry import propagate
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from adapter_sdk.callbacks import CallbackDesk
from adapter_sdk.config import AdapterConfig
from adapter_sdk.declaration import catalogue_problems, declaration_problems
from adapter_sdk.interface import (
    Acknowledged,
    AgencyAdapter,
    AgencyAnswer,
    AgencyCall,
    AgencyReply,
    AnswerInvalid,
    CanonicalRequest,
    CitizenData,
    SupportingDocument,
    answer_problems,
)
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.reconcile import Reconciler
from adapter_sdk.tables import RequestStatus, exchanges, metadata, requests
from adapter_sdk.transport import AgencyFailed, AgencyRejected, AgencyUnavailable, Transport
from guichet_runtime.clock import Clock
from guichet_runtime.consumer import PermanentError, TransientError
from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from guichet_runtime.kafka_security import client_options
from guichet_runtime.service import build_runtime, create_app, ensure_topics
from shared_models import (
    AgencyAnswerReceived,
    AgencyDecision,
    AgencyReceiptAcknowledged,
    AgencyRequestIssued,
    Decision,
    ExchangeDirection,
    ExchangeRecorded,
    LegalClockResumed,
    LegalClockSuspended,
    SupportingDocumentSubmitted,
    catalogue,
    topics,
)

log = logging.getLogger(__name__)


def canonical_request(
    event: AgencyRequestIssued, declared: frozenset[str], callback_url: str | None
) -> CanonicalRequest:
    """The request as the adapter sees it: only the declared citizen fields survive."""
    values = {**event.citizen.model_dump(mode="json"), "description": event.description}
    return CanonicalRequest(
        request_id=event.request_id,
        file_id=event.file_id,
        life_event=event.life_event,
        urgent=event.urgent,
        citizen=CitizenData(values, declared),
        callback_url=callback_url,
    )


def checked(
    read: Callable[[AgencyReply], AgencyAnswer | Acknowledged], reply: AgencyReply
) -> AgencyAnswer | Acknowledged:
    """Run the adapter's reading of a reply; anything unreadable or incoherent is AnswerInvalid."""
    try:
        result = read(reply)
    except AnswerInvalid:
        raise
    except (
        Exception
    ) as exc:  # the adapter choked on the reply: garbage or a schema it does not know
        raise AnswerInvalid(f"réponse illisible ({type(exc).__name__}: {exc})") from exc
    if isinstance(result, AgencyAnswer):
        problems = answer_problems(result)
        if problems:
            raise AnswerInvalid("réponse incohérente : " + "; ".join(problems))
    elif not isinstance(result, Acknowledged):
        raise AnswerInvalid(
            f"l'adaptateur a rendu {type(result).__name__}, ni réponse ni accusé de réception"
        )
    return result


@dataclass
class Exchanged:
    result: AgencyAnswer | Acknowledged
    sent: bytes
    received: bytes
    attempts: int
    agency_seconds: float


class AdapterRuntime:
    def __init__(
        self,
        adapter: AgencyAdapter,
        config: AdapterConfig,
        uow: Callable[..., UnitOfWork],
        transport: Transport,
        metrics: AdapterMetrics,
    ) -> None:
        self.adapter = adapter
        self.decl = adapter.declaration
        self.config = config
        self.uow = uow
        self.transport = transport
        self.metrics = metrics
        # The legal clock counts from these events' day: a rehearsal date (CLOCK_FILE) moves it.
        self.clock = Clock(config.clock_file)
        self.desk = CallbackDesk(adapter, uow, self, metrics)
        self.reconciler = Reconciler(adapter, config, uow, transport, self, metrics, self.desk)

    # -- the exchange with the agency ---------------------------------------------------
    async def exchange(self, call: AgencyCall, what: str) -> Exchanged:
        cfg = self.config
        attempts, agency_seconds = 0, 0.0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(cfg.attempts),
                wait=wait_exponential(multiplier=cfg.backoff_seconds, max=cfg.backoff_max_seconds),
                retry=retry_if_exception_type((AgencyFailed, AnswerInvalid)),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    started = time.perf_counter()
                    try:
                        reply = await self.transport.send(call)
                    finally:
                        agency_seconds += time.perf_counter() - started
                    result = checked(self.adapter.read_answer, reply)
        except AgencyUnavailable as exc:
            # Nothing is lost: the delivery is handed back and comes again; the pause
            # keeps an open circuit from spinning through redeliveries.
            await asyncio.sleep(cfg.unavailable_pause_seconds)
            raise TransientError(str(exc)) from exc
        except (AgencyFailed, AnswerInvalid) as exc:
            raise PermanentError(
                f"{self.decl.label}, {what} : {exc} (après {attempts} tentative(s))"
            ) from exc
        except AgencyRejected as exc:
            raise PermanentError(f"{self.decl.label}, {what} : {exc}") from exc
        return Exchanged(result, call.body, reply.body, attempts, agency_seconds)

    # -- what a transaction records -------------------------------------------------------
    async def _ledger(
        self,
        uow: UnitOfWork,
        file_id: str,
        request_id: str,
        *entries: tuple[ExchangeDirection, str, bytes, int],
    ) -> None:
        """Record transmissions (direction, purpose, exact bytes, attempts) in one statement."""
        now = utcnow()
        rows = []
        for direction, purpose, payload, attempts in entries:
            exchange_id = str(uuid.uuid4())
            digest = hashlib.sha256(payload).hexdigest()
            rows.append(
                dict(
                    exchange_id=exchange_id,
                    request_id=request_id,
                    file_id=file_id,
                    direction=direction.value,
                    purpose=purpose,
                    legal_basis=self.decl.legal_basis,
                    payload_sha256=digest,
                    size_bytes=len(payload),
                    attempts=attempts,
                    at=now,
                )
            )
            uow.emit(
                topics.EXCHANGES_RECORDED,
                ExchangeRecorded(
                    file_id=file_id,
                    occurred_at=now,
                    exchange_id=exchange_id,
                    request_id=request_id,
                    agency=self.decl.agency,
                    direction=direction,
                    purpose=purpose,
                    legal_basis=self.decl.legal_basis,
                    payload_sha256=digest,
                    size_bytes=len(payload),
                ),
            )
        await uow.conn.execute(exchanges.insert(), rows)

    async def record_exchanges(
        self,
        uow: UnitOfWork,
        file_id: str,
        request_id: str,
        *entries: tuple[ExchangeDirection, str, bytes, int],
    ) -> None:
        """The ledger, for the callback desk and reconciliation (decisions.Recorder)."""
        await self._ledger(uow, file_id, request_id, *entries)

    async def publish_answer(
        self,
        uow: UnitOfWork,
        file_id: str,
        request_id: str,
        answer: AgencyAnswer,
        after_document: str | None,
    ) -> None:
        """The answer's events, for the callback desk and reconciliation (decisions.Recorder)."""
        await self._answer(uow, file_id, request_id, answer, after_document)

    async def _answer(
        self,
        uow: UnitOfWork,
        file_id: str,
        request_id: str,
        answer: AgencyAnswer,
        after_document: str | None,
    ) -> None:
        status = "piece_demandee" if answer.decision is Decision.DOCUMENT_REQUESTED else "decide"
        await uow.conn.execute(
            requests.update()
            .where(requests.c.request_id == request_id)
            .values(status=status, updated_at=utcnow())
        )
        decision = AgencyDecision(agency=self.decl.agency, **answer.model_dump())
        uow.emit(
            topics.agency_answers(self.decl.agency),
            AgencyAnswerReceived(
                file_id=file_id,
                request_id=request_id,
                answer=decision,
                after_document=after_document,
            ),
        )
        if answer.requested_document is not None:
            uow.emit(
                topics.LEGAL_CLOCK,
                LegalClockSuspended(
                    file_id=file_id,
                    request_id=request_id,
                    agency=self.decl.agency,
                    document=answer.requested_document,
                    occurred_at=self.clock.now(),
                ),
            )

    def _observe(self, kind: str, started: float, agency_seconds: float) -> None:
        overhead = time.perf_counter() - started - agency_seconds
        self.metrics.handled.labels(self.decl.agency, kind, "ok").inc()
        if kind == "demande":
            self.metrics.overhead.labels(self.decl.agency).observe(overhead)
            self.metrics.overhead_samples.append(overhead)
            self.metrics.agency_samples.append(agency_seconds)

    # -- handlers ---------------------------------------------------------------------------
    def _callback_url(self) -> str | None:
        if not self.decl.asynchronous:
            return None
        base = (
            self.config.callback_base_url
            or f"http://{self.config.http_host}:{self.config.http_port}"
        )
        return base.rstrip("/") + "/callbacks"

    async def on_request(self, event: AgencyRequestIssued, uow: UnitOfWork) -> None:
        started = time.perf_counter()
        if event.agency != self.decl.agency:
            raise PermanentError(
                f"demande pour {event.agency} reçue par l'adaptateur {self.decl.agency}"
            )
        if event.life_event not in self.decl.life_events:
            raise PermanentError(
                f"{self.decl.label} ne traite pas l'événement de vie « {event.life_event} » (voir sa déclaration)"
            )
        request = canonical_request(event, self.decl.citizen_fields, self._callback_url())
        try:
            call = self.adapter.build_call(request)
        except Exception as exc:  # a defect of the adapter: retrying would not help
            raise PermanentError(
                f"l'adaptateur {self.decl.agency} n'a pas pu traduire la demande : {exc}"
            ) from exc
        done = await self.exchange(call, "demande")
        reference = done.result.agency_reference
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        async with uow:
            inserted = await uow.conn.execute(
                insert_ignore(uow.conn, requests).values(
                    request_id=event.request_id,
                    file_id=event.file_id,
                    status=RequestStatus.AWAITING,
                    agency_reference=reference,
                    trace_headers=json.dumps(carrier),
                    updated_at=utcnow(),
                    next_poll_at=(
                        self.reconciler.first_poll_at()
                        if isinstance(done.result, Acknowledged)
                        else None
                    ),
                )
            )
            if inserted.rowcount == 0:  # the same request issued again: transmitted already
                await uow.commit()
                return
            purpose = f"{self.decl.purpose} ({event.life_event})"
            received = "Réponse" if isinstance(done.result, AgencyAnswer) else "Accusé de réception"
            await self._ledger(
                uow,
                event.file_id,
                event.request_id,
                (ExchangeDirection.SENT, f"Demande : {purpose}", done.sent, done.attempts),
                (ExchangeDirection.RECEIVED, f"{received} : {purpose}", done.received, 1),
            )
            uow.emit(
                topics.LEGAL_CLOCK,
                AgencyReceiptAcknowledged(
                    file_id=event.file_id,
                    request_id=event.request_id,
                    agency=self.decl.agency,
                    agency_reference=reference,
                    deadline_rule=self.decl.deadline_rule,
                    deadline_months=self.decl.deadline_months,
                    deadline_days=self.decl.deadline_days,
                    occurred_at=self.clock.now(),
                ),
            )
            if isinstance(done.result, AgencyAnswer):
                await self._answer(
                    uow, event.file_id, event.request_id, done.result, after_document=None
                )
            # Callbacks that outran the acknowledgement:
            await self.desk.apply_held(uow, event.request_id)
            await uow.commit()
        self._observe("demande", started, done.agency_seconds)

    async def _request_row(self, request_id: str) -> sa.Row | None:
        async with self.uow() as uow:
            return (
                await uow.conn.execute(
                    sa.select(requests).where(requests.c.request_id == request_id)
                )
            ).first()

    async def on_document(self, event: SupportingDocumentSubmitted, uow: UnitOfWork) -> None:
        started = time.perf_counter()
        if not self.decl.accepts_documents:
            raise PermanentError(f"{self.decl.label} ne reçoit pas de pièces justificatives")
        row = await self._request_row(event.request_id)
        if row is None:
            raise PermanentError(f"aucune demande {event.request_id} transmise à {self.decl.label}")
        content = base64.b64decode(event.content_base64)
        if hashlib.sha256(content).hexdigest() != event.sha256:
            raise PermanentError(
                f"pièce {event.document_id} altérée : l'empreinte SHA-256 ne correspond pas"
            )
        document = SupportingDocument(
            request_id=event.request_id,
            agency_reference=row.agency_reference,
            code=event.document_code,
            filename=event.filename,
            media_type=event.media_type,
            content=content,
        )
        try:
            call = self.adapter.build_document_call(document)
        except Exception as exc:
            raise PermanentError(
                f"l'adaptateur {self.decl.agency} n'a pas pu traduire la pièce : {exc}"
            ) from exc
        done = await self.exchange(call, "pièce justificative")
        async with uow:
            purpose = f"Pièce justificative : {event.document_code}"
            await self._ledger(
                uow,
                event.file_id,
                event.request_id,
                (ExchangeDirection.SENT, purpose, done.sent, done.attempts),
                (
                    ExchangeDirection.RECEIVED,
                    f"Réponse après la pièce : {event.document_code}",
                    done.received,
                    1,
                ),
            )
            uow.emit(
                topics.LEGAL_CLOCK,
                LegalClockResumed(
                    file_id=event.file_id,
                    request_id=event.request_id,
                    agency=self.decl.agency,
                    document_code=event.document_code,
                    occurred_at=self.clock.now(),
                ),
            )
            # Answers after this document say so: the same document asked again is a new request.
            await uow.conn.execute(
                requests.update()
                .where(requests.c.request_id == event.request_id)
                .values(
                    status=RequestStatus.AWAITING,
                    last_document_id=event.document_id,
                    updated_at=utcnow(),
                    answer=None,
                    polls=0,
                    next_poll_at=self.reconciler.first_poll_at(),
                )
            )
            if isinstance(done.result, AgencyAnswer):
                await self._answer(
                    uow,
                    event.file_id,
                    event.request_id,
                    done.result,
                    after_document=event.document_id,
                )
            await uow.commit()
        self._observe("piece", started, done.agency_seconds)

    async def on_callback(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """An agency calls back with its answer: see adapter_sdk.callbacks for the rules."""
        return await self.desk.take(body, headers)


def configure(
    adapter_cls: type[AgencyAdapter], config: AdapterConfig | None = None
) -> AdapterConfig:
    """The adapter's settings from the environment, with per-agency defaults."""
    decl = adapter_cls.declaration
    config = config or adapter_cls.Config()
    defaults: dict[str, Any] = {}
    if not config.service_name or config.service_name == "service":
        defaults["service_name"] = topics.adapter_service(decl.agency)
    if not config.database_url:
        defaults["database_url"] = f"sqlite+aiosqlite:///var/data/adapter_{decl.agency}.db"
    return config.model_copy(update=defaults) if defaults else config


def build_app(adapter_cls: type[AgencyAdapter], config: AdapterConfig | None = None) -> FastAPI:
    """Composition root of one agency's adapter process."""
    decl = adapter_cls.declaration
    problems = declaration_problems(decl)
    if problems:
        raise SystemExit(f"déclaration de {decl.agency} invalide :\n- " + "\n- ".join(problems))
    for problem in catalogue_problems(decl, catalogue()):
        # The contract test kit fails on it; a running adapter only says so.
        log.warning("adapter %s and the catalogue disagree: %s", decl.agency, problem)
    config = configure(adapter_cls, config)
    runtime = build_runtime(config, metadata, Path(__file__).parent / "migrations")
    metrics = AdapterMetrics()
    transport = Transport(config, decl.agency, metrics)
    adapter = adapter_cls(config)
    core = AdapterRuntime(adapter, config, runtime.uow, transport, metrics)
    runtime.shutdown.append(transport.close)
    if config.create_topics:

        async def own_topics() -> (
            None
        ):  # an agency the core does not list yet still gets its topics
            names = topics.agency_topics(decl.agency)
            declared = {config.topic_namespace + t: topics.PARTITIONS for t in names}
            declared |= {config.topic_namespace + topics.dead_letter(t): 1 for t in names}
            await ensure_topics(client_options(config), declared)

        runtime.startup.append(own_topics)
    runtime.consumer.subscribe(
        [topics.agency_requests(decl.agency)], {AgencyRequestIssued: core.on_request}
    )
    runtime.consumer.subscribe(
        [topics.agency_documents(decl.agency)], {SupportingDocumentSubmitted: core.on_document}
    )
    runtime.workers.append(core.reconciler.run)
    app = create_app(runtime, title=f"Guichet unique — adaptateur {decl.label}")
    app.state.adapter = core

    @app.post("/callbacks", tags=["organisme"])
    async def callback(request: Request) -> Any:
        """Where an asynchronous agency delivers its answer."""
        if not decl.asynchronous:
            return JSONResponse(
                status_code=404, content={"message": f"{decl.label} ne rappelle pas."}
            )
        status, content = await core.on_callback(await request.body(), dict(request.headers))
        return JSONResponse(status_code=status, content=content)

    @app.get("/declaration", tags=["organisme"])
    async def declaration() -> dict[str, Any]:
        return decl.model_dump(mode="json")

    @app.get("/metrics", tags=["ops"])
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics/overhead", tags=["ops"])
    async def overhead() -> dict[str, Any]:
        """Recent per-request samples, in seconds: time in the adapter runtime (agency
        latency excluded) and time waiting for the agency; for `make bench`."""
        return {
            "runtime_s": list(metrics.overhead_samples),
            "agency_s": list(metrics.agency_samples),
        }

    return app


def serve(adapter_cls: type[AgencyAdapter], argv: list[str] | None = None) -> None:
    """Console entry point of one adapter: settings from the environment, --host/--port override."""
    import argparse

    from guichet_runtime.service import serve as run

    parser = argparse.ArgumentParser(description=f"adaptateur {adapter_cls.declaration.label}")
    parser.add_argument("--host", help="interface to listen on (HTTP_HOST)")
    parser.add_argument("--port", type=int, help="HTTP port (HTTP_PORT)")
    args = parser.parse_args(argv)
    overrides = {
        k: v for k, v in (("http_host", args.host), ("http_port", args.port)) if v is not None
    }
    config = configure(adapter_cls, adapter_cls.Config(**overrides))
    run(build_app(adapter_cls, config), config)
