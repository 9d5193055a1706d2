"""The file's thread as the citizen and the desk read it: the citizen's messages (with
their attachments) and the référent's, oldest first."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from guichet_runtime.db import UnitOfWork
from guichet_runtime.refusals import RefusalKind, Refused
from intake.domain import unknown_file
from intake.domain.promise import last_day_of
from intake.domain.thread import who_answers_sentence
from intake.records import file_exists
from intake.tables import citizen_message_attachments, citizen_messages, referent_messages


class ThreadAuthor(StrEnum):
    """Who wrote a line of the thread (the `from` of each entry)."""

    CITIZEN = "citoyen"
    REFERENT = "referent"


def citizen_message_out(row: sa.Row, attachments: list[dict[str, Any]] | None = None) -> dict:
    """A citizen's message, as the POST returns it (and a replay of it)."""
    return {
        "message_id": row.message_id,
        "file_id": row.file_id,
        "text": row.text,
        "at": row.at,
        "answerer_name": row.answerer_name,
        "covering_for_name": row.covering_for_name,
        "message": who_answers_sentence(
            row.answerer_name, row.covering_for_name, last_day_of(row.answer_due_at)
        ),
        "answer_due_at": row.answer_due_at,
        "answer_due_on": last_day_of(row.answer_due_at),
        "attachments": attachments or [],
    }


def _attachment_out(row: sa.Row) -> dict[str, Any]:
    return {
        "attachment_id": row.attachment_id,
        "filename": row.filename,
        "media_type": row.media_type,
        "size_bytes": row.size_bytes,
    }


async def thread_of(uow: UnitOfWork, file_id: str) -> list[dict[str, Any]]:
    """Every message of the file's thread, oldest first; NOT_FOUND for an unknown file."""
    async with uow:
        if not await file_exists(uow, file_id):
            raise unknown_file(file_id)
        mine = (
            await uow.conn.execute(
                sa.select(citizen_messages).where(citizen_messages.c.file_id == file_id)
            )
        ).all()
        joined = (
            await uow.conn.execute(
                sa.select(
                    citizen_message_attachments.c.message_id,
                    citizen_message_attachments.c.attachment_id,
                    citizen_message_attachments.c.filename,
                    citizen_message_attachments.c.media_type,
                    citizen_message_attachments.c.size_bytes,
                )
                .where(citizen_message_attachments.c.file_id == file_id)
                .order_by(citizen_message_attachments.c.attachment_id)
            )
        ).all()
        theirs = (
            await uow.conn.execute(
                sa.select(referent_messages).where(referent_messages.c.file_id == file_id)
            )
        ).all()
    by_message: dict[str, list[dict[str, Any]]] = {}
    for a in joined:
        by_message.setdefault(a.message_id, []).append(_attachment_out(a))
    entries = [
        {
            "message_id": m.message_id,
            "from": ThreadAuthor.CITIZEN,
            "author": None,
            "to": m.answerer_name,
            "covering_for": m.covering_for_name,
            "text": m.text,
            "at": m.at,
            "attachments": by_message.get(m.message_id, []),
            "channel": m.channel,
            "answer_due_on": last_day_of(m.answer_due_at),
            "answered_at": m.answered_at,
        }
        for m in mine
    ] + [
        {
            "message_id": m.message_id,
            "from": ThreadAuthor.REFERENT,
            "author": m.agent_name,
            "to": None,
            "covering_for": None,
            "text": m.text,
            "at": m.at,
            "attachments": [],
            "channel": m.channel,
        }
        for m in theirs
    ]
    entries.sort(key=lambda e: (e["at"], e["message_id"]))
    return entries


async def attachment_of(uow: UnitOfWork, file_id: str, attachment_id: str) -> sa.Row:
    """One attachment of the file's thread, with its content; NOT_FOUND otherwise."""
    async with uow:
        row = (
            await uow.conn.execute(
                sa.select(citizen_message_attachments).where(
                    citizen_message_attachments.c.file_id == file_id,
                    citizen_message_attachments.c.attachment_id == attachment_id,
                )
            )
        ).first()
    if row is None:
        raise unknown_attachment()
    return row


def unknown_attachment() -> Refused:
    return Refused(
        RefusalKind.NOT_FOUND, "Aucune pièce jointe de ce dossier ne porte cet identifiant."
    )
