"""Notification's use cases on its real SQLite database, with its real channels: a real
SMTP server (the dev sink, in this event loop) and the real SMS gateway / postal service
simulator (in a thread), both on local sockets. No broker: events are read back from the
outbox table."""

from __future__ import annotations

import json
import uuid
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest

from devstack.ports import free_port
from guichet_runtime.db import utcnow
from notification import domain, projections
from notification.channels import EmailChannel
from notification.dispatch import dispatch_pending
from notification.mailer import SmtpMailer
from shared_models import (
    ContactPreferencesChanged,
    CoordinatedAnswerIssued,
    NotificationChannel,
    NotificationSent,
    PreferredChannel,
    ReferentAssigned,
    ReferentThanked,
    RequestedDocument,
    SupportingDocumentRequested,
    topics,
)
from tests.pdfs import pdf_text
from tests.unit.channel_doubles import BOUNCING, SENDER
from tests.unit.event_samples import one_event_of_each_type
from tests.unit.samples import citizen, referent, trace_id_of

ADDRESS = {"street": "12 rue de la République", "city": "Saint-Denis"}


def referent_assigned(
    file_id: str = "GU-2025-NOTIF001", **citizen_overrides: Any
) -> ReferentAssigned:
    return ReferentAssigned(
        file_id=file_id,
        referent=referent(),
        rule="proximite",
        explanation="Yasmine Haddad : bureau dans le département.",
        citizen=citizen(**citizen_overrides),
    )


async def handle(db, handler, event) -> None:
    """As the consumer does: one unit of work keyed by the event id."""
    await handler(event, db.uow(("notification", str(event.event_id))))


async def dispatch_all(db, channels) -> int:
    sent = 0
    while (n := await dispatch_pending(db.uow, channels)) or await due(db):
        sent += n
    return sent


async def due(db) -> bool:
    rows = await db.rows("notifications")
    return any(r.status == "a_envoyer" and r.next_attempt_at <= utcnow() for r in rows)


async def attempts(db) -> list[tuple[str, str]]:
    rows = await db.rows("deliveries", order_by=db.tables.deliveries.c.id)
    return [(r.channel, r.outcome) for r in rows]


def span_trace_id(span) -> str:
    return format(span.get_span_context().trace_id, "032x")


# --------------------------------------------------------------------------- recording


@pytest.mark.parametrize(
    ("contact", "plan"),
    [
        ({}, "email,sms"),
        (ADDRESS, "email,sms,courrier"),
        ({"preferred_channel": PreferredChannel.SMS, **ADDRESS}, "sms,courrier"),
        ({"preferred_channel": PreferredChannel.LETTER, **ADDRESS}, "courrier"),
        ({"preferred_channel": PreferredChannel.PHONE, **ADDRESS}, "courrier"),
        ({"email": None, "phone": None, **ADDRESS}, "courrier"),
        ({"email": None}, "sms"),
    ],
)
def test_the_channel_plan_starts_at_the_preference_and_falls_back_to_the_letter(contact, plan):
    assert ",".join(c.value for c in domain.channel_plan(citizen(**contact))) == plan


async def test_a_referent_assigned_twice_for_one_file_records_one_message(notification_db):
    await handle(notification_db, projections.on_referent_assigned, referent_assigned(**ADDRESS))
    await handle(notification_db, projections.on_referent_assigned, referent_assigned(**ADDRESS))

    [row] = await notification_db.rows("notifications")
    assert row.notification_id == "GU-2025-NOTIF001:referent_assigned"
    assert (row.status, row.attempts, row.recipient, row.plan) == (
        "a_envoyer",
        0,
        "awa.diallo@example.fr",
        "email,sms,courrier",
    )
    content = json.loads(row.content)
    assert content["sms"]["to"] == "0612345678"
    assert content["courrier"]["to"] == [
        "Awa Diallo",
        "12 rue de la République",
        "93200 SAINT-DENIS",
    ]
    for rendered in content.values():
        assert "Yasmine Haddad" in rendered["text"] and "01 49 33 60 12" in rendered["text"]
    assert len(await notification_db.rows("inbox")) == 2


