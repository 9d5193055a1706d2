"""Appointments with the référent (issue 16 §3) on the pages: the citizen books, moves or
cancels one from their file page; the référent does the same for the citizen (on the phone)
from the file's page on the desk, and sees their day; the front desk answering a citizen's
call does it from the slots page itself (web.api.guichet_rendez_vous), stating why.
Assignment decides who may and keeps slots from being booked twice: a refusal (a slot just
taken, one no longer offered) comes back on the slots page in its own French words, nothing
booked."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from guichet_runtime.policy import Policy
from web import forms
from web.api.citoyen import Page
from web.api.deps import AgentVisitor, BackendClient, Render, flash, page, redirect
from web.api.referent import agent_id_of, desk_action
from web.backend import Backend, BackendError
from web.pages import Renderer, when_fr

router = APIRouter()

CHOOSE = "Choisissez un créneau parmi ceux proposés."


@dataclass(frozen=True)
class Side:
    """Who books on the page: the citizen from their file, an agent from the desk, or the
    front desk on the phone (no file page: the slots page is theirs, and each action states
    why, for the audit trail)."""

    base: str  # the file's page, under which the appointment's forms post
    for_agent: bool
    front_desk: bool = False

    @property
    def home(self) -> str:
        """Where a done booking, move or cancellation leads (its confirmation shown there)."""
        return f"{self.base}/rendez-vous" if self.front_desk else f"{self.base}#rendez-vous"


def citizen_side(file_id: str) -> Side:
    return Side(f"/dossier/{file_id}", for_agent=False)


def agent_side(file_id: str) -> Side:
    return Side(f"/referent/dossiers/{file_id}", for_agent=True)


def day_of(text: str | None) -> dt.date | None:
    """A day typed in a link (AAAA-MM-JJ); anything else is no day (the default one)."""
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


async def slots_page(
    request: Request,
    backend: Backend,
    render: Renderer,
    file_id: str,
    side: Side,
    start: dt.date | None = None,
    error: str | None = None,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    """The référent's free slots, one fieldset per day; the form books one, or moves the
    file's upcoming appointment there. After a refusal: the slots as they are now, with
    the message (`error` next to the slots, or `errors` by field) and what was typed."""
    booked, offered = await asyncio.gather(
        backend.file_appointments(file_id), backend.appointment_slots(file_id, start)
    )
    days = offered["days"]
    later = dt.date.fromisoformat(days[-1]["day"]) + dt.timedelta(days=1) if days else None
    return render(
        request,
        "appointment_slots.html",
        {
            "file_id": file_id,
            "side": side,
            "referent": offered.get("referent") or booked.get("referent"),
            "citizen": booked.get("citizen"),
            "upcoming": booked.get("upcoming"),
            "slot_minutes": offered.get("slot_minutes"),
            "days": days,
            "message": offered.get("message"),  # why none is offered, when assignment says
            "later": later,
            "from_start": start is not None,
            "errors": {"starts_at": error} if error else (errors or {}),
            "values": values or {},
        },
        status_code=status,
    )


def booked_message(done: dict, side: Side, moved: bool) -> str:
    when = when_fr(done["starts_at"])
    where = f"avec {done['referent_name']}, {done['office_address']}"
    if side.for_agent:
        verb = "déplacé au" if moved else "réservé pour l'usager le"
        return f"Rendez-vous {verb} {when}, {where}. L'usager en reçoit la confirmation."
    verb = "déplacé au" if moved else "réservé le"
    return f"Votre rendez-vous est {verb} {when}, {where}. Une confirmation vous est envoyée."


async def book_or_move(
    request: Request,
    backend: Backend,
    render: Renderer,
    file_id: str,
    side: Side,
    appointment_id: str | None,
) -> Response:
    """Book the chosen slot (or move the appointment there); a refusal comes back on the
    slots page, nothing booked nor moved (the front desk's reason kept)."""
    form = await request.form()
    starts_at = str(form.get("starts_at", "") or "")
    # The front desk says why it acts (the audit trail's); the others need not.
    stated = {"access_reason": str(form.get("access_reason", ""))} if side.front_desk else {}
    if not starts_at:
        return await slots_page(
            request, backend, render, file_id, side, None, CHOOSE, 422, values=stated
        )
    try:
        if appointment_id is None:
            done = await backend.book_appointment(file_id, starts_at, **stated)
        else:
            done = await backend.move_appointment(file_id, appointment_id, starts_at, **stated)
    except BackendError as refused:
        if refused.status not in (409, 422):
            raise
        message = refused.errors[0]["message"] if refused.errors else refused.message
        field = "access_reason" if refused.field == "access_reason" else "starts_at"
        return await slots_page(
            request,
            backend,
            render,
            file_id,
            side,
            status=refused.status,
            errors={field: message},
            values=stated,
        )
    flash(request, booked_message(done, side, moved=appointment_id is not None))
    return redirect(side.home)


def cancel_call(
    backend: Backend,
    file_id: str,
    appointment_id: str,
    reason: str,
    side: Side,
    access_reason: str = "",
) -> Callable[[], Awaitable[dict]]:
    """Cancel the appointment; a refusal names the reason's field (the one on the form).
    The front desk also says why it acts (`access_reason`, for the audit trail)."""
    stated = {"access_reason": access_reason} if side.front_desk else {}

    async def cancel() -> dict:
        try:
            done = await backend.cancel_appointment(
                file_id, appointment_id, reason.strip() or None, **stated
            )
        except BackendError as refused:
            message = refused.errors[0]["message"] if refused.errors else refused.message
            refused.errors = [{"field": "cancel_reason", "message": message}]
            raise
        when = when_fr(done["starts_at"])
        if side.for_agent:
            return {"message": f"Le rendez-vous du {when} est annulé. L'usager en est informé."}
        return {"message": f"Votre rendez-vous du {when} est annulé."}

    return cancel


# -- the citizen ----------------------------------------------------------------------------


@router.get(
    "/dossier/{file_id}/rendez-vous",
    response_class=HTMLResponse,
    dependencies=[page(Policy.FILE_CITIZEN)],
)
async def citizen_slots(file_id: str, file: Page, du: str = "") -> Response:
    if not file.opened:
        return file.ask_code()
    return await slots_page(
        file.request, file.backend, file.render, file_id, citizen_side(file_id), day_of(du)
    )


@router.post("/dossier/{file_id}/rendez-vous", dependencies=[page(Policy.FILE_CITIZEN)])
async def citizen_book(file_id: str, file: Page) -> Response:
    if not file.opened:
        return file.ask_code()
    side = citizen_side(file_id)
    return await book_or_move(file.request, file.backend, file.render, file_id, side, None)


@router.post(
    "/dossier/{file_id}/rendez-vous/{appointment_id}/deplacer",
    dependencies=[page(Policy.FILE_CITIZEN)],
)
async def citizen_move(file_id: str, appointment_id: str, file: Page) -> Response:
    if not file.opened:
        return file.ask_code()
    side = citizen_side(file_id)
    return await book_or_move(
        file.request, file.backend, file.render, file_id, side, appointment_id
    )


@router.post(
    "/dossier/{file_id}/rendez-vous/{appointment_id}/annuler",
    dependencies=[page(Policy.FILE_CITIZEN)],
)
async def citizen_cancel(file_id: str, appointment_id: str, file: Page) -> Response:
    if not file.opened:
        return file.ask_code()
    values = forms.typed(await file.request.form(), ("cancel_reason",))
    call = cancel_call(
        file.backend, file_id, appointment_id, values["cancel_reason"], citizen_side(file_id)
    )
    return await file.act(call, values, ("cancel_reason",))


# -- the référent's desk --------------------------------------------------------------------


@router.get("/referent/rendez-vous", response_class=HTMLResponse)
async def day_view(
    request: Request,
    backend: BackendClient,
    render: Render,
    visitor: AgentVisitor,
    jour: str = "",
) -> HTMLResponse:
    """The agent's booked appointments of a day (assignment's today by default), by time."""
    agenda = await backend.agent_appointments(agent_id_of(visitor), day_of(jour))
    day = dt.date.fromisoformat(agenda["day"])
    return render(
        request,
        "referent_day.html",
        {
            "day": day,
            "before": day - dt.timedelta(days=1),
            "after": day + dt.timedelta(days=1),
            "appointments": agenda["appointments"],
        },
    )


@router.get(
    "/referent/dossiers/{file_id}/rendez-vous",
    response_class=HTMLResponse,
    dependencies=[page(Policy.AGENT)],
)
async def desk_slots(
    request: Request, file_id: str, backend: BackendClient, render: Render, du: str = ""
) -> HTMLResponse:
    return await slots_page(request, backend, render, file_id, agent_side(file_id), day_of(du))


@router.post("/referent/dossiers/{file_id}/rendez-vous", dependencies=[page(Policy.AGENT)])
async def desk_book(
    request: Request, file_id: str, backend: BackendClient, render: Render
) -> Response:
    return await book_or_move(request, backend, render, file_id, agent_side(file_id), None)


@router.post(
    "/referent/dossiers/{file_id}/rendez-vous/{appointment_id}/deplacer",
    dependencies=[page(Policy.AGENT)],
)
async def desk_move(
    request: Request, file_id: str, appointment_id: str, backend: BackendClient, render: Render
) -> Response:
    side = agent_side(file_id)
    return await book_or_move(request, backend, render, file_id, side, appointment_id)


@router.post(
    "/referent/dossiers/{file_id}/rendez-vous/{appointment_id}/annuler",
    dependencies=[page(Policy.AGENT)],
)
async def desk_cancel(
    request: Request, file_id: str, appointment_id: str, backend: BackendClient
) -> Response:
    reason = str((await request.form()).get("cancel_reason", "") or "")
    call = cancel_call(backend, file_id, appointment_id, reason, agent_side(file_id))
    return await desk_action(
        request, file_id, "cancel_reason", "rendez-vous", call, {"cancel_reason": reason}
    )
