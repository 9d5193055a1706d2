"""Notification's event handlers, one per consumed event: each records the messages the
event calls for, with their channel plan and their text rendered and signed for every
channel of the plan. `dispatch` sends them.

Never twice: a redelivered event (same event id) is dropped by the inbox; the same fact
under a new event id finds its notification id (`domain.notification_key`) already
recorded, and the insert is ignored.
"""

from __future__ import annotations

import sqlalchemy as sa

from guichet_runtime.clock import paris_day, paris_day_ended_by
from guichet_runtime.db import UnitOfWork, insert_ignore
from notification import domain
from notification.domain import Audience
from notification.personal_columns import sealing_of
from notification.recording import record, record_for_citizen
from notification.tables import contacts
from shared_models import (
    AGENCY_LABELS,
    AccessCodeIssued,
    CitizenMessageEscalated,
    CitizenMessageReminderIssued,
    ContactPreferencesChanged,
    CoordinatedAnswerIssued,
    DeadlineWarningIssued,
    Decision,
    ImplicitDecisionRecorded,
    LegalDeadlineBreached,
    NotificationKind,
    ReferentAssigned,
    ReferentAssignmentDeferred,
    ReferentMessageSent,
    ReferentThanked,
    SupportingDocumentRequested,
)

Kind = NotificationKind


async def on_referent_assigned(event: ReferentAssigned, uow: UnitOfWork) -> None:
    """A first référent: the citizen is told who it is. A change: the citizen and both
    agents are told; a file may change hands more than once (supervisors), so each change
    has its own messages."""
    file_id, referent, citizen = event.file_id, event.referent, event.citizen
    async with uow:
        previous = event.previous_referent
        if previous is None:
            await record_for_citizen(uow, Kind.REFERENT_ASSIGNED, file_id, referent, citizen)
        else:
            change = {
                "previous_referent": previous,
                "reason": event.reason or "",
                "rule": event.rule,
            }
            await record_for_citizen(
                uow,
                Kind.REFERENT_CHANGED,
                file_id,
                referent,
                citizen,
                change,
                notification_id=domain.notification_key(
                    file_id, Kind.REFERENT_CHANGED, str(event.event_id)
                ),
            )
            for agent in (previous, referent):
                await record(
                    uow,
                    Kind.AGENT_HANDOVER,
                    file_id,
                    referent,
                    citizen,
                    change,
                    notification_id=domain.notification_key(
                        file_id, Kind.AGENT_HANDOVER, str(event.event_id), agent.agent_id
                    ),
                    recipient=agent.email,
                )
        await uow.commit()


async def on_supporting_document_requested(
    event: SupportingDocumentRequested, uow: UnitOfWork
) -> None:
    """The agency's request for a document reaches the citizen and the référent."""
    # Asked again after an incomplete document: a message of its own, with the agency's words.
    again = event.after_document is not None
    context = {
        "document": event.document,
        "agency_label": AGENCY_LABELS[event.agency],
        "again": again,
        "reason": event.reason if again else None,
    }
    qualifiers = [event.request_id, event.document.code]
    if event.after_document is not None:
        qualifiers.append(event.after_document)
    key = domain.notification_key(event.file_id, Kind.DOCUMENT_REQUESTED, *qualifiers)
    file_id, referent, citizen = event.file_id, event.referent, event.citizen
    async with uow:
        await record_for_citizen(
            uow,
            Kind.DOCUMENT_REQUESTED,
            file_id,
            referent,
            citizen,
            {**context, "for_referent": False},
            notification_id=key,
        )
        await record(
            uow,
            Kind.DOCUMENT_REQUESTED,
            file_id,
            referent,
            citizen,
            {**context, "for_referent": True},
            notification_id=domain.referent_copy_key(key),
            recipient=referent.email,
            audience=Audience.AGENT,
        )
        await uow.commit()


async def on_coordinated_answer_issued(event: CoordinatedAnswerIssued, uow: UnitOfWork) -> None:
    """The coordinated answer (composed by assignment) reaches the citizen, signed."""
    async with uow:
        await record_for_citizen(
            uow,
            Kind.ANSWER_READY,
            event.file_id,
            event.referent,
            event.citizen,
            {"text": event.text, "personal_word": event.personal_word},
        )
        await uow.commit()


