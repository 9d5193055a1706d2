"""The référent marks a file's messages from the citizen read (answering marks them
answered: assignment.projections.messages)."""

from __future__ import annotations

from assignment.tables import citizen_messages
from guichet_runtime.db import UnitOfWork, utcnow


async def mark_read(uow: UnitOfWork, file_id: str, agent_id: str) -> dict:
    """Every unread message of the file is read by the agent (the file's référent or their
    cover); marking again changes nothing. Returns how many were newly read."""
    async with uow:
        result = await uow.conn.execute(
            citizen_messages.update()
            .where(
                citizen_messages.c.file_id == file_id,
                citizen_messages.c.read_at.is_(None),
                citizen_messages.c.answered_at.is_(None),
            )
            .values(read_at=utcnow(), read_by=agent_id)
        )
        await uow.commit()
    return {"file_id": file_id, "marked_read": result.rowcount}
