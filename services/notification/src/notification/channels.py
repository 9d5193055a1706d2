"""Infrastructure: the delivery channels, adapters to the providers. Email (SMTP, through
a `Mailer`), SMS (HTTP gateway) and postal letters (PDF handed to a postal provider over
HTTP). They know nothing of notification kinds: each receives an `Outgoing` already
rendered and signed by `messages`; `dispatch` calls them through the `Channel` protocol.

Every send carries the delivery key the dispatcher recorded before calling the provider
(`domain.delivery_key`, stable per notification and channel): the Message-ID of an email,
the `Idempotency-Key` header for the SMS gateway and the postal provider. If the service
dies between the provider's acceptance and the recording of the outcome, the resend
presents the same key: the SMS and postal providers answer it from their first answer and
deliver nothing twice; an SMTP relay cannot be asked, so the email may arrive twice under
one Message-ID (the dispatcher counts that resend, docs/notifications.md).

A channel raises `PermanentFailure` when retrying cannot help (address refused, bad
number): the dispatcher then falls back to the next channel (`domain.after_failure`).
Anything else is temporary.
"""

from __future__ import annotations

import datetime as dt
import email.policy
from collections.abc import Callable
from dataclasses import dataclass, field
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Protocol

import aiosmtplib
import httpx

from guichet_runtime.tls_context import client_tls
from notification import letters
from shared_models import NotificationChannel, Referent


class PermanentFailure(Exception):
    """The channel refused this message for good; the next channel should be tried."""


@dataclass(frozen=True)
class Outgoing:
    notification_id: str
    file_id: str
    channel: NotificationChannel
    content: dict[str, Any]  # what `messages` rendered for this channel, plus the recipient
    referent: Referent
    #: What the receiver recognises the message by (`domain.delivery_key`), as recorded in
    #: `deliveries` before the provider is called.
    delivery_key: str
    trace_headers: dict[str, str] = field(default_factory=dict)


class Channel(Protocol):
    async def send(self, outgoing: Outgoing) -> str:
        """Deliver; return the provider's reference of the message."""
        ...


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


#: The Reply-To of a message the citizen may answer by email: file id -> routing address
#: (`guichet_runtime.reply_address`); None: no Reply-To (REPLY_ADDRESS_KEY not set).
ReplyTo = Callable[[str], str]


class _KeptHeaderClasses(HeaderRegistry):
    """The standard header registry, its classes made once per header name: the registry
    builds a new class (`type(...)`) for every header it parses, a sixth of the CPU of
    building a message here. The classes are the same composition; only the making is
    saved."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


#: Headers the email package reads again and again while building and sending (the MIME
#: structure): kept parsed, as a kept string would be parsed at each reading.
_READ_BACK = ("content-", "mime-")


class _PlainHeadersKept(email.policy.EmailPolicy):
    """The default policy, where a header set to a short ASCII value on one line is kept as
    that string, as a parsed message keeps the headers it read: the standard policy would
    parse it into a header object on setting it and fold that object again on sending,
    both to give back the same characters (building a message spent two thirds of its
    time there). Anything else (accents, several lines, a long value, the MIME headers
    `_READ_BACK`) is parsed and folded as the standard policy does."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if (
            type(value) is str
            and not name.lower().startswith(_READ_BACK)
            and value.isascii()
            and len(name) + len(value) + 2 <= self.max_line_length
            and "\n" not in value
            and "\r" not in value
        ):
            return (name, value)
        return super().header_store_parse(name, value)


#: The default policy of `EmailMessage`: plain headers kept as strings, the header
#: classes of the others made once per name.
_POLICY = _PlainHeadersKept(header_factory=_KeptHeaderClasses())


