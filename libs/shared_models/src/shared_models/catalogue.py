"""The catalogue: the agencies the guichet can name (code, French name) and the life events
a citizen can declare (code, French name, the agencies a file goes to).

It also says which citizen fields each agency receives ([citizen_fields]): the one place
they are declared for the core, which puts only those on the agency's request topic.

It is data, not code: `catalogue.toml` next to this module, or the file named by the
`GUICHET_CATALOGUE` environment variable for a deployment or a test. It is read on first
use (nothing at import time), validated, and cached. Connecting an agency is installing its
adapter (found by entry point, see docs/adapters.md) and listing it here; the contract test
kit checks that the adapter's declaration agrees with this file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared_models.agencies import AGENCY_CODE, AgencyCode
from shared_models.citizen_data import CITIZEN_FIELDS, CitizenExtract, select_citizen_data
from shared_models.events import CitizenContact

#: Environment variable naming a catalogue file that replaces the shipped one.
CATALOGUE_ENV = "GUICHET_CATALOGUE"
#: The catalogue shipped with the package.
DEFAULT_CATALOGUE = Path(__file__).with_name("catalogue.toml")

#: A life event's code follows the same shape as an agency's: perte_emploi, naissance…
LifeEventCode = Annotated[str, StringConstraints(pattern=AGENCY_CODE.pattern)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2)]


class CatalogueInvalid(ValueError):
    """The catalogue file cannot be read or breaks a rule (message in French)."""


class LifeEvent(BaseModel):
    """A life event a citizen can declare, and the agencies a file for it goes to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: LifeEventCode = Field(description="Code of the life event (perte_emploi, naissance…).")
    label: Label = Field(description="Name of the life event in French.")
    agencies: tuple[AgencyCode, ...] = Field(
        min_length=1, description="Agencies a file for this life event goes to, in order."
    )


class Catalogue(BaseModel):
    """The agencies (code -> French name) and the life events, in the file's order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agencies: dict[AgencyCode, Label] = Field(description="Agency code -> name in French.")
    life_events: dict[LifeEventCode, LifeEvent] = Field(description="Life event code -> event.")
    citizen_fields: dict[AgencyCode, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Agency code -> the only citizen fields its requests carry (one list per "
        "agency of [agencies]; the adapter declares the same).",
    )

    @model_validator(mode="before")
    @classmethod
    def _codes_from_keys(cls, data: Any) -> Any:
        # In the file a life event's code is its key; the model carries it too.
        if isinstance(data, dict) and isinstance(data.get("life_events"), dict):
            events = {
                code: {"code": code, **entry} if isinstance(entry, dict) else entry
                for code, entry in data["life_events"].items()
            }
            data = {**data, "life_events": events}
        return data

    @model_validator(mode="after")
    def _every_agency_is_named(self) -> Catalogue:
        for event in self.life_events.values():
            unnamed = [a for a in event.agencies if a not in self.agencies]
            if unnamed:
                raise ValueError(
                    f"l'événement « {event.code} » vise des organismes absents de [agencies] : "
                    f"{', '.join(unnamed)}"
                )
            if len(set(event.agencies)) != len(event.agencies):
                raise ValueError(f"l'événement « {event.code} » cite deux fois le même organisme")
        self._every_agency_lists_its_fields()
        return self

    def _every_agency_lists_its_fields(self) -> None:
        strangers = [a for a in self.citizen_fields if a not in self.agencies]
        if strangers:
            raise ValueError(
                f"[citizen_fields] liste des organismes absents de [agencies] : "
                f"{', '.join(strangers)}"
            )
        for agency in self.agencies:
            fields = self.citizen_fields.get(agency)
            if not fields:
                raise ValueError(
                    f"l'organisme « {agency} » ne liste pas les champs citoyen qu'il reçoit : "
                    f"ajoutez-le à [citizen_fields] (parmi {', '.join(CITIZEN_FIELDS)})"
                )
            unknown = [f for f in fields if f not in CITIZEN_FIELDS]
            if unknown:
                raise ValueError(
                    f"champs citoyen inconnus pour « {agency} » : {', '.join(unknown)} "
                    f"(connus : {', '.join(CITIZEN_FIELDS)})"
                )

    def served_agencies(self) -> tuple[str, ...]:
        """Agencies at least one life event reaches (their topics are the core's), in the
        order of [agencies]."""
        reached = {a for event in self.life_events.values() for a in event.agencies}
        return tuple(a for a in self.agencies if a in reached)

    def citizen_fields_of(self, agency: str) -> frozenset[str]:
        """The only citizen fields a request to `agency` carries."""
        return frozenset(self.citizen_fields[agency])

    def life_events_of(self, agency: str) -> tuple[str, ...]:
        """Codes of the life events whose files go to `agency`."""
        return tuple(e.code for e in self.life_events.values() if agency in e.agencies)


def load_catalogue(path: Path | str) -> Catalogue:
    """Read and validate the catalogue file at `path` (CatalogueInvalid, in French, if not)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        reason = exc.strerror or exc
        raise CatalogueInvalid(f"Le catalogue {path} est illisible : {reason}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueInvalid(
            f"Le catalogue {path} n'est pas un fichier TOML valide : {exc}."
        ) from exc
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'fichier'} : {e['msg']}" for e in exc.errors()
        )
        raise CatalogueInvalid(f"Le catalogue {path} est invalide : {problems}.") from exc


