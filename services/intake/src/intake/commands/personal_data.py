"""The citizens' data keys (crypto-shredding, docs/data-protection.md): intake creates them,
serves them to the services that read personal data, and shreds them.

One key per logged-in citizen (their files share it); for a citizen without an account, one
per contact (their email, else their phone: the row's `subject` is then `contact:` and a
pseudonym of it, `guichet_runtime.personal_data.contact_pseudonym`), else one per file. A
key rests wrapped with the key-encryption key (`PERSONAL_DATA_KEK`, from the
environment): a dump of the database alone opens nothing. Shredding deletes the key material
and keeps the row (`shredded_at`): every copy sealed with it, on the topics and in the other
services' tables, can no longer be opened.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guichet_runtime import audit
from guichet_runtime.auth.principal import Principal
from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from guichet_runtime.personal_data import (
    KeyCache,
    KeyShredded,
    PersonalData,
    contact_pseudonym,
    new_data_key,
    unwrap_key,
    wrap_key,
)
from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.statements import param, params, prepared
from intake.domain import key_may_be_shredded
from intake.domain.privacy import contact_identity
from intake.tables import files, personal_data_key_refs, personal_data_keys
from shared_models import CitizenContact

UNKNOWN_KEY = "Clé de données personnelles inconnue."
#: The `subject` of the key of a citizen without an account, before their contact's pseudonym.
CONTACT_OWNER = "contact:"
SHREDDED = "Ces données personnelles ont été effacées."


class IntakeKeys:
    """The keys from intake's own table, unwrapped with the KEK (`DataKeys`)."""

    def __init__(self, engine: AsyncEngine, kek: bytes | None = None) -> None:
        self._engine = engine
        #: PERSONAL_DATA_KEK's 32 bytes, loaded when the service starts.
        self.kek = kek

    def key_encryption_key(self) -> bytes:
        if self.kek is None:
            raise RuntimeError("PERSONAL_DATA_KEK not loaded: the service has not started")
        return self.kek

    async def get(self, key_id: str) -> bytes:
        async with self._engine.connect() as conn:
            return await self.read(conn, key_id)

    async def read(self, conn: AsyncConnection, key_id: str) -> bytes:
        """The key (KeyShredded once shredded, LookupError when unknown)."""
        row = (
            await conn.execute(
                sa.select(personal_data_keys.c.wrapped_key).where(
                    personal_data_keys.c.key_id == key_id
                )
            )
        ).first()
        if row is None:
            raise LookupError(key_id)
        if row.wrapped_key is None:
            raise KeyShredded(key_id)
        return unwrap_key(self.key_encryption_key(), key_id, bytes(row.wrapped_key))


class IntakePersonalData(PersonalData):
    """Intake's sealing: its own keys (cached in memory for a short while), and the issuing."""

    def __init__(self, keys: IntakeKeys, ttl: float) -> None:
        self.vault = keys
        self.cache = KeyCache(keys.get, ttl)
        super().__init__(self.cache, personal_data_key_refs)

    async def key(self, key_id: str, conn: AsyncConnection | None = None) -> bytes:
        """Inside a unit of work, read through its connection: on SQLite a second connection
        would wait for the transaction's write lock, on PostgreSQL it would not see a key
        created in it."""
        if conn is None:
            return await self.cache.get(key_id)
        held = self.cache.cached(key_id)
        if held is not None:
            return held
        try:
            key = await self.vault.read(conn, key_id)
        except KeyShredded:
            self.cache.put(key_id, None)
            raise
        self.cache.put(key_id, key)
        return key

    async def key_for(self, conn: AsyncConnection, subject: str | None) -> str:
        """The data key of a new file: its owner's (a logged-in citizen's `sub`, or a citizen
        without an account's contact pseudonym; created at their first file), or a new one
        for this file alone."""
        if subject is not None:
            found = await conn.scalar(_live_key_of(), params(subject=subject))
            if found is not None:
                return str(found)
        key_id, key = new_data_key()
        values = {
            "key_id": key_id,
            "subject": subject,
            "wrapped_key": wrap_key(self.vault.key_encryption_key(), key_id, key),
            "created_at": utcnow(),
        }
        if subject is None:
            await conn.execute(personal_data_keys.insert().values(**values))
            self.cache.put(key_id, key)
            return key_id
        # Two first files at once: one key wins, both files use it.
        await conn.execute(insert_ignore(conn, personal_data_keys).values(**values))
        return str(
            await conn.scalar(
                sa.select(personal_data_keys.c.key_id).where(
                    personal_data_keys.c.subject == subject
                )
            )
        )


@prepared
def _live_key_of() -> sa.Select[Any]:
    """The key of a subject, unless shredded (`params(subject=…)`)."""
    c = personal_data_keys.c
    return sa.select(c.key_id).where(c.subject == param(c.subject), c.shredded_at.is_(None))


async def seal_new_file(
    uow: UnitOfWork, file_id: str, subject: str | None, citizen: CitizenContact
) -> None:
    """Give a new file its citizen's data key: what is emitted for it is sealed with it.
    A citizen without an account is known by a pseudonym of their contact, so their files
    share a key as a logged-in citizen's do (assignment's continuity matches files by the
    key's id). Nothing when intake runs without crypto-shredding
    (PERSONAL_DATA_SEALING=false)."""
    sealing = uow.personal_data
    if not isinstance(sealing, IntakePersonalData):
        return
    owner = subject
    if owner is None:
        identity = contact_identity(citizen.email, citizen.phone)
        if identity is not None:
            owner = CONTACT_OWNER + contact_pseudonym(sealing.vault.key_encryption_key(), identity)
    uow.use_personal_key(file_id, await sealing.key_for(uow.conn, owner))


