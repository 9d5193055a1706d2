"""Assignment's use cases: name the référent, transmit to the agencies, and compose the
one coordinated answer once every agency has answered."""

from __future__ import annotations

import dataclasses
import functools
import math
import json
import logging
from pathlib import Path

import sqlalchemy as sa

from guichet_runtime.consumer import PermanentError
from guichet_runtime.db import UnitOfWork, utcnow
from shared_models import (
    AgencyAnswerReceived,
    AgencyDecision,
    AgencyRequestIssued,
    CitizenContact,
    CoordinatedAnswerIssued,
    ReferentAssignmentDeferred,
    Decision,
    FileSubmitted,
    Referent,
    ReferentAssigned,
    ReferentChangeRequested,
    SupervisorContact,
    SupportingDocumentRequested,
    topics,
)
from assignment import deadlines, domain, geo
from assignment.tables import agency_requests, agents, assignments, files, offices, supervisors

log = logging.getLogger(__name__)


def _candidate(row: sa.Row) -> domain.Candidate:
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


_CANDIDATE_COLUMNS = (
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


async def _referent(uow: UnitOfWork, agent_id: str) -> Referent:
    row = (
        await uow.conn.execute(
            sa.select(agents, offices.c.name.label("office_name"), offices.c.opening_hours)
            .join(offices, agents.c.office_id == offices.c.office_id)
            .where(agents.c.agent_id == agent_id)
        )
    ).one()
    return Referent(
        agent_id=row.agent_id,
        name=row.name,
        office=row.office_name,
        office_id=row.office_id,
        phone=row.phone,
        email=row.email,
        opening_hours=row.opening_hours,
    )


async def take_capacity(uow: UnitOfWork, agent_id: str, limit: int | sa.ColumnElement | None) -> bool:
    """One more active file for the agent, if they hold fewer than `limit` (None: no
    limit). Guarded in SQL: a concurrent replica may have filled the agent meanwhile."""
    query = agents.update().where(agents.c.agent_id == agent_id)
    if limit is not None:
        query = query.where(agents.c.active_files < limit)
    taken = await uow.conn.execute(query.values(active_files=agents.c.active_files + 1))
    return taken.rowcount == 1


async def release_capacity(uow: UnitOfWork, agent_id: str | None) -> None:
    """One active file fewer for the agent (the file was answered, moved or parked)."""
    if agent_id is not None:
        await uow.conn.execute(
            agents.update()
            .where(agents.c.agent_id == agent_id, agents.c.active_files > 0)
            .values(active_files=agents.c.active_files - 1)
        )


def _room(reserve_percent: int) -> sa.ColumnElement[bool]:
    """In SQL, the same limit as `domain.Candidate.has_room`; never the agents in the
    `skip` parameter (the agent replaced, or one a concurrent replica just filled)."""
    limit = agents.c.capacity - agents.c.capacity * reserve_percent // 100
    return sa.and_(
        agents.c.status == "actif",
        agents.c.active_files < limit,
        agents.c.agent_id.not_in(sa.bindparam("skip", expanding=True)),
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
        (sa.case((text.like(sa.bindparam(f"a{i}")), 1), else_=0) for i in range(n_agencies)), sa.literal(0)
    )
    if scope == "nearest":
        # The office nearest to (lat, lon) with someone who has room, ordered in SQL by an
        # equirectangular distance (plain arithmetic, exact enough to rank offices).
        colleague = agents.alias("colleague")
        has_room = sa.exists().where(
            colleague.c.office_id == offices.c.office_id,
            colleague.c.status == "actif",
            colleague.c.active_files < colleague.c.capacity - colleague.c.capacity * reserve_percent // 100,
            colleague.c.agent_id.not_in(sa.bindparam("skip", expanding=True)),
        )
        dy = offices.c.latitude - sa.bindparam("lat", type_=sa.Float)
        dx = (offices.c.longitude - sa.bindparam("lon", type_=sa.Float)) * sa.bindparam("coslat", type_=sa.Float)
        nearest = sa.select(offices.c.office_id).where(has_room).order_by(dy * dy + dx * dx).limit(1)
        where = agents.c.office_id == nearest.scalar_subquery()
    else:
        where = {
            "office": agents.c.office_id == sa.bindparam("office_id"),
            "departement": offices.c.departement == sa.bindparam("departement"),
            "anywhere": sa.true(),
        }[scope]
    return (
        sa.select(*_CANDIDATE_COLUMNS, sa.literal(False).label("is_previous"))
        .join(offices, agents.c.office_id == offices.c.office_id)
        .where(_room(reserve_percent), where)
        .order_by(coverage.desc(), sa.cast(agents.c.active_files, sa.Float) / agents.c.capacity, agents.c.agent_id)
        .limit(CANDIDATES_READ)
    )


@functools.cache
def _statement(n_agencies: int, reserve_percent: int, scope: str, with_previous: bool):
    """Built once per shape (building a statement costs more than running it); with
    `with_previous`, the citizen's current référent comes in the same round trip."""
    candidates = _candidates_query(n_agencies, reserve_percent, scope)
    if not with_previous:
        return candidates
    previous = (
        sa.select(*_CANDIDATE_COLUMNS, sa.literal(True).label("is_previous"))
        .select_from(files.join(agents, files.c.referent_id == agents.c.agent_id).join(offices))
        .where(files.c.citizen_key == sa.bindparam("citizen_key"), agents.c.status == "actif")
        .order_by(files.c.created_at.desc())
        .limit(1)
    )
    return sa.union_all(sa.select(previous.subquery()), sa.select(candidates.subquery()))


async def _read(
    uow: UnitOfWork, agencies: list[str], reserve: int, scope: str, params: dict, citizen_key: str | None = None
) -> tuple[domain.Candidate | None, list[domain.Candidate]]:
    """(the citizen's current référent if asked for, the best candidates in `scope`)."""
    statement = _statement(len(agencies), reserve, scope, citizen_key is not None)
    values = {**params, **{f"a{i}": f'%"{a}"%' for i, a in enumerate(agencies)}}
    if citizen_key is not None:
        values["citizen_key"] = citizen_key
    rows = (await uow.conn.execute(statement, values)).all()
    previous = next((_candidate(r) for r in rows if r.is_previous), None)
    return previous, [_candidate(r) for r in rows if not r.is_previous]


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
    reserve = 0 if urgent else domain.URGENT_RESERVE_PERCENT
    departement = domain.departement_of(postcode)
    skip = [exclude] if exclude is not None else []
    while True:
        if office_id is not None:
            previous, candidates = await _read(uow, agencies, reserve, "office", {"skip": skip, "office_id": office_id})
        else:
            previous, candidates = await _read(
                uow, agencies, reserve, "departement", {"skip": skip, "departement": departement}, citizen_key
            )
        choice = domain.choose_referent(candidates, agencies, departement, previous, reserve_percent=reserve)
        if choice is None and office_id is None:
            point = geo.locate(postcode, departement)
            if point is not None:
                at = {"lat": point[0], "lon": point[1], "coslat": math.cos(math.radians(point[0]))}
                _, near = await _read(uow, agencies, reserve, "nearest", {"skip": skip, **at})
                candidates = [
                    dataclasses.replace(c, distance_km=domain.distance_km(point, (c.latitude, c.longitude)))
                    for c in near
                ]
            else:  # unknown place: anyone with room
                _, candidates = await _read(uow, agencies, reserve, "anywhere", {"skip": skip})
            choice = domain.choose_referent(candidates, agencies, departement, None, reserve_percent=reserve)
        if choice is None:
            return None
        chosen = next(c for c in candidates + [previous] if c is not None and c.agent_id == choice.agent_id)
        if await take_capacity(uow, choice.agent_id, chosen.limit(reserve)):
            return choice
        # A concurrent replica filled this agent meanwhile: choose again without them.
        skip.append(choice.agent_id)
        if previous is not None and previous.agent_id == choice.agent_id:
            citizen_key = None


async def _start_file(uow: UnitOfWork, file: sa.Row, choice: domain.Choice) -> None:
    """The référent is named: record why, tell everyone, transmit to each agency."""
    now = utcnow()
    citizen = CitizenContact.model_validate(file.citizen)
    await uow.conn.execute(
        files.update()
        .where(files.c.file_id == file.file_id)
        .values(status="en_cours", referent_id=choice.agent_id)
    )
    await uow.conn.execute(
        assignments.insert().values(
            file_id=file.file_id, agent_id=choice.agent_id, rule=choice.rule,
            explanation=choice.explanation, considered=choice.considered, at=now,
        )
    )
    referent = await _referent(uow, choice.agent_id)
    uow.emit(
        topics.REFERENTS_ASSIGNED,
        ReferentAssigned(
            file_id=file.file_id, referent=referent, rule=choice.rule,
            explanation=choice.explanation, citizen=citizen,
        ),
    )
    requests = []
    for agency in file.agencies:
        request_id = f"{file.file_id}-{agency}"
        requests.append(
            {"request_id": request_id, "file_id": file.file_id, "agency": agency,
             "status": "transmise", "issued_at": now}
        )
        uow.emit(
            topics.agency_requests(agency),
            AgencyRequestIssued(
                file_id=file.file_id, request_id=request_id, agency=agency, life_event=file.life_event,
                citizen=citizen, description=file.description, urgent=file.urgent,
            ),
        )
    await uow.conn.execute(agency_requests.insert(), requests)


async def _resume_file(uow: UnitOfWork, file: sa.Row, choice: domain.Choice, last_agent_id: str) -> None:
    """A file already transmitted lost its référent (absence or departure when nobody
    had room): the new one takes it over, as a cover if the titular will come back; the
    agencies are not asked again."""
    previous = await _referent(uow, last_agent_id)
    rule = "suppleance" if file.titular_id else "reprise"
    reason = (
        f"{previous.name} est absent(e) ; votre dossier lui reviendra à son retour."
        if file.titular_id
        else f"{previous.name} a quitté son poste ; tout votre dossier a été transmis."
    )
    await uow.conn.execute(
        files.update().where(files.c.file_id == file.file_id).values(status="en_cours", referent_id=choice.agent_id)
    )
    await uow.conn.execute(
        assignments.insert().values(
            file_id=file.file_id, agent_id=choice.agent_id, rule=rule,
            explanation=f"{reason} — {choice.explanation}",
            considered=choice.considered, at=utcnow(),
        )
    )
    referent = await _referent(uow, choice.agent_id)
    uow.emit(
        topics.REFERENTS_ASSIGNED,
        ReferentAssigned(
            file_id=file.file_id, referent=referent, rule=rule, explanation=choice.explanation,
            citizen=CitizenContact.model_validate(file.citizen), previous_referent=previous,
            reason=reason,
        ),
    )


async def _lock_citizen(uow: UnitOfWork, key: str) -> None:
    """Serialise the decisions about one citizen until commit, so two replicas handling
    the citizen's two files at once both see the référent the first one chose.
    (SQLite already runs one writing transaction at a time.)"""
    if uow.conn.dialect.name == "postgresql":
        await uow.conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))


