"""Notification's dispatcher (use case): hand each recorded message to the channel of its
plan, fall back to the next channel when one refuses it for good (`domain.after_failure`),
and report it sent.

Never twice: a message leaves only from a row `a_envoyer`, claimed with a lease so that
replicas do not take the same one, and the row turns `envoye` in the same transaction as
its NotificationSent event. Each attempt is recorded first, in a transaction of its own,
with its delivery key (`domain.delivery_key`: the Message-ID, the Idempotency-Key) and the
outcome `envoi_en_cours`; then the provider is called with that key; then the outcome is
recorded. The one window left, a crash between the provider's acceptance and that last
commit, leaves the attempt `envoi_en_cours`: once the lease expires the message is
presented again with the key recorded, and the attempt's `resent` counts it. The SMS and
postal providers answer a known key from their first answer (nothing delivered twice);
SMTP cannot be asked, so the email may arrive twice under one Message-ID: counted, logged,
never hidden (docs/notifications.md, "Never twice").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from guichet_runtime.crashpoints import crash_point
from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.metrics import MeteredChannel
from guichet_runtime.personal_data import CannotOpen as Unreadable
from guichet_runtime.personal_data import KeyShredded, KeyUnavailable
from guichet_runtime.sealing import CannotOpen, Keyring
from guichet_runtime.statements import param, params, prepared
from notification import domain, personal_columns
from notification.channels import Channel, Outgoing, PermanentFailure
from notification.domain import DeliveryOutcome, FallBack, NotificationStatus, Retry
from notification.personal_columns import OpenedMessage
from notification.tables import deliveries, notifications, plan_of
from shared_models import (
    AccessCodeIssued,
    NotificationChannel,
    NotificationKind,
    NotificationSent,
    Referent,
    SealedSecret,
    topics,
)

log = logging.getLogger(__name__)
UowFactory = Callable[[], UnitOfWork]


async def dispatch_pending(
    uow_factory: UowFactory,
    channels: Mapping[NotificationChannel, Channel],
    limit: int = 50,
    concurrency: int = 4,
    keyring: Keyring | None = None,
    lease: dt.timedelta = domain.LEASE,
) -> int:
    """Send one batch of due messages; returns how many were sent. The channels work
    concurrently, each with up to `concurrency` messages in flight (the SMTP channel
    serialises on its one kept-alive connection). `keyring` opens the sealed secrets
    (access codes) at send time."""
    rows = await _claim(uow_factory, limit, lease)
    by_channel: dict[NotificationChannel, list[sa.Row[Any]]] = defaultdict(list)
    for row in rows:
        by_channel[_current_channel(row)].append(row)

    async def work(channel: NotificationChannel, row: sa.Row[Any], gate: asyncio.Semaphore) -> int:
        async with gate:
            return await _send_one(uow_factory, channels[channel], row, keyring)

    gates = {c: asyncio.Semaphore(concurrency) for c in by_channel}
    results = await asyncio.gather(
        *(work(c, row, gates[c]) for c, batch in by_channel.items() for row in batch)
    )
    return sum(results)


async def dispatch_forever(
    uow_factory: UowFactory,
    channels: Mapping[NotificationChannel, Channel],
    wake: asyncio.Event,
    *,
    idle_seconds: float,
    batch: int,
    stopping: asyncio.Event | None = None,
    keyring: Keyring | None = None,
    lease: dt.timedelta = domain.LEASE,
) -> None:
    """The dispatcher's loop: send everything due whenever a message is recorded (`wake`)
    or every `idle_seconds` (retries falling due). Once `stopping` is set (SIGTERM) it
    returns between two batches, so a message is never cut between its sending and its
    recording."""
    stopping = stopping or asyncio.Event()
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=idle_seconds)
        wake.clear()
        try:
            while (
                await dispatch_pending(uow_factory, channels, batch, keyring=keyring, lease=lease)
                > 0
            ):
                if stopping.is_set():
                    break
        except Exception:
            log.exception("dispatch failed; retrying")
            await asyncio.sleep(1)


def _current_channel(row: sa.Row[Any] | OpenedMessage) -> NotificationChannel:
    """The channel being tried: the plan's step-th."""
    step: int = row.step
    return plan_of(row.plan)[step]


