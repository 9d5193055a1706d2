"""Notification's use cases: record each message to send (one per file and kind), then
a dispatcher hands them to their channel and reports them sent."""

from __future__ import annotations

import datetime as dt
import json
import logging
from email.message import EmailMessage
from typing import Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from shared_models import (
    AccessCodeIssued,
    CitizenContact,
    CoordinatedAnswerIssued,
    NotificationKind,
    NotificationSent,
    Referent,
    ReferentAssigned,
    topics,
)
from notification import messages
from notification.tables import notifications

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


async def _record(
    uow: UnitOfWork,
    kind: NotificationKind,
    file_id: str,
    referent: Referent | None,
    citizen: CitizenContact,
    *,
    notification_id: str | None = None,
    recipient: str | None = None,
    **context: object,
) -> None:
    subject, body = messages.compose(kind, file_id=file_id, referent=referent, citizen=citizen, **context)
    # Other channels arrive with the SMS gateway and letters; until then a citizen
    # without an email address has the message kept, not lost.
    channel = "email"
    recipient = recipient or citizen.email
    status = "a_envoyer" if recipient else "canal_indisponible"
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    now = utcnow()
    await uow.conn.execute(
        insert_ignore(uow.conn, notifications).values(
            notification_id=notification_id or f"{file_id}:{kind.value}",
            file_id=file_id,
            kind=kind.value,
            channel=channel,
            recipient=recipient,
            subject=subject,
            body=body,
            referent_name=referent.name if referent else "",
            status=status,
            trace_headers=json.dumps(carrier),
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


async def on_referent_assigned(event: ReferentAssigned, uow: UnitOfWork) -> None:
    async with uow:
        await _record_assignment(event, uow)
        await uow.commit()


async def _record_assignment(event: ReferentAssigned, uow: UnitOfWork) -> None:
    previous = event.previous_referent
    if previous is None:
        await _record(uow, NotificationKind.REFERENT_ASSIGNED, event.file_id, event.referent, event.citizen)
        return
    # A change: the citizen and both agents are told; a file may change hands more
    # than once (supervisors), so each change has its own messages.
    change = {"previous_referent": previous, "reason": event.reason or "", "rule": event.rule}
    await _record(
        uow, NotificationKind.REFERENT_CHANGED, event.file_id, event.referent, event.citizen,
        notification_id=f"{event.file_id}:{NotificationKind.REFERENT_CHANGED.value}:{event.event_id}",
        **change,
    )
    for agent in (previous, event.referent):
        await _record(
            uow, NotificationKind.AGENT_HANDOVER, event.file_id, event.referent, event.citizen,
            notification_id=f"{event.file_id}:{NotificationKind.AGENT_HANDOVER.value}:{event.event_id}:{agent.agent_id}",
            recipient=agent.email,
            **change,
        )


async def on_coordinated_answer(event: CoordinatedAnswerIssued, uow: UnitOfWork) -> None:
    async with uow:
        await _record(
            uow, NotificationKind.ANSWER_READY, event.file_id, event.referent, event.citizen, text=event.text
        )
        await uow.commit()


async def on_access_code_issued(event: AccessCodeIssued, uow: UnitOfWork) -> None:
    """Send the one-time code; each code is its own message (a citizen may ask again)."""
    expires = event.expires_at.astimezone(ZoneInfo("Europe/Paris")).strftime("%Hh%M")
    async with uow:
        await _record(
            uow, NotificationKind.ACCESS_CODE, event.file_id, event.referent, event.citizen,
            notification_id=f"{event.file_id}:{NotificationKind.ACCESS_CODE.value}:{event.event_id}",
            code=event.code, expires_at_paris=expires,
        )
        await uow.commit()


def email_message(row: sa.Row, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row.recipient
    msg["Subject"] = row.subject
    # Stable id: one message per file and kind, recognisable if ever re-sent.
    msg["Message-ID"] = f"<{row.notification_id.replace(':', '.')}@guichet-unique.gouv.fr>"
    msg["X-Guichet-File"] = row.file_id
    msg.set_content(row.body)
    return msg


async def dispatch_pending(uow_factory, mailer: Mailer, sender: str, limit: int = 50) -> int:
    """Send one batch of due messages; returns how many were sent."""
    now = utcnow()
    async with uow_factory() as uow:
        rows = (
            await uow.conn.execute(
                sa.select(notifications)
                .where(notifications.c.status == "a_envoyer", notifications.c.next_attempt_at <= now)
                .order_by(notifications.c.created_at)
                .limit(limit)
            )
        ).all()
    tracer = trace.get_tracer("notification")
    sent = 0
    for row in rows:
        token = otel_context.attach(propagate.extract(json.loads(row.trace_headers)))
        try:
            with tracer.start_as_current_span("smtp send", kind=trace.SpanKind.CLIENT) as span:
                span.set_attribute("guichet.file_id", row.file_id)
                msg = email_message(row, sender)
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                for name, value in carrier.items():
                    msg[name] = value
                try:
                    await mailer.send(msg)
                except Exception as exc:  # the SMTP server refused or is away: retry later
                    log.warning("email %s not sent: %r", row.notification_id, exc)
                    await _failed(uow_factory(), row, exc)
                    continue
                async with uow_factory() as uow:
                    await uow.conn.execute(
                        notifications.update()
                        .where(notifications.c.notification_id == row.notification_id)
                        .values(status="envoye", sent_at=utcnow(), attempts=row.attempts + 1)
                    )
                    uow.emit(
                        topics.NOTIFICATIONS_SENT,
                        NotificationSent(
                            file_id=row.file_id,
                            notification_id=row.notification_id,
                            kind=NotificationKind(row.kind),
                            channel="email",
                            subject=row.subject,
                            referent_name=row.referent_name,
                        ),
                    )
                    await uow.commit()
                sent += 1
        finally:
            otel_context.detach(token)
    return sent


async def _failed(uow: UnitOfWork, row: sa.Row, exc: Exception) -> None:
    attempts = row.attempts + 1
    async with uow:
        await uow.conn.execute(
            notifications.update()
            .where(notifications.c.notification_id == row.notification_id)
            .values(
                attempts=attempts,
                last_error=repr(exc)[:1000],
                status="echec" if attempts >= MAX_ATTEMPTS else "a_envoyer",
                next_attempt_at=utcnow() + dt.timedelta(seconds=min(2**attempts, 300)),
            )
        )
        await uow.commit()