async def _choose_for(uow: UnitOfWork, file: sa.Row) -> domain.Choice | None:
    await _lock_citizen(uow, file.citizen_key)
    return await take_agent(
        uow, list(file.agencies), file.citizen["postcode"], file.citizen_key, urgent=file.urgent,
    )


async def on_file_submitted(event: FileSubmitted, uow: UnitOfWork) -> None:
    async with uow:
        if await uow.conn.scalar(sa.select(files.c.file_id).where(files.c.file_id == event.file_id)):
            await uow.commit()  # same file announced twice: already handled
            return
        await uow.conn.execute(
            files.insert().values(
                file_id=event.file_id,
                citizen_key=domain.citizen_key(event.citizen),
                citizen=event.citizen.model_dump(mode="json"),
                agencies=list(event.agencies),
                life_event=event.life_event,
                life_event_label=event.life_event_label,
                description=event.description,
                urgent=event.urgent,
                status="en_attente_attribution",
                created_at=utcnow(),
            )
        )
        file = (await uow.conn.execute(sa.select(files).where(files.c.file_id == event.file_id))).one()
        choice = await _choose_for(uow, file)
        if choice is None:
            # Nobody has room: the file waits, visibly, and is never dropped.
            await announce_waiting(uow, file, "Aucun agent n'a de place pour ce nouveau dossier.")
        else:
            await _start_file(uow, file, choice)
        await uow.commit()


