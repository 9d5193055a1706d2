"""The base of every value an event carries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """Base of every value carried by an event: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")
