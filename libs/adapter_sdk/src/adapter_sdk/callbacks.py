"""An asynchronous agency's callbacks, taken so that no decision is ever lost or applied twice.

First the callback gate (adapter_sdk.callback_gate) checks who sends it: unsigned, wrongly
signed, stale or replayed callbacks are refused (401), and so are those naming another
agency's request (403). Then the rules (docs/adapters.md, "Callbacks"):

* a callback is a duplicate only if the SAME request already received the SAME callback id:
  it has no effect (200 ``deja_recu``);
* a callback id already used for ANOTHER request is refused (409), recorded in the exchange
  ledger and counted (``adapter_callbacks_refused{reason="identifiant_reutilise"}``); the
  request's decision is then fetched by reconciliation (status poll), never silently dropped;
* a new callback id for a request already decided: the same decision has no effect
  (200 ``deja_decide``); a different one is recorded in the ledger, not applied (409);
* a callback for a request not recorded yet (it outran the acknowledgement) is held
  (202 ``en_attente``) and applied as soon as the request is recorded;
* copies of one callback arriving together are taken once (the callback id is a key).

What a callback carries is the agency's decision about the citizen, in clear over HTTP (the
agency has no key): it is sealed with the file's data key before it is stored
(adapter_sdk.personal). The key service unreachable: 503, the agency delivers it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from adapter_sdk.callback_gate import CallbackGate
from adapter_sdk.decisions import Recorder, apply_once
from adapter_sdk.interface import AgencyAdapter, AgencyAnswer, CallbackAnswer, answer_problems
from adapter_sdk.ledger import ledger_event
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.personal import (
    StoredErased,
    file_of_request,
    opened_answer,
    opened_payload,
    stored_answer_text,
    stored_payload,
)
from adapter_sdk.signatures import RefusalReason, SignatureRefused
from adapter_sdk.tables import CallbackOutcome, callbacks, exchanges, request_row, requests
from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from guichet_runtime.personal_data import KeyUnavailable
from guichet_runtime.refusals import RefusalKind
from guichet_runtime.statements import param, params, prepared
from shared_models import ExchangeDirection, topics

log = logging.getLogger(__name__)

Reply = tuple[int, dict[str, Any]]

#: How each outcome is answered to the agency (status, body).
ANSWERS: dict[CallbackOutcome, tuple[int, dict[str, Any]]] = {
    CallbackOutcome.APPLIED: (200, {"statut": "recu"}),
    CallbackOutcome.SAME: (200, {"statut": "deja_decide"}),
    # The citizen's data was erased: the request was decided, nothing is compared or applied.
    CallbackOutcome.ERASED: (200, {"statut": "deja_decide"}),
}

#: The key service cannot give the file's key now: the agency delivers the callback again.
UNAVAILABLE: Reply = (
    503,
    {
        "message": "Rappel non enregistré pour l'instant : renvoyez-le dans quelques instants.",
        "kind": RefusalKind.UNAVAILABLE.value,
    },
)


def refusal(message: str, field: str | None = None) -> dict[str, Any]:
    """A refusal body in the house shape (`message`, `kind`, `field`)."""
    return {
        "message": message,
        "kind": RefusalKind.CONFLICT.value,
        **({"field": field} if field else {}),
    }


@prepared
def _held() -> sa.Select[Any]:
    c = callbacks.c
    return (
        sa.select(callbacks)
        .where(c.request_id == param(c.request_id), c.outcome == CallbackOutcome.HELD)
        .order_by(c.received_at)
    )


@prepared
def _orphans() -> sa.Select[Any]:
    c = exchanges.c
    return sa.select(exchanges).where(c.request_id == param(c.request_id), c.file_id == "")


@prepared
def _held_done() -> sa.Update:
    """A held callback applied (or not): its outcome, its answer no longer kept."""
    c = callbacks.c
    return (
        callbacks.update()
        .where(c.callback_id == param(c.callback_id), c.outcome == CallbackOutcome.HELD)
        .values(outcome=param(c.outcome), payload=None, answer=None)
    )


class CallbackDesk:
    """Takes the callbacks of one adapter and applies the decisions they carry."""

    def __init__(
        self,
        adapter: AgencyAdapter,
        uow: Callable[..., UnitOfWork],
        recorder: Recorder,
        metrics: AdapterMetrics,
        gate: CallbackGate,
    ) -> None:
        self.adapter = adapter
        self.gate = gate
        self.decl = adapter.declaration
        self.uow = uow
        self.recorder = recorder
        self.metrics = metrics

    def _count(self, outcome: str) -> None:
        self.metrics.handled.labels(self.decl.agency, "rappel", outcome).inc()

    async def take(self, body: bytes, headers: Mapping[str, str], peer: str = "") -> Reply:
        """One delivery to the callback endpoint (`peer`: the caller's address, for the log):
        the HTTP status and body to answer."""
        try:
            signed = self.gate.verified(body, headers)
        except SignatureRefused as wrong:
            return await self.gate.refuse(wrong.reason, body, headers, peer)
        callback, refusal = self._read(body, headers)
        # The signature is taken (a replay refused) even when the body is refused, and in
        # the transaction that reads the request the callback names: one transaction.
        async with self.uow() as uow:
            fresh = await self.gate.remember(uow, signed)
            known = None
            if fresh and callback is not None:
                known = await request_row(uow.conn, callback.request_id)
            await uow.commit()
        if not fresh:
            return await self.gate.refuse(RefusalReason.REPLAYED, body, headers, peer)
        if callback is None:
            outcome, reply = refusal
            self._count(outcome)
            return reply
        refused = await self.gate.in_scope(
            callback.request_id, known is not None, body, headers, peer
        )
        if refused is not None:
            return refused
        carrier = json.loads(known.trace_headers) if known is not None else {}
        token = otel_context.attach(propagate.extract(carrier))
        try:
            with trace.get_tracer("adapter_sdk").start_as_current_span(
                "agency callback", kind=trace.SpanKind.SERVER
            ):
                try:
                    return await self._take(callback, body)
                except KeyUnavailable as exc:  # nothing stored: the transaction rolled back
                    log.warning(
                        "%s: callback %s for %s not taken: %s",
                        self.decl.agency,
                        callback.callback_id,
                        callback.request_id,
                        exc,
                    )
                    self._count("indisponible")
                    return UNAVAILABLE
        finally:
            otel_context.detach(token)

    def _read(
        self, body: bytes, headers: Mapping[str, str]
    ) -> tuple[CallbackAnswer | None, tuple[str, Reply]]:
        """The callback as the agency sent it; else None, with the outcome to count and the
        400 to answer (an unreadable or incoherent callback)."""
        try:
            callback = self.adapter.read_callback(body, headers)
            problems = answer_problems(callback.answer)
        except Exception as exc:
            return None, ("illisible", (400, {"message": f"Rappel illisible : {exc}"}))
        if problems:
            message = "Rappel incohérent : " + "; ".join(problems)
            return None, ("incoherent", (400, {"message": message}))
        return callback, ("ok", (200, {}))

    async def _take(self, callback: CallbackAnswer, body: bytes) -> Reply:
        async with self.uow() as uow:
            file_id = file_of_request(callback.request_id, self.decl.agency)
            taken = await uow.conn.execute(
                insert_ignore(uow.conn, callbacks),
                {
                    "callback_id": callback.callback_id,
                    "request_id": callback.request_id,
                    "received_at": utcnow(),
                    "outcome": CallbackOutcome.HELD,
                    "payload": await stored_payload(uow, file_id, body),
                    "answer": await stored_answer_text(uow, file_id, callback.answer),
                },
            )
            if taken.rowcount == 0:  # this callback id was taken before (or just now, concurrently)
                first = (
                    await uow.conn.execute(
                        sa.select(callbacks.c.request_id).where(
                            callbacks.c.callback_id == callback.callback_id
                        )
                    )
                ).scalar_one()
                if first != callback.request_id:
                    reply = await self._refuse_reused(uow, callback, first, body)
                    await uow.commit()
                    return reply
                await uow.commit()
                self._count("doublon")
                return 200, {"statut": "deja_recu"}
            recorded = await request_row(uow.conn, callback.request_id)
            if recorded is None:
                await uow.commit()  # held: applied when the request is recorded
                self._count("en_attente")
                return 202, {
                    "statut": "en_attente",
                    "message": f"Demande {callback.request_id} inconnue pour l'instant : "
                    f"le rappel est conservé "
                    f"et sera appliqué dès qu'elle sera enregistrée.",
                }
            outcome = await self._apply(
                uow,
                callback.callback_id,
                callback.request_id,
                callback.answer,
                body,
                file_id=recorded.file_id,
            )
            await uow.commit()
        return self._answer(outcome, callback.request_id)

    def _answer(self, outcome: CallbackOutcome, request_id: str) -> Reply:
        self._count("ok" if outcome is CallbackOutcome.APPLIED else outcome.value)
        if outcome is CallbackOutcome.CONFLICT:
            self.metrics.callbacks_refused.labels(self.decl.agency, "decision_divergente").inc()
            return 409, refusal(
                f"La demande {request_id} a déjà reçu une décision différente : "
                f"ce rappel est enregistré "
                f"au registre des échanges, mais n'est pas appliqué.",
            )
        return ANSWERS[outcome]

    async def _apply(
        self,
        uow: UnitOfWork,
        callback_id: str,
        request_id: str,
        answer: AgencyAnswer,
        body: bytes,
        file_id: str | None = None,
    ) -> CallbackOutcome:
        outcome = await apply_once(
            uow,
            self.recorder,
            request_id,
            answer,
            body,
            "rappel",
            self.decl.purpose,
            file_id=file_id,
        )
        await uow.conn.execute(_held_done(), params(callback_id=callback_id, outcome=outcome))
        return outcome

    async def _refuse_reused(
        self, uow: UnitOfWork, callback: CallbackAnswer, first: str, body: bytes
    ) -> Reply:
        """A callback id already used for another request: refused, recorded, counted."""
        self._count("refuse")
        self.metrics.callbacks_refused.labels(self.decl.agency, "identifiant_reutilise").inc()
        claimed = await request_row(uow.conn, callback.request_id)
        purpose = (
            f"Rappel refusé : identifiant {callback.callback_id[:60]} "
            f"déjà utilisé pour une autre demande"
        )
        if claimed is not None:
            await self.recorder.record_exchanges(
                uow,
                claimed.file_id,
                claimed.request_id,
                (ExchangeDirection.RECEIVED, purpose, body, 1),
            )
        else:  # the request is not recorded yet: its file is adopted with it (adopt_orphans)
            await uow.conn.execute(
                exchanges.insert().values(
                    exchange_id=str(uuid.uuid4()),
                    request_id=callback.request_id,
                    file_id="",
                    direction=ExchangeDirection.RECEIVED.value,
                    purpose=purpose,
                    legal_basis=self.decl.legal_basis,
                    payload_sha256=hashlib.sha256(body).hexdigest(),
                    size_bytes=len(body),
                    attempts=1,
                    at=utcnow(),
                )
            )
        log.warning(
            "%s: callback %s for %s refused, its id was used for %s",
            self.decl.agency,
            callback.callback_id,
            callback.request_id,
            first,
        )
        return 409, refusal(
            f"Rappel refusé : l'identifiant de rappel « {callback.callback_id} » a déjà servi "
            f"pour une autre demande. La décision de la demande {callback.request_id} "
            f"sera relevée auprès de l'organisme.",
            field="callback_id",
        )

    # -- held callbacks ------------------------------------------------------------------------
    async def apply_held(self, uow: UnitOfWork, request_id: str) -> None:
        """Apply, in the caller's transaction, the callbacks held for a request just recorded
        (and give its file to the ledger entries recorded before it was known)."""
        await self.adopt_orphans(uow, request_id)
        held = (await uow.conn.execute(_held(), params(request_id=request_id))).all()
        file_id = file_of_request(request_id, self.decl.agency)
        for row in held:
            try:
                answer: AgencyAnswer = await opened_answer(uow, row.answer, file_id)
                payload = await opened_payload(uow, row.payload or b"", file_id)
            except StoredErased:  # the citizen's data was erased meanwhile: nothing to apply
                await self._forget_erased(uow, row.callback_id)
                self._count(f"en_attente_{CallbackOutcome.ERASED.value}")
                continue
            outcome = await self._apply(uow, row.callback_id, request_id, answer, payload)
            self._count(f"en_attente_{outcome.value}")

    @staticmethod
    async def _forget_erased(uow: UnitOfWork, callback_id: str) -> None:
        """A held callback whose key was shredded: kept as erased (its id still guards against
        a repeat), without its bytes. The request's decision comes by a status poll, if any."""
        await uow.conn.execute(
            callbacks.update()
            .where(callbacks.c.callback_id == callback_id)
            .values(outcome=CallbackOutcome.ERASED, payload=None, answer=None)
        )

    async def adopt_orphans(self, uow: UnitOfWork, request_id: str) -> None:
        """Ledger entries written before the request was known (a refused callback) get its file,
        and are published like the others."""
        row = await request_row(uow.conn, request_id)
        orphans = (await uow.conn.execute(_orphans(), params(request_id=request_id))).all()
        if row is None or not orphans:
            return
        await uow.conn.execute(
            exchanges.update()
            .where(exchanges.c.request_id == request_id, exchanges.c.file_id == "")
            .values(file_id=row.file_id)
        )
        lines = [entry._mapping for entry in orphans]
        uow.emit(
            topics.EXCHANGES_RECORDED,
            ledger_event(self.decl.agency, row.file_id, request_id, lines),
        )

    async def apply_all_held(self) -> int:
        """Apply the held callbacks whose request is recorded by now (a race the transaction
        of the request could not see); the reconciliation worker calls it. Returns how many."""
        async with self.uow() as uow:
            ready = (
                (
                    await uow.conn.execute(
                        sa.select(callbacks.c.request_id)
                        .distinct()
                        .join(requests, requests.c.request_id == callbacks.c.request_id)
                        .where(callbacks.c.outcome == CallbackOutcome.HELD)
                    )
                )
                .scalars()
                .all()
            )
        for request_id in ready:
            async with self.uow() as uow:
                await self.apply_held(uow, request_id)
                await uow.commit()
        return len(ready)
