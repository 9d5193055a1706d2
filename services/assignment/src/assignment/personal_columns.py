"""The personal columns of assignment's tables, sealed with the file's data key
(crypto-shredding, docs/data-protection.md): `files.citizen`, `files.description`,
`files.personal_word`, `agency_requests.answer` and `assignments.explanation` (the history's
reasons, which may quote the citizen's or a supervisor's words).

A value is stored as the sealed object `{key_id, nonce, ciphertext}` (AES-256-GCM bound to
the file id, `guichet_runtime.personal_data.seal_value`) when the service seals (its unit of
work has `personal_data`: a key service is configured) and the file has a key (the key the
consumed record was sealed with, or the one this service learnt for the file). Otherwise it
is stored as it is, like the topics carry it. Reading takes both forms: a value that is not a
sealed object is read as it is, so rows written before stay readable.

Opening goes through the same key cache as the consumer. Once the citizen's key is shredded,
or where a sealed value cannot be opened, the reader gets the column's erased form
(`[données effacées]`): a view shows it, a use case never crashes on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from guichet_runtime.db import UnitOfWork
from guichet_runtime.personal_data import (
    CannotOpen,
    KeyShredded,
    erased_value,
    open_value,
    seal_value,
)
from shared_models import CitizenContact, is_sealed

log = logging.getLogger(__name__)

#: What a person reads where erased personal data was.
ERASED = "[données effacées]"
#: The citizen's contact once erased: valid where a contact is read, naming no one.
ERASED_CITIZEN: dict[str, Any] = {
    "given_name": ERASED,
    "family_name": ERASED,
    "email": None,
    "phone": None,
    "street": None,
    "postcode": "00000",
    "city": None,
    "preferred_channel": "courrier",
}


@dataclass(frozen=True)
class FileSeal:
    """How one file's personal columns are stored: sealed with `key` (its id `key_id`), or
    as they are when the file has no key or the service does not seal."""

    file_id: str
    key_id: str | None = None
    key: bytes | None = None

    def seal(self, value: Any) -> Any:
        """`value` as the column stores it."""
        if value is None or self.key_id is None:
            return value
        if self.key is None:  # shredded: nothing personal is written any more
            return erased_value(self.key_id)
        return seal_value(self.key_id, self.key, value, self.file_id)


async def file_seal(uow: UnitOfWork, file_id: str) -> FileSeal:
    """The sealing of `file_id`'s personal columns in this unit of work (inside it)."""
    sealing = uow.personal_data
    if sealing is None:
        return FileSeal(file_id)
    key_id = await sealing.file_key(uow, file_id)
    if key_id is None:
        return FileSeal(file_id)
    try:
        return FileSeal(file_id, key_id, await sealing.key(key_id))
    except KeyShredded:
        return FileSeal(file_id, key_id)


async def open_column(uow: UnitOfWork, file_id: str, stored: Any, erased: Any) -> Any:
    """A personal column's value as stored, opened: itself when in clear, `erased` once its
    key is shredded (or when it cannot be opened here). KeyUnavailable when the key service
    cannot answer now (a handler is tried again)."""
    if not is_sealed(stored):
        return stored
    sealing = uow.personal_data
    if sealing is None:
        log.warning("file %s: a sealed column but no key service configured", file_id)
        return erased
    try:
        key = await sealing.key(stored["key_id"])
        return open_value(key, stored, file_id)
    except KeyShredded:
        return erased
    except CannotOpen:
        log.warning("file %s: a sealed column does not open (altered or misplaced)", file_id)
        return erased


async def citizen_of(uow: UnitOfWork, file: Any) -> CitizenContact:
    """The citizen's contact of a `files` row, opened (erased: a stand-in naming no one)."""
    return CitizenContact.model_validate(
        await open_column(uow, file.file_id, file.citizen, ERASED_CITIZEN)
    )


async def description_of(uow: UnitOfWork, file: Any) -> str:
    """The citizen's description of a `files` row, opened."""
    return str(await open_column(uow, file.file_id, file.description, ERASED))


async def personal_word_of(uow: UnitOfWork, file: Any) -> str | None:
    """The référent's personal word of a `files` row, opened (None: none written)."""
    word = await open_column(uow, file.file_id, file.personal_word, ERASED)
    return None if word is None else str(word)


async def answer_of(uow: UnitOfWork, file_id: str, stored: Any, agency: str) -> Any:
    """An agency's answer of an `agency_requests` row, opened (erased: who answered only)."""
    return await open_column(uow, file_id, stored, {"agency": agency, "summary": ERASED})


async def explanation_of(uow: UnitOfWork, file_id: str, stored: Any) -> str:
    """The explanation of an `assignments` row (the history), opened."""
    return str(await open_column(uow, file_id, stored, ERASED))
