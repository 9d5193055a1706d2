"""The HTTP API's request models of the assignment service (messages in French)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from assignment.domain import MAX_WORD


class PersonalWordIn(BaseModel):
    """A few lines of the référent to the citizen, joined to the coordinated answer (the
    author is the agent of the access token)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(description="Le mot personnel, en texte simple (1 à 1000 caractères).")

    @field_validator("text")
    @classmethod
    def _length(cls, value: str) -> str:
        if not value:
            raise PydanticCustomError("personal_word", "Écrivez quelques mots avant d'enregistrer.")
        if len(value) > MAX_WORD:
            raise PydanticCustomError(
                "personal_word",
                "Le mot personnel fait au plus {max} caractères (ici : {n}).",
                {"max": MAX_WORD, "n": len(value)},
            )
        return value


class AbsenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    starts_on: dt.date = Field(description="Premier jour d'absence.")
    ends_on: dt.date = Field(description="Dernier jour d'absence (inclus).")
    reason: str | None = Field(
        default=None,
        max_length=500,
        description="Motif, obligatoire (interne : conservé dans le journal d'audit).",
    )


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=5, max_length=1000, description="Motif, obligatoire.")
    agent_id: str | None = Field(
        default=None, description="Agent choisi (sinon, les règles habituelles)."
    )


class DepartureIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str | None = Field(
        default=None, max_length=500, description="Motif, obligatoire (journal d'audit)."
    )


#: The reason an agent gives for acting on the file's appointments (the audit trail's).
ACCESS_REASON = (
    "Pourquoi l'agent agit (par exemple « Appel téléphonique de l'usager »), conservé dans le "
    "journal d'audit ; obligatoire pour un agent d'accueil du bureau du référent qui n'a pas "
    "enregistré le dossier."
)


class SlotIn(BaseModel):
    """The slot the citizen (or an agent for them) books or moves an appointment to."""

    model_config = ConfigDict(extra="forbid")

    starts_at: dt.datetime = Field(
        description="Début du créneau choisi, avec son fuseau (tel que la liste des créneaux "
        "libres le donne)."
    )
    access_reason: str | None = Field(default=None, max_length=1000, description=ACCESS_REASON)


class CancellationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str | None = Field(
        default=None,
        max_length=500,
        description="Motif de l'annulation, facultatif (transmis à l'usager si un agent annule).",
    )
    access_reason: str | None = Field(default=None, max_length=1000, description=ACCESS_REASON)
