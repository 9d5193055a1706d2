"""Composition root of the assignment service: the runtime, the handler table, the
housekeeping worker and the routers."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from assignment import api, views
from assignment.commands import appointments, directory, directory_import, housekeeping
from assignment.projections import erasure, files, legal_clock, messages
from assignment.settings import DEFAULT_DIRECTORY, AssignmentSettings
from assignment.tables import metadata
from guichet_runtime import audit
from guichet_runtime.clock import Clock
from guichet_runtime.file_citizen import FileCitizenCheck
from guichet_runtime.service import Runtime, build_runtime, create_app
from shared_models import (
    AgencyAnswerReceived,
    AgencyReceiptAcknowledged,
    AgencyStatusChecked,
    CitizenDataErased,
    CitizenMessageReceived,
    FileSubmitted,
    LegalClockResumed,
    LegalClockSuspended,
    ReferentChangeRequested,
    ReferentMessageSent,
    catalogue,
    topics,
)

__all__ = ["DEFAULT_DIRECTORY", "AssignmentSettings", "bootstrap"]

log = logging.getLogger(__name__)


async def _housekeeping(runtime: Runtime, every: float, clock: Clock) -> None:
    """Start and end absences on their dates, issue the legal clocks' warnings and
    breaches, remind citizens of tomorrow's appointments, and give référents to waiting
    files as capacity frees up. Durable: all of it is read from the database each round.
    A stop ends it between two rounds."""
    while not runtime.stopping.is_set():
        try:
            today = clock.today()
            await directory.apply_due_absences(runtime.uow, today)
            await housekeeping.tick_legal_clocks(runtime.uow, today)
            await housekeeping.tick_message_promises(runtime.uow, clock.now())
            await appointments.tick_reminders(runtime.uow, clock.now())
            await housekeeping.assign_waiting(runtime.uow())
        except Exception:
            log.exception("housekeeping failed; retrying")
        await runtime.pause(every)


def _gauges(runtime: Runtime, clock: Clock) -> None:
    """Files waiting for a référent and legal deadlines at risk, counted at scrape time."""
    metrics = runtime.metrics
    waiting = metrics.gauge(
        "guichet_files_waiting_referent", "Files waiting for a référent (no capacity near)."
    )
    at_risk = metrics.gauge(
        "guichet_legal_deadlines_at_risk",
        "Running legal clocks whose last day is within `days` days (or past).",
        ("days",),
    )
    breached = metrics.gauge(
        "guichet_legal_deadlines_breached", "Breached legal clocks of files not answered yet."
    )

    async def sample() -> None:
        counts = await views.operations_counts(runtime.uow(), clock.today())
        waiting.labels(metrics.service).set(counts["waiting"])
        breached.labels(metrics.service).set(counts["breached"])
        for key, value in counts.items():
            if key.startswith("at_risk_"):
                at_risk.labels(metrics.service, key.removeprefix("at_risk_")).set(value)

    metrics.samplers.append(sample)


def bootstrap(settings: AssignmentSettings | None = None) -> FastAPI:
    settings = settings or AssignmentSettings()
    runtime = build_runtime(settings, metadata, Path(__file__).parent / "migrations")
    runtime.startup.append(
        lambda: directory_import.seed_directory(runtime.uow(), settings.directory_file)
    )
    runtime.consumer.subscribe([topics.FILES_SUBMITTED], {FileSubmitted: files.on_file_submitted})
    runtime.consumer.subscribe(
        [topics.REFERENT_CHANGES], {ReferentChangeRequested: files.on_referent_change_requested}
    )
    runtime.consumer.subscribe(
        [topics.CITIZEN_DATA_ERASED], {CitizenDataErased: erasure.on_citizen_data_erased}
    )
    runtime.consumer.subscribe(
        [topics.CITIZEN_MESSAGES], {CitizenMessageReceived: messages.on_citizen_message_received}
    )
    runtime.consumer.subscribe(
        [topics.REFERENT_MESSAGES], {ReferentMessageSent: messages.on_referent_message_sent}
    )
    runtime.consumer.subscribe(
        [topics.agency_answers(a) for a in catalogue().served_agencies()],
        {AgencyAnswerReceived: files.on_agency_answer},
    )
    runtime.consumer.subscribe(
        [topics.LEGAL_CLOCK],
        {
            AgencyReceiptAcknowledged: legal_clock.on_receipt_acknowledged,
            LegalClockSuspended: legal_clock.on_clock_suspended,
            LegalClockResumed: legal_clock.on_clock_resumed,
            AgencyStatusChecked: legal_clock.on_status_checked,
        },
    )
    clock = Clock(settings.clock_file)
    app = create_app(runtime, title="Guichet unique — attribution du référent")
    app.include_router(api.router(runtime))
    app.include_router(api.admin_router(runtime, clock.today))
    app.include_router(api.views_router(runtime, clock.today, settings.stuck_request_days))
    app.include_router(api.gdpr_router(runtime))
    calendar = appointments.Calendar(
        slot_minutes=settings.appointment_slot_minutes,
        horizon_days=settings.appointment_horizon_days,
        today=clock.today,
        now=clock.now,
    )
    citizen_check = FileCitizenCheck(settings.intake_url)
    runtime.shutdown.append(citizen_check.close)
    app.include_router(api.appointments_router(runtime, calendar, citizen_check))
    runtime.workers.append(lambda: _housekeeping(runtime, settings.housekeeping_seconds, clock))
    runtime.workers.append(audit.anchoring(runtime))
    _gauges(runtime, clock)
    return app
