"""Recording the messages an event calls for (notification's handlers all go through here):
the channel plan, the texts rendered and signed for every channel of it, sealed with the
file's key, and the call a citizen who asked to be phoned gets from their référent.

Never twice: the same fact under a new event id finds its notification id
(`domain.notification_key`) already recorded, and the insert is ignored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from opentelemetry import propagate

from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from guichet_runtime.personal_data import KeyShredded
from guichet_runtime.statements import param, params, prepared
from notification import domain
from notification.domain import Audience
from notification.messages import KINDS, compose, render, subject_of
from notification.personal_columns import sealing_of, sealing_that_sealed
from notification.tables import contacts, notifications, plan_text
from shared_models import (
    CitizenContact,
    CitizenName,
    NotificationChannel,
    NotificationKind,
    Referent,
    SealedSecret,
)

Kind = NotificationKind


@prepared
def _contact_of() -> sa.Select[Any]:
    return sa.select(contacts.c.citizen).where(contacts.c.file_id == param(contacts.c.file_id))


async def latest_contact(uow: UnitOfWork, file_id: str, citizen: CitizenContact) -> CitizenContact:
    """The citizen's contact as they last changed it, else as the event carries it."""
    stored = await uow.conn.scalar(_contact_of(), params(file_id=file_id))
    if stored:
        with contextlib.suppress(KeyShredded):  # erased: the event's (it just opened) stands
            opened = (await sealing_that_sealed(uow.personal_data, file_id, stored)).open(stored)
            return CitizenContact.model_validate_json(opened or "")
    return citizen


async def record(
    uow: UnitOfWork,
    kind: NotificationKind,
    file_id: str,
    referent: Referent,
    citizen: CitizenContact | CitizenName,
    context: Mapping[str, object] | None = None,
    *,
    notification_id: str | None = None,
    recipient: str | None = None,
    audience: Audience | None = None,
    channels: Sequence[NotificationChannel] | None = None,
    sealed: SealedSecret | None = None,
    contact_as_given: bool = False,
    email_attachments: Sequence[Mapping[str, object]] | None = None,
    not_before: dt.datetime | None = None,
    latest_known: bool = False,
) -> str:
    """Record one message (`context`: what its templates say besides the file, the
    référent and the citizen). Agents' messages go by email to `recipient` (`audience`
    overrides the kind's, for a kind whose copy also goes to the référent). A citizen is
    written to at their latest contact, unless `contact_as_given` (a notice to the contact
    they just left). `sealed`: a secret the texts hold as a placeholder, stored sealed and
    put in place only when sending. `email_attachments`: text files the email carries (an
    appointment's calendar file, `ics.attachment`); the SMS and the letter do not.
    `not_before`: a later time it leaves at (`programme` until then: a reminder letter).
    `latest_known`: `citizen` is their latest contact already (`latest_contact`)."""
    context = context or {}
    notification_id = notification_id or domain.notification_key(file_id, kind)
    audience = audience or KINDS[kind].audience
    to_citizen = audience is Audience.CITIZEN and not contact_as_given
    if to_citizen and isinstance(citizen, CitizenContact) and not latest_known:
        citizen = await latest_contact(uow, file_id, citizen)
    plan = domain.message_plan(audience, citizen, channels)
    content: dict[str, dict[str, object]] = {}
    for channel in plan:
        rendered = render(
            kind, channel, file_id=file_id, referent=referent, citizen=citizen, **context
        )
        content[channel.value] = {
            "to": (
                domain.recipient(channel, citizen)
                if isinstance(citizen, CitizenContact) and audience is not Audience.AGENT
                else recipient
            ),
            "subject": rendered.subject,
            "text": rendered.text,
            **({"html": rendered.html} if rendered.html else {}),
            **(
                {"attachments": [dict(a) for a in email_attachments]}
                if email_attachments and channel is domain.EMAIL
                else {}
            ),
            # The citizen may answer it by email: the channel adds the file's Reply-To.
            **(
                {"reply": True}
                if to_citizen and channel is domain.EMAIL and kind in domain.REPLYABLE
                else {}
            ),
        }
    subject, body = compose(kind, file_id=file_id, referent=referent, citizen=citizen, **context)
    first = plan[0] if plan else None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    now = due = utcnow()
    status = domain.initial_status(plan)
    if not_before is not None and not_before > now and plan:
        status, due = domain.NotificationStatus.PLANNED, not_before
    sealing = await sealing_of(uow, file_id)  # the personal columns, sealed if the file has a key
    await uow.conn.execute(
        insert_ignore(uow.conn, notifications),
        {
            "notification_id": notification_id,
            "file_id": file_id,
            "kind": kind.value,
            "audience": audience.value,
            "plan": plan_text(plan),
            "step": 0,
            "channel": (first or domain.EMAIL).value,
            "recipient": sealing.seal(domain.recipient_text(content[first.value]["to"]))
            if first
            else None,
            "subject": sealing.seal(subject),
            "body": sealing.seal(body),
            "content": sealing.seal(json.dumps(content, ensure_ascii=False)),
            "referent": referent.model_dump_json(),
            "sealed_secret": sealed.model_dump_json() if sealed else None,
            "referent_name": referent.name,
            "status": status.value,
            "trace_headers": json.dumps(carrier),
            "attempts": 0,
            "next_attempt_at": due,
            "created_at": now,
        },
    )
    return notification_id


async def record_for_citizen(
    uow: UnitOfWork,
    kind: NotificationKind,
    file_id: str,
    referent: Referent,
    citizen: CitizenContact,
    context: Mapping[str, object] | None = None,
    *,
    notification_id: str | None = None,
    channels: Sequence[NotificationChannel] | None = None,
    email_attachments: Sequence[Mapping[str, object]] | None = None,
) -> None:
    """A message to the citizen; one who asked to be phoned gets a letter, and their
    référent an email asking to call them."""
    citizen = await latest_contact(uow, file_id, citizen)  # read once, for both
    notification_id = await record(
        uow,
        kind,
        file_id,
        referent,
        citizen,
        context,
        notification_id=notification_id,
        channels=channels,
        email_attachments=email_attachments,
        latest_known=True,
    )
    if domain.wants_a_call(citizen):
        await record(
            uow,
            Kind.CALL_REQUESTED,
            file_id,
            referent,
            citizen,
            {"about": subject_of(kind, file_id, referent)},
            notification_id=domain.call_request_key(notification_id),
            recipient=referent.email,
        )
