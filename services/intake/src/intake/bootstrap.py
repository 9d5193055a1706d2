"""Composition root of intake: the one place where its parts are wired."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic import Field

from guichet_runtime.service import build_runtime, create_app
from guichet_runtime.settings import ServiceSettings
from shared_models import (
    AgencyAnswerReceived,
    AgencyRequestIssued,
    CoordinatedAnswerIssued,
    ExchangeRecorded,
    ImplicitDecisionRecorded,
    DeadlineWarningIssued,
    LegalDeadlineBreached,
    LegalDeadlineSet,
    NotificationSent,
    ReferentAssigned,
    catalogue,
    topics,
)
from intake import api, handlers, indicators
from intake.tables import metadata


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = 8000
    database_url: str = "sqlite+aiosqlite:///var/data/intake.db"
    indicators_min_files: int = Field(
        default=indicators.DEFAULT_MIN_FILES, ge=1,
        description="Published indicators leave out groups of fewer files (and means of fewer survey answers).",
    )
    indicators_cache_seconds: float = Field(
        default=60.0, ge=0, description="How long computed indicators are served again before being recomputed."
    )


def bootstrap(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = build_runtime(settings, metadata, Path(__file__).parent / "migrations")
    consumer = runtime.consumer
    consumer.subscribe([topics.REFERENTS_ASSIGNED], {ReferentAssigned: handlers.on_referent_assigned})
    consumer.subscribe(
        [topics.agency_requests(a) for a in catalogue().served_agencies()],
        {AgencyRequestIssued: handlers.on_agency_request_issued},
    )
    consumer.subscribe(
        [topics.agency_answers(a) for a in catalogue().served_agencies()],
        {AgencyAnswerReceived: handlers.on_agency_answer_received},
    )
    consumer.subscribe([topics.FILES_ANSWERED], {CoordinatedAnswerIssued: handlers.on_coordinated_answer})
    consumer.subscribe([topics.NOTIFICATIONS_SENT], {NotificationSent: handlers.on_notification_sent})
    consumer.subscribe([topics.EXCHANGES_RECORDED], {ExchangeRecorded: handlers.on_exchange_recorded})
    consumer.subscribe(
        [topics.DEADLINES],
        {
            LegalDeadlineSet: handlers.on_deadline_set,
            ImplicitDecisionRecorded: handlers.on_implicit_decision,
            DeadlineWarningIssued: handlers.ignore,
            LegalDeadlineBreached: handlers.ignore,
        },
    )
    app = create_app(runtime, title="Guichet unique — accueil (intake)")
    app.include_router(api.router(runtime))
    return app
