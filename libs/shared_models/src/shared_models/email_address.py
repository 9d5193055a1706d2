"""An email address in an event, checked once per process.

pydantic's `EmailStr` runs `email_validator` at every validation: every event carrying a
référent's card or a citizen's contact is decoded by several services, and each decoding
checked the same addresses again (a twentieth of assignment's CPU per file in `make bench`,
docs/performance.md). `EmailAddress` is the same check through the same function
(`pydantic.networks.validate_email`), its result kept for the addresses seen lately: the
same normalised value, the same error for an invalid address (an error is not kept), the
same JSON schema (`format: email`, read by the AsyncAPI document).
"""

from __future__ import annotations

import functools
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema
from pydantic.networks import validate_email


@functools.lru_cache(maxsize=8192)
def checked_email(value: str) -> str:
    """`value` normalised as `EmailStr` does it, or pydantic's error for it."""
    return validate_email(value)[1]


EmailAddress = Annotated[
    str,
    AfterValidator(checked_email),
    WithJsonSchema({"type": "string", "format": "email"}),
]
