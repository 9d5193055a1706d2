"""The steps of a file's life that commands and projections share: start it with its
référent, hand it over, park it when nobody has room, compose the one coordinated answer
once every agency has answered; and the legal clock's row operations (lock, announce,
stop) shared by the clock's projections and the housekeeping."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from assignment import domain
from assignment.domain import AssignmentRule, ClockStatus, FileStatus, RequestStatus
from assignment.personal_columns import (
    answer_of,
    citizen_of,
    description_of,
    file_seal,
    personal_word_of,
)
from assignment.referents import referent_of, release_capacity
from assignment.tables import (
    agency_requests,
    assignments,
    file_row,
    files,
    legal_clocks,
    supervisors,
)
from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.statements import inserting, param, params, prepared, update_row
from shared_models import (
    AgencyDecision,
    AgencyRequestIssued,
    CoordinatedAnswerIssued,
    DeadlineRule,
    LegalDeadlineSet,
    ReferentAssigned,
    ReferentAssignmentDeferred,
    SupervisorContact,
    citizen_data_for,
    citizen_name,
    topics,
)

log = logging.getLogger(__name__)


async def start_file(uow: UnitOfWork, file: sa.Row, choice: domain.Choice) -> None:
    """The référent is named: record why, tell everyone, transmit to each agency."""
    now = utcnow()
    citizen = await citizen_of(uow, file)
    description = await description_of(uow, file)
    await update_row(
        uow.conn,
        files,
        {"file_id": file.file_id},
        {"status": FileStatus.OPEN, "referent_id": choice.agent_id},
    )
    await record_assignment(
        uow, file.file_id, choice.agent_id, choice.rule, choice.explanation, choice.considered
    )
    referent = await referent_of(uow, choice.agent_id)
    uow.emit(
        topics.REFERENTS_ASSIGNED,
        ReferentAssigned(
            file_id=file.file_id,
            referent=referent,
            rule=choice.rule,
            explanation=choice.explanation,
            citizen=citizen,
        ),
    )
    requests = []
    for agency in file.agencies:
        request_id = f"{file.file_id}-{agency}"
        requests.append(
            {
                "request_id": request_id,
                "file_id": file.file_id,
                "agency": agency,
                "status": RequestStatus.TRANSMITTED,
                "issued_at": now,
            }
        )
        uow.emit(
            topics.agency_requests(agency),
            AgencyRequestIssued(
                file_id=file.file_id,
                request_id=request_id,
                agency=agency,
                life_event=file.life_event,
                citizen=citizen_data_for(agency, citizen, description),
                urgent=file.urgent,
            ),
        )
    await uow.conn.execute(inserting(agency_requests), requests)


async def resume_file(
    uow: UnitOfWork, file: sa.Row, choice: domain.Choice, last_agent_id: str
) -> None:
    """A file already transmitted lost its référent (absence or departure when nobody
    had room): the new one takes it over, as a cover if the titular will come back; the
    agencies are not asked again."""
    previous = await referent_of(uow, last_agent_id)
    rule = AssignmentRule.COVER if file.titular_id else AssignmentRule.TAKEOVER
    reason = (
        f"{previous.name} est absent(e) ; votre dossier lui reviendra à son retour."
        if file.titular_id
        else f"{previous.name} a quitté son poste ; tout votre dossier a été transmis."
    )
    await update_row(
        uow.conn,
        files,
        {"file_id": file.file_id},
        {"status": FileStatus.OPEN, "referent_id": choice.agent_id},
    )
    await record_assignment(
        uow,
        file.file_id,
        choice.agent_id,
        rule,
        f"{reason} — {choice.explanation}",
        choice.considered,
    )
    referent = await referent_of(uow, choice.agent_id)
    uow.emit(
        topics.REFERENTS_ASSIGNED,
        ReferentAssigned(
            file_id=file.file_id,
            referent=referent,
            rule=rule,
            explanation=choice.explanation,
            citizen=await citizen_of(uow, file),
            previous_referent=previous,
            reason=reason,
        ),
    )


async def record_assignment(
    uow: UnitOfWork,
    file_id: str,
    agent_id: str,
    rule: AssignmentRule,
    explanation: str,
    considered: list[str],
) -> None:
    """A line of the file's history: who holds it and why (the explanation sealed with the
    file's key: it may quote the reason a citizen or a supervisor gave)."""
    seal = await file_seal(uow, file_id)
    await uow.conn.execute(
        inserting(assignments),
        {
            "file_id": file_id,
            "agent_id": agent_id,
            "rule": rule,
            "explanation": seal.seal(explanation),
            "considered": considered,
            "at": utcnow(),
        },
    )


