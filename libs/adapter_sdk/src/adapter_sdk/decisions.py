"""The one path by which an asynchronous agency's decision becomes the request's decision,
whether it came by a callback, a held (early) callback or a status poll: applied exactly
once, a repeat has no effect, a different second decision is recorded and not applied. The
decision is stored sealed with the file's data key (adapter_sdk.personal)."""

from __future__ import annotations

from typing import Protocol

import sqlalchemy as sa

from adapter_sdk.interface import AgencyAnswer
from adapter_sdk.personal import StoredErased, canonical, opened_answer, stored_answer_text
from adapter_sdk.tables import (
    CallbackOutcome,
    RequestStatus,
    file_of_request_id,
    request_by_id,
    requests,
)
from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.statements import param, params, prepared
from shared_models import Decision, ExchangeDirection


class Recorder(Protocol):
    """What applying a decision needs from the runtime: the ledger and the answer's events."""

    async def record_exchanges(
        self,
        uow: UnitOfWork,
        file_id: str,
        request_id: str,
        *entries: tuple[ExchangeDirection, str, bytes, int],
    ) -> None: ...

    async def publish_answer(
        self,
        uow: UnitOfWork,
        file_id: str,
        request_id: str,
        answer: AgencyAnswer,
        after_document: str | None,
    ) -> None: ...


def answer_json(answer: AgencyAnswer) -> str:
    """A decision in one canonical form, to compare two deliveries of it."""
    return canonical(answer.model_dump(mode="json"))


async def same_decision(
    uow: UnitOfWork, stored: str | None, file_id: str, answer: AgencyAnswer
) -> bool:
    """Whether the decision stored for a request (sealed or in clear) is `answer`;
    StoredErased once the file's key is shredded (nothing left to compare with)."""
    if stored is None:
        return False
    return answer_json(await opened_answer(uow, stored, file_id)) == answer_json(answer)


def status_after(answer: AgencyAnswer) -> RequestStatus:
    """Where a request stands once `answer` is applied."""
    if answer.decision is Decision.DOCUMENT_REQUESTED:
        return RequestStatus.DOCUMENT_REQUESTED
    return RequestStatus.DECIDED


@prepared
def _decided() -> sa.Update:
    """The request's decision, if it still awaits one (`params(request_id=…, status=…,
    answer=…, updated_at=…)`)."""
    c = requests.c
    return (
        requests.update()
        .where(c.request_id == param(c.request_id), c.status == RequestStatus.AWAITING)
        .values(
            status=param(c.status),
            answer=param(c.answer),
            next_poll_at=None,
            updated_at=param(c.updated_at),
        )
    )


async def apply_once(
    uow: UnitOfWork,
    recorder: Recorder,
    request_id: str,
    answer: AgencyAnswer,
    payload: bytes,
    source: str,
    purpose: str,
    *,
    file_id: str | None = None,
) -> CallbackOutcome:
    """Apply `answer` to the request if it still awaits a decision; say what happened.

    The guard is one conditional UPDATE (status still AWAITING): of a callback and a poll
    racing, or two copies of a callback, exactly one changes the row and publishes. The
    caller commits. `source` names the delivery in the ledger (« rappel », « consultation de
    l'état »), `purpose` the transmission's purpose. Once the citizen's data key is shredded,
    a decision that is not applied is compared with nothing: ERASED. `file_id`: the
    request's, when the caller has just read its row in this transaction."""
    if file_id is None:
        file_id = await uow.conn.scalar(file_of_request_id(), params(request_id=request_id))
    taken = await uow.conn.execute(
        _decided(),
        params(
            request_id=request_id,
            status=status_after(answer),
            answer=await stored_answer_text(uow, str(file_id), answer),
            updated_at=utcnow(),
        ),
    )
    # Read after the UPDATE: the winner's decision is committed by now if this one lost.
    row = (await uow.conn.execute(request_by_id(), params(request_id=request_id))).one()
    if taken.rowcount == 1:
        await recorder.record_exchanges(
            uow,
            row.file_id,
            request_id,
            (ExchangeDirection.RECEIVED, f"Réponse ({source}) : {purpose}", payload, 1),
        )
        await recorder.publish_answer(
            uow, row.file_id, request_id, answer, after_document=row.last_document_id
        )
        return CallbackOutcome.APPLIED
    try:
        if await same_decision(uow, row.answer, row.file_id, answer):
            return CallbackOutcome.SAME
    except StoredErased:
        return CallbackOutcome.ERASED
    await recorder.record_exchanges(
        uow,
        row.file_id,
        request_id,
        (
            ExchangeDirection.RECEIVED,
            f"Décision divergente, non appliquée ({source}) : {purpose}",
            payload,
            1,
        ),
    )
    return CallbackOutcome.CONFLICT
