"""Assignment's pure rules: which département a citizen lives in, who becomes their
référent, and the coordinated answer's wording."""

from __future__ import annotations

import datetime as dt

import pytest

from assignment.domain import Candidate, choose_referent, compose_answer, departement_of
from shared_models import Decision, catalogue
from tests.unit.samples import citizen, decision, referent

ALL_AGENCIES = frozenset(catalogue().served_agencies())
NEEDED = ["france_travail", "caf", "dgfip"]


def agent(
    agent_id: str,
    *,
    departement: str = "93",
    agencies: frozenset[str] | set[str] = ALL_AGENCIES,
    active: int = 0,
    capacity: int = 10,
    name: str | None = None,
) -> Candidate:
    return Candidate(
        agent_id=agent_id,
        name=name or f"Agent {agent_id}",
        departement=departement,
        agencies=frozenset(agencies),
        active_files=active,
        capacity=capacity,
    )


# --------------------------------------------------------------------------- départements


@pytest.mark.parametrize(
    ("postcode", "departement"),
    [
        ("75001", "75"),
        ("93200", "93"),
        ("01000", "01"),
        ("20000", "2A"),  # Ajaccio
        ("20190", "2A"),
        ("20200", "2B"),  # Bastia
        ("20600", "2B"),
        ("2A004", "2A"),
        ("2B033", "2B"),
        ("97400", "974"),  # La Réunion
        ("97100", "971"),
    ],
)
def test_departement_of_a_postcode(postcode, departement):
    assert departement_of(postcode) == departement


# --------------------------------------------------------------------------- référent rules


def test_continuity_wins_when_the_previous_referent_has_room():
    previous = agent("prev", departement="75", agencies={"caf"}, active=9, name="Camille Martin")
    local_expert = agent("local", departement="93", active=0)

    choice = choose_referent([local_expert, previous], NEEDED, "93", previous)

    assert choice is not None
    assert (choice.agent_id, choice.rule) == ("prev", "continuite")
    assert "Camille Martin" in choice.explanation


def test_continuity_gives_way_when_the_previous_referent_is_at_capacity():
    previous = agent("prev", active=10, capacity=10)
    other = agent("other")

    choice = choose_referent([previous, other], NEEDED, "93", previous)

    assert choice is not None
    assert choice.agent_id == "other"
    assert choice.rule == "proximite"


def test_an_agent_in_the_citizens_departement_is_preferred_to_a_better_one_elsewhere():
    far_expert = agent("far", departement="75", agencies=ALL_AGENCIES, active=0)
    near_partial = agent("near", departement="93", agencies={"caf"}, active=8)

    choice = choose_referent([far_expert, near_partial], NEEDED, "93")

    assert choice is not None
    assert (choice.agent_id, choice.rule) == ("near", "proximite")
    assert "dans le département" in choice.explanation


def test_without_anyone_in_the_departement_the_search_widens():
    choice = choose_referent([agent("lyon", departement="69")], NEEDED, "23")

    assert choice is not None
    assert (choice.agent_id, choice.rule) == ("lyon", "proximite_elargie")
    assert "hors du département" in choice.explanation


def test_full_skills_coverage_is_preferred_to_partial_coverage_even_if_busier():
    partial = agent("partial", agencies={"caf", "dgfip"}, active=0)
    full = agent("full", agencies={"caf", "dgfip", "france_travail"}, active=7)

    choice = choose_referent([partial, full], NEEDED, "93")

    assert choice is not None
    assert choice.agent_id == "full"
    assert "formé pour tous les organismes du dossier" in choice.explanation


def test_with_nobody_fully_trained_the_best_coverage_wins_and_it_is_said():
    one = agent("one", agencies={"caf"})
    two = agent("two", agencies={"caf", "dgfip"}, active=5)

    choice = choose_referent([one, two], NEEDED, "93")

    assert choice is not None
    assert choice.agent_id == "two"
    assert "formé pour 2 organisme(s) sur 3" in choice.explanation


