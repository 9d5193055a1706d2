"""Views: assignment's part of the citizen's export ("Mes données", RGPD art. 15;
docs/data-protection.md, "The citizen's rights"): what assignment holds about the citizen of
one file — its copy of the file (contact, description, as received), the référents it named
with the rule and the reason, the agencies' requests and answers, the référent's personal word,
the appointments with the référent.

Every personal column is read through ONE function, `file_personal_data`: where the columns
are sealed with the file's data key, it is the one place that opens them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from assignment.personal_columns import (
    ERASED,
    ERASED_CITIZEN,
    answer_of,
    explanation_of,
    open_column,
)
from assignment.tables import (
    agency_requests,
    agents,
    appointments,
    assignments,
    files,
    offices,
)
from guichet_runtime.db import UnitOfWork, utcnow

#: Who serves this part, as the export's `sources` name it.
SOURCE = "attribution du référent"


@dataclass
class PersonalData:
    """A file's personal columns at assignment, in clear."""

    citizen: dict[str, Any] | None = None
    description: str | None = None
    personal_word: str | None = None
    answers: dict[str, Any] = field(default_factory=dict)  # request id -> the agency's answer
    explanations: dict[int, str] = field(default_factory=dict)  # assignment id -> why
    cancel_reasons: dict[str, str] = field(default_factory=dict)  # appointment id -> why


async def file_personal_data(uow: UnitOfWork, file_id: str) -> PersonalData:
    """The file's personal columns (files.citizen, .description, .personal_word;
    agency_requests.answer; assignments.explanation; appointments.cancel_reason), opened
    with the file's data key (`assignment.personal_columns`; the erased form once the key is
    shredded): the only reader of them here. Inside the unit of work."""
    conn = uow.conn
    row = (
        await conn.execute(
            sa.select(files.c.citizen, files.c.description, files.c.personal_word).where(
                files.c.file_id == file_id
            )
        )
    ).first()
    if row is None:
        return PersonalData()
    answers = await conn.execute(
        sa.select(
            agency_requests.c.request_id, agency_requests.c.agency, agency_requests.c.answer
        ).where(agency_requests.c.file_id == file_id)
    )
    explanations = await conn.execute(
        sa.select(assignments.c.id, assignments.c.explanation).where(
            assignments.c.file_id == file_id
        )
    )
    reasons = await conn.execute(
        sa.select(appointments.c.appointment_id, appointments.c.cancel_reason).where(
            appointments.c.file_id == file_id, appointments.c.cancel_reason.is_not(None)
        )
    )
    return PersonalData(
        citizen=await open_column(uow, file_id, row.citizen, dict(ERASED_CITIZEN)),
        description=await open_column(uow, file_id, row.description, ERASED),
        personal_word=await open_column(uow, file_id, row.personal_word, ERASED),
        answers={r.request_id: await answer_of(uow, file_id, r.answer, r.agency) for r in answers},
        explanations={
            int(r.id): await explanation_of(uow, file_id, r.explanation)
            for r in explanations
            if r.explanation is not None
        },
        cancel_reasons={
            r.appointment_id: str(await open_column(uow, file_id, r.cancel_reason, ERASED))
            for r in reasons
        },
    )


async def citizen_part(uow: UnitOfWork, file_id: str) -> dict[str, Any]:
    """Assignment's part of the export for one file (`held` false: it holds nothing of it,
    e.g. not received yet)."""
    async with uow:
        conn = uow.conn
        file = (
            await conn.execute(
                sa.select(
                    files.c.life_event_label,
                    files.c.status,
                    files.c.urgent,
                    files.c.created_at,
                    files.c.answered_at,
                    files.c.personal_word_at,
                ).where(files.c.file_id == file_id)
            )
        ).first()
        if file is None:
            return {"source": SOURCE, "file_id": file_id, "generated_at": utcnow(), "held": False}
        personal = await file_personal_data(uow, file_id)
        named = (
            await conn.execute(
                sa.select(
                    assignments.c.id,
                    assignments.c.rule,
                    assignments.c.at,
                    agents.c.agent_id,
                    agents.c.name,
                    offices.c.name.label("office"),
                )
                .join(agents, agents.c.agent_id == assignments.c.agent_id)
                .join(offices, offices.c.office_id == agents.c.office_id)
                .where(assignments.c.file_id == file_id)
                .order_by(assignments.c.at, assignments.c.id)
            )
        ).all()
        requests = (
            await conn.execute(
                sa.select(
                    agency_requests.c.request_id,
                    agency_requests.c.agency,
                    agency_requests.c.status,
                    agency_requests.c.issued_at,
                    agency_requests.c.answered_at,
                )
                .where(agency_requests.c.file_id == file_id)
                .order_by(agency_requests.c.issued_at, agency_requests.c.request_id)
            )
        ).all()
        booked = (
            await conn.execute(
                sa.select(appointments, agents.c.name)
                .join(agents, agents.c.agent_id == appointments.c.agent_id)
                .where(appointments.c.file_id == file_id)
                .order_by(appointments.c.starts_at, appointments.c.booked_at)
            )
        ).all()
    return {
        "source": SOURCE,
        "file_id": file_id,
        "generated_at": utcnow(),
        "held": True,
        "file": {
            "life_event_label": file.life_event_label,
            "status": file.status,
            "urgent": file.urgent,
            "received_at": file.created_at,
            "answered_at": file.answered_at,
        },
        "citizen": personal.citizen,
        "description": personal.description,
        "referents": [
            {
                "agent_id": r.agent_id,
                "name": r.name,
                "office": r.office,
                "rule": r.rule,
                "why": personal.explanations.get(int(r.id)),
                "at": r.at,
            }
            for r in named
        ],
        "agency_requests": [
            {
                "agency": r.agency,
                "status": r.status,
                "issued_at": r.issued_at,
                "answered_at": r.answered_at,
                "answer": personal.answers.get(r.request_id),
            }
            for r in requests
        ],
        "personal_word": (
            {"text": personal.personal_word, "at": file.personal_word_at}
            if personal.personal_word
            else None
        ),
        "appointments": [
            {
                "starts_at": a.starts_at,
                "ends_at": a.ends_at,
                "office_address": a.office_address,
                "referent": a.name,
                "status": a.status,
                "booked_by": a.booked_by,
                "booked_at": a.booked_at,
                "cancelled_by": a.cancelled_by,
                "cancel_reason": personal.cancel_reasons.get(a.appointment_id),
            }
            for a in booked
        ],
    }
