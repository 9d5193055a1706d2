"""What the citizen reads about each agency's legal deadline on their file (issue 18 §3):
the events of assignment's legal clock, through intake's projection, to the file's view;
every expected sentence written out by hand."""

from __future__ import annotations

import datetime as dt

from intake import projections
from intake.commands.files import SubmitFile, submit_file
from intake.schemas import FileIn
from intake.views import files as views
from shared_models import DeadlineRule, LegalDeadlineSet
from tests.unit.samples import AWA_FORM

FORM = AWA_FORM


async def deadline_set(db, file_id: str, agency: str, **fields) -> None:
    event = LegalDeadlineSet(
        file_id=file_id, request_id=f"{file_id}-{agency}", agency=agency, **fields
    )
    await projections.on_legal_deadline_set(event, db.uow(("intake", str(event.event_id))))


async def test_each_agency_deadline_is_told_to_the_citizen_word_for_word(intake_db):
    file_id, _ = await submit_file(SubmitFile(form=FileIn.model_validate(FORM)), intake_db.uow())
    # Received 31 December 2026: the CAF's two months end on 28 February 2027.
    await deadline_set(
        intake_db,
        file_id,
        "caf",
        rule=DeadlineRule.SILENCE_ACCEPTS,
        due_on=dt.date(2027, 2, 28),
        state="en_cours",
        why="reception",
    )
    # Received 30 December 2027: the DGFiP's two months end on 29 February 2028 (leap year).
    await deadline_set(
        intake_db,
        file_id,
        "dgfip",
        rule=DeadlineRule.SILENCE_REJECTS,
        due_on=dt.date(2028, 2, 29),
        state="en_cours",
        why="reception",
    )
    await deadline_set(
        intake_db,
        file_id,
        "france_travail",
        rule=DeadlineRule.SILENCE_ACCEPTS,
        due_on=None,
        state="suspendu",
        why="suspension",
    )

    view = await views.file_view(intake_db.uow(), file_id)

    told = {a["agency"]: (a["due_on"], a["deadline"]) for a in view["agencies"]}
    assert told == {
        "caf": (
            dt.date(2027, 2, 28),
            "Réponse au plus tard le 28/02/2027 ; sans réponse à cette date, votre demande sera "
            "acceptée.",
        ),
        "dgfip": (
            dt.date(2028, 2, 29),
            "Réponse au plus tard le 29/02/2028 ; sans réponse à cette date, votre demande sera "
            "rejetée (vous pourrez la contester).",
        ),
        "france_travail": (None, "Délai suspendu jusqu'à réception de la pièce demandée."),
    }


async def test_a_deadline_without_a_rule_gives_the_date_alone(intake_db):
    file_id, _ = await submit_file(SubmitFile(form=FileIn.model_validate(FORM)), intake_db.uow())
    await deadline_set(
        intake_db,
        file_id,
        "caf",
        rule=DeadlineRule.NONE,
        due_on=dt.date(2027, 3, 1),
        state="en_cours",
        why="reception",
    )

    view = await views.file_view(intake_db.uow(), file_id)

    [caf] = [a for a in view["agencies"] if a["agency"] == "caf"]
    assert caf["deadline"] == "Réponse au plus tard le 01/03/2027."


def test_the_silence_rule_tells_the_citizen_what_became_of_their_request():
    """ "Votre demande est acceptée / rejetée": the participle agrees with "demande"."""
    from intake.domain import implicit_decision_sentence
    from shared_models import Decision

    assert implicit_decision_sentence(
        "Caisse d'allocations familiales (CAF)",
        dt.date(2027, 2, 28),
        Decision.IMPLICIT_ACCEPTANCE,
    ) == (
        "Caisse d'allocations familiales (CAF) n'a pas répondu avant le 28/02/2027 : "
        "votre demande est acceptée implicitement (silence gardé pendant le délai légal). "
        "Un courrier vous le confirme."
    )
    assert "votre demande est rejetée implicitement (" in implicit_decision_sentence(
        "CAF", dt.date(2027, 2, 28), Decision.IMPLICIT_REJECTION
    )