def test_the_least_loaded_among_equals_is_chosen():
    busy = agent("a-busy", active=6)
    quiet = agent("b-quiet", active=2)
    middling = agent("c-middling", active=4)

    choice = choose_referent([busy, quiet, middling], NEEDED, "93")

    assert choice is not None
    assert choice.agent_id == "b-quiet"
    assert choice.considered == ["b-quiet", "c-middling", "a-busy"]


def test_an_agent_at_capacity_is_never_chosen():
    full_but_perfect = agent("perfect", active=10, capacity=10)
    previous_full = agent("previous", active=3, capacity=3)
    remote = agent("remote", departement="13", agencies={"caf"}, active=9, capacity=10)

    choice = choose_referent([full_but_perfect, previous_full, remote], NEEDED, "93", previous_full)

    assert choice is not None
    assert choice.agent_id == "remote"
    assert "perfect" not in choice.considered


def test_nobody_is_chosen_when_nobody_has_room():
    everyone_full = [agent("a", active=10), agent("b", departement="75", active=10)]

    assert choose_referent(everyone_full, NEEDED, "93", agent("prev", active=1, capacity=1)) is None
    assert choose_referent([], NEEDED, "93") is None


def test_the_explanation_is_in_french_and_names_the_agent():
    choice = choose_referent([agent("x", name="Nadia Benali", active=3)], NEEDED, "93")

    assert choice is not None
    assert choice.explanation.startswith("Nadia Benali : bureau dans le département")
    assert "3 dossier(s) actif(s) sur 10" in choice.explanation


# --------------------------------------------------------------------------- coordinated answer


@pytest.fixture
def answer_parts():
    decisions = [
        decision(
            "caf",
            amount_eur=1234.56,
            start_date=dt.date(2025, 2, 1),
            summary="Le RSA vous est accordé.",
        ),
        decision(
            "dgfip",
            Decision.REFUSED,
            summary="Le dégrèvement est refusé.",
            reason="Vos revenus dépassent le plafond.",
        ),
        decision(
            "france_travail",
            Decision.DOCUMENT_REQUESTED,
            summary="Il manque votre attestation employeur.",
        ),
    ]
    return {
        "file_id": "GU-2025-ABCDEFGH",
        "life_event_label": "Perte d'emploi",
        "citizen": citizen(given_name="Awa", family_name="Diallo"),
        "decisions": decisions,
        "referent": referent(opening_hours="Du lundi au vendredi, 9h-12h30 et 13h30-17h"),
    }


def test_the_answer_names_each_agency_with_its_decision(answer_parts):
    text = compose_answer(**answer_parts)

    for label in (
        "Caisse d'allocations familiales (CAF)",
        "Direction générale des Finances publiques (DGFiP)",
        "France Travail",
    ):
        assert label in text
    assert "CPAM" not in text
    assert "Caisse d'allocations familiales (CAF) : accordé. Le RSA vous est accordé." in text
    assert "Motif : Vos revenus dépassent le plafond." in text
    assert text.startswith("Bonjour Awa Diallo,")
    assert "GU-2025-ABCDEFGH (Perte d'emploi)" in text


def test_amounts_and_dates_are_written_the_french_way(answer_parts):
    text = compose_answer(**answer_parts)

    assert "Montant : 1\u202f234,56\u00a0€ à partir du 01/02/2025." in text


@pytest.mark.parametrize(
    ("amount", "written"),
    [
        (1234.5, "1\u202f234,50\u00a0€"),
        (1234.56, "1\u202f234,56\u00a0€"),
        (1234567.8, "1\u202f234\u202f567,80\u00a0€"),
        (0.5, "0,50\u00a0€"),
        (100, "100,00\u00a0€"),
    ],
)
def test_every_amount_has_a_comma_for_cents_and_spaces_for_thousands(answer_parts, amount, written):
    answer_parts["decisions"] = [decision("caf", amount_eur=amount)]

    assert f"Montant : {written}." in compose_answer(**answer_parts)


def test_a_refusal_comes_with_the_next_step_to_contest_it(answer_parts):
    text = compose_answer(**answer_parts)

    assert "Ce qu'il vous reste à faire :" in text
    assert (
        "- Direction générale des Finances publiques (DGFiP) : vous pouvez contester la décision "
        "dans un délai de deux mois" in text
    )
    assert "- France Travail : envoyez la pièce justificative demandée" in text


