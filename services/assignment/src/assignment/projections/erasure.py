"""A citizen's personal data erased at intake (their request, or the retention period of a
closed file): assignment erases its copy. The file keeps its skeleton (life event, dates,
agencies, référents, decisions) for the indicators and the audit trail."""

from __future__ import annotations

import sqlalchemy as sa

from assignment.domain import AssignmentRule
from assignment.personal_columns import answer_of
from assignment.tables import agency_requests, assignments, files
from guichet_runtime.db import UnitOfWork
from shared_models import CitizenDataErased

ERASED = "(effacé)"
#: What stands for the citizen once erased: valid where a contact is read, naming no one.
ERASED_CITIZEN = {
    "given_name": ERASED,
    "family_name": ERASED,
    "email": None,
    "phone": None,
    "street": None,
    "postcode": "00000",
    "city": None,
    "preferred_channel": "courrier",
}
#: The rules whose history line quotes the reason given for the move.
QUOTING_A_REASON = (AssignmentRule.CITIZEN_REQUEST, AssignmentRule.SUPERVISOR_MOVE)
#: Of an agency's answer, what is kept: who decided what, under which reference.
KEPT_OF_ANSWER = ("agency", "decision", "agency_reference")


def erased_answer(answer: dict) -> dict:
    """The agency's answer without its details about the citizen (amount, dates, reasons)."""
    kept = {k: answer[k] for k in KEPT_OF_ANSWER if k in answer}
    return {**kept, "summary": ERASED}


async def on_citizen_data_erased(event: CitizenDataErased, uow: UnitOfWork) -> None:
    async with uow:
        await uow.conn.execute(
            files.update()
            .where(files.c.file_id == event.file_id)
            .values(
                citizen=ERASED_CITIZEN,
                # Continuity of the référent no longer finds this person: they are forgotten.
                citizen_key=f"erased:{event.file_id}",
                description="",
                personal_word=None,
            )
        )
        answered = (
            await uow.conn.execute(
                sa.select(
                    agency_requests.c.request_id, agency_requests.c.agency, agency_requests.c.answer
                ).where(
                    agency_requests.c.file_id == event.file_id,
                    agency_requests.c.answer.is_not(None),
                )
            )
        ).all()
        for row in answered:
            # Sealed: opened while the key is still at hand (else only who answered is kept).
            answer = await answer_of(uow, event.file_id, row.answer, row.agency)
            await uow.conn.execute(
                agency_requests.update()
                .where(agency_requests.c.request_id == row.request_id)
                .values(answer=erased_answer(answer))
            )
        # The history's explanations quoting a reason the citizen or a supervisor gave.
        await uow.conn.execute(
            assignments.update()
            .where(
                assignments.c.file_id == event.file_id,
                assignments.c.rule.in_(QUOTING_A_REASON),
            )
            .values(explanation=ERASED)
        )
        await uow.commit()
