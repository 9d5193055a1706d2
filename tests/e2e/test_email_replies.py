"""Replies by email (issue 16 §1, "by email reply where the channel allows"), end to end on
the real broker, SQLite and PostgreSQL: the référent writes; the email reaching the citizen
(the SMTP sink) carries a signed Reply-To; the citizen's mail server relays their reply to
intake's inbound SMTP (smtplib, real sockets); the thread shows it without the quoted
message, the référent's inbox lists it; a retried delivery is recorded once, and a reply
from anyone but the file's contact email is refused with nothing written."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import pytest

from devstack.stack import REPLY_DOMAIN, Stack
from guichet_runtime.reply_address import file_of
from tests.e2e.support import BACKENDS, citizen_client, eventually, file_body, mails_for
from tests.e2e.test_citizen_messages import inbox_entry, referent_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request, shared_stack):
    """The session's stack on each backend (tests/e2e/conftest.py): intake listens for
    replies on `ports.inbound_smtp`; intake and notification share `reply_address_key`."""
    return shared_stack(request.param)


@pytest.fixture
async def client(stack, tokens):
    async with citizen_client(stack, tokens) as c:
        yield c


def relay(stack: Stack, mail: EmailMessage, envelope_from: str) -> str:
    """The citizen's mail server hands `mail` to intake: 'accepted' or '<code> <reason>'."""
    try:
        with smtplib.SMTP("127.0.0.1", stack.ports.inbound_smtp, timeout=20) as smtp:
            smtp.send_message(mail, from_addr=envelope_from)
    except smtplib.SMTPRecipientsRefused as exc:
        [(code, text)] = exc.recipients.values()
        return f"{code} {text.decode()}"
    except smtplib.SMTPDataError as exc:
        return f"{exc.smtp_code} {exc.smtp_error.decode()}"
    return "accepted"


def answer_to(note: EmailMessage, sender: str, text: str, message_id: str) -> EmailMessage:
    """The citizen's reply as their mail program writes it: to the Reply-To, quoting."""
    quoted = "\n".join(f"> {line}" for line in note.get_body(("plain",)).get_content().splitlines())
    mail = EmailMessage()
    mail["From"] = f"Marie Dupont <{sender}>"
    mail["To"] = note["Reply-To"]
    mail["Subject"] = f"Re: {note['Subject']}"
    mail["In-Reply-To"] = note["Message-ID"]
    mail["Message-ID"] = message_id
    mail.set_content(
        f"{text}\n\nLe lun. 30 nov. 2026 à 10:02, Guichet unique "
        f"<ne-pas-repondre@guichet-unique.gouv.fr> a écrit :\n{quoted}\n"
    )
    return mail


async def test_the_citizen_answers_the_referents_email_and_the_reply_joins_the_thread(
    stack: Stack, client, tokens
):
    email = "fil.reponses@example.fr"
    created = await client.post("/api/files", json=file_body(email=email))
    assert created.status_code == 201, created.text
    file_id = created.json()["file_id"]
    referent = await referent_of(client, file_id)
    agent = referent["agent_id"]
    as_referent = tokens.agent_id(agent)

    question = "Pouvez-vous m'envoyer votre dernière attestation de la CAF ?"
    wrote = await client.post(
        f"/api/files/{file_id}/messages", json={"text": question}, headers=as_referent
    )
    assert wrote.status_code == 201, wrote.text
    subject = f"Votre dossier {file_id} : un message de {referent['name']}"

    async def the_note():
        return [m for m in mails_for(stack.maildir, file_id) if m["Subject"] == subject]

    [note] = await eventually(the_note, what="the référent's message in the citizen's mailbox")
    assert file_of(note["Reply-To"], stack.reply_address_key, REPLY_DOMAIN) == file_id
    assert (
        note["Reply-To"].endswith(f"@{REPLY_DOMAIN}")
        and question in note.get_body(("plain",)).get_content()
    )

    text = "Bonjour, je la dépose demain à l'accueil France Services."
    reply = answer_to(note, email, text, f"<reponse-1.{file_id}@mail.example>")
    # From someone else (header and envelope): refused, nothing written.
    forged = answer_to(note, "curieux@example.org", "Je suis Marie.", "<f-1@mail.example>")
    refused = await asyncio.to_thread(relay, stack, forged, "curieux@example.org")
    assert refused.startswith("550 5.7.1 "), refused
    # The citizen's own address (its case as their mail program writes it), delivered twice
    # (their server retried after a lost answer): one message.
    assert await asyncio.to_thread(relay, stack, reply, email.upper()) == "accepted"
    assert await asyncio.to_thread(relay, stack, reply, email) == "accepted"

    waiting = await eventually(
        lambda: inbox_entry(stack, tokens, agent, file_id), what="the reply in the inbox"
    )
    assert waiting["unread"] == 1
    thread = (await client.get(f"/api/files/{file_id}/thread")).json()
    assert [(e["from"], e["text"]) for e in thread] == [("referent", question), ("citoyen", text)]
    mine = thread[-1]
    assert (mine["from"], mine["text"], mine["channel"]) == ("citoyen", text, "courriel")
    assert mine["to"] == referent["name"] and mine["answer_due_on"]
    timeline = (await client.get(f"/api/files/{file_id}")).json()["timeline"]
    assert [e for e in timeline if "(réponse par courriel)" in e["label"]]
