"""Composition root of the notification service."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import FastAPI

from guichet_runtime.service import build_runtime, create_app
from guichet_runtime.settings import ServiceSettings
from shared_models import AccessCodeIssued, CoordinatedAnswerIssued, ReferentAssigned, topics
from notification import handlers
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
    dispatch_idle_seconds: float = 0.2


def bootstrap(settings: NotificationSettings | None = None, mailer: handlers.Mailer | None = None) -> FastAPI:
    settings = settings or NotificationSettings()
    runtime = build_runtime(settings, metadata, Path(__file__).parent / "migrations")
    mailer = mailer or SmtpMailer(settings.smtp_host, settings.smtp_port)
    wake = asyncio.Event()

    async def dispatcher() -> None:
        while True:
            try:
                await asyncio.wait_for(wake.wait(), timeout=settings.dispatch_idle_seconds)
            except TimeoutError:
                pass
            wake.clear()
            try:
                while await handlers.dispatch_pending(runtime.uow, mailer, settings.mail_sender) > 0:
                    pass
            except Exception:
                log.exception("dispatch failed; retrying")
                await asyncio.sleep(1)

    runtime.commit_listeners.append(wake.set)  # a message recorded: send it now
    runtime.workers.append(dispatcher)
    if isinstance(mailer, SmtpMailer):
        runtime.shutdown.append(mailer.close)
    runtime.consumer.subscribe([topics.REFERENTS_ASSIGNED], {ReferentAssigned: handlers.on_referent_assigned})
    runtime.consumer.subscribe([topics.FILES_ANSWERED], {CoordinatedAnswerIssued: handlers.on_coordinated_answer})
    runtime.consumer.subscribe([topics.ACCESS_CODES], {AccessCodeIssued: handlers.on_access_code_issued})
    return create_app(runtime, title="Guichet unique — notifications")
