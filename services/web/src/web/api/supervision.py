"""The supervisor's pages: files waiting for a référent, legal deadlines at risk, agency
requests without a decision for too long, each agent's load, the published indicators, and
their open-data CSV. Assignment answers for the supervisor's own offices only (from the
forwarded token)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from guichet_runtime.policy import Policy
from web import pages
from web.api.deps import BackendClient, Render, Settings, page

router = APIRouter()


@router.get("/supervision", response_class=HTMLResponse, dependencies=[page(Policy.SUPERVISOR)])
async def supervision(
    request: Request, backend: BackendClient, render: Render, settings: Settings
) -> HTMLResponse:
    waiting, balance, at_risk, stuck, indicators = await asyncio.gather(
        backend.waiting_files(),
        backend.portfolios(),
        backend.deadlines_at_risk(settings.deadline_risk_days),
        backend.stuck_requests(),
        backend.indicators(),
    )
    return render(
        request,
        "supervision.html",
        {
            "waiting": waiting,
            "balance": balance,
            "at_risk": at_risk,
            "stuck": stuck,
            "chart": pages.load_chart(balance["agents"]),
            "indicators": indicators,
            "answer_chart": pages.indicator_chart(indicators["offices"], "answer_median_days", "j"),
            "deadline_chart": pages.indicator_chart(
                indicators["agencies"], "deadline_share", "%", maximum=1.0
            ),
        },
    )


@router.get("/indicateurs.csv", dependencies=[page(Policy.PUBLIC)])
async def indicators_csv(backend: BackendClient) -> Response:
    """The open-data CSV of the indicators, as intake publishes it."""
    found = await backend.indicators_csv()
    return Response(
        found.content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": found.headers["content-disposition"]},
    )
