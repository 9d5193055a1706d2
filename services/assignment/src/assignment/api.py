"""HTTP routes of the assignment service: what référents and supervisors read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from guichet_runtime.service import Runtime
from assignment import desk, directory, domain, importer
from assignment.tables import agency_requests, agents, assignments, files, legal_clocks, offices


async def file_deadlines(conn: Any, rows: list[Any]) -> dict[str, dict[str, Any]]:
    """Each file's nearest legal deadline among its agencies' running clocks.

    A file whose clocks are all suspended has none (`suspended`); a file no agency has
    acknowledged yet shows the two-month default from receipt, marked `estimated`."""
    by_file = {r.file_id: r for r in rows}
    clocks = (
        await conn.execute(
            sa.select(legal_clocks.c.file_id, legal_clocks.c.agency, legal_clocks.c.status, legal_clocks.c.due_on)
            .where(legal_clocks.c.file_id.in_(list(by_file)))
        )
    ).all() if by_file else []
    out: dict[str, dict[str, Any]] = {}
    for c in clocks:
        entry = out.setdefault(c.file_id, {"deadline": None, "agency": None, "suspended": False, "estimated": False})
        if c.status == "en_cours" and c.due_on is not None:
            if entry["deadline"] is None or c.due_on < entry["deadline"]:
                entry["deadline"], entry["agency"] = c.due_on, c.agency
        elif c.status == "suspendu":
            entry["suspended"] = True
    for entry in out.values():
        # Another agency's clock still runs: that is the deadline, not the suspension.
        entry["suspended"] = entry["suspended"] and entry["deadline"] is None
    for file_id, r in by_file.items():
        out.setdefault(file_id, {"deadline": domain.legal_deadline(r.created_at), "agency": None,
                                 "suspended": False, "estimated": True})
    return out


def _not_found(message: str) -> JSONResponse:
    return JSONResponse(status_code=404, content={"message": message})


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix="/api")

    @api.get("/agents/{agent_id}/portfolio")
    async def portfolio(agent_id: str) -> Any:
        """The référent's open files, urgent first, then by nearest legal deadline."""
        async with runtime.uow() as uow:
            agent = (
                await uow.conn.execute(
                    sa.select(agents, offices.c.name.label("office"))
                    .join(offices, agents.c.office_id == offices.c.office_id)
                    .where(agents.c.agent_id == agent_id)
                )
            ).first()
            if agent is None:
                return _not_found(f"Aucun agent ne porte l'identifiant {agent_id}.")
            rows = (
                await uow.conn.execute(
                    sa.select(files).where(files.c.referent_id == agent_id, files.c.status != "repondu")
                )
            ).all()
            pending = dict(
                (
                    await uow.conn.execute(
                        sa.select(agency_requests.c.file_id, sa.func.count())
                        .where(
                            agency_requests.c.file_id.in_([r.file_id for r in rows]),
                            agency_requests.c.status != "repondue",
                        )
                        .group_by(agency_requests.c.file_id)
                    )
                ).all()
            )
            due = await file_deadlines(uow.conn, rows)
        items = [
            {
                "file_id": r.file_id,
                "life_event": r.life_event,
                "life_event_label": r.life_event_label,
                "citizen": f"{r.citizen['given_name']} {r.citizen['family_name']}",
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

    @api.get("/supervision/waiting")
    async def waiting() -> Any:
        """Files waiting for a référent because nobody near has room: the supervisors' alert."""
        async with runtime.uow() as uow:
            rows = (
                await uow.conn.execute(
                    sa.select(files.c.file_id, files.c.urgent, files.c.created_at, files.c.citizen,
                              files.c.life_event_label)
                    .where(files.c.status == "en_attente_attribution")
                    .order_by(files.c.urgent.desc(), files.c.created_at)
                )
            ).all()
        return {
            "count": len(rows),
            "files": [
                {"file_id": r.file_id, "urgent": r.urgent, "received_at": r.created_at,
                 "life_event_label": r.life_event_label,
                 "departement": domain.departement_of(r.citizen["postcode"])}
                for r in rows
            ],
        }

    @api.get("/files/{file_id}/assignment")
    async def assignment_record(file_id: str) -> Any:
        """Who is the référent and why: the rule that decided and the candidates considered."""
        async with runtime.uow() as uow:
            file = (await uow.conn.execute(sa.select(files).where(files.c.file_id == file_id))).first()
            if file is None:
                return _not_found(f"Aucun dossier ne porte la référence {file_id}.")
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
            "deadline": domain.legal_deadline(file.created_at),
            "referent_id": file.referent_id,
            "personal_word": desk.word_view(file),
            "history": [
                {
                    "agent_id": h.agent_id,
                    "name": h.name,
                    "rule": h.rule,
                    "explanation": h.explanation,
                    "considered": h.considered,
                    "at": h.at,
                }
                for h in history
            ],
        }

    @api.put("/files/{file_id}/personal-word")
    async def personal_word(file_id: str, body: PersonalWordIn) -> Any:
        """The référent's personal word on the coordinated answer, set or replaced until the
        answer leaves (the answer does not wait for it)."""
        return await _desk(desk.set_personal_word(runtime.uow(), file_id, body.agent_id, body.text))

    @api.delete("/files/{file_id}/personal-word")
    async def withdraw_personal_word(file_id: str, agent_id: str = Query(description="Le référent du dossier.")) -> Any:
        """The référent withdraws their word before the answer leaves."""
        return await _desk(desk.remove_personal_word(runtime.uow(), file_id, agent_id))

    return api


async def _desk(action: Awaitable[dict]) -> Any:
    try:
        return JSONResponse(content=jsonable_encoder(await action))
    except desk.DeskRefused as refused:
        return JSONResponse(status_code=refused.status, content={"message": refused.message})


class PersonalWordIn(BaseModel):
    """A few lines of the référent to the citizen, joined to the coordinated answer."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    agent_id: str = Field(min_length=1, max_length=30, description="Identifiant du référent qui écrit.")
    text: str = Field(description="Le mot personnel, en texte simple (1 à 1000 caractères).")

    @field_validator("text")
    @classmethod
    def _length(cls, value: str) -> str:
        if not value:
            raise PydanticCustomError("personal_word", "Écrivez quelques mots avant d'enregistrer.")
        if len(value) > desk.MAX_WORD:
            raise PydanticCustomError(
                "personal_word",
                "Le mot personnel fait au plus {max} caractères (ici : {n}).",
                {"max": desk.MAX_WORD, "n": len(value)},
            )
        return value


def views_router(runtime: Runtime, today: Callable[[], dt.date]) -> APIRouter:
    """Read models of the pages: an agent's card, the supervisors' balance and deadlines."""
    views = APIRouter(prefix="/api")

    @views.get("/agents/{agent_id}")
    async def agent_card(agent_id: str) -> Any:
        """What a citizen sees of their référent: name, office, direct line, opening hours."""
        async with runtime.uow() as uow:
            row = (
                await uow.conn.execute(
                    sa.select(agents, offices.c.name.label("office_name"), offices.c.address,
                              offices.c.commune, offices.c.opening_hours)
                    .join(offices, agents.c.office_id == offices.c.office_id)
                    .where(agents.c.agent_id == agent_id)
                )
            ).first()
        if row is None:
            return _not_found(f"Aucun agent ne porte l'identifiant {agent_id}.")
        return {
            "agent_id": row.agent_id, "name": row.name, "phone": row.phone, "email": row.email,
            "status": row.status, "capacity": row.capacity, "active_files": row.active_files,
            "office": {"office_id": row.office_id, "name": row.office_name, "address": row.address,
                       "commune": row.commune, "opening_hours": row.opening_hours},
        }

    @views.get("/supervision/portfolios")
    async def portfolios() -> Any:
        """Every agent's load against capacity, and the totals per office."""
        async with runtime.uow() as uow:
            rows = (
                await uow.conn.execute(
                    sa.select(agents, offices.c.name.label("office_name"))
                    .join(offices, agents.c.office_id == offices.c.office_id)
                    .order_by(offices.c.name, agents.c.name)
                )
            ).all()
        per_office: dict[str, dict[str, Any]] = {}
        for r in rows:
            office = per_office.setdefault(
                r.office_id, {"office_id": r.office_id, "name": r.office_name, "agents": 0,
                              "active_files": 0, "capacity": 0}
            )
            if r.status != "parti":
                office["agents"] += 1
                office["active_files"] += r.active_files
                office["capacity"] += r.capacity
        return {
            "agents": [
                {"agent_id": r.agent_id, "name": r.name, "office_id": r.office_id, "office": r.office_name,
                 "status": r.status, "active_files": r.active_files, "capacity": r.capacity}
                for r in rows
            ],
            "offices": list(per_office.values()),
        }

    @views.get("/supervision/deadlines")
    async def deadlines(within_days: int = Query(default=21, ge=0, le=366)) -> Any:
        """Open files whose nearest legal deadline falls within `within_days` (or is past),
        nearest first; files with every clock suspended are not at risk."""
        now = today()
        async with runtime.uow() as uow:
            rows = (
                await uow.conn.execute(
                    sa.select(files.c.file_id, files.c.urgent, files.c.status, files.c.created_at,
                              files.c.life_event_label, agents.c.name.label("referent"))
                    .join(agents, files.c.referent_id == agents.c.agent_id, isouter=True)
                    .where(files.c.status != "repondu")
                    .where(sa.or_(
                        files.c.file_id.in_(
                            sa.select(legal_clocks.c.file_id)
                            .where(legal_clocks.c.status == "en_cours",
                                   legal_clocks.c.due_on <= now + dt.timedelta(days=within_days))
                        ),
                        # No agency has acknowledged yet: the two-month default from receipt is the estimate.
                        ~sa.exists().where(legal_clocks.c.file_id == files.c.file_id),
                    ))
                )
            ).all()
            due = await file_deadlines(uow.conn, rows)
        items = []
        for r in rows:
            d = due[r.file_id]
            if d["deadline"] is None:
                continue
            days_left = (d["deadline"] - now).days
            if days_left <= within_days:
                items.append({"file_id": r.file_id, "urgent": r.urgent, "status": r.status,
                              "life_event_label": r.life_event_label, "referent": r.referent,
                              "deadline": d["deadline"], "agency": d["agency"], "estimated": d["estimated"],
                              "days_left": days_left})
        items.sort(key=lambda f: (f["deadline"], not f["urgent"]))
        return {"within_days": within_days, "count": len(items), "files": items}

    return views


class AbsenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    starts_on: dt.date = Field(description="Premier jour d'absence.")
    ends_on: dt.date = Field(description="Dernier jour d'absence (inclus).")
    reason: str | None = Field(default=None, max_length=500, description="Motif (facultatif, interne).")


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=5, max_length=1000, description="Motif, obligatoire.")
    agent_id: str | None = Field(default=None, description="Agent choisi (sinon, les règles habituelles).")


class DepartureIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str | None = Field(default=None, max_length=500)


def admin_router(runtime: Runtime, today: Callable[[], dt.date]) -> APIRouter:
    """The directory's admin API and the supervisors' moves."""
    admin = APIRouter(prefix="/api")

    async def apply(action: Awaitable[dict], status: int = 200) -> Any:
        try:
            return JSONResponse(status_code=status, content=jsonable_encoder(await action))
        except directory.DirectoryError as refused:
            return JSONResponse(status_code=refused.status, content={"message": refused.message})

    async def directory_change(action: Awaitable[dict], status: int) -> Any:
        try:
            return JSONResponse(status_code=status, content=jsonable_encoder(await action))
        except importer.ImportRefused as refused:
            return JSONResponse(
                status_code=refused.status, content={"message": refused.message, "errors": refused.errors}
            )

    @admin.post("/agents")
    async def agent_joins(body: dict[str, Any] = Body(..., description="Fiche de l'agent.")) -> Any:
        """An agent joins the network (name, office, direct phone, email, agencies, capacity)."""
        return await directory_change(importer.join(runtime.uow(), body), 201)

    @admin.post("/directory/import")
    async def import_directory(body: Any = Body(..., description="Fichier d'annuaire versionné.")) -> Any:
        """Import a versioned directory file: every row is checked first; one bad row and
        nothing is applied. New and changed offices and agents each become an event."""
        return await directory_change(importer.import_directory(runtime.uow(), body), 200)

    @admin.post("/agents/{agent_id}/absences")
    async def declare_absence(agent_id: str, body: AbsenceIn) -> Any:
        return await apply(
            directory.declare_absence(runtime.uow(), agent_id, body.starts_on, body.ends_on, body.reason, today()),
            201,
        )

    @admin.post("/agents/{agent_id}/return")
    async def agent_returns(agent_id: str) -> Any:
        return await apply(directory.agent_returns(runtime.uow(), agent_id))

    @admin.post("/agents/{agent_id}/departure")
    async def agent_leaves(agent_id: str, body: DepartureIn) -> Any:
        return await apply(directory.agent_leaves(runtime.uow(), agent_id, body.reason))

    @admin.post("/files/{file_id}/reassign")
    async def reassign(file_id: str, body: ReasonIn) -> Any:
        return await apply(directory.reassign(runtime.uow(), file_id, body.reason, body.agent_id))

    return admin
