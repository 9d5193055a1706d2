"""Everything held about a citizen, file by file ("Mes données", RGPD art. 15): what intake
keeps, with the copies it knows of (the référent's history and the messages sent, as
assignment and notification reported them by their events; what each agency received, from
the catalogue's fields)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from guichet_runtime.db import UnitOfWork
from intake.catalogue import CATALOGUE
from intake.domain import TimelineKind, agency_label
from intake.tables import (
    citizen_message_attachments,
    citizen_messages,
    documents,
    exchanges,
    file_agencies,
    files,
    referent_messages,
    surveys,
    thanks,
    timeline,
)
from shared_models import catalogue

#: The citizen fields an agency may receive, as the citizen reads them.
FIELD_LABELS = {
    "given_name": "prénom",
    "family_name": "nom",
    "email": "adresse électronique",
    "phone": "téléphone",
    "street": "adresse postale",
    "postcode": "code postal",
    "city": "commune",
    "preferred_channel": "canal de contact préféré",
    "description": "description de votre situation",
}

#: Where each part of the export comes from, in French (the export says it to the citizen).
SOURCES = [
    {
        "service": "accueil (intake)",
        "contenu": "votre dossier, vos coordonnées, votre description, la chronologie, les pièces "
        "envoyées (leurs caractéristiques), vos avis et remerciements, les messages de votre "
        "référent",
    },
    {
        "service": "désignation du référent (assignment)",
        "contenu": "une copie de vos coordonnées et de votre description, l'historique de vos "
        "référents et leurs motifs, les demandes adressées aux organismes et leurs réponses "
        "(ci-dessous, pour chaque dossier : partie « attribution du référent »)",
    },
    {
        "service": "notifications",
        "contenu": "les messages qui vous ont été envoyés : canal, adresse, objet, texte, dates, "
        "tentatives d'envoi (ci-dessous, pour chaque dossier : partie « messages envoyés »)",
    },
    {
        "service": "organismes",
        "contenu": "les champs de votre dossier transmis à chaque organisme (ci-dessous : "
        "organismes, champs transmis) ; chaque organisme conserve sa propre copie selon ses "
        "règles",
    },
]


def fields_sent_to(agency: str) -> list[str]:
    """What the agency receives of the citizen's file (the catalogue's fields), in French."""
    try:
        listed = catalogue().citizen_fields_of(agency)
    except KeyError:
        return []
    return [label for name, label in FIELD_LABELS.items() if name in listed]


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result]


async def _file_export(uow: UnitOfWork, row: sa.Row) -> dict[str, Any]:
    file_id = row.file_id
    conn = uow.conn
    agencies = (
        await conn.execute(
            sa.select(file_agencies)
            .where(file_agencies.c.file_id == file_id)
            .order_by(file_agencies.c.agency)
        )
    ).all()
    entries = (
        await conn.execute(
            sa.select(timeline.c.at, timeline.c.kind, timeline.c.label)
            .where(timeline.c.file_id == file_id)
            .order_by(timeline.c.at, timeline.c.id)
        )
    ).all()
    docs = await conn.execute(
        sa.select(
            documents.c.document_id,
            documents.c.agency,
            documents.c.code,
            documents.c.filename,
            documents.c.media_type,
            documents.c.size_bytes,
            documents.c.sha256,
            documents.c.uploaded_at,
        )
        .where(documents.c.file_id == file_id)
        .order_by(documents.c.uploaded_at)
    )
    ledger = await conn.execute(
        sa.select(
            exchanges.c.at,
            exchanges.c.agency,
            exchanges.c.direction,
            exchanges.c.purpose,
            exchanges.c.legal_basis,
            exchanges.c.payload_sha256,
        )
        .where(exchanges.c.file_id == file_id)
        .order_by(exchanges.c.at)
    )
    messages = await conn.execute(
        sa.select(
            referent_messages.c.at,
            referent_messages.c.agent_name,
            referent_messages.c.text,
            referent_messages.c.channel,
        )
        .where(referent_messages.c.file_id == file_id)
        .order_by(referent_messages.c.at)
    )
    written = await conn.execute(
        sa.select(
            citizen_messages.c.at,
            citizen_messages.c.answerer_name,
            citizen_messages.c.text,
            sa.select(sa.func.count())
            .where(citizen_message_attachments.c.message_id == citizen_messages.c.message_id)
            .scalar_subquery()
            .label("attachments"),
        )
        .where(citizen_messages.c.file_id == file_id)
        .order_by(citizen_messages.c.at)
    )
    survey = (await conn.execute(sa.select(surveys).where(surveys.c.file_id == file_id))).first()
    thanked = await conn.execute(
        sa.select(thanks.c.at, thanks.c.agent_name, thanks.c.message)
        .where(thanks.c.file_id == file_id)
        .order_by(thanks.c.at)
    )
    event = CATALOGUE.get(row.life_event)
    lines = [{"at": e.at, "kind": e.kind, "label": e.label} for e in entries]
    return {
        "file_id": file_id,
        "life_event": row.life_event,
        "life_event_label": event.label if event else row.life_event,
        "status": row.status,
        "created_at": row.created_at,
        "channel": row.channel,
        "urgent": row.urgent,
        "erased_at": row.erased_at,
        "contact": row.citizen,
        "description": row.description,
        "referent": row.referent,
        "referent_change": (
            {"requested_at": row.referent_change_requested_at, "reason": row.referent_change_reason}
            if row.referent_change_requested_at
            else None
        ),
        "referents": [line for line in lines if line["kind"] == TimelineKind.REFERENT],
        "agencies": [
            {
                "agency": a.agency,
                "label": agency_label(a.agency),
                "status": a.status,
                "decision": a.decision,
                "answered_at": a.answered_at,
                "fields_sent": fields_sent_to(a.agency),
            }
            for a in agencies
        ],
        "answer": row.answer,
        "notifications": [line for line in lines if line["kind"] == TimelineKind.NOTIFICATION],
        "referent_messages": _rows(messages),
        "citizen_messages": _rows(written),
        "documents": _rows(docs),
        "exchanges": _rows(ledger),
        "survey": (
            {
                "score": survey.score,
                "referent_reachable": survey.referent_reachable,
                "comment": survey.comment,
                "answered_at": survey.answered_at,
            }
            if survey
            else None
        ),
        "thanks": _rows(thanked),
        "timeline": lines,
    }


async def export_of(uow: UnitOfWork, condition: Any) -> list[dict[str, Any]]:
    """The export of every file matching `condition`, newest first."""
    async with uow:
        rows = (
            await uow.conn.execute(
                sa.select(files).where(condition).order_by(files.c.created_at.desc())
            )
        ).all()
        return [await _file_export(uow, row) for row in rows]


async def export_of_file(uow: UnitOfWork, file_id: str) -> list[dict[str, Any]]:
    return await export_of(uow, files.c.file_id == file_id)


async def export_of_citizen(uow: UnitOfWork, subject: str) -> list[dict[str, Any]]:
    return await export_of(uow, files.c.citizen_subject == subject)
