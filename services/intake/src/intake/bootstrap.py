"""Composition root of intake: the one place where its parts are wired."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from guichet_runtime import audit
from guichet_runtime.rate_limits import RateLimiter
from guichet_runtime.sealing import Keyring
from guichet_runtime.service import build_runtime, create_app
from intake import api, projections
from intake.settings import DOCUMENT_BODY_BYTES, IntakeSettings
from intake.tables import metadata, rate_counters
from shared_models import (
    AgencyAnswerReceived,
    AgencyRequestIssued,
    CoordinatedAnswerIssued,
    DeadlineWarningIssued,
    ExchangeRecorded,
    ImplicitDecisionRecorded,
    LegalDeadlineBreached,
    LegalDeadlineSet,
    NotificationSent,
    ReferentAssigned,
    catalogue,
    topics,
)

__all__ = ["IntakeSettings", "bootstrap"]

RATE_COUNTERS_PURGE_SECONDS = 3600


def bootstrap(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    # Refuses to start without it (KeyMissing): no default key.
    keyring = Keyring.from_text(settings.access_code_key.get_secret_value(), name="ACCESS_CODE_KEY")
    runtime = build_runtime(settings, metadata, Path(__file__).parent / "migrations")
    consumer = runtime.consumer
    consumer.subscribe(
        [topics.REFERENTS_ASSIGNED], {ReferentAssigned: projections.on_referent_assigned}
    )
    consumer.subscribe(
        [topics.agency_requests(a) for a in catalogue().served_agencies()],
        {AgencyRequestIssued: projections.on_agency_request_issued},
    )
    consumer.subscribe(
        [topics.agency_answers(a) for a in catalogue().served_agencies()],
        {AgencyAnswerReceived: projections.on_agency_answer_received},
    )
    consumer.subscribe(
        [topics.FILES_ANSWERED], {CoordinatedAnswerIssued: projections.on_coordinated_answer_issued}
    )
    consumer.subscribe(
        [topics.NOTIFICATIONS_SENT], {NotificationSent: projections.on_notification_sent}
    )
    consumer.subscribe(
        [topics.EXCHANGES_RECORDED], {ExchangeRecorded: projections.on_exchange_recorded}
    )
    consumer.subscribe(
        [topics.DEADLINES],
        {
            LegalDeadlineSet: projections.on_legal_deadline_set,
            ImplicitDecisionRecorded: projections.on_implicit_decision_recorded,
            DeadlineWarningIssued: projections.ignore,
            LegalDeadlineBreached: projections.ignore,
        },
    )
    limiter = RateLimiter(runtime.engine, rate_counters)

    async def purge_rate_counters() -> None:
        while True:
            await limiter.purge()
            await asyncio.sleep(RATE_COUNTERS_PURGE_SECONDS)

    runtime.workers.append(purge_rate_counters)
    runtime.workers.append(audit.anchoring(runtime))
    app = create_app(
        runtime,
        title="Guichet unique — accueil (intake)",
        body_limits=[(r"/api/files/[^/]+/documents", DOCUMENT_BODY_BYTES)],
    )
    app.include_router(api.router(runtime, keyring))
    return app
