"""A citizen's personal data erased at intake (their request, or the retention period of a
closed file): assignment erases its copy. The file keeps its skeleton (life event, dates,
agencies, référents, decisions) for the indicators and the audit trail."""

from __future__ import annotations

import sqlalchemy as sa

from assignment.tables import agency_requests, files
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
                sa.select(agency_requests.c.request_id, agency_requests.c.answer).where(
                    agency_requests.c.file_id == event.file_id,
                    agency_requests.c.answer.is_not(None),
                )
            )
        ).all()
        for row in answered:
            await uow.conn.execute(
                agency_requests.update()
                .where(agency_requests.c.request_id == row.request_id)
                .values(answer=erased_answer(row.answer))
            )
        await uow.commit()
