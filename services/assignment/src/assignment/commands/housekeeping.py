"""What the housekeeping worker does each round, on the date of the service's clock:
give référents to waiting files as capacity frees up, issue the legal clocks' warnings
(J-15, J-7), breaches and implicit decisions, and keep the answer-time promise of the
citizens' messages (a reminder on its last day, the supervisors alerted once it lapsed).

Durable: nothing sleeps in memory. Any replica, after any restart, scans the database;
each warning is a flag written in the same transaction as its outbox event, so each is
issued exactly once. (Absences starting and ending: `commands.directory.apply_due_absences`.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from assignment import domain, legal_deadline
from assignment.domain import ClockStatus, FileStatus, RequestStatus
from assignment.lifecycle import (
    compose_if_complete,
    lock_clock,
    resume_file,
    start_file,
    supervisors_of,
)
from assignment.personal_columns import citizen_of, file_seal
from assignment.referents import choose_for_file, referent_of
from assignment.tables import (
    agency_requests,
    assignments,
    citizen_messages,
    files,
    legal_clocks,
)
from guichet_runtime.db import UnitOfWork, utcnow
from shared_models import (
    AGENCY_LABELS,
    AgencyDecision,
    CitizenContact,
    CitizenMessageEscalated,
    CitizenMessageReminderIssued,
    DeadlineRule,
    DeadlineWarningIssued,
    Decision,
    ImplicitDecisionRecorded,
    LegalDeadlineBreached,
    Referent,
    citizen_name,
    topics,
)


async def assign_waiting(uow: UnitOfWork, limit: int = 50) -> int:
    """Give référents to waiting files, urgent first then oldest, as capacity frees up."""
    async with uow:
        waiting = (
            await uow.conn.execute(
                sa.select(files)
                .where(files.c.status == FileStatus.AWAITING_REFERENT)
                .order_by(files.c.urgent.desc(), files.c.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        started = 0
        for file in waiting:
            choice = await choose_for_file(uow, file)
            if choice is None:
                continue
            last = await uow.conn.scalar(
                sa.select(assignments.c.agent_id)
                .where(assignments.c.file_id == file.file_id)
                .order_by(assignments.c.id.desc())
                .limit(1)
            )
            if last is None:
                await start_file(uow, file, choice)
            else:
                await resume_file(uow, file, choice, file.titular_id or last)
                await compose_if_complete(uow, file.file_id)
            started += 1
        await uow.commit()
    return started


async def tick_legal_clocks(
    uow_factory: Callable[[], UnitOfWork], today: dt.date, limit: int = 200
) -> int:
    """Issue the warnings and breaches due by `today`; one transaction per clock."""
    horizon = today + dt.timedelta(days=max(legal_deadline.WARNING_DAYS))
    due = (
        sa.select(legal_clocks.c.request_id)
        .where(legal_clocks.c.status == ClockStatus.RUNNING, legal_clocks.c.due_on <= horizon)
        .order_by(legal_clocks.c.due_on)
        .limit(limit)
    )
    return await _one_transaction_each(uow_factory, due, lambda uow, rid: _advance(uow, rid, today))


async def _one_transaction_each(
    uow_factory: Callable[[], UnitOfWork],
    due: sa.Select,
    step: Callable[[UnitOfWork, str], Awaitable[int]],
) -> int:
    """The ids `due` selects, then `step` on each in a transaction of its own (a failure
    leaves the others issued); returns how many events the steps issued."""
    async with uow_factory() as uow:
        ids = (await uow.conn.scalars(due)).all()
    issued = 0
    for id_ in ids:
        async with uow_factory() as uow:
            issued += await step(uow, id_)
            await uow.commit()
    return issued


async def _advance(uow: UnitOfWork, request_id: str, today: dt.date) -> int:
    """One clock on `today`: its breach, else the nearest warning not issued yet."""
    clock = await lock_clock(uow, request_id)
    if clock is None or clock.status != ClockStatus.RUNNING or clock.due_on is None:
        return 0
    file = (await uow.conn.execute(sa.select(files).where(files.c.file_id == clock.file_id))).one()
    if file.referent_id is None:
        return 0  # waits for a référent to sign; housekeeping comes back
    referent = await referent_of(uow, file.referent_id)
    citizen = await citizen_of(uow, file)
    agency = clock.agency
    rule = DeadlineRule(clock.rule)
    if legal_deadline.is_breached(clock.due_on, today):
        await uow.conn.execute(
            legal_clocks.update()
            .where(legal_clocks.c.request_id == request_id)
            .values(status=ClockStatus.BREACHED, breached=True, warned_15=True, warned_7=True)
        )
        uow.emit(
            topics.DEADLINES,
            LegalDeadlineBreached(
                file_id=clock.file_id,
                request_id=request_id,
                agency=agency,
                due_on=clock.due_on,
                rule=rule,
                referent=referent,
                citizen=citizen_name(citizen),
                supervisors=await supervisors_of(uow, domain.departement_of(citizen.postcode)),
            ),
        )
        if rule is not DeadlineRule.NONE:
            await _implicit_decision(uow, clock, rule, today, referent, citizen)
            await compose_if_complete(uow, clock.file_id)
        return 1
    reached = legal_deadline.warnings_reached(clock.due_on, today)
    pending = [t for t in reached if not getattr(clock, f"warned_{t}")]
    if not pending:
        return 0
    # After a downtime several may be due: only the nearest is issued, all are marked.
    threshold = min(pending)
    await uow.conn.execute(
        legal_clocks.update()
        .where(legal_clocks.c.request_id == request_id)
        .values(**{f"warned_{t}": True for t in legal_deadline.WARNING_DAYS if t >= threshold})
    )
    uow.emit(
        topics.DEADLINES,
        DeadlineWarningIssued(
            file_id=clock.file_id,
            request_id=request_id,
            agency=agency,
            due_on=clock.due_on,
            days_left=legal_deadline.days_left(clock.due_on, today),
            threshold=threshold,
            rule=rule,
            referent=referent,
            citizen=citizen_name(citizen),
        ),
    )
    return 1


async def _implicit_decision(
    uow: UnitOfWork,
    clock: sa.Row,
    rule: DeadlineRule,
    today: dt.date,
    referent: Referent,
    citizen: CitizenContact,
) -> None:
    """The agency's silence is its answer: recorded as such, and the citizen told."""
    agency = clock.agency
    accepted = rule is DeadlineRule.SILENCE_ACCEPTS
    decision = Decision.IMPLICIT_ACCEPTANCE if accepted else Decision.IMPLICIT_REJECTION
    label = AGENCY_LABELS[agency]
    answer = AgencyDecision(
        agency=agency,
        decision=decision,
        summary=(
            f"Sans réponse de {label} au {clock.due_on:%d/%m/%Y}, votre demande est acceptée : "
            "le silence de l'administration vaut acceptation"
            if accepted
            else f"Sans réponse de {label} au {clock.due_on:%d/%m/%Y}, votre demande est rejetée : "
            "le silence de l'administration vaut rejet"
        ),
        reason=(
            None
            if accepted
            else "Décision implicite de rejet (silence gardé pendant le délai légal)."
        ),
        agency_reference=f"implicite-{clock.request_id}",
    )
    await uow.conn.execute(
        agency_requests.update()
        .where(
            agency_requests.c.request_id == clock.request_id,
            agency_requests.c.status != RequestStatus.ANSWERED,
        )
        .values(
            status=RequestStatus.ANSWERED,
            answer=(await file_seal(uow, clock.file_id)).seal(answer.model_dump(mode="json")),
            answered_at=utcnow(),
        )
    )
    uow.emit(
        topics.DEADLINES,
        ImplicitDecisionRecorded(
            file_id=clock.file_id,
            request_id=clock.request_id,
            agency=agency,
            decision=decision,
            due_on=clock.due_on,
            decided_on=today,
            referent=referent,
            citizen=citizen,
        ),
    )