def email_message(outgoing: Outgoing, sender: str, reply_to: ReplyTo | None = None) -> EmailMessage:
    content = outgoing.content
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender
    if reply_to is not None and content.get("reply"):
        msg["Reply-To"] = reply_to(outgoing.file_id)
    msg["To"] = content["to"]
    msg["Subject"] = content["subject"]
    msg["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    msg["Message-ID"] = outgoing.delivery_key  # recorded before sending: the same if resent
    msg["X-Guichet-File"] = outgoing.file_id
    msg.set_content(content["text"])
    if content.get("html"):
        msg.add_alternative(content["html"], subtype="html")
    # Text files (an appointment's .ics): the message becomes multipart/mixed around the
    # text and HTML; its headers, the Message-ID first, stay where they are.
    for attachment in content.get("attachments", ()):
        maintype, subtype = attachment["content_type"].split("/")
        if maintype != "text":
            raise PermanentFailure(f"pièce jointe non textuelle : {attachment['content_type']}")
        msg.add_attachment(
            attachment["text"],
            subtype=subtype,
            filename=attachment["filename"],
            params=attachment.get("params", {}),
        )
    for name, value in outgoing.trace_headers.items():
        msg[name] = value
    return msg


class EmailChannel:
    def __init__(self, mailer: Mailer, sender: str, reply_to: ReplyTo | None = None) -> None:
        self.mailer = mailer
        self.sender = sender
        self.reply_to = reply_to

    async def send(self, outgoing: Outgoing) -> str:
        msg = email_message(outgoing, self.sender, self.reply_to)
        try:
            await self.mailer.send(msg)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(err.code >= 500 for err in exc.recipients):
                refused = exc.recipients[0]
                raise PermanentFailure(
                    f"adresse refusée par le serveur de messagerie : {refused}"
                ) from exc
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise PermanentFailure(f"message refusé ({exc.code}) : {exc.message}") from exc
            raise
        return outgoing.delivery_key  # the Message-ID it was sent under


def _provider_error(response: httpx.Response) -> tuple[bool, str]:
    """(permanent?, reason) of a gateway's error answer."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    permanent = error.get("permanent")
    if permanent is None:
        permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
    reason = f"{response.status_code} {error.get('code', '')} {error.get('message', '')}".strip()
    return bool(permanent), reason


class _HttpProvider:
    def __init__(
        self, base_url: str, timeout: float = 10.0, client: httpx.AsyncClient | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=timeout, verify=client_tls())

    async def _post(self, outgoing: Outgoing, path: str, **kwargs: Any) -> str:
        headers = {
            "Idempotency-Key": outgoing.delivery_key,
            "X-Guichet-File": outgoing.file_id,
            **outgoing.trace_headers,
            **kwargs.pop("headers", {}),
        }
        response = await self._client.post(f"{self.base_url}{path}", headers=headers, **kwargs)
        if response.status_code >= 400:
            permanent, reason = _provider_error(response)
            if permanent:
                raise PermanentFailure(reason)
            raise httpx.HTTPStatusError(reason, request=response.request, response=response)
        return str(response.json()["id"])

    async def close(self) -> None:
        await self._client.aclose()


class SmsChannel(_HttpProvider):
    """An SMS gateway's REST API (`POST /api/sms`), as French operators' gateways offer."""

    def __init__(self, base_url: str, sender_name: str = "GUICHET", **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.sender_name = sender_name

    async def send(self, outgoing: Outgoing) -> str:
        body = {
            "to": outgoing.content["to"],
            "text": outgoing.content["text"],
            "sender": self.sender_name,
        }
        return await self._post(outgoing, "/api/sms", json=body)


class LetterChannel(_HttpProvider):
    """Renders the letter as PDF and deposits it with the postal provider (`POST /api/letters`).
    `today` dates the letter (default: the real Paris date; a rehearsal passes its clock)."""

    def __init__(
        self, base_url: str, today: Callable[[], dt.date] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(base_url, **kwargs)
        self.today = today or letters.today_in_paris

    async def send(self, outgoing: Outgoing) -> str:
        content = outgoing.content
        pdf = letters.render_pdf(
            letters.Letter(
                file_id=outgoing.file_id,
                subject=content["subject"],
                text=content["text"],
                referent=outgoing.referent,
                address=tuple(content["to"]),
                date=self.today(),
            )
        )
        return await self._post(
            outgoing, "/api/letters", content=pdf, headers={"Content-Type": "application/pdf"}
        )
