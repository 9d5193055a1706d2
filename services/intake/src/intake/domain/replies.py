"""A citizen's email reply to their référent (issue 16 §1, "by email reply where the channel
allows"): what of the mail becomes the message. Pure rules, no I/O.

The text is the text/plain part without the quoted previous message (the lines starting
with ">" and everything from the line introducing the quote: "Le … a écrit :", "On … wrote:",
"-----Original Message-----", "-------- Message d'origine --------", an Outlook "De : …"
followed by "Envoyé : …"). The attachments are handed as received to the same checks as
the citizen space's (`thread.checked_attachments`)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from email.message import EmailMessage

from intake.domain.thread import Upload

#: The idempotency key of a reply: its Message-ID, so a retried delivery records it once.
REPLY_KEY_PREFIX = "courriel:"

_WROTE = re.compile(r"(a\s+écrit|wrote)\s*:\s*$", re.IGNORECASE)
_INTRO = re.compile(r"^\s*(le|on)\s", re.IGNORECASE)
_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*(original message|message d'origine|message original|message transféré)"
    r"\s*-{2,}\s*$",
    re.IGNORECASE,
)
_OUTLOOK_FROM = re.compile(r"^\s*(de|from)\s*:", re.IGNORECASE)
_OUTLOOK_SENT = re.compile(r"^\s*(envoyé|sent|date)\s*:", re.IGNORECASE)


def _quote_starts(lines: list[str], i: int) -> bool:
    line = lines[i]
    after = lines[i + 1] if i + 1 < len(lines) else ""
    if _ORIGINAL.match(line):
        return True
    if _INTRO.match(line) and (
        _WROTE.search(line.rstrip()) or _WROTE.search(f"{line.rstrip()} {after.strip()}")
    ):
        return True  # "Le lun. 30 nov. 2026 à 10:02, X <x@y> a écrit :", on one or two lines
    return bool(_OUTLOOK_FROM.match(line) and _OUTLOOK_SENT.match(after))


def without_quote(text: str) -> str:
    """The citizen's own words: the quoted previous message removed, trimmed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        if _quote_starts(lines, i):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def reply_text(mail: EmailMessage) -> str:
    """The text/plain part of the mail, without the quote ("" when it has none)."""
    body = mail.get_body(preferencelist=("plain",))
    if body is None:
        return ""
    content = body.get_content()
    return without_quote(content if isinstance(content, str) else "")


def reply_attachments(mail: EmailMessage) -> list[Upload]:
    """The mail's attachments, as received (their checks are the citizen space's)."""
    uploads = []
    for part in mail.iter_attachments():
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        uploads.append(Upload(part.get_filename() or "piece", part.get_content_type(), content))
    return uploads


def reply_key(file_id: str, message_id: str | None) -> str | None:
    """The idempotency key of a reply: from its Message-ID (none without one)."""
    if not message_id or not message_id.strip():
        return None
    digest = hashlib.sha256(f"{file_id}\0{message_id.strip()}".encode()).hexdigest()
    return REPLY_KEY_PREFIX + digest[:48]


def smtp_text(text: str) -> str:
    """A French reason in an SMTP reply, which is ASCII: accents dropped, one line."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(folded.split())[:300]