# --------------------------------------------------------------- the answer-time promise


async def tick_message_promises(
    uow_factory: Callable[[], UnitOfWork], now: dt.datetime, limit: int = 200
) -> int:
    """Remind the answerer of each unanswered message whose promise reached its last day,
    and alert the supervisors of each whose promise lapsed; one transaction per message,
    each flag written with its outbox event, so each is issued once."""
    m = citizen_messages.c
    due = (
        sa.select(m.message_id)
        .where(
            m.answered_at.is_(None),
            m.escalated_at.is_(None),
            m.answer_due_at.is_not(None),
            sa.or_(
                m.answer_due_at <= now,
                sa.and_(m.reminded_at.is_(None), m.remind_at <= now),
            ),
        )
        .order_by(m.answer_due_at)
        .limit(limit)
    )
    return await _one_transaction_each(
        uow_factory, due, lambda uow, mid: _keep_promise(uow, mid, now)
    )


async def _keep_promise(uow: UnitOfWork, message_id: str, now: dt.datetime) -> int:
    """One message at `now`: the supervisors alerted if its promise lapsed, else its
    answerer reminded. The flag is set by a guarded update: of two replicas, one issues."""
    m = citizen_messages.c
    message = (
        await uow.conn.execute(sa.select(citizen_messages).where(m.message_id == message_id))
    ).one()
    file = (
        await uow.conn.execute(sa.select(files).where(files.c.file_id == message.file_id))
    ).one()
    answerer = await referent_of(uow, file.referent_id or message.addressed_to)
    citizen = await citizen_of(uow, file)
    if domain.promise_lapsed(message.answer_due_at, now):
        claimed = await uow.conn.execute(
            citizen_messages.update()
            .where(m.message_id == message_id, m.escalated_at.is_(None), m.answered_at.is_(None))
            .values(escalated_at=now, reminded_at=sa.func.coalesce(m.reminded_at, now))
        )
        if claimed.rowcount != 1:
            return 0
        uow.emit(
            topics.DEADLINES,
            CitizenMessageEscalated(
                file_id=message.file_id,
                message_id=message_id,
                received_at=message.received_at,
                answer_due_at=message.answer_due_at,
                referent=answerer,
                citizen=citizen_name(citizen),
                supervisors=await supervisors_of(uow, domain.departement_of(citizen.postcode)),
            ),
        )
        return 1
    claimed = await uow.conn.execute(
        citizen_messages.update()
        .where(m.message_id == message_id, m.reminded_at.is_(None), m.answered_at.is_(None))
        .values(reminded_at=now)
    )
    if claimed.rowcount != 1:
        return 0
    uow.emit(
        topics.DEADLINES,
        CitizenMessageReminderIssued(
            file_id=message.file_id,
            message_id=message_id,
            received_at=message.received_at,
            answer_due_at=message.answer_due_at,
            referent=answerer,
            citizen=citizen_name(citizen),
        ),
    )
    return 1
