"""Appointments with the référent (issue 16 §3): book, move and cancel, for the citizen (their
space) or an agent (the référent, or a front-desk agent on the phone), and the reminder of
the day before (housekeeping). The slot rules are in `assignment.scheduling`.

No double booking: the slot's row is the proof. A unique index on (agent, start) among the
booked appointments (`tables.appointments`) makes the database refuse the second of two
citizens racing for one slot, whatever the replicas; the loser gets a clear refusal and
nothing of theirs is written. Each change is one transaction with its outbox event
(`AppointmentBooked`, `AppointmentCancelled`), so the citizen is told once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from assignment import scheduling
from assignment.personal_columns import citizen_of, file_seal
from assignment.referents import referent_of
from assignment.tables import absences, agents, appointments, files, offices
from guichet_runtime import audit
from guichet_runtime.audit import AuditAction
from guichet_runtime.auth.principal import Principal, PrincipalKind
from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.refusals import RefusalKind, Refused
from shared_models import (
    AbsenceCancellation,
    Appointment,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentReminderIssued,
    AppointmentSide,
    topics,
)

BOOKED = "reserve"
CANCELLED = "annule"
MOVED = "deplace"

SLOT_TAKEN = "Ce créneau vient d'être réservé par quelqu'un d'autre. Choisissez-en un autre."
NOT_OFFERED = "Ce créneau n'est pas proposé : choisissez l'un des créneaux libres affichés."
ALREADY_BOOKED = (
    "Un rendez-vous est déjà prévu pour ce dossier : déplacez-le ou annulez-le plutôt que "
    "d'en prendre un second."
)
NO_REFERENT_YET = (
    "Votre dossier n'a pas encore de référent : vous pourrez prendre rendez-vous dès qu'il "
    "sera désigné."
)
HOURS_UNREADABLE = (
    "Les horaires de ce bureau ne permettent pas encore la prise de rendez-vous en ligne : "
    "appelez votre référent."
)
NO_LONGER_BOOKED = "Ce rendez-vous n'est plus prévu (annulé ou déplacé)."
ALREADY_PAST = "Ce rendez-vous est passé : il ne peut plus être modifié."


@dataclass(frozen=True)
class Calendar:
    """How appointments are offered (settings), and the service's clock."""

    slot_minutes: int
    horizon_days: int
    today: Callable[[], dt.date]
    now: Callable[[], dt.datetime]


@dataclass(frozen=True)
class Place:
    """Where and with whom: the référent and their office's hours and address."""

    agent_id: str
    agent_name: str
    address: str
    hours: scheduling.WeeklyHours | None


def side_of(who: Principal) -> tuple[AppointmentSide, str | None]:
    """The citizen (logged in, or holding the file's proof) or an agent (with their id)."""
    if who.kind is PrincipalKind.AGENT:
        return AppointmentSide.AGENT, who.agent_id
    return AppointmentSide.CITIZEN, None


async def file_row(uow: UnitOfWork, file_id: str, lock: bool = False) -> sa.Row:
    query = sa.select(files).where(files.c.file_id == file_id)
    file = (await uow.conn.execute(query.with_for_update() if lock else query)).first()
    if file is None:
        raise Refused(RefusalKind.NOT_FOUND, f"Aucun dossier ne porte la référence {file_id}.")
    return file


async def place_of(uow: UnitOfWork, agent_id: str) -> Place:
    row = (
        await uow.conn.execute(
            sa.select(agents.c.name, offices.c.address, offices.c.commune, offices.c.opening_hours)
            .join(offices, agents.c.office_id == offices.c.office_id)
            .where(agents.c.agent_id == agent_id)
        )
    ).one()
    return Place(
        agent_id=agent_id,
        agent_name=row.name,
        address=f"{row.address}, {row.commune}",
        hours=scheduling.weekly_hours(row.opening_hours),
    )


