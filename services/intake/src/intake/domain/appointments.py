"""The citizen's appointments with their référent, as the file's timeline tells them (issue
16 §3). Pure wording, no I/O; times in Paris, in words (`shared_models.wording`)."""

from __future__ import annotations

import datetime as dt

from shared_models import Appointment, AppointmentSide, Referent
from shared_models.wording import moment_fr


def _agent(agent_id: str | None, referent: Referent) -> str:
    """The agent who acted, as the citizen knows them."""
    return "votre référent" if agent_id == referent.agent_id else "un agent de France Services"


def booked_sentence(
    appointment: Appointment,
    referent: Referent,
    side: AppointmentSide,
    agent_id: str | None,
    rescheduled_from: dt.datetime | None,
) -> str:
    """A booking, or a move (a new appointment replacing the one at `rescheduled_from`);
    an agent who booked for the citizen is named."""
    when = moment_fr(appointment.starts_at)
    where = f"{referent.office} ({appointment.office_address})"
    by = "" if side is AppointmentSide.CITIZEN else f", par {_agent(agent_id, referent)}"
    if rescheduled_from is None:
        return f"Rendez-vous pris avec {referent.name} le {when}, {where}{by}."
    return (
        f"Rendez-vous avec {referent.name} déplacé du {moment_fr(rescheduled_from)} "
        f"au {when}, {where}{by} ; l'ancien créneau est libéré."
    )


def cancelled_sentence(
    appointment: Appointment,
    referent: Referent,
    side: AppointmentSide,
    agent_id: str | None,
    reason: str | None,
) -> str:
    """A cancellation: who cancelled, and why when a reason was given."""
    by = (
        "à votre demande"
        if side is AppointmentSide.CITIZEN
        else f"par {_agent(agent_id, referent)}"
    )
    return (
        f"Rendez-vous du {moment_fr(appointment.starts_at)} avec {referent.name} annulé {by}."
        + (f" Motif : {reason}" if reason else "")
    )