async def on_referent_message_sent(event: ReferentMessageSent, uow: UnitOfWork) -> None:
    """A message the référent wrote on the desk: on the citizen's channel, signed; one per
    message id, so a redelivered event sends nothing twice."""
    async with uow:
        await record_for_citizen(
            uow,
            Kind.REFERENT_MESSAGE,
            event.file_id,
            event.referent,
            event.citizen,
            {"text": event.text},
            notification_id=domain.notification_key(
                event.file_id, Kind.REFERENT_MESSAGE, event.message_id
            ),
        )
        await uow.commit()


async def on_contact_preferences_changed(event: ContactPreferencesChanged, uow: UnitOfWork) -> None:
    """Later messages follow the citizen's new preferences (the latest change wins); the
    contact left behind is told of the change on its own channel, signed."""
    async with uow:
        if event.previous_citizen is not None:
            changed = domain.contact_changes(event.previous_citizen, event.citizen)
            if changed:
                await record(
                    uow,
                    Kind.CONTACT_CHANGED_NOTICE,
                    event.file_id,
                    event.referent or domain.GUICHET_DESK,
                    event.previous_citizen,
                    {
                        "changes": changed,
                        "changed_at_paris": domain.time_in_paris(event.occurred_at),
                        "referent_named": event.referent is not None,
                    },
                    notification_id=domain.notification_key(
                        event.file_id, Kind.CONTACT_CHANGED_NOTICE, str(event.event_id)
                    ),
                    contact_as_given=True,
                )
        stored = await uow.conn.scalar(
            sa.select(contacts.c.changed_at).where(contacts.c.file_id == event.file_id)
        )
        citizen = (await sealing_of(uow, event.file_id)).seal(event.citizen.model_dump_json())
        if stored is None:
            await uow.conn.execute(
                insert_ignore(uow.conn, contacts).values(
                    file_id=event.file_id, citizen=citizen, changed_at=event.occurred_at
                )
            )
        elif stored < event.occurred_at:
            await uow.conn.execute(
                contacts.update()
                .where(contacts.c.file_id == event.file_id)
                .values(citizen=citizen, changed_at=event.occurred_at)
            )
        await uow.commit()


async def on_access_code_issued(event: AccessCodeIssued, uow: UnitOfWork) -> None:
    """Send the one-time code, by email or SMS only (a letter would arrive after it
    expires); each code is its own message (a citizen may ask again). Before a référent is
    named, the public-service line signs it. The code stays sealed in the message's row;
    its texts hold a placeholder (see `dispatch`)."""
    context = {
        "code": domain.SECRET_PLACEHOLDER,  # the code stays sealed until it is sent
        "expires_at_paris": domain.time_in_paris(event.expires_at),
        "referent_named": event.referent is not None,
    }
    signer = event.referent or domain.GUICHET_DESK
    async with uow:
        await record(
            uow,
            Kind.ACCESS_CODE,
            event.file_id,
            signer,
            event.citizen,
            context,
            notification_id=domain.notification_key(
                event.file_id, Kind.ACCESS_CODE, str(event.event_id)
            ),
            channels=[domain.EMAIL, domain.SMS],
            sealed=event.sealed_code,
        )
        await uow.commit()


async def on_referent_thanked(event: ReferentThanked, uow: UnitOfWork) -> None:
    """A citizen's thanks reach their référent by email."""
    async with uow:
        await record(
            uow,
            Kind.THANKS_RECEIVED,
            event.file_id,
            event.referent,
            event.citizen,
            {"message": event.message},
            notification_id=domain.notification_key(
                event.file_id, Kind.THANKS_RECEIVED, event.thanks_id
            ),
            recipient=event.referent.email,
        )
        await uow.commit()


async def on_deadline_warning_issued(event: DeadlineWarningIssued, uow: UnitOfWork) -> None:
    """J-15 and J-7: the référent is warned (once per request and threshold)."""
    context = {
        "agency_label": AGENCY_LABELS[event.agency],
        "due_on": event.due_on,
        "days_left": event.days_left,
        "rule": event.rule.value,
    }
    async with uow:
        await record(
            uow,
            Kind.DEADLINE_WARNING,
            event.file_id,
            event.referent,
            event.citizen,
            context,
            notification_id=domain.notification_key(
                event.file_id, Kind.DEADLINE_WARNING, event.request_id, str(event.threshold)
            ),
            recipient=event.referent.email,
        )
        await uow.commit()


