"""The published indicators' read model (docs/indicators.md), kept from a file's commands
and events.

Commands and projections write it inside their own transactions, so the inbox that
deduplicates an event also keeps it from being counted twice. The aggregation that reads
it is in `intake.views.indicators`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from guichet_runtime.clock import paris_day
from guichet_runtime.db import UnitOfWork
from guichet_runtime.statements import inserting, param, params, prepared, update_row
from intake.domain import elapsed_seconds
from intake.tables import file_metrics
from shared_models import Referent


async def file_opened(uow: UnitOfWork, file_id: str, at: dt.datetime) -> None:
    await uow.conn.execute(
        inserting(file_metrics),
        {"file_id": file_id, "submitted_at": at, "submitted_on": paris_day(at), "reassignments": 0},
    )


@prepared
def _metrics_of() -> sa.Select[Any]:
    return sa.select(file_metrics).where(file_metrics.c.file_id == param(file_metrics.c.file_id))


async def _metrics(uow: UnitOfWork, file_id: str) -> sa.Row | None:
    return (await uow.conn.execute(_metrics_of(), params(file_id=file_id))).first()


async def referent_assigned(
    uow: UnitOfWork, file_id: str, referent: Referent, at: dt.datetime
) -> None:
    """The first référent starts the file's office and delay; any later different référent
    (change asked for, cover, departure, supervisor) is a reassignment."""
    row = await _metrics(uow, file_id)
    if row is None:
        return
    if row.current_agent_id is None:
        await update_row(
            uow.conn,
            file_metrics,
            {"file_id": file_id},
            {
                "first_referent_at": at,
                "referent_delay_s": elapsed_seconds(row.submitted_at, at),
                "office_id": referent.office_id,
                "office_name": referent.office,
                "current_agent_id": referent.agent_id,
            },
        )
    elif row.current_agent_id != referent.agent_id:
        await uow.conn.execute(
            file_metrics.update()
            .where(file_metrics.c.file_id == file_id)
            .values(
                current_agent_id=referent.agent_id,
                reassignments=file_metrics.c.reassignments + 1,
            )
        )


async def _earliest(
    uow: UnitOfWork, file_id: str, at_column: str, delay_column: str, at: dt.datetime
) -> None:
    """Keep the earliest time (events may be processed out of order after retries)."""
    row = await _metrics(uow, file_id)
    if row is None:
        return
    current = getattr(row, at_column)
    if current is None or at < current:
        await update_row(
            uow.conn,
            file_metrics,
            {"file_id": file_id},
            {at_column: at, delay_column: elapsed_seconds(row.submitted_at, at)},
        )


async def citizen_contacted(uow: UnitOfWork, file_id: str, at: dt.datetime) -> None:
    await _earliest(uow, file_id, "first_contact_at", "contact_delay_s", at)


async def file_answered(uow: UnitOfWork, file_id: str, at: dt.datetime) -> None:
    await _earliest(uow, file_id, "answered_at", "answer_delay_s", at)
