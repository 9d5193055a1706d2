"""Infrastructure: SMTP delivery over one kept-alive connection (no connection set-up per
message), the `Mailer` of the email channel."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import io
import random
import sys
from email import generator
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import aiosmtplib

# Python's folding of long encoded headers leaves a doubled space in the subject readers
# see; 998 is RFC 5322's hard line limit, so our subjects are never folded.
_POLICY = email.policy.SMTP.clone(max_line_length=998)


_DIGITS = len(repr(sys.maxsize - 1))  # as email.generator pads its boundaries' number


class _Generator(generator.BytesGenerator):
    """The standard generator, its MIME boundaries drawn as it draws them (one random
    number each), checked against the parts' text by a search for the bytes rather than a
    regular expression compiled anew for each boundary (a new pattern each time: always
    missed in `re`'s cache). A boundary found anywhere in the text is drawn again, where
    the standard one looks for it only at a line's start."""

    @classmethod
    def _make_boundary(cls, text: bytes | str | None = None) -> str:
        boundary = "=" * 15 + f"{random.randrange(sys.maxsize):0{_DIGITS}d}" + "=="
        if text is None:
            return boundary
        found = text if isinstance(text, bytes) else text.encode("ascii", "surrogateescape")
        chosen, counter = boundary, 0
        while ("--" + chosen).encode("ascii") in found:
            chosen = f"{boundary}.{counter}"
            counter += 1
        return chosen


def message_bytes(message: EmailMessage) -> bytes:
    """The message as sent (`as_bytes` with the sending policy and `_Generator`)."""
    out = io.BytesIO()
    _Generator(out, mangle_from_=False, policy=_POLICY).flatten(message)
    return out.getvalue()


def envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """The envelope's sender and recipients: the addresses of the From and To headers, read
    as they are stored (`raw_items`: a header kept as its string is not parsed again)."""
    stored = [(name.lower(), str(value)) for name, value in message.raw_items()]
    sender = parseaddr(next((value for name, value in stored if name == "from"), ""))[1]
    recipients = [addr for _, addr in getaddresses([v for name, v in stored if name == "to"])]
    return sender, recipients


class SmtpMailer:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self._host = host
        self._port = port
        self._timeout = timeout
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    async def send(self, message: EmailMessage) -> None:
        async with self._lock:
            for attempt in (1, 2):
                if self._client is None or not self._client.is_connected:
                    self._client = aiosmtplib.SMTP(
                        hostname=self._host, port=self._port, timeout=self._timeout, start_tls=False
                    )
                    await self._client.connect()
                sender, recipients = envelope(message)
                # An accented address (inès.haddad@…) needs the server's SMTPUTF8 extension.
                options = [] if all(a.isascii() for a in (sender, *recipients)) else ["SMTPUTF8"]
                try:
                    await self._client.sendmail(
                        sender, recipients, message_bytes(message), mail_options=options
                    )
                    return
                except aiosmtplib.SMTPServerDisconnected:
                    self._client = None  # the server closed an idle connection: reconnect once
                    if attempt == 2:
                        raise
                except BaseException:
                    # A failure mid-envelope leaves the transaction open on this connection: the
                    # next message would be refused ("nested MAIL command"). Start it afresh.
                    await self.close()
                    raise

    async def close(self) -> None:
        if self._client is not None and self._client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException):
                await self._client.quit()
        self._client = None