def test_when_everything_is_granted_the_citizen_has_nothing_left_to_do(answer_parts):
    answer_parts["decisions"] = [decision("caf"), decision("cpam")]

    text = compose_answer(**answer_parts)

    assert "Vous n'avez aucune démarche supplémentaire à faire :" in text
    assert "contester" not in text


def test_every_decision_says_what_to_do_next_with_its_dates_and_reference(answer_parts):
    answer_parts["decisions"] = [
        decision("caf", amount_eur=300, start_date=dt.date(2025, 3, 1)),
        decision("cpam", start_date=dt.date(2025, 4, 15)),
        decision("dgfip", Decision.IMPLICIT_ACCEPTANCE),
        decision("france_travail", Decision.IMPLICIT_REJECTION),
    ]

    text = compose_answer(**answer_parts)

    steps = text.split("Ce qu'il vous reste à faire :", 1)[1].split(
        "Je reste votre interlocuteur", 1
    )[0]
    assert (
        "- Caisse d'allocations familiales (CAF) : rien à faire, la décision s'applique à partir "
        "du 01/03/2025" in steps
    )
    assert (
        "- Caisse primaire d'assurance maladie (CPAM) : rien à faire, la décision s'applique à "
        "partir du 15/04/2025" in steps
    )
    assert "attestation d'acceptation implicite" in steps
    assert "- France Travail : vous pouvez contester la décision" in steps
    assert "À partir du 15/04/2025." in text  # a date without an amount is still written
    assert "(référence CAF-2025-0001)" in text


def test_the_personal_word_comes_before_the_signature_block_and_only_when_written(answer_parts):
    ref = answer_parts["referent"]
    word = "Bon courage pour la suite, n'hésitez pas à passer me voir.\nÀ bientôt."

    with_word = compose_answer(**answer_parts, personal_word=word)
    without = compose_answer(**answer_parts)

    body, signature = with_word.split("Je reste votre interlocuteur", 1)
    assert f"Un mot de votre référent, {ref.name} :\n{word}\n" in body
    assert body.index("Ce qu'il vous reste à faire") < body.index(word)
    assert "Un mot de votre référent" not in without
    assert f"Téléphone direct : {ref.phone}" in signature


def test_the_answer_is_signed_with_the_referents_direct_contact_and_opening_hours(answer_parts):
    ref = answer_parts["referent"]

    text = compose_answer(**answer_parts)

    signature = text.split("Je reste votre interlocuteur", 1)[1]
    assert ref.name in signature
    assert ref.office in signature
    assert f"Téléphone direct : {ref.phone}" in signature
    assert f"Courriel : {ref.email}" in signature
    assert "Accueil : Du lundi au vendredi, 9h-12h30 et 13h30-17h" in signature


def test_distances_between_french_cities_are_right_to_a_few_kilometres():
    from assignment.domain import distance_km
    from assignment.geo import locate

    paris, lyon, ajaccio = locate("75011", "75"), locate("69003", "69"), locate("20000", "2A")
    assert 385 < distance_km(paris, lyon) < 400
    assert 880 < distance_km(paris, ajaccio) < 960
    assert locate("97400", "974")[0] < -20  # Réunion, southern hemisphere


def test_an_unknown_postcode_is_located_at_its_departement_centre_or_not_at_all():
    from assignment.geo import locate

    centre = locate("23999", "23")
    assert centre is not None and 45.9 < centre[0] < 46.4
    assert locate("00000", "00") is None


def test_outside_the_departement_the_nearest_located_office_wins_and_says_how_far():
    near = agent("near", departement="87", active=5)
    near = Candidate(
        **{**near.__dict__, "distance_km": 74.6, "office_name": "France Services Guéret"}
    )
    choice = choose_referent([near], NEEDED, "23")

    assert choice.rule == "proximite_distance"
    assert "75 km" in choice.explanation and "Guéret" in choice.explanation
