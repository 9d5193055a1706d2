"""HTTP routes of intake (thin: validation, then a handler)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from fastapi import APIRouter, File, Form, Header, Query, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from guichet_runtime.service import Runtime
from shared_models import AGENCY_LABELS
from intake.catalogue import CATALOGUE
from intake import handlers, indicators
from intake.schemas import (
    AccessCodeIn, AgentThanks, ContactIn, DocumentCreated, FileCreated, FileIn, FileView, Indicators, MessageIn,
    MessageOut, ReferentChangeIn, SurveyIn, ThanksIn,
)


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

    @api.put("/files/{file_id}/contact-preferences")
    async def contact_preferences(file_id: str, body: ContactIn) -> Any:
        """The citizen changes their channel or contact details; later messages follow."""
        try:
            citizen = await handlers.change_contact_preferences(file_id, body, runtime.uow())
        except handlers.ChangeRefused as refused:
            return JSONResponse(status_code=refused.status, content={"message": refused.message})
        return {
            "message": "Vos préférences de contact sont enregistrées.",
            "contact": citizen.model_dump(mode="json", exclude={"given_name", "family_name"}),
        }

    @api.post("/files/{file_id}/survey", status_code=201)
    async def survey(file_id: str, body: SurveyIn) -> Any:
        """The satisfaction survey sent with the coordinated answer (once per file)."""
        try:
            await handlers.answer_survey(file_id, body, runtime.uow())
        except handlers.ChangeRefused as refused:
            return JSONResponse(status_code=refused.status, content={"message": refused.message})
        return {"message": "Merci pour votre avis : il nous aide à mieux vous servir."}

    @api.post("/files/{file_id}/thanks", status_code=201)
    async def thank(file_id: str, body: ThanksIn) -> Any:
        """The citizen thanks their référent by name."""
        try:
            name = await handlers.thank_referent(file_id, body.message, runtime.uow())
        except handlers.ChangeRefused as refused:
            return JSONResponse(status_code=refused.status, content={"message": refused.message})
        return {"message": f"Merci ! Votre message est transmis à {name}."}

    @api.get("/agents/{agent_id}/thanks", response_model=AgentThanks)
    async def agent_thanks(agent_id: str) -> Any:
        """The thanks a référent received, newest first (their agent space shows them)."""
        return await handlers.thanks_for_agent(runtime.uow(), agent_id)

    @api.post("/files/{file_id}/documents", status_code=201, response_model=DocumentCreated)
    async def upload_document(
        file_id: str,
        fichier: UploadFile = File(..., description="La pièce : PDF, JPEG ou PNG, 512 Ko au plus."),
        agency: str | None = Form(default=None, description="Organisme destinataire, si plusieurs attendent une pièce."),
    ) -> Any:
        """The citizen (or the counter, for them) sends the supporting document an agency asked for."""
        content = await fichier.read(handlers.MAX_DOCUMENT_BYTES + 1)
        try:
            document_id, to = await handlers.submit_document(
                file_id, agency, fichier.filename or "piece", fichier.content_type, content, runtime.uow()
            )
        except handlers.DocumentRefused as refused:
            return JSONResponse(
                status_code=refused.status,
                content={"message": refused.message, "errors": [{"field": refused.field, "message": refused.message}]},
            )
        return {
            "document_id": document_id,
            "agency": to,
            "message": "Pièce reçue : elle est transmise à l'organisme, qui reprend l'examen de votre demande.",
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

    @api.post("/files/{file_id}/messages", status_code=201, response_model=MessageOut)
    async def write_to_citizen(
        file_id: str,
        body: MessageIn,
        idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
    ) -> Any:
        """The file's référent writes to the citizen: sent on their preferred channel (with
        fallback), signed with the référent's direct contact, shown in the file's history.
        (Agents only: guarded by the agents' authentication when it lands.)"""
        try:
            message, created = await handlers.send_referent_message(
                file_id, body.agent_id, body.text, runtime.uow(), idempotency_key
            )
        except handlers.ChangeRefused as refused:
            return JSONResponse(status_code=refused.status, content={"message": refused.message})
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return JSONResponse(status_code=201, content=jsonable_encoder(message), headers=headers)

    @api.get("/files/{file_id}/messages", response_model=list[MessageOut])
    async def messages_to_citizen(file_id: str) -> Any:
        """The référent's messages to the citizen, oldest first, with the channel that delivered each."""
        found = await handlers.referent_messages_of(runtime.uow(), file_id)
        if found is None:
            return JSONResponse(
                status_code=404, content={"message": f"Aucun dossier ne porte la référence {file_id}."}
            )
        return found

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

    settings = getattr(runtime, "settings", None)  # tests mount the routes on a bare database
    min_files = getattr(settings, "indicators_min_files", indicators.DEFAULT_MIN_FILES)
    cache_seconds = getattr(settings, "indicators_cache_seconds", 0.0)
    # Computing ranks every delay of the period: published figures may be a minute old
    # (their generated_at says when), each replica computes them at most once a minute.
    computed: dict[tuple[dt.date | None, dt.date | None], tuple[float, dict]] = {}

    async def _indicators(start: dt.date | None, end: dt.date | None) -> dict | JSONResponse:
        if start and end and end < start:
            message = "La date de fin de période précède la date de début."
            return JSONResponse(status_code=422, content={"message": message,
                                                          "errors": [{"field": "to", "message": message}]})
        hit = computed.get((start, end))
        if hit is not None and time.monotonic() - hit[0] < cache_seconds:
            return hit[1]
        found = await indicators.compute(runtime.uow(), start, end, min_files)
        if cache_seconds > 0:
            if len(computed) >= 64:  # any period may be asked for: keep the memory bounded
                computed.clear()
            computed[(start, end)] = (time.monotonic(), found)
        return found

    period_start = Query(default=None, alias="from", description="Premier jour de dépôt (Europe/Paris), inclus.")
    period_end = Query(default=None, alias="to", description="Dernier jour de dépôt (Europe/Paris), inclus.")

    @api.get("/indicators", response_model=Indicators)
    async def get_indicators(start: dt.date | None = period_start, end: dt.date | None = period_end) -> Any:
        """Published indicators per office, per agency and nationally (docs/indicators.md)."""
        return await _indicators(start, end)

    @api.get("/indicators.csv", response_class=Response)
    async def indicators_csv(start: dt.date | None = period_start, end: dt.date | None = period_end) -> Any:
        """The same indicators as an open-data CSV (UTF-8, `;`, one row per group)."""
        found = await _indicators(start, end)
        if isinstance(found, JSONResponse):
            return found
        period = "_".join(d.isoformat() for d in (start, end) if d) or "tout"
        return Response(
            indicators.to_csv(found).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="indicateurs-guichet-unique-{period}.csv"'},
        )

    @api.get("/files/{file_id}", response_model=FileView)
    async def get_file(file_id: str) -> Any:
        view = await handlers.file_view(runtime.uow(), file_id)
        if view is None:
            return JSONResponse(
                status_code=404, content={"message": f"Aucun dossier ne porte la référence {file_id}."}
            )
        return view

    return api
