"""Replies by email (issue 16 §1, "by email reply where the channel allows"): notification
gives the emails of a référent's message a signed Reply-To; intake's inbound SMTP listener
(real aiosmtpd on a free port, spoken to with smtplib over real sockets) records a reply
from the file's contact email through the citizen space's use case, and refuses the rest
with a 550, writing nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
import socket
import uuid
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from guichet_runtime.rate_limits import RateLimit
from guichet_runtime.reply_address import SIGNATURE_CHARS, file_of, reply_address, signature
from intake import inbound
from intake.api.limits import Limits
from intake.domain.replies import reply_key, without_quote
from notification import projections as notification
from notification.bootstrap import reply_to_of
from notification.channels import EmailChannel, Outgoing, email_message
from notification.mailer import SmtpMailer
from notification.settings import NotificationSettings
from shared_models import CitizenMessageReceived, NotificationChannel, ReferentMessageSent
from tests.unit.channel_doubles import SENDER
from tests.unit.samples import citizen, referent
from tests.unit.test_citizen_messages import PDF
from tests.unit.test_notification_channels import dispatch_all
from tests.unit.test_referent_desk import intake_file

KEY = "cle-de-test-des-adresses-de-reponse"
DOMAIN = "reponse.guichet.test"
AWA = "awa@example.fr"  # the contact email of intake_file's file

# ------------------------------------------------------------------ the routing address


def test_the_routing_address_verifies_only_under_its_key_and_domain():
    address = reply_address("GU-2026-ABCD2345", KEY, DOMAIN)
    sig = signature("GU-2026-ABCD2345", KEY)

    assert address == f"reponse+GU-2026-ABCD2345.{sig}@{DOMAIN}" and len(sig) == SIGNATURE_CHARS
    assert file_of(address, KEY, DOMAIN) == "GU-2026-ABCD2345"
    assert file_of(f"<{address.upper().replace('REPONSE+GU', 'reponse+GU')}>", KEY) is None
    assert file_of(address, "une-autre-cle", DOMAIN) is None
    assert file_of(address, "", DOMAIN) is None
    assert file_of(address, KEY, "ailleurs.test") is None
    other = f"reponse+GU-2026-ABCD2346.{sig}@{DOMAIN}"  # another file, the same signature
    assert file_of(other, KEY, DOMAIN) is None
    assert file_of(address.replace(sig, "0" * SIGNATURE_CHARS), KEY, DOMAIN) is None


# ------------------------------------------------------------------ the quote removed

GMAIL = """Bonjour Madame Martin,

Merci, je vous envoie l'attestation demain.

Awa Diallo

Le lun. 30 nov. 2026 à 10:02, Guichet unique <ne-pas-repondre@guichet-unique.gouv.fr> a
écrit :

> Bonjour,
> Votre dossier avance : la CAF a bien reçu votre attestation.
"""

GMAIL_ONE_LINE = """Oui, mardi me convient.
Le 30/11/2026 à 10:02, Guichet unique a écrit :
> Pouvez-vous passer mardi ?
"""

OUTLOOK = """Bien reçu, merci.

-----Original Message-----
From: Guichet unique <ne-pas-repondre@guichet-unique.gouv.fr>
Sent: lundi 30 novembre 2026 10:02
Votre dossier avance.
"""

OUTLOOK_FR = """Je n'ai pas encore reçu le courrier.

De : Guichet unique <ne-pas-repondre@guichet-unique.gouv.fr>
Envoyé : lundi 30 novembre 2026 10:02
À : awa@example.fr
Objet : Votre dossier

Votre dossier avance.
"""

THUNDERBIRD = """Merci beaucoup.

