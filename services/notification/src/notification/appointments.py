"""The projections of the appointment events (`appointments.events`, issue 16 §3; a module
beside projections.py, which is full): the citizen is told on their channel, with the date
and time in Paris, the office's address and the référent's name and direct line; the
confirmation and the cancellation emails carry the appointment's calendar file (`ics`).

Never twice: each message's id is the file, the kind and the appointment's id, so the same
fact under a new event id is recorded once (`recording.record` ignores the insert); a
redelivered event (same event id) is dropped by the inbox.

The reminder of a citizen whose channel is the letter: a letter posted the day before would
arrive too late, so it is recorded with the confirmation, planned (`programme`) for its
posting day (`domain.reminder_letter_posted_at`: LETTER_DELIVERY_DAYS working days before
the eve), and taken back (`retire`) if the appointment is cancelled or moved before it
leaves. Booked too close for that, the confirmation letter says it is the only one. The
reminder assignment issues on the eve finds the letter's id taken and adds nothing.
"""

from __future__ import annotations

from guichet_runtime.db import UnitOfWork
from notification import domain, ics
from notification.messages import subject_of
from notification.recording import latest_contact, record, record_for_citizen
from notification.tables import notifications
from shared_models import (
    Appointment,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentReminderIssued,
    AppointmentSide,
    NotificationKind,
    Referent,
)
from shared_models.wording import moment_fr, time_fr

Kind = NotificationKind


def appointment_context(appointment: Appointment, referent: Referent) -> dict[str, object]:
    """What every appointment message says: when (Paris time, in words), until when, where."""
    return {
        "when": moment_fr(appointment.starts_at),
        "until": time_fr(appointment.ends_at.astimezone(domain.PARIS).time()),
        "office": referent.office,
        "address": appointment.office_address,
    }


def actor(side: AppointmentSide, agent_id: str | None, referent: Referent) -> str:
    """Who booked or cancelled, as the message tells it: « citoyen » (the citizen
    themselves), « referent », or « agent » (another agent, e.g. at the front desk)."""
    if side is AppointmentSide.CITIZEN:
        return "citoyen"
    return "referent" if agent_id == referent.agent_id else "agent"


async def withdraw_reminder_letters(
    uow: UnitOfWork, file_id: str, appointment_id: str | None = None
) -> int:
    """Take back the file's reminder letters still waiting for their posting day (that of
    `appointment_id` only, when given): the appointment they remind of was cancelled or
    moved. One the dispatcher has taken up (no longer `programme`) leaves: the cancellation
    follows it."""
    query = notifications.update().where(
        notifications.c.file_id == file_id,
        notifications.c.kind == Kind.APPOINTMENT_REMINDER.value,
        notifications.c.status == domain.NotificationStatus.PLANNED.value,
    )
    if appointment_id is not None:
        key = domain.notification_key(file_id, Kind.APPOINTMENT_REMINDER, appointment_id)
        query = query.where(notifications.c.notification_id == key)
    taken = await uow.conn.execute(query.values(status=domain.NotificationStatus.WITHDRAWN.value))
    return int(taken.rowcount or 0)


async def plan_reminder_letter(
    uow: UnitOfWork, event: AppointmentBooked, delivery_days: int
) -> bool:
    """For a citizen reminded by letter, the reminder letter planned for its posting day;
    False when the booking is too close for it (the confirmation is the only letter)."""
    appointment, referent = event.appointment, event.referent
    posted_at = domain.reminder_letter_posted_at(
        appointment.starts_at, event.occurred_at, delivery_days
    )
    if posted_at is None:
        return False
    await record(
        uow,
        Kind.APPOINTMENT_REMINDER,
        event.file_id,
        referent,
        event.citizen,
        appointment_context(appointment, referent),
        notification_id=domain.notification_key(
            event.file_id, Kind.APPOINTMENT_REMINDER, appointment.appointment_id
        ),
        channels=[domain.LETTER],
        not_before=posted_at,
    )
    return True


