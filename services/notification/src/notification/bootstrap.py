"""Composition root of the notification service: the runtime (database, consumer, outbox
relay), the provider channels, the dispatcher worker and the handler table."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI

from guichet_runtime.clock import Clock
from guichet_runtime.metrics import metered_channels
from guichet_runtime.reply_address import reply_address
from guichet_runtime.sealing import Keyring
from guichet_runtime.service import build_runtime, create_app
from notification import api, appointments, domain, erasure, messages, projections
from notification.channels import (
    Channel,
    EmailChannel,
    LetterChannel,
    Mailer,
    PermanentFailure,
    ReplyTo,
    SmsChannel,
)
from notification.dispatch import dispatch_forever
from notification.mailer import SmtpMailer
from notification.settings import NotificationSettings
from notification.tables import metadata
from shared_models import (
    AccessCodeIssued,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentReminderIssued,
    CitizenDataErased,
    CitizenMessageEscalated,
    CitizenMessageReminderIssued,
    ContactPreferencesChanged,
    CoordinatedAnswerIssued,
    DeadlineWarningIssued,
    ImplicitDecisionRecorded,
    LegalDeadlineBreached,
    LegalDeadlineSet,
    NotificationChannel,
    ReferentAssigned,
    ReferentAssignmentDeferred,
    ReferentMessageSent,
    ReferentThanked,
    SupportingDocumentRequested,
    topics,
)

__all__ = ["NotificationSettings", "bootstrap"]


def bootstrap(
    settings: NotificationSettings | None = None,
    mailer: Mailer | None = None,
    channels: Mapping[NotificationChannel, Channel] | None = None,
) -> FastAPI:
    settings = settings or NotificationSettings()
    keyring = Keyring.from_text(  # refuses to start without it
        settings.access_code_key.get_secret_value(),
        settings.access_code_key_previous.get_secret_value(),
        name="ACCESS_CODE_KEY",
    )
    runtime = build_runtime(settings, metadata, Path(__file__).parent / "migrations")
    messages.DEFAULTS["portal_url"] = settings.portal_url
    if channels is None:
        mailer = mailer or SmtpMailer(settings.smtp_host, settings.smtp_port)
        sms = SmsChannel(settings.sms_gateway_url, sender_name=settings.sms_sender_name)
        post = LetterChannel(settings.postal_url, today=Clock(settings.clock_file).today)
        channels = {
            NotificationChannel.EMAIL: EmailChannel(
                mailer, settings.mail_sender, reply_to_of(settings)
            ),
            NotificationChannel.SMS: sms,
            NotificationChannel.LETTER: post,
        }
        if isinstance(mailer, SmtpMailer):
            runtime.shutdown.append(mailer.close)
        runtime.shutdown += [sms.close, post.close]
    wake = asyncio.Event()
    # guichet_notifications{channel, outcome}: sent, refused (permanent), failed (retried)
    dispatching = metered_channels(
        channels, runtime.metrics, (PermanentFailure, domain.NoPostalAddress)
    )

    async def dispatcher() -> None:
        await dispatch_forever(
            runtime.uow,
            dispatching,
            wake,
            idle_seconds=settings.dispatch_idle_seconds,
            lease=dt.timedelta(seconds=settings.dispatch_lease_seconds),
            batch=settings.dispatch_batch,
            stopping=runtime.stopping,
            keyring=keyring,
        )

    runtime.commit_listeners.append(wake.set)  # a message recorded: send it now
    runtime.workers.append(dispatcher)
    subscribe = runtime.consumer.subscribe
    subscribe([topics.REFERENTS_ASSIGNED], {ReferentAssigned: projections.on_referent_assigned})
    subscribe(
        [topics.FILES_ANSWERED],
        {CoordinatedAnswerIssued: projections.on_coordinated_answer_issued},
    )
    subscribe(
        [topics.CONTACT_CHANGES],
        {ContactPreferencesChanged: projections.on_contact_preferences_changed},
    )
    subscribe([topics.THANKS], {ReferentThanked: projections.on_referent_thanked})
    subscribe(
        [topics.DOCUMENTS_REQUESTED],
        {SupportingDocumentRequested: projections.on_supporting_document_requested},
    )
    subscribe(
        [topics.FILES_AWAITING_REFERENT],
        {ReferentAssignmentDeferred: projections.on_referent_assignment_deferred},
    )
    subscribe(
        [topics.DEADLINES],
        {
            DeadlineWarningIssued: projections.on_deadline_warning_issued,
            LegalDeadlineBreached: projections.on_legal_deadline_breached,
            CitizenMessageReminderIssued: projections.on_citizen_message_reminder_issued,
            CitizenMessageEscalated: projections.on_citizen_message_escalated,
            ImplicitDecisionRecorded: projections.on_implicit_decision_recorded,
        },
        ignored=[LegalDeadlineSet],  # the deadlines topic is shared: nothing to tell anyone
    )
    subscribe([topics.ACCESS_CODES], {AccessCodeIssued: projections.on_access_code_issued})
    subscribe(
        [topics.REFERENT_MESSAGES], {ReferentMessageSent: projections.on_referent_message_sent}
    )
    subscribe([topics.CITIZEN_DATA_ERASED], {CitizenDataErased: erasure.on_citizen_data_erased})
    subscribe(
        [topics.APPOINTMENTS],
        {
            AppointmentBooked: functools.partial(
                appointments.on_appointment_booked, delivery_days=settings.letter_delivery_days
            ),
            AppointmentCancelled: appointments.on_appointment_cancelled,
            AppointmentReminderIssued: appointments.on_appointment_reminder_issued,
        },
    )
    app = create_app(runtime, title="Guichet unique — notifications")
    app.include_router(api.router(runtime))
    return app


def reply_to_of(settings: NotificationSettings) -> ReplyTo | None:
    """The Reply-To of the messages a citizen may answer by email; None without the key."""
    key = settings.reply_address_key.get_secret_value()
    if not key:
        return None
    return lambda file_id: reply_address(file_id, key, settings.reply_domain)
