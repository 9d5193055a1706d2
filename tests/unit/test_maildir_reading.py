"""devstack.smtp_sink.read_maildir on a long-lived sink: each stored message parsed once."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage

from devstack.smtp_sink import read_maildir


def mail(n: int) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = f"Message {n}"
    msg["Message-ID"] = f"<m{n}@example.fr>"
    msg.set_content(f"corps {n}")
    return msg.as_bytes()


def test_messages_read_again_are_not_parsed_again_and_new_ones_follow(tmp_path):
    box = mailbox.Maildir(tmp_path / "mail", create=True)
    first = box.add(mail(1))
    box.add(mail(2))
    before = read_maildir(tmp_path / "mail")
    assert [m["Subject"] for m in before] == ["Message 1", "Message 2"]
    box.add(mail(3))
    after = read_maildir(tmp_path / "mail")
    assert [m["Subject"] for m in after] == ["Message 1", "Message 2", "Message 3"]
    assert after[0] is before[0] and after[1] is before[1]  # parsed once
    box.remove(first)  # DELETE /messages: gone from the reading too
    assert [m["Subject"] for m in read_maildir(tmp_path / "mail")] == ["Message 2", "Message 3"]
