"""The référent's messages to the citizen, written on the desk; notification carries each
on the citizen's channel, signed."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from guichet_runtime import audit
from guichet_runtime.auth.principal import Principal
from guichet_runtime.db import UnitOfWork, utcnow
from intake.commands.idempotency import once_per_key, request_digest
from intake.domain import (
    TimelineKind,
    elapsed_seconds,
    ensure_current_referent_writes,
    ensure_not_erased,
)
from intake.records import add_timeline, file_for_update
from intake.tables import citizen_messages, referent_messages
from intake.views.files import message_out
from shared_models import CitizenContact, ReferentMessageSent, topics


async def send_referent_message(
    file_id: str,
    agent_id: str,
    text: str,
    uow: UnitOfWork,
    idempotency_key: str | None = None,
    by: Principal | None = None,
) -> tuple[dict, bool]:
    """The file's current référent writes to the citizen. A retried request with the same
    Idempotency-Key returns the first message and sends nothing more. Returns (message,
    created)."""
    digest = request_digest(file_id, agent_id, text)

    async def create() -> dict:
        row = await file_for_update(uow, file_id)
        ensure_not_erased(row.erased_at)
        referent = ensure_current_referent_writes(row.referent, agent_id)
        now = utcnow()
        message_id = str(uuid.uuid4())
        await uow.conn.execute(
            referent_messages.insert().values(
                message_id=message_id,
                file_id=file_id,
                agent_id=agent_id,
                agent_name=referent.name,
                text=text,
                idempotency_key=idempotency_key,
                request_digest=digest,
                at=now,
            )
        )
        await answer_citizen_messages(uow, file_id, now)
        event = ReferentMessageSent(
            file_id=file_id,
            occurred_at=now,
            message_id=message_id,
            referent=referent,
            citizen=CitizenContact.model_validate(row.citizen),
            text=text,
        )
        await add_timeline(
            uow,
            event,
            TimelineKind.REFERENT_MESSAGE,
            f"Message de votre référent, {referent.name} : « {text} »",
        )
        uow.emit(topics.REFERENT_MESSAGES, event)
        audit.record(
            uow,
            by or audit.agent_actor(agent_id),
            audit.AuditAction.MESSAGE_SENT,
            file_id=file_id,
            message_id=message_id,
        )
        return {
            "message_id": message_id,
            "file_id": file_id,
            "agent_id": agent_id,
            "agent_name": referent.name,
            "text": text,
            "at": now,
            "channel": None,
            "delivered_at": None,
        }

    return await once_per_key(
        uow,
        referent_messages,
        idempotency_key,
        digest,
        create=create,
        replay=message_out,
        conflict="Cette clé d'idempotence a déjà servi pour un autre message.",
    )


async def answer_citizen_messages(uow: UnitOfWork, file_id: str, now: dt.datetime) -> None:
    """The référent's message answers every message of the citizen's still unanswered in
    the file's thread (the published answer times, docs/indicators.md)."""
    waiting = (
        await uow.conn.execute(
            sa.select(citizen_messages.c.message_id, citizen_messages.c.at).where(
                citizen_messages.c.file_id == file_id, citizen_messages.c.answered_at.is_(None)
            )
        )
    ).all()
    for message in waiting:
        await uow.conn.execute(
            citizen_messages.update()
            .where(citizen_messages.c.message_id == message.message_id)
            .values(answered_at=now, answer_delay_s=elapsed_seconds(message.at, now))
        )
