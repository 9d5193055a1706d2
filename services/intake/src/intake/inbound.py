"""Intake's inbound SMTP listener: the citizen answers their référent by replying to the
email that carried the référent's message (docs/referent-desk.md, "Replies by email").

A runtime worker when INBOUND_SMTP_PORT is set (aiosmtpd, on the service's event loop, so
it records through the same database engine as the routes). For each mail:

- the recipient must be a file's routing address whose signature verifies
  (`guichet_runtime.reply_address`), of a file intake knows: else 550 at RCPT TO;
- the sender, both the envelope's MAIL FROM and the From header, must be the file's
  current contact email (case-insensitive): else 550, nothing written;
- the text (text/plain, without the quoted previous message) and the attachments go to
  the citizen space's use case (`commands.thread.write_to_referent`: the same checks,
  thread, timeline, `CitizenMessageReceived` with the answer-time promise), keyed by the
  mail's Message-ID (or, without one, a digest of its content) so a delivery retried by
  the sender's server records it once; an HTML-only mail gives its HTML's text;
- a refusal the citizen should know about (no text, an attachment refused) is a 550 with
  the short French reason (ASCII), which their mail server returns to them as a bounce;
- the replies count on the file's quota of messages, the space's (`citizen_messages_per_file`):
  past it, a 451 (the sender's server tries again later).

The identity is the file's citizen, as the address and the sender say: nothing in the
body is trusted for it. Why this is weaker than the citizen space: docs/security.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from guichet_runtime.clock import Clock
from guichet_runtime.db import UnitOfWork
from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.reply_address import file_of
from intake.commands.thread import WriteToReferent, write_to_referent
from intake.domain import MAX_DOCUMENT_BYTES
from intake.domain.promise import DEFAULT_WORKING_DAYS
from intake.domain.replies import reply_attachments, reply_key_of, reply_text, smtp_text
from intake.domain.thread import MAX_ATTACHMENTS
from intake.views.own import citizen_contact

log = logging.getLogger(__name__)

#: A mail's size: three attachments of 512 Ko in base64 (4/3), the text and the quote.
MAX_MAIL_BYTES = MAX_ATTACHMENTS * (MAX_DOCUMENT_BYTES * 4 // 3 + 4096) + 256 * 1024

UNKNOWN_ADDRESS = "550 5.1.1 Adresse de reponse inconnue"
WRONG_SENDER = (
    "550 5.7.1 Cette adresse n'accepte que les reponses du contact du dossier : "
    "ecrivez depuis votre espace"
)
ONE_RECIPIENT = "452 4.5.3 Un seul destinataire par message"
UNREADABLE = "550 5.6.0 Message illisible : ecrivez depuis votre espace"
TRY_LATER = "451 4.3.0 Erreur temporaire, reessayez plus tard"


@dataclass(frozen=True)
class InboundSettings:
    key: str
    domain: str | None
    promise_working_days: int = DEFAULT_WORKING_DAYS
    clock: Clock = field(default_factory=Clock)
    previous_key: str = ""  # REPLY_ADDRESS_KEY_PREVIOUS: still verifies, after a rotation

    def file_of(self, address: str) -> str | None:
        """The file a routing address names, if signed under the key or the previous one."""
        return file_of(address, self.key, self.domain, self.previous_key)


def _same(a: str | None, b: str | None) -> bool:
    return bool(a and b and a.strip().lower() == b.strip().lower())


#: Counts one message on the file's quota, the space's (`citizen_messages_per_file`);
#: raises Refused(TOO_MANY) past it.
Quota = Callable[[str], Awaitable[None]]


class InboundReplies:
    """The aiosmtpd handler: RCPT TO checks the address, DATA records the reply."""

    def __init__(
        self, uow: Callable[[], UnitOfWork], settings: InboundSettings, quota: Quota | None = None
    ) -> None:
        self.uow = uow
        self.settings = settings
        self.quota = quota

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if envelope.rcpt_tos:
            return ONE_RECIPIENT
        file_id = self.settings.file_of(address)
        try:
            known = file_id is not None and await citizen_contact(self.uow(), file_id) is not None
        except Exception:
            log.exception("inbound reply: the routing address could not be checked")
            return TRY_LATER
        if not known:
            log.info("inbound reply refused: unknown routing address")
            return UNKNOWN_ADDRESS
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            return await self._record(envelope)
        except Exception:
            log.exception("inbound reply not recorded (temporary failure)")
            return TRY_LATER

    async def _record(self, envelope: Envelope) -> str:
        file_id = self.settings.file_of(envelope.rcpt_tos[0])
        if file_id is None:  # checked at RCPT TO already
            return UNKNOWN_ADDRESS
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        mail: Any = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(mail, EmailMessage)
        contact = await citizen_contact(self.uow(), file_id)
        if contact is None:
            return UNKNOWN_ADDRESS
        senders = [a for _, a in getaddresses(mail.get_all("From", []))]
        email = contact.get("email")
        if not (
            _same(envelope.mail_from, email) and len(senders) == 1 and _same(senders[0], email)
        ):
            log.info("inbound reply on %s refused: not from the file's contact email", file_id)
            return WRONG_SENDER
        try:
            text, uploads = reply_text(mail), reply_attachments(mail)
        except (LookupError, ValueError, UnicodeError):  # an unknown charset, a broken part
            log.info("inbound reply on %s refused: unreadable mail", file_id)
            return UNREADABLE
        command = WriteToReferent(
            file_id,
            text,
            uploads,
            reply_key_of(file_id, mail, raw),
            self.settings.promise_working_days,
            self.settings.clock.now(),
            by_email=True,
        )
        try:
            if self.quota is not None:
                await self.quota(file_id)
            message, created = await write_to_referent(command, self.uow())
        except Refused as refused:
            log.info("inbound reply on %s refused: %s", file_id, refused.message)
            if refused.kind is RefusalKind.TOO_MANY:  # the sender's server tries again later
                return f"451 4.7.1 {smtp_text(refused.message)}"
            return f"550 5.6.0 {smtp_text(refused.message)}"
        log.info(
            "inbound reply on %s %s as message %s",
            file_id,
            "recorded" if created else "already recorded",
            message["message_id"],
        )
        return "250 Message transmis"


class Listener:
    """The listening socket: bound at the service's start (a port taken stops the start,
    rather than a worker dying unseen), closed at its stop."""

    def __init__(self, handler: InboundReplies, host: str, port: int) -> None:
        self.handler, self.host, self.port = handler, host, port
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SMTP(self.handler, data_size_limit=MAX_MAIL_BYTES, hostname="guichet-unique"),
            host=self.host,
            port=self.port,
        )
        log.info("inbound SMTP listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
            await server.wait_closed()


async def serve(
    handler: InboundReplies, host: str, port: int, stopping: asyncio.Event, ready: asyncio.Event
) -> None:
    """Listen on host:port until `stopping`; `ready` once listening."""
    listener = Listener(handler, host, port)
    await listener.start()
    ready.set()
    try:
        await stopping.wait()
    finally:
        await listener.stop()
