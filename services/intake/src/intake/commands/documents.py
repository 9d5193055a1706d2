"""The supporting documents an agency asked for: checked, kept, sent to that agency."""

from __future__ import annotations

import base64
import hashlib
import uuid

import sqlalchemy as sa

from guichet_runtime import audit
from guichet_runtime.auth.principal import Principal, PrincipalKind
from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.refusals import RefusalKind, Refused
from intake.domain import (
    AgencyStatus,
    TimelineKind,
    agency_label,
    document_type,
    ensure_one_agency_waits,
)
from intake.records import add_timeline, file_exists
from intake.tables import documents, file_agencies
from shared_models import SupportingDocumentSubmitted, topics


async def submit_document(
    file_id: str,
    agency: str | None,
    filename: str,
    declared_type: str | None,
    content: bytes,
    uow: UnitOfWork,
    by: Principal | None = None,
) -> tuple[str, str]:
    """Take the document an agency asked for and send it to that agency's adapter (an agent
    adding it for the citizen is audited). Returns (document_id, agency)."""
    media_type = document_type(content, declared_type)
    async with uow:
        if not await file_exists(uow, file_id):
            raise Refused(
                RefusalKind.NOT_FOUND,
                f"Aucun dossier ne porte la référence {file_id}.",
                field="file_id",
            )
        query = sa.select(file_agencies).where(
            file_agencies.c.file_id == file_id,
            file_agencies.c.status == AgencyStatus.DOCUMENT_REQUESTED,
        )
        if agency:
            query = query.where(file_agencies.c.agency == agency)
        waiting = {w.agency: w for w in (await uow.conn.execute(query.with_for_update())).all()}
        row = waiting[ensure_one_agency_waits(list(waiting))]
        asked = row.requested_document
        document_id = str(uuid.uuid4())
        digest = hashlib.sha256(content).hexdigest()
        now = utcnow()
        name = (filename or "piece")[:200]
        await uow.conn.execute(
            documents.insert().values(
                document_id=document_id,
                file_id=file_id,
                agency=row.agency,
                request_id=asked["request_id"],
                code=asked["code"],
                filename=name,
                media_type=media_type,
                size_bytes=len(content),
                sha256=digest,
                content=content,
                uploaded_at=now,
            )
        )
        await uow.conn.execute(
            file_agencies.update()
            .where(file_agencies.c.file_id == file_id, file_agencies.c.agency == row.agency)
            .values(status=AgencyStatus.DOCUMENT_SENT, updated_at=now)
        )
        event = SupportingDocumentSubmitted(
            file_id=file_id,
            occurred_at=now,
            request_id=asked["request_id"],
            agency=row.agency,
            document_id=document_id,
            document_code=asked["code"],
            filename=name,
            media_type=media_type,
            sha256=digest,
            content_base64=base64.b64encode(content).decode(),
        )
        await add_timeline(
            uow,
            event,
            TimelineKind.DOCUMENT_SENT,
            f"Pièce envoyée à {agency_label(row.agency)} : {asked['label']}.",
        )
        uow.emit(topics.agency_documents(row.agency), event)
        if by is not None and by.kind is PrincipalKind.AGENT:
            audit.record(
                uow,
                by,
                audit.AuditAction.DOCUMENT_ADDED,
                file_id=file_id,
                document_id=document_id,
                agency=row.agency,
            )
        await uow.commit()
    return document_id, row.agency
