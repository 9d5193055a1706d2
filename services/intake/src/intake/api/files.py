"""Routes of the file itself: the life events, opening a file, reading it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Policy, declared, requires
from guichet_runtime.service import Runtime
from intake.api.access import Access
from intake.api.limits import Limits
from intake.catalogue import CATALOGUE
from intake.commands import audit
from intake.commands.files import SubmitFile, open_file
from intake.schemas import FileCreated, FileIn, FileView
from shared_models import AGENCY_LABELS


def router(runtime: Runtime, limits: Limits, access: Access) -> APIRouter:
    api = APIRouter()
    submitter = requires(Policy.SUBMIT_FILE)
    file_agents = requires(Policy.FILE_AGENTS, access.file())
    file_supervisor = requires(Policy.FILE_SUPERVISOR, access.file())
    file_reader = requires(Policy.FILE_READ, access.file())

    @api.get("/life-events", dependencies=[declared(Policy.PUBLIC)])
    async def life_events() -> Any:
        """The life events a citizen can declare, with the agencies each one concerns."""
        return [
            {"code": e.code, "label": e.label, "agencies": [AGENCY_LABELS[a] for a in e.agencies]}
            for e in CATALOGUE.values()
        ]

    @api.post(
        "/files",
        status_code=201,
        response_model=FileCreated,
        dependencies=[limits.per_client("files_per_client")],
    )
    async def create_file(
        form: FileIn,
        idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
        who: Principal = submitter,
    ) -> Any:
        """Open a file; a retry with the same Idempotency-Key answers with the same file.
        A logged-in citizen's file is linked to them; a front-desk agent registers one for a
        citizen, saying the channel (`channel`)."""
        body, created = await open_file(SubmitFile(form, idempotency_key, by=who), runtime.uow())
        headers = {"Location": f"/api/files/{body.file_id}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(status_code=201, content=jsonable_encoder(body), headers=headers)

    @api.get("/files/{file_id}/record")
    async def file_record(
        file_id: str,
        reason: str | None = Query(
            default=None, description="Motif de la consultation (obligatoire, journal d'audit)."
        ),
        who: Principal = file_agents,
    ) -> Any:
        """What the agents working the file read: the citizen's contact and own words; the
        agent says why (`reason`), and the read is recorded in the audit trail."""
        return await audit.read_record(file_id, who, reason, runtime.uow())

    @api.get("/files/{file_id}/audit")
    async def file_audit(file_id: str, who: Principal = file_supervisor) -> Any:
        """The file's audit trail at intake (who did what, when and why), for a supervisor
        of the référent's office; this reading is recorded too."""
        return await audit.file_audit_trail(file_id, who, runtime.uow())

    @api.get(
        "/files/{file_id}",
        response_model=FileView,
    )
    async def get_file(file_id: str, who: Principal = file_reader) -> Any:
        """The citizen's view of their file (an agent's reading is in the audit trail)."""
        return await audit.read_file_view(file_id, who, runtime.uow())

    return api
