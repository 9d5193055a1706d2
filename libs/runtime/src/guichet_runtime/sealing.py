"""Short secrets sealed for one reader: AES-256-GCM with a key shared by the writer and the
reader only (the one-time access code, sealed by intake for the notification service).

The key is 32 random bytes, base64 in the environment (`ACCESS_CODE_KEY`); its id is a
fingerprint of it, so a reader holding several keys during a rotation picks the right one
without configuration. The `context` (e.g. the file id) is authenticated with the
ciphertext: a secret sealed for one file does not open for another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared_models import SealedSecret

KEY_BYTES = 32
NONCE_BYTES = 12


class KeyMissing(RuntimeError):
    """A service that seals or opens secrets was started without its key."""


class CannotOpen(Exception):
    """The sealed secret is not for any key held here, or was altered."""


def new_key() -> str:
    """A fresh key, as the environment variable holds it (base64 of 32 random bytes)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def parse_key(text: str, name: str = "ACCESS_CODE_KEY") -> bytes:
    """The 32 bytes of a base64 key; ValueError naming the variable otherwise."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"{name} must be {KEY_BYTES} bytes once base64-decoded, not {len(key)}")
    return key


def key_id(key: bytes) -> str:
    """A public fingerprint of a key (reveals nothing of it)."""
    return hashlib.sha256(b"guichet-sealing-key-id:" + key).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyring:
    """The current key (seals and opens) and previous ones (open only, during a rotation)."""

    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        self.current_id = key_id(current)
        self._keys = {key_id(k): AESGCM(k) for k in (*previous, current)}

    @classmethod
    def from_text(cls, current: str | None, previous: str = "", *, name: str) -> Keyring:
        """From the environment's base64 texts (`previous`: comma separated). Raises
        KeyMissing when `current` is empty: no service runs with a default key."""
        if not current or not current.strip():
            raise KeyMissing(
                f"{name} is not set: this service refuses to start without it. Generate one "
                "with `openssl rand -base64 32` (32 random bytes) and give the same value to "
                "intake and notification; devstack generates one per stack."
            )
        olds = [parse_key(p, f"{name}_PREVIOUS") for p in previous.split(",") if p.strip()]
        return cls(parse_key(current, name), olds)

    def seal(self, secret: str, context: str) -> SealedSecret:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._keys[self.current_id].encrypt(nonce, secret.encode(), context.encode())
        return SealedSecret(key_id=self.current_id, nonce=_b64(nonce), ciphertext=_b64(sealed))

    def open(self, sealed: SealedSecret, context: str) -> str:
        """The secret; CannotOpen when no key here sealed it, or it or its context changed."""
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise CannotOpen(f"no key {sealed.key_id} here")
        try:
            plain = aead.decrypt(_unb64(sealed.nonce), _unb64(sealed.ciphertext), context.encode())
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise CannotOpen("sealed secret altered or sealed for another context") from exc
        return plain.decode()