-------- Message d'origine --------
Sujet : Votre dossier
"""

INLINE = """> Pouvez-vous passer mardi ?
Oui, mardi à 14 h.
> Apportez votre livret de famille.
Je l'aurai avec moi.
"""


def test_the_quoted_previous_message_is_removed_from_french_mail_samples():
    assert without_quote(GMAIL) == (
        "Bonjour Madame Martin,\n\nMerci, je vous envoie l'attestation demain.\n\nAwa Diallo"
    )
    assert without_quote(GMAIL_ONE_LINE) == "Oui, mardi me convient."
    assert without_quote(OUTLOOK) == "Bien reçu, merci."
    assert without_quote(OUTLOOK_FR) == "Je n'ai pas encore reçu le courrier."
    assert without_quote(THUNDERBIRD) == "Merci beaucoup."
    assert without_quote(INLINE) == "Oui, mardi à 14 h.\nJe l'aurai avec moi."
    assert without_quote("> tout est cité\n>\n") == ""
    # A sentence that merely starts with "Le" is the citizen's own words.
    assert without_quote("Le courrier est arrivé hier.\nMerci.") == (
        "Le courrier est arrivé hier.\nMerci."
    )


def test_the_idempotency_key_comes_from_the_message_id_per_file():
    key = reply_key("GU-2026-ABCD2345", "<abc@mail.example>")
    assert key == reply_key("GU-2026-ABCD2345", " <abc@mail.example> ")
    assert key != reply_key("GU-2026-ABCD2346", "<abc@mail.example>")
    assert key is not None and len(key) <= 200
    assert reply_key("GU-2026-ABCD2345", None) is None


# ------------------------------------------------------------------ the inbound listener


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def listener(intake_db) -> AsyncIterator[tuple[object, int, str]]:
    """The real listener on a free port, for Awa's file with its référent: (db, port, file)."""
    file_id = await intake_file(intake_db)
    port = free_port()
    stopping, ready = asyncio.Event(), asyncio.Event()
    handler = inbound.InboundReplies(intake_db.uow, inbound.InboundSettings(KEY, DOMAIN))
    task = asyncio.create_task(inbound.serve(handler, "127.0.0.1", port, stopping, ready))
    await asyncio.wait_for(ready.wait(), 5)
    yield intake_db, port, file_id
    stopping.set()
    await task


