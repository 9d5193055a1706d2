"""The référent's file page in the states the browser test does not walk: answer gone
(the word as sent), a word left by a former référent, a colleague's file, a citizen who
chose the phone."""

from __future__ import annotations

import copy

import pytest
from starlette.requests import Request

from web import pages

FILE = {
    "file": {
        "file_id": "GU-2026-DESK0001",
        "life_event_label": "Naissance d'un enfant",
        "status": "en_cours",
        "created_at": "2026-11-24T10:00:00+00:00",
        "agencies": [],
        "timeline": [],
        "answer": None,
    },
    "record": {
        "urgent": False,
        "description": "Notre fille est née.",
        "citizen": {
            "given_name": "Awa",
            "family_name": "Diallo",
            "postcode": "93200",
            "email": None,
            "phone": "0612345678",
            "preferred_channel": "email",
        },
    },
    "assignment": {
        "deadline": "2027-01-24",
        "referent_id": "AG-1",
        "history": [],
        "personal_word": None,
    },
    "agent": "AG-1",
    "messages": [],
    "from_citizen": [],
    "appointments": {"referent": None, "upcoming": None, "appointments": []},
    "values": {"idempotency_key": "cle-1"},
    "errors": {},
}


def render(**changes) -> str:
    context = copy.deepcopy(FILE)
    for key, value in changes.items():
        context[key] = (
            {**context[key], **value} if isinstance(value, dict) and key != "values" else value
        )
    request = Request({"type": "http", "path": "/", "query_string": b"", "headers": []})
    return pages.Renderer()(request, "referent_file.html", context).body.decode()


@pytest.fixture
def word():
    return {"text": "Bon courage à vous.", "agent_id": "AG-1", "at": None, "included": True}


def test_the_referent_edits_their_word_and_writes_with_a_key_per_form(word):
    html = render(assignment={"personal_word": word})

    assert ">Bon courage à vous.</textarea>" in html and "Modifier mon mot" in html
    assert 'name="idempotency_key" value="cle-1"' in html
    assert "par son moyen de contact préféré (courriel)" in html


def test_once_the_answer_left_the_word_is_shown_as_sent_and_no_longer_editable(word):
    html = render(
        file={"status": "repondu", "answer": {"text": "Bonjour", "personal_word": word["text"]}},
        assignment={"personal_word": word},
    )

    assert "Mot joint à la réponse coordonnée" in html and "Bon courage à vous." in html
    assert 'name="personal_word"' not in html


def test_a_former_referents_word_is_not_offered_as_the_new_referents(word):
    html = render(assignment={"personal_word": {**word, "agent_id": "AG-0", "included": False}})

    assert "Le mot écrit par le référent précédent ne sera pas joint" in html
    assert "Bon courage à vous." not in html and "Enregistrer mon mot" in html


def test_a_colleague_sees_the_file_without_the_forms():
    html = render(agent="AG-2")

    assert "Seul le référent du dossier peut joindre un mot personnel" in html
    assert 'name="message"' not in html and 'name="personal_word"' not in html


def test_a_citizen_who_chose_the_phone_gets_a_letter_and_the_referent_is_told_so():
    delivered = {
        "at": "2026-11-24T10:00:00+00:00",
        "agent_name": "Sophie Lefebvre",
        "text": "Bonjour",
        "channel": "courrier",
        "delivered_at": "2026-11-24T11:05:00+00:00",
    }
    html = render(
        record={"citizen": {**FILE["record"]["citizen"], "preferred_channel": "telephone"}},
        messages=[delivered],
    )

    assert "par courrier, l&#39;usager ayant choisi le téléphone" in html
    assert "Remis par courrier postal le 24 novembre 2026 à 12h05." in html


def test_a_refusal_comes_back_next_to_the_field_with_the_text_typed():
    html = render(
        values={"message": "x" * 2001, "idempotency_key": "cle-1"},
        errors={"message": "Le message fait au plus 2000 caractères (ici : 2001)."},
    )

    assert 'id="message-error">Le message fait au plus 2000 caractères (ici : 2001).' in html
    assert ">" + "x" * 2001 + "</textarea>" in html


def test_the_citizens_messages_show_with_their_attachments_and_the_cover():
    page = render(
        from_citizen=[
            {
                "message_id": "m-1",
                "from": "citoyen",
                "to": "Karim Benali",
                "covering_for": "Yasmine Haddad",
                "text": "Voici l'avis de la CAF.",
                "at": "2026-11-30T10:00:00+00:00",
                "attachments": [
                    {
                        "attachment_id": "a-1",
                        "filename": "avis.pdf",
                        "media_type": "application/pdf",
                        "size_bytes": 2048,
                    }
                ],
            },
            {
                "message_id": "m-2",
                "from": "citoyen",
                "to": "Karim Benali",
                "covering_for": None,
                "text": "Je réponds à votre courriel.",
                "at": "2026-11-30T11:00:00+00:00",
                "attachments": [],
                "channel": "courriel",  # a reply to the référent's email
            },
        ]
    )
    assert "Voici l&#39;avis de la CAF." in page
    assert "suppléance de Yasmine Haddad) :" in page
    assert "à Karim Benali, en réponse à un courriel :" in page
    assert 'href="/dossier/GU-2026-DESK0001/pieces-jointes/a-1"' in page and "(2 Ko)" in page
    assert "ne vous a pas écrit pour ce dossier" in render(from_citizen=[])
