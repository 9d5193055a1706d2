"""The email channel builds its messages with the header classes kept
(`notification.channels._KeptHeaderClasses`): the bytes sent are exactly those the
standard `EmailMessage` policy gives, for a plain message and for one with an accented
name, a reply address, trace headers and a calendar attachment."""

from __future__ import annotations

import email.policy
import random
from email.message import EmailMessage
from unittest import mock

import pytest

from notification import channels
from notification.channels import Outgoing, email_message
from notification.mailer import _POLICY as SENT_AS
from notification.messages import render
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
    ],
    ids=["plain", "reply-and-attachment"],
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
    assert kept.as_bytes(policy=SENT_AS) == expected
    assert "=?utf-8?" in expected.decode()  # the accented name and subject are encoded


def test_the_header_classes_are_made_once_per_name():
    registry = channels._KeptHeaderClasses()
    assert registry["Subject"] is registry["subject"]
    assert registry["To"] is not registry["Subject"]
    standard = email.policy.default.header_factory
    assert (
        registry["To"]("To", "Inès <ines@example.fr>").addresses
        == standard("To", "Inès <ines@example.fr>").addresses
    )
