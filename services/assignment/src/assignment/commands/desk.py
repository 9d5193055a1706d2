"""What the référent does on their desk in the assignment service: the personal word
joined to the coordinated answer.

The answer never waits for the word: it leaves as soon as every agency has answered
(the legal clock is not held by a person). A word written before that moment goes with
it; after, it is refused. See docs/referent-desk.md.
"""

from __future__ import annotations

import sqlalchemy as sa

from assignment.domain import ONLY_THE_REFERENT_WRITES, FileStatus
from assignment.personal_columns import file_seal
from assignment.tables import agents, files
from guichet_runtime import audit
from guichet_runtime.audit import AuditAction
from guichet_runtime.auth.principal import Principal
from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.refusals import RefusalKind, Refused


async def _file_of_referent(uow: UnitOfWork, file_id: str, agent_id: str) -> sa.Row:
    """The open file, locked, if `agent_id` is its current référent; else Refused."""
    file = (
        await uow.conn.execute(sa.select(files).where(files.c.file_id == file_id).with_for_update())
    ).first()
    if file is None:
        raise Refused(RefusalKind.NOT_FOUND, f"Aucun dossier ne porte la référence {file_id}.")
    if (
        await uow.conn.scalar(sa.select(agents.c.agent_id).where(agents.c.agent_id == agent_id))
        is None
    ):
        raise Refused(RefusalKind.NOT_FOUND, f"Aucun agent ne porte l'identifiant {agent_id}.")
    if file.status == FileStatus.ANSWERED:
        raise Refused(
            RefusalKind.CONFLICT,
            "La réponse coordonnée est déjà partie : le mot personnel ne peut plus être modifié. "
            "Écrivez plutôt un message à l'usager.",
        )
    if file.referent_id != agent_id:
        raise Refused(RefusalKind.FORBIDDEN, ONLY_THE_REFERENT_WRITES)
    return file


async def set_personal_word(
    uow: UnitOfWork, file_id: str, agent_id: str, text: str, by: Principal | None = None
) -> dict:
    """Set or replace the référent's word on an open file (before the answer leaves)."""
    async with uow:
        await _file_of_referent(uow, file_id, agent_id)
        now = utcnow()
        await uow.conn.execute(
            files.update()
            .where(files.c.file_id == file_id)
            .values(
                personal_word=(await file_seal(uow, file_id)).seal(text),
                personal_word_agent_id=agent_id,
                personal_word_at=now,
            )
        )
        actor = by or audit.agent_actor(agent_id)
        audit.record(uow, actor, AuditAction.PERSONAL_WORD_SET, file_id=file_id)
        await uow.commit()
    return {
        "file_id": file_id,
        "personal_word": {"text": text, "agent_id": agent_id, "at": now},
        "message": "Votre mot personnel est enregistré : il accompagnera la réponse coordonnée.",
    }


async def remove_personal_word(
    uow: UnitOfWork, file_id: str, agent_id: str, by: Principal | None = None
) -> dict:
    """The référent withdraws their word before the answer leaves."""
    async with uow:
        await _file_of_referent(uow, file_id, agent_id)
        await uow.conn.execute(
            files.update()
            .where(files.c.file_id == file_id)
            .values(personal_word=None, personal_word_agent_id=None, personal_word_at=None)
        )
        actor = by or audit.agent_actor(agent_id)
        audit.record(uow, actor, AuditAction.PERSONAL_WORD_REMOVED, file_id=file_id)
        await uow.commit()
    return {"file_id": file_id, "personal_word": None, "message": "Votre mot personnel est retiré."}
