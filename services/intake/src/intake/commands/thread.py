"""The citizen writes to their référent from their space, on their own file: the message
(with its attachments) joins the file's thread and timeline, and `CitizenMessageReceived`
tells assignment who answers, for the référent's inbox."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field

from guichet_runtime.db import UnitOfWork, utcnow
from intake.commands.idempotency import once_per_key, request_digest
from intake.domain import TimelineKind, ensure_not_erased
from intake.domain.promise import DEFAULT_WORKING_DAYS, answer_promise
from intake.domain.thread import (
    BY_EMAIL_REPLY,
    Upload,
    checked_attachments,
    citizen_message_label,
    citizen_message_text,
    who_answers,
)
from intake.records import add_timeline, file_for_update
from intake.tables import citizen_message_attachments, citizen_messages
from intake.views.thread import citizen_message_out
from shared_models import CitizenMessageReceived, topics


@dataclass(frozen=True)
class WriteToReferent:
    """What the citizen sends: their words and up to three documents."""

    file_id: str
    text: str | None
    attachments: list[Upload] = field(default_factory=list)
    idempotency_key: str | None = None
    promise_working_days: int = DEFAULT_WORKING_DAYS
    #: The instant the answer-time promise counts from: the service's clock (a rehearsal
    #: date under CLOCK_FILE); the real now when not given.
    promise_from: dt.datetime | None = None
    #: Came as a reply to the email of a référent's message (intake.inbound), from the
    #: file's contact email: recorded with the channel `courriel`.
    by_email: bool = False


async def write_to_referent(cmd: WriteToReferent, uow: UnitOfWork) -> tuple[dict, bool]:
    """The file's citizen writes to the agent who answers for the file (their référent, or
    the cover during an absence; the answer says who). A retried request with the same
    Idempotency-Key returns the first message and sends nothing more. Returns (message,
    created)."""
    text = citizen_message_text(cmd.text)
    checked = checked_attachments(cmd.attachments)
    digest = request_digest(
        cmd.file_id, text, *(hashlib.sha256(a.content).hexdigest() for a in checked)
    )

    async def create() -> dict:
        row = await file_for_update(uow, cmd.file_id)
        ensure_not_erased(row.erased_at)
        answerer = who_answers(row.referent, row.covering_for)
        now = utcnow()
        promise = answer_promise(cmd.promise_from or now, cmd.promise_working_days)
        message_id = str(uuid.uuid4())
        await uow.conn.execute(
            citizen_messages.insert().values(
                message_id=message_id,
                file_id=cmd.file_id,
                text=text,
                answerer_id=answerer.referent.agent_id,
                answerer_name=answerer.referent.name,
                covering_for_name=answerer.covering_for.name if answerer.covering_for else None,
                idempotency_key=cmd.idempotency_key,
                request_digest=digest,
                at=now,
                answer_due_at=promise.due_at,
                channel=BY_EMAIL_REPLY if cmd.by_email else None,
            )
        )
        attached = []
        for upload in checked:
            attachment_id = str(uuid.uuid4())
            attached.append(
                {
                    "attachment_id": attachment_id,
                    "filename": upload.filename,
                    "media_type": upload.media_type,
                    "size_bytes": len(upload.content),
                }
            )
            await uow.conn.execute(
                citizen_message_attachments.insert().values(
                    attachment_id=attachment_id,
                    message_id=message_id,
                    file_id=cmd.file_id,
                    filename=upload.filename,
                    media_type=upload.media_type,
                    size_bytes=len(upload.content),
                    sha256=hashlib.sha256(upload.content).hexdigest(),
                    content=upload.content,
                )
            )
        event = CitizenMessageReceived(
            file_id=cmd.file_id,
            occurred_at=now,
            message_id=message_id,
            referent=answerer.referent,
            covering_for=answerer.covering_for,
            attachments=len(checked),
            remind_at=promise.remind_at,
            answer_due_at=promise.due_at,
        )
        label = citizen_message_label(answerer, text, len(checked), cmd.by_email)
        await add_timeline(uow, event, TimelineKind.CITIZEN_MESSAGE, label)
        uow.emit(topics.CITIZEN_MESSAGES, event)
        return {
            "message_id": message_id,
            "file_id": cmd.file_id,
            "text": text,
            "at": now,
            "answerer_name": answerer.referent.name,
            "covering_for_name": answerer.covering_for.name if answerer.covering_for else None,
            "message": answerer.sentence(promise.last_day),
            "answer_due_at": promise.due_at,
            "answer_due_on": promise.last_day,
            "attachments": attached,
        }

    return await once_per_key(
        uow,
        citizen_messages,
        cmd.idempotency_key,
        digest,
        create=create,
        replay=citizen_message_out,
        conflict="Cette clé d'idempotence a déjà servi pour un autre message.",
    )
