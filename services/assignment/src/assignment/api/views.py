"""Read models of the pages: an agent's card, the supervisors' balance and deadlines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query

from assignment import views
from guichet_runtime.auth.principal import Principal
from guichet_runtime.policy import Policy, declared, requires
from guichet_runtime.service import Runtime


def views_router(runtime: Runtime, today: Callable[[], dt.date]) -> APIRouter:
    api = APIRouter(prefix="/api")
    supervisor = requires(Policy.SUPERVISOR)

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

    return api
