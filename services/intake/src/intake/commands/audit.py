"""Agents' reads of a citizen's personal data, and the supervisors' reading of a file's
audit trail: each read is recorded before the data leaves (guichet_runtime.audit)."""

from __future__ import annotations

from typing import Any

from guichet_runtime import audit
from guichet_runtime.auth.principal import Principal, PrincipalKind
from guichet_runtime.db import UnitOfWork
from intake.domain import unknown_file
from intake.views import files as views
from intake.views import own


async def read_record(
    file_id: str, who: Principal, reason: str | None, uow: UnitOfWork
) -> dict[str, Any]:
    """The citizen's contact and own words, for an agent who says why (422 without a
    reason); the read is in the trail before the record is returned."""
    why = audit.reason_given(reason)
    record = await views.file_record(uow, file_id)
    if record is None:
        raise unknown_file(file_id)
    async with uow:
        audit.record(uow, who, audit.AuditAction.RECORD_READ, file_id=file_id, reason=why)
        await uow.commit()
    return record


async def read_file_view(file_id: str, who: Principal, uow: UnitOfWork) -> dict[str, Any]:
    """The file's view (the answer's decisions and amounts, the timeline): an agent's
    reading is in the trail before it is returned; the citizen's own is not recorded."""
    view = await views.file_view(uow, file_id)
    if view is None:
        raise unknown_file(file_id)
    if who.kind is PrincipalKind.AGENT:
        async with uow:
            audit.record(uow, who, audit.AuditAction.FILE_READ, file_id=file_id)
            await uow.commit()
    return view


async def read_registered_files(who: Principal, uow: UnitOfWork) -> list[dict[str, Any]]:
    """The files a front-desk agent registered, with the citizens' names: the reading is in
    the trail before the list is returned."""
    found = await own.files_registered_by(uow, who.agent_id or "")
    async with uow:
        audit.record(
            uow,
            who,
            audit.AuditAction.REGISTERED_FILES_READ,
            agent_id=who.agent_id,
            files=len(found),
        )
        await uow.commit()
    return found


async def file_audit_trail(file_id: str, who: Principal, uow: UnitOfWork) -> list[dict[str, Any]]:
    """The file's audit trail, oldest first, this reading included."""
    async with uow:
        audit.record(uow, who, audit.AuditAction.AUDIT_READ, file_id=file_id)
        await uow.commit()
    return await audit.file_entries(uow, file_id)
