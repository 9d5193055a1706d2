"""`shared_models.EmailAddress` accepts, normalises and refuses exactly what pydantic's
`EmailStr` does, with the same JSON schema, and checks each address once per process."""

from __future__ import annotations

from unittest import mock

import pytest
from pydantic import BaseModel, EmailStr, Field, ValidationError

from shared_models import email_address
from shared_models.email_address import EmailAddress, checked_email


class Standard(BaseModel):
    email: EmailStr | None = Field(default=None, description="Adresse.")


class Kept(BaseModel):
    email: EmailAddress | None = Field(default=None, description="Adresse.")


ADDRESSES = [
    "awa.diallo@example.fr",
    "Awa.Diallo@EXAMPLE.FR",
    "inès.haddad@exemple.fr",
    "yasmine@xn--exemple-9ua.fr",
    "not an address",
    "awa@",
    "@example.fr",
    "a" * 70 + "@example.fr",
    "",
]


def outcome(model: type[BaseModel], value: str) -> tuple[str, object]:
    try:
        return "ok", model(email=value).email
    except ValidationError as error:
        return "refused", [(e["type"], e["msg"], e["loc"]) for e in error.errors()]


@pytest.mark.parametrize("value", ADDRESSES)
def test_an_address_is_accepted_normalised_or_refused_as_emailstr_does(value: str):
    checked_email.cache_clear()
    assert outcome(Kept, value) == outcome(Standard, value)
    assert outcome(Kept, value) == outcome(Standard, value)  # from the memory, the same


def test_the_json_schema_is_emailstrs():
    assert Kept.model_json_schema() == {**Standard.model_json_schema(), "title": "Kept"}


def test_an_address_is_checked_once_an_invalid_one_each_time():
    checked_email.cache_clear()
    with mock.patch.object(
        email_address, "validate_email", wraps=email_address.validate_email
    ) as validate:
        for _ in range(3):
            Kept(email="referent@franceservices.example.fr")
            with pytest.raises(ValidationError):
                Kept(email="pas une adresse")
    assert [c.args[0] for c in validate.call_args_list] == [
        "referent@franceservices.example.fr",
        "pas une adresse",
        "pas une adresse",
        "pas une adresse",
    ]
