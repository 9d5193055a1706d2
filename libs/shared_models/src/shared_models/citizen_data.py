"""Minimisation on the wire: the citizen data an event may carry, by name.

`CITIZEN_FIELDS` is the vocabulary: the catalogue lists, for each agency, which of these its
requests carry (catalogue.toml, [citizen_fields]), and an adapter declares the same list
(`Declaration.citizen_fields`, checked by the contract test kit). `CitizenExtract` is what an
agency's request carries: only the listed fields, the others absent from the record, not
null. `CitizenName` is what an event addressed to agents carries when a name is all the
message needs (thanks, deadline warnings, supervisors' alerts): never a contact.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from shared_models.contract import Contract
from shared_models.email_address import EmailAddress

if TYPE_CHECKING:
    from shared_models.events import CitizenContact

#: Every citizen field an agency's request can carry (the citizen's contact, and the
#: situation in their own words).
CITIZEN_FIELDS: tuple[str, ...] = (
    "given_name",
    "family_name",
    "email",
    "phone",
    "street",
    "postcode",
    "city",
    "preferred_channel",
    "description",
)


class PreferredChannel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    LETTER = "courrier"
    PHONE = "telephone"


class CitizenName(Contract):
    """The citizen's name, for a message to an agent: no contact, no address."""

    given_name: str = Field(description="Citizen's given name.")
    family_name: str = Field(description="Citizen's family name.")

    @model_validator(mode="before")
    @classmethod
    def _name_only(cls, data: Any) -> Any:
        # Events recorded before schema version 2 carried the whole contact: read them,
        # keep the name (the contact is dropped on reading).
        if isinstance(data, Contract) and not isinstance(data, CitizenName):
            data = data.model_dump()
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k in ("given_name", "family_name")}
        return data


class CitizenExtract(Contract):
    """The citizen data one agency receives: only the fields the catalogue lists for it.

    A field not listed is absent from the record (not null); a listed one the citizen did
    not give (an email, a street) is null."""

    given_name: str | None = Field(default=None, description="Citizen's given name, if listed.")
    family_name: str | None = Field(default=None, description="Citizen's family name, if listed.")
    email: EmailAddress | None = Field(
        default=None, description="Citizen's email address, if listed."
    )
    phone: str | None = Field(default=None, description="Citizen's phone number, if listed.")
    street: str | None = Field(
        default=None, description="Number and street of the citizen's address, if listed."
    )
    postcode: str | None = Field(
        default=None, description="French postcode of the citizen's home, if listed."
    )
    city: str | None = Field(default=None, description="Town of the citizen's address, if listed.")
    preferred_channel: PreferredChannel | None = Field(
        default=None, description="Channel the citizen chose for messages, if listed."
    )
    description: str | None = Field(
        default=None, description="The citizen's situation in their own words, if listed."
    )

    @model_serializer(mode="wrap")
    def _only_the_fields_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # What was not selected does not travel, not even as null.
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}

    def carried(self) -> frozenset[str]:
        """The names of the fields this extract carries."""
        return frozenset(self.model_fields_set)


def select_citizen_data(
    fields: Iterable[str], citizen: CitizenContact, description: str
) -> CitizenExtract:
    """The citizen data a request carries: exactly `fields` (the catalogue's list for the
    agency) out of the contact and the description, nothing else."""
    values = {**citizen.model_dump(), "description": description}
    unknown = sorted(set(fields) - set(CITIZEN_FIELDS))
    if unknown:
        raise ValueError(f"champs citoyen inconnus : {', '.join(unknown)}")
    return CitizenExtract.model_validate({name: values.get(name) for name in fields})


def citizen_name(citizen: CitizenContact) -> CitizenName:
    """The name out of a contact: what a message to an agent needs."""
    return CitizenName(given_name=citizen.given_name, family_name=citizen.family_name)
