"""What a caller reads of their own: a file's contact details for its citizen, a citizen's
files (by their token's `sub`), the files a front-desk agent registered (by their agent
id). The routes pass only the verified caller's identity; nothing else is looked up."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from guichet_runtime.db import UnitOfWork
from intake.catalogue import CATALOGUE
from intake.tables import files

#: The contact fields the citizen may change (`ContactIn`), as the contact form shows them.
CONTACT_FIELDS = ("preferred_channel", "email", "phone", "street", "postcode", "city")
#: At most this many files in one list (newest first): a person has a handful; a front-desk
#: agent's list is their recent work.
LIST_LIMIT = 200


async def citizen_contact(uow: UnitOfWork, file_id: str) -> dict[str, Any] | None:
    """The citizen's current contact preferences on the file; None for an unknown file."""
    async with uow:
        citizen = await uow.conn.scalar(
            sa.select(files.c.citizen).where(files.c.file_id == file_id)
        )
    if citizen is None:
        return None
    return {name: citizen.get(name) for name in CONTACT_FIELDS}


def _own_file(row: sa.Row, with_citizen: bool) -> dict[str, Any]:
    event = CATALOGUE.get(row.life_event)
    referent = row.referent or {}
    listed = {
        "file_id": row.file_id,
        "status": row.status,
        "life_event": row.life_event,
        "life_event_label": event.label if event else row.life_event,
        "created_at": row.created_at,
        "channel": row.channel,
        "referent_name": referent.get("name"),
    }
    if with_citizen:
        names = (row.citizen.get("given_name"), row.citizen.get("family_name"))
        listed["citizen_name"] = " ".join(n for n in names if n) or None
    return listed


async def _files_where(uow: UnitOfWork, condition: Any, with_citizen: bool) -> list[dict]:
    async with uow:
        rows = (
            await uow.conn.execute(
                sa.select(
                    files.c.file_id,
                    files.c.status,
                    files.c.life_event,
                    files.c.created_at,
                    files.c.channel,
                    files.c.referent,
                    files.c.citizen,
                )
                .where(condition)
                .order_by(files.c.created_at.desc(), files.c.file_id)
                .limit(LIST_LIMIT)
            )
        ).all()
    return [_own_file(r, with_citizen) for r in rows]


async def files_of_citizen(uow: UnitOfWork, subject: str) -> list[dict]:
    """The files a citizen submitted logged in (their `sub`), newest first."""
    return await _files_where(uow, files.c.citizen_subject == subject, with_citizen=False)


async def files_registered_by(uow: UnitOfWork, agent_id: str) -> list[dict]:
    """The files a front-desk agent registered for citizens, newest first."""
    return await _files_where(uow, files.c.registered_by == agent_id, with_citizen=True)
