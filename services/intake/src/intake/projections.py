"""Intake's event handlers: the citizen's view of their file, kept up to date from the
events of the other services. One handler per consumed event: on_<event>(event, uow)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from guichet_runtime.clock import paris_day
from guichet_runtime.db import UnitOfWork, insert_ignore
from guichet_runtime.statements import param, params, prepared, update_row
from intake import metrics
from intake.domain import (
    DECISION_WORDS,
    SENT_ON,
    AgencyStatus,
    FileStatus,
    TimelineKind,
    agency_label,
    implicit_decision_sentence,
    is_citizen_contact,
)
from intake.domain.appointments import booked_sentence, cancelled_sentence
from intake.domain.thread import covering_after_assignment, overdue_message_sentence
from intake.records import (
    add_timeline,
    add_timeline_lines,
    advance_agency,
    agency_answered,
    agency_update,
    require_file,
)
from intake.tables import exchanges, file_agencies, files, referent_messages
from shared_models import (
    AGENCY_LABELS,
    AgencyAnswerReceived,
    AgencyRequestIssued,
    AppointmentBooked,
    AppointmentCancelled,
    CitizenMessageEscalated,
    CoordinatedAnswerIssued,
    Decision,
    ExchangeDirection,
    ExchangeRecorded,
    ExchangesRecorded,
    ImplicitDecisionRecorded,
    LegalDeadlineSet,
    NotificationKind,
    NotificationSent,
    RecordedExchange,
    ReferentAssigned,
)


@prepared
def _deadline_set() -> sa.Update:
    c = file_agencies.c
    return agency_update().values(
        due_on=param(c.due_on),
        deadline_state=param(c.deadline_state),
        deadline_rule=param(c.deadline_rule),
    )


async def on_legal_deadline_set(event: LegalDeadlineSet, uow: UnitOfWork) -> None:
    """The agency's legal deadline as the assignment service keeps it (latest wins)."""
    async with uow:
        await require_file(uow, event.file_id)
        await uow.conn.execute(
            _deadline_set(),
            params(
                file_id=event.file_id,
                agency=event.agency,
                due_on=event.due_on,
                deadline_state=event.state,
                deadline_rule=event.rule.value,
            ),
        )
        await uow.commit()


async def on_implicit_decision_recorded(event: ImplicitDecisionRecorded, uow: UnitOfWork) -> None:
    """An agency kept silent until its legal deadline: its silence is its answer."""
    label = AGENCY_LABELS[event.agency]
    async with uow:
        await require_file(uow, event.file_id)
        await agency_answered(
            uow,
            event.file_id,
            event.agency,
            event.occurred_at,
            event.decision,
            decided_on=event.decided_on,
            clear_document=False,
        )
        await add_timeline(
            uow,
            event,
            TimelineKind.IMPLICIT_DECISION,
            implicit_decision_sentence(label, event.due_on, event.decision),
        )
        await uow.commit()


async def on_citizen_message_escalated(event: CitizenMessageEscalated, uow: UnitOfWork) -> None:
    """The answer-time promise of the citizen's message lapsed: their timeline says so, and
    that the office's supervisor knows."""
    async with uow:
        await require_file(uow, event.file_id)
        await add_timeline(
            uow,
            event,
            TimelineKind.MESSAGE_OVERDUE,
            overdue_message_sentence(
                f"{paris_day(event.received_at):%d/%m/%Y}",
                event.referent.name,
                event.referent.office,
            ),
        )
        await uow.commit()


async def on_appointment_booked(event: AppointmentBooked, uow: UnitOfWork) -> None:
    """An appointment with the référent, booked or moved (a move is a new appointment; the
    former slot is freed with it, without a cancellation)."""
    kind = (
        TimelineKind.APPOINTMENT_MOVED
        if event.rescheduled_from
        else TimelineKind.APPOINTMENT_BOOKED
    )
    async with uow:
        await require_file(uow, event.file_id)
        await add_timeline(
            uow,
            event,
            kind,
            booked_sentence(
                event.appointment,
                event.referent,
                event.booked_by,
                event.booked_by_agent,
                event.rescheduled_from,
            ),
        )
        await uow.commit()


async def on_appointment_cancelled(event: AppointmentCancelled, uow: UnitOfWork) -> None:
    async with uow:
        await require_file(uow, event.file_id)
        await add_timeline(
            uow,
            event,
            TimelineKind.APPOINTMENT_CANCELLED,
            cancelled_sentence(
                event.appointment,
                event.referent,
                event.cancelled_by,
                event.cancelled_by_agent,
                event.reason,
            ),
        )
        await uow.commit()