@prepared
def _answers_of_file() -> sa.Select[Any]:
    c = agency_requests.c
    return sa.select(c.status, c.answer, c.agency).where(c.file_id == param(c.file_id))


async def compose_if_complete(
    uow: UnitOfWork, file_id: str, file: sa.Row[Any] | None = None
) -> bool:
    """Once every agency has answered and the file has a référent to sign it: the one
    coordinated answer. A file waiting for a référent gets its answer when it has one.
    `file`: its row, read (locked) in this transaction by the caller and not changed since."""
    if file is None:
        file = (await uow.conn.execute(file_row(), params(file_id=file_id))).one()
    if file.status != FileStatus.OPEN or file.referent_id is None:
        return False
    answers = (await uow.conn.execute(_answers_of_file(), params(file_id=file_id))).all()
    if not answers or any(r.status != RequestStatus.ANSWERED for r in answers):
        return False
    decisions = [
        AgencyDecision.model_validate(await answer_of(uow, file_id, r.answer, r.agency))
        for r in answers
    ]
    citizen = await citizen_of(uow, file)
    referent = await referent_of(uow, file.referent_id)
    # The word is personal: it leaves only under the name of the agent who wrote it (a
    # référent who took the file over writes their own).
    word = (
        await personal_word_of(uow, file)
        if file.personal_word_agent_id == file.referent_id
        else None
    )
    text = domain.compose_answer(file_id, file.life_event_label, citizen, decisions, referent, word)
    await update_row(
        uow.conn,
        files,
        {"file_id": file_id},
        {"status": FileStatus.ANSWERED, "answered_at": utcnow()},
    )
    await release_capacity(uow, file.referent_id)
    uow.emit(
        topics.FILES_ANSWERED,
        CoordinatedAnswerIssued(
            file_id=file_id,
            referent=referent,
            citizen=citizen,
            decisions=decisions,
            text=text,
            personal_word=word,
        ),
    )
    return True


_KEEP = object()


