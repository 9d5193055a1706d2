"""Read models of the agency requests acknowledged without a decision for too long ("stuck"):
the supervisors' list, per agency, and what the référent sees on a file.

From assignment's own tables: the legal clock of a request starts when the agency's system
acknowledges it (`legal_clocks.received_on`, from AgencyReceiptAcknowledged), and the
request stays without a decision until AgencyAnswerReceived. A request suspended for a
document the citizen owes is not stuck (the agency waits for the citizen). The rule is
`domain.is_stuck`; the threshold the setting STUCK_REQUEST_DAYS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from assignment import domain
from assignment.domain import CLOCKS_AWAITING_DECISION, FileStatus, RequestStatus
from assignment.tables import agency_requests, agents, files, legal_clocks, offices
from assignment.views import departement_of_file, departements_of
from guichet_runtime.db import UnitOfWork
from shared_models import AGENCY_LABELS


def awaiting_decision() -> sa.Select[Any]:
    """Acknowledged requests of open files whose agency owes a decision, oldest first."""
    return (
        sa.select(
            legal_clocks.c.request_id,
            legal_clocks.c.file_id,
            legal_clocks.c.agency,
            legal_clocks.c.received_on,
            legal_clocks.c.due_on,
            legal_clocks.c.checked_at,
            legal_clocks.c.check_finding,
            legal_clocks.c.checks,
            files.c.life_event_label,
            files.c.urgent,
            files.c.citizen,
            files.c.referent_id,
            agents.c.name.label("referent"),
            agents.c.office_id,
            offices.c.name.label("office"),
        )
        .join(files, files.c.file_id == legal_clocks.c.file_id)
        .join(agency_requests, agency_requests.c.request_id == legal_clocks.c.request_id)
        .join(agents, files.c.referent_id == agents.c.agent_id, isouter=True)
        .join(offices, agents.c.office_id == offices.c.office_id, isouter=True)
        .where(
            legal_clocks.c.status.in_(CLOCKS_AWAITING_DECISION),
            agency_requests.c.status != RequestStatus.ANSWERED,
            files.c.status != FileStatus.ANSWERED,
        )
        .order_by(legal_clocks.c.received_on, legal_clocks.c.request_id)
    )


def request_view(row: Any, today: dt.date) -> dict[str, Any]:
    return {
        "request_id": row.request_id,
        "file_id": row.file_id,
        "agency": row.agency,
        "agency_label": AGENCY_LABELS.get(row.agency, row.agency),
        "acknowledged_on": row.received_on,
        "days": domain.days_awaiting_decision(row.received_on, today),
        "due_on": row.due_on,
        "life_event_label": row.life_event_label,
        "urgent": row.urgent,
        "referent": row.referent,
        "office": row.office,
        "last_check": None
        if row.checked_at is None
        else {"at": row.checked_at, "finding": row.check_finding, "checks": row.checks},
    }


async def stuck_requests(
    uow: UnitOfWork, today: dt.date, threshold_days: int, office_ids: Collection[str]
) -> dict[str, Any]:
    """Requests acknowledged `threshold_days` days ago or more without a decision, oldest
    first, and their count per agency. Only the files of the offices `office_ids` (a
    supervisor's): their référents', or waiting for one in their départements."""
    async with uow:
        mine = await departements_of(uow.conn, office_ids)
        rows = (await uow.conn.execute(awaiting_decision())).all()
    items = [
        request_view(r, today)
        for r in rows
        if domain.is_stuck(r.received_on, today, threshold_days)
        and (
            r.office_id in office_ids
            or (r.office_id is None and await departement_of_file(uow, r) in mine)
        )
    ]
    per_agency: dict[str, dict[str, Any]] = {}
    for item in items:
        agency = per_agency.setdefault(
            item["agency"],
            {"agency": item["agency"], "label": item["agency_label"], "count": 0, "oldest": None},
        )
        agency["count"] += 1
        agency["oldest"] = agency["oldest"] or item["acknowledged_on"]
    return {
        "threshold_days": threshold_days,
        "count": len(items),
        "agencies": sorted(per_agency.values(), key=lambda a: (-a["count"], a["agency"])),
        "requests": items,
    }


async def file_stuck_requests(
    uow: UnitOfWork, file_id: str, today: dt.date, threshold_days: int
) -> dict[str, Any]:
    """One file's requests awaiting a decision (per agency), each saying whether it is
    stuck: what the référent's page shows."""
    async with uow:
        rows = (await uow.conn.execute(awaiting_decision().where(files.c.file_id == file_id))).all()
    return {
        "threshold_days": threshold_days,
        "requests": [
            {
                **request_view(r, today),
                "stuck": domain.is_stuck(r.received_on, today, threshold_days),
            }
            for r in rows
        ],
    }
