"""Notification's use cases: record each message to send (one per file and kind, with its
channel plan and its text rendered and signed for every channel of the plan), then a
dispatcher hands it to its channel, falls back to the next channel when one refuses it
for good, and reports it sent.

Never twice: a redelivered event finds its notification id already recorded (insert
ignored); a message leaves only from a row `a_envoyer`, and the row turns `envoye` in the
same transaction as its NotificationSent event. The one window left, a crash between the
provider's acceptance and that commit, is closed provider-side: the retry carries the same
Message-ID / Idempotency-Key (see `channels`), and the providers deliver a key once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from shared_models import (
    AGENCY_LABELS,
    AccessCodeIssued,
    CitizenContact,
    ContactPreferencesChanged,
    CoordinatedAnswerIssued,
    NotificationChannel,
    NotificationKind,
    NotificationSent,
    PreferredChannel,
    Referent,
    ReferentAssigned,
    ReferentMessageSent,
    ReferentThanked,
    SupportingDocumentRequested,
    topics,
    Decision,
    ImplicitDecisionRecorded,
    DeadlineWarningIssued,
    LegalDeadlineBreached,
    ReferentAssignmentDeferred,
)
from notification import letters, messages
from notification.channels import Channel, Outgoing, PermanentFailure
from notification.tables import contacts, deliveries, notifications

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8  # temporary failures on one channel before falling back to the next
LEASE = dt.timedelta(seconds=60)  # a claimed message is retried after this if its sender died

EMAIL, SMS, LETTER = NotificationChannel.EMAIL, NotificationChannel.SMS, NotificationChannel.LETTER
FALLBACK = (EMAIL, SMS, LETTER)
START = {PreferredChannel.EMAIL: 0, PreferredChannel.SMS: 1, PreferredChannel.LETTER: 2, PreferredChannel.PHONE: 2}


def channel_plan(citizen: CitizenContact) -> list[NotificationChannel]:
    """The channels to try for a citizen, in order: from the preferred one down the
    fallback chain email → SMS → letter, skipping those the citizen gave no contact for.
    Letters are the floor: 20% of people use no digital channel."""
    reachable = {EMAIL: bool(citizen.email), SMS: bool(citizen.phone), LETTER: bool(citizen.street and citizen.city)}
    return [c for c in FALLBACK[START[citizen.preferred_channel]:] if reachable[c]]


def _recipient(channel: NotificationChannel, citizen: CitizenContact) -> list[str] | str | None:
    if channel is EMAIL:
        return citizen.email
    if channel is SMS:
        return citizen.phone
    return list(letters.address_block(citizen))


async def _latest_contact(uow: UnitOfWork, file_id: str, citizen: CitizenContact) -> CitizenContact:
    """The citizen's contact as they last changed it, else as the event carries it."""
    stored = await uow.conn.scalar(sa.select(contacts.c.citizen).where(contacts.c.file_id == file_id))
    return CitizenContact.model_validate_json(stored) if stored else citizen