async def _claim(
    uow_factory: UowFactory, limit: int, lease: dt.timedelta = domain.LEASE
) -> list[sa.Row[Any]]:
    """Take a batch of due messages, leasing them so another replica leaves them alone; a
    planned one (`programme`) whose time has come is taken as one to send."""
    now = utcnow()
    async with uow_factory() as uow:
        rows = (
            await uow.conn.execute(
                sa.select(notifications)
                .where(
                    notifications.c.status.in_(
                        [NotificationStatus.TO_SEND.value, NotificationStatus.PLANNED.value]
                    ),
                    notifications.c.next_attempt_at <= now,
                )
                .order_by(notifications.c.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if rows:
            await uow.conn.execute(
                notifications.update()
                .where(notifications.c.notification_id.in_([r.notification_id for r in rows]))
                .values(next_attempt_at=now + lease, status=NotificationStatus.TO_SEND.value)
            )
            await uow.commit()
    return list(rows)


async def _opened(
    uow_factory: UowFactory, channel: Channel, row: sa.Row[Any]
) -> OpenedMessage | None:
    """The claimed message with its address and texts opened with the citizen's data key
    (`personal_columns`), at send time. None when it cannot go: the key was shredded (the
    message is recorded as erased and counted, never sent), the content was altered (given
    up), or the key cannot be had now (the key service away: tried again after the lease)."""
    try:
        return await personal_columns.open_message(uow_factory().personal_data, row)
    except KeyShredded:
        log.warning("%s not sent: the citizen's data were erased", row.notification_id)
        await personal_columns.record_erased(uow_factory(), row.notification_id)
        if isinstance(channel, MeteredChannel):
            channel.metrics.count_notification(channel.name, "erased")
    except Unreadable:
        log.error("%s not sent: its sealed content was altered", row.notification_id)
        await personal_columns.record_unreadable(uow_factory(), row.notification_id)
    except KeyUnavailable as exc:
        log.warning("%s waits for the citizen's data key: %s", row.notification_id, exc)
    return None


def _outgoing(row: OpenedMessage, trace_headers: dict[str, str]) -> Outgoing:
    channel = _current_channel(row)
    return Outgoing(
        notification_id=row.notification_id,
        file_id=row.file_id,
        channel=channel,
        content=json.loads(row.content)[channel.value],
        referent=Referent.model_validate_json(row.referent),
        delivery_key=domain.delivery_key(row.notification_id, channel),
        trace_headers=trace_headers,
    )


def _revealed(row: OpenedMessage, outgoing: Outgoing, keyring: Keyring | None) -> Outgoing:
    """What the provider receives: the message with its sealed secret (the access code)
    opened and put in place; the stored message and `outgoing` keep the placeholder."""
    if row.sealed_secret is None:
        return outgoing
    if keyring is None:
        raise PermanentFailure("no key to open the access code")
    sealed = SealedSecret.model_validate_json(row.sealed_secret)
    try:
        secret = keyring.open(sealed, AccessCodeIssued.sealing_context(row.file_id))
    except CannotOpen as exc:
        raise PermanentFailure(f"access code cannot be opened: {exc}") from None
    return dataclasses.replace(outgoing, content=domain.reveal(outgoing.content, secret))


async def _send_one(
    uow_factory: UowFactory, channel: Channel, claimed: sa.Row[Any], keyring: Keyring | None = None
) -> int:
    row = await _opened(uow_factory, channel, claimed)
    if row is None:
        return 0
    tracer = trace.get_tracer("notification")
    token = otel_context.attach(propagate.extract(json.loads(row.trace_headers)))
    try:
        name = _current_channel(row).value
        with tracer.start_as_current_span(f"send {name}", kind=trace.SpanKind.CLIENT) as span:
            span.set_attribute("guichet.file_id", row.file_id)
            span.set_attribute("guichet.channel", name)
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            outgoing = _outgoing(row, carrier)
            attempt = await _record_sending(uow_factory(), row, outgoing)
            outgoing = dataclasses.replace(outgoing, delivery_key=attempt.key)
            try:
                reference = await channel.send(_revealed(row, outgoing, keyring))
            except (PermanentFailure, domain.NoPostalAddress) as exc:
                log.warning("%s refused on %s: %s", row.notification_id, name, exc)
                await _failed(uow_factory(), row, outgoing, attempt, str(exc), permanent=True)
                return 0
            except Exception as exc:  # the provider is away or answered 5xx: retry later
                log.warning("%s not sent on %s: %r", row.notification_id, name, exc)
                await _failed(uow_factory(), row, outgoing, attempt, repr(exc), permanent=False)
                return 0
            # Accepted, not recorded: the attempt stays `envoi_en_cours`; after the lease it
            # is presented again with the key recorded (`_record_sending`).
            crash_point("notification.after_send")
            await _sent(uow_factory(), row, outgoing, attempt, reference)
            return 1
    finally:
        otel_context.detach(token)


def _attempt(
    row: OpenedMessage,
    outgoing: Outgoing,
    outcome: DeliveryOutcome,
    *,
    error: str | None = None,
    ref: str | None = None,
) -> dict[str, object]:
    """A row of `deliveries`: one attempt on one channel."""
    return {
        "notification_id": row.notification_id,
        "file_id": row.file_id,
        "channel": outgoing.channel.value,
        "recipient": row.sealing.seal(domain.recipient_text(outgoing.content.get("to"))),
        "outcome": outcome.value,
        "error": row.sealing.seal(error[:1000]) if error else None,
        "provider_ref": ref,
        "at": utcnow(),
    }


@dataclasses.dataclass(frozen=True)
class Attempt:
    """An attempt recorded before the provider is called: its row in `deliveries`, the key
    it presents, and how many times it was presented again after being cut."""

    delivery_id: int
    key: str
    resent: int


@prepared
def _cut_attempt() -> sa.Select[Any]:
    c = deliveries.c
    return (
        sa.select(c.id, c.delivery_key, c.resent)
        .where(
            c.notification_id == param(c.notification_id),
            c.channel == param(c.channel),
            c.outcome == DeliveryOutcome.SENDING.value,
        )
        .order_by(c.id)
        .limit(1)
    )


@prepared
def _new_attempt() -> sa.Insert:
    return deliveries.insert().returning(deliveries.c.id)


@prepared
def _attempt_outcome() -> sa.Update:
    return deliveries.update().where(deliveries.c.id == param(deliveries.c.id))


@prepared
def _marked_sent() -> sa.Update:
    c = notifications.c
    return notifications.update().where(
        c.notification_id == param(c.notification_id),
        c.status == NotificationStatus.TO_SEND.value,
    )


async def _record_sending(uow: UnitOfWork, row: OpenedMessage, outgoing: Outgoing) -> Attempt:
    """Record the attempt and its key, committed before the provider is called. An attempt
    of this message on this channel left `envoi_en_cours` was cut after (perhaps) reaching
    the provider: it is taken up again, with the key it recorded, and counted as resent."""
    async with uow:
        cut = (
            await uow.conn.execute(
                _cut_attempt(),
                params(notification_id=row.notification_id, channel=outgoing.channel.value),
            )
        ).first()
        if cut is not None:
            attempt = Attempt(cut.id, cut.delivery_key or outgoing.delivery_key, cut.resent + 1)
            await uow.conn.execute(
                deliveries.update()
                .where(deliveries.c.id == attempt.delivery_id)
                .values(resent=attempt.resent, at=utcnow())
            )
            # Reported, not hidden: the provider may hold this message already. The SMS and
            # postal providers answer the same key from their first answer; an SMTP relay
            # delivers the email again under the same Message-ID.
            log.warning(
                "%s: attempt on %s was cut before its outcome was recorded; presented again "
                "with key %s (resent %d)",
                row.notification_id,
                outgoing.channel.value,
                attempt.key,
                attempt.resent,
            )
        else:
            delivery_id = await uow.conn.scalar(
                _new_attempt(),
                {
                    **_attempt(row, outgoing, DeliveryOutcome.SENDING),
                    "delivery_key": outgoing.delivery_key,
                },
            )
            attempt = Attempt(int(delivery_id), outgoing.delivery_key, 0)
        await uow.commit()
    return attempt


async def _record_outcome(
    uow: UnitOfWork,
    row: OpenedMessage,
    outgoing: Outgoing,
    attempt: Attempt,
    outcome: DeliveryOutcome,
    *,
    error: str | None = None,
    ref: str | None = None,
    recipient: bool = True,
) -> None:
    """The attempt's outcome in place of `envoi_en_cours` (in the caller's transaction);
    `recipient=False` leaves the recipient as it stands (erased meanwhile, perhaps)."""
    values = _attempt(row, outgoing, outcome, error=error, ref=ref)
    if not recipient:
        del values["recipient"]
    # The SET clause is the keys of `values` (the statement is built once, without one).
    await uow.conn.execute(_attempt_outcome(), {**values, **params(id=attempt.delivery_id)})


async def _sent(
    uow: UnitOfWork, row: OpenedMessage, outgoing: Outgoing, attempt: Attempt, reference: str
) -> None:
    async with uow:
        marked = await uow.conn.execute(
            _marked_sent(),
            {
                **params(notification_id=row.notification_id),
                "status": NotificationStatus.SENT.value,
                "sent_at": utcnow(),
                "attempts": row.attempts + 1,
                "channel": outgoing.channel.value,
                "recipient": row.sealing.seal(domain.recipient_text(outgoing.content.get("to"))),
                "sealed_secret": None,  # sent: nothing here opens to the code any more
            },
        )
        marked_now = marked.rowcount == 1
        await _record_outcome(
            uow, row, outgoing, attempt, DeliveryOutcome.SENT, ref=reference, recipient=marked_now
        )
        if not marked_now:
            # No longer `a_envoyer`: another sender (a replica that took it up once the lease
            # expired) reported it sent with the same key, or the citizen's data was erased
            # meanwhile. Recorded as delivered; NotificationSent is not emitted twice.
            await uow.commit()
            return
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


def _after_failure_values(row: OpenedMessage, *, permanent: bool) -> dict[str, object]:
    """The row's new state after a failed attempt, as `domain.after_failure` decides."""
    now = utcnow()
    then = domain.after_failure(plan_of(row.plan), row.step, row.attempts, permanent=permanent)
    if isinstance(then, Retry):
        return {"attempts": then.attempts, "next_attempt_at": now + then.delay}
    if isinstance(then, FallBack):
        return {
            "step": then.step,
            "channel": then.channel.value,
            "attempts": 0,
            "status": NotificationStatus.TO_SEND.value,
            "next_attempt_at": now,
            "recipient": row.sealing.seal(
                domain.recipient_text(json.loads(row.content)[then.channel.value]["to"])
            ),
        }
    return {
        "attempts": then.attempts,
        "status": NotificationStatus.FAILED.value,
        "sealed_secret": None,  # given up: the secret is of no use any more
    }


async def _failed(
    uow: UnitOfWork,
    row: OpenedMessage,
    outgoing: Outgoing,
    attempt: Attempt,
    error: str,
    *,
    permanent: bool,
) -> None:
    outcome = DeliveryOutcome.REFUSED if permanent else DeliveryOutcome.TEMPORARY_ERROR
    async with uow:
        await uow.conn.execute(
            notifications.update()
            .where(notifications.c.notification_id == row.notification_id)
            .values(
                last_error=row.sealing.seal(error[:1000]),
                **_after_failure_values(row, permanent=permanent),
            )
        )
        await _record_outcome(uow, row, outgoing, attempt, outcome, error=error)
        await uow.commit()
