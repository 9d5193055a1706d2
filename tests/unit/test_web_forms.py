"""The pages' own logic: form data to intake's request, intake's errors back next to the
right field, French dates, and the load chart's figures."""

from __future__ import annotations

import datetime as dt

from web import forms, pages

TYPED = {
    "life_event": "naissance",
    "description": "Notre fille est née.",
    "given_name": "Awa",
    "family_name": "Diallo",
    "email": "",
    "phone": "06 12 34 56 78",
    "street": "3 rue Jean Jaurès",
    "postcode": "93200",
    "city": "",
    "preferred_channel": "telephone",
}


def test_empty_optional_contacts_are_left_out_of_the_request():
    body = forms.file_body(TYPED, urgent=True)
    assert body["citizen"] == {
        "given_name": "Awa",
        "family_name": "Diallo",
        "postcode": "93200",
        "preferred_channel": "telephone",
        "phone": "06 12 34 56 78",
        "street": "3 rue Jean Jaurès",
    }
    assert body["urgent"] is True and body["life_event"] == "naissance"
    unchosen = forms.file_body({**TYPED, "life_event": "", "preferred_channel": ""}, urgent=False)
    assert "life_event" not in unchosen and "preferred_channel" not in unchosen["citizen"]


def test_intake_errors_land_next_to_their_field_in_the_order_of_the_form():
    errors = [
        {"field": "citizen.postcode", "message": "Code postal invalide : 5 chiffres attendus."},
        {
            "field": "citizen",
            "message": "Un numéro de téléphone est nécessaire pour être contacté par SMS ou téléphone.",
        },
        {"field": "life_event", "message": "Ce champ est obligatoire."},
        {"field": "Idempotency-Key", "message": "Clé déjà utilisée."},
    ]
    mapped = forms.file_errors(errors, {**TYPED, "preferred_channel": "sms"})
    assert list(mapped) == ["life_event", "postcode", "phone", "form"]
    assert forms.file_errors(errors[1:2], {**TYPED, "preferred_channel": "email"}) == {
        "email": errors[1]["message"]
    }
    letter = {
        "field": "citizen",
        "message": "Une adresse postale complète (rue et commune) est nécessaire pour recevoir vos courriers.",
    }
    # The street is typed, the commune is missing: the message goes next to the commune.
    assert forms.file_errors([letter], TYPED) == {"city": letter["message"]}
    assert forms.file_errors([letter], {**TYPED, "street": " "}) == {"street": letter["message"]}


def test_references_and_codes_are_checked_before_asking_intake():
    assert forms.normalise_reference(" gu-2026-abcd 2345 ") == "GU-2026-ABCD2345"
    assert forms.reference_error("GU-2026-ABCD2345") is None
    assert forms.reference_error("").startswith("Indiquez")
    assert forms.reference_error("GU-12").startswith("Référence invalide")
    assert forms.code_error("123 456") is None and forms.code_error("12345a").startswith(
        "Le code comporte"
    )


def test_dates_are_said_in_french_in_paris_time():
    late_evening = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC)  # already 1 December in Paris
    assert pages.date_fr(late_evening) == "1er décembre 2026"
    assert pages.datetime_fr("2026-11-24T17:07:00+00:00") == "24 novembre 2026 à 18h07"
    assert pages.date_fr("2027-01-24") == "24 janvier 2027" and pages.date_fr(None) == ""
    assert pages.Renderer().env.filters["euros_fr"](2168.13) == "2\u202f168,13\u00a0€"


def test_the_load_chart_marks_full_portfolios_in_words_and_skips_departed_agents():
    chart = pages.load_chart(
        [
            {
                "name": "Karim Benali",
                "office": "FS Saint-Denis",
                "status": "actif",
                "active_files": 36,
                "capacity": 40,
            },
            {
                "name": "Julie Henry",
                "office": "FS Ajaccio",
                "status": "absent",
                "active_files": 4,
                "capacity": 40,
            },
            {
                "name": "Paul Perrot",
                "office": "FS Réunion",
                "status": "parti",
                "active_files": 0,
                "capacity": 40,
            },
        ]
    )
    assert [(r["label"], r["text"], r["full"]) for r in chart["rows"]] == [
        ("Karim Benali", "36 / 40", True),
        ("Julie Henry", "4 / 40", False),
    ]
    assert chart["rows"][0]["w"] == round(chart["track"] * 0.9)