async def _record(
    uow: UnitOfWork,
    kind: NotificationKind,
    file_id: str,
    referent: Referent | None,
    citizen: CitizenContact,
    *,
    notification_id: str | None = None,
    recipient: str | None = None,
    audience: str | None = None,
    channels: list[NotificationChannel] | None = None,
    **context: object,
) -> str:
    """Record one message; agents' messages go by email to `recipient` (`audience`
    overrides the kind's, for a kind whose copy also goes to the référent)."""
    notification_id = notification_id or f"{file_id}:{kind.value}"
    audience = audience or messages.KINDS[kind].audience
    if audience == "agent":
        plan = [EMAIL]
    else:
        citizen = await _latest_contact(uow, file_id, citizen)
        plan = channel_plan(citizen)
        if channels is not None:  # a kind that must go by a given channel when it can
            plan = [c for c in channels if c in plan] or plan
    values = context
    content: dict[str, dict] = {}
    for channel in plan:
        rendered = messages.render(kind, channel, file_id=file_id, referent=referent, citizen=citizen, **values)
        content[channel.value] = {
            "to": recipient if audience == "agent" else _recipient(channel, citizen),
            "subject": rendered.subject,
            "text": rendered.text,
            **({"html": rendered.html} if rendered.html else {}),
        }
    subject, body = messages.compose(kind, file_id=file_id, referent=referent, citizen=citizen, **values)
    first = plan[0] if plan else None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    now = utcnow()
    await uow.conn.execute(
        insert_ignore(uow.conn, notifications).values(
            notification_id=notification_id,
            file_id=file_id,
            kind=kind.value,
            audience=audience,
            plan=",".join(c.value for c in plan),
            step=0,
            channel=(first or EMAIL).value,
            recipient=_as_text(content[first.value]["to"]) if first else None,
            subject=subject,
            body=body,
            content=json.dumps(content, ensure_ascii=False),
            referent=referent.model_dump_json(),
            referent_name=referent.name,
            status="a_envoyer" if plan else "canal_indisponible",
            trace_headers=json.dumps(carrier),
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    return notification_id


def _as_text(to: object) -> str | None:
    return " / ".join(to) if isinstance(to, list) else (str(to) if to else None)


async def _record_for_citizen(
    uow: UnitOfWork, kind: NotificationKind, file_id: str, referent: Referent, citizen: CitizenContact,
    *, notification_id: str | None = None, **context: object,
) -> None:
    """A message to the citizen; one who asked to be phoned gets a letter, and their
    référent an email asking to call them."""
    notification_id = await _record(uow, kind, file_id, referent, citizen, notification_id=notification_id, **context)
    citizen = await _latest_contact(uow, file_id, citizen)
    if citizen.preferred_channel is PreferredChannel.PHONE and citizen.phone:
        about = messages.KINDS[kind].subject.format(file_id=file_id, referent=referent.name)
        await _record(
            uow, NotificationKind.CALL_REQUESTED, file_id, referent, citizen,
            notification_id=f"{notification_id}:appel", recipient=referent.email, about=about,
        )


async def on_referent_assigned(event: ReferentAssigned, uow: UnitOfWork) -> None:
    async with uow:
        await _record_assignment(event, uow)
        await uow.commit()


async def _record_assignment(event: ReferentAssigned, uow: UnitOfWork) -> None:
    previous = event.previous_referent
    if previous is None:
        await _record_for_citizen(uow, NotificationKind.REFERENT_ASSIGNED, event.file_id, event.referent, event.citizen)
        return
    # A change: the citizen and both agents are told; a file may change hands more
    # than once (supervisors), so each change has its own messages.
    change = {"previous_referent": previous, "reason": event.reason or "", "rule": event.rule}
    await _record_for_citizen(
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


async def on_document_requested(event: SupportingDocumentRequested, uow: UnitOfWork) -> None:
    """The agency's request for a document reaches the citizen and the référent."""
    # Asked again after an incomplete document: a message of its own, with the agency's words.
    again = event.after_document is not None
    context = {"document": event.document, "agency_label": AGENCY_LABELS[event.agency],
               "again": again, "reason": event.reason if again else None}
    key = f"{event.file_id}:{NotificationKind.DOCUMENT_REQUESTED.value}:{event.request_id}:{event.document.code}"
    if again:
        key += f":{event.after_document}"
    async with uow:
        await _record_for_citizen(
            uow, NotificationKind.DOCUMENT_REQUESTED, event.file_id, event.referent, event.citizen,
            notification_id=key, for_referent=False, **context,
        )
        await _record(
            uow, NotificationKind.DOCUMENT_REQUESTED, event.file_id, event.referent, event.citizen,
            notification_id=f"{key}:referent", recipient=event.referent.email, audience="agent",
            for_referent=True, **context,
        )
        await uow.commit()


async def on_coordinated_answer(event: CoordinatedAnswerIssued, uow: UnitOfWork) -> None:
    async with uow:
        await _record_for_citizen(
            uow, NotificationKind.ANSWER_READY, event.file_id, event.referent, event.citizen, text=event.text,
            personal_word=event.personal_word,
        )
        await uow.commit()


async def on_referent_message(event: ReferentMessageSent, uow: UnitOfWork) -> None:
    """A message the référent wrote on the desk: on the citizen's channel, signed; one per
    message id, so a redelivered event sends nothing twice."""
    async with uow:
        await _record_for_citizen(
            uow, NotificationKind.REFERENT_MESSAGE, event.file_id, event.referent, event.citizen,
            notification_id=f"{event.file_id}:{NotificationKind.REFERENT_MESSAGE.value}:{event.message_id}",
            text=event.text,
        )
        await uow.commit()


async def on_contact_changed(event: ContactPreferencesChanged, uow: UnitOfWork) -> None:
    """Later messages follow the citizen's new preferences (the latest change wins)."""
    async with uow:
        stored = await uow.conn.scalar(sa.select(contacts.c.changed_at).where(contacts.c.file_id == event.file_id))
        citizen = event.citizen.model_dump_json()
        if stored is None:
            await uow.conn.execute(
                insert_ignore(uow.conn, contacts).values(file_id=event.file_id, citizen=citizen, changed_at=event.occurred_at)
            )
        elif stored < event.occurred_at:
            await uow.conn.execute(
                contacts.update().where(contacts.c.file_id == event.file_id)
                .values(citizen=citizen, changed_at=event.occurred_at)
            )
        await uow.commit()


#: Who signs a message sent before any référent is named (the one-time access code):
#: the national public-service line, so the message still names a way to reach a person.
GUICHET_DESK = Referent(
    agent_id="guichet", name="Le guichet unique des services publics", office="Accueil du guichet unique",
    office_id="guichet", phone="39 39", email="contact@guichet-unique.gouv.fr",
)


async def on_access_code_issued(event: AccessCodeIssued, uow: UnitOfWork) -> None:
    """Send the one-time code, by email or SMS only (a letter would arrive after it
    expires); each code is its own message (a citizen may ask again)."""
    expires = event.expires_at.astimezone(ZoneInfo("Europe/Paris")).strftime("%Hh%M")
    async with uow:
        await _record(
            uow, NotificationKind.ACCESS_CODE, event.file_id, event.referent or GUICHET_DESK, event.citizen,
            notification_id=f"{event.file_id}:{NotificationKind.ACCESS_CODE.value}:{event.event_id}",
            channels=[EMAIL, SMS], code=event.code, expires_at_paris=expires,
            referent_named=event.referent is not None,
        )
        await uow.commit()


async def on_referent_thanked(event: ReferentThanked, uow: UnitOfWork) -> None:
    async with uow:
        await _record(
            uow, NotificationKind.THANKS_RECEIVED, event.file_id, event.referent, event.citizen,
            notification_id=f"{event.file_id}:{NotificationKind.THANKS_RECEIVED.value}:{event.thanks_id}",
            recipient=event.referent.email, message=event.message,
        )
        await uow.commit()


async def on_deadline_approaching(event: DeadlineWarningIssued, uow: UnitOfWork) -> None:
    """J-15 and J-7: the référent is warned (once per request and threshold)."""
    async with uow:
        await _record(
            uow, NotificationKind.DEADLINE_WARNING, event.file_id, event.referent, event.citizen,
            notification_id=f"{event.file_id}:{NotificationKind.DEADLINE_WARNING.value}:{event.request_id}:{event.threshold}",
            recipient=event.referent.email, agency_label=AGENCY_LABELS[event.agency], due_on=event.due_on,
            days_left=event.days_left, rule=event.rule.value,
        )
        await uow.commit()


async def on_deadline_breached(event: LegalDeadlineBreached, uow: UnitOfWork) -> None:
    """The breach: each supervisor of the département is warned; the message names the
    file's référent."""
    async with uow:
        for supervisor in event.supervisors:
            await _record(
                uow, NotificationKind.DEADLINE_BREACHED, event.file_id, event.referent, event.citizen,
                notification_id=(
                    f"{event.file_id}:{NotificationKind.DEADLINE_BREACHED.value}:{event.request_id}:{supervisor.supervisor_id}"
                ),
                recipient=supervisor.email, supervisor_name=supervisor.name,
                agency_label=AGENCY_LABELS[event.agency], due_on=event.due_on, rule=event.rule.value,
            )
        await uow.commit()


async def on_implicit_decision(event: ImplicitDecisionRecorded, uow: UnitOfWork) -> None:
    """The citizen receives a letter saying the silence decided (with the means of
    appeal for a rejection), signed by the référent; other channels only when there is
    no postal address."""
    async with uow:
        await _record_for_citizen(
            uow, NotificationKind.IMPLICIT_DECISION, event.file_id, event.referent, event.citizen,
            notification_id=f"{event.file_id}:{NotificationKind.IMPLICIT_DECISION.value}:{event.request_id}",
            channels=[LETTER], agency_label=AGENCY_LABELS[event.agency], due_on=event.due_on,
            decided_on=event.decided_on, accepted=event.decision is Decision.IMPLICIT_ACCEPTANCE,
        )
        await uow.commit()


async def on_referent_assignment_deferred(event: ReferentAssignmentDeferred, uow: UnitOfWork) -> None:
    """A file waits for a référent: each supervisor of the département is alerted, once
    per time the file starts waiting."""
    citizen = event.citizen
    async with uow:
        for supervisor in event.supervisors:
            desk = Referent(
                agent_id=supervisor.supervisor_id, name=supervisor.name, office="Supervision des référents",
                office_id="supervision", phone=supervisor.phone, email=supervisor.email,
            )
            await _record(
                uow, NotificationKind.SUPERVISOR_ALERT, event.file_id, desk, citizen,
                notification_id=(
                    f"{event.file_id}:{NotificationKind.SUPERVISOR_ALERT.value}:{event.event_id}:{supervisor.supervisor_id}"
                ),
                recipient=supervisor.email, supervisor_name=supervisor.name, reason=event.reason,
                urgent=event.urgent, departement=event.departement, life_event_label=event.life_event_label,
            )
        await uow.commit()


async def ignore(event: object, uow: UnitOfWork) -> None:
    """Events of a shared topic this service has nothing to do with."""


# --------------------------------------------------------------------------- dispatch


@dataclass(frozen=True)
class _Claimed:
    row: sa.Row
    channel: NotificationChannel
    outgoing: Outgoing


async def _claim(uow_factory: Callable[[], UnitOfWork], limit: int) -> list[sa.Row]:
    """Take a batch of due messages, leasing them so another replica leaves them alone."""
    now = utcnow()
    async with uow_factory() as uow:
        rows = (
            await uow.conn.execute(
                sa.select(notifications)
                .where(notifications.c.status == "a_envoyer", notifications.c.next_attempt_at <= now)
                .order_by(notifications.c.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if rows:
            await uow.conn.execute(
                notifications.update()
                .where(notifications.c.notification_id.in_([r.notification_id for r in rows]))
                .values(next_attempt_at=now + LEASE)
            )
            await uow.commit()
    return rows


def _outgoing(row: sa.Row) -> Outgoing:
    channel = NotificationChannel(row.plan.split(",")[row.step])
    return Outgoing(
        notification_id=row.notification_id,
        file_id=row.file_id,
        channel=channel,
        content=json.loads(row.content)[channel.value],
        referent=Referent.model_validate_json(row.referent),
    )


async def dispatch_pending(
    uow_factory: Callable[[], UnitOfWork],
    channels: Mapping[NotificationChannel, Channel],
    limit: int = 50,
    concurrency: int = 4,
) -> int:
    """Send one batch of due messages; returns how many were sent. The channels work
    concurrently, each with up to `concurrency` messages in flight (the SMTP channel
    serialises on its one kept-alive connection)."""
    rows = await _claim(uow_factory, limit)
    by_channel: dict[NotificationChannel, list[sa.Row]] = defaultdict(list)
    for row in rows:
        by_channel[NotificationChannel(row.plan.split(",")[row.step])].append(row)

    async def work(channel: NotificationChannel, row: sa.Row, gate: asyncio.Semaphore) -> int:
        async with gate:
            return await _send_one(uow_factory, channels[channel], row)

    gates = {c: asyncio.Semaphore(concurrency) for c in by_channel}
    results = await asyncio.gather(*(work(c, row, gates[c]) for c, batch in by_channel.items() for row in batch))
    return sum(results)


async def _send_one(uow_factory: Callable[[], UnitOfWork], channel: Channel, row: sa.Row) -> int:
    tracer = trace.get_tracer("notification")
    token = otel_context.attach(propagate.extract(json.loads(row.trace_headers)))
    try:
        outgoing = _outgoing(row)
        with tracer.start_as_current_span(f"send {outgoing.channel.value}", kind=trace.SpanKind.CLIENT) as span:
            span.set_attribute("guichet.file_id", row.file_id)
            span.set_attribute("guichet.channel", outgoing.channel.value)
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            outgoing = Outgoing(**{**outgoing.__dict__, "trace_headers": carrier})
            try:
                reference = await channel.send(outgoing)
            except PermanentFailure as exc:
                log.warning("%s refused on %s: %s", row.notification_id, outgoing.channel.value, exc)
                await _failed(uow_factory(), row, outgoing, str(exc), permanent=True)
                return 0
            except letters.NoPostalAddress as exc:
                await _failed(uow_factory(), row, outgoing, str(exc), permanent=True)
                return 0
            except Exception as exc:  # the provider is away or answered 5xx: retry later
                log.warning("%s not sent on %s: %r", row.notification_id, outgoing.channel.value, exc)
                await _failed(uow_factory(), row, outgoing, repr(exc), permanent=False)
                return 0
            await _sent(uow_factory(), row, outgoing, reference)
            return 1
    finally:
        otel_context.detach(token)


def _attempt(row: sa.Row, outgoing: Outgoing, outcome: str, *, error: str | None = None, ref: str | None = None) -> dict:
    return {
        "notification_id": row.notification_id,
        "file_id": row.file_id,
        "channel": outgoing.channel.value,
        "recipient": _as_text(outgoing.content.get("to")),
        "outcome": outcome,
        "error": error[:1000] if error else None,
        "provider_ref": ref,
        "at": utcnow(),
    }


async def _sent(uow: UnitOfWork, row: sa.Row, outgoing: Outgoing, reference: str) -> None:
    async with uow:
        await uow.conn.execute(
            notifications.update()
            .where(notifications.c.notification_id == row.notification_id)
            .values(status="envoye", sent_at=utcnow(), attempts=row.attempts + 1, channel=outgoing.channel.value,
                    recipient=_as_text(outgoing.content.get("to")))
        )
        await uow.conn.execute(deliveries.insert().values(**_attempt(row, outgoing, "envoye", ref=reference)))
        uow.emit(
            topics.NOTIFICATIONS_SENT,
            NotificationSent(
                file_id=row.file_id,
                notification_id=row.notification_id,
                kind=NotificationKind(row.kind),
                channel=outgoing.channel,
                subject=outgoing.content["subject"],
                referent_name=row.referent_name,
                audience=row.audience,
            ),
        )
        await uow.commit()


async def _failed(uow: UnitOfWork, row: sa.Row, outgoing: Outgoing, error: str, *, permanent: bool) -> None:
    attempts = row.attempts + 1
    plan = row.plan.split(",")
    now = utcnow()
    if permanent or attempts >= MAX_ATTEMPTS:
        step = row.step + 1  # fall back to the next channel now
        if step < len(plan):
            nxt = NotificationChannel(plan[step])
            values = {"step": step, "channel": nxt.value, "attempts": 0, "status": "a_envoyer", "next_attempt_at": now,
                      "recipient": _as_text(json.loads(row.content)[nxt.value]["to"])}
        else:
            values = {"attempts": attempts, "status": "echec"}
    else:
        values = {"attempts": attempts, "next_attempt_at": now + dt.timedelta(seconds=min(2**attempts, 300))}
    async with uow:
        await uow.conn.execute(
            notifications.update()
            .where(notifications.c.notification_id == row.notification_id)
            .values(last_error=error[:1000], **values)
        )
        await uow.conn.execute(
            deliveries.insert().values(
                **_attempt(row, outgoing, "refus_definitif" if permanent else "erreur_temporaire", error=error)
            )
        )
        await uow.commit()
