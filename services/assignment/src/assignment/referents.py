"""The référent engine: choose a référent for a file and take one unit of their capacity.

Continuity (the citizen's current référent first), proximity (the citizen's département,
then the nearest office with room), skills and load, as `domain.choose_referent` ranks
them, read in SQL so a decision costs the same with 50 or 5,000 agents; capacity taken
and released under a SQL guard (a concurrent replica may have filled an agent meanwhile);
the decisions about one citizen serialised until commit. Public names only: the commands,
the projections and the decision benchmark (devstack) use this module.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import sqlalchemy as sa

from assignment import domain, geo
from assignment.domain import AgentStatus
from assignment.personal_columns import citizen_of
from assignment.tables import agents, files, offices
from guichet_runtime.db import UnitOfWork
from guichet_runtime.statements import param, params, prepared
from shared_models import Referent


def candidate_of(row: sa.Row) -> domain.Candidate:
    return domain.Candidate(
        agent_id=row.agent_id,
        name=row.name,
        departement=row.departement,
        agencies=frozenset(row.agencies),
        active_files=row.active_files,
        capacity=row.capacity,
        office_name=row.office_name,
        latitude=row.latitude,
        longitude=row.longitude,
    )


CANDIDATE_COLUMNS = (
    agents.c.agent_id,
    agents.c.name,
    agents.c.agencies,
    agents.c.active_files,
    agents.c.capacity,
    offices.c.departement,
    offices.c.name.label("office_name"),
    offices.c.latitude,
    offices.c.longitude,
)


@prepared
def _referent_row() -> sa.Select[Any]:
    return (
        sa.select(agents, offices.c.name.label("office_name"), offices.c.opening_hours)
        .join(offices, agents.c.office_id == offices.c.office_id)
        .where(agents.c.agent_id == param(agents.c.agent_id))
    )


async def referent_of(uow: UnitOfWork, agent_id: str) -> Referent:
    """The agent as citizens and events know a référent: name, office, direct line, hours."""
    row = (await uow.conn.execute(_referent_row(), params(agent_id=agent_id))).one()
    return Referent(
        agent_id=row.agent_id,
        name=row.name,
        office=row.office_name,
        office_id=row.office_id,
        phone=row.phone,
        email=row.email,
        opening_hours=row.opening_hours,
    )


async def take_capacity(uow: UnitOfWork, agent_id: str, reserve_percent: int | None) -> bool:
    """One more active file for the agent, if they have room leaving `reserve_percent` of
    their capacity free (None: no limit, e.g. their own files coming back). Guarded in
    SQL: a concurrent replica may have filled the agent meanwhile."""
    taken = await uow.conn.execute(_take_one(reserve_percent), params(agent_id=agent_id))
    return taken.rowcount == 1


@prepared
def _take_one(reserve_percent: int | None) -> sa.Update:
    query = agents.update().where(agents.c.agent_id == param(agents.c.agent_id))
    if reserve_percent is not None:
        query = query.where(
            domain.has_room(agents.c.active_files, agents.c.capacity, reserve_percent)
        )
    return query.values(active_files=agents.c.active_files + 1)


@prepared
def _release_one() -> sa.Update:
    return (
        agents.update()
        .where(agents.c.agent_id == param(agents.c.agent_id), agents.c.active_files > 0)
        .values(active_files=agents.c.active_files - 1)
    )


async def release_capacity(uow: UnitOfWork, agent_id: str | None) -> None:
    """One active file fewer for the agent (the file was answered, moved or parked)."""
    if agent_id is not None:
        await uow.conn.execute(_release_one(), params(agent_id=agent_id))


def _room(agent: sa.FromClause, reserve_percent: int) -> sa.ColumnElement[bool]:
    """In SQL, `domain.has_room` of an active agent; never the agents in the `skip`
    parameter (the agent replaced, or one a concurrent replica just filled)."""
    return sa.and_(
        agent.c.status == AgentStatus.ACTIVE,
        domain.has_room(agent.c.active_files, agent.c.capacity, reserve_percent),
        agent.c.agent_id.not_in(sa.bindparam("skip", expanding=True)),
    )


#: Candidates read per decision: the best few by the engine's own ranking, so a decision
#: costs the same with 10 or 500 agents in a département.
CANDIDATES_READ = 10


def _candidates_query(n_agencies: int, reserve_percent: int, scope: str) -> sa.Select:
    """The best candidates for a file needing `n_agencies` agencies (parameters a0, a1,
    …), ranked in SQL exactly as `domain.choose_referent` ranks them: skills coverage,
    then load ratio, then id. `scope`: "office", "departement", "nearest" (the nearest
    office with room to the point given as parameters) or "anywhere"."""
    text = sa.cast(agents.c.agencies, sa.Text)
    coverage = sum(
        (sa.case((text.like(sa.bindparam(f"a{i}")), 1), else_=0) for i in range(n_agencies)),
        sa.literal(0),
    )
    if scope == "nearest":
        # The office nearest to (lat, lon) with someone who has room, ordered in SQL by an
        # equirectangular distance (plain arithmetic, exact enough to rank offices).
        colleague = agents.alias("colleague")
        has_room = sa.exists().where(
            colleague.c.office_id == offices.c.office_id, _room(colleague, reserve_percent)
        )
        dy = offices.c.latitude - sa.bindparam("lat", type_=sa.Float)
        dx = (offices.c.longitude - sa.bindparam("lon", type_=sa.Float)) * sa.bindparam(
            "coslat", type_=sa.Float
        )
        nearest = (
            sa.select(offices.c.office_id).where(has_room).order_by(dy * dy + dx * dx).limit(1)
        )
        where = agents.c.office_id == nearest.scalar_subquery()
    else:
        where = {
            "office": agents.c.office_id == sa.bindparam("office_id"),
            "departement": offices.c.departement == sa.bindparam("departement"),
            "anywhere": sa.true(),
        }[scope]
    return (
        sa.select(*CANDIDATE_COLUMNS, sa.literal(False).label("is_previous"))
        .join(offices, agents.c.office_id == offices.c.office_id)
        .where(_room(agents, reserve_percent), where)
        .order_by(
            coverage.desc(),
            sa.cast(agents.c.active_files, sa.Float) / agents.c.capacity,
            agents.c.agent_id,
        )
        .limit(CANDIDATES_READ)
    )


@prepared
def _statement(n_agencies: int, reserve_percent: int, scope: str, with_previous: bool):
    """Built once per shape (building a statement costs more than running it); with
    `with_previous`, the citizen's current référent comes in the same round trip."""
    candidates = _candidates_query(n_agencies, reserve_percent, scope)
    if not with_previous:
        return candidates
    previous = (
        sa.select(*CANDIDATE_COLUMNS, sa.literal(True).label("is_previous"))
        .select_from(files.join(agents, files.c.referent_id == agents.c.agent_id).join(offices))
        .where(
            files.c.citizen_key == sa.bindparam("citizen_key"),
            agents.c.status == AgentStatus.ACTIVE,
        )
        .order_by(files.c.created_at.desc())
        .limit(1)
    )
    return sa.union_all(sa.select(previous.subquery()), sa.select(candidates.subquery()))


