"""Read models of the appointments: a file's appointments, the free slots of its référent,
and a référent's day (the desk's day view)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from assignment import scheduling
from assignment.commands.appointments import (
    BOOKED,
    HOURS_UNREADABLE,
    Calendar,
    Place,
    absent_days,
    appointment_view,
    file_row,
    place_of,
    taken_starts,
)
from assignment.personal_columns import ERASED, citizen_of, open_column
from assignment.referents import referent_of
from assignment.tables import agents, appointments, files
from guichet_runtime.clock import PARIS
from guichet_runtime.db import UnitOfWork

#: How many days of slots a page asks for at most.
MAX_DAYS = 31


async def _referent(uow: UnitOfWork, agent_id: str) -> tuple[Place, dict[str, Any]]:
    place = await place_of(uow, agent_id)
    referent = await referent_of(uow, agent_id)
    card = {
        "agent_id": agent_id,
        "name": referent.name,
        "office": referent.office,
        "office_address": place.address,
        "phone": referent.phone,
    }
    return place, card


async def file_appointments(uow: UnitOfWork, file_id: str, now: dt.datetime) -> dict[str, Any]:
    """The file's référent, its citizen's name (whom the agent on the phone books for), its
    upcoming appointment and every appointment, newest first."""
    async with uow:
        file = await file_row(uow, file_id)
        citizen = await citizen_of(uow, file)
        rows = (
            await uow.conn.execute(
                sa.select(appointments, agents.c.name.label("agent_name"))
                .join(agents, appointments.c.agent_id == agents.c.agent_id)
                .where(appointments.c.file_id == file_id)
                .order_by(appointments.c.starts_at.desc())
            )
        ).all()
        listed = [
            appointment_view(
                r, r.agent_name, await open_column(uow, file_id, r.cancel_reason, ERASED)
            )
            for r in rows
        ]
        referent = None
        if file.referent_id is not None:
            _, referent = await _referent(uow, file.referent_id)
    upcoming = [
        a for a, r in zip(listed, rows, strict=True) if r.status == BOOKED and r.starts_at > now
    ]
    return {
        "referent": referent,
        "citizen": {"given_name": citizen.given_name, "family_name": citizen.family_name},
        "upcoming": upcoming[-1] if upcoming else None,
        "appointments": listed,
    }


async def free_slots(
    uow: UnitOfWork, file_id: str, cal: Calendar, first: dt.date | None, days: int
) -> dict[str, Any]:
    """The free slots of the file's référent from `first` (default: tomorrow) for `days`
    days, within the booking window; days without a free slot are left out."""
    today = cal.today()
    window = list(scheduling.bookable_days(today, cal.horizon_days))
    start = max(first or window[0], window[0])
    wanted = [d for d in window if start <= d < start + dt.timedelta(days=min(days, MAX_DAYS))]
    async with uow:
        file = await file_row(uow, file_id)
        if file.referent_id is None:
            return {"referent": None, "slot_minutes": cal.slot_minutes, "days": []}
        place, referent = await _referent(uow, file.referent_id)
        if place.hours is None:
            return {
                "referent": referent,
                "slot_minutes": cal.slot_minutes,
                "days": [],
                "message": HOURS_UNREADABLE,
            }
        absent = await absent_days(uow, place.agent_id, wanted)
        taken = await taken_starts(uow, place.agent_id, cal.now())
    free = scheduling.free_slots(place.hours, wanted, cal.slot_minutes, absent, taken)
    return {
        "referent": referent,
        "slot_minutes": cal.slot_minutes,
        "days": [
            {
                "day": day.isoformat(),
                "slots": [
                    {"starts_at": s.starts_at.isoformat(), "ends_at": s.ends_at.isoformat()}
                    for s in slots
                ],
            }
            for day, slots in free.items()
        ],
    }


async def agent_day(uow: UnitOfWork, agent_id: str, day: dt.date) -> dict[str, Any]:
    """The agent's booked appointments of `day` (Paris), by start time, with the citizens'
    names and the files' life events."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=PARIS).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=PARIS).astimezone(
        dt.UTC
    )
    async with uow:
        rows = (
            await uow.conn.execute(
                sa.select(appointments, files.c.life_event_label, files.c.citizen)
                .join(files, appointments.c.file_id == files.c.file_id)
                .where(
                    appointments.c.agent_id == agent_id,
                    appointments.c.status == BOOKED,
                    appointments.c.starts_at >= start,
                    appointments.c.starts_at < end,
                )
                .order_by(appointments.c.starts_at)
            )
        ).all()
        listed = []
        for r in rows:
            citizen = await citizen_of(uow, r)  # the row carries file_id and citizen
            listed.append(
                {
                    "appointment_id": r.appointment_id,
                    "file_id": r.file_id,
                    "starts_at": r.starts_at.isoformat(),
                    "ends_at": r.ends_at.isoformat(),
                    "life_event_label": r.life_event_label,
                    "citizen": {
                        "given_name": citizen.given_name,
                        "family_name": citizen.family_name,
                    },
                    "booked_by": r.booked_by,
                }
            )
    return {"agent_id": agent_id, "day": day.isoformat(), "appointments": listed}
