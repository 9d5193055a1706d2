"""Delivery keys (issue 14 §3): each attempt is recorded with the key its receiver knows it by
before the provider is called; a crash between the provider's acceptance and the recording
of the outcome leaves the attempt `envoi_en_cours`, and the resend presents the key
recorded. The real SQLite database, the real SMTP sink and the real SMS / postal simulator
(fixtures in conftest.py); the crash is the dispatcher's own crash point, made to raise."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from guichet_runtime.db import utcnow
from notification import dispatch, domain, projections
from notification.dispatch import dispatch_pending
from shared_models import NotificationChannel, NotificationSent, PreferredChannel
from tests.unit.test_notification_channels import ADDRESS, handle, referent_assigned

CONTACTS = {
    "email": {},
    "sms": {"preferred_channel": PreferredChannel.SMS},
    "courrier": {"preferred_channel": PreferredChannel.LETTER, **ADDRESS},
}


class Killed(BaseException):
    """The process dying (not an error the dispatcher would record)."""


async def record(db, contact: str, file_id: str) -> str:
    event = referent_assigned(file_id, **CONTACTS[contact])
    await handle(db, projections.on_referent_assigned, event)
    return f"{file_id}:referent_assigned"


async def deliveries(db) -> list[Any]:
    return await db.rows("deliveries", order_by=db.tables.deliveries.c.id)


async def lease_expired(db) -> None:
    """What a restart finds once the dead process's lease is over."""
    await db.execute(db.tables.notifications.update().values(next_attempt_at=utcnow()))


