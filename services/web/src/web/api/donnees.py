"""The citizen's GDPR pages: "Mes données" (everything held about them, as JSON and as a
PDF), the erasure of a closed file, and the privacy notice. Intake decides on what is
forwarded (the citizen's token, or the proof of the file's code) and records each export;
assignment's and notification's parts are gathered with it (web.export_parts)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Policy
from web.api.citoyen import NOT_YOURS, Page
from web.api.deps import BackendClient, Render, flash, page, redirect
from web.backend import BackendError
from web.export_parts import gathered
from web.export_pdf import render_export

router = APIRouter()

ERASURE_NOT_CONFIRMED = (
    "Cochez la case pour confirmer l'effacement : il est définitif, vos données ne pourront pas "
    "être retrouvées."
)
ERASURE_DONE = (
    "Les données personnelles de votre dossier sont effacées. Seules des informations anonymes "
    "sont conservées pour les statistiques publiques, avec le journal d'audit prévu par la loi."
)


async def download(export: dict, kind: str, name: str) -> Response:
    """The export as a file the browser saves (JSON as served, or the PDF made from it). The
    PDF is laid out in a worker thread: a citizen with many files takes seconds of fpdf, and
    the pages of everyone else are served meanwhile."""
    if kind == "pdf":
        body, media = await run_in_threadpool(render_export, export), "application/pdf"
    else:
        text = json.dumps(export, ensure_ascii=False, indent=2)
        body, media = text.encode("utf-8"), "application/json; charset=utf-8"
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{name}.{kind}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/confidentialite", response_class=HTMLResponse, dependencies=[page(Policy.PUBLIC)])
async def privacy_notice(request: Request, render: Render) -> HTMLResponse:
    """The privacy notice (RGPD art. 13)."""
    return render(request, "privacy.html", {})


@router.get("/mes-donnees", response_class=HTMLResponse)
async def my_data(
    request: Request,
    render: Render,
    visitor: Annotated[Principal, page(Policy.CITIZEN)],
) -> HTMLResponse:
    """The page "Mes données": what the signed-in citizen may download."""
    return render(request, "citizen_data.html", {})


@router.get("/mes-donnees.json")
async def my_data_json(
    backend: BackendClient, visitor: Annotated[Principal, page(Policy.CITIZEN)]
) -> Response:
    return await download(await gathered(backend, await backend.my_export()), "json", "mes-donnees")


@router.get("/mes-donnees.pdf")
async def my_data_pdf(
    backend: BackendClient, visitor: Annotated[Principal, page(Policy.CITIZEN)]
) -> Response:
    return await download(await gathered(backend, await backend.my_export()), "pdf", "mes-donnees")


@router.get("/dossier/{file_id}/mes-donnees.{kind}", dependencies=[page(Policy.FILE_CITIZEN)])
async def file_data(file_id: str, kind: str, file: Page) -> Response:
    """One file's data, for its citizen (signed in, or holding the code's proof)."""
    if kind not in ("json", "pdf"):
        return redirect(f"/dossier/{file_id}")
    if not file.opened:
        return file.ask_code()
    try:
        export = await file.backend.file_export(file_id)
    except BackendError as refused:
        if refused.status not in (401, 403):
            raise
        return file.ask_code_again(NOT_YOURS if refused.status == 403 else refused.message)
    return await download(await gathered(file.backend, export), kind, f"mes-donnees-{file_id}")


@router.post("/dossier/{file_id}/effacement", dependencies=[page(Policy.FILE_CITIZEN)])
async def erase(request: Request, file_id: str, file: Page) -> Response:
    """The citizen asks for their closed file's data to be erased; refused with the reason
    while it is being processed."""
    if not file.opened:
        return file.ask_code()
    if (await request.form()).get("confirm") != "oui":
        flash(request, ERASURE_NOT_CONFIRMED, kind="warning")
        return redirect(f"/dossier/{file_id}#mes-donnees")
    try:
        await file.backend.erase_file(file_id)
    except BackendError as refused:
        if refused.status in (401, 403):
            return file.ask_code_again(NOT_YOURS if refused.status == 403 else refused.message)
        if refused.status != 409:
            raise
        flash(request, refused.message, kind="warning")
        return redirect(f"/dossier/{file_id}#mes-donnees")
    for held in ("files", "proofs"):
        request.session[held] = {
            k: v for k, v in request.session.get(held, {}).items() if k != file_id
        }
    flash(request, ERASURE_DONE)
    return redirect("/")
