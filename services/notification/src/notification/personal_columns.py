"""Notification's personal columns, sealed with the citizen's data key (issue 13 §4;
docs/data-protection.md, "Crypto-shredding" and "In notification's tables").

The personal columns (`PERSONAL_COLUMNS`): the recipient's address, the subject, body and
rendered content of every message, the errors the providers answered (they may quote the
address), the contact as the citizen last changed it. Each holds the text it held before,
either in clear or sealed:

- **sealed** when the file has a data key (crypto-shredding on at intake): the JSON of the
  sealed object `{key_id, nonce, ciphertext}` (`guichet_runtime.personal_data.seal_value`:
  AES-256-GCM, bound to the file id) of that text, with the key the consumed record was
  sealed with (`UnitOfWork.personal_keys`, else `personal_data_key_refs`);
- **in clear** otherwise (sealing off, a file opened before it), as before.

Reading takes both forms: a value that is not a sealed object is read as it is, so older rows
stay readable. Once the key is shredded nothing stored opens any more: the dispatcher does not
send the message (it is recorded as erased, `record_erased`), a person reading sees `ERASED`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from guichet_runtime.db import UnitOfWork
from guichet_runtime.personal_data import (
    CannotOpen,
    KeyShredded,
    KeyUnavailable,
    PersonalData,
    erased_value,
    open_value,
    seal_value,
)
from notification.domain import NotificationStatus
from notification.tables import notifications
from shared_models import is_sealed
from shared_models.personal import SealedPersonalData

#: What a person reading sees of a personal value whose key was shredded.
ERASED = "[données effacées]"
#: Why a message was not sent: the citizen's data were erased (as `erasure` records it too).
ERASED_REASON = "données effacées"

#: The personal columns of each table: sealed when the file has a data key.
PERSONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "notifications": ("recipient", "subject", "body", "content", "last_error"),
    "deliveries": ("recipient", "error"),
    "contacts": ("citizen",),
}


@dataclass(frozen=True)
class Sealing:
    """How the personal columns of one file's rows are written and read: with the citizen's
    data key `key` (id `key_id`), or in clear when the file has no key (`key_id` None).
    A key id without a key: the key was shredded, what is written carries nothing."""

    file_id: str
    key_id: str | None = None
    key: bytes | None = None

    def seal(self, text: str | None) -> str | None:
        """The text as its column holds it: sealed with the file's key, or as it is."""
        if text is None or self.key_id is None:
            return text
        if self.key is None:
            sealed = erased_value(self.key_id)
        else:
            sealed = seal_value(self.key_id, self.key, text, self.file_id)
        return json.dumps(sealed, separators=(",", ":"))

    def open(self, stored: str | None) -> str | None:
        """The text a column holds: opened if sealed (KeyShredded once the key is shredded,
        CannotOpen when altered, moved from another file or sealed with another key), as it
        is otherwise."""
        sealed = sealed_in(stored)
        if sealed is None:
            return stored
        if not sealed.nonce or (sealed.key_id == self.key_id and self.key is None):
            raise KeyShredded(sealed.key_id)
        if sealed.key_id != self.key_id or self.key is None:
            raise CannotOpen(f"a value of file {self.file_id} sealed with another key")
        text = open_value(self.key, sealed.model_dump(), self.file_id)
        if not isinstance(text, str):
            raise CannotOpen(f"a value of file {self.file_id} is not a column's text")
        return text


def sealed_in(stored: str | None) -> SealedPersonalData | None:
    """The sealed object a column holds; None for a value in clear."""
    if not stored or not stored.startswith("{"):
        return None
    try:
        data = json.loads(stored)
    except ValueError:
        return None
    return SealedPersonalData.model_validate(data) if is_sealed(data) else None


async def sealing_of(uow: UnitOfWork, file_id: str) -> Sealing:
    """How a handler writes the file's personal columns: with the key the consumed record was
    sealed with (or the one this service learnt for the file); in clear without one."""
    personal = uow.personal_data
    if personal is None:
        return Sealing(file_id)
    key_id = await personal.file_key(uow, file_id)
    if key_id is None:
        return Sealing(file_id)
    try:
        key: bytes | None = await personal.key(key_id, uow.conn)
    except KeyShredded:
        key = None  # erased: what is written for the citizen carries nothing
    return Sealing(file_id, key_id, key)


async def sealing_that_sealed(
    personal: PersonalData | None, file_id: str, stored: str | None
) -> Sealing:
    """The sealing of a stored value, to open it and write beside it alike: its key (from
    the key service), or in clear for a value in clear. KeyShredded once the key is shredded;
    KeyUnavailable when it cannot be had now (or this process has no key service)."""
    sealed = sealed_in(stored)
    if sealed is None:
        return Sealing(file_id)
    if not sealed.nonce:
        raise KeyShredded(sealed.key_id)
    if personal is None:
        raise KeyUnavailable("a sealed personal value, and no key service (KEY_SERVICE_URL)")
    return Sealing(file_id, sealed.key_id, await personal.key(sealed.key_id))


async def shown(personal: PersonalData | None, file_id: str, stored: str | None) -> str | None:
    """A personal column as a person reading sees it: its text, or `ERASED` once the
    citizen's key is shredded."""
    try:
        return (await sealing_that_sealed(personal, file_id, stored)).open(stored)
    except KeyShredded:
        return ERASED


@dataclass(frozen=True)
class OpenedMessage:
    """A row of `notifications` at send time: `content` (each channel's address and texts)
    opened, `sealing` to write what is recorded about the sending (address, errors) as the
    row was written. The row's other columns read through."""

    row: sa.Row[Any]
    content: str
    sealing: Sealing

    def __getattr__(self, name: str) -> Any:
        return getattr(self.row, name)


async def open_message(personal: PersonalData | None, row: sa.Row[Any]) -> OpenedMessage:
    """The message's content opened with the citizen's data key (see `sealing_that_sealed`
    for KeyShredded and KeyUnavailable; CannotOpen when it was altered)."""
    sealing = await sealing_that_sealed(personal, row.file_id, row.content)
    return OpenedMessage(row, sealing.open(row.content) or "{}", sealing)


async def record_erased(uow: UnitOfWork, notification_id: str) -> None:
    """A message whose citizen's key was shredded before it was sent: never sent, recorded as
    the erasure of the citizen's data records a waiting message (`erasure`), its personal
    columns cleared."""
    async with uow:
        await uow.conn.execute(
            notifications.update()
            .where(
                notifications.c.notification_id == notification_id,
                notifications.c.status == NotificationStatus.TO_SEND,
            )
            .values(
                status=NotificationStatus.NO_CHANNEL,
                last_error=ERASED_REASON,
                recipient=None,
                body=ERASED,
                content=None,
                sealed_secret=None,
            )
        )
        await uow.commit()


async def record_unreadable(uow: UnitOfWork, notification_id: str) -> None:
    """A message whose sealed content was altered: it cannot be sent, ever (`echec`)."""
    async with uow:
        await uow.conn.execute(
            notifications.update()
            .where(
                notifications.c.notification_id == notification_id,
                notifications.c.status == NotificationStatus.TO_SEND,
            )
            .values(
                status=NotificationStatus.FAILED,
                last_error="données personnelles illisibles (altérées)",
                sealed_secret=None,
            )
        )
        await uow.commit()
