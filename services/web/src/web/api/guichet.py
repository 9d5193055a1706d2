"""The front desk's pages: a file for a citizen without digital access (at the counter, by
phone or by letter: the channel is said), then the printable receipt naming the référent.
The agent signed in registers it: intake records them from their token."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from guichet_runtime.auth.principal import Principal, Role
from guichet_runtime.policy import Policy
from web.api import filing
from web.api.deps import AgentVisitor, BackendClient, Render, Settings, page
from web.backend import Backend, BackendError

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/guichet", response_class=HTMLResponse)
async def counter_form(
    request: Request, backend: BackendClient, render: Render, visitor: AgentVisitor
) -> HTMLResponse:
    return await filing.new_file_form(
        request,
        backend,
        render,
        "counter_new.html",
        {"preferred_channel": "courrier", "channel": "guichet"},
        {"registered": await registered_files(backend, visitor)},
    )


async def registered_files(backend: Backend, visitor: Principal) -> list[dict] | None:
    """The files this front-desk agent registered (intake answers for the token's agent
    only); None when the agent is not at the front desk or the list is unavailable."""
    if not visitor.has_role(Role.GUICHET):
        return None
    try:
        return await backend.registered_files()
    except (BackendError, httpx.HTTPError) as unavailable:
        log.warning("registered files unavailable: %r", unavailable)
        return None


@router.post("/guichet", dependencies=[page(Policy.AGENT)])
async def counter_new(request: Request, backend: BackendClient, render: Render) -> Response:
    return await filing.submit(
        request, backend, render, "counter_new.html", "/guichet/recu/{file_id}"
    )


@router.get(
    "/guichet/recu/{file_id}", response_class=HTMLResponse, dependencies=[page(Policy.AGENT)]
)
async def receipt(
    request: Request, file_id: str, backend: BackendClient, render: Render, settings: Settings
) -> HTMLResponse:
    # The référent is named within moments: wait a little, so the receipt names them.
    deadline = time.monotonic() + settings.receipt_wait_seconds
    view = await backend.file_view(file_id)
    while not view.get("referent") and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        view = await backend.file_view(file_id)
    record = await backend.file_record(file_id)
    card = await filing.referent_card(backend, view)
    return render(request, "counter_receipt.html", {"file": view, "record": record, "card": card})
