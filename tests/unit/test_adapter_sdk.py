"""The adapter SDK's own rules: declarations, minimised citizen data, coherent answers,
and the runtime's reading of replies."""

from __future__ import annotations

import pytest

from adapter_sdk import (
    AgencyAnswer,
    AgencyReply,
    AnswerInvalid,
    CitizenData,
    DeadlineRule,
    Decision,
    Declaration,
    RequestedDocument,
    UndeclaredField,
    answer_problems,
    declaration_problems,
)
from adapter_sdk.runtime import checked

VALID = dict(
    agency="caf",
    label="CAF",
    life_events=("naissance",),
    citizen_fields=frozenset({"family_name"}),
    deadline_rule=DeadlineRule.SILENCE_REJECTS,
    deadline_days=60,
    legal_basis="Code de la sécurité sociale",
    purpose="Prestations familiales",
)


def test_a_valid_declaration_breaks_no_rule():
    assert declaration_problems(Declaration(**VALID)) == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"deadline_days": None}, "exige un délai légal, en mois"),
        ({"deadline_rule": DeadlineRule.NONE}, "La règle « aucune » ne prend pas de délai"),
        ({"citizen_fields": frozenset({"nir"})}, "Champs citoyen inconnus déclarés : nir"),
        ({"life_events": ()}, "aucun événement de vie"),
        ({"agency": "CAF!"}, "code d'organisme « CAF! » est invalide"),
        ({"legal_basis": ""}, "base légale"),
    ],
)
def test_each_broken_declaration_rule_is_said_in_plain_words(change, message):
    problems = declaration_problems(Declaration(**{**VALID, **change}))
    assert any(message in p for p in problems), problems


def test_citizen_data_holds_only_the_declared_fields_and_says_which_was_read():
    data = CitizenData(
        {"family_name": "Dupont", "email": "m@example.fr"}, frozenset({"family_name"})
    )
    assert dict(data) == {"family_name": "Dupont"}
    with pytest.raises(UndeclaredField, match="« email » n'est pas déclaré"):
        data["email"]


@pytest.mark.parametrize(
    "answer, message",
    [
        (dict(decision=Decision.REFUSED), "un refus doit donner son motif"),
        (dict(decision=Decision.DOCUMENT_REQUESTED), "doit nommer la pièce"),
        (
            dict(decision=Decision.REFUSED, reason="Plafond dépassé.", amount_eur=10.0),
            "n'accompagne qu'une décision accordée",
        ),
        (
            dict(
                decision=Decision.GRANTED, requested_document=RequestedDocument(code="x", label="X")
            ),
            "qu'avec la décision piece_demandee",
        ),
    ],
)
def test_incoherent_answers_are_named(answer, message):
    problems = answer_problems(AgencyAnswer(summary="Décision", agency_reference="R-1", **answer))
    assert any(message in p for p in problems), problems


def test_the_runtime_turns_unreadable_or_incoherent_replies_into_answer_invalid():
    def read(reply: AgencyReply) -> AgencyAnswer:
        return AgencyAnswer.model_validate(reply.json())

    with pytest.raises(AnswerInvalid, match="pas du JSON"):
        checked(read, AgencyReply(200, b"<html>"))
    with pytest.raises(AnswerInvalid, match="réponse illisible"):
        checked(read, AgencyReply(200, b'{"statut": "OK"}'))
    with pytest.raises(AnswerInvalid, match="un refus doit donner son motif"):
        checked(
            read,
            AgencyReply(200, b'{"decision": "refuse", "summary": "Non", "agency_reference": "R"}'),
        )
    good = checked(
        read,
        AgencyReply(200, b'{"decision": "accorde", "summary": "Oui", "agency_reference": "R"}'),
    )
    assert good.decision is Decision.GRANTED