@dataclass(frozen=True)
class ServedKey:
    key_id: str
    key: str  # base64


async def personal_data_key(uow: UnitOfWork, key_id: str) -> ServedKey:
    """The key service's answer (a service holding `personal-data-reader`): the key, base64;
    404 when unknown, 410 once shredded."""
    sealing = uow.personal_data
    if not isinstance(sealing, IntakePersonalData):
        raise Refused(RefusalKind.NOT_FOUND, UNKNOWN_KEY)
    async with uow:
        try:
            key = await sealing.vault.read(uow.conn, key_id)
        except LookupError:
            raise Refused(RefusalKind.NOT_FOUND, UNKNOWN_KEY) from None
        except KeyShredded:
            raise Refused(RefusalKind.GONE, SHREDDED) from None
    return ServedKey(key_id=key_id, key=base64.b64encode(key).decode())


async def shred_personal_data_key(
    key_id: str, reason: str, uow: UnitOfWork, by: Principal | audit.Actor = audit.SYSTEM
) -> bool:
    """Shred a citizen's data key (crypto-shredding): the key material is deleted, the row
    kept with `shredded_at`, the act recorded in the audit trail with its `reason`
    (mandatory, at least 5 characters). From then on the key service answers 410 Gone and
    every copy of the citizen's personal data sealed with this key — on every topic, in
    every other service's tables — can no longer be opened; consumers treat such records as
    erased. Intake's own copy of the citizen's data is not touched here (the erasure request
    deletes it).

    The row keeps no link to the citizen (`subject` cleared): a later file of theirs gets a
    new key. The citizen's erasure request calls this (with the key of the file, `key_of_file`).
    Returns False when the key was already shredded (nothing done, nothing recorded);
    raises Refused NOT_FOUND for an unknown key, INVALID without a reason."""
    why = audit.reason_given(reason)
    async with uow:
        shredded = await shred_key_in_transaction(uow, key_id, why, by)
        await uow.commit()
    return shredded


async def shred_key_in_transaction(
    uow: UnitOfWork, key_id: str, why: str, by: Principal | audit.Actor = audit.SYSTEM
) -> bool:
    """`shred_personal_data_key`'s work inside the caller's open transaction (the erasure
    of a file shreds its key with the file's own erasure: both or neither)."""
    row = (
        await uow.conn.execute(
            sa.select(personal_data_keys.c.shredded_at)
            .where(personal_data_keys.c.key_id == key_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise Refused(RefusalKind.NOT_FOUND, UNKNOWN_KEY)
    if row.shredded_at is not None:
        return False
    await uow.conn.execute(
        personal_data_keys.update()
        .where(personal_data_keys.c.key_id == key_id)
        # The citizen's `sub` goes too: it is theirs, and their next file gets a new key.
        .values(wrapped_key=None, subject=None, shredded_at=utcnow())
    )
    files = (
        await uow.conn.execute(
            sa.select(sa.func.count()).where(personal_data_key_refs.c.key_id == key_id)
        )
    ).scalar_one()
    audit.record(
        uow,
        by,
        audit.AuditAction.PERSONAL_DATA_KEY_SHREDDED,
        reason=why,
        key_id=key_id,
        files=files,
    )
    # A rolled-back shredding only costs a fetch from the database again.
    if isinstance(uow.personal_data, IntakePersonalData):
        uow.personal_data.cache.forget(key_id)
    return True


async def shred_key_with_last_file(uow: UnitOfWork, file_id: str, why: str) -> bool:
    """Inside the erasure of `file_id` (the caller's transaction): shred its data key when
    no other file sealed with it still holds personal data. A logged-in citizen's files share
    one key: erasing one closed file while another is being processed keeps the key (the
    other file needs it); the erased file's copies are then deleted by the services on
    `CitizenDataErased`, and its records on the topics expire with the topics' retention."""
    key_id = await key_of_file_in(uow.conn, file_id)
    if key_id is None:
        return False
    others_held = await uow.conn.scalar(
        sa.select(sa.func.count())
        .select_from(
            personal_data_key_refs.join(files, files.c.file_id == personal_data_key_refs.c.file_id)
        )
        .where(
            personal_data_key_refs.c.key_id == key_id,
            personal_data_key_refs.c.file_id != file_id,
            files.c.erased_at.is_(None),
        )
    )
    if not key_may_be_shredded(others_held or 0):
        return False
    return await shred_key_in_transaction(uow, key_id, why)


async def key_of_file(uow: UnitOfWork, file_id: str) -> str | None:
    """The data key sealing `file_id`'s personal data, if it has one."""
    async with uow:
        return await key_of_file_in(uow.conn, file_id)


async def key_of_file_in(conn: AsyncConnection, file_id: str) -> str | None:
    """`key_of_file` inside an open transaction."""
    found = await conn.scalar(
        sa.select(personal_data_key_refs.c.key_id).where(
            personal_data_key_refs.c.file_id == file_id
        )
    )
    return str(found) if found is not None else None
