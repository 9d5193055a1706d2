"""A citizen's email reply to their référent (issue 16 §1, "by email reply where the channel
allows"): what of the mail becomes the message. Pure rules, no I/O.

The text is the text/plain part without the quoted previous message (the lines starting
with ">" and everything from the line introducing the quote: "Le … a écrit :", "On … wrote:",
"-----Original Message-----", "-------- Message d'origine --------", an Outlook "De : …"
followed by "Envoyé : …"). A mail with no text/plain part (some webmails and phones send
HTML only) gives the text of its HTML part, read with Beautiful Soup: the quote's blocks
(`<blockquote>`, Gmail's `gmail_quote`, Outlook's `divRplyFwdMsg` and what follows it,
Yahoo's `yahoo_quoted`) removed first, then the same line rules. The attachments are handed
as received to the same checks as the citizen space's (`thread.checked_attachments`).

The idempotency key is the mail's Message-ID. A mail without one (rare: most mail servers
add it) is keyed by a digest of its Date, From, Subject and body, which a sender's server
retrying the same delivery sends again unchanged."""

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


#: The HTML blocks mail programs put the quoted previous message in.
_QUOTE_BLOCKS = "blockquote, .gmail_quote, .yahoo_quoted, #divRplyFwdMsg, #appendonsend"
#: Outlook's quote is not nested: its header block is followed by the old message.
_QUOTE_FOLLOWS = ("divRplyFwdMsg", "appendonsend")
_BLOCKS = "p, div, br, li, tr, h1, h2, h3, h4, h5, h6"
_BREAK = "\x00"


def text_of_html(html: str) -> str:
    """The words of an HTML mail, one line per block, without the quote's blocks."""
    # Imported at the first HTML-only reply (most mail clients send a text part too):
    # beautifulsoup4 is 13 MB of memory intake does not need otherwise.
    from bs4 import BeautifulSoup  # noqa: PLC0415

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "head", "title"]):
        tag.decompose()
    for marker in _QUOTE_FOLLOWS:
        start = soup.find(id=marker)
        if start is not None:
            for later in list(start.find_all_next()):
                later.decompose()
    for block in soup.select(_QUOTE_BLOCKS):
        block.decompose()
    for block in soup.select(_BLOCKS):
        block.insert_after(_BREAK)
    # The source's own line ends are spaces; only the blocks end lines.
    lines = (" ".join(line.split()) for line in soup.get_text().split(_BREAK))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def reply_text(mail: EmailMessage) -> str:
    """The text/plain part of the mail, else the text of its HTML part, without the quote
    ("" when it has neither)."""
    body = mail.get_body(preferencelist=("plain", "html"))
    if body is None or body.get_payload(decode=True) is None:
        return ""
    content = body.get_content()
    text = content if isinstance(content, str) else ""
    if body.get_content_type() == "text/html":
        text = text_of_html(text)
    return without_quote(text)


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


def reply_key_of(file_id: str, mail: EmailMessage, raw: bytes) -> str:
    """The idempotency key of a received mail: its Message-ID's, or, without one, a digest
    of its Date, From, Subject and body (`raw` after the header), so a retried delivery of
    the same mail is still recorded once."""
    key = reply_key(file_id, mail.get("Message-ID"))
    if key is not None:
        return key
    body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")[2]
    heads = "\0".join(str(mail.get(h, "")).strip() for h in ("Date", "From", "Subject"))
    digest = hashlib.sha256(f"{file_id}\0{heads}\0".encode() + body).hexdigest()
    return REPLY_KEY_PREFIX + "contenu:" + digest[:40]


def smtp_text(text: str) -> str:
    """A French reason in an SMTP reply, which is ASCII: accents dropped, one line."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(folded.split())[:300]
