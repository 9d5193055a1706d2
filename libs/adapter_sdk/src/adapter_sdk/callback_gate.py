"""The door of an adapter's `/callbacks` endpoint: only the agency's own, signed, fresh,
never-seen callbacks, and only for the agency's own requests, come in (issue 12).

* no signature, a wrong one, no secret configured: 401;
* a timestamp outside the replay window, or a signature already taken (an exact replay): 401;
* a valid signature naming a request that is not this agency's: 403.

Each refusal is counted (`adapter_callbacks_refused{reason=...}`), logged, and written to the
exchange ledger when the callback names a request this adapter transmitted (once per request,
reason and body: a flood of the same forged callback adds one entry); none is ever applied.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from adapter_sdk import signatures
from adapter_sdk.config import AdapterConfig
from adapter_sdk.interface import AgencyAdapter
from adapter_sdk.ledger import ledger_event
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.signatures import RefusalReason
from adapter_sdk.tables import (
    callback_signatures,
    exchanges,
    request_row,
)
from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from guichet_runtime.refusals import RefusalKind
from guichet_runtime.secrets import Environment
from guichet_runtime.statements import param, params, prepared
from shared_models import ExchangeDirection, topics

log = logging.getLogger(__name__)

Reply = tuple[int, dict[str, Any]]

#: Ledger entries of refused callbacks are keyed by (request, reason, body): one per flood.
LEDGER_NAMESPACE = uuid.UUID("6f1c2a4e-9b1d-4c7e-8d5a-3e2f1b0c9a71")


def is_agency_request(request_id: str, agency: str) -> bool:
    """Whether a request id is one the guichet issues to `agency` (`<file_id>-<agency>`,
    see the assignment service's lifecycle)."""
    return request_id.endswith(f"-{agency}") and len(request_id) > len(agency) + 1


def missing_secret_problem(config: AdapterConfig, asynchronous: bool) -> str | None:
    """Why an adapter must not start: asynchronous, outside dev, without CALLBACK_SECRET."""
    if not asynchronous or config.callback_secret.get_secret_value():
        return None
    if config.environment == Environment.DEV:
        return None
    return (
        "CALLBACK_SECRET n'est pas configuré : un organisme asynchrone signe ses rappels avec "
        "ce secret partagé (HMAC-SHA256, en-tête X-Signature) et l'adaptateur refuse tout rappel "
        "sans lui. Donnez-le (le même qu'à l'organisme), ou ENVIRONMENT=dev pour un essai local."
    )


def refusal_body(reason: RefusalReason) -> dict[str, Any]:
    """A refusal in the house shape (`message`, `kind`)."""
    kind = (
        RefusalKind.FORBIDDEN
        if reason is RefusalReason.OTHER_AGENCY
        else RefusalKind.UNAUTHENTICATED
    )
    return {"message": signatures.MESSAGES[reason], "kind": kind.value}


def status_of(reason: RefusalReason) -> int:
    return 403 if reason is RefusalReason.OTHER_AGENCY else 401


#: Seconds between two deletions of the signatures older than the replay window.
PURGE_EVERY = 60.0


@prepared
def _signatures_before() -> sa.Delete:
    """The signatures seen before the replay window (`params(signed_at=…)`)."""
    c = callback_signatures.c
    return callback_signatures.delete().where(c.signed_at < param(c.signed_at))


class CallbackGate:
    """Checks who sends a callback before the callback desk reads it."""

    def __init__(
        self,
        adapter: AgencyAdapter,
        config: AdapterConfig,
        uow: Callable[..., UnitOfWork],
        metrics: AdapterMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.adapter = adapter
        self.decl = adapter.declaration
        self.secrets = (
            config.callback_secret.get_secret_value(),
            config.callback_secret_previous.get_secret_value(),
        )
        self.window = config.callback_replay_window_seconds
        self.uow = uow
        self.metrics = metrics
        self.clock = clock
        #: When the signatures older than the replay window were last deleted (`clock`'s
        #: seconds): at most once a `PURGE_EVERY`, not with every callback.
        self._purged_at = -math.inf

    def verified(self, body: bytes, headers: Mapping[str, str]) -> signatures.Signed:
        """The callback's checked signature: the agency's, and fresh by its timestamp; else
        SignatureRefused with the reason (no database: `remember` takes it)."""
        return signatures.verify(
            self.secrets, signatures.header_of(headers), body, self.clock(), self.window
        )

    async def remember(self, uow: UnitOfWork, signed: signatures.Signed) -> bool:
        """Record a verified signature in the caller's unit of work, which commits it with
        what it reads there (the callback's request): one transaction per callback, not two.
        False when it was taken before (an exact replay: refuse it as `REPLAYED`)."""
        now = self.clock()
        if now - self._purged_at >= PURGE_EVERY:
            # Kept only to refuse a replay: one older than the window is refused as stale
            # by its timestamp already, whether its row is still here or not.
            cutoff = dt.datetime.fromtimestamp(now - self.window, dt.UTC)
            await uow.conn.execute(_signatures_before(), params(signed_at=cutoff))
            self._purged_at = now
        taken = await uow.conn.execute(
            insert_ignore(uow.conn, callback_signatures),
            {
                "signature": signed.digest,
                "signed_at": dt.datetime.fromtimestamp(signed.timestamp, dt.UTC),
            },
        )
        return bool(taken.rowcount)

    async def in_scope(
        self,
        request_id: str,
        recorded: bool,
        body: bytes,
        headers: Mapping[str, str],
        peer: str = "",
    ) -> Reply | None:
        """None if the (authenticated) callback names one of this agency's requests:
        `recorded` here, or one of its identifiers (a callback may outrun the request's
        acknowledgement)."""
        if recorded or is_agency_request(request_id, self.decl.agency):
            return None
        return await self.refuse(RefusalReason.OTHER_AGENCY, body, headers, peer, request_id)

    async def refuse(
        self,
        reason: RefusalReason,
        body: bytes,
        headers: Mapping[str, str],
        peer: str,
        request_id: str | None = None,
    ) -> Reply:
        """Count, log and (when the request is known) record a refused callback."""
        self.metrics.callbacks_refused.labels(self.decl.agency, reason.value).inc()
        self.metrics.handled.labels(self.decl.agency, "rappel", "refuse").inc()
        if request_id is None:
            request_id = self._claimed_request(body, headers)
        log.warning(
            "%s: callback refused (%s) from %s for request %s, %d bytes, sha256 %s",
            self.decl.agency,
            reason.value,
            peer or "?",
            request_id or "?",
            len(body),
            hashlib.sha256(body).hexdigest(),
        )
        if request_id is not None:
            await self._record(reason, request_id, body)
        return status_of(reason), refusal_body(reason)

    def _claimed_request(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        try:
            return self.adapter.read_callback(body, headers).request_id[:60]
        except Exception:  # unreadable: no file to record it for
            return None

    async def _record(self, reason: RefusalReason, request_id: str, body: bytes) -> None:
        """One ledger entry per (request, reason, body), for a request this adapter sent."""
        digest = hashlib.sha256(body).hexdigest()
        exchange_id = str(uuid.uuid5(LEDGER_NAMESPACE, f"{request_id}:{reason}:{digest}"))
        label = signatures.LEDGER_LABELS[reason]
        purpose = f"Rappel refusé ({label}) : {self.decl.purpose}"[:200]
        async with self.uow() as uow:
            row = await request_row(uow.conn, request_id)
            if row is None:
                return
            now = utcnow()
            entry = {
                "exchange_id": exchange_id,
                "request_id": request_id,
                "file_id": row.file_id,
                "direction": ExchangeDirection.RECEIVED.value,
                "purpose": purpose,
                "legal_basis": self.decl.legal_basis,
                "payload_sha256": digest,
                "size_bytes": len(body),
                "attempts": 1,
                "at": now,
            }
            inserted = await uow.conn.execute(insert_ignore(uow.conn, exchanges), entry)
            if inserted.rowcount == 1:
                uow.emit(
                    topics.EXCHANGES_RECORDED,
                    ledger_event(self.decl.agency, row.file_id, request_id, [entry]),
                )
            await uow.commit()