async def assign_waiting(uow: UnitOfWork, limit: int = 50) -> int:
    """Give référents to waiting files, urgent first then oldest, as capacity frees up."""
    async with uow:
        waiting = (
            await uow.conn.execute(
                sa.select(files)
                .where(files.c.status == "en_attente_attribution")
                .order_by(files.c.urgent.desc(), files.c.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        started = 0
        for file in waiting:
            choice = await _choose_for(uow, file)
            if choice is None:
                continue
            last = await uow.conn.scalar(
                sa.select(assignments.c.agent_id).where(assignments.c.file_id == file.file_id)
                .order_by(assignments.c.id.desc()).limit(1)
            )
            if last is None:
                await _start_file(uow, file, choice)
            else:
                await _resume_file(uow, file, choice, file.titular_id or last)
                await compose_if_complete(uow, file.file_id)
            started += 1
        await uow.commit()
    return started


async def on_agency_answer(event: AgencyAnswerReceived, uow: UnitOfWork) -> None:
    async with uow:
        # Lock the file: two agencies' answers handled at once must not both see the
        # other as pending (or both compose the answer).
        file = (
            await uow.conn.execute(
                sa.select(files).where(files.c.file_id == event.file_id).with_for_update()
            )
        ).first()
        request = (
            await uow.conn.execute(
                sa.select(agency_requests).where(agency_requests.c.request_id == event.request_id)
            )
        ).first()
        if file is None or request is None or request.file_id != event.file_id:
            raise PermanentError(f"demande inconnue : {event.request_id} (dossier {event.file_id})")
        if request.agency != event.answer.agency:
            raise PermanentError(f"réponse de {event.answer.agency} pour une demande à {request.agency}")
        if request.status == "repondue":
            await uow.commit()
            return
        now = utcnow()
        # A missing document is not an answer: the request waits for it, so the
        # coordinated answer is not composed (compose_if_complete wants every one "repondue").
        waiting = event.answer.decision is Decision.DOCUMENT_REQUESTED
        if (
            waiting and request.status == "piece_demandee" and request.answer == event.answer.model_dump(mode="json")
            and request.answer_after_document == event.after_document
        ):
            # The same request for the same document, delivered again. Asked again after the
            # citizen sent one (it was incomplete), it is a new request: told again.
            await uow.commit()
            return
        await uow.conn.execute(
            agency_requests.update()
            .where(agency_requests.c.request_id == event.request_id)
            .values(
                status="piece_demandee" if waiting else "repondue",
                answer=event.answer.model_dump(mode="json"),
                answer_after_document=event.after_document,
                answered_at=None if waiting else now,
            )
        )
        if waiting:
            await _document_requested(uow, file, event)
        else:
            await deadlines.answered(uow, event.request_id)
            await compose_if_complete(uow, event.file_id)
        await uow.commit()


async def _document_requested(uow: UnitOfWork, file: sa.Row, event: AgencyAnswerReceived) -> None:
    """The référent and the citizen are told which document the agency waits for."""
    if file.referent_id is None or event.answer.requested_document is None:
        return
    referent = await _referent(uow, file.referent_id)
    uow.emit(
        topics.DOCUMENTS_REQUESTED,
        SupportingDocumentRequested(
            file_id=file.file_id, request_id=event.request_id, agency=event.answer.agency,
            document=event.answer.requested_document, referent=referent,
            citizen=CitizenContact.model_validate(file.citizen),
            after_document=event.after_document, reason=event.answer.summary,
        ),
    )


async def compose_if_complete(uow: UnitOfWork, file_id: str) -> bool:
    """Once every agency has answered and the file has a référent to sign it: the one
    coordinated answer. A file waiting for a référent gets its answer when it has one."""
    file = (await uow.conn.execute(sa.select(files).where(files.c.file_id == file_id))).one()
    if file.status != "en_cours" or file.referent_id is None:
        return False
    answers = (
        await uow.conn.execute(
            sa.select(agency_requests.c.status, agency_requests.c.answer).where(agency_requests.c.file_id == file_id)
        )
    ).all()
    if not answers or any(r.status != "repondue" for r in answers):
        return False
    decisions = [AgencyDecision.model_validate(r.answer) for r in answers]
    citizen = CitizenContact.model_validate(file.citizen)
    referent = await _referent(uow, file.referent_id)
    # The word is personal: it leaves only under the name of the agent who wrote it (a
    # référent who took the file over writes their own).
    word = file.personal_word if file.personal_word_agent_id == file.referent_id else None
    text = domain.compose_answer(file_id, file.life_event_label, citizen, decisions, referent, word)
    await uow.conn.execute(
        files.update().where(files.c.file_id == file_id).values(status="repondu", answered_at=utcnow())
    )
    await release_capacity(uow, file.referent_id)
    uow.emit(
        topics.FILES_ANSWERED,
        CoordinatedAnswerIssued(
            file_id=file_id, referent=referent, citizen=citizen, decisions=decisions, text=text, personal_word=word,
        ),
    )
    return True


CHANGE_RULES = {"citoyen": "changement_demande", "superviseur": "reaffectation_superviseur"}


async def on_referent_change_requested(event: ReferentChangeRequested, uow: UnitOfWork) -> None:
    """Give the file another référent: never the same person, the whole file follows."""
    async with uow:
        file = (
            await uow.conn.execute(
                sa.select(files).where(files.c.file_id == event.file_id).with_for_update()
            )
        ).first()
        if file is None:
            raise PermanentError(f"dossier inconnu : {event.file_id}")
        stale = event.current_agent_id is not None and event.current_agent_id != file.referent_id
        rule = CHANGE_RULES[event.requested_by]
        if file.status == "repondu" or file.referent_id is None or stale:
            log.info("change of référent for %s not applicable (status %s)", event.file_id, file.status)
            await uow.commit()
            return
        if event.requested_by == "citoyen" and await uow.conn.scalar(
            sa.select(sa.func.count())
            .select_from(assignments)
            .where(assignments.c.file_id == event.file_id, assignments.c.rule == rule)
        ):
            log.info("second citizen request for %s ignored: granted once per file", event.file_id)
            await uow.commit()
            return
        citizen = CitizenContact.model_validate(file.citizen)
        choice = await take_agent(
            uow, await file_agencies(uow, event.file_id), citizen.postcode, None,
            exclude=file.referent_id, urgent=file.urgent,
        )
        if choice is None:
            log.warning("no référent with room to replace %s on %s", file.referent_id, event.file_id)
            await uow.commit()
            return
        await move_file(
            uow, file, choice.agent_id, rule, f"Motif : {event.reason} — {choice.explanation}",
            event.reason, choice.considered,
        )
        await uow.commit()


_KEEP = object()


async def move_file(
    uow: UnitOfWork,
    file: sa.Row,
    agent_id: str,
    rule: str,
    explanation: str,
    reason: str,
    considered: list[str],
    *,
    titular_id: object = _KEEP,
    previous_agent_id: str | None = None,
) -> None:
    """Hand an open file from its active référent (none if it waited) to `agent_id`,
    whose capacity the caller has already taken; the history, the citizen and both
    agents are told."""
    previous = await _referent(uow, previous_agent_id or file.referent_id)
    await release_capacity(uow, file.referent_id)
    values: dict[str, object] = {"referent_id": agent_id, "status": "en_cours"}
    if titular_id is not _KEEP:
        values["titular_id"] = titular_id
    await uow.conn.execute(files.update().where(files.c.file_id == file.file_id).values(**values))
    await uow.conn.execute(
        assignments.insert().values(
            file_id=file.file_id, agent_id=agent_id, rule=rule, explanation=explanation,
            considered=considered, at=utcnow(),
        )
    )
    referent = await _referent(uow, agent_id)
    uow.emit(
        topics.REFERENTS_ASSIGNED,
        ReferentAssigned(
            file_id=file.file_id,
            referent=referent,
            rule=rule,
            explanation=explanation,
            citizen=CitizenContact.model_validate(file.citizen),
            previous_referent=previous,
            reason=reason,
        ),
    )


async def file_agencies(uow: UnitOfWork, file_id: str) -> list[str]:
    return list(
        (
            await uow.conn.scalars(
                sa.select(agency_requests.c.agency).where(agency_requests.c.file_id == file_id)
            )
        ).all()
    )


async def seed_directory(uow: UnitOfWork, path: Path) -> int:
    """Load the versioned directory file when the directory is empty (all or nothing);
    returns how many agents joined."""
    from assignment import importer

    result = await importer.import_directory(uow, json.loads(path.read_text(encoding="utf-8")), only_if_empty=True)
    return result.get("agents_joined", 0) if result["applied"] else 0


async def supervisors_of(uow: UnitOfWork, departement: str) -> list[SupervisorContact]:
    """Who to alert about a file of this département: its supervisors, else all of them."""
    rows = (await uow.conn.execute(sa.select(supervisors).order_by(supervisors.c.supervisor_id))).all()
    mine = [r for r in rows if departement in r.departements] or rows
    return [SupervisorContact(supervisor_id=r.supervisor_id, name=r.name, email=r.email, phone=r.phone) for r in mine]


async def announce_waiting(uow: UnitOfWork, file: sa.Row, reason: str) -> None:
    """The file waits for a référent: its supervisors are alerted (through the outbox)."""
    departement = domain.departement_of(file.citizen["postcode"])
    log.warning("file %s waits for a référent: %s", file.file_id, reason)
    uow.emit(
        topics.FILES_AWAITING_REFERENT,
        ReferentAssignmentDeferred(
            file_id=file.file_id, departement=departement, urgent=file.urgent,
            life_event_label=file.life_event_label, reason=reason,
            citizen=CitizenContact.model_validate(file.citizen),
            supervisors=await supervisors_of(uow, departement),
        ),
    )
