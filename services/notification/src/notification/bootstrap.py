"""Composition root of the notification service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI

from guichet_runtime.clock import Clock
from guichet_runtime.metrics import metered_channels
from guichet_runtime.service import build_runtime, create_app
from guichet_runtime.settings import ServiceSettings
from shared_models import (
    AccessCodeIssued,
    ContactPreferencesChanged,
    CoordinatedAnswerIssued,
    NotificationChannel,
    ReferentAssigned,
    ReferentMessageSent,
    ReferentThanked,
    SupportingDocumentRequested,
    topics,
    ImplicitDecisionRecorded,
    DeadlineWarningIssued,
    LegalDeadlineBreached,
    LegalDeadlineSet,
    ReferentAssignmentDeferred,
)
from notification import handlers, messages
from notification.channels import (
    Channel,
    EmailChannel,
    LetterChannel,
    Mailer,
    PermanentFailure,
    SmsChannel,
)
from notification.letters import NoPostalAddress
from notification.mailer import SmtpMailer
from notification.tables import metadata

log = logging.getLogger(__name__)


class NotificationSettings(ServiceSettings):
    service_name: str = "notification"
    http_port: int = 8002
    database_url: str = "sqlite+aiosqlite:///var/data/notification.db"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    mail_sender: str = "Guichet unique <ne-pas-repondre@guichet-unique.gouv.fr>"
    sms_gateway_url: str = "http://127.0.0.1:8027"
    sms_sender_name: str = "GUICHET"
    postal_url: str = "http://127.0.0.1:8027"
    portal_url: str = "https://guichet-unique.gouv.fr"
    dispatch_idle_seconds: float = 0.2
    dispatch_batch: int = 50


def bootstrap(
    settings: NotificationSettings | None = None,
    mailer: Mailer | None = None,
    channels: Mapping[NotificationChannel, Channel] | None = None,
) -> FastAPI:
    settings = settings or NotificationSettings()
    runtime = build_runtime(settings, metadata, Path(__file__).parent / "migrations")
    messages.DEFAULTS["portal_url"] = settings.portal_url
    if channels is None:
        mailer = mailer or SmtpMailer(settings.smtp_host, settings.smtp_port)
        sms = SmsChannel(settings.sms_gateway_url, sender_name=settings.sms_sender_name)
        post = LetterChannel(settings.postal_url, today=Clock(settings.clock_file).today)
        channels = {
            NotificationChannel.EMAIL: EmailChannel(mailer, settings.mail_sender),
            NotificationChannel.SMS: sms,
            NotificationChannel.LETTER: post,
        }
        if isinstance(mailer, SmtpMailer):
            runtime.shutdown.append(mailer.close)
        runtime.shutdown += [sms.close, post.close]
    wake = asyncio.Event()
    # guichet_notifications{channel, outcome}: sent, refused (permanent), failed (retried)
    metered = metered_channels(channels, runtime.metrics, (PermanentFailure, NoPostalAddress))

    async def dispatcher() -> None:
        while not runtime.stopping.is_set():  # a stop ends it between two batches
            try:
                await asyncio.wait_for(wake.wait(), timeout=settings.dispatch_idle_seconds)
            except TimeoutError:
                pass
            wake.clear()
            try:
                while await handlers.dispatch_pending(runtime.uow, metered, settings.dispatch_batch) > 0:
                    if runtime.stopping.is_set():
                        break
            except Exception:
                log.exception("dispatch failed; retrying")
                await asyncio.sleep(1)

    runtime.commit_listeners.append(wake.set)  # a message recorded: send it now
    runtime.workers.append(dispatcher)
    consumer = runtime.consumer
    consumer.subscribe([topics.REFERENTS_ASSIGNED], {ReferentAssigned: handlers.on_referent_assigned})
    consumer.subscribe([topics.FILES_ANSWERED], {CoordinatedAnswerIssued: handlers.on_coordinated_answer})
    consumer.subscribe([topics.CONTACT_CHANGES], {ContactPreferencesChanged: handlers.on_contact_changed})
    consumer.subscribe([topics.THANKS], {ReferentThanked: handlers.on_referent_thanked})
    consumer.subscribe([topics.DOCUMENTS_REQUESTED], {SupportingDocumentRequested: handlers.on_document_requested})
    consumer.subscribe(
        [topics.FILES_AWAITING_REFERENT], {ReferentAssignmentDeferred: handlers.on_referent_assignment_deferred}
    )
    consumer.subscribe(
        [topics.DEADLINES],
        {
            DeadlineWarningIssued: handlers.on_deadline_approaching,
            LegalDeadlineBreached: handlers.on_deadline_breached,
            ImplicitDecisionRecorded: handlers.on_implicit_decision,
            LegalDeadlineSet: handlers.ignore,
        },
    )
    consumer.subscribe([topics.ACCESS_CODES], {AccessCodeIssued: handlers.on_access_code_issued})
    consumer.subscribe([topics.REFERENT_MESSAGES], {ReferentMessageSent: handlers.on_referent_message})
    return create_app(runtime, title="Guichet unique — notifications")
