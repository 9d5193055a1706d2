"""Routes of the published indicators (docs/indicators.md), in JSON and as open-data CSV."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from guichet_runtime.policy import Policy, declared
from guichet_runtime.service import Runtime
from intake.domain import DEFAULT_MIN_FILES
from intake.schemas import Indicators
from intake.views.indicators import PublishedIndicators, csv_filename, to_csv

PERIOD_START = Query(
    default=None, alias="from", description="Premier jour de dépôt (Europe/Paris), inclus."
)
PERIOD_END = Query(
    default=None, alias="to", description="Dernier jour de dépôt (Europe/Paris), inclus."
)


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter()
    settings = getattr(runtime, "settings", None)  # tests mount the routes on a bare database
    published = PublishedIndicators(
        min_files=getattr(settings, "indicators_min_files", DEFAULT_MIN_FILES),
        cache_seconds=getattr(settings, "indicators_cache_seconds", 0.0),
    )

    @api.get("/indicators", response_model=Indicators, dependencies=[declared(Policy.PUBLIC)])
    async def get_indicators(
        start: dt.date | None = PERIOD_START, end: dt.date | None = PERIOD_END
    ) -> Any:
        """Published indicators per office, per agency and nationally (docs/indicators.md)."""
        return await published.of_period(runtime.uow(), start, end)

    @api.get("/indicators.csv", response_class=Response, dependencies=[declared(Policy.PUBLIC)])
    async def indicators_csv(
        start: dt.date | None = PERIOD_START, end: dt.date | None = PERIOD_END
    ) -> Any:
        """The same indicators as an open-data CSV (UTF-8, `;`, one row per group)."""
        found = await published.of_period(runtime.uow(), start, end)
        return Response(
            to_csv(found).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{csv_filename(start, end)}"'},
        )

    return api
