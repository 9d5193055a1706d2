"""Routes of one's own lists: a logged-in citizen's files, a front-desk agent's registered
files. The answer covers only the caller, named by their verified token (`sub`, `agent_id`):
no path or query parameter says whose."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Policy, requires
from guichet_runtime.service import Runtime
from intake.schemas import OwnFile
from intake.views import own


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter()
    citizen = requires(Policy.CITIZEN)
    front_desk = requires(Policy.FRONT_DESK)

    @api.get("/me/files", response_model=list[OwnFile])
    async def my_files(who: Principal = citizen) -> Any:
        """The files the logged-in citizen submitted with their account, newest first
        ("Mes dossiers")."""
        return await own.files_of_citizen(runtime.uow(), who.subject or "")

    @api.get("/me/registered-files", response_model=list[OwnFile])
    async def registered_files(who: Principal = front_desk) -> Any:
        """The files the front-desk agent registered for citizens, newest first."""
        return await own.files_registered_by(runtime.uow(), who.agent_id or "")

    return api
