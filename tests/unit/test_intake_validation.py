"""What intake says back when a form is incomplete or wrong: one entry per field, with
the field's path and a message in French."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from guichet_runtime.errors import french_errors
from intake.catalogue import CATALOGUE
from intake.schemas import FileIn

VALID: dict[str, Any] = {
    "life_event": "naissance",
    "citizen": {
        "given_name": "Awa",
        "family_name": "Diallo",
        "email": "awa.diallo@example.fr",
        "phone": "06 12 34 56 78",
        "postcode": "93200",
        "preferred_channel": "email",
    },
    "description": "Naissance de notre fille le 3 mars.",
    "urgent": False,
}

# Words of pydantic's own (English) messages that must never reach a citizen.
ENGLISH = re.compile(
    r"\b(Input|should|Field|required|valid|value|permitted|must|or|not|at least)\b"
)


def form(change: Callable[[dict[str, Any]], object] = lambda _: None) -> dict[str, Any]:
    body = copy.deepcopy(VALID)
    change(body)
    return body


def errors_of(body: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as raised:
        FileIn.model_validate(body)
    return french_errors(raised.value.errors())


def test_the_sample_form_is_valid():
    assert FileIn.model_validate(form()).citizen.family_name == "Diallo"


def test_a_missing_field_is_said_to_be_mandatory_with_its_path():
    assert errors_of(form(lambda f: f["citizen"].pop("given_name"))) == [
        {"field": "citizen.given_name", "message": "Ce champ est obligatoire."}
    ]
    assert errors_of(form(lambda f: f.pop("description"))) == [
        {"field": "description", "message": "Ce champ est obligatoire."}
    ]


def test_a_bad_email_address_is_reported_on_citizen_email():
    assert errors_of(form(lambda f: f["citizen"].update(email="awa.diallo-at-example.fr"))) == [
        {"field": "citizen.email", "message": "Adresse électronique invalide."}
    ]


@pytest.mark.parametrize("postcode", ["9320", "932000", "ABCDE", "2C004", ""])
def test_a_bad_postcode_is_reported_on_citizen_postcode(postcode):
    assert errors_of(form(lambda f: f["citizen"].update(postcode=postcode))) == [
        {"field": "citizen.postcode", "message": "Code postal invalide : 5 chiffres attendus."}
    ]


@pytest.mark.parametrize("postcode", ["75001", "2A004", "2B033", "97400"])
def test_french_postcodes_including_corsica_and_overseas_are_accepted(postcode):
    assert (
        FileIn.model_validate(
            form(lambda f: f["citizen"].update(postcode=postcode))
        ).citizen.postcode
        == postcode
    )


def test_an_unknown_life_event_lists_the_known_ones():
    [error] = errors_of(form(lambda f: f.update(life_event="mariage")))

    assert error["field"] == "life_event"
    assert error["message"].startswith("Événement de vie inconnu : choisissez parmi ")
    for code in CATALOGUE:
        assert code in error["message"]


def test_choosing_email_without_an_email_address_is_refused():
    assert errors_of(form(lambda f: f["citizen"].update(email=None))) == [
        {
            "field": "citizen",
            "message": "Une adresse électronique est nécessaire pour être contacté par courriel.",
        }
    ]


@pytest.mark.parametrize("channel", ["sms", "telephone"])
def test_choosing_sms_or_phone_without_a_phone_number_is_refused(channel):
    body = form(lambda f: f["citizen"].update(preferred_channel=channel, phone=""))

    assert errors_of(body) == [
        {
            "field": "citizen",
            "message": "Un numéro de téléphone est nécessaire pour être contacté par SMS ou téléphone.",
        }
    ]


def test_a_letter_needs_neither_email_nor_phone():
    body = form(
        lambda f: f["citizen"].update(
            preferred_channel="courrier",
            email=None,
            phone=None,
            street="3 rue Pasteur",
            city="Bobigny",
        )
    )

    assert FileIn.model_validate(body).citizen.phone is None


@pytest.mark.parametrize("channel", ["courrier", "telephone"])
def test_letters_and_phone_calls_need_a_full_postal_address(channel):
    body = form(
        lambda f: f["citizen"].update(preferred_channel=channel, street="3 rue Pasteur", city="  ")
    )

    assert errors_of(body) == [
        {
            "field": "citizen",
            "message": "Une adresse postale complète (rue et commune) est nécessaire pour recevoir vos courriers.",
        }
    ]


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("06 12 34 56 78", "0612345678"),
        ("06.12.34.56.78", "0612345678"),
        ("06-12-34-56-78", "0612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("  0612345678  ", "0612345678"),
    ],
)
def test_a_phone_number_is_normalised(typed, stored):
    assert (
        FileIn.model_validate(form(lambda f: f["citizen"].update(phone=typed))).citizen.phone
        == stored
    )


@pytest.mark.parametrize("phone", ["12", "06 12 34 56", "00 12 34 56 78", "06 12 34 56 78 90"])
def test_a_malformed_phone_number_is_reported_in_french(phone):
    [error] = errors_of(form(lambda f: f["citizen"].update(phone=phone)))

    assert error["field"] == "citizen.phone"
    assert error["message"].startswith("Numéro de téléphone invalide")


def test_every_invalid_field_is_reported_at_once():
    def break_everything(f: dict[str, Any]) -> None:
        f["citizen"].pop("family_name")
        f["citizen"]["email"] = "pas-une-adresse"
        f["citizen"]["postcode"] = "123"
        f["description"] = ""

    fields = {e["field"] for e in errors_of(form(break_everything))}

    assert fields == {"citizen.family_name", "citizen.email", "citizen.postcode", "description"}


BAD_FORMS: dict[str, Callable[[dict[str, Any]], object]] = {
    "missing": lambda f: f["citizen"].pop("postcode"),
    "empty description": lambda f: f.update(description="   "),
    "too long": lambda f: f.update(description="x" * 5001),
    "not a string": lambda f: f["citizen"].update(given_name=42),
    "not a boolean": lambda f: f.update(urgent="peut-être"),
    "unknown field": lambda f: f.update(numero_fiscal="123"),
    "citizen not an object": lambda f: f.update(citizen="Awa Diallo"),
    "bad email": lambda f: f["citizen"].update(email="awa@"),
    "bad postcode": lambda f: f["citizen"].update(postcode="75"),
    "bad phone": lambda f: f["citizen"].update(phone="123"),
    "unknown life event": lambda f: f.update(life_event="retraite"),
    "unreachable": lambda f: f["citizen"].update(email=None),
}


@pytest.mark.parametrize("case", sorted(BAD_FORMS))
def test_every_message_is_in_french(case):
    errors = errors_of(form(BAD_FORMS[case]))

    assert errors
    for error in errors:
        assert error["message"].strip()
        assert not ENGLISH.search(error["message"]), error
        assert error["field"] and not error["field"].startswith("body")


def test_the_english_detector_above_would_catch_pydantics_own_messages():
    with pytest.raises(ValidationError) as raised:
        FileIn.model_validate(form(lambda f: f["citizen"].pop("postcode")))
    assert ENGLISH.search(raised.value.errors()[0]["msg"])


def test_an_unknown_channel_lists_the_choices_in_french():
    [error] = errors_of(form(lambda f: f["citizen"].update(preferred_channel="pigeon")))

    assert error["field"] == "citizen.preferred_channel"
    assert error["message"].startswith("Valeur inconnue : choisissez parmi ")
    assert not ENGLISH.search(error["message"]), error["message"]
