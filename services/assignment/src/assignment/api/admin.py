"""The directory's admin API and the supervisors' moves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Query

from assignment.api.access import Access
from assignment.commands import directory, directory_import
from assignment.schemas import AbsenceIn, DepartureIn, ReasonIn
from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Policy, requires
from guichet_runtime.service import Runtime


def admin_router(runtime: Runtime, today: Callable[[], dt.date]) -> APIRouter:
    admin = APIRouter(prefix="/api")
    access = Access(runtime)
    directory_admin = requires(Policy.DIRECTORY_ADMIN)
    agent_supervisor = requires(Policy.AGENT_SUPERVISOR, access.agent())
    file_supervisor = requires(Policy.FILE_SUPERVISOR, access.file())

    @admin.post("/agents", status_code=201)
    async def agent_joins(
        body: dict[str, Any] = Body(..., description="Fiche de l'agent."),
        who: Principal = directory_admin,
    ) -> Any:
        """An agent joins the network (name, office, direct phone, email, agencies, capacity)."""
        return await directory_import.join(runtime.uow(), body, by=who)

    @admin.post("/directory/import")
    async def import_directory(
        body: Any = Body(..., description="Fichier d'annuaire versionné."),
        reason: str | None = Query(
            default=None, description="Motif de l'import (obligatoire, journal d'audit)."
        ),
        who: Principal = directory_admin,
    ) -> Any:
        """Import a versioned directory file: every row is checked first; one bad row and
        nothing is applied. New and changed offices and agents each become an event. The
        administrator says why (`reason`)."""
        return await directory_import.import_directory(runtime.uow(), body, reason=reason, by=who)

    @admin.post("/agents/{agent_id}/absences", status_code=201)
    async def declare_absence(
        agent_id: str, body: AbsenceIn, who: Principal = agent_supervisor
    ) -> Any:
        return await directory.declare_absence(
            runtime.uow(), agent_id, body.starts_on, body.ends_on, body.reason, today(), by=who
        )

    @admin.post("/agents/{agent_id}/return")
    async def agent_returns(agent_id: str, who: Principal = agent_supervisor) -> Any:
        return await directory.agent_returns(runtime.uow(), agent_id, by=who)

    @admin.post("/agents/{agent_id}/departure")
    async def agent_leaves(
        agent_id: str, body: DepartureIn, who: Principal = agent_supervisor
    ) -> Any:
        return await directory.agent_leaves(runtime.uow(), agent_id, body.reason, by=who)

    @admin.post("/files/{file_id}/reassign")
    async def reassign(file_id: str, body: ReasonIn, who: Principal = file_supervisor) -> Any:
        """A supervisor of the référent's office moves the file, to a named agent of an
        office they supervise or by the usual rules."""
        return await directory.reassign(
            runtime.uow(), file_id, body.reason, body.agent_id, supervised=who.offices, by=who
        )

    return admin