@prepared
def _covering_for() -> sa.Select[Any]:
    return sa.select(files.c.covering_for).where(files.c.file_id == param(files.c.file_id))


@prepared
def _referent_set() -> sa.Update:
    """The file's référent (and whom they cover); a submitted file is now in progress."""
    c = files.c
    return (
        files.update()
        .where(c.file_id == param(c.file_id))
        .values(
            referent=param(c.referent),
            covering_for=param(c.covering_for),
            status=sa.case(
                (c.status == FileStatus.SUBMITTED, FileStatus.IN_PROGRESS.value),
                else_=c.status,
            ),
        )
    )


async def on_referent_assigned(event: ReferentAssigned, uow: UnitOfWork) -> None:
    async with uow:
        await require_file(uow, event.file_id)
        ref = event.referent
        covering = await uow.conn.scalar(_covering_for(), params(file_id=event.file_id))
        await uow.conn.execute(
            _referent_set(),
            params(
                file_id=event.file_id,
                # The whole card (agent and office ids too): pages link to the agent's office.
                referent=ref.model_dump(mode="json"),
                # Who the new référent covers during an absence: the citizen is told.
                covering_for=covering_after_assignment(
                    event.rule, event.previous_referent, covering
                ),
            ),
        )
        await metrics.referent_assigned(uow, event.file_id, ref, event.occurred_at)
        if event.previous_referent is None:
            label = f"Votre référent est désigné : {ref.name}, {ref.office}."
        else:
            label = (
                f"Votre nouveau référent est {ref.name}, {ref.office} ; "
                f"{event.previous_referent.name} lui a transmis tout votre dossier."
                + (f" Motif : {event.reason}" if event.reason else "")
            )
        await add_timeline(uow, event, TimelineKind.REFERENT, label)
        await uow.commit()


async def on_agency_request_issued(event: AgencyRequestIssued, uow: UnitOfWork) -> None:
    async with uow:
        await require_file(uow, event.file_id)
        await advance_agency(uow, event.file_id, event.agency, AgencyStatus.SENT, event.occurred_at)
        await add_timeline(
            uow,
            event,
            TimelineKind.SENT_TO_AGENCY,
            f"Dossier transmis à : {AGENCY_LABELS[event.agency]}.",
        )
        await uow.commit()


async def on_agency_answer_received(event: AgencyAnswerReceived, uow: UnitOfWork) -> None:
    answer = event.answer
    label = AGENCY_LABELS[answer.agency]
    async with uow:
        await require_file(uow, event.file_id)
        if answer.decision is Decision.DOCUMENT_REQUESTED and answer.requested_document is not None:
            document = answer.requested_document
            this_agency = (  # built here only: most answers are decisions, not requests
                file_agencies.c.file_id == event.file_id,
                file_agencies.c.agency == answer.agency,
            )
            await uow.conn.execute(
                file_agencies.update()
                .where(*this_agency, file_agencies.c.status != AgencyStatus.ANSWERED)
                .values(
                    status=AgencyStatus.DOCUMENT_REQUESTED,
                    updated_at=event.occurred_at,
                    requested_document={
                        "request_id": event.request_id,
                        "code": document.code,
                        "label": document.label,
                    },
                )
            )
            if event.after_document is None:
                said = f"{label} demande une pièce justificative : {document.label}."
            else:  # the document sent was found incomplete
                said = (
                    f"{label} juge incomplète la pièce envoyée et la demande à nouveau : "
                    f"{document.label} ({answer.summary})."
                )
            await add_timeline(
                uow,
                event,
                TimelineKind.DOCUMENT_REQUESTED,
                f"{said} Envoyez-la depuis votre dossier ; votre référent est prévenu.",
            )
        else:
            decided = answer.decision is not Decision.DOCUMENT_REQUESTED
            await agency_answered(
                uow,
                event.file_id,
                answer.agency,
                event.occurred_at,
                answer.decision if decided else None,
                clear_document=True,
            )
            await add_timeline(
                uow,
                event,
                TimelineKind.AGENCY_ANSWER,
                f"Réponse reçue de {label} : {DECISION_WORDS[answer.decision]}.",
            )
        await uow.commit()