async def move_file(
    uow: UnitOfWork,
    file: sa.Row,
    agent_id: str,
    rule: AssignmentRule,
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
    previous = await referent_of(uow, previous_agent_id or file.referent_id)
    await release_capacity(uow, file.referent_id)
    values: dict[str, object] = {"referent_id": agent_id, "status": FileStatus.OPEN}
    if titular_id is not _KEEP:
        values["titular_id"] = titular_id
    await update_row(uow.conn, files, {"file_id": file.file_id}, values)
    await record_assignment(uow, file.file_id, agent_id, rule, explanation, considered)
    referent = await referent_of(uow, agent_id)
    uow.emit(
        topics.REFERENTS_ASSIGNED,
        ReferentAssigned(
            file_id=file.file_id,
            referent=referent,
            rule=rule,
            explanation=unquoted(explanation, reason),
            citizen=await citizen_of(uow, file),
            previous_referent=previous,
            reason=reason,
        ),
    )


def unquoted(explanation: str, reason: str) -> str:
    """The explanation as the event carries it in clear: without the reason it may quote
    (the citizen's or a supervisor's words travel sealed, in the event's `reason`)."""
    return explanation.removeprefix(f"Motif : {reason} — ")


async def file_agencies(uow: UnitOfWork, file_id: str) -> list[str]:
    return list(
        (
            await uow.conn.scalars(
                sa.select(agency_requests.c.agency).where(agency_requests.c.file_id == file_id)
            )
        ).all()
    )


async def supervisors_of(uow: UnitOfWork, departement: str) -> list[SupervisorContact]:
    """Who to alert about a file of this département: its supervisors, else all of them."""
    rows = (
        await uow.conn.execute(sa.select(supervisors).order_by(supervisors.c.supervisor_id))
    ).all()
    mine = [r for r in rows if departement in r.departements] or rows
    return [
        SupervisorContact(supervisor_id=r.supervisor_id, name=r.name, email=r.email, phone=r.phone)
        for r in mine
    ]


async def announce_waiting(uow: UnitOfWork, file: sa.Row, reason: str) -> None:
    """The file waits for a référent: its supervisors are alerted (through the outbox)."""
    citizen = await citizen_of(uow, file)
    departement = domain.departement_of(citizen.postcode)
    log.warning("file %s waits for a référent: %s", file.file_id, reason)
    uow.emit(
        topics.FILES_AWAITING_REFERENT,
        ReferentAssignmentDeferred(
            file_id=file.file_id,
            departement=departement,
            urgent=file.urgent,
            life_event_label=file.life_event_label,
            reason=reason,
            citizen=citizen_name(citizen),
            supervisors=await supervisors_of(uow, departement),
        ),
    )


async def park_file(uow: UnitOfWork, file: sa.Row, titular_id: str | None, reason: str) -> None:
    """Nobody has room: the file waits, visibly, until capacity frees (assign_waiting);
    it is never dropped, supervisors are alerted, and a titular's file still goes back
    to them on return."""
    await uow.conn.execute(
        files.update()
        .where(files.c.file_id == file.file_id)
        .values(status=FileStatus.AWAITING_REFERENT, referent_id=None, titular_id=titular_id)
    )
    await release_capacity(uow, file.referent_id)
    await announce_waiting(uow, file, reason)


async def lock_clock(uow: UnitOfWork, request_id: str) -> sa.Row | None:
    """The legal clock of an agency request, locked until commit (None if none yet)."""
    return (
        await uow.conn.execute(
            sa.select(legal_clocks).where(legal_clocks.c.request_id == request_id).with_for_update()
        )
    ).first()


#: The states of a clock as `LegalDeadlineSet` announces them.
_ANNOUNCED = (ClockStatus.RUNNING, ClockStatus.SUSPENDED, ClockStatus.ANSWERED)


def announce_clock(uow: UnitOfWork, clock: sa.Row | dict, why: str, **changes: object) -> None:
    """Tell everyone a clock's last day (or its suspension) and why it changed."""
    row = {**(clock._asdict() if isinstance(clock, sa.Row) else clock), **changes}
    status = ClockStatus(row["status"])
    state = (status if status in _ANNOUNCED else ClockStatus.NO_DEADLINE).value
    uow.emit(
        topics.DEADLINES,
        LegalDeadlineSet(
            file_id=row["file_id"],
            request_id=row["request_id"],
            agency=row["agency"],
            rule=DeadlineRule(row["rule"]),
            due_on=row["due_on"],
            state=state,
            why=why,
        ),
    )


async def stop_clock(uow: UnitOfWork, request_id: str) -> None:
    """The agency answered: its clock stops (called in the answer's transaction)."""
    await uow.conn.execute(_stop_clock(), params(request_id=request_id))


@prepared
def _stop_clock() -> sa.Update:
    c = legal_clocks.c
    return (
        legal_clocks.update()
        .where(
            c.request_id == param(c.request_id),
            # Written out, not an IN: SQLAlchemy renders an IN list again at each execution.
            sa.or_(c.status == ClockStatus.RUNNING, c.status == ClockStatus.SUSPENDED),
        )
        .values(status=ClockStatus.ANSWERED)
    )
