"""Replies by email from mail programs that send HTML only, or no Message-ID (issue 16 §1):
the HTML's words become the message without the quoted previous message, and a mail
without a Message-ID is still recorded once when the sender's server retries it."""

from __future__ import annotations

from email.message import EmailMessage

from intake.domain.replies import reply_key_of, reply_text, text_of_html
from tests.unit.test_email_replies import listener, received, reply, smtp  # noqa: F401

GMAIL_HTML = """<div dir="ltr">Bonjour Madame Martin,<div><br></div><div>Je serai là
 mardi à 14&nbsp;h.</div><div>Awa Diallo</div></div><br><div class="gmail_quote"><div
 dir="ltr" class="gmail_attr">Le lun. 30 nov. 2026 à 10:02, Claire Martin &lt;ne-pas-repondre@
guichet.test&gt; a écrit&nbsp;:<br></div><blockquote class="gmail_quote">Votre dossier
 avance.</blockquote></div>"""

OUTLOOK_HTML = """<html><head><style>p {margin:0}</style></head><body><div>
<p>Bien reçu, merci.</p><p>&nbsp;</p></div><hr style="display:inline-block">
<div id="divRplyFwdMsg" dir="ltr"><b>De :</b> Claire Martin<br><b>Envoyé :</b> lundi 30
 novembre 2026 10:02</div><div>Votre dossier avance.</div></body></html>"""

APPLE_HTML = """<html><body>Merci beaucoup&nbsp;!<br><br><div><blockquote type="cite">
<div>Le 30 nov. 2026 à 10:02, Claire Martin a écrit :</div><div>Votre dossier avance.
</div></blockquote></div></body></html>"""


def test_the_words_of_an_html_mail_without_its_quote():
    assert text_of_html(GMAIL_HTML) == (
        "Bonjour Madame Martin,\n\nJe serai là mardi à 14 h.\nAwa Diallo"
    )
    assert text_of_html(OUTLOOK_HTML) == "Bien reçu, merci."
    assert text_of_html(APPLE_HTML) == "Merci beaucoup !"
    assert text_of_html("<p>Une ligne</p><p>Une autre</p>") == "Une ligne\nUne autre"
    assert text_of_html("<script>alert(1)</script><p>Bonjour</p>") == "Bonjour"


def html_only(file_id: str, html: str, message_id: str | None = "<html@mail.example>"):
    mail = reply(file_id, "inutile")
    mail.set_content(html, subtype="html")
    del mail["Message-ID"]
    if message_id is not None:
        mail["Message-ID"] = message_id
    return mail


def test_the_plain_part_wins_and_an_html_only_mail_gives_its_words():
    alternative = reply("GU-2026-ABCD2345", "Le texte brut.")
    alternative.add_alternative("<p>Le texte <b>HTML</b>.</p>", subtype="html")
    assert reply_text(alternative) == "Le texte brut."
    assert reply_text(html_only("GU-2026-ABCD2345", GMAIL_HTML)).startswith("Bonjour Madame")
    assert reply_text(EmailMessage()) == ""


def test_a_mail_without_message_id_is_keyed_by_its_content():
    first = html_only("GU-2026-ABCD2345", "<p>Oui.</p>", message_id=None)
    first["Date"] = "Mon, 30 Nov 2026 10:05:00 +0100"
    raw = bytes(first)
    key = reply_key_of("GU-2026-ABCD2345", first, raw)
    assert key == reply_key_of("GU-2026-ABCD2345", first, raw.replace(b"\n", b"\r\n"))
    assert key != reply_key_of("GU-2026-ABCD2346", first, raw)
    other = html_only("GU-2026-ABCD2345", "<p>Non.</p>", message_id=None)
    other["Date"] = "Mon, 30 Nov 2026 10:05:00 +0100"
    assert key != reply_key_of("GU-2026-ABCD2345", other, bytes(other))
    later = html_only("GU-2026-ABCD2345", "<p>Oui.</p>", message_id=None)
    later["Date"] = "Mon, 30 Nov 2026 11:40:00 +0100"  # the same words, another mail
    assert key != reply_key_of("GU-2026-ABCD2345", later, bytes(later))
    with_id = html_only("GU-2026-ABCD2345", "<p>Oui.</p>")
    assert reply_key_of("GU-2026-ABCD2345", with_id, bytes(with_id)) != key


async def test_an_html_only_reply_without_message_id_is_recorded_once(listener):  # noqa: F811
    db, port, file_id = listener
    mail = html_only(file_id, OUTLOOK_HTML, message_id=None)
    mail["Date"] = "Mon, 30 Nov 2026 10:05:00 +0100"

    assert await smtp(port, mail) == "accepted"
    assert await smtp(port, mail) == "accepted"  # the sender's server retries: recorded once

    [row] = await db.rows("citizen_messages")
    assert (row.text, row.channel) == ("Bien reçu, merci.", "courriel")
    assert len(await received(db)) == 1
    # The same words in another mail (another Date) are another message.
    again = html_only(file_id, OUTLOOK_HTML, message_id=None)
    again["Date"] = "Mon, 30 Nov 2026 18:00:00 +0100"
    assert await smtp(port, again) == "accepted"
    assert len(await received(db)) == 2
