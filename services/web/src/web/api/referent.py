"""The référent's desk: the portfolio with the thanks received, a file's full view, messages
to the citizen and the personal word on the coordinated answer. The agent is the one signed
in (their token goes to the services, which decide); never a parameter."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Policy
from guichet_runtime.refusals import RefusalKind, Refused
from web.api.deps import AgentVisitor, BackendClient, Render, flash, page, redirect
from web.api.filing import appointments_of
from web.backend import Backend, BackendError

log = logging.getLogger(__name__)

router = APIRouter()

#: Why the desk reads the citizen's record (intake's audit trail).
DESK_REASON = "Traitement du dossier depuis l'espace référent"

NOT_IN_DIRECTORY = "Votre compte n'est rattaché à aucun agent de l'annuaire."

UNREACHABLE = (
    "Le service est momentanément indisponible : rien n'est encore envoyé. "
    "Votre texte est conservé ; réessayez dans un instant."
)


def agent_id_of(visitor: Principal) -> str:
    if not visitor.agent_id:
        raise Refused(RefusalKind.FORBIDDEN, NOT_IN_DIRECTORY)
    return visitor.agent_id


@router.get("/referent", response_class=HTMLResponse)
async def desk(
    request: Request,
    backend: BackendClient,
    render: Render,
    visitor: AgentVisitor,
) -> Response:
    agent = agent_id_of(visitor)
    portfolio, thanks, inbox = await asyncio.gather(
        backend.portfolio(agent),
        backend.agent_thanks(agent),
        backend.citizen_inbox(agent),
        return_exceptions=True,
    )
    if isinstance(portfolio, BaseException):
        raise portfolio
    if isinstance(thanks, BaseException):
        log.warning("thanks of %s unavailable: %r", agent, thanks)
        thanks = None
    if isinstance(inbox, BaseException):
        log.warning("inbox of %s unavailable: %r", agent, inbox)
        inbox = None
    return render(
        request,
        "referent_portfolio.html",
        {"portfolio": portfolio, "thanks": thanks, "inbox": inbox},
    )


@router.get("/referent/dossiers/{file_id}", response_class=HTMLResponse)
async def desk_file(
    request: Request,
    file_id: str,
    backend: BackendClient,
    render: Render,
    visitor: AgentVisitor,
) -> Response:
    view, record, assignment, sent, awaiting, thread, appointments = await asyncio.gather(
        backend.file_view(file_id),
        backend.file_record(file_id, DESK_REASON),
        backend.assignment_record(file_id),
        backend.messages_to_citizen(file_id),
        backend.file_stuck_requests(file_id),
        backend.file_thread(file_id),
        appointments_of(backend, file_id),
    )
    if assignment.get("referent_id") == visitor.agent_id:
        await mark_read(backend, file_id)
    values = request.session.pop("desk_values", {})
    values.setdefault("idempotency_key", str(uuid.uuid4()))
    return render(
        request,
        "referent_file.html",
        {
            "file": view,
            "record": record,
            "assignment": assignment,
            "agent": visitor.agent_id,
            "messages": sent,
            "from_citizen": [m for m in thread if m["from"] == "citoyen"],
            "appointments": appointments,
            "stuck": {r["agency"]: r for r in awaiting["requests"] if r["stuck"]},
            "values": values,
            "errors": request.session.pop("desk_errors", {}),
        },
    )


async def mark_read(backend: Backend, file_id: str) -> None:
    """The référent opened the file: the citizen's messages shown are read (their inbox);
    the page shows anyway if assignment cannot be told now."""
    try:
        await backend.mark_citizen_messages_read(file_id)
    except (BackendError, httpx.HTTPError) as failed:
        log.warning("messages of %s not marked read: %r", file_id, failed)


async def desk_action(
    request: Request,
    file_id: str,
    field: str,
    anchor: str,
    action: Callable[[], Awaitable[dict]],
    kept: dict[str, str],
) -> Response:
    """Run a desk action; on refusal the French message goes next to `field` and what
    was typed comes back (through the session, as the page is redirected to)."""
    back = redirect(f"/referent/dossiers/{file_id}#{anchor}")
    try:
        done = await action()
    except BackendError as refused:
        if refused.status not in (403, 404, 409, 422):
            raise
        message = refused.errors[0]["message"] if refused.errors else refused.message
        request.session["desk_values"], request.session["desk_errors"] = kept, {field: message}
        return back
    except httpx.HTTPError as unreachable:
        log.warning("backend unreachable from the desk: %r", unreachable)
        request.session["desk_values"], request.session["desk_errors"] = kept, {field: UNREACHABLE}
        return back
    flash(request, done["message"])
    return back


@router.post("/referent/dossiers/{file_id}/mot", dependencies=[page(Policy.AGENT)])
async def personal_word(request: Request, file_id: str, backend: BackendClient) -> Response:
    text = str((await request.form()).get("personal_word", ""))
    return await desk_action(
        request,
        file_id,
        "personal_word",
        "mot-personnel",
        lambda: backend.add_personal_word(file_id, text),
        {"personal_word": text},
    )


@router.post("/referent/dossiers/{file_id}/messages", dependencies=[page(Policy.AGENT)])
async def message_to_citizen(request: Request, file_id: str, backend: BackendClient) -> Response:
    form = await request.form()
    text, key = str(form.get("message", "")), str(form.get("idempotency_key") or uuid.uuid4())

    async def send() -> dict:
        await backend.send_message_to_citizen(file_id, text, key)
        return {"message": "Votre message est envoyé à l'usager par son moyen de contact préféré."}

    # The key is kept with the text: sending again after a failure cannot send twice.
    return await desk_action(
        request, file_id, "message", "messages", send, {"message": text, "idempotency_key": key}
    )
