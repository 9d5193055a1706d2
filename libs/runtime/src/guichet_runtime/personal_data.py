"""Crypto-shredding: personal fields sealed with the citizen's data key wherever they leave
intake (docs/data-protection.md, "Crypto-shredding").

Intake holds one data key per citizen (`personal_data_keys`, wrapped with the key-encryption
key `PERSONAL_DATA_KEK`); every other service asks intake's key service for it
(`guichet_runtime.key_service`) and keeps it in memory only, for a short while. The fields an
event model marks personal (`Annotated[T, PERSONAL]`, shared_models.personal) are sealed when
the unit of work writes the outbox row (`PersonalData.seal`) and opened in the consumer
before the handler runs (`PersonalData.open`): handlers keep their plain types.

Which key seals an event: the file's, as this service last learnt it. Each service keeps a
small table `personal_data_key_refs` (file id -> key id), filled when it opens an event of the
file (or, at intake, when the file is opened): what it emits later for the file, from a
handler, a route or a worker, is sealed with the same key. A file without a key (opened before
crypto-shredding, or with it switched off at intake) travels in clear, as before.

Once intake shreds a key, the key service answers 410 Gone: every sealed copy, on the topics
and in other services' tables, is noise. A consumer meeting such a record does not run its
handler (the personal part is erased) and records the event as handled: no retry loop, no
dead letter.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.ext.asyncio import AsyncConnection

from guichet_runtime.db import UtcDateTime, insert_ignore, utcnow
from shared_models import Envelope, is_sealed, personal_fields, sealing_context
from shared_models.personal import SealedPersonalData

if TYPE_CHECKING:
    from guichet_runtime.db import UnitOfWork

KEY_BYTES = 32
NONCE_BYTES = 12

E = TypeVar("E", bound=Envelope)


class KeyShredded(Exception):
    """The citizen's data key was shredded: whatever it sealed is erased for good."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"personal data key {key_id} was shredded")
        self.key_id = key_id


class KeyUnavailable(Exception):
    """The key service cannot be reached, or refused this service: try again later."""


class CannotOpen(Exception):
    """A sealed value was altered, or sealed for another file or with another key."""


class KeyUnknown(CannotOpen):
    """The key service does not know this key id (never made, or a forged or corrupted id):
    what it sealed can never be opened, so a record carrying it is dead-lettered rather
    than retried for ever."""


class PersonalDataErased(Exception):
    """An event whose personal fields were sealed with a shredded key."""

    def __init__(self, event_type: str, event_id: str, file_id: str, key_id: str) -> None:
        super().__init__(f"{event_type} {event_id}: the citizen's personal data was erased")
        self.event_type = event_type
        self.event_id = event_id
        self.file_id = file_id
        self.key_id = key_id


class DataKeys(Protocol):
    """Where a service gets a citizen's data key (raw 32 bytes) by its id."""

    async def get(self, key_id: str) -> bytes:
        """The key; KeyShredded once shredded, KeyUnavailable when it cannot be had now."""
        ...


# --- the cryptography: AES-256-GCM from `cryptography`, nothing hand-made ---------------------


def new_data_key() -> tuple[str, bytes]:
    """A fresh citizen data key and its id (a random UUID, revealing nothing of the key)."""
    return str(uuid.uuid4()), secrets.token_bytes(KEY_BYTES)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def wrap_key(kek: bytes, key_id: str, key: bytes) -> bytes:
    """The data key encrypted with the key-encryption key, bound to its id: nonce + ciphertext."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, key, f"personal-data-key:{key_id}".encode())


def contact_pseudonym(kek: bytes, contact: str) -> str:
    """A stable pseudonym of a normalised contact ("email:…" or "phone:…"): HMAC-SHA256 under
    a key derived from the key-encryption key (HKDF, its own purpose), so the same contact
    gives the same pseudonym and nobody without the KEK can compute or reverse it."""
    secret = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"guichet contact pseudonym"
    ).derive(kek)
    mac = hmac.HMAC(secret, hashes.SHA256())
    mac.update(contact.encode())
    return _b64(mac.finalize())


def unwrap_key(kek: bytes, key_id: str, wrapped: bytes) -> bytes:
    """The data key out of `wrap_key`'s bytes; CannotOpen with another KEK, id or bytes."""
    try:
        return AESGCM(kek).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], f"personal-data-key:{key_id}".encode()
        )
    except (InvalidTag, ValueError) as exc:
        raise CannotOpen(f"data key {key_id}: wrapped with another key, or altered") from exc