async def on_appointment_booked(
    event: AppointmentBooked,
    uow: UnitOfWork,
    delivery_days: int = domain.LETTER_DELIVERY_DAYS,
) -> None:
    """A confirmation, with a calendar file to add to the citizen's calendar; a moved
    appointment (a new one) says which slot it replaces and that the former one is freed.
    A citizen reminded by letter has their reminder letter planned now (`delivery_days`:
    how many working days the post takes), or is told this letter is the only one."""
    appointment, referent = event.appointment, event.referent
    moved = event.rescheduled_from is not None
    kind = Kind.APPOINTMENT_MOVED if moved else Kind.APPOINTMENT_BOOKED
    context = {
        **appointment_context(appointment, referent),
        "former": moment_fr(event.rescheduled_from) if event.rescheduled_from else None,
        "booked_by": actor(event.booked_by, event.booked_by_agent, referent),
    }
    async with uow:
        citizen = await latest_contact(uow, event.file_id, event.citizen)
        if moved:
            await withdraw_reminder_letters(uow, event.file_id)
        if domain.reminded_by_letter(citizen):
            context["only_letter"] = not await plan_reminder_letter(uow, event, delivery_days)
        calendar = ics.appointment_ics(
            ics.REQUEST,
            appointment,
            referent,
            citizen,
            file_id=event.file_id,
            stamp=event.occurred_at,
        )
        await record_for_citizen(
            uow,
            kind,
            event.file_id,
            referent,
            event.citizen,
            context,
            notification_id=domain.notification_key(
                event.file_id, kind, appointment.appointment_id
            ),
            email_attachments=[ics.attachment(calendar, ics.REQUEST)],
        )
        await uow.commit()


def absence_context(event: AppointmentCancelled) -> dict[str, object]:
    """An appointment cancelled because its référent will be absent: the message says so
    (the reason) and whom the citizen may book with again (`again`: « referent », the same
    référent on another day; « suppleant », the colleague covering the file, whose slots the
    citizen's space now offers; « personne », nobody until the file has a référent again)."""
    if event.absence is None:
        return {"absent": False}
    other = event.absence.book_again_with
    again = (
        "personne"
        if other is None
        else "referent"
        if other.agent_id == event.referent.agent_id
        else "suppleant"
    )
    return {"absent": True, "again": again, "other": other}


async def on_appointment_cancelled(event: AppointmentCancelled, uow: UnitOfWork) -> None:
    """The citizen is told who cancelled and why (when a reason was given); the email's
    calendar file takes the appointment out of their calendar (same UID)."""
    appointment, referent = event.appointment, event.referent
    context = {
        **appointment_context(appointment, referent),
        "cancelled_by": actor(event.cancelled_by, event.cancelled_by_agent, referent),
        "reason": event.reason,
        **absence_context(event),
    }
    async with uow:
        await withdraw_reminder_letters(uow, event.file_id, appointment.appointment_id)
        citizen = await latest_contact(uow, event.file_id, event.citizen)
        calendar = ics.appointment_ics(
            ics.CANCEL,
            appointment,
            referent,
            citizen,
            file_id=event.file_id,
            stamp=event.occurred_at,
        )
        await record_for_citizen(
            uow,
            Kind.APPOINTMENT_CANCELLED,
            event.file_id,
            referent,
            event.citizen,
            context,
            notification_id=domain.notification_key(
                event.file_id, Kind.APPOINTMENT_CANCELLED, appointment.appointment_id
            ),
            email_attachments=[ics.attachment(calendar, ics.CANCEL)],
        )
        await uow.commit()


async def on_appointment_reminder_issued(event: AppointmentReminderIssued, uow: UnitOfWork) -> None:
    """The day before: by email or SMS only, a letter would arrive after the appointment. A
    citizen reminded by letter had theirs planned with the confirmation (`programme`, posted
    early enough); one who asked to be phoned has their référent asked to call them."""
    appointment, referent = event.appointment, event.referent
    key = domain.notification_key(
        event.file_id, Kind.APPOINTMENT_REMINDER, appointment.appointment_id
    )
    async with uow:
        citizen = await latest_contact(uow, event.file_id, event.citizen)
        if domain.reachable_within_a_day(citizen):
            await record_for_citizen(
                uow,
                Kind.APPOINTMENT_REMINDER,
                event.file_id,
                referent,
                event.citizen,
                appointment_context(appointment, referent),
                notification_id=key,
                channels=[domain.EMAIL, domain.SMS],
            )
        elif domain.wants_a_call(citizen):
            await record(
                uow,
                Kind.CALL_REQUESTED,
                event.file_id,
                referent,
                citizen,
                {
                    "about": subject_of(Kind.APPOINTMENT_REMINDER, event.file_id, referent),
                    "letter_follows": False,
                },
                notification_id=domain.call_request_key(key),
                recipient=referent.email,
            )
        await uow.commit()
