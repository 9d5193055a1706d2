"""Read models of the pages: an agent's card, the supervisors' balance and deadlines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query

from assignment import stuck_requests, views
from assignment.api.access import Access
from assignment.domain import STUCK_REQUEST_DAYS
from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Policy, declared, requires
from guichet_runtime.service import Runtime


def views_router(
    runtime: Runtime, today: Callable[[], dt.date], stuck_days: int = STUCK_REQUEST_DAYS
) -> APIRouter:
    api = APIRouter(prefix="/api")
    supervisor = requires(Policy.SUPERVISOR)
    file_agents = [requires(Policy.FILE_AGENTS, Access(runtime).file())]

    @api.get("/agents/{agent_id}", dependencies=[declared(Policy.PUBLIC)])
    async def agent_card(agent_id: str) -> Any:
        """What a citizen sees of their référent: name, office, direct line, opening hours."""
        return await views.agent_card(runtime.uow(), agent_id)

    @api.get("/supervision/portfolios")
    async def portfolios(who: Principal = supervisor) -> Any:
        """Each agent's load against capacity, and the totals per office: the caller's
        offices."""
        return await views.portfolios(runtime.uow(), who.offices)

    @api.get("/supervision/deadlines")
    async def deadlines(
        within_days: int = Query(default=21, ge=0, le=366), who: Principal = supervisor
    ) -> Any:
        """Open files of the caller's offices whose nearest legal deadline falls within
        `within_days` (or is past), nearest first; files with every clock suspended are
        not at risk."""
        return await views.deadlines_at_risk(runtime.uow(), today(), within_days, who.offices)

    @api.get("/supervision/stuck-requests")
    async def stuck(who: Principal = supervisor) -> Any:
        """Agency requests acknowledged STUCK_REQUEST_DAYS days ago or more and still
        without a decision, oldest first, with their count per agency: the caller's
        offices' files."""
        return await stuck_requests.stuck_requests(runtime.uow(), today(), stuck_days, who.offices)

    @api.get("/files/{file_id}/stuck-requests", dependencies=file_agents)
    async def file_stuck(file_id: str) -> Any:
        """The file's agency requests awaiting a decision since their acknowledgement, each
        saying whether it waits beyond STUCK_REQUEST_DAYS (the référent's page)."""
        return await stuck_requests.file_stuck_requests(runtime.uow(), file_id, today(), stuck_days)

    return api
