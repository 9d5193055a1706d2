"""Notification's one HTTP route: the citizen's export part ("Mes données", RGPD art. 15),
for the file's citizen only, as intake recognises them (guichet_runtime.file_citizen)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from guichet_runtime.auth.principal import Principal
from guichet_runtime.file_citizen import FileCitizenCheck
from guichet_runtime.policy import Policy, requires
from guichet_runtime.service import Runtime
from notification import citizen_export


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix="/api")
    check = FileCitizenCheck(runtime.settings.intake_url)
    runtime.shutdown.append(check.close)
    file_citizen = requires(Policy.FILE_CITIZEN, check.facts())

    @api.get("/files/{file_id}/export")
    async def file_export_part(file_id: str, who: Principal = file_citizen) -> Any:
        """Every message sent (or to be sent) to the file's citizen: channel, address,
        subject, body, dates, each delivery attempt; the contact kept for the file."""
        return await citizen_export.citizen_part(runtime.uow(), file_id)

    return api
