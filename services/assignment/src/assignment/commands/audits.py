"""Agents' reads of citizens' personal data at assignment, and the supervisors' reading of
a file's audit trail: each read is recorded before the data leaves (guichet_runtime.audit)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from assignment import appointment_views, views
from guichet_runtime import audit
from guichet_runtime.audit import AuditAction
from guichet_runtime.auth.principal import Principal
from guichet_runtime.db import UnitOfWork


async def read_portfolio(uow: UnitOfWork, agent_id: str, who: Principal) -> dict[str, Any]:
    """An agent's open files (the citizens' names among them), the reading recorded."""
    found = await views.portfolio(uow, agent_id)
    async with uow:
        audit.record(
            uow,
            who,
            AuditAction.PORTFOLIO_READ,
            agent_id=agent_id,
            files=len(found.get("files", [])),
        )
        await uow.commit()
    return found


async def read_file_appointments(
    uow: UnitOfWork, file_id: str, now: dt.datetime, who: Principal, recorded: bool
) -> dict[str, Any]:
    """A file's appointments card (the citizen's name among them); the reading recorded
    when `recorded` (the front desk of the référent's office, on the phone)."""
    found = await appointment_views.file_appointments(uow, file_id, now)
    if recorded:
        async with uow:
            audit.record(uow, who, AuditAction.FILE_APPOINTMENTS_READ, file_id=file_id)
            await uow.commit()
    return found


async def file_audit_trail(uow: UnitOfWork, file_id: str, who: Principal) -> list[dict[str, Any]]:
    """The file's audit trail, oldest first, this reading included."""
    async with uow:
        audit.record(uow, who, AuditAction.AUDIT_READ, file_id=file_id)
        await uow.commit()
    return await audit.file_entries(uow, file_id)


async def read_agent_day(
    uow: UnitOfWork, agent_id: str, day: dt.date, who: Principal
) -> dict[str, Any]:
    """An agent's appointments of a day (the citizens' names among them), the reading
    recorded."""
    found = await appointment_views.agent_day(uow, agent_id, day)
    async with uow:
        audit.record(
            uow,
            who,
            AuditAction.APPOINTMENTS_READ,
            agent_id=agent_id,
            day=day.isoformat(),
            appointments=len(found["appointments"]),
        )
        await uow.commit()
    return found
