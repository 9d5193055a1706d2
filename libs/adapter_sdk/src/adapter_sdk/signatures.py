"""How an agency signs its callbacks, and how the adapter checks them (docs/adapters.md,
"Signing callbacks"; docs/security.md, "Agencies' callbacks").

The agency and its adapter share a secret (`CALLBACK_SECRET`). Each delivery carries

    X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + the exact body bytes>

The adapter recomputes the HMAC with the standard library (`hmac`, constant-time comparison),
refuses a timestamp outside the replay window, and keeps the signatures it took for the length
of the window (the `callback_signatures` table) so that an exact replay is refused. The agency
signs each delivery anew: a redelivery carries a fresh timestamp, hence a new signature.

This module is pure (no I/O): the replay store is the callback gate's (adapter_sdk.callback_gate).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

#: The header an agency's callback carries.
HEADER = "X-Signature"
#: The signature scheme's version tag in the header.
SCHEME = "v1"


class RefusalReason(StrEnum):
    """Why a callback is refused before it is read (the `reason` label of
    `adapter_callbacks_refused`)."""

    MISSING = "signature_absente"
    INVALID = "signature_invalide"
    OUTSIDE_WINDOW = "horodatage_hors_fenetre"
    REPLAYED = "signature_rejouee"
    NO_SECRET = "secret_non_configure"
    OTHER_AGENCY = "demande_d_un_autre_organisme"


#: What the agency is told, in French, for each reason.
MESSAGES: dict[RefusalReason, str] = {
    RefusalReason.MISSING: f"Rappel refusé : il n'est pas signé (en-tête {HEADER} absent).",
    RefusalReason.INVALID: "Rappel refusé : la signature ne correspond pas au contenu.",
    RefusalReason.OUTSIDE_WINDOW: "Rappel refusé : son horodatage est hors de la fenêtre admise.",
    RefusalReason.REPLAYED: "Rappel refusé : cette signature a déjà été reçue (rejeu).",
    RefusalReason.NO_SECRET: "Rappel refusé : aucun secret de rappel n'est configuré.",
    RefusalReason.OTHER_AGENCY: "Rappel refusé : la demande désignée n'est pas de cet organisme.",
}


#: How the exchange ledger names each reason (agents read it).
LEDGER_LABELS: dict[RefusalReason, str] = {
    RefusalReason.MISSING: "non signé",
    RefusalReason.INVALID: "signature invalide",
    RefusalReason.OUTSIDE_WINDOW: "horodatage hors délai",
    RefusalReason.REPLAYED: "rejeu",
    RefusalReason.NO_SECRET: "aucun secret configuré",
    RefusalReason.OTHER_AGENCY: "demande d'un autre organisme",
}


class SignatureRefused(Exception):
    """A callback whose signature does not prove it comes from the agency."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(MESSAGES[reason])
        self.reason = reason


@dataclass(frozen=True)
class Signed:
    """A checked signature: when it was made and its digest (the replay store's key)."""

    timestamp: int
    digest: str


def digest(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256, in hex, of `"<timestamp>." + body` under `secret`."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Signature header value of `body` signed at `timestamp` (Unix seconds)."""
    return f"t={timestamp},{SCHEME}={digest(secret, timestamp, body)}"


def parse(header: str) -> tuple[int, list[str]]:
    """The timestamp and the v1 digests of a header value; ValueError if malformed."""
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise ValueError(f"élément sans « = » : {part[:40]!r}")
        if key == "t":
            timestamp = int(value)
        elif key == SCHEME:
            digests.append(value.strip().lower())
    if timestamp is None or not digests:
        raise ValueError("t= et v1= sont attendus")
    return timestamp, digests


def verify(
    secrets: Iterable[str], header: str | None, body: bytes, now: float, window: float
) -> Signed:
    """Check a callback's signature against the agency's secret(s) (the current one and,
    during a rotation, the previous one); raise SignatureRefused with the reason."""
    keys = [s for s in secrets if s]
    if not keys:
        raise SignatureRefused(RefusalReason.NO_SECRET)
    if not header:
        raise SignatureRefused(RefusalReason.MISSING)
    try:
        timestamp, offered = parse(header)
    except ValueError:
        raise SignatureRefused(RefusalReason.INVALID) from None
    for key in keys:
        expected = digest(key, timestamp, body)
        if any(hmac.compare_digest(expected.encode(), d.encode()) for d in offered):
            if abs(now - timestamp) > window:
                raise SignatureRefused(RefusalReason.OUTSIDE_WINDOW)
            return Signed(timestamp, expected)
    raise SignatureRefused(RefusalReason.INVALID)


def header_of(headers: Mapping[str, str]) -> str | None:
    """The X-Signature header from a mapping whose keys may be of any case."""
    for name, value in headers.items():
        if name.lower() == HEADER.lower():
            return value
    return None