def seal_value(key_id: str, key: bytes, value: Any, file_id: str) -> dict[str, str]:
    """A JSON value sealed for `file_id` with the data key: the `SealedPersonalData` form."""
    plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plain, sealing_context(file_id).encode())
    return {"key_id": key_id, "nonce": _b64(nonce), "ciphertext": _b64(sealed)}


def erased_value(key_id: str) -> dict[str, str]:
    """What a personal field of an event emitted after its key was shredded holds: the key's
    id and nothing else. Consumers meet a shredded key and treat the event as erased."""
    return {"key_id": key_id, "nonce": "", "ciphertext": ""}


def open_value(key: bytes, sealed: Mapping[str, str], file_id: str) -> Any:
    """The JSON value a `seal_value` sealed; CannotOpen when altered, for another file or
    under another key."""
    try:
        plain = AESGCM(key).decrypt(
            _unb64(sealed["nonce"]),
            _unb64(sealed["ciphertext"]),
            sealing_context(file_id).encode(),
        )
    except (InvalidTag, ValueError, binascii.Error, KeyError) as exc:
        raise CannotOpen(f"sealed personal data of file {file_id} altered or misplaced") from exc
    return json.loads(plain)


# --- the key refs: which key seals which file, in each service --------------------------------


def personal_data_key_refs_table(metadata: sa.MetaData) -> sa.Table:
    """Add `personal_data_key_refs` (file id -> the citizen's data key id) to a service's
    metadata: the runtime seals what the service emits for a file with the key it learnt."""
    return sa.Table(
        "personal_data_key_refs",
        metadata,
        sa.Column("file_id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(36), nullable=False, index=True),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
    )


async def remember_key(conn: AsyncConnection, refs: sa.Table, file_id: str, key_id: str) -> bool:
    """Record that `file_id`'s personal data is sealed with `key_id` (first one kept); True
    if this wrote it (False: the file had its key recorded already)."""
    written = await conn.execute(
        insert_ignore(conn, refs), {"file_id": file_id, "key_id": key_id, "recorded_at": utcnow()}
    )
    return bool(written.rowcount == 1)


class KeyCache:
    """Keys in memory only, each for `ttl` seconds (shredded ones remembered as such for the
    same time): a shredding reaches every consumer within `ttl`."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[bytes]],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, bytes | None]] = {}
        self.fetches = 0

    async def get(self, key_id: str) -> bytes:
        now = self._clock()
        entry = self._entries.get(key_id)
        if entry is None or now - entry[0] > self._ttl:
            self.fetches += 1
            try:
                key: bytes | None = await self._fetch(key_id)
            except KeyShredded:
                key = None
            entry = (now, key)
            self._entries[key_id] = entry
            if len(self._entries) > 10_000:  # bounded: the oldest go first
                for old in sorted(self._entries, key=lambda k: self._entries[k][0])[:1000]:
                    del self._entries[old]
        if entry[1] is None:
            raise KeyShredded(key_id)
        return entry[1]

    def forget(self, key_id: str) -> None:
        self._entries.pop(key_id, None)

    def put(self, key_id: str, key: bytes | None) -> None:
        """Remember a key read elsewhere (None: shredded)."""
        self._entries[key_id] = (self._clock(), key)

    def cached(self, key_id: str) -> bytes | None:
        """The key if held and fresh (KeyShredded if known shredded); None if not held."""
        entry = self._entries.get(key_id)
        if entry is None or self._clock() - entry[0] > self._ttl:
            return None
        if entry[1] is None:
            raise KeyShredded(key_id)
        return entry[1]


class PersonalData:
    """A service's sealing and opening of personal fields (one per process).

    The key refs this process knows committed are kept in memory (`known`): a ref is
    written once and never changed or removed, so a file's key is not read again, nor
    written again, at every event of the file (about a third of the statements of an
    adapter's request). A ref enters the memory only after the transaction that read or
    wrote it committed (`learn`, called by the unit of work and the batch): a ref written
    by a transaction rolled back is never taken as recorded, which would let this process
    skip writing it and emit the file's events unsealed after a restart."""

    #: Refs kept in memory at most (the oldest tenth forgotten past it).
    KNOWN_MAX = 100_000

    def __init__(self, keys: DataKeys, refs: sa.Table) -> None:
        self.keys = keys
        self.refs = refs
        self._known: dict[str, str] = {}

    def known(self, file_id: str) -> str | None:
        """The key id of `file_id` known committed in this process, if any."""
        return self._known.get(file_id)

    def learn(self, refs: Iterable[tuple[str, str]]) -> None:
        """Refs (file id, key id) read or written by a transaction that has committed."""
        known = self._known
        for file_id, key_id in refs:
            known[file_id] = key_id
        if len(known) > self.KNOWN_MAX:
            for old in list(itertools.islice(known, self.KNOWN_MAX // 10)):
                del known[old]

    async def key_of(self, conn: AsyncConnection, file_id: str) -> str | None:
        """The data key id this service has recorded for `file_id`, if any (read now)."""
        found = await conn.scalar(
            sa.select(self.refs.c.key_id).where(self.refs.c.file_id == file_id)
        )
        return str(found) if found is not None else None

    async def file_key(self, uow: UnitOfWork, file_id: str) -> str | None:
        """The data key id of `file_id` in `uow`: the one its consumed record was sealed
        with, or known committed, or recorded (read, and learnt once `uow` commits)."""
        key_id = uow.personal_keys.get(file_id) or self.known(file_id)
        if key_id is not None:
            return key_id
        found = await self.key_of(uow.conn, file_id)
        if found is not None:
            uow.learnt_key(file_id, found)
        return found

    async def remember(self, conn: AsyncConnection, file_id: str, key_id: str) -> bool:
        """Record that `file_id`'s personal data is sealed with `key_id`; True if this
        wrote it. Not written again when known committed."""
        if self.known(file_id) is not None:
            return False
        return await remember_key(conn, self.refs, file_id, key_id)

    async def key(self, key_id: str, conn: AsyncConnection | None = None) -> bytes:
        """The data key; `conn`: the unit of work's connection, for a service that reads its
        keys from its own database (intake) inside the transaction."""
        return await self.keys.get(key_id)

    async def seal(self, event: Envelope, key_id: str, conn: AsyncConnection | None = None) -> str:
        """The event as its outbox payload, its personal fields sealed with `key_id` (once
        the key is shredded: `erased_value`, no personal data at all)."""
        file_id = str(getattr(event, "file_id", ""))
        try:
            key: bytes | None = await self.key(key_id, conn)
        except KeyShredded:
            key = None  # the citizen's data is erased: what is emitted for them carries none
        data = event.model_dump(mode="json")
        for name in personal_fields(type(event)):
            if data.get(name) is None:
                continue
            if key is None:
                data[name] = erased_value(key_id)
            else:
                data[name] = seal_value(key_id, key, data[name], file_id)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    async def open(self, cls: type[E], body: bytes | str) -> tuple[E, str | None]:
        """The event with its personal fields opened, and the key id that sealed them (None:
        nothing was sealed). PersonalDataErased when the key was shredded; CannotOpen when
        a sealed value was altered; KeyUnavailable when the key service cannot answer now;
        pydantic.ValidationError for a bad body."""
        fields = personal_fields(cls)
        if not fields:
            return cls.model_validate_json(body), None
        try:
            data = json.loads(body)
        except ValueError:  # not JSON at all: pydantic says so (ValidationError), as unsealed
            return cls.model_validate_json(body), None
        if not isinstance(data, dict):
            return cls.model_validate(data), None
        file_id = str(data.get("file_id", ""))
        key_id: str | None = None
        for name in fields:
            value = data.get(name)
            if not is_sealed(value):
                continue  # in clear: a version 1 record, or a file without a key
            sealed = SealedPersonalData.model_validate(value)
            try:
                key = await self.keys.get(sealed.key_id)
            except KeyShredded:
                raise PersonalDataErased(
                    cls.event_type, str(data.get("event_id")), file_id, sealed.key_id
                ) from None
            data[name] = open_value(key, sealed.model_dump(), file_id)
            key_id = sealed.key_id
        return cls.model_validate(data), key_id