async def test_a_document_asked_again_after_an_incomplete_one_is_a_new_message_a_repeat_is_not(
    notification_db,
):
    salary = RequestedDocument(
        code="attestation_salaire", label="Attestation de salaire de l'employeur"
    )

    def asked(after_document=None):
        return SupportingDocumentRequested(
            file_id="GU-2025-NOTIF002",
            request_id="GU-2025-NOTIF002-cpam",
            agency="cpam",
            document=salary,
            referent=referent(),
            citizen=citizen(**ADDRESS),
            after_document=after_document,
            reason="Pièce incomplète : la page 2 manque."
            if after_document
            else "Pièce justificative demandée",
        )

    for event in (
        asked(),
        asked(),
        asked("doc-1"),
        asked("doc-1"),
    ):  # each one delivered twice (new event ids)
        await handle(notification_db, projections.on_supporting_document_requested, event)

    rows = await notification_db.rows("notifications")
    citizen_rows = sorted(
        (r for r in rows if not r.notification_id.endswith(":referent")),
        key=lambda r: r.notification_id,
    )
    assert [r.notification_id for r in citizen_rows] == [
        "GU-2025-NOTIF002:document_requested:GU-2025-NOTIF002-cpam:attestation_salaire",
        "GU-2025-NOTIF002:document_requested:GU-2025-NOTIF002-cpam:attestation_salaire:doc-1",
    ]
    assert len(rows) == 4  # and one each for the référent
    first, again = (json.loads(r.content)["email"]["text"] for r in citizen_rows)
    assert "incomplète" not in first
    assert "juge incomplète" in again and "la page 2 manque" in again and "Yasmine Haddad" in again


async def test_a_citizen_with_no_usable_contact_has_the_message_kept_not_lost(
    notification_db, channels
):
    # Not reachable through intake's validation, but an event from elsewhere may carry it.
    await handle(
        notification_db, projections.on_referent_assigned, referent_assigned(email=None, phone=None)
    )

    assert await dispatch_all(notification_db, channels) == 0
    [row] = await notification_db.rows("notifications")
    assert (row.status, row.plan) == ("canal_indisponible", "")


# --------------------------------------------------------------------------- sending


async def test_the_email_goes_as_html_and_text_once_and_is_reported(
    notification_db, channels, sink, tracer
):
    with tracer.start_as_current_span("consume ReferentAssigned") as span:
        await handle(notification_db, projections.on_referent_assigned, referent_assigned())

    assert await dispatch_pending(notification_db.uow, channels) == 1
    assert await dispatch_pending(notification_db.uow, channels) == 0

    [mail] = sink.mails()
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Message-ID"] == "<GU-2025-NOTIF001.referent_assigned@guichet-unique.gouv.fr>"
    assert (mail["To"], mail["From"]) == ("awa.diallo@example.fr", SENDER)
    assert "Yasmine Haddad" in mail["Subject"]
    assert trace_id_of(mail["traceparent"]) == span_trace_id(span)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    page = mail.get_body(preferencelist=("html",)).get_content()
    assert (
        "01 49 33 60 12" in text
        and "01 49 33 60 12" in page
        and "<strong>Yasmine Haddad</strong>" in page
    )

    [row] = await notification_db.rows("notifications")
    assert (row.status, row.attempts, row.channel) == ("envoye", 1, "email")
    assert await attempts(notification_db) == [("email", "envoye")]
    [(topic, reported)] = await notification_db.outbox_events()
    assert topic == topics.NOTIFICATIONS_SENT and isinstance(reported, NotificationSent)
    assert (reported.channel, reported.audience, reported.referent_name) == (
        "email",
        "citoyen",
        "Yasmine Haddad",
    )
    assert reported.subject == mail["Subject"]


