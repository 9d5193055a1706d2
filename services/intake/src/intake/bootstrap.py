"""Composition root of intake: the one place where its parts are wired."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fastapi import FastAPI

from guichet_runtime import audit
from guichet_runtime.clock import Clock
from guichet_runtime.rate_limits import RateLimiter
from guichet_runtime.sealing import Keyring, new_key, parse_key
from guichet_runtime.secrets import Environment, MissingSecret
from guichet_runtime.service import Runtime, build_runtime, create_app
from intake import api, inbound, projections
from intake.api import keys
from intake.api.limits import Limits
from intake.commands.personal_data import IntakeKeys, IntakePersonalData
from intake.settings import DOCUMENT_BODY_BYTES, IntakeSettings
from intake.tables import metadata, rate_counters
from shared_models import (
    AgencyAnswerReceived,
    AgencyRequestIssued,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentReminderIssued,
    CitizenMessageEscalated,
    CitizenMessageReminderIssued,
    CoordinatedAnswerIssued,
    DeadlineWarningIssued,
    ExchangeRecorded,
    ExchangesRecorded,
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
    if settings.personal_data_sealing:
        vault = IntakeKeys(runtime.engine)
        runtime.use_personal_data(IntakePersonalData(vault, settings.personal_data_key_ttl_seconds))

        async def load_kek() -> None:  # at start: refuses to start without it outside dev
            vault.kek = personal_data_kek(settings)

        runtime.startup.append(load_kek)
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
        [topics.EXCHANGES_RECORDED],
        {
            ExchangesRecorded: projections.on_exchanges_recorded,
            ExchangeRecorded: projections.on_exchange_recorded,
        },
    )
    consumer.subscribe(
        [topics.DEADLINES],
        {
            LegalDeadlineSet: projections.on_legal_deadline_set,
            ImplicitDecisionRecorded: projections.on_implicit_decision_recorded,
            CitizenMessageEscalated: projections.on_citizen_message_escalated,
        },
        ignored=[DeadlineWarningIssued, LegalDeadlineBreached, CitizenMessageReminderIssued],
    )
    consumer.subscribe(
        [topics.APPOINTMENTS],
        {
            AppointmentBooked: projections.on_appointment_booked,
            AppointmentCancelled: projections.on_appointment_cancelled,
        },
        # The reminder is a message (notification's); the timeline shows it as sent.
        ignored=[AppointmentReminderIssued],
    )
    limiter = RateLimiter(runtime.engine, rate_counters)

    async def purge_rate_counters() -> None:
        # Ends with the stop, as every worker must: one that sleeps through it holds the
        # shutdown until its grace runs out (intake took 10 s to stop, then was killed).
        while True:
            await limiter.purge(settings.rate_limits.values())
            if await runtime.pause(RATE_COUNTERS_PURGE_SECONDS):
                return

    runtime.workers.append(purge_rate_counters)
    if settings.inbound_smtp_port is not None:
        inbound_listener(runtime, settings)
    runtime.workers.append(audit.anchoring(runtime))
    app = create_app(
        runtime,
        title="Guichet unique — accueil (intake)",
        body_limits=[(r"/api/files/[^/]+/documents", DOCUMENT_BODY_BYTES)],
    )
    app.include_router(api.router(runtime, keyring))
    app.include_router(keys.router(runtime))
    return app


def inbound_listener(runtime: Runtime, settings: IntakeSettings) -> None:
    """Listen for the citizens' email replies (intake.inbound): bound at start, closed at
    the stop."""
    key = settings.reply_address_key.get_secret_value()
    if not key:
        raise MissingSecret(
            "REPLY_ADDRESS_KEY is required with INBOUND_SMTP_PORT: it verifies the routing "
            "addresses of the citizens' replies (the same value as notification's)."
        )
    quota = Limits(runtime).file_counter("citizen_messages_per_file")  # the space's count
    handler = inbound.InboundReplies(
        runtime.uow,
        inbound.InboundSettings(
            key,
            settings.reply_domain,
            settings.message_answer_working_days,
            Clock(settings.clock_file),
            settings.reply_address_key_previous.get_secret_value(),
        ),
        quota,
    )
    assert settings.inbound_smtp_port is not None
    listener = inbound.Listener(handler, settings.inbound_smtp_host, settings.inbound_smtp_port)

    async def until_stopping() -> None:
        await runtime.stopping.wait()
        await listener.stop()

    runtime.startup.append(listener.start)
    runtime.workers.append(until_stopping)
    runtime.shutdown.append(listener.stop)


def personal_data_kek(settings: IntakeSettings) -> bytes:
    """PERSONAL_DATA_KEK's 32 bytes: given (base64), else in dev generated once in
    SECRETS_DIR; outside dev, missing, intake refuses to start."""
    given = settings.personal_data_kek
    if given is not None and given.get_secret_value():
        return parse_key(given.get_secret_value(), "PERSONAL_DATA_KEK")
    if settings.environment is not Environment.DEV:
        raise MissingSecret(
            "PERSONAL_DATA_KEK is required outside development: the key-encryption key of the "
            "citizens' data keys (base64 of 32 bytes, `openssl rand -base64 32`)."
        )
    path = settings.secrets_dir / "personal_data_kek"
    if not path.exists():
        settings.secrets_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # two processes at once keep one
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(new_key() + "\n")
    return parse_key(path.read_text(), "PERSONAL_DATA_KEK")