async def _read(
    uow: UnitOfWork,
    agencies: list[str],
    reserve: int,
    scope: str,
    params: dict,
    citizen_key: str | None = None,
) -> tuple[domain.Candidate | None, list[domain.Candidate]]:
    """(the citizen's current référent if asked for, the best candidates in `scope`)."""
    statement = _statement(len(agencies), reserve, scope, citizen_key is not None)
    values = {**params, **{f"a{i}": f'%"{a}"%' for i, a in enumerate(agencies)}}
    if citizen_key is not None:
        values["citizen_key"] = citizen_key
    rows = (await uow.conn.execute(statement, values)).all()
    previous = next((candidate_of(r) for r in rows if r.is_previous), None)
    return previous, [candidate_of(r) for r in rows if not r.is_previous]


async def take_agent(
    uow: UnitOfWork,
    agencies: list[str],
    postcode: str,
    citizen_key: str | None = None,
    exclude: str | None = None,
    office_id: str | None = None,
    urgent: bool = False,
) -> domain.Choice | None:
    """Choose a référent and take one unit of their capacity, or None if nobody has room.

    Candidates are read from the citizen's département only (indexed), then from the
    nearest office with room: the decision costs the same with 50 or 5,000 agents.
    Part of every agent's capacity is kept for urgent files (`domain.URGENT_RESERVE_PERCENT`).
    With `citizen_key`, the citizen's current référent comes first (continuity).
    """
    reserve = domain.reserve_for(urgent)
    departement = domain.departement_of(postcode)
    skip = [exclude] if exclude is not None else []
    while True:
        if office_id is not None:
            previous, candidates = await _read(
                uow, agencies, reserve, "office", {"skip": skip, "office_id": office_id}
            )
        else:
            previous, candidates = await _read(
                uow,
                agencies,
                reserve,
                "departement",
                {"skip": skip, "departement": departement},
                citizen_key,
            )
        choice = domain.choose_referent(
            candidates, agencies, departement, previous, reserve_percent=reserve
        )
        if choice is None and office_id is None:
            point = geo.locate(postcode, departement)
            if point is not None:
                at = {"lat": point[0], "lon": point[1], "coslat": math.cos(math.radians(point[0]))}
                _, near = await _read(uow, agencies, reserve, "nearest", {"skip": skip, **at})
                candidates = [
                    dataclasses.replace(
                        c, distance_km=domain.distance_km(point, (c.latitude, c.longitude))
                    )
                    for c in near
                ]
            else:  # unknown place: anyone with room
                _, candidates = await _read(uow, agencies, reserve, "anywhere", {"skip": skip})
            choice = domain.choose_referent(
                candidates, agencies, departement, None, reserve_percent=reserve
            )
        if choice is None:
            return None
        if await take_capacity(uow, choice.agent_id, reserve):
            return choice
        # A concurrent replica filled this agent meanwhile: choose again without them.
        skip.append(choice.agent_id)
        if previous is not None and previous.agent_id == choice.agent_id:
            citizen_key = None


async def lock_citizen(uow: UnitOfWork, key: str) -> None:
    """Serialise the decisions about one citizen until commit, so two replicas handling
    the citizen's two files at once both see the référent the first one chose.
    (SQLite already runs one writing transaction at a time.)"""
    if uow.conn.dialect.name == "postgresql":
        await uow.conn.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0)))
        )


async def choose_for_file(uow: UnitOfWork, file: sa.Row) -> domain.Choice | None:
    """The référent for a new or waiting file, the citizen locked (continuity first)."""
    await lock_citizen(uow, file.citizen_key)
    return await take_agent(
        uow,
        list(file.agencies),
        (await citizen_of(uow, file)).postcode,
        file.citizen_key,
        urgent=file.urgent,
    )
