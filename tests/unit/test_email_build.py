"""The email channel builds its messages with plain headers kept as strings and the header
classes of the others kept (`notification.channels._PlainHeadersKept`,
`_KeptHeaderClasses`): the bytes sent are exactly those the standard `EmailMessage` policy
gives, for a plain message, for one with an accented name, a reply address, trace headers
and a calendar attachment, and for one whose ASCII subject is too long for one line."""

from __future__ import annotations

import email.policy
import random
import sys
from email.message import EmailMessage
from unittest import mock

import pytest

from notification import channels
from notification.channels import Outgoing, email_message
from notification.mailer import _POLICY as SENT_AS
from notification.mailer import envelope, message_bytes
from notification.messages import render, text_to_html
from shared_models import NotificationChannel, NotificationKind
from tests.unit.samples import citizen, referent

SENDER = "Guichet unique <ne-pas-repondre@guichet.example.fr>"
ICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"


def outgoing(**content: object) -> Outgoing:
    rendered = render(
        NotificationKind.REFERENT_ASSIGNED,
        NotificationChannel.EMAIL,
        file_id="GU-2026-BUILD001",
        referent=referent(),
        citizen=citizen(),
    )
    return Outgoing(
        notification_id="n-1",
        file_id="GU-2026-BUILD001",
        channel=NotificationChannel.EMAIL,
        content={
            "to": "Inès Dupré <ines.dupre@example.fr>",
            "subject": rendered.subject + " — éàç",
            "text": rendered.text,
            "html": rendered.html,
            **content,
        },
        referent=referent(),
        delivery_key="<n-1.email@guichet.example.fr>",
        trace_headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )


def standard_bytes(message_of: Outgoing, reply_to: channels.ReplyTo | None) -> bytes:
    """The same message built with `EmailMessage`'s own default policy."""
    with mock.patch.object(channels, "_POLICY", email.policy.default):
        built = email_message(message_of, SENDER, reply_to)
    assert built.policy is email.policy.default
    random.seed(7)  # the same MIME boundaries
    return built.as_bytes(policy=SENT_AS)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {
            "reply": True,
            "attachments": [
                {
                    "content_type": "text/calendar",
                    "text": ICS,
                    "filename": "rendez-vous.ics",
                    "params": {"method": "REQUEST"},
                }
            ],
        },
        {
            "to": "ines.dupre@example.fr",
            "subject": "Votre dossier " + " ".join(["GU-2026-LONG"] * 8),
        },
    ],
    ids=["plain", "reply-and-attachment", "ascii-and-folded"],
)
def test_a_message_is_byte_for_byte_the_standard_one(extra: dict[str, object]):
    message_of = outgoing(**extra)

    def reply_to(file_id: str) -> str:
        return f"dossier+{file_id}@reponses.example.fr"

    with mock.patch.object(
        channels, "format_datetime", return_value="Wed, 02 Dec 2026 15:00:00 +0000"
    ):
        kept = email_message(message_of, SENDER, reply_to)
        expected = standard_bytes(message_of, reply_to)

    assert isinstance(kept, EmailMessage)
    assert kept.policy is not email.policy.default
    random.seed(7)
    assert message_bytes(kept) == expected
    stored = dict(kept.raw_items())
    assert type(stored["Message-ID"]) is str and type(stored["X-Guichet-File"]) is str
    if "to" not in extra:  # the accented name and subject are encoded, from header objects
        assert "=?utf-8?" in expected.decode()
        assert type(stored["To"]) is not str and type(stored["Subject"]) is not str
    else:  # longer than a line of the build's policy: parsed, and sent on one line
        assert type(stored["To"]) is str and type(stored["Subject"]) is not str
        assert ("Subject: " + message_of.content["subject"] + "\r\n").encode() in expected


def test_the_header_classes_are_made_once_per_name():
    registry = channels._KeptHeaderClasses()
    assert registry["Subject"] is registry["subject"]
    assert registry["To"] is not registry["Subject"]
    standard = email.policy.default.header_factory
    assert (
        registry["To"]("To", "Inès <ines@example.fr>").addresses
        == standard("To", "Inès <ines@example.fr>").addresses
    )


def test_the_envelope_is_read_from_headers_kept_as_strings_or_parsed():
    built = email_message(outgoing(), SENDER, None)  # From kept as a string, To parsed (accents)
    assert envelope(built) == ("ne-pas-repondre@guichet.example.fr", ["ines.dupre@example.fr"])
    built.replace_header("To", "a@example.fr, Bé <b@example.fr>")
    assert envelope(built)[1] == ["a@example.fr", "b@example.fr"]


def test_a_boundary_found_in_the_text_is_drawn_again_as_the_standard_generator_does():
    random.seed(11)
    first = "=" * 15 + f"{random.randrange(sys.maxsize):0{len(repr(sys.maxsize - 1))}d}" + "=="
    message_of = outgoing(text=f"Bonjour,\n--{first}\nfin du texte\n")
    built = email_message(message_of, SENDER, None)
    random.seed(11)
    sent = message_bytes(built)
    random.seed(11)
    assert sent == built.as_bytes(policy=SENT_AS)  # the standard generator's choice too
    assert f'boundary="{first}.0"'.encode() in sent
    parsed = email.message_from_bytes(sent, policy=email.policy.default)
    assert f"--{first}" in parsed.get_body(preferencelist=("plain",)).get_content()


def test_a_plain_text_body_becomes_escaped_paragraphs_and_line_breaks():
    text = "Bonjour Inès <b>&</b>,\n\nVotre dossier est reçu.\nLigne « deux ».\n\n\n  Fin\n"
    html_body = text_to_html(text)
    assert html_body == (
        "<p>Bonjour Inès &lt;b&gt;&amp;&lt;/b&gt;,</p>\n"
        "<p>Votre dossier est reçu.<br>Ligne « deux ».</p>\n"
        "<p>Fin</p>"
    )
    assert html_body.__html__() == str(html_body)  # markup, not escaped again in a template
