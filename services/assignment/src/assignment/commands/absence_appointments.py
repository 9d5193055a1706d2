"""An absence declared after a booking (issue 16 §3): the absent référent's appointments on
the days of the absence are cancelled in the transaction of the absence, as a cancellation
by the agents' side whose reason the citizen reads ("Marie Dupont sera absent(e) du 3 au 7
mars 2027."), each with its `AppointmentCancelled` in the outbox. Which appointments an
absence covers is `scheduling.absence_cancels`.

Called when the absence is declared (planned or starting now) and again when it starts
(`directory.apply_due_absences`): an appointment booked at the very moment of the
declaration, before the absence was committed, is caught then. Idempotent: only a row still
booked is cancelled (a conditional update), so a second pass finds nothing to do and the
citizen is told once.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from assignment import scheduling
from assignment.commands.appointments import BOOKED, cancel_booked, file_row
from assignment.referents import referent_of
from assignment.tables import appointments
from guichet_runtime.auth.principal import Principal, PrincipalKind
from guichet_runtime.db import UnitOfWork
from shared_models import AbsenceCancellation, AppointmentSide


async def cancel_appointments_during_absence(
    uow: UnitOfWork,
    agent_id: str,
    agent_name: str,
    starts_on: dt.date,
    ends_on: dt.date,
    now: dt.datetime,
    by: Principal | None = None,
) -> int:
    """Cancel the agent's booked appointments the absence covers; how many were. The caller
    commits (with the absence). The citizen may book again with the file's référent as it
    is now: the cover once the absence has started, else the absent agent on another day."""
    since, until = scheduling.absence_window(starts_on, ends_on)
    found = (
        await uow.conn.execute(
            sa.select(appointments)
            .where(
                appointments.c.agent_id == agent_id,
                appointments.c.status == BOOKED,
                appointments.c.starts_at >= since,
                appointments.c.starts_at < until,
            )
            .order_by(appointments.c.starts_at)
        )
    ).all()
    reason = scheduling.absence_reason(agent_name, starts_on, ends_on)
    by_agent = by.agent_id if by is not None and by.kind is PrincipalKind.AGENT else None
    cancelled = 0
    for row in found:
        if not scheduling.absence_cancels(row.starts_at, starts_on, ends_on, now):
            continue
        file = await file_row(uow, row.file_id)
        again_with = await referent_of(uow, file.referent_id) if file.referent_id else None
        absence = AbsenceCancellation(
            starts_on=starts_on, ends_on=ends_on, book_again_with=again_with
        )
        if not await cancel_booked(
            uow, file, row, AppointmentSide.AGENT, by_agent, reason, absence
        ):
            continue  # cancelled or moved meanwhile
        cancelled += 1
    return cancelled
