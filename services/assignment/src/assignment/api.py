"""HTTP routes of the assignment service: what référents and supervisors read."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from guichet_runtime.service import Runtime
from assignment import domain
from assignment.tables import agency_requests, agents, assignments, files, offices


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
        items = [
            {
                "file_id": r.file_id,
                "life_event": r.life_event,
                "life_event_label": r.life_event_label,
                "citizen": f"{r.citizen['given_name']} {r.citizen['family_name']}",
                "urgent": r.urgent,
                "status": r.status,
                "received_at": r.created_at,
                "deadline": domain.legal_deadline(r.created_at),
                "agencies_awaited": pending.get(r.file_id, 0),
            }
            for r in rows
        ]
        items.sort(key=lambda f: (not f["urgent"], f["deadline"], f["received_at"]))
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
            "referent_id": file.referent_id,
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

    return api