async def test_a_bounced_email_falls_back_to_sms_then_a_refused_sms_to_the_letter(
    notification_db, channels, gateway, sink
):
    _, client = gateway
    client.post("/admin/faults", json={"refuse_numbers": ["0611111111"], "code": "numero_inconnu"})
    answer = next(e for e in one_event_of_each_type() if isinstance(e, CoordinatedAnswerIssued))
    answer = answer.model_copy(
        update={"citizen": citizen(email=f"awa@{BOUNCING}", phone="0611111111", **ADDRESS)}
    )
    await handle(notification_db, projections.on_coordinated_answer_issued, answer)

    assert await dispatch_all(notification_db, channels) == 1

    assert sink.mails() == [] and sink.stats()["refused"] == 1
    assert client.get("/api/sms").json() == []
    assert await attempts(notification_db) == [
        ("email", "refus_definitif"),
        ("sms", "refus_definitif"),
        ("courrier", "envoye"),
    ]
    errors = [r.error for r in await notification_db.rows("deliveries")]
    assert "550" in errors[0] and "numero_inconnu" in errors[1]
    [letter] = client.get("/api/letters").json()
    assert (
        letter["file_id"] == answer.file_id
        and letter["key"] == f"{answer.file_id}:answer_ready/courrier"
    )
    text = pdf_text(client.get(f"/api/letters/{letter['id']}.pdf").content)
    assert "93200 SAINT-DENIS" in text and "Yasmine Haddad" in text and "01 49 33 60 12" in text
    assert "Bonjour Awa Diallo" in text
    [(_, reported)] = await notification_db.outbox_events()
    assert reported.channel == NotificationChannel.LETTER
    [row] = await notification_db.rows("notifications")
    assert (row.status, row.channel, row.step) == ("envoye", "courrier", 2)


async def test_a_gateway_outage_is_retried_later_on_the_same_channel(
    notification_db, channels, gateway
):
    _, client = gateway
    client.post("/admin/faults", json={"sms_unavailable": 1})
    await handle(
        notification_db,
        projections.on_referent_assigned,
        referent_assigned(preferred_channel=PreferredChannel.SMS, **ADDRESS),
    )

    assert await dispatch_pending(notification_db.uow, channels) == 0
    [row] = await notification_db.rows("notifications")
    assert (row.status, row.channel, row.attempts) == ("a_envoyer", "sms", 1)
    assert row.next_attempt_at > utcnow()
    assert "503" in row.last_error
    # Not due yet: the next round does not hammer the gateway.
    assert await dispatch_pending(notification_db.uow, channels) == 0

    await notification_db.execute(
        notification_db.tables.notifications.update().values(next_attempt_at=utcnow())
    )
    assert await dispatch_pending(notification_db.uow, channels) == 1
    [sms] = client.get("/api/sms").json()
    assert (
        sms["to"] == "+33612345678"
        and "Yasmine Haddad" in sms["text"]
        and "01 49 33 60 12" in sms["text"]
    )
    assert await attempts(notification_db) == [("sms", "erreur_temporaire"), ("sms", "envoye")]


async def test_an_smtp_server_away_is_a_temporary_failure(notification_db, gateway):
    down = {
        NotificationChannel.EMAIL: EmailChannel(
            SmtpMailer("127.0.0.1", free_port(), timeout=2), SENDER
        )
    }
    await handle(notification_db, projections.on_referent_assigned, referent_assigned())

    assert await dispatch_pending(notification_db.uow, down) == 0
    [row] = await notification_db.rows("notifications")
    assert (row.status, row.channel, row.attempts) == ("a_envoyer", "email", 1)
    assert await attempts(notification_db) == [("email", "erreur_temporaire")]


async def test_when_every_channel_refuses_the_message_is_marked_failed(
    notification_db, channels, gateway
):
    gateway[1].post("/admin/faults", json={"refuse_numbers": ["0612345678"]})
    await handle(
        notification_db, projections.on_referent_assigned, referent_assigned(email=f"x@{BOUNCING}")
    )

    assert await dispatch_all(notification_db, channels) == 0
    [row] = await notification_db.rows("notifications")
    assert row.status == "echec"
    assert await attempts(notification_db) == [
        ("email", "refus_definitif"),
        ("sms", "refus_definitif"),
    ]


async def test_a_citizen_who_chose_the_phone_gets_a_letter_and_the_referent_is_asked_to_call(
    notification_db, channels, gateway, sink
):
    await handle(
        notification_db,
        projections.on_referent_assigned,
        referent_assigned(preferred_channel=PreferredChannel.PHONE, **ADDRESS),
    )

    assert await dispatch_all(notification_db, channels) == 2
    assert len(gateway[1].get("/api/letters").json()) == 1
    [mail] = sink.mails()
    assert mail["To"] == "yasmine.haddad@france-services.gouv.fr"
    assert mail["Subject"] == "Dossier GU-2025-NOTIF001 : appel téléphonique à passer"
    assert "0612345678" in mail.get_body(preferencelist=("plain",)).get_content()
    audiences = sorted(
        (e.kind.value, e.channel.value, e.audience)
        for _, e in await notification_db.outbox_events()
    )
    assert audiences == [
        ("call_requested", "email", "agent"),
        ("referent_assigned", "courrier", "citoyen"),
    ]


