"""The citizen's actions on their file page: contact preferences, documents, thanks and the
survey turned into intake's requests, intake's refusals placed next to the right field, and
the documents the agencies ask for."""

from __future__ import annotations

from web import forms, pages

CONTACT = {
    "preferred_channel": "courrier",
    "email": "",
    "phone": " ",
    "street": "8 rue Francis de Pressensé",
    "postcode": "69100",
    "city": "Villeurbanne",
}


def test_contact_preferences_leave_out_what_was_left_blank():
    assert forms.contact_body(CONTACT) == {
        "preferred_channel": "courrier",
        "postcode": "69100",
        "street": "8 rue Francis de Pressensé",
        "city": "Villeurbanne",
    }
    # Nothing chosen: intake says the channel is required, next to it.
    assert "preferred_channel" not in forms.contact_body({**CONTACT, "preferred_channel": ""})


def test_the_contact_form_starts_from_the_details_on_record():
    on_record = {
        "given_name": "Jean",
        "family_name": "Martin",
        "email": None,
        "phone": "0478123456",
        "street": "8 rue Francis de Pressensé",
        "postcode": "69100",
        "city": "Villeurbanne",
        "preferred_channel": "telephone",
    }
    assert forms.contact_values(on_record) == {
        "preferred_channel": "telephone",
        "email": "",
        "phone": "0478123456",
        "street": "8 rue Francis de Pressensé",
        "postcode": "69100",
        "city": "Villeurbanne",
    }


def test_a_refused_contact_change_lands_next_to_the_missing_contact():
    # ContactIn is the whole body: its "reachable" check comes back on the field "body".
    email_needed = {
        "field": "body",
        "message": "Une adresse électronique est nécessaire pour être contacté par courriel.",
    }
    address_needed = {
        "field": "body",
        "message": "Une adresse postale complète (rue et commune) est nécessaire pour recevoir vos courriers.",
    }
    bad_postcode = {"field": "postcode", "message": "Code postal invalide : 5 chiffres attendus."}
    assert forms.file_errors(
        [email_needed], {**CONTACT, "preferred_channel": "email"}, forms.CONTACT_FIELDS
    ) == {"email": email_needed["message"]}
    assert forms.file_errors(
        [bad_postcode, address_needed], {**CONTACT, "city": ""}, forms.CONTACT_FIELDS
    ) == {"postcode": bad_postcode["message"], "city": address_needed["message"]}
    # A field the form does not have goes to the summary, never lost.
    assert forms.file_errors(
        [{"field": "given_name", "message": "Champ inconnu."}], CONTACT, forms.CONTACT_FIELDS
    ) == {"form": "Champ inconnu."}


def test_survey_answers_are_typed_for_intake():
    assert forms.survey_body(
        {"score": "4", "referent_reachable": "non", "comment": " Très bien. "}
    ) == {"score": 4, "referent_reachable": False, "comment": " Très bien. "}
    # Blank answers are left out; intake says the score is required.
    assert forms.survey_body({"score": "", "referent_reachable": "", "comment": "  "}) == {}
    assert forms.survey_body(
        {"score": "cinq", "referent_reachable": "peut-être", "comment": ""}
    ) == {"score": "cinq"}


def test_document_refusals_sit_next_to_the_file_field_or_the_choice_of_agency():
    assert forms.document_error("", b"") == "Choisissez le fichier à envoyer."
    assert forms.document_error("attestation.pdf", b"%PDF-1.4") is None
    assert forms.document_hint(512 * 1024) == "Format PDF, JPEG ou PNG, 512 Ko au plus."
    too_big = [{"field": "fichier", "message": "Le fichier dépasse 512 Ko."}]
    assert forms.document_errors(too_big, 413) == [
        {"field": "document", "message": "Le fichier dépasse 512 Ko."}
    ]
    several = [
        {
            "field": "agency",
            "message": "Plusieurs organismes attendent une pièce (caf, cpam) : précisez lequel.",
        }
    ]
    assert forms.document_errors(several, 422)[0]["field"] == "agency"
    nobody = [
        {
            "field": "agency",
            "message": "Aucun organisme n'attend de pièce justificative pour ce dossier.",
        }
    ]
    assert forms.document_errors(nobody, 409)[0]["field"] == "document"


def test_requested_documents_name_the_agency_that_asked():
    agencies = [
        {"agency": "caf", "label": "CAF", "requested_document": None},
        {
            "agency": "cpam",
            "label": "Assurance maladie (CPAM)",
            "requested_document": {
                "code": "attestation_salaire",
                "label": "Attestation de salaire",
            },
        },
    ]
    assert pages.requested_documents(agencies) == [
        {
            "agency": "cpam",
            "agency_label": "Assurance maladie (CPAM)",
            "label": "Attestation de salaire",
        }
    ]


def test_sizes_are_said_in_french():
    assert pages.size_fr(1) == "1 octet" and pages.size_fr(820) == "820 octets"
    assert pages.size_fr(12 * 1024) == "12 Ko" and pages.size_fr(1_572_864) == "1,5 Mo"
