"""The citizen's export part held by assignment ("Mes données", RGPD art. 15): for the file's
citizen only, as intake recognises them (guichet_runtime.file_citizen)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from assignment import citizen_export
from guichet_runtime.auth.principal import Principal
from guichet_runtime.file_citizen import FileCitizenCheck
from guichet_runtime.policy import Policy, requires
from guichet_runtime.service import Runtime


def gdpr_router(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix="/api")
    check = FileCitizenCheck(runtime.settings.intake_url)
    runtime.shutdown.append(check.close)
    file_citizen = requires(Policy.FILE_CITIZEN, check.facts())

    @api.get("/files/{file_id}/export")
    async def file_export_part(file_id: str, who: Principal = file_citizen) -> Any:
        """What assignment holds about the file's citizen: its copy of the file, the
        référents named and why, the agencies' requests and answers, the personal word."""
        return await citizen_export.citizen_part(runtime.uow(), file_id)

    return api
