"""The retention job at intake (`python -m intake retention`, a Kubernetes CronJob): what
outlived its period goes, as docs/data-protection.md's table says (periods declared once in
shared_models.retention):

- a closed file's uploaded documents, 90 days after the coordinated answer;
- a closed file's personal data, 2 years after the coordinated answer: erased exactly as on
  the citizen's request, `CitizenDataErased` telling assignment and notification;
- one-time codes and their proofs, a day after they expired;
- the audit trail's entries, whole days 6 years after the action, the chain kept verifiable
  (guichet_runtime.audit_purge).

Each run is in the audit trail (counts, and one entry per erased file). The events it emits
wait in the outbox; the running service's relay publishes them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from guichet_runtime import audit
from guichet_runtime.audit_purge import purge_trail
from guichet_runtime.db import UnitOfWork
from intake.commands.gdpr import erase_personal_data
from intake.domain import FileStatus
from intake.tables import access_codes, documents, file_metrics, files
from shared_models import ErasureCause
from shared_models.retention import DataKind, period

#: Files erased per transaction (each file is its own transaction; a run does them all).
BATCH = 100


@dataclass
class RetentionRun:
    """What one run removed."""

    documents: int = 0
    access_codes: int = 0
    erased_files: list[str] = field(default_factory=list)
    audit_entries: int = 0  # purged from the audit trail


def _closed_before(cutoff: dt.datetime) -> sa.ColumnElement[bool]:
    """Files closed (the coordinated answer sent) at or before `cutoff`."""
    return sa.and_(
        files.c.status == FileStatus.ANSWERED,
        files.c.file_id.in_(
            sa.select(file_metrics.c.file_id).where(file_metrics.c.answered_at <= cutoff)
        ),
    )


async def _purge_documents(uow: UnitOfWork, now: dt.datetime) -> int:
    cutoff = now - period(DataKind.DOCUMENTS).delta
    async with uow:
        done = await uow.conn.execute(
            documents.delete().where(
                documents.c.file_id.in_(sa.select(files.c.file_id).where(_closed_before(cutoff)))
            )
        )
        await uow.commit()
    return int(done.rowcount or 0)


async def _purge_access_codes(uow: UnitOfWork, now: dt.datetime) -> int:
    cutoff = now - period(DataKind.ACCESS_CODES).delta
    async with uow:
        done = await uow.conn.execute(
            access_codes.delete().where(
                access_codes.c.expires_at <= cutoff,
                sa.or_(
                    access_codes.c.proof_expires_at.is_(None),
                    access_codes.c.proof_expires_at <= cutoff,
                ),
            )
        )
        await uow.commit()
    return int(done.rowcount or 0)


async def _erase_closed_files(uow_of: Callable[[], UnitOfWork], now: dt.datetime) -> list[str]:
    cutoff = now - period(DataKind.CLOSED_FILES).delta
    erased: list[str] = []
    while True:
        uow = uow_of()
        async with uow:
            due = list(
                await uow.conn.scalars(
                    sa.select(files.c.file_id)
                    .where(_closed_before(cutoff), files.c.erased_at.is_(None))
                    .order_by(files.c.file_id)
                    .limit(BATCH)
                )
            )
        if not due:
            return erased
        for file_id in due:
            uow = uow_of()
            async with uow:
                locked = await uow.conn.scalar(
                    sa.select(files.c.file_id)
                    .where(files.c.file_id == file_id, files.c.erased_at.is_(None))
                    .with_for_update()
                )
                if locked is None:  # erased meanwhile (the citizen asked)
                    continue
                await erase_personal_data(uow, file_id, ErasureCause.RETENTION, now)
                audit.record(
                    uow,
                    audit.SYSTEM,
                    audit.AuditAction.DATA_ERASED,
                    file_id=file_id,
                    cause=ErasureCause.RETENTION,
                )
                await uow.commit()
            erased.append(file_id)


async def apply_retention(uow_of: Callable[[], UnitOfWork], now: dt.datetime) -> RetentionRun:
    """One run of the job at `now` (the controllable clock's): everything past its period
    goes, nothing else."""
    run = RetentionRun()
    run.documents = await _purge_documents(uow_of(), now)
    run.erased_files = await _erase_closed_files(uow_of, now)
    run.access_codes = await _purge_access_codes(uow_of(), now)
    run.audit_entries = (await purge_trail(uow_of(), now)).purged
    uow = uow_of()
    async with uow:
        audit.record(
            uow,
            audit.SYSTEM,
            audit.AuditAction.RETENTION_APPLIED,
            documents=run.documents,
            erased_files=len(run.erased_files),
            access_codes=run.access_codes,
            audit_entries=run.audit_entries,
        )
        await uow.commit()
    return run
