"""What référents and supervisors read about files, and the référent's personal word."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from assignment import views
from assignment.commands import desk
from assignment.schemas import PersonalWordIn
from guichet_runtime.service import Runtime


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix="/api")

    @api.get("/agents/{agent_id}/portfolio")
    async def portfolio(agent_id: str) -> Any:
        """The référent's open files, urgent first, then by nearest legal deadline."""
        return await views.portfolio(runtime.uow(), agent_id)

    @api.get("/supervision/waiting")
    async def waiting() -> Any:
        """Files waiting for a référent because nobody near has room: the supervisors' alert."""
        return await views.waiting_files(runtime.uow())

    @api.get("/files/{file_id}/assignment")
    async def assignment_record(file_id: str) -> Any:
        """Who is the référent and why: the rule that decided and the candidates considered."""
        return await views.assignment_record(runtime.uow(), file_id)

    @api.put("/files/{file_id}/personal-word")
    async def personal_word(file_id: str, body: PersonalWordIn) -> Any:
        """The référent's personal word on the coordinated answer, set or replaced until the
        answer leaves (the answer does not wait for it)."""
        return await desk.set_personal_word(runtime.uow(), file_id, body.agent_id, body.text)

    @api.delete("/files/{file_id}/personal-word")
    async def withdraw_personal_word(
        file_id: str, agent_id: str = Query(description="Le référent du dossier.")
    ) -> Any:
        """The référent withdraws their word before the answer leaves."""
        return await desk.remove_personal_word(runtime.uow(), file_id, agent_id)

    return api
