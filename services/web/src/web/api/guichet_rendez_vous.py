"""The front desk answering a citizen's call books their appointment with the référent
(issue 16 §3): from the counter page, the file's reference leads to the slots page, which
names the citizen and shows the référent's free slots; the agent books, moves or cancels
there, and says why each time (assignment keeps the reason in its audit trail). Assignment
decides who may: the front desk of the référent's office (FILE_APPOINTMENTS); the page sees
nothing else of the file."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from guichet_runtime.policy import Policy
from web.api.deps import BackendClient, Render, flash, page, redirect
from web.api.rendez_vous import Side, book_or_move, cancel_call, day_of, slots_page
from web.backend import BackendError

router = APIRouter()

#: A file's reference as typed (letters, digits and dashes: GU-2026-AB12CD34).
REFERENCE = re.compile(r"[A-Z0-9-]{4,40}")
ASK_REFERENCE = "Indiquez la référence du dossier, par exemple GU-2026-AB12CD34."


def front_desk_side(file_id: str) -> Side:
    return Side(f"/guichet/dossiers/{file_id}", for_agent=True, front_desk=True)


@router.get("/guichet/rendez-vous", dependencies=[page(Policy.AGENT)])
async def find_file(request: Request, dossier: str = "") -> Response:
    """The reference the caller reads out: to the file's slots page."""
    reference = dossier.strip().upper()
    if not REFERENCE.fullmatch(reference):
        flash(request, ASK_REFERENCE, kind="warning")
        return redirect("/guichet#rendez-vous-telephone")
    return redirect(f"/guichet/dossiers/{reference}/rendez-vous")


@router.get(
    "/guichet/dossiers/{file_id}/rendez-vous",
    response_class=HTMLResponse,
    dependencies=[page(Policy.AGENT)],
)
async def slots(
    request: Request, file_id: str, backend: BackendClient, render: Render, du: str = ""
) -> HTMLResponse:
    side = front_desk_side(file_id)
    return await slots_page(request, backend, render, file_id, side, day_of(du))


@router.post("/guichet/dossiers/{file_id}/rendez-vous", dependencies=[page(Policy.AGENT)])
async def book(request: Request, file_id: str, backend: BackendClient, render: Render) -> Response:
    return await book_or_move(request, backend, render, file_id, front_desk_side(file_id), None)


@router.post(
    "/guichet/dossiers/{file_id}/rendez-vous/{appointment_id}/deplacer",
    dependencies=[page(Policy.AGENT)],
)
async def move(
    request: Request, file_id: str, appointment_id: str, backend: BackendClient, render: Render
) -> Response:
    side = front_desk_side(file_id)
    return await book_or_move(request, backend, render, file_id, side, appointment_id)


@router.post(
    "/guichet/dossiers/{file_id}/rendez-vous/{appointment_id}/annuler",
    dependencies=[page(Policy.AGENT)],
)
async def cancel(
    request: Request, file_id: str, appointment_id: str, backend: BackendClient, render: Render
) -> Response:
    """Cancel, saying why; a refusal comes back on the slots page next to its field."""
    form = await request.form()
    values = {
        "cancel_reason": str(form.get("cancel_reason", "")),
        "cancel_access_reason": str(form.get("cancel_access_reason", "")),
    }
    side = front_desk_side(file_id)
    call = cancel_call(
        backend,
        file_id,
        appointment_id,
        values["cancel_reason"],
        side,
        values["cancel_access_reason"],
    )
    try:
        done = await call()
    except BackendError as refused:
        if refused.status not in (409, 422):
            raise
        field = "cancel_access_reason" if refused.field == "access_reason" else "cancel_reason"
        message = refused.errors[0]["message"]
        return await slots_page(
            request,
            backend,
            render,
            file_id,
            side,
            status=refused.status,
            errors={field: message},
            values=values,
        )
    flash(request, done["message"])
    return redirect(side.home)
