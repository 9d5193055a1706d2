"""HTTP routes of intake (thin: validation, then a handler)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from guichet_runtime.service import Runtime
from shared_models import AGENCY_LABELS
from intake.catalogue import CATALOGUE
from intake import handlers
from intake.schemas import AccessCodeIn, FileCreated, FileIn, FileView, ReferentChangeIn


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix="/api")

    @api.get("/life-events")
    async def life_events() -> Any:
        """The life events a citizen can declare, with the agencies each one concerns."""
        return [
            {"code": e.code, "label": e.label, "agencies": [AGENCY_LABELS[a] for a in e.agencies]}
            for e in CATALOGUE.values()
        ]

    @api.post("/files", status_code=201, response_model=FileCreated)
    async def create_file(
        form: FileIn,
        idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
    ) -> Any:
        try:
            file_id, created = await handlers.submit_file(
                handlers.SubmitFile(form=form, idempotency_key=idempotency_key), runtime.uow()
            )
        except handlers.IdempotencyConflict:
            return JSONResponse(
                status_code=409,
                content={
                    "message": "Cette clé d'idempotence a déjà servi pour une autre demande.",
                    "errors": [{"field": "Idempotency-Key", "message": "Clé déjà utilisée."}],
                },
            )
        view = await handlers.file_view(runtime.uow(), file_id)
        assert view is not None
        body = jsonable_encoder({"file_id": file_id, "status": view["status"], "created_at": view["created_at"]})
        headers = {"Location": f"/api/files/{file_id}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(status_code=201, content=body, headers=headers)

    @api.post("/files/{file_id}/referent-change", status_code=202)
    async def referent_change(file_id: str, body: ReferentChangeIn) -> Any:
        """The citizen asks for another référent (once per file, without approval)."""
        try:
            await handlers.request_referent_change(file_id, body.reason, runtime.uow())
        except handlers.ChangeRefused as refused:
            return JSONResponse(status_code=refused.status, content={"message": refused.message})
        return {
            "message": "Votre demande est enregistrée : un nouveau référent vous sera présenté très vite, "
            "et tout votre dossier lui sera transmis."
        }

    @api.post("/files/{file_id}/access-codes", status_code=202)
    async def access_code(file_id: str) -> Any:
        """Send the citizen a one-time code to open their file online (no account needed)."""
        try:
            expires_at = await handlers.issue_access_code(file_id, runtime.uow())
        except handlers.AccessRefused as refused:
            return JSONResponse(status_code=refused.status, content={"message": refused.message})
        return {
            "message": "Un code vous a été envoyé par courriel à l'adresse enregistrée pour ce dossier.",
            "expires_at": expires_at,
        }

    @api.post("/files/{file_id}/access-codes/verify")
    async def verify_access_code(file_id: str, body: AccessCodeIn) -> Any:
        """Check a one-time code; a valid code opens the file once and is then spent."""
        try:
            await handlers.verify_access_code(file_id, body.code, runtime.uow())
        except handlers.AccessRefused as refused:
            return JSONResponse(status_code=refused.status, content={"message": refused.message})
        return {"file_id": file_id, "access": "accorde"}

    @api.get("/files/{file_id}/record")
    async def file_record(file_id: str) -> Any:
        """What the agents working the file read: the citizen's contact and own words.
        (Agents only: guarded by the agents' authentication when it lands.)"""
        record = await handlers.file_record(runtime.uow(), file_id)
        if record is None:
            return JSONResponse(
                status_code=404, content={"message": f"Aucun dossier ne porte la référence {file_id}."}
            )
        return record

    @api.get("/files/{file_id}", response_model=FileView)
    async def get_file(file_id: str) -> Any:
        view = await handlers.file_view(runtime.uow(), file_id)
        if view is None:
            return JSONResponse(
                status_code=404, content={"message": f"Aucun dossier ne porte la référence {file_id}."}
            )
        return view

    return api
