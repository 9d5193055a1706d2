"""Composition root of intake: the one place where its parts are wired."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from guichet_runtime.sealing import Keyring
from guichet_runtime.service import build_runtime, create_app
from intake import api, projections
from intake.settings import IntakeSettings
from intake.tables import metadata
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
    app = create_app(runtime, title="Guichet unique — accueil (intake)")
    app.include_router(api.router(runtime, keyring))
    return app
