"""Read queries on files, returning the API's view models (as dicts)."""

from __future__ import annotations

import sqlalchemy as sa

from guichet_runtime.db import UnitOfWork
from intake.catalogue import CATALOGUE
from intake.domain import AGENCY_STATUS_LABELS, AgencyStatus, deadline_text
from intake.records import file_exists
from intake.tables import (
    exchanges,
    file_agencies,
    files,
    referent_messages,
    surveys,
    thanks,
    timeline,
)
from shared_models import AGENCY_LABELS


def message_out(row: sa.Row) -> dict:
    """A référent's message as the desk reads it."""
    return {
        "message_id": row.message_id,
        "file_id": row.file_id,
        "agent_id": row.agent_id,
        "agent_name": row.agent_name,
        "text": row.text,
        "at": row.at,
        "channel": row.channel,
        "delivered_at": row.delivered_at,
    }


def _agency_out(a: sa.Row) -> dict:
    answered = a.status == AgencyStatus.ANSWERED
    asked = a.requested_document
    return {
        "agency": a.agency,
        "label": AGENCY_LABELS.get(a.agency, a.agency),
        "status": a.status,
        "status_label": AGENCY_STATUS_LABELS[AgencyStatus(a.status)],
        "awaited": not answered,
        "requested_document": (
            {"code": asked["code"], "label": asked["label"]}
            if asked and a.status == AgencyStatus.DOCUMENT_REQUESTED
            else None
        ),
        "due_on": None if answered else a.due_on,
        "deadline": (
            None if answered else deadline_text(a.due_on, a.deadline_state, a.deadline_rule)
        ),
    }


async def file_view(uow: UnitOfWork, file_id: str) -> dict | None:
    """The citizen's view of their file; None for an unknown file."""
    async with uow:
        row = (await uow.conn.execute(sa.select(files).where(files.c.file_id == file_id))).first()
        if row is None:
            return None
        agencies = (
            await uow.conn.execute(
                sa.select(
                    file_agencies.c.agency,
                    file_agencies.c.status,
                    file_agencies.c.requested_document,
                    file_agencies.c.due_on,
                    file_agencies.c.deadline_state,
                    file_agencies.c.deadline_rule,
                )
                .where(file_agencies.c.file_id == file_id)
                .order_by(file_agencies.c.agency)
            )
        ).all()
        entries = (
            await uow.conn.execute(
                sa.select(timeline.c.at, timeline.c.kind, timeline.c.label)
                .where(timeline.c.file_id == file_id)
                .order_by(timeline.c.at, timeline.c.id)
            )
        ).all()
        ledger = (
            await uow.conn.execute(
                sa.select(exchanges).where(exchanges.c.file_id == file_id).order_by(exchanges.c.at)
            )
        ).all()
        survey_answered = await uow.conn.scalar(
            sa.select(surveys.c.file_id).where(surveys.c.file_id == file_id)
        )
        thanked_by = set(
            await uow.conn.scalars(sa.select(thanks.c.agent_id).where(thanks.c.file_id == file_id))
        )
    agency_view = [_agency_out(a) for a in agencies]
    referent = row.referent
    return {
        "file_id": row.file_id,
        "status": row.status,
        "life_event": row.life_event,
        "life_event_label": CATALOGUE[row.life_event].label,
        "created_at": row.created_at,
        "referent": referent,
        "agencies": agency_view,
        "awaited": [a["label"] for a in agency_view if a["awaited"]],
        "answer": row.answer,
        # The current référent was thanked (thanks go once per référent and file).
        "thanked": bool(referent) and referent.get("agent_id") in thanked_by,
        "survey_answered": survey_answered is not None,
        "timeline": [{"at": e.at, "kind": e.kind, "label": e.label} for e in entries],
        "exchanges": [
            {
                "at": x.at,
                "agency": x.agency,
                "direction": x.direction,
                "purpose": x.purpose,
                "legal_basis": x.legal_basis,
                "payload_sha256": x.payload_sha256,
                "size_bytes": x.size_bytes,
            }
            for x in ledger
        ],
    }


async def file_record(uow: UnitOfWork, file_id: str) -> dict | None:
    """What the agents working the file read: the citizen's contact and own words."""
    async with uow:
        row = (
            await uow.conn.execute(
                sa.select(
                    files.c.file_id,
                    files.c.citizen,
                    files.c.description,
                    files.c.urgent,
                    files.c.created_at,
                ).where(files.c.file_id == file_id)
            )
        ).first()
    if row is None:
        return None
    return {
        "file_id": row.file_id,
        "citizen": row.citizen,
        "description": row.description,
        "urgent": row.urgent,
        "created_at": row.created_at,
    }


async def referent_messages_of(uow: UnitOfWork, file_id: str) -> list[dict] | None:
    """The référent's messages to the citizen, oldest first, with the channel that carried
    each once it is delivered; None for an unknown file."""
    async with uow:
        if not await file_exists(uow, file_id):
            return None
        rows = (
            await uow.conn.execute(
                sa.select(referent_messages)
                .where(referent_messages.c.file_id == file_id)
                .order_by(referent_messages.c.at, referent_messages.c.message_id)
            )
        ).all()
    return [message_out(r) for r in rows]


async def thanks_for_agent(uow: UnitOfWork, agent_id: str) -> dict:
    """The thanks an agent received, newest first."""
    async with uow:
        rows = (
            await uow.conn.execute(
                sa.select(thanks).where(thanks.c.agent_id == agent_id).order_by(thanks.c.at.desc())
            )
        ).all()
    return {
        "agent_id": agent_id,
        "agent_name": rows[0].agent_name if rows else None,
        "count": len(rows),
        "thanks": [
            {
                "thanks_id": r.thanks_id,
                "file_id": r.file_id,
                "citizen_given_name": r.citizen_given_name,
                "message": r.message,
                "at": r.at,
            }
            for r in rows
        ],
    }
