"""Views: notification's part of the citizen's export ("Mes données", RGPD art. 15;
docs/data-protection.md, "The citizen's rights"): every message recorded for the citizen of
one file (channel, address, subject, body, when it was recorded and sent, its status), each
attempt to deliver it, and the contact notification keeps for the file. Messages to agents
about the file (the référent's copy, supervisors' alerts) are not the citizen's and are left
out.

Every personal column is read through ONE function, `file_personal_data`: where the columns
are sealed with the file's data key, it is the one place that opens them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from guichet_runtime.db import UnitOfWork, utcnow
from notification.domain import Audience
from notification.personal_columns import shown
from notification.tables import contacts, deliveries, notifications

#: Who serves this part, as the export's `sources` name it.
SOURCE = "notifications"


@dataclass
class PersonalData:
    """A file's personal columns at notification, in clear."""

    #: notification id -> (recipient, subject, body)
    messages: dict[str, tuple[str | None, str, str]] = field(default_factory=dict)
    #: delivery id -> recipient
    recipients: dict[int, str | None] = field(default_factory=dict)
    contact: dict[str, Any] | None = None


async def file_personal_data(uow: UnitOfWork, file_id: str) -> PersonalData:
    """The file's personal columns (notifications.recipient, .subject, .body;
    deliveries.recipient; contacts.citizen), opened with the file's data key
    (`notification.personal_columns.shown`: "[données effacées]" once the key is shredded):
    the only reader of them here. Inside the unit of work."""
    conn, keys = uow.conn, uow.personal_data
    messages = await conn.execute(
        sa.select(
            notifications.c.notification_id,
            notifications.c.recipient,
            notifications.c.subject,
            notifications.c.body,
        ).where(notifications.c.file_id == file_id)
    )
    recipients = await conn.execute(
        sa.select(deliveries.c.id, deliveries.c.recipient).where(deliveries.c.file_id == file_id)
    )
    stored = await conn.scalar(sa.select(contacts.c.citizen).where(contacts.c.file_id == file_id))
    contact = await shown(keys, file_id, stored)
    return PersonalData(
        messages={
            r.notification_id: (
                await shown(keys, file_id, r.recipient),
                await shown(keys, file_id, r.subject) or "",
                await shown(keys, file_id, r.body) or "",
            )
            for r in messages
        },
        recipients={int(r.id): await shown(keys, file_id, r.recipient) for r in recipients},
        contact=json.loads(contact) if contact and contact.startswith("{") else None,
    )


async def citizen_part(uow: UnitOfWork, file_id: str) -> dict[str, Any]:
    """Notification's part of the export for one file (`held` false: nothing recorded)."""
    async with uow:
        conn = uow.conn
        personal = await file_personal_data(uow, file_id)
        sent = (
            await conn.execute(
                sa.select(
                    notifications.c.notification_id,
                    notifications.c.kind,
                    notifications.c.channel,
                    notifications.c.status,
                    notifications.c.created_at,
                    notifications.c.sent_at,
                )
                .where(
                    notifications.c.file_id == file_id,
                    notifications.c.audience == Audience.CITIZEN,
                )
                .order_by(notifications.c.created_at, notifications.c.notification_id)
            )
        ).all()
        attempts = (
            await conn.execute(
                sa.select(
                    deliveries.c.id,
                    deliveries.c.notification_id,
                    deliveries.c.channel,
                    deliveries.c.outcome,
                    deliveries.c.at,
                )
                .where(deliveries.c.file_id == file_id)
                .order_by(deliveries.c.at, deliveries.c.id)
            )
        ).all()
    by_message: dict[str, list[dict[str, Any]]] = {}
    for a in attempts:
        by_message.setdefault(a.notification_id, []).append(
            {
                "channel": a.channel,
                "address": personal.recipients.get(int(a.id)),
                "outcome": a.outcome,
                "at": a.at,
            }
        )
    messages = []
    for m in sent:
        recipient, subject, body = personal.messages[m.notification_id]
        messages.append(
            {
                "kind": m.kind,
                "channel": m.channel,
                "address": recipient,
                "subject": subject,
                "body": body,
                "status": m.status,
                "recorded_at": m.created_at,
                "sent_at": m.sent_at,
                "attempts": by_message.get(m.notification_id, []),
            }
        )
    return {
        "source": SOURCE,
        "file_id": file_id,
        "generated_at": utcnow(),
        "held": bool(messages) or personal.contact is not None,
        "contact": personal.contact,
        "messages": messages,
    }
