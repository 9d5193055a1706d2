"""What the citizen's and the front desk's pages share: the new-file form (sent to intake,
refused fields back next to what was typed) and the référent's card."""

from __future__ import annotations

import logging
import uuid

import httpx
from fastapi import Request, Response
from fastapi.responses import HTMLResponse

from web import forms
from web.api.deps import redirect
from web.backend import Backend, BackendError
from web.pages import Renderer

log = logging.getLogger(__name__)

UNREACHABLE = (
    "Le service est momentanément indisponible : la déclaration n'est pas encore "
    "envoyée. Vos informations sont conservées ci-dessous ; réessayez dans un instant."
)


def file_form(
    request: Request,
    render: Renderer,
    template: str,
    values: dict,
    errors: dict,
    events: list[dict],
    key: str,
    status: int = 200,
    extra: dict | None = None,
) -> HTMLResponse:
    """The new-file form, the life events offered with the agencies each one concerns
    (`extra`: what else the page shows)."""
    options = [
        (e["code"], e["label"], "Organismes concernés : " + ", ".join(e["agencies"]))
        for e in events
    ]
    return render(
        request,
        template,
        {
            "values": values,
            "errors": errors,
            "life_event_options": options,
            "idempotency_key": key,
            **(extra or {}),
        },
        status_code=status,
    )


async def new_file_form(
    request: Request,
    backend: Backend,
    render: Renderer,
    template: str,
    values: dict[str, str],
    extra: dict | None = None,
) -> HTMLResponse:
    events = await backend.life_events()
    return file_form(request, render, template, values, {}, events, str(uuid.uuid4()), extra=extra)


async def submit(
    request: Request, backend: Backend, render: Renderer, template: str, on_success: str
) -> Response:
    """Send the new-file form to intake; `on_success` names the page to redirect to."""
    form = await request.form()
    values = forms.typed(form, forms.FILE_FIELDS)
    values["urgent"] = "oui" if form.get("urgent") else ""
    key = str(form.get("idempotency_key") or uuid.uuid4())
    try:
        created = await backend.submit_file(forms.file_body(values, bool(values["urgent"])), key)
    except BackendError as refused:
        if refused.status != 422:
            raise
        errors = forms.file_errors(refused.errors, values)
        return file_form(
            request, render, template, values, errors, await backend.life_events(), key, status=422
        )
    except httpx.HTTPError as unreachable:
        # Keep what was typed; the same Idempotency-Key makes sending again safe.
        log.warning("intake unreachable: %r", unreachable)
        try:
            events = await backend.life_events()
        except httpx.HTTPError:
            events = []
        return file_form(
            request, render, template, values, {"form": UNREACHABLE}, events, key, status=503
        )
    return redirect(on_success.format(file_id=created["file_id"]))


async def referent_card(backend: Backend, view: dict) -> dict | None:
    """The référent's card as assignment knows it today, else the file's copy of it."""
    referent = view.get("referent")
    if not referent:
        return None
    card = {
        "name": referent["name"],
        "phone": referent["phone"],
        "email": referent["email"],
        "office": {"name": referent["office"]},
    }
    if referent.get("agent_id"):
        try:
            card = await backend.agent_card(referent["agent_id"])
        except BackendError:
            log.warning(
                "agent card of %s unavailable; showing the file's copy", referent["agent_id"]
            )
    return card


async def appointments_of(backend: Backend, file_id: str) -> dict | None:
    """The file's appointments with its référent (assignment); None when they cannot be
    had now: the page shows without them, saying so."""
    try:
        return await backend.file_appointments(file_id)
    except (BackendError, httpx.HTTPError) as failed:
        log.warning("appointments of %s unavailable: %r", file_id, failed)
        return None