async def absent_days(uow: UnitOfWork, agent_id: str, days: list[dt.date]) -> set[dt.date]:
    """The days among `days` the agent is declared absent (ended absences do not count)."""
    if not days:
        return set()
    found = await uow.conn.execute(
        sa.select(absences.c.starts_on, absences.c.ends_on).where(
            absences.c.agent_id == agent_id,
            absences.c.status != "terminee",
            absences.c.starts_on <= max(days),
            absences.c.ends_on >= min(days),
        )
    )
    spans = found.all()
    return {d for d in days if any(s.starts_on <= d <= s.ends_on for s in spans)}


async def taken_starts(uow: UnitOfWork, agent_id: str, since: dt.datetime) -> set[dt.datetime]:
    found = await uow.conn.scalars(
        sa.select(appointments.c.starts_at).where(
            appointments.c.agent_id == agent_id,
            appointments.c.status == BOOKED,
            appointments.c.starts_at >= since,
        )
    )
    return set(found)


async def _upcoming(uow: UnitOfWork, file_id: str, now: dt.datetime) -> sa.Row | None:
    return (
        await uow.conn.execute(
            sa.select(appointments).where(
                appointments.c.file_id == file_id,
                appointments.c.status == BOOKED,
                appointments.c.starts_at > now,
            )
        )
    ).first()


async def _offered(uow: UnitOfWork, place: Place, starts_at: dt.datetime, cal: Calendar):
    if place.hours is None:
        raise Refused(RefusalKind.CONFLICT, HOURS_UNREADABLE)
    if starts_at.tzinfo is None:
        raise Refused(RefusalKind.INVALID, NOT_OFFERED, field="starts_at")
    today = cal.today()
    days = list(scheduling.bookable_days(today, cal.horizon_days))
    absent = await absent_days(uow, place.agent_id, days)
    slot = scheduling.offered_slot(
        place.hours, starts_at, today, cal.horizon_days, cal.slot_minutes, absent
    )
    if slot is None:
        raise Refused(RefusalKind.INVALID, NOT_OFFERED, field="starts_at")
    return slot


async def appointment_row(uow: UnitOfWork, appointment_id: str) -> sa.Row:
    return (
        await uow.conn.execute(
            sa.select(appointments).where(appointments.c.appointment_id == appointment_id)
        )
    ).one()


def appointment_of(row: sa.Row) -> Appointment:
    return Appointment(
        appointment_id=row.appointment_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        office_address=row.office_address,
        calendar_id=row.calendar_id,
        revision=row.revision,
    )


async def _insert(
    uow: UnitOfWork,
    file_id: str,
    place: Place,
    slot: scheduling.Slot,
    who: Principal,
    replaces: sa.Row | None = None,
) -> sa.Row:
    """The booked row (`replaces`: the appointment it moves, whose calendar entry it takes
    over); the slot already booked (a racing request won): Refused, and the transaction is
    left to roll back."""
    side, agent_id = side_of(who)
    appointment_id = str(uuid.uuid4())
    try:
        await uow.conn.execute(
            appointments.insert().values(
                appointment_id=appointment_id,
                file_id=file_id,
                agent_id=place.agent_id,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                office_address=place.address,
                status=BOOKED,
                booked_by=side.value,
                booked_by_agent=agent_id,
                booked_at=utcnow(),
                calendar_id=(
                    None if replaces is None else replaces.calendar_id or replaces.appointment_id
                ),
                revision=0 if replaces is None else replaces.revision + 1,
            )
        )
    except sa.exc.IntegrityError as exc:
        raise Refused(RefusalKind.CONFLICT, SLOT_TAKEN, field="starts_at") from exc
    return await appointment_row(uow, appointment_id)


async def _announce_booked(
    uow: UnitOfWork,
    file: sa.Row,
    row: sa.Row,
    who: Principal,
    rescheduled_from: dt.datetime | None = None,
    stated: str | None = None,
) -> None:
    side, agent_id = side_of(who)
    uow.emit(
        topics.APPOINTMENTS,
        AppointmentBooked(
            file_id=file.file_id,
            appointment=appointment_of(row),
            referent=await referent_of(uow, row.agent_id),
            booked_by=side,
            booked_by_agent=agent_id,
            rescheduled_from=rescheduled_from,
            citizen=await citizen_of(uow, file),
        ),
    )
    if side is AppointmentSide.AGENT:
        action = (
            AuditAction.APPOINTMENT_MOVED if rescheduled_from else AuditAction.APPOINTMENT_BOOKED
        )
        audit.record(
            uow,
            who,
            action,
            file_id=file.file_id,
            reason=stated,
            appointment=row.appointment_id,
            starts_at=row.starts_at.isoformat(),
        )


