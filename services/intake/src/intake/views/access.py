"""The facts intake's access policies decide on (guichet_runtime.policy, docs/security.md):
who is linked to a file, whether a live proof from its one-time code came with the request,
and the office of an agent as intake knows it."""

from __future__ import annotations

import sqlalchemy as sa

from guichet_runtime.db import UnitOfWork
from guichet_runtime.policy import FileParties, Subject
from intake.records import live_proof
from intake.tables import files, thanks


async def file_subject(uow: UnitOfWork, file_id: str, proof: str | None) -> Subject:
    """The file's parties (citizen, front-desk agent, current référent and their office, as
    the assignment events told them) and whether `proof` opens it; `exists=False` for an
    unknown file. Intake does not know who covers an absent référent: the cover becomes the
    référent of the file (a new ReferentAssigned) and passes as such."""
    async with uow:
        row = (
            await uow.conn.execute(
                sa.select(files.c.citizen_subject, files.c.registered_by, files.c.referent).where(
                    files.c.file_id == file_id
                )
            )
        ).first()
        if row is None:
            return Subject(exists=False)
        proved = bool(proof) and await live_proof(uow, file_id, proof or "")
    card = row.referent or {}
    return Subject(
        file=FileParties(
            file_id=file_id,
            citizen_subject=row.citizen_subject,
            registered_by=row.registered_by,
            referent=card.get("agent_id"),
            office=card.get("office_id"),
        ),
        proved=proved,
    )


async def agent_subject(uow: UnitOfWork, agent_id: str) -> Subject:
    """The agent a route is about, with the office intake last saw them in (that of their
    latest thanks); None when intake never saw it: then only the agent themselves passes
    AGENT_SELF, not a supervisor."""
    async with uow:
        office = await uow.conn.scalar(
            sa.select(thanks.c.office_id)
            .where(thanks.c.agent_id == agent_id, thanks.c.office_id.is_not(None))
            .order_by(thanks.c.at.desc())
            .limit(1)
        )
    return Subject(agent_id=agent_id, agent_office=office)