async def test_a_changed_preference_applies_to_the_next_messages_and_the_latest_change_wins(
    notification_db, channels, gateway
):
    first = ContactPreferencesChanged(
        file_id="GU-2025-NOTIF001", citizen=citizen(preferred_channel=PreferredChannel.SMS)
    )
    older = ContactPreferencesChanged(
        file_id="GU-2025-NOTIF001",
        citizen=citizen(email="ancienne@example.fr"),
        occurred_at=first.occurred_at.replace(year=first.occurred_at.year - 1),
    )
    await handle(notification_db, projections.on_contact_preferences_changed, first)
    await handle(
        notification_db, projections.on_contact_preferences_changed, older
    )  # crossed on the way: ignored
    await handle(notification_db, projections.on_referent_assigned, referent_assigned())

    assert await dispatch_all(notification_db, channels) == 1
    assert [s["to"] for s in gateway[1].get("/api/sms").json()] == ["+33612345678"]


async def test_the_thanks_reach_the_referent_by_email(notification_db, channels, sink):
    thanks = ReferentThanked(
        file_id="GU-2025-NOTIF001",
        thanks_id="t-1",
        referent=referent(),
        citizen=citizen(),
        message="Merci pour votre patience, tout est réglé.",
    )
    await handle(notification_db, projections.on_referent_thanked, thanks)
    republished = thanks.model_copy(update={"event_id": uuid.uuid4()})  # same thanks, new envelope
    await handle(notification_db, projections.on_referent_thanked, republished)

    assert await dispatch_all(notification_db, channels) == 1
    [mail] = sink.mails()
    assert mail["To"] == "yasmine.haddad@france-services.gouv.fr"
    assert (
        "Merci pour votre patience, tout est réglé."
        in mail.get_body(preferencelist=("plain",)).get_content()
    )


async def test_an_accented_address_is_delivered_and_a_failed_message_never_blocks_the_next(sink):
    mailer = SmtpMailer("127.0.0.1", sink.port)

    def mail(to: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = SENDER, to, "Votre dossier"
        msg.set_content("Bonjour")
        return msg

    try:
        await mailer.send(mail("inès.haddad@france-services.gouv.fr"))
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await mailer.send(mail(f"personne@{BOUNCING}"))
        await mailer.send(mail("marie.dupont@example.fr"))
    finally:
        await mailer.close()
    assert sorted(m["To"] for m in sink.mails()) == [
        "inès.haddad@france-services.gouv.fr",
        "marie.dupont@example.fr",
    ]


# --------------------------------------------------------------------------- never twice


async def test_a_crash_between_sending_and_marking_sent_resends_with_the_same_keys(
    notification_db, channels, gateway, sink
):
    """The row goes back to `a_envoyer` as if the service died right after the providers
    accepted: the resend carries the same keys, so the SMS gateway and the postal service
    deliver nothing twice; SMTP cannot ask whether a message arrived, so the email goes again
    with the same Message-ID, and the sink (like a real relay) stores and reports that one
    repeat (docs/notifications.md, "Never twice")."""
    for file_id, contact in (
        ("GU-2025-CRASH001", {}),
        ("GU-2025-CRASH002", {"preferred_channel": PreferredChannel.SMS}),
        ("GU-2025-CRASH003", {"preferred_channel": PreferredChannel.LETTER, **ADDRESS}),
    ):
        await handle(
            notification_db, projections.on_referent_assigned, referent_assigned(file_id, **contact)
        )
    assert await dispatch_all(notification_db, channels) == 3

    await notification_db.execute(
        notification_db.tables.notifications.update().values(
            status="a_envoyer", next_attempt_at=utcnow()
        )
    )
    assert await dispatch_all(notification_db, channels) == 3

    mails = sink.mails()
    assert len(mails) == 2 and len({m["Message-ID"] for m in mails}) == 1
    assert sink.stats()["duplicates"] == 1
    client = gateway[1]
    assert len(client.get("/api/sms").json()) == 1 and len(client.get("/api/letters").json()) == 1
    assert client.get("/stats").json()["replayed"] == 2
    assert sorted(r["kind"] for r in client.get("/repeats").json()) == ["letters", "sms"]