async def book(
    uow: UnitOfWork,
    file_id: str,
    starts_at: dt.datetime,
    who: Principal,
    cal: Calendar,
    stated: str | None = None,
) -> dict:
    """Book the slot starting at `starts_at` with the file's référent (`stated`: why an
    agent does it, for the audit trail)."""
    async with uow:
        file = await file_row(uow, file_id, lock=True)
        if file.referent_id is None:
            raise Refused(RefusalKind.CONFLICT, NO_REFERENT_YET)
        if await _upcoming(uow, file_id, cal.now()) is not None:
            raise Refused(RefusalKind.CONFLICT, ALREADY_BOOKED)
        place = await place_of(uow, file.referent_id)
        slot = await _offered(uow, place, starts_at, cal)
        row = await _insert(uow, file_id, place, slot, who)
        await _announce_booked(uow, file, row, who, stated=stated)
        await uow.commit()
    return appointment_view(row, place.agent_name)


async def _booked_row(
    uow: UnitOfWork, file_id: str, appointment_id: str, now: dt.datetime
) -> sa.Row:
    row = (
        await uow.conn.execute(
            sa.select(appointments).where(
                appointments.c.appointment_id == appointment_id,
                appointments.c.file_id == file_id,
            )
        )
    ).first()
    if row is None:
        raise Refused(RefusalKind.NOT_FOUND, "Ce rendez-vous n'existe pas pour ce dossier.")
    if row.status != BOOKED:
        raise Refused(RefusalKind.CONFLICT, NO_LONGER_BOOKED)
    if row.starts_at <= now:
        raise Refused(RefusalKind.CONFLICT, ALREADY_PAST)
    return row


async def move(
    uow: UnitOfWork,
    file_id: str,
    appointment_id: str,
    starts_at: dt.datetime,
    who: Principal,
    cal: Calendar,
    stated: str | None = None,
) -> dict:
    """Move a booked appointment to another free slot of the same référent: the former slot
    is freed and the new one booked in one transaction (one confirmation)."""
    async with uow:
        file = await file_row(uow, file_id, lock=True)
        old = await _booked_row(uow, file_id, appointment_id, cal.now())
        place = await place_of(uow, old.agent_id)
        slot = await _offered(uow, place, starts_at, cal)
        if slot.starts_at == old.starts_at:
            raise Refused(
                RefusalKind.INVALID,
                "Le rendez-vous est déjà à cette heure-là : choisissez un autre créneau.",
                field="starts_at",
            )
        side, agent_id = side_of(who)
        await uow.conn.execute(
            appointments.update()
            .where(appointments.c.appointment_id == appointment_id)
            .values(
                status=MOVED,
                cancelled_by=side.value,
                cancelled_by_agent=agent_id,
                cancelled_at=utcnow(),
            )
        )
        row = await _insert(uow, file_id, place, slot, who, replaces=old)
        await _announce_booked(uow, file, row, who, old.starts_at, stated)
        await uow.commit()
    return appointment_view(row, place.agent_name)


async def cancel(
    uow: UnitOfWork,
    file_id: str,
    appointment_id: str,
    reason: str | None,
    who: Principal,
    now: dt.datetime,
    stated: str | None = None,
) -> dict:
    """Cancel a booked appointment: the slot is free again and the citizen is told."""
    async with uow:
        file = await file_row(uow, file_id, lock=True)
        old = await _booked_row(uow, file_id, appointment_id, now)
        side, agent_id = side_of(who)
        if not await cancel_booked(uow, file, old, side, agent_id, reason):
            raise Refused(RefusalKind.CONFLICT, NO_LONGER_BOOKED)  # moved meanwhile
        if side is AppointmentSide.AGENT:
            audit.record(
                uow,
                who,
                AuditAction.APPOINTMENT_CANCELLED,
                file_id=file_id,
                reason=stated,
                appointment=appointment_id,
                starts_at=old.starts_at.isoformat(),
            )
        name = (await place_of(uow, old.agent_id)).agent_name
        await uow.commit()
    return {
        **appointment_view(old, name, reason),
        "status": CANCELLED,
        "cancelled_by": side.value,
    }


