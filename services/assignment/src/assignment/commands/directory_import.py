"""The agent directory as a versioned file: checked whole, then applied whole.

Every row is validated and cross-checked (unknown office, duplicate id, a capacity below
the files an agent already holds, ...) before anything is written; one bad row and
nothing is applied. Each change that is applied becomes a directory event.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, ValidationError

from assignment.domain import AgentStatus
from assignment.tables import agents, directory_imports, offices, supervisors
from guichet_runtime import audit
from guichet_runtime.audit import AuditAction
from guichet_runtime.auth.principal import Principal
from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.errors import french_errors
from guichet_runtime.refusals import RefusalKind, Refused
from shared_models import (
    AgentDetailsChanged,
    AgentJoined,
    AgentProfile,
    KnownAgencyCode,
    OfficeDetailsChanged,
    OfficeOpened,
    OfficeProfile,
    topics,
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Id = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{1,29}$")
]
Departement = Annotated[
    str, StringConstraints(pattern=r"^(0[1-9]|[1-8][0-9]|9[0-5]|2A|2B|97[1-6])$")
]


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OfficeRow(Row):
    office_id: Id = Field(description="Identifiant du bureau.")
    name: Text
    address: Text
    commune: Text
    departement: Departement
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    opening_hours: Text


class AgentRow(Row):
    agent_id: Id = Field(description="Identifiant de l'agent.")
    name: Text = Field(description="Prénom et nom, tels que les citoyens les liront.")
    office_id: Id = Field(description="Bureau France Services de l'agent.")
    phone: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 .]{10,20}$")
    ] = Field(description="Ligne directe.")
    email: EmailStr = Field(description="Adresse électronique directe.")
    agencies: list[KnownAgencyCode] = Field(
        min_length=1, description="Organismes pour lesquels l'agent est formé."
    )
    capacity: int = Field(gt=0, le=500, description="Nombre maximal de dossiers actifs.")


class SupervisorRow(Row):
    supervisor_id: Id
    name: Text
    email: EmailStr
    phone: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 .]{10,20}$")]
    departements: list[Departement] = Field(min_length=1)


class DirectoryFile(Row):
    version: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)
    ] = Field(description="Version du fichier d'annuaire (par exemple sa date).")
    offices: list[dict[str, Any]] = Field(default_factory=list)
    agents: list[dict[str, Any]] = Field(default_factory=list)
    supervisors: list[dict[str, Any]] = Field(default_factory=list)


def _rows(
    model: type[Row], section: str, raw: list[dict[str, Any]], errors: list[dict[str, str]]
) -> list[Any]:
    rows = []
    for i, item in enumerate(raw):
        try:
            rows.append(model.model_validate(item))
        except ValidationError as exc:
            label = item.get(f"{section[:-1]}_id") if isinstance(item, dict) else None
            for err in french_errors(list(exc.errors())):
                errors.append(
                    {
                        "field": f"{section}[{i}].{err['field']}",
                        "message": f"Ligne {i + 1} des {_SECTION_FR[section]}"
                        + (f" ({label})" if label else "")
                        + f" : {err['message']}",
                    }
                )
    return rows


_SECTION_FR = {"offices": "bureaux", "agents": "agents", "supervisors": "superviseurs"}


def _duplicates(section: str, ids: list[str], errors: list[dict[str, str]]) -> None:
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            errors.append(
                {
                    "field": f"{section}[{i}]",
                    "message": (
                        f"Ligne {i + 1} des {_SECTION_FR[section]} : "
                        f"l'identifiant {ident} apparaît deux fois."
                    ),
                }
            )
        seen.add(ident)


def parse(data: Any) -> tuple[DirectoryFile, list[OfficeRow], list[AgentRow], list[SupervisorRow]]:
    """Validate the whole file; raise Refused listing every bad row."""
    try:
        directory = DirectoryFile.model_validate(data)
    except ValidationError as exc:
        raise Refused(
            RefusalKind.INVALID,
            "Le fichier d'annuaire est mal formé ; rien n'a été importé.",
            errors=french_errors(list(exc.errors())),
        ) from exc
    errors: list[dict[str, str]] = []
    office_rows = _rows(OfficeRow, "offices", directory.offices, errors)
    agent_rows = _rows(AgentRow, "agents", directory.agents, errors)
    supervisor_rows = _rows(SupervisorRow, "supervisors", directory.supervisors, errors)
    _duplicates("offices", [o.office_id for o in office_rows], errors)
    _duplicates("agents", [a.agent_id for a in agent_rows], errors)
    _duplicates("supervisors", [s.supervisor_id for s in supervisor_rows], errors)
    if errors:
        raise Refused(
            RefusalKind.INVALID,
            "Des lignes du fichier d'annuaire sont invalides ; rien n'a été importé.",
            errors=errors,
        )
    return directory, office_rows, agent_rows, supervisor_rows


def _office_profile(row: OfficeRow | sa.Row) -> OfficeProfile:
    return OfficeProfile(**{f: getattr(row, f) for f in OfficeProfile.model_fields})


def _agent_profile(row: AgentRow | sa.Row) -> AgentProfile:
    return AgentProfile(**{f: getattr(row, f) for f in AgentProfile.model_fields})


async def apply(
    uow: UnitOfWork,
    version: str | None,
    office_rows: list[OfficeRow],
    agent_rows: list[AgentRow],
    supervisor_rows: list[SupervisorRow],
) -> dict[str, Any]:
    """Write the rows within the caller's transaction (all or nothing) and emit one
    event per change. Agents absent from the file stay: a departure is declared."""
    errors: list[dict[str, str]] = []
    known_offices = {r.office_id: r for r in (await uow.conn.execute(sa.select(offices))).all()}
    ids = [a.agent_id for a in agent_rows]
    known_agents = {
        r.agent_id: r
        for r in (
            await uow.conn.execute(
                sa.select(agents).where(agents.c.agent_id.in_(ids)).with_for_update()
            )
        ).all()
    }
    new_offices = {o.office_id for o in office_rows}
    for i, a in enumerate(agent_rows):
        where = f"Ligne {i + 1} des agents ({a.agent_id})"
        if a.office_id not in new_offices and a.office_id not in known_offices:
            errors.append(
                {
                    "field": f"agents[{i}].office_id",
                    "message": f"{where} : le bureau {a.office_id} n'existe pas.",
                }
            )
        old = known_agents.get(a.agent_id)
        if old is not None and old.status == AgentStatus.GONE:
            errors.append(
                {
                    "field": f"agents[{i}].agent_id",
                    "message": (
                        f"{where} : cet agent a quitté le réseau ; "
                        "un retour se fait sous un nouvel identifiant."
                    ),
                }
            )
        if old is not None and a.capacity < old.active_files:
            errors.append(
                {
                    "field": f"agents[{i}].capacity",
                    "message": (
                        f"{where} : la capacité {a.capacity} est inférieure aux "
                        f"{old.active_files} dossiers actifs de l'agent ; "
                        "réaffectez d'abord des dossiers."
                    ),
                }
            )
    if errors:
        raise Refused(
            RefusalKind.INVALID,
            "Des lignes du fichier d'annuaire sont incompatibles avec l'annuaire actuel ; "
            "rien n'a été importé.",
            errors=errors,
        )

    summary = {
        "offices_opened": 0,
        "offices_changed": 0,
        "agents_joined": 0,
        "agents_changed": 0,
        "supervisors": 0,
    }
    for o in office_rows:
        values = o.model_dump()
        old = known_offices.get(o.office_id)
        if old is None:
            await uow.conn.execute(offices.insert().values(**values))
            uow.emit(
                topics.DIRECTORY_CHANGES,
                OfficeOpened(office=_office_profile(o), directory_version=version),
            )
            summary["offices_opened"] += 1
        elif _office_profile(old) != _office_profile(o):
            await uow.conn.execute(
                offices.update().where(offices.c.office_id == o.office_id).values(**values)
            )
            uow.emit(
                topics.DIRECTORY_CHANGES,
                OfficeDetailsChanged(office=_office_profile(o), directory_version=version),
            )
            summary["offices_changed"] += 1
    for a in agent_rows:
        values = {**a.model_dump(), "agencies": list(a.agencies)}
        old = known_agents.get(a.agent_id)
        profile = _agent_profile(a)
        if old is None:
            await uow.conn.execute(
                agents.insert().values(**values, active_files=0, status=AgentStatus.ACTIVE)
            )
            uow.emit(
                topics.DIRECTORY_CHANGES,
                AgentJoined(agent_id=a.agent_id, agent=profile, directory_version=version),
            )
            summary["agents_joined"] += 1
        elif _agent_profile(old) != profile:
            await uow.conn.execute(
                agents.update().where(agents.c.agent_id == a.agent_id).values(**values)
            )
            uow.emit(
                topics.DIRECTORY_CHANGES,
                AgentDetailsChanged(agent_id=a.agent_id, agent=profile, directory_version=version),
            )
            summary["agents_changed"] += 1
    for s in supervisor_rows:
        values = s.model_dump()
        updated = await uow.conn.execute(
            supervisors.update()
            .where(supervisors.c.supervisor_id == s.supervisor_id)
            .values(**values)
        )
        if updated.rowcount == 0:
            await uow.conn.execute(supervisors.insert().values(**values))
        summary["supervisors"] += 1
    return summary


async def import_directory(
    uow: UnitOfWork,
    data: Any,
    *,
    only_if_empty: bool = False,
    reason: str | None = None,
    by: Principal | None = None,
) -> dict[str, Any]:
    """Check the whole file, then apply it in one transaction; a version already
    imported is not applied twice. The administrator says why (422 without a reason);
    the seed at first start (`only_if_empty`) is the service's own."""
    directory, office_rows, agent_rows, supervisor_rows = parse(data)
    async with uow:
        if only_if_empty and await uow.conn.scalar(sa.select(sa.func.count()).select_from(agents)):
            return {"version": directory.version, "applied": False}
        if await uow.conn.scalar(
            sa.select(directory_imports.c.version).where(
                directory_imports.c.version == directory.version
            )
        ):
            return {
                "version": directory.version,
                "applied": False,
                "message": f"La version {directory.version} de l'annuaire est déjà importée.",
            }
        why = None if only_if_empty else audit.reason_given(reason)
        summary = await apply(uow, directory.version, office_rows, agent_rows, supervisor_rows)
        await uow.conn.execute(
            directory_imports.insert().values(
                version=directory.version, imported_at=utcnow(), summary=summary
            )
        )
        audit.record(
            uow,
            by or audit.SYSTEM,
            AuditAction.DIRECTORY_IMPORTED,
            reason=why,
            version=directory.version,
            **summary,
        )
        await uow.commit()
    return {"version": directory.version, "applied": True, **summary}


