"""The citizen's GDPR rights at intake: their data downloaded ("Mes données", RGPD art. 15)
and erased where the law allows it (art. 17). The rule deciding an erasure is
`intake.domain.ensure_erasure_allowed`; the retention job erases closed files the same way
(`intake.commands.retention`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from guichet_runtime import audit
from guichet_runtime.auth.principal import Principal, PrincipalKind
from guichet_runtime.db import UnitOfWork, utcnow
from intake.commands.personal_data import shred_key_with_last_file
from intake.domain import (
    ERASED_DATA,
    ensure_erasure_allowed,
    ensure_erasure_confirmed,
    unknown_file,
)
from intake.tables import (
    access_codes,
    citizen_message_attachments,
    citizen_messages,
    documents,
    files,
    referent_messages,
    surveys,
    thanks,
    timeline,
)
from intake.views import exports
from shared_models import CitizenDataErased, ErasureCause, topics

ERASED_WORD = "(effacé)"


def _export(found: list[dict[str, Any]], now: dt.datetime) -> dict[str, Any]:
    return {"generated_at": now, "sources": exports.SOURCES, "files": found}


async def export_file_data(file_id: str, who: Principal, uow: UnitOfWork) -> dict[str, Any]:
    """Everything held about the citizen of one file (logged in, or with the proof of the
    file's one-time code); the export is in the audit trail before it leaves."""
    found = await exports.export_of_file(uow, file_id)
    if not found:
        raise unknown_file(file_id)
    async with uow:
        audit.record(uow, who, audit.AuditAction.DATA_EXPORTED, file_id=file_id, files=1)
        await uow.commit()
    return _export(found, utcnow())


async def export_citizen_data(who: Principal, uow: UnitOfWork) -> dict[str, Any]:
    """Everything held about the logged-in citizen, every file they submitted with their
    account; the export is in the audit trail before it leaves."""
    found = await exports.export_of_citizen(uow, who.subject or "")
    async with uow:
        audit.record(uow, who, audit.AuditAction.DATA_EXPORTED, files=len(found))
        await uow.commit()
    return _export(found, utcnow())


async def erase_personal_data(
    uow: UnitOfWork, file_id: str, cause: ErasureCause, now: dt.datetime
) -> None:
    """Erase intake's personal data of the file, inside the caller's transaction, and tell
    the other services (`CitizenDataErased`) to erase their copies. The file keeps an
    anonymous skeleton: life event, dates, channel, agencies' decisions, the survey's score,
    the exchange ledger's digests (the indicators and the law's records)."""
    # Crypto-shredding (issue 13 §4): with the citizen's last file holding data, their data
    # key goes too, so that every copy sealed with it (topics, backups) becomes unreadable.
    await shred_key_with_last_file(uow, file_id, f"effacement du dossier ({cause.value})")
    conn = uow.conn
    await conn.execute(
        files.update()
        .where(files.c.file_id == file_id)
        .values(
            citizen={},
            description="",
            citizen_subject=None,
            referent_change_reason=None,
            answer=None,
            erased_at=now,
        )
    )
    await conn.execute(documents.delete().where(documents.c.file_id == file_id))
    await conn.execute(timeline.delete().where(timeline.c.file_id == file_id))
    await conn.execute(access_codes.delete().where(access_codes.c.file_id == file_id))
    await conn.execute(
        referent_messages.update()
        .where(referent_messages.c.file_id == file_id)
        .values(text=ERASED_WORD)
    )
    await conn.execute(
        citizen_message_attachments.delete().where(citizen_message_attachments.c.file_id == file_id)
    )
    await conn.execute(
        citizen_messages.update()
        .where(citizen_messages.c.file_id == file_id)
        .values(text=ERASED_WORD)
    )
    await conn.execute(surveys.update().where(surveys.c.file_id == file_id).values(comment=None))
    await conn.execute(
        thanks.update()
        .where(thanks.c.file_id == file_id)
        .values(message=ERASED_WORD, citizen_given_name="")
    )
    uow.emit(
        topics.CITIZEN_DATA_ERASED,
        CitizenDataErased(file_id=file_id, occurred_at=now, cause=cause, erased=list(ERASED_DATA)),
    )


async def erase_file_data(
    file_id: str, confirm: bool, who: Principal, uow: UnitOfWork
) -> dict[str, Any]:
    """The citizen asks for their file's data to be erased, confirming it: granted on a
    closed file, once; refused with the reason while the file is processed
    (`ensure_erasure_allowed`)."""
    ensure_erasure_confirmed(confirm)
    async with uow:
        row = (
            await uow.conn.execute(
                sa.select(files.c.status, files.c.erased_at)
                .where(files.c.file_id == file_id)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise unknown_file(file_id)
        ensure_erasure_allowed(row.status, row.erased_at)
        now = utcnow()
        await erase_personal_data(uow, file_id, ErasureCause.REQUEST, now)
        audit.record(
            uow,
            who,
            audit.AuditAction.DATA_ERASED,
            file_id=file_id,
            cause=ErasureCause.REQUEST,
            logged_in=who.kind is PrincipalKind.CITIZEN,
        )
        await uow.commit()
    return {
        "file_id": file_id,
        "erased_at": now,
        "message": "Les données personnelles de votre dossier sont effacées. Le dossier ne "
        "garde que des informations anonymes (dates, démarche, décisions) pour les statistiques "
        "publiques, et le journal d'audit que la loi impose de conserver.",
    }