async def cancel_booked(
    uow: UnitOfWork,
    file: sa.Row,
    row: sa.Row,
    side: AppointmentSide,
    agent_id: str | None,
    reason: str | None,
    absence: AbsenceCancellation | None = None,
) -> bool:
    """Cancel the booked appointment `row` of `file` (only if still booked: False when it was
    cancelled or moved meanwhile) and put its `AppointmentCancelled` in the outbox."""
    marked = await uow.conn.execute(
        appointments.update()
        .where(
            appointments.c.appointment_id == row.appointment_id,
            appointments.c.status == BOOKED,
        )
        .values(
            status=CANCELLED,
            cancelled_by=side.value,
            cancelled_by_agent=agent_id,
            cancel_reason=(await file_seal(uow, file.file_id)).seal(reason),
            cancelled_at=utcnow(),
        )
    )
    if marked.rowcount != 1:
        return False
    uow.emit(
        topics.APPOINTMENTS,
        AppointmentCancelled(
            file_id=file.file_id,
            appointment=appointment_of(row),
            referent=await referent_of(uow, row.agent_id),
            cancelled_by=side,
            cancelled_by_agent=agent_id,
            reason=reason,
            absence=absence,
            citizen=await citizen_of(uow, file),
        ),
    )
    return True


def appointment_view(row: sa.Row, referent_name: str, reason: str | None = None) -> dict:
    """An appointment as the API gives it (times in UTC, ISO 8601)."""
    return {
        "appointment_id": row.appointment_id,
        "file_id": row.file_id,
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
        "status": row.status,
        "office_address": row.office_address,
        "referent_name": referent_name,
        "agent_id": row.agent_id,
        "booked_by": row.booked_by,
        "cancelled_by": row.cancelled_by,
        "cancel_reason": reason,
    }


async def tick_reminders(
    uow_factory: Callable[[], UnitOfWork], now: dt.datetime, limit: int = 200
) -> int:
    """Remind each citizen of tomorrow's appointment, once: the flag is written with the
    outbox event, one transaction per appointment."""
    horizon = now + dt.timedelta(days=2)
    async with uow_factory() as uow:
        due = (
            await uow.conn.execute(
                sa.select(
                    appointments.c.appointment_id,
                    appointments.c.starts_at,
                    appointments.c.booked_at,
                )
                .where(
                    appointments.c.status == BOOKED,
                    appointments.c.reminded_at.is_(None),
                    appointments.c.starts_at > now,
                    appointments.c.starts_at <= horizon,
                )
                .order_by(appointments.c.starts_at)
                .limit(limit)
            )
        ).all()
    issued = 0
    for found in due:
        if not scheduling.reminder_due(found.starts_at, found.booked_at, now):
            continue
        async with uow_factory() as uow:
            issued += await _remind(uow, found.appointment_id, now)
            await uow.commit()
    return issued


async def _remind(uow: UnitOfWork, appointment_id: str, now: dt.datetime) -> int:
    marked = await uow.conn.execute(
        appointments.update()
        .where(
            appointments.c.appointment_id == appointment_id,
            appointments.c.status == BOOKED,
            appointments.c.reminded_at.is_(None),
        )
        .values(reminded_at=now)
    )
    if marked.rowcount != 1:
        return 0  # another replica reminded it, or it was cancelled meanwhile
    row = await appointment_row(uow, appointment_id)
    file = await file_row(uow, row.file_id)
    uow.emit(
        topics.APPOINTMENTS,
        AppointmentReminderIssued(
            file_id=row.file_id,
            appointment=appointment_of(row),
            referent=await referent_of(uow, row.agent_id),
            citizen=await citizen_of(uow, file),
        ),
    )
    return 1
