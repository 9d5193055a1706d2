"""The legal clock of each agency request (rules written down in docs/legal-deadlines.md).

- It starts when the agency's system acknowledges receipt, with the period and the rule
  the agency's adapter declares (silence means acceptance, rejection, or nothing).
- Calendar days, Europe/Paris: the last day to answer is the receipt day + the period.
- A request for a missing document suspends it (the days left are kept); the document's
  arrival resumes it. When the agency asks again — the document was incomplete — the
  next arrival restarts the whole period.
- The référent is warned 15 and 7 days before; at the breach (the day after the last
  day) supervisors are warned and, where silence decides, the implicit decision is
  recorded as the agency's answer and the citizen receives a letter saying so.

Durable: nothing sleeps in memory. The housekeeping worker of any replica, after any
restart, scans the running clocks by due date; each warning is a flag written in the
same transaction as its outbox event, so each is issued exactly once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import sqlalchemy as sa

from guichet_runtime.clock import paris_day
from guichet_runtime.db import UnitOfWork, insert_ignore, utcnow
from shared_models import (
    AgencyDecision,
    AgencyReceiptAcknowledged,
    CitizenContact,
    Decision,
    DeadlineRule,
    ImplicitDecisionRecorded,
    LegalClockResumed,
    LegalClockSuspended,
    DeadlineWarningIssued,
    LegalDeadlineBreached,
    LegalDeadlineSet,
    AGENCY_LABELS,
    topics,
)
from assignment import domain
from assignment.tables import agency_requests, files, legal_clocks

log = logging.getLogger(__name__)
WARNINGS = (15, 7)


def _announce(uow: UnitOfWork, clock: sa.Row | dict, why: str, **changes: object) -> None:
    row = {**(clock._asdict() if isinstance(clock, sa.Row) else clock), **changes}
    state = row["status"] if row["status"] in ("en_cours", "suspendu", "repondu") else "sans_delai"
    uow.emit(
        topics.DEADLINES,
        LegalDeadlineSet(
            file_id=row["file_id"], request_id=row["request_id"], agency=row["agency"],
            rule=DeadlineRule(row["rule"]), due_on=row["due_on"], state=state, why=why,
        ),
    )


async def on_receipt_acknowledged(event: AgencyReceiptAcknowledged, uow: UnitOfWork) -> None:
    async with uow:
        received = paris_day(event.occurred_at)
        timed = event.deadline_days is not None and event.deadline_rule is not DeadlineRule.NONE
        clock = {
            "request_id": event.request_id, "file_id": event.file_id, "agency": event.agency,
            "rule": event.deadline_rule.value, "period_days": event.deadline_days, "received_on": received,
            "due_on": received + dt.timedelta(days=event.deadline_days) if timed else None,
            "status": "en_cours" if timed else "sans_delai", "suspensions": 0,
            "warned_15": False, "warned_7": False, "breached": False,
        }
        known = await uow.conn.scalar(sa.select(files.c.file_id).where(files.c.file_id == event.file_id))
        if known is None:
            log.warning("receipt for unknown file %s ignored", event.file_id)
            await uow.commit()
            return
        # The answer and the receipt travel on two topics: an agency that answers at once
        # may be read answered before its receipt; its clock is then born stopped.
        request_status = await uow.conn.scalar(
            sa.select(agency_requests.c.status).where(agency_requests.c.request_id == event.request_id)
        )
        if request_status == "repondue":
            clock["status"] = "repondu"
        inserted = await uow.conn.execute(insert_ignore(uow.conn, legal_clocks).values(**clock))
        if inserted.rowcount:
            # Announced even when born stopped: whether the answer came in time is measured
            # against this last day (docs/indicators.md).
            _announce(uow, clock, "reception")
        await uow.commit()


async def _locked(uow: UnitOfWork, request_id: str) -> sa.Row | None:
    return (
        await uow.conn.execute(sa.select(legal_clocks).where(legal_clocks.c.request_id == request_id).with_for_update())
    ).first()


async def on_clock_suspended(event: LegalClockSuspended, uow: UnitOfWork) -> None:
    async with uow:
        clock = await _locked(uow, event.request_id)
        if clock is not None and clock.status == "en_cours":
            day = paris_day(event.occurred_at)
            changes = {
                "status": "suspendu", "suspended_on": day, "due_on": None,
                "remaining_days": max((clock.due_on - day).days, 0), "suspensions": clock.suspensions + 1,
            }
            await uow.conn.execute(legal_clocks.update().where(legal_clocks.c.request_id == clock.request_id).values(**changes))
            _announce(uow, clock, "suspension", **changes)
        await uow.commit()


async def on_clock_resumed(event: LegalClockResumed, uow: UnitOfWork) -> None:
    async with uow:
        clock = await _locked(uow, event.request_id)
        if clock is not None and clock.status == "suspendu":
            day = paris_day(event.occurred_at)
            restart = clock.suspensions > 1  # asked again: the first document was incomplete
            due = day + dt.timedelta(days=clock.period_days if restart else clock.remaining_days)
            changes = {
                "status": "en_cours", "due_on": due, "suspended_on": None, "remaining_days": None,
                # warnings whose day has not come yet are issued again for the new date
                "warned_15": clock.warned_15 and (due - day).days <= 15,
                "warned_7": clock.warned_7 and (due - day).days <= 7,
            }
            await uow.conn.execute(legal_clocks.update().where(legal_clocks.c.request_id == clock.request_id).values(**changes))
            _announce(uow, clock, "redemarrage" if restart else "reprise", **changes)
        await uow.commit()


async def answered(uow: UnitOfWork, request_id: str) -> None:
    """The agency answered: its clock stops (called in the answer's transaction)."""
    await uow.conn.execute(
        legal_clocks.update()
        .where(legal_clocks.c.request_id == request_id, legal_clocks.c.status.in_(("en_cours", "suspendu")))
        .values(status="repondu")
    )


async def tick(uow_factory: Callable[[], UnitOfWork], today: dt.date, limit: int = 200) -> int:
    """Issue the warnings and breaches due by `today`; one transaction per clock."""
    horizon = today + dt.timedelta(days=max(WARNINGS))
    async with uow_factory() as uow:
        due = (
            await uow.conn.scalars(
                sa.select(legal_clocks.c.request_id)
                .where(legal_clocks.c.status == "en_cours", legal_clocks.c.due_on <= horizon)
                .order_by(legal_clocks.c.due_on)
                .limit(limit)
            )
        ).all()
    issued = 0
    for request_id in due:
        async with uow_factory() as uow:
            issued += await _advance(uow, request_id, today)
            await uow.commit()
    return issued


async def _advance(uow: UnitOfWork, request_id: str, today: dt.date) -> int:
    from assignment.handlers import _referent, compose_if_complete, supervisors_of

    clock = await _locked(uow, request_id)
    if clock is None or clock.status != "en_cours" or clock.due_on is None:
        return 0
    file = (await uow.conn.execute(sa.select(files).where(files.c.file_id == clock.file_id))).one()
    if file.referent_id is None:
        return 0  # waits for a référent to sign; housekeeping comes back
    referent = await _referent(uow, file.referent_id)
    citizen = CitizenContact.model_validate(file.citizen)
    agency = clock.agency
    days_left = (clock.due_on - today).days
    if days_left < 0:
        await uow.conn.execute(
            legal_clocks.update().where(legal_clocks.c.request_id == request_id)
            .values(status="echu", breached=True, warned_15=True, warned_7=True)
        )
        uow.emit(topics.DEADLINES, LegalDeadlineBreached(
            file_id=clock.file_id, request_id=request_id, agency=agency, due_on=clock.due_on,
            rule=DeadlineRule(clock.rule), referent=referent, citizen=citizen,
            supervisors=await supervisors_of(uow, domain.departement_of(citizen.postcode)),
        ))
        rule = DeadlineRule(clock.rule)
        if rule is not DeadlineRule.NONE:
            await _implicit_decision(uow, clock, rule, agency, today, referent, citizen)
            await compose_if_complete(uow, clock.file_id)
        return 1
    pending = [t for t in WARNINGS if days_left <= t and not getattr(clock, f"warned_{t}")]
    if not pending:
        return 0
    # After a downtime several may be due: only the nearest is issued, all are marked.
    threshold = min(pending)
    await uow.conn.execute(
        legal_clocks.update().where(legal_clocks.c.request_id == request_id)
        .values(**{f"warned_{t}": True for t in WARNINGS if t >= threshold})
    )
    uow.emit(topics.DEADLINES, DeadlineWarningIssued(
        file_id=clock.file_id, request_id=request_id, agency=agency, due_on=clock.due_on,
        days_left=days_left, threshold=threshold, rule=DeadlineRule(clock.rule), referent=referent,
        citizen=citizen,
    ))
    return 1


async def _implicit_decision(uow, clock, rule, agency, today, referent, citizen) -> None:
    accepted = rule is DeadlineRule.SILENCE_ACCEPTS
    decision = Decision.IMPLICIT_ACCEPTANCE if accepted else Decision.IMPLICIT_REJECTION
    label = AGENCY_LABELS[agency]
    answer = AgencyDecision(
        agency=agency,
        decision=decision,
        summary=(
            f"Sans réponse de {label} au {clock.due_on:%d/%m/%Y}, votre demande est acceptée : "
            "le silence de l'administration vaut acceptation"
            if accepted else
            f"Sans réponse de {label} au {clock.due_on:%d/%m/%Y}, votre demande est rejetée : "
            "le silence de l'administration vaut rejet"
        ),
        reason=None if accepted else "Décision implicite de rejet (silence gardé pendant le délai légal).",
        agency_reference=f"implicite-{clock.request_id}",
    )
    await uow.conn.execute(
        agency_requests.update()
        .where(agency_requests.c.request_id == clock.request_id, agency_requests.c.status != "repondue")
        .values(status="repondue", answer=answer.model_dump(mode="json"), answered_at=utcnow())
    )
    uow.emit(topics.DEADLINES, ImplicitDecisionRecorded(
        file_id=clock.file_id, request_id=clock.request_id, agency=agency, decision=decision,
        due_on=clock.due_on, decided_on=today, referent=referent, citizen=citizen,
    ))
