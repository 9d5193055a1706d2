"""Projections of the events about files: a file submitted gets its référent, an
agency's answer is recorded (and the coordinated answer composed when it is the last), a
change of référent is applied."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from assignment import domain
from assignment.domain import CHANGE_RULES, FileStatus, RequestStatus
from assignment.lifecycle import (
    announce_waiting,
    compose_if_complete,
    file_agencies,
    move_file,
    start_file,
    stop_clock,
)
from assignment.personal_columns import answer_of, citizen_of, file_seal
from assignment.referents import choose_for_file, referent_of, take_agent
from assignment.tables import (
    agency_requests,
    assignments,
    file_known,
    file_row,
    file_row_locked,
    files,
)
from guichet_runtime.consumer import PermanentError
from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.statements import inserting, param, params, prepared, update_row
from shared_models import (
    AgencyAnswerReceived,
    Decision,
    FileSubmitted,
    ReferentChangeRequested,
    SupportingDocumentRequested,
    topics,
)

log = logging.getLogger(__name__)


async def on_file_submitted(event: FileSubmitted, uow: UnitOfWork) -> None:
    async with uow:
        if await uow.conn.scalar(file_known(), params(file_id=event.file_id)):
            await uow.commit()  # same file announced twice: already handled
            return
        seal = await file_seal(uow, event.file_id)
        await uow.conn.execute(
            inserting(files),
            {
                "file_id": event.file_id,
                "citizen_key": domain.citizen_key(event.citizen, seal.key_id),
                "citizen": seal.seal(event.citizen.model_dump(mode="json")),
                "agencies": list(event.agencies),
                "life_event": event.life_event,
                "life_event_label": event.life_event_label,
                "description": seal.seal(event.description),
                "urgent": event.urgent,
                "status": FileStatus.AWAITING_REFERENT,
                "created_at": utcnow(),
                "registered_by": event.registered_by,
            },
        )
        file = (await uow.conn.execute(file_row(), params(file_id=event.file_id))).one()
        choice = await choose_for_file(uow, file)
        if choice is None:
            # Nobody has room: the file waits, visibly, and is never dropped.
            await announce_waiting(uow, file, "Aucun agent n'a de place pour ce nouveau dossier.")
        else:
            await start_file(uow, file, choice)
        await uow.commit()


@prepared
def _request_row() -> sa.Select[Any]:
    c = agency_requests.c
    return sa.select(agency_requests).where(c.request_id == param(c.request_id))


async def on_agency_answer(event: AgencyAnswerReceived, uow: UnitOfWork) -> None:
    async with uow:
        # Lock the file: two agencies' answers handled at once must not both see the
        # other as pending (or both compose the answer).
        file = (await uow.conn.execute(file_row_locked(), params(file_id=event.file_id))).first()
        request = (
            await uow.conn.execute(_request_row(), params(request_id=event.request_id))
        ).first()
        if file is None or request is None or request.file_id != event.file_id:
            raise PermanentError(f"demande inconnue : {event.request_id} (dossier {event.file_id})")
        if request.agency != event.answer.agency:
            raise PermanentError(
                f"réponse de {event.answer.agency} pour une demande à {request.agency}"
            )
        if request.status == RequestStatus.ANSWERED:
            await uow.commit()
            return
        now = utcnow()
        # A missing document is not an answer: the request waits for it, so the
        # coordinated answer is not composed (compose_if_complete wants every one "repondue").
        waiting = event.answer.decision is Decision.DOCUMENT_REQUESTED
        answer = event.answer.model_dump(mode="json")
        if (
            waiting
            and request.status == RequestStatus.DOCUMENT_REQUESTED
            and request.answer_after_document == event.after_document
            and await answer_of(uow, event.file_id, request.answer, request.agency) == answer
        ):
            # The same request for the same document, delivered again. Asked again after the
            # citizen sent one (it was incomplete), it is a new request: told again.
            await uow.commit()
            return
        await update_row(
            uow.conn,
            agency_requests,
            {"request_id": event.request_id},
            {
                "status": RequestStatus.DOCUMENT_REQUESTED if waiting else RequestStatus.ANSWERED,
                "answer": (await file_seal(uow, event.file_id)).seal(answer),
                "answer_after_document": event.after_document,
                "answered_at": None if waiting else now,
            },
        )
        if waiting:
            await _document_requested(uow, file, event)
        else:
            await stop_clock(uow, event.request_id)
            await compose_if_complete(uow, event.file_id, file)
        await uow.commit()


async def _document_requested(uow: UnitOfWork, file: sa.Row, event: AgencyAnswerReceived) -> None:
    """The référent and the citizen are told which document the agency waits for."""
    if file.referent_id is None or event.answer.requested_document is None:
        return
    referent = await referent_of(uow, file.referent_id)
    uow.emit(
        topics.DOCUMENTS_REQUESTED,
        SupportingDocumentRequested(
            file_id=file.file_id,
            request_id=event.request_id,
            agency=event.answer.agency,
            document=event.answer.requested_document,
            referent=referent,
            citizen=await citizen_of(uow, file),
            after_document=event.after_document,
            reason=event.answer.summary,
        ),
    )


async def on_referent_change_requested(event: ReferentChangeRequested, uow: UnitOfWork) -> None:
    """Give the file another référent: never the same person, the whole file follows."""
    async with uow:
        file = (
            await uow.conn.execute(
                sa.select(files).where(files.c.file_id == event.file_id).with_for_update()
            )
        ).first()
        if file is None:
            raise PermanentError(f"dossier inconnu : {event.file_id}")
        stale = event.current_agent_id is not None and event.current_agent_id != file.referent_id
        rule = CHANGE_RULES[event.requested_by]
        if file.status == FileStatus.ANSWERED or file.referent_id is None or stale:
            log.info(
                "change of référent for %s not applicable (status %s)", event.file_id, file.status
            )
            await uow.commit()
            return
        if event.requested_by == "citoyen" and await uow.conn.scalar(
            sa.select(sa.func.count())
            .select_from(assignments)
            .where(assignments.c.file_id == event.file_id, assignments.c.rule == rule)
        ):
            log.info("second citizen request for %s ignored: granted once per file", event.file_id)
            await uow.commit()
            return
        citizen = await citizen_of(uow, file)
        choice = await take_agent(
            uow,
            await file_agencies(uow, event.file_id),
            citizen.postcode,
            None,
            exclude=file.referent_id,
            urgent=file.urgent,
        )
        if choice is None:
            log.warning(
                "no référent with room to replace %s on %s", file.referent_id, event.file_id
            )
            await uow.commit()
            return
        await move_file(
            uow,
            file,
            choice.agent_id,
            rule,
            f"Motif : {event.reason} — {choice.explanation}",
            event.reason,
            choice.considered,
        )
        await uow.commit()
