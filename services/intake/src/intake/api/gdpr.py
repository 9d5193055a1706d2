"""Routes of the citizen's GDPR rights: their data ("Mes données", RGPD art. 15) and the
erasure of a closed file's data (art. 17). Each export and each erasure is in the audit
trail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Policy, requires
from guichet_runtime.service import Runtime
from intake.api.access import Access
from intake.commands import gdpr
from intake.schemas import ErasureIn


def router(runtime: Runtime, access: Access) -> APIRouter:
    api = APIRouter()
    citizen = requires(Policy.CITIZEN)
    file_citizen = requires(Policy.FILE_CITIZEN, access.file())

    @api.get("/me/export")
    async def my_data(who: Principal = citizen) -> Any:
        """Everything held about the logged-in citizen, every file of their account (JSON;
        the pages make the PDF from it)."""
        return await gdpr.export_citizen_data(who, runtime.uow())

    @api.get("/files/{file_id}/export")
    async def file_data(file_id: str, who: Principal = file_citizen) -> Any:
        """Everything held about the file's citizen: logged in as them, or with the proof
        of the file's one-time code."""
        return await gdpr.export_file_data(file_id, who, runtime.uow())

    @api.get("/files/{file_id}/citizen")
    async def is_files_citizen(file_id: str, who: Principal = file_citizen) -> Any:
        """Whether the caller is the file's citizen (200; else 401, 403 or 404): asked by
        assignment and notification, which do not keep who the citizen is, with the caller's
        own credentials, before serving their part of the export
        (guichet_runtime.file_citizen). Says nothing else about the file."""
        return {"file_id": file_id, "citizen": True}

    @api.post("/files/{file_id}/erasure")
    async def erase(file_id: str, body: ErasureIn, who: Principal = file_citizen) -> Any:
        """The citizen asks for their file's personal data to be erased, confirming it (422
        unconfirmed): done on a closed file (409 with the reason while it is processed, or
        once done)."""
        return await gdpr.erase_file_data(file_id, body.confirm, who, runtime.uow())

    return api
