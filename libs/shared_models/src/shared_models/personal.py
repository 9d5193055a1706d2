"""Crypto-shredding on the wire: which event fields carry personal data, and the sealed form
they travel in (docs/data-protection.md, "Crypto-shredding").

A field is marked personal in its event model, keeping its plain type for the code:

    citizen: Annotated[CitizenContact, PERSONAL] = Field(description=...)

The runtime (guichet_runtime.personal_data) seals such a field when it writes the outbox row
(AES-256-GCM with the citizen's data key, held by intake) and opens it in the consumer before
the handler runs: handlers and domain code only ever see the plain value. On the topic the
field's value is a `SealedPersonalData` object instead of the plain one. Once intake has
shredded the key, no copy opens any more.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from shared_models.contract import Contract


class Personal:
    """The marker of a personal field (`Annotated[T, PERSONAL]`)."""

    def __repr__(self) -> str:
        return "PERSONAL"


#: Put in `Annotated[...]` on every event field that carries personal data.
PERSONAL = Personal()


class SealedPersonalData(Contract):
    """A personal field's value as it travels and rests outside intake: the field's JSON,
    encrypted with the citizen's data key (AES-256-GCM), bound to the file."""

    key_id: str = Field(
        description="The citizen's data key (`personal_data_keys.key_id` at intake, a UUID): "
        "the reader asks intake's key service for it; once shredded, nothing opens."
    )
    nonce: str = Field(description="The 12-byte GCM nonce, base64url without padding.")
    ciphertext: str = Field(
        description="The field's value as JSON (UTF-8), encrypted, with its 16-byte GCM tag, "
        "base64url without padding. Associated data: `personal-data:<file id>`."
    )


#: The keys of a sealed value: a JSON object with exactly these is sealed, never plain data.
SEALED_KEYS = frozenset(SealedPersonalData.model_fields)


def is_sealed(value: Any) -> bool:
    """Whether a raw JSON value is a sealed personal field."""
    return isinstance(value, dict) and value.keys() == SEALED_KEYS


def personal_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The names of `model`'s fields marked personal, in declaration order."""
    cached: tuple[str, ...] | None = model.__dict__.get("__personal_fields__")
    if cached is not None:
        return cached
    names = tuple(
        name
        for name, info in model.model_fields.items()
        if any(isinstance(m, Personal) for m in info.metadata)
    )
    model.__personal_fields__ = names  # type: ignore[attr-defined]
    return names


def sealing_context(file_id: str) -> str:
    """The associated data a personal field is sealed with: it opens for its file only."""
    return f"personal-data:{file_id}"
