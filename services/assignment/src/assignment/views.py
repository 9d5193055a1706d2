"""Read models of the assignment service: what référents, supervisors and the pages read.

Each view returns the API's JSON-ready dict, or raises `Refused(NOT_FOUND)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from assignment import domain, legal_deadline
from assignment.domain import AgentStatus, ClockStatus, FileStatus, RequestStatus
from assignment.personal_columns import citizen_of, explanation_of, personal_word_of
from assignment.tables import agency_requests, agents, assignments, files, legal_clocks, offices
from guichet_runtime.db import UnitOfWork
from guichet_runtime.policy import FileParties, Subject
from guichet_runtime.refusals import RefusalKind, Refused


async def departement_of_file(uow: UnitOfWork, file: Any) -> str:
    """The département the citizen of a `files` row lives in (their sealed contact opened)."""
    return domain.departement_of((await citizen_of(uow, file)).postcode)


def no_agent(agent_id: str) -> Refused:
    return Refused(RefusalKind.NOT_FOUND, f"Aucun agent ne porte l'identifiant {agent_id}.")


def no_file(file_id: str) -> Refused:
    return Refused(RefusalKind.NOT_FOUND, f"Aucun dossier ne porte la référence {file_id}.")


# --- the facts the access policies decide on (guichet_runtime.policy) ------------------------


async def file_subject(uow: UnitOfWork, file_id: str) -> Subject | None:
    """The file's référent (the agent covering an absence is the référent while it lasts),
    their office, and the front-desk agent who registered it; None for an unknown file."""
    async with uow:
        row = (
            await uow.conn.execute(
                sa.select(files.c.referent_id, files.c.registered_by, agents.c.office_id)
                .join(agents, files.c.referent_id == agents.c.agent_id, isouter=True)
                .where(files.c.file_id == file_id)
            )
        ).first()
    if row is None:
        return None
    return Subject(
        file=FileParties(
            file_id,
            referent=row.referent_id,
            registered_by=row.registered_by,
            office=row.office_id,
        )
    )


async def agent_subject(uow: UnitOfWork, agent_id: str) -> Subject | None:
    """The agent and their office; None for an unknown agent."""
    async with uow:
        office = await uow.conn.scalar(
            sa.select(agents.c.office_id).where(agents.c.agent_id == agent_id)
        )
    return None if office is None else Subject(agent_id=agent_id, agent_office=office)


async def departements_of(conn: Any, office_ids: Collection[str]) -> set[str]:
    """The départements of these offices: a supervisor's share of the files waiting for
    a référent (no office is theirs yet)."""
    found = await conn.scalars(
        sa.select(offices.c.departement).where(offices.c.office_id.in_(list(office_ids)))
    )
    return set(found)


async def file_deadlines(conn: Any, rows: list[Any]) -> dict[str, dict[str, Any]]:
    """Each file's nearest legal deadline among its agencies' running clocks.

    A file whose clocks are all suspended has none (`suspended`); a file no agency has
    acknowledged yet shows the two-month estimate from receipt, marked `estimated`."""
    by_file = {r.file_id: r for r in rows}
    clocks = (
        (
            await conn.execute(
                sa.select(
                    legal_clocks.c.file_id,
                    legal_clocks.c.agency,
                    legal_clocks.c.status,
                    legal_clocks.c.due_on,
                ).where(legal_clocks.c.file_id.in_(list(by_file)))
            )
        ).all()
        if by_file
        else []
    )
    out: dict[str, dict[str, Any]] = {}
    for c in clocks:
        entry = out.setdefault(
            c.file_id, {"deadline": None, "agency": None, "suspended": False, "estimated": False}
        )
        if c.status == ClockStatus.RUNNING and c.due_on is not None:
            if entry["deadline"] is None or c.due_on < entry["deadline"]:
                entry["deadline"], entry["agency"] = c.due_on, c.agency
        elif c.status == ClockStatus.SUSPENDED:
            entry["suspended"] = True
    for entry in out.values():
        # Another agency's clock still runs: that is the deadline, not the suspension.
        entry["suspended"] = entry["suspended"] and entry["deadline"] is None
    for file_id, r in by_file.items():
        out.setdefault(
            file_id,
            {
                "deadline": legal_deadline.estimated_deadline(r.created_at),
                "agency": None,
                "suspended": False,
                "estimated": True,
            },
        )
    return out


async def word_view(uow: UnitOfWork, file: sa.Row) -> dict | None:
    """The word as the desk shows it: who wrote it, when, and whether it will go (or went)
    with the answer (only under its author's signature)."""
    text = await personal_word_of(uow, file)
    if not text:
        return None
    return {
        "text": text,
        "agent_id": file.personal_word_agent_id,
        "at": file.personal_word_at,
        "included": file.personal_word_agent_id == file.referent_id,
    }


async def portfolio(uow: UnitOfWork, agent_id: str) -> dict[str, Any]:
    """The référent's open files, urgent first, then by nearest legal deadline."""
    async with uow:
        agent = (
            await uow.conn.execute(
                sa.select(agents, offices.c.name.label("office"))
                .join(offices, agents.c.office_id == offices.c.office_id)
                .where(agents.c.agent_id == agent_id)
            )
        ).first()
        if agent is None:
            raise no_agent(agent_id)
        rows = (
            await uow.conn.execute(
                sa.select(files).where(
                    files.c.referent_id == agent_id, files.c.status != FileStatus.ANSWERED
                )
            )
        ).all()
        pending = dict(
            (
                await uow.conn.execute(
                    sa.select(agency_requests.c.file_id, sa.func.count())
                    .where(
                        agency_requests.c.file_id.in_([r.file_id for r in rows]),
                        agency_requests.c.status != RequestStatus.ANSWERED,
                    )
                    .group_by(agency_requests.c.file_id)
                )
            ).all()
        )
        due = await file_deadlines(uow.conn, rows)
    names = {}
    for r in rows:
        citizen = await citizen_of(uow, r)
        names[r.file_id] = f"{citizen.given_name} {citizen.family_name}"
    items = [
        {
            "file_id": r.file_id,
            "life_event": r.life_event,
            "life_event_label": r.life_event_label,
            "citizen": names[r.file_id],
            "urgent": r.urgent,
            "status": r.status,
            "received_at": r.created_at,
            "deadline": due[r.file_id]["deadline"],
            "deadline_agency": due[r.file_id]["agency"],
            "deadline_estimated": due[r.file_id]["estimated"],
            "clock_suspended": due[r.file_id]["suspended"],
            "agencies_awaited": pending.get(r.file_id, 0),
        }
        for r in rows
    ]
    # Urgent first, then the nearest legal deadline; a suspended clock has none (last).
    items.sort(key=lambda f: (not f["urgent"], f["deadline"] or dt.date.max, f["received_at"]))
    return {
        "agent": {
            "agent_id": agent.agent_id,
            "name": agent.name,
            "office": agent.office,
            "active_files": agent.active_files,
            "capacity": agent.capacity,
        },
        "files": items,
    }


async def waiting_files(uow: UnitOfWork, office_ids: Collection[str]) -> dict[str, Any]:
    """Files waiting for a référent because nobody near has room: the supervisors' alert,
    for the supervisor of `office_ids` (the files of these offices' départements)."""
    async with uow:
        mine = await departements_of(uow.conn, office_ids)
        rows = (
            await uow.conn.execute(
                sa.select(
                    files.c.file_id,
                    files.c.urgent,
                    files.c.created_at,
                    files.c.citizen,
                    files.c.life_event_label,
                )
                .where(files.c.status == FileStatus.AWAITING_REFERENT)
                .order_by(files.c.urgent.desc(), files.c.created_at)
            )
        ).all()
    found = [
        {
            "file_id": r.file_id,
            "urgent": r.urgent,
            "received_at": r.created_at,
            "life_event_label": r.life_event_label,
            "departement": await departement_of_file(uow, r),
        }
        for r in rows
    ]
    found = [f for f in found if f["departement"] in mine]
    return {"count": len(found), "files": found}


async def assignment_record(uow: UnitOfWork, file_id: str) -> dict[str, Any]:
    """Who is the référent and why: the rule that decided and the candidates considered."""
    async with uow:
        file = (await uow.conn.execute(sa.select(files).where(files.c.file_id == file_id))).first()
        if file is None:
            raise no_file(file_id)
        history = (
            await uow.conn.execute(
                sa.select(assignments, agents.c.name)
                .join(agents, assignments.c.agent_id == agents.c.agent_id)
                .where(assignments.c.file_id == file_id)
                .order_by(assignments.c.at, assignments.c.id)
            )
        ).all()
    return {
        "file_id": file_id,
        "status": file.status,
        "deadline": legal_deadline.estimated_deadline(file.created_at),
        "referent_id": file.referent_id,
        "personal_word": await word_view(uow, file),
        "history": [
            {
                "agent_id": h.agent_id,
                "name": h.name,
                "rule": h.rule,
                "explanation": await explanation_of(uow, file_id, h.explanation),
                "considered": h.considered,
                "at": h.at,
            }
            for h in history
        ],
    }


async def agent_card(uow: UnitOfWork, agent_id: str) -> dict[str, Any]:
    """What a citizen sees of their référent: name, office, direct line, opening hours."""
    async with uow:
        row = (
            await uow.conn.execute(
                sa.select(
                    agents,
                    offices.c.name.label("office_name"),
                    offices.c.address,
                    offices.c.commune,
                    offices.c.opening_hours,
                )
                .join(offices, agents.c.office_id == offices.c.office_id)
                .where(agents.c.agent_id == agent_id)
            )
        ).first()
    if row is None:
        raise no_agent(agent_id)
    return {  # public: the card a citizen's letters carry, nothing of the agent's load
        "agent_id": row.agent_id,
        "name": row.name,
        "phone": row.phone,
        "email": row.email,
        "office": {
            "office_id": row.office_id,
            "name": row.office_name,
            "address": row.address,
            "commune": row.commune,
            "opening_hours": row.opening_hours,
        },
    }


async def portfolios(uow: UnitOfWork, office_ids: Collection[str]) -> dict[str, Any]:
    """Every agent's load against capacity, and the totals per office, for the offices
    `office_ids` (a supervisor's)."""
    async with uow:
        rows = (
            await uow.conn.execute(
                sa.select(agents, offices.c.name.label("office_name"))
                .join(offices, agents.c.office_id == offices.c.office_id)
                .where(agents.c.office_id.in_(list(office_ids)))
                .order_by(offices.c.name, agents.c.name)
            )
        ).all()
    per_office: dict[str, dict[str, Any]] = {}
    for r in rows:
        office = per_office.setdefault(
            r.office_id,
            {
                "office_id": r.office_id,
                "name": r.office_name,
                "agents": 0,
                "active_files": 0,
                "capacity": 0,
            },
        )
        if r.status != AgentStatus.GONE:
            office["agents"] += 1
            office["active_files"] += r.active_files
            office["capacity"] += r.capacity
    return {
        "agents": [
            {
                "agent_id": r.agent_id,
                "name": r.name,
                "office_id": r.office_id,
                "office": r.office_name,
                "status": r.status,
                "active_files": r.active_files,
                "capacity": r.capacity,
            }
            for r in rows
        ],
        "offices": list(per_office.values()),
    }


async def deadlines_at_risk(
    uow: UnitOfWork, today: dt.date, within_days: int, office_ids: Collection[str]
) -> dict[str, Any]:
    """Open files whose nearest legal deadline falls within `within_days` (or is past),
    nearest first; files with every clock suspended are not at risk. Only the files of the
    offices `office_ids` (a supervisor's): their référents', or waiting in their
    départements."""
    horizon = today + dt.timedelta(days=within_days)
    async with uow:
        mine = await departements_of(uow.conn, office_ids)
        rows = (
            await uow.conn.execute(
                sa.select(
                    files.c.file_id,
                    files.c.urgent,
                    files.c.status,
                    files.c.created_at,
                    files.c.life_event_label,
                    agents.c.name.label("referent"),
                    agents.c.office_id,
                    files.c.citizen,
                )
                .join(agents, files.c.referent_id == agents.c.agent_id, isouter=True)
                .where(files.c.status != FileStatus.ANSWERED)
                .where(
                    sa.or_(
                        files.c.file_id.in_(
                            sa.select(legal_clocks.c.file_id).where(
                                legal_clocks.c.status == ClockStatus.RUNNING,
                                legal_clocks.c.due_on <= horizon,
                            )
                        ),
                        # No agency has acknowledged yet: the two-month estimate from receipt.
                        ~sa.exists().where(legal_clocks.c.file_id == files.c.file_id),
                    )
                )
            )
        ).all()
        rows = [
            r
            for r in rows
            if r.office_id in office_ids
            or (r.office_id is None and await departement_of_file(uow, r) in mine)
        ]
        due = await file_deadlines(uow.conn, rows)
    items = []
    for r in rows:
        d = due[r.file_id]
        if d["deadline"] is None:
            continue
        days_left = legal_deadline.days_left(d["deadline"], today)
        if days_left <= within_days:
            items.append(
                {
                    "file_id": r.file_id,
                    "urgent": r.urgent,
                    "status": r.status,
                    "life_event_label": r.life_event_label,
                    "referent": r.referent,
                    "deadline": d["deadline"],
                    "agency": d["agency"],
                    "estimated": d["estimated"],
                    "days_left": days_left,
                }
            )
    items.sort(key=lambda f: (f["deadline"], not f["urgent"]))
    return {"within_days": within_days, "count": len(items), "files": items}


async def operations_counts(uow: UnitOfWork, today: dt.date) -> dict[str, int]:
    """What the Prometheus gauges show (three COUNTs on indexed columns): files waiting for
    a référent, running legal clocks due within 7 and 15 days (or past), and breached
    clocks of files not answered yet."""
    running = legal_clocks.c.status == ClockStatus.RUNNING

    def count(*where: Any) -> Any:
        return sa.select(sa.func.count()).select_from(legal_clocks).where(*where)

    async with uow:
        conn = uow.conn
        waiting = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(files)
            .where(files.c.status == FileStatus.AWAITING_REFERENT)
        )
        counts = {
            "waiting": int(waiting or 0),
            "breached": int(
                await conn.scalar(
                    count(
                        legal_clocks.c.status == ClockStatus.BREACHED,
                        legal_clocks.c.file_id.in_(
                            sa.select(files.c.file_id).where(files.c.status != FileStatus.ANSWERED)
                        ),
                    )
                )
                or 0
            ),
        }
        for days in legal_deadline.WARNING_DAYS:
            horizon = today + dt.timedelta(days=days)
            at_risk = await conn.scalar(count(running, legal_clocks.c.due_on <= horizon))
            counts[f"at_risk_{days}"] = int(at_risk or 0)
    return counts