def crash_after_send(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Arm `notification.after_send` once: the process 'dies' right after the provider
    accepted. Returns the points reached."""
    reached: list[str] = []

    def crash(name: str) -> None:
        reached.append(name)
        if name == "notification.after_send" and reached.count(name) == 1:
            raise Killed(name)

    monkeypatch.setattr(dispatch, "crash_point", crash)
    return reached


def test_the_key_is_stable_per_message_and_channel_and_the_email_key_is_a_message_id():
    nid = "GU-2025-KEY0001:referent_assigned"
    assert domain.delivery_key(nid, NotificationChannel.EMAIL) == (
        "<GU-2025-KEY0001.referent_assigned@guichet-unique.gouv.fr>"
    )
    assert domain.delivery_key(nid, NotificationChannel.SMS) == f"{nid}/sms"
    assert domain.delivery_key(nid, NotificationChannel.LETTER) == f"{nid}/courrier"
    assert domain.delivery_key(nid, NotificationChannel.SMS) == domain.delivery_key(
        nid, NotificationChannel.SMS
    )


async def test_the_attempt_and_its_key_are_committed_before_the_provider_is_called(
    notification_db, channels
):
    nid = await record(notification_db, "sms", "GU-2025-KEY0002")
    seen: list[tuple[str, str | None, str]] = []

    class Watching:
        """Reads, from another connection, what was committed when the provider is called."""

        async def send(self, outgoing) -> str:
            [row] = await deliveries(notification_db)
            seen.append((row.outcome, row.delivery_key, outgoing.delivery_key))
            return await channels[NotificationChannel.SMS].send(outgoing)

    assert await dispatch_pending(notification_db.uow, {NotificationChannel.SMS: Watching()}) == 1

    assert seen == [("envoi_en_cours", f"{nid}/sms", f"{nid}/sms")]
    [row] = await deliveries(notification_db)
    assert (row.outcome, row.delivery_key, row.resent) == ("envoye", f"{nid}/sms", 0)


@pytest.mark.parametrize("contact", ["sms", "courrier"])
async def test_a_crash_after_the_provider_accepted_delivers_once_with_the_recorded_key(
    notification_db, channels, gateway, monkeypatch, contact
):
    """SMS and letters: the resend presents the recorded key; the provider answers it from its
    first answer and counts a replay, not a second message."""
    reached = crash_after_send(monkeypatch)
    nid = await record(notification_db, contact, f"GU-2025-KEY1{contact[:3].upper()}")

    with pytest.raises(Killed):
        await dispatch_pending(notification_db.uow, channels)
    [cut] = await deliveries(notification_db)
    assert (cut.outcome, cut.delivery_key, cut.resent) == ("envoi_en_cours", f"{nid}/{contact}", 0)
    [row] = await notification_db.rows("notifications")
    assert row.status == "a_envoyer"
    assert await notification_db.outbox_events() == []

    await lease_expired(notification_db)
    assert await dispatch_pending(notification_db.uow, channels) == 1

    assert reached == ["notification.after_send"] * 2
    [done] = await deliveries(notification_db)  # the same attempt, its outcome recorded
    assert (done.id, done.outcome, done.delivery_key, done.resent) == (
        cut.id,
        "envoye",
        cut.delivery_key,
        1,
    )
    client = gateway[1]
    path = "/api/sms" if contact == "sms" else "/api/letters"
    [delivered] = client.get(path).json()
    assert delivered["key"] == cut.delivery_key and done.provider_ref == delivered["id"]
    [repeat] = client.get("/repeats").json()
    assert (repeat["key"], repeat["calls"]) == (cut.delivery_key, 2)
    assert client.get("/stats").json()["replayed"] == 1
    [(_, sent)] = await notification_db.outbox_events()
    assert isinstance(sent, NotificationSent) and sent.channel == contact


async def test_a_crash_after_the_smtp_server_accepted_resends_the_recorded_message_id_counted(
    notification_db, channels, sink, monkeypatch
):
    """SMTP cannot be asked whether a message arrived: the email goes again, under the
    Message-ID recorded before the first send; the attempt counts the resend, and the sink
    (like a relay) stores and reports the same repeat. Never a message under another id."""
    crash_after_send(monkeypatch)
    nid = await record(notification_db, "email", "GU-2025-KEY2EML")

    with pytest.raises(Killed):
        await dispatch_pending(notification_db.uow, channels)
    [cut] = await deliveries(notification_db)
    assert cut.outcome == "envoi_en_cours"
    assert cut.delivery_key == domain.delivery_key(nid, NotificationChannel.EMAIL)

    await lease_expired(notification_db)
    assert await dispatch_pending(notification_db.uow, channels) == 1

    [done] = await deliveries(notification_db)
    assert (done.outcome, done.delivery_key, done.resent) == ("envoye", cut.delivery_key, 1)
    copies = collections.Counter(m["Message-ID"] for m in sink.mails())
    assert copies == {cut.delivery_key: 2}
    assert sink.stats()["duplicates"] == done.resent == 1
    assert len(await notification_db.outbox_events()) == 1


async def test_a_crash_before_the_provider_was_reached_is_counted_and_sends_once(
    notification_db, channels, sink
):
    """Cut after the recording, before the SMTP server got it: the resend is counted (we
    cannot know) and the sink stores the message once."""
    await record(notification_db, "email", "GU-2025-KEY3EML")

    class DyingFirst:
        async def send(self, outgoing) -> str:
            raise Killed("before the provider")

    with pytest.raises(Killed):
        await dispatch_pending(notification_db.uow, {NotificationChannel.EMAIL: DyingFirst()})
    await lease_expired(notification_db)
    assert await dispatch_pending(notification_db.uow, channels) == 1

    [done] = await deliveries(notification_db)
    assert (done.outcome, done.resent) == ("envoye", 1)
    assert [m["Message-ID"] for m in sink.mails()] == [done.delivery_key]
    assert sink.stats()["duplicates"] == 0


async def test_a_retry_after_a_temporary_failure_presents_the_same_key(
    notification_db, channels, gateway
):
    """A timeout may hide an acceptance: the retry must carry the key the provider knows."""
    gateway[1].post("/admin/faults", json={"sms_unavailable": 1})
    nid = await record(notification_db, "sms", "GU-2025-KEY4SMS")

    assert await dispatch_pending(notification_db.uow, channels) == 0
    await lease_expired(notification_db)
    assert await dispatch_pending(notification_db.uow, channels) == 1

    rows = await deliveries(notification_db)
    assert [(r.outcome, r.delivery_key, r.resent) for r in rows] == [
        ("erreur_temporaire", f"{nid}/sms", 0),
        ("envoye", f"{nid}/sms", 0),
    ]
    assert len(gateway[1].get("/api/sms").json()) == 1


async def test_a_message_another_sender_reported_meanwhile_is_not_reported_twice(
    notification_db, channels, gateway
):
    """While this sender was at the provider, another (a replica that took the message up
    once the lease expired, with the same key) recorded it sent: this sender records its
    attempt's outcome but does not emit NotificationSent a second time."""
    await record(notification_db, "sms", "GU-2025-KEY5SMS")

    class ReportedMeanwhile:
        async def send(self, outgoing) -> str:
            reference = await channels[NotificationChannel.SMS].send(outgoing)
            await notification_db.execute(
                notification_db.tables.notifications.update().values(status="envoye")
            )
            return reference

    await dispatch_pending(notification_db.uow, {NotificationChannel.SMS: ReportedMeanwhile()})

    assert await notification_db.outbox_events() == []
    [done] = await deliveries(notification_db)
    assert done.outcome == "envoye"
    assert len(gateway[1].get("/api/sms").json()) == 1
