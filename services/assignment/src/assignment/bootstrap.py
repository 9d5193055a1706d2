"""Composition root of the assignment service."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import FastAPI
from pydantic import Field

from guichet_runtime.clock import Clock
from guichet_runtime.service import build_runtime, create_app
from guichet_runtime.settings import ServiceSettings
from shared_models import AgencyAnswerReceived, AgencyReceiptAcknowledged, LegalClockResumed, LegalClockSuspended, FileSubmitted, ReferentChangeRequested, catalogue, topics
from assignment import api, deadlines, directory, handlers
from assignment.tables import metadata

log = logging.getLogger(__name__)
DEFAULT_DIRECTORY = Path(__file__).parent / "data" / "directory.json"


class AssignmentSettings(ServiceSettings):
    service_name: str = "assignment"
    http_port: int = 8001
    database_url: str = "sqlite+aiosqlite:///var/data/assignment.db"
    housekeeping_seconds: float = Field(
        default=5.0, description="How often due absences and waiting files are looked at."
    )
    directory_file: Path = Field(
        default=DEFAULT_DIRECTORY, description="Agents and offices loaded into an empty directory."
    )


async def _housekeeping(runtime, every: float, clock: Clock) -> None:
    """Start and end absences on their dates, and give référents to waiting files as
    capacity frees up. Durable: all of it is read from the database each round."""
    while True:
        try:
            today = clock.today()
            await directory.apply_due_absences(runtime.uow, today)
            await deadlines.tick(runtime.uow, today)
            await handlers.assign_waiting(runtime.uow())
        except Exception:
            log.exception("housekeeping failed; retrying")
        await asyncio.sleep(every)


def bootstrap(settings: AssignmentSettings | None = None) -> FastAPI:
    settings = settings or AssignmentSettings()
    runtime = build_runtime(settings, metadata, Path(__file__).parent / "migrations")
    runtime.startup.append(lambda: handlers.seed_directory(runtime.uow(), settings.directory_file))
    runtime.consumer.subscribe([topics.FILES_SUBMITTED], {FileSubmitted: handlers.on_file_submitted})
    runtime.consumer.subscribe(
        [topics.REFERENT_CHANGES], {ReferentChangeRequested: handlers.on_referent_change_requested}
    )
    runtime.consumer.subscribe(
        [topics.agency_answers(a) for a in catalogue().served_agencies()],
        {AgencyAnswerReceived: handlers.on_agency_answer},
    )
    clock = Clock(settings.clock_file)
    runtime.consumer.subscribe(
        [topics.LEGAL_CLOCK],
        {
            AgencyReceiptAcknowledged: deadlines.on_receipt_acknowledged,
            LegalClockSuspended: deadlines.on_clock_suspended,
            LegalClockResumed: deadlines.on_clock_resumed,
        },
    )
    app = create_app(runtime, title="Guichet unique — attribution du référent")
    app.include_router(api.router(runtime))
    app.include_router(api.admin_router(runtime, clock.today))
    app.include_router(api.views_router(runtime, clock.today))
    runtime.workers.append(lambda: _housekeeping(runtime, settings.housekeeping_seconds, clock))
    return app
