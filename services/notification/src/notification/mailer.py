"""Infrastructure: SMTP delivery over one kept-alive connection (no connection set-up per
message), the `Mailer` of the email channel."""

from __future__ import annotations

import asyncio
import email.policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import aiosmtplib

# Python's folding of long encoded headers leaves a doubled space in the subject readers
# see; 998 is RFC 5322's hard line limit, so our subjects are never folded.
_POLICY = email.policy.SMTP.clone(max_line_length=998)


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
                sender = parseaddr(str(message["From"]))[1]
                recipients = [
                    addr for _, addr in getaddresses([str(v) for v in message.get_all("To", [])])
                ]
                # An accented address (inès.haddad@…) needs the server's SMTPUTF8 extension.
                options = [] if all(a.isascii() for a in (sender, *recipients)) else ["SMTPUTF8"]
                try:
                    await self._client.sendmail(
                        sender, recipients, message.as_bytes(policy=_POLICY), mail_options=options
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
            try:
                await self._client.quit()
            except aiosmtplib.SMTPException:
                pass
        self._client = None
