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
from typing import Any

import sqlalchemy as sa
from opentelemetry import propagate

from adapter_sdk.callback_gate import CallbackGate
from adapter_sdk.callbacks import CallbackDesk
from adapter_sdk.config import AdapterConfig
from adapter_sdk.interface import (
    Acknowledged,
    AgencyAdapter,
    AgencyAnswer,
    AgencyCall,
    AnswerInvalid,
    SupportingDocument,
)
from adapter_sdk.ledger import ledger_event
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.reconcile import Reconciler
from adapter_sdk.tables import (
    RequestStatus,
    exchanges,
    file_of_request_id,
    request_row,
    requests,
)
from adapter_sdk.translation import RequestIncomplete, canonical_request, checked
from adapter_sdk.transport import AgencyFailed, AgencyRejected, AgencyUnavailable, Transport
from guichet_runtime.clock import Clock
from guichet_runtime.consumer import PermanentError, TransientError
from guichet_runtime.crashpoints import crash_point
from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from guichet_runtime.retries import with_attempts
from guichet_runtime.statements import inserting, params, update_row
from shared_models import (
    AgencyAnswerReceived,
    AgencyDecision,
    AgencyReceiptAcknowledged,
    AgencyRequestIssued,
    Decision,
    ExchangeDirection,
    LegalClockResumed,
    LegalClockSuspended,
    SupportingDocumentSubmitted,
    topics,
)

log = logging.getLogger(__name__)


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
        gate = CallbackGate(adapter, config, uow, metrics)
        self.desk = CallbackDesk(adapter, uow, self, metrics, gate)
        self.reconciler = Reconciler(adapter, config, uow, transport, self, metrics, self.desk)

    # -- the exchange with the agency ---------------------------------------------------
    async def exchange(self, call: AgencyCall, what: str) -> Exchanged:
        cfg = self.config
        attempts, agency_seconds = 0, 0.0

        async def attempt() -> Any:
            nonlocal attempts, agency_seconds
            attempts += 1
            started = time.perf_counter()
            try:
                reply = await self.transport.send(call)
            finally:
                agency_seconds += time.perf_counter() - started
            return reply, checked(self.adapter.read_answer, reply)

        try:
            reply, result = await with_attempts(
                attempt,
                attempts=cfg.attempts,
                first_wait=cfg.backoff_seconds,
                max_wait=cfg.backoff_max_seconds,
                retry=lambda exc: isinstance(exc, AgencyFailed | AnswerInvalid),
            )
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
        """Record transmissions (direction, purpose, exact bytes, attempts) in one statement,
        published in one event."""
        now = utcnow()
        rows = [
            {
                "exchange_id": str(uuid.uuid4()),
                "request_id": request_id,
                "file_id": file_id,
                "direction": direction.value,
                "purpose": purpose,
                "legal_basis": self.decl.legal_basis,
                "payload_sha256": hashlib.sha256(payload).hexdigest(),
                "size_bytes": len(payload),
                "attempts": attempts,
                "at": now,
            }
            for direction, purpose, payload, attempts in entries
        ]
        uow.emit(
            topics.EXCHANGES_RECORDED, ledger_event(self.decl.agency, file_id, request_id, rows)
        )
        await uow.conn.execute(inserting(exchanges), rows)

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
        await update_row(
            uow.conn,
            requests,
            {"request_id": request_id},
            {"status": status, "updated_at": utcnow()},
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

    async def _transmitted(self, event: AgencyRequestIssued, key_id: str | None) -> bool:
        """The request was sent to the agency and its reply recorded (one transaction). If
        not, the file's data key (`key_id`, the one its request was sealed with) is recorded
        first: a callback that outruns the acknowledgement is sealed with it (adapter_sdk.
        personal)."""
        async with self.uow() as check:
            # The request's file (never NULL): None when the request is not recorded.
            found = await check.conn.scalar(
                file_of_request_id(), params(request_id=event.request_id)
            )
            if found is None and key_id is not None:
                check.use_personal_key(event.file_id, key_id)
                await check.commit()
        return found is not None

    async def on_request(self, event: AgencyRequestIssued, uow: UnitOfWork) -> None:
        started = time.perf_counter()
        if event.agency != self.decl.agency:
            raise PermanentError(
                f"demande pour {event.agency} reçue par l'adaptateur {self.decl.agency}"
            )
        if event.life_event not in self.decl.life_events:
            raise PermanentError(
                f"{self.decl.label} ne traite pas l'événement de vie « {event.life_event} » (voir "
                "sa déclaration)"
            )
        try:
            request = canonical_request(event, self.decl.citizen_fields, self._callback_url())
        except RequestIncomplete as exc:  # redelivering it would not add the fields
            raise PermanentError(str(exc)) from exc
        try:
            call = self.adapter.build_call(request)
        except Exception as exc:  # a defect of the adapter: retrying would not help
            raise PermanentError(
                f"l'adaptateur {self.decl.agency} n'a pas pu traduire la demande : {exc}"
            ) from exc
        if await self._transmitted(event, uow.personal_keys.get(event.file_id)):
            # The same request again (an event published twice by a relay that died between
            # publishing and forgetting it, or issued again): the agency has it already.
            log.info("request %s transmitted already: not sent again", event.request_id)
            async with uow:
                await uow.commit()
            return
        done = await self.exchange(call, "demande")
        crash_point("adapter.after_agency_call")  # redelivered: the agency asked again, same id
        reference = done.result.agency_reference
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        async with uow:
            inserted = await uow.conn.execute(
                insert_ignore(uow.conn, requests),
                {
                    "request_id": event.request_id,
                    "file_id": event.file_id,
                    "status": RequestStatus.AWAITING,
                    "agency_reference": reference,
                    "trace_headers": json.dumps(carrier),
                    "updated_at": utcnow(),
                    "next_poll_at": (
                        self.reconciler.first_poll_at()
                        if isinstance(done.result, Acknowledged)
                        else None
                    ),
                },
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

    async def _request_row(self, request_id: str) -> sa.Row[Any] | None:
        async with self.uow() as uow:
            return await request_row(uow.conn, request_id)

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

    async def on_callback(
        self, body: bytes, headers: dict[str, str], peer: str = ""
    ) -> tuple[int, dict[str, Any]]:
        """An agency calls back with its answer: see adapter_sdk.callbacks for the rules."""
        return await self.desk.take(body, headers, peer)
