"""Assignment's use cases: name the référent, transmit to the agencies, and compose the
one coordinated answer once every agency has answered."""

from __future__ import annotations

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
    Decision,
    FileSubmitted,
    Referent,
    ReferentAssigned,
    ReferentChangeRequested,
    SupportingDocumentRequested,
    topics,
)
from assignment import domain
from assignment.tables import agency_requests, agents, assignments, files, offices

log = logging.getLogger(__name__)


def _candidate(row: sa.Row) -> domain.Candidate:
    return domain.Candidate(
        agent_id=row.agent_id,
        name=row.name,
        departement=row.departement,
        agencies=frozenset(row.agencies),
        active_files=row.active_files,
        capacity=row.capacity,
    )


_CANDIDATE_COLUMNS = (
    agents.c.agent_id,
    agents.c.name,
    agents.c.agencies,
    agents.c.active_files,
    agents.c.capacity,
    offices.c.departement,
)


async def _referent(uow: UnitOfWork, agent_id: str) -> tuple[Referent, str]:
    row = (
        await uow.conn.execute(
            sa.select(agents, offices.c.name.label("office_name"), offices.c.opening_hours)
            .join(offices, agents.c.office_id == offices.c.office_id)
            .where(agents.c.agent_id == agent_id)
        )
    ).one()
    referent = Referent(
        agent_id=row.agent_id,
        name=row.name,
        office=row.office_name,
        office_id=row.office_id,
        phone=row.phone,
        email=row.email,
    )
    return referent, row.opening_hours


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


async def take_agent(
    uow: UnitOfWork,
    agencies: list[str],
    departement: str,
    previous: domain.Candidate | None,
    exclude: str | None = None,
    office_id: str | None = None,
    urgent: bool = False,
) -> domain.Choice | None:
    """Choose a référent and take one unit of their capacity, or None if nobody has room.

    Part of every agent's capacity is kept for urgent files (`domain.URGENT_RESERVE_SHARE`)."""
    share = 0.0 if urgent else domain.URGENT_RESERVE_SHARE
    query = (
        sa.select(*_CANDIDATE_COLUMNS)
        .join(offices, agents.c.office_id == offices.c.office_id)
        .where(agents.c.status == "actif", agents.c.active_files < agents.c.capacity)
    )
    if exclude is not None:
        query = query.where(agents.c.agent_id != exclude)
    if office_id is not None:
        query = query.where(agents.c.office_id == office_id)
    candidates = [_candidate(r) for r in (await uow.conn.execute(query)).all()]
    while True:
        choice = domain.choose_referent(candidates, agencies, departement, previous, reserve_share=share)
        if choice is None:
            return None
        chosen = next(c for c in candidates + [previous] if c is not None and c.agent_id == choice.agent_id)
        if await take_capacity(uow, choice.agent_id, chosen.limit(share)):
            return choice
        candidates = [c for c in candidates if c.agent_id != choice.agent_id]
        previous = None


async def _previous_referent(uow: UnitOfWork, key: str) -> domain.Candidate | None:
    """The citizen's current référent, if any file of theirs has an active one."""
    row = (
        await uow.conn.execute(
            sa.select(*_CANDIDATE_COLUMNS)
            .select_from(files.join(agents, files.c.referent_id == agents.c.agent_id).join(offices))
            .where(files.c.citizen_key == key, agents.c.status == "actif")
            .order_by(files.c.created_at.desc())
            .limit(1)
        )
    ).first()
    return _candidate(row) if row else None


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
    referent, _ = await _referent(uow, choice.agent_id)
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
    previous, _ = await _referent(uow, last_agent_id)
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
    referent, _ = await _referent(uow, choice.agent_id)
    uow.emit(
        topics.REFERENTS_ASSIGNED,
        ReferentAssigned(
            file_id=file.file_id, referent=referent, rule=rule, explanation=choice.explanation,
            citizen=CitizenContact.model_validate(file.citizen), previous_referent=previous,
            reason=reason,
        ),
    )


async def _choose_for(uow: UnitOfWork, file: sa.Row) -> domain.Choice | None:
    return await take_agent(
        uow, list(file.agencies), domain.departement_of(file.citizen["postcode"]),
        await _previous_referent(uow, file.citizen_key), urgent=file.urgent,
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
                agencies=[a.value for a in event.agencies],
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
            # Nobody near has room: the file waits, visibly, and is never dropped.
            log.warning("file %s waits for a référent: no agent with room", event.file_id)
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
        if request.agency != event.answer.agency.value:
            raise PermanentError(f"réponse de {event.answer.agency} pour une demande à {request.agency}")
        if request.status == "repondue":
            await uow.commit()
            return
        now = utcnow()
        # A missing document is not an answer: the request waits for it, so the
        # coordinated answer is not composed (compose_if_complete wants every one "repondue").
        waiting = event.answer.decision is Decision.DOCUMENT_REQUESTED
        if waiting and request.status == "piece_demandee" and request.answer == event.answer.model_dump(mode="json"):
            await uow.commit()  # the same request for the same document, delivered again
            return
        await uow.conn.execute(
            agency_requests.update()
            .where(agency_requests.c.request_id == event.request_id)
            .values(
                status="piece_demandee" if waiting else "repondue",
                answer=event.answer.model_dump(mode="json"),
                answered_at=None if waiting else now,
            )
        )
        if waiting:
            await _document_requested(uow, file, event)
        else:
            await compose_if_complete(uow, event.file_id)
        await uow.commit()


async def _document_requested(uow: UnitOfWork, file: sa.Row, event: AgencyAnswerReceived) -> None:
    """The référent and the citizen are told which document the agency waits for."""
    if file.referent_id is None or event.answer.requested_document is None:
        return
    referent, _ = await _referent(uow, file.referent_id)
    uow.emit(
        topics.DOCUMENTS_REQUESTED,
        SupportingDocumentRequested(
            file_id=file.file_id, request_id=event.request_id, agency=event.answer.agency,
            document=event.answer.requested_document, referent=referent,
            citizen=CitizenContact.model_validate(file.citizen),
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
    referent, opening_hours = await _referent(uow, file.referent_id)
    text = domain.compose_answer(file_id, file.life_event_label, citizen, decisions, referent, opening_hours)
    await uow.conn.execute(
        files.update().where(files.c.file_id == file_id).values(status="repondu", answered_at=utcnow())
    )
    await release_capacity(uow, file.referent_id)
    uow.emit(
        topics.FILES_ANSWERED,
        CoordinatedAnswerIssued(file_id=file_id, referent=referent, citizen=citizen, decisions=decisions, text=text),
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
            uow, await file_agencies(uow, event.file_id), domain.departement_of(citizen.postcode), None,
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
    previous, _ = await _referent(uow, previous_agent_id or file.referent_id)
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
    referent, _ = await _referent(uow, agent_id)
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
    """Load the versioned directory file when the directory is empty (all or nothing)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    async with uow:
        if await uow.conn.scalar(sa.select(sa.func.count()).select_from(agents)):
            return 0
        await uow.conn.execute(offices.insert(), data["offices"])
        await uow.conn.execute(
            agents.insert(), [{**a, "active_files": 0, "status": "actif"} for a in data["agents"]]
        )
        await uow.commit()
    return len(data["agents"])