def exchange_line(agency: str, line: RecordedExchange) -> str:
    """A transmission, as the citizen's timeline says it."""
    label = agency_label(agency)
    sent = line.direction is ExchangeDirection.SENT
    way = f"Transmis à {label}" if sent else f"Reçu de {label}"
    return (
        f"{way} — {line.purpose}. Base légale : {line.legal_basis}. "
        f"Empreinte SHA-256 : {line.payload_sha256}."
    )


async def record_exchanges(
    uow: UnitOfWork, file_id: str, agency: str, lines: list[tuple[str, RecordedExchange]]
) -> None:
    """The exchange ledger, shown to the citizen: what went to or came from which agency,
    why; one line of the timeline per transmission, under its line id (`lines`: line id,
    transmission)."""
    await require_file(uow, file_id)
    uow.insert_at_commit(  # as the timeline's lines: nothing reads them back before
        insert_ignore(uow.conn, exchanges),
        [
            {
                "exchange_id": line.exchange_id,
                "file_id": file_id,
                "agency": agency,
                "direction": line.direction.value,
                "purpose": line.purpose,
                "legal_basis": line.legal_basis,
                "payload_sha256": line.payload_sha256,
                "size_bytes": line.size_bytes,
                "at": line.at,
            }
            for _, line in lines
        ],
    )
    await add_timeline_lines(
        uow,
        file_id,
        [
            (line_id, line.at, TimelineKind.EXCHANGE, exchange_line(agency, line))
            for line_id, line in lines
        ],
    )


async def on_exchanges_recorded(event: ExchangesRecorded, uow: UnitOfWork) -> None:
    """The transmissions of one adapter transaction; a timeline line each, its id the
    ledger's (unique, as an event's is)."""
    async with uow:
        lines = [(line.exchange_id, line) for line in event.exchanges]
        await record_exchanges(uow, event.file_id, event.agency, lines)
        await uow.commit()


async def on_exchange_recorded(event: ExchangeRecorded, uow: UnitOfWork) -> None:
    """One transmission, as a former adapter published it (one event each); its timeline
    line under the event's id, as then."""
    line = RecordedExchange(
        exchange_id=event.exchange_id,
        direction=event.direction,
        purpose=event.purpose,
        legal_basis=event.legal_basis,
        payload_sha256=event.payload_sha256,
        size_bytes=event.size_bytes,
        at=event.occurred_at,
    )
    async with uow:
        await record_exchanges(uow, event.file_id, event.agency, [(str(event.event_id), line)])
        await uow.commit()


async def on_coordinated_answer_issued(event: CoordinatedAnswerIssued, uow: UnitOfWork) -> None:
    async with uow:
        await require_file(uow, event.file_id)
        await update_row(
            uow.conn,
            files,
            {"file_id": event.file_id},
            {
                "status": FileStatus.ANSWERED,
                "answer": {
                    "text": event.text,
                    "decisions": [d.model_dump(mode="json") for d in event.decisions],
                    "issued_at": event.occurred_at.isoformat(),
                    "personal_word": event.personal_word,
                },
            },
        )
        await metrics.file_answered(uow, event.file_id, event.occurred_at)
        with_word = ", avec un mot personnel" if event.personal_word else ""
        await add_timeline(
            uow,
            event,
            TimelineKind.COORDINATED_ANSWER,
            f"Réponse coordonnée rédigée par {event.referent.name}{with_word}.",
        )
        await uow.commit()


async def on_notification_sent(event: NotificationSent, uow: UnitOfWork) -> None:
    if event.audience == "agent" or event.notification_id.endswith(":referent"):
        return  # a message between agents; the citizen's timeline shows the change itself
    async with uow:
        await require_file(uow, event.file_id)
        if is_citizen_contact(event):
            await metrics.citizen_contacted(uow, event.file_id, event.occurred_at)
        await add_timeline(
            uow,
            event,
            TimelineKind.NOTIFICATION,
            f"{SENT_ON[event.channel]} : « {event.subject} ».",
        )
        if event.kind is NotificationKind.REFERENT_MESSAGE:
            # notification ids of these messages are "<file>:referent_message:<message id>"
            await uow.conn.execute(
                referent_messages.update()
                .where(
                    referent_messages.c.message_id == event.notification_id.rsplit(":", 1)[-1],
                    referent_messages.c.file_id == event.file_id,
                    referent_messages.c.delivered_at.is_(None),
                )
                .values(channel=event.channel.value, delivered_at=event.occurred_at)
            )
        await uow.commit()