async def join(uow: UnitOfWork, data: Any, by: Principal | None = None) -> dict[str, Any]:
    """One agent joins the network (admin API)."""
    errors: list[dict[str, str]] = []
    try:
        row = AgentRow.model_validate(data)
    except ValidationError as exc:
        errors = french_errors(list(exc.errors()))
        raise Refused(
            RefusalKind.INVALID,
            "Certaines informations sur l'agent sont manquantes ou invalides.",
            errors=errors,
        ) from exc
    async with uow:
        if await uow.conn.scalar(
            sa.select(agents.c.agent_id).where(agents.c.agent_id == row.agent_id)
        ):
            raise Refused(
                RefusalKind.CONFLICT, f"Un agent porte déjà l'identifiant {row.agent_id}."
            )
        try:
            await apply(uow, None, [], [row], [])
        except Refused as refused:
            # One agent, not a file: the errors name the agent's fields, not a row.
            errors = [{**e, "field": e["field"].removeprefix("agents[0].")} for e in refused.errors]
            message = errors[0]["message"].split(" : ", 1)[-1] if errors else refused.message
            raise Refused(refused.kind, message, errors=errors) from None
        audit.record(uow, by or audit.SYSTEM, AuditAction.AGENT_JOINED, agent_id=row.agent_id)
        await uow.commit()
    return {"agent_id": row.agent_id, "status": AgentStatus.ACTIVE.value}


async def seed_directory(uow: UnitOfWork, path: Path) -> int:
    """Load the versioned directory file when the directory is empty (all or nothing);
    returns how many agents joined."""
    data = json.loads(await asyncio.to_thread(path.read_text, encoding="utf-8"))
    result = await import_directory(uow, data, only_if_empty=True)
    return result.get("agents_joined", 0) if result["applied"] else 0