def _promise_context(event: CitizenMessageReminderIssued | CitizenMessageEscalated) -> dict:
    return {
        "received_at": f"{paris_day(event.received_at):%d/%m/%Y}",
        "last_day": f"{paris_day_ended_by(event.answer_due_at):%d/%m/%Y}",
    }


async def on_citizen_message_reminder_issued(
    event: CitizenMessageReminderIssued, uow: UnitOfWork
) -> None:
    """The last day of a message's answer-time promise: the agent who answers is reminded
    (once per message)."""
    async with uow:
        await record(
            uow,
            Kind.MESSAGE_REMINDER,
            event.file_id,
            event.referent,
            event.citizen,
            _promise_context(event),
            notification_id=domain.notification_key(
                event.file_id, Kind.MESSAGE_REMINDER, event.message_id
            ),
            recipient=event.referent.email,
        )
        await uow.commit()


async def on_citizen_message_escalated(event: CitizenMessageEscalated, uow: UnitOfWork) -> None:
    """A message's answer-time promise lapsed: each supervisor of the département is
    alerted (once per message); the message names the agent who was to answer."""
    async with uow:
        for supervisor in event.supervisors:
            await record(
                uow,
                Kind.MESSAGE_OVERDUE,
                event.file_id,
                event.referent,
                event.citizen,
                {**_promise_context(event), "supervisor_name": supervisor.name},
                notification_id=domain.notification_key(
                    event.file_id, Kind.MESSAGE_OVERDUE, event.message_id, supervisor.supervisor_id
                ),
                recipient=supervisor.email,
            )
        await uow.commit()


async def on_legal_deadline_breached(event: LegalDeadlineBreached, uow: UnitOfWork) -> None:
    """The breach: each supervisor of the département is warned; the message names the
    file's référent."""
    context = {
        "agency_label": AGENCY_LABELS[event.agency],
        "due_on": event.due_on,
        "rule": event.rule.value,
    }
    async with uow:
        for supervisor in event.supervisors:
            await record(
                uow,
                Kind.DEADLINE_BREACHED,
                event.file_id,
                event.referent,
                event.citizen,
                {**context, "supervisor_name": supervisor.name},
                notification_id=domain.notification_key(
                    event.file_id,
                    Kind.DEADLINE_BREACHED,
                    event.request_id,
                    supervisor.supervisor_id,
                ),
                recipient=supervisor.email,
            )
        await uow.commit()


async def on_implicit_decision_recorded(event: ImplicitDecisionRecorded, uow: UnitOfWork) -> None:
    """The citizen receives a letter saying the silence decided (with the means of
    appeal for a rejection), signed by the référent; other channels only when there is
    no postal address."""
    context = {
        "agency_label": AGENCY_LABELS[event.agency],
        "due_on": event.due_on,
        "decided_on": event.decided_on,
        "accepted": event.decision is Decision.IMPLICIT_ACCEPTANCE,
    }
    async with uow:
        await record_for_citizen(
            uow,
            Kind.IMPLICIT_DECISION,
            event.file_id,
            event.referent,
            event.citizen,
            context,
            notification_id=domain.notification_key(
                event.file_id, Kind.IMPLICIT_DECISION, event.request_id
            ),
            channels=[domain.LETTER],
        )
        await uow.commit()


async def on_referent_assignment_deferred(
    event: ReferentAssignmentDeferred, uow: UnitOfWork
) -> None:
    """A file waits for a référent: each supervisor of the département is alerted, once
    per time the file starts waiting; the supervisor signs (there is no référent yet)."""
    context = {
        "reason": event.reason,
        "urgent": event.urgent,
        "departement": event.departement,
        "life_event_label": event.life_event_label,
    }
    async with uow:
        for supervisor in event.supervisors:
            await record(
                uow,
                Kind.SUPERVISOR_ALERT,
                event.file_id,
                domain.supervision_desk(supervisor),
                event.citizen,
                {**context, "supervisor_name": supervisor.name},
                notification_id=domain.notification_key(
                    event.file_id,
                    Kind.SUPERVISOR_ALERT,
                    str(event.event_id),
                    supervisor.supervisor_id,
                ),
                recipient=supervisor.email,
            )
        await uow.commit()