def catalogue() -> Catalogue:
    """The catalogue in use: the file GUICHET_CATALOGUE names if set, else the shipped one,
    read once. Looked up by the setting's text itself: every agency code checked and every
    label shown asks for it, and making a path of the setting at each call cost more than
    the lookup (intake: about 2 % of its CPU)."""
    return _read_once(os.environ.get(CATALOGUE_ENV) or str(DEFAULT_CATALOGUE))


@lru_cache(maxsize=8)
def _read_once(path: str) -> Catalogue:
    return load_catalogue(path)


def citizen_data_for(agency: str, citizen: CitizenContact, description: str) -> CitizenExtract:
    """The citizen data a request to `agency` carries: the fields the catalogue in use lists
    for it, and nothing else (minimisation happens before the data leaves the core)."""
    return select_citizen_data(catalogue().citizen_fields_of(agency), citizen, description)


def known_agency(code: str) -> str:
    """`code` if the catalogue names that agency; a validation error of kind "enum" (the
    choices in its context) if not."""
    known = catalogue().agencies
    if code not in known:
        raise PydanticCustomError(
            "enum", "Input should be {expected}", {"expected": ", ".join(repr(a) for a in known)}
        )
    return code


#: An agency code the catalogue in use names (checked when a model is validated).
KnownAgencyCode = Annotated[str, AfterValidator(known_agency)]


class AgencyLabels(Mapping[str, str]):
    """Agency code -> French name, read from the catalogue in use when first looked up."""

    def __getitem__(self, code: str) -> str:
        return catalogue().agencies[code]

    def __iter__(self) -> Iterator[str]:
        return iter(catalogue().agencies)

    def __len__(self) -> int:
        return len(catalogue().agencies)


class LifeEvents(Mapping[str, LifeEvent]):
    """Life event code -> LifeEvent, read from the catalogue in use when first looked up."""

    def __getitem__(self, code: str) -> LifeEvent:
        return catalogue().life_events[code]

    def __iter__(self) -> Iterator[str]:
        return iter(catalogue().life_events)

    def __len__(self) -> int:
        return len(catalogue().life_events)


#: Names shown to citizens and agents (read-only, backed by the catalogue).
AGENCY_LABELS: Mapping[str, str] = AgencyLabels()
#: The life events a citizen can declare (read-only, backed by the catalogue).
LIFE_EVENTS: Mapping[str, LifeEvent] = LifeEvents()