def reply(
    file_id: str,
    text: str,
    *,
    sender: str = AWA,
    to: str | None = None,
    message_id: str | None = None,
    attachments: tuple[tuple[str, bytes, str], ...] = (),
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"Awa Diallo <{sender}>"
    mail["To"] = to or reply_address(file_id, KEY, DOMAIN)
    mail["Subject"] = f"Re: Votre dossier {file_id}"
    mail["Message-ID"] = message_id or f"<{uuid.uuid4()}@mail.example>"
    mail.set_content(text)
    for name, content, media in attachments:
        maintype, subtype = media.split("/")
        mail.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return mail


def unreadable(file_id: str) -> EmailMessage:
    """A mail in a charset nobody knows."""
    raw = (
        f"From: Awa Diallo <{AWA}>\r\nTo: {reply_address(file_id, KEY, DOMAIN)}\r\n"
        "Subject: Re: Votre dossier\r\nMessage-ID: <illisible@mail.example>\r\n"
        'Content-Type: text/plain; charset="x-inconnu"\r\n\r\nBonjour\r\n'
    ).encode()
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(mail, EmailMessage)
    return mail


def send(port: int, mail: EmailMessage, envelope_from: str | None = None) -> dict:
    """Through smtplib, as a mail server relaying the citizen's reply: {} when accepted."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.send_message(
            mail, from_addr=envelope_from or mail["From"].addresses[0].addr_spec
        )


async def smtp(port: int, mail: EmailMessage, envelope_from: str | None = None) -> str:
    """'accepted', or the listener's refusal as '<code> <text>'."""
    try:
        await asyncio.to_thread(send, port, mail, envelope_from)
    except smtplib.SMTPRecipientsRefused as exc:
        [(code, text)] = exc.recipients.values()
        return f"{code} {text.decode()}"
    except smtplib.SMTPDataError as exc:
        return f"{exc.smtp_code} {exc.smtp_error.decode()}"
    return "accepted"


async def received(db) -> list[CitizenMessageReceived]:
    return [e for _, e in await db.outbox_events() if isinstance(e, CitizenMessageReceived)]


async def test_a_reply_from_the_contact_is_recorded_once_per_message_id(listener):
    db, port, file_id = listener
    mail = reply(
        file_id,
        GMAIL,
        sender="AWA@Example.FR",  # the contact email, whatever its case
        attachments=(("attestation.pdf", PDF, "application/pdf"),),
    )

    assert await smtp(port, mail) == "accepted"
    assert await smtp(port, mail) == "accepted"  # the sender's server retries: recorded once

    [row] = await db.rows("citizen_messages")
    assert row.text.startswith("Bonjour Madame Martin,") and "a écrit" not in row.text
    assert ">" not in row.text and row.channel == "courriel" and row.file_id == file_id
    assert row.answer_due_at is not None and row.answerer_name == referent().name
    [attachment] = await db.rows("citizen_message_attachments")
    assert (attachment.media_type, attachment.content) == ("application/pdf", PDF)
    [event] = await received(db)
    assert (event.message_id, event.attachments) == (row.message_id, 1)
    assert event.answer_due_at == row.answer_due_at and event.remind_at is not None
    labels = [t.label for t in await db.rows("timeline") if t.kind == "message_citoyen"]
    assert labels == [
        f"Votre message à {referent().name} (réponse par courriel) (1 pièce(s) jointe(s)) : "
        f"« {row.text} »"
    ]
    # Another reply (another Message-ID) is another message.
    assert await smtp(port, reply(file_id, "Et merci encore.")) == "accepted"
    assert len(await received(db)) == 2


async def test_refusals_are_550_with_a_reason_and_write_nothing(listener, intake_db):
    db, port, file_id = listener
    waiting = await intake_file(intake_db, assigned=False)
    forged = f"reponse+{file_id}.{'0' * SIGNATURE_CHARS}@{DOMAIN}"
    unknown = reply_address("GU-2026-ZZZZZZZZ", KEY, DOMAIN)  # signed, but no such file
    cases = {
        "forged signature": await smtp(port, reply(file_id, "Bonjour", to=forged)),
        "unknown file": await smtp(port, reply(file_id, "Bonjour", to=unknown)),
        "another domain": await smtp(
            port, reply(file_id, "Bonjour", to=reply_address(file_id, KEY, "ailleurs.test"))
        ),
        "another sender": await smtp(port, reply(file_id, "Bonjour", sender="mallory@evil.test")),
        "the envelope of another": await smtp(
            port, reply(file_id, "Bonjour"), envelope_from="mallory@evil.test"
        ),
        "only the quote": await smtp(port, reply(file_id, "> Votre dossier avance.\n")),
        "not a document": await smtp(
            port,
            reply(file_id, "Voici.", attachments=(("note.pdf", b"MZ\x90\x00", "application/pdf"),)),
        ),
        "four documents": await smtp(
            port,
            reply(
                file_id,
                "Voici.",
                attachments=tuple((f"p{i}.pdf", PDF, "application/pdf") for i in range(4)),
            ),
        ),
        "no référent yet": await smtp(port, reply(waiting, "Bonjour")),
        "unreadable": await smtp(port, unreadable(file_id)),
    }

    assert {k: v.split(" ")[0] for k, v in cases.items()} == dict.fromkeys(cases, "550")
    for unknown_address in ("forged signature", "unknown file", "another domain"):
        assert cases[unknown_address] == inbound.UNKNOWN_ADDRESS
    assert cases["another sender"] == cases["the envelope of another"] == inbound.WRONG_SENDER
    assert cases["only the quote"] == "550 5.6.0 Ecrivez votre message avant de l'envoyer."
    assert cases["four documents"] == "550 5.6.0 Joignez au plus 3 documents a un message."
    assert cases["not a document"].startswith("550 5.6.0 ") and "PDF" in cases["not a document"]
    assert cases["no référent yet"].startswith("550 5.6.0 Aucun referent")
    assert cases["unreadable"] == inbound.UNREADABLE
    assert await db.rows("citizen_messages") == []
    assert await db.rows("citizen_message_attachments") == []
    assert await received(db) == []


# ------------------------------------------------------------------ notification's Reply-To


async def test_the_email_of_a_referents_message_carries_the_files_reply_to(notification_db, sink):
    mailer = SmtpMailer("127.0.0.1", sink.port)
    replying = EmailChannel(mailer, SENDER, lambda f: reply_address(f, KEY, DOMAIN))
    channels = {NotificationChannel.EMAIL: replying}
    event = ReferentMessageSent(
        file_id="GU-2026-REPL0001",
        message_id=str(uuid.uuid4()),
        referent=referent(),
        citizen=citizen(),
        text="Pouvez-vous m'envoyer votre attestation ?",
    )
    try:
        await notification.on_referent_message_sent(
            event, notification_db.uow(("notification", str(event.event_id)))
        )
        assert await dispatch_all(notification_db, channels) == 1
    finally:
        await mailer.close()

    [mail] = [m for m in sink.mails() if m["X-Guichet-File"] == "GU-2026-REPL0001"]
    assert mail["Reply-To"] == reply_address("GU-2026-REPL0001", KEY, DOMAIN)
    assert file_of(mail["Reply-To"], KEY, DOMAIN) == "GU-2026-REPL0001"
    [delivery] = await notification_db.rows("deliveries")
    assert mail["Message-ID"] == delivery.delivery_key  # the Message-ID keying unchanged


def test_other_emails_and_a_service_without_the_key_give_no_reply_to():
    outgoing = Outgoing(
        notification_id="n-1",
        file_id="GU-2026-REPL0001",
        channel=NotificationChannel.EMAIL,
        content={"to": AWA, "subject": "Votre dossier", "text": "Bonjour."},
        referent=referent(),
        delivery_key="<n-1@guichet>",
    )
    to_reply = dataclasses.replace(outgoing, content={**outgoing.content, "reply": True})
    reply_to = reply_to_of(NotificationSettings(reply_address_key=KEY, reply_domain=DOMAIN))
    assert reply_to is not None

    assert email_message(outgoing, SENDER, reply_to)["Reply-To"] is None
    assert email_message(to_reply, SENDER, reply_to)["Reply-To"] == reply_address(
        "GU-2026-REPL0001", KEY, DOMAIN
    )
    assert email_message(to_reply, SENDER, None)["Reply-To"] is None
    assert email_message(to_reply, SENDER, reply_to)["Message-ID"] == "<n-1@guichet>"
    assert reply_to_of(NotificationSettings(reply_address_key="")) is None


async def test_email_replies_count_on_the_files_message_quota_of_the_space(intake_db):
    file_id = await intake_file(intake_db)
    limits = Limits(intake_db)
    limits.rules["citizen_messages_per_file"] = RateLimit.parse("1/day")
    handler = inbound.InboundReplies(
        intake_db.uow,
        inbound.InboundSettings(KEY, DOMAIN),
        limits.file_counter("citizen_messages_per_file"),
    )
    port, stopping, ready = free_port(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(inbound.serve(handler, "127.0.0.1", port, stopping, ready))
    await asyncio.wait_for(ready.wait(), 5)
    try:
        first = await smtp(port, reply(file_id, "Premier message."))
        second = await smtp(port, reply(file_id, "Deuxième message."))
    finally:
        stopping.set()
        await task

    assert first == "accepted"
    assert second.startswith("451 4.7.1 "), second  # the sender's server tries again later
    assert [r.text for r in await intake_db.rows("citizen_messages")] == ["Premier message."]
