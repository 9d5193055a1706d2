"""Appointments with the référent: the free slots, booking, moving and cancelling (the
file's citizen or one of its agents: FILE_APPOINTMENTS), and the référent's day."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from fastapi import APIRouter, Query, Request

from assignment import appointment_views, views
from assignment.api.access import Access
from assignment.commands import appointments, audits
from assignment.schemas import CancellationIn, SlotIn
from guichet_runtime import audit
from guichet_runtime.auth.principal import Principal, PrincipalKind, Role
from guichet_runtime.file_citizen import FileCitizenCheck
from guichet_runtime.policy import Facts, Policy, Subject, answers_a_call, requires
from guichet_runtime.service import Runtime


def file_party(access: Access, check: FileCitizenCheck) -> Facts:
    """An agent: the file's parties from assignment's tables (and, for a front-desk agent,
    their own office: the front desk of the référent's office answers the citizen's calls);
    anyone else: whether intake recognises them as the file's citizen (logged in, or with
    the file's proof), its refusal passed on (guichet_runtime.file_citizen)."""
    from_tables = access.file()

    async def facts(request: Request, principal: Principal) -> Subject:
        if principal.kind is not PrincipalKind.AGENT:
            return await check.subject(request.path_params["file_id"], request, principal)
        subject = await from_tables(request, principal)
        if principal.has_role(Role.GUICHET) and principal.agent_id and subject.exists:
            caller = await views.agent_subject(access.runtime.uow(), principal.agent_id)
            if caller is not None:
                subject = dataclasses.replace(subject, caller_office=caller.agent_office)
        return subject

    return facts


def stated_reason(request: Request, who: Principal, given: str | None) -> str | None:
    """Why the caller acts, for the audit trail: required (422, `access_reason`) from a
    front-desk agent let in only as the front desk of the référent's office
    (`policy.answers_a_call`); optional from anyone else."""
    if answers_a_call(who, request.state.subject):
        return audit.reason_given(given, "access_reason")
    return (given or "").strip() or None


def appointments_router(
    runtime: Runtime, cal: appointments.Calendar, check: FileCitizenCheck
) -> APIRouter:
    """`check` asks intake whether a caller who is not an agent is the file's citizen."""
    api = APIRouter(prefix="/api")
    access = Access(runtime)
    party = requires(Policy.FILE_APPOINTMENTS, file_party(access, check))
    agent_self = requires(Policy.AGENT_SELF, access.agent())

    @api.get("/files/{file_id}/appointments")
    async def file_appointments(request: Request, file_id: str, who: Principal = party) -> Any:
        """The file's référent (name, office, address, direct line), the citizen's name, its
        upcoming appointment and all its appointments, newest first (read by the front desk
        of the référent's office: recorded in the audit trail)."""
        on_call = answers_a_call(who, request.state.subject)
        return await audits.read_file_appointments(runtime.uow(), file_id, cal.now(), who, on_call)

    @api.get("/files/{file_id}/appointments/slots")
    async def free_slots(
        file_id: str,
        first: dt.date | None = Query(default=None, alias="from"),
        days: int = Query(default=14, ge=1, le=appointment_views.MAX_DAYS),
        who: Principal = party,
    ) -> Any:
        """The référent's free slots per day, from `from` (default tomorrow) for `days`
        days within the booking window: office hours, minus public holidays, the référent's
        absences and the slots taken."""
        return await appointment_views.free_slots(runtime.uow(), file_id, cal, first, days)

    @api.post("/files/{file_id}/appointments", status_code=201)
    async def book(request: Request, file_id: str, body: SlotIn, who: Principal = party) -> Any:
        """Book a free slot with the file's référent (409: taken meanwhile, or one already
        booked; 422: not an offered slot, or a front-desk agent's reason missing)."""
        stated = stated_reason(request, who, body.access_reason)
        return await appointments.book(runtime.uow(), file_id, body.starts_at, who, cal, stated)

    @api.post("/files/{file_id}/appointments/{appointment_id}/move")
    async def move(
        request: Request, file_id: str, appointment_id: str, body: SlotIn, who: Principal = party
    ) -> Any:
        """Move a booked appointment to another free slot (the former one is freed)."""
        stated = stated_reason(request, who, body.access_reason)
        return await appointments.move(
            runtime.uow(), file_id, appointment_id, body.starts_at, who, cal, stated
        )

    @api.post("/files/{file_id}/appointments/{appointment_id}/cancel")
    async def cancel(
        request: Request,
        file_id: str,
        appointment_id: str,
        body: CancellationIn,
        who: Principal = party,
    ) -> Any:
        """Cancel a booked appointment; the citizen is told."""
        stated = stated_reason(request, who, body.access_reason)
        return await appointments.cancel(
            runtime.uow(), file_id, appointment_id, body.reason, who, cal.now(), stated
        )

    @api.get("/agents/{agent_id}/appointments")
    async def agent_day(
        agent_id: str, day: dt.date | None = Query(default=None), who: Principal = agent_self
    ) -> Any:
        """The agent's booked appointments of `day` (default today, Paris), by start time
        (the citizens' names: the reading is in the audit trail)."""
        return await audits.read_agent_day(runtime.uow(), agent_id, day or cal.today(), who)

    return api
