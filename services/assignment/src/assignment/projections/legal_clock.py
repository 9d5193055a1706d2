"""Projections of the legal-clock events of each agency request (docs/legal-deadlines.md).

- The clock starts when the agency's system acknowledges receipt, with the period (in
  months, or in days where the adapter declares days) and the rule the adapter declares
  (silence means acceptance, rejection, or nothing).
- A request for a missing document suspends it (the days left are kept); the document's
  arrival resumes it. When the agency asks again — the document was incomplete — the
  next arrival restarts the whole period.

Every date comes from `assignment.legal_deadline`; the warnings and the breach are issued
by the housekeeping (`assignment.commands.housekeeping`). What the adapter's reconciliation
last found (AgencyStatusChecked) is kept with the clock for the supervisors' view of the
requests without a decision (`assignment.stuck_requests`).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from assignment import legal_deadline
from assignment.domain import ClockStatus, RequestStatus
from assignment.legal_deadline import Period
from assignment.lifecycle import announce_clock, lock_clock
from assignment.tables import agency_requests, files, legal_clocks
from guichet_runtime.db import UnitOfWork, insert_ignore
from guichet_runtime.statements import param, params, prepared
from shared_models import (
    AgencyReceiptAcknowledged,
    AgencyStatusChecked,
    DeadlineRule,
    LegalClockResumed,
    LegalClockSuspended,
)

log = logging.getLogger(__name__)


def period_of(clock: sa.Row) -> Period:
    """The legal period a clock was declared with."""
    return Period(months=clock.period_months, days=clock.period_days)


async def on_receipt_acknowledged(event: AgencyReceiptAcknowledged, uow: UnitOfWork) -> None:
    async with uow:
        received = legal_deadline.paris_day(event.occurred_at)
        period = Period(months=event.deadline_months, days=event.deadline_days)
        timed = period.declared and event.deadline_rule is not DeadlineRule.NONE
        clock = {
            "request_id": event.request_id,
            "file_id": event.file_id,
            "agency": event.agency,
            "rule": event.deadline_rule.value,
            "period_months": event.deadline_months,
            "period_days": event.deadline_days,
            "received_on": received,
            "due_on": legal_deadline.last_day(received, period) if timed else None,
            "status": ClockStatus.RUNNING if timed else ClockStatus.NO_DEADLINE,
            "suspensions": 0,
            "warned_15": False,
            "warned_7": False,
            "breached": False,
        }
        found = (
            await uow.conn.execute(
                _file_and_request(), params(file_id=event.file_id, request_id=event.request_id)
            )
        ).first()
        if found is None:
            log.warning("receipt for unknown file %s ignored", event.file_id)
            await uow.commit()
            return
        # The answer and the receipt travel on two topics: an agency that answers at once
        # may be read answered before its receipt; its clock is then born stopped.
        if found.request_status == RequestStatus.ANSWERED:
            clock["status"] = ClockStatus.ANSWERED
        inserted = await uow.conn.execute(insert_ignore(uow.conn, legal_clocks), clock)
        if inserted.rowcount:
            # Announced even when born stopped: whether the answer came in time is measured
            # against this last day (docs/indicators.md).
            announce_clock(uow, clock, "reception")
        await uow.commit()


@prepared
def _file_and_request() -> sa.Select[Any]:
    """The file's id if assignment knows the file, with the request's status (None: not
    recorded), in one statement (`params(file_id=…, request_id=…)`)."""
    c = agency_requests.c
    status = sa.select(c.status).where(c.request_id == param(c.request_id)).scalar_subquery()
    return sa.select(files.c.file_id, status.label("request_status")).where(
        files.c.file_id == param(files.c.file_id)
    )


async def on_clock_suspended(event: LegalClockSuspended, uow: UnitOfWork) -> None:
    async with uow:
        clock = await lock_clock(uow, event.request_id)
        if clock is not None and clock.status == ClockStatus.RUNNING:
            day = legal_deadline.paris_day(event.occurred_at)
            changes = {
                "status": ClockStatus.SUSPENDED,
                "suspended_on": day,
                "due_on": None,
                "remaining_days": legal_deadline.days_kept_at_suspension(clock.due_on, day),
                "suspensions": clock.suspensions + 1,
            }
            await uow.conn.execute(
                legal_clocks.update()
                .where(legal_clocks.c.request_id == clock.request_id)
                .values(**changes)
            )
            announce_clock(uow, clock, "suspension", **changes)
        await uow.commit()


async def on_clock_resumed(event: LegalClockResumed, uow: UnitOfWork) -> None:
    async with uow:
        clock = await lock_clock(uow, event.request_id)
        if clock is not None and clock.status == ClockStatus.SUSPENDED:
            day = legal_deadline.paris_day(event.occurred_at)
            restart = clock.suspensions > 1  # asked again: the first document was incomplete
            due = (
                legal_deadline.deadline_after_restart(day, period_of(clock))
                if restart
                else legal_deadline.deadline_after_resumption(day, clock.remaining_days)
            )
            # Warnings whose day has not come yet are issued again for the new date.
            reached = legal_deadline.warnings_reached(due, day)
            changes = {
                "status": ClockStatus.RUNNING,
                "due_on": due,
                "suspended_on": None,
                "remaining_days": None,
                "warned_15": clock.warned_15 and 15 in reached,
                "warned_7": clock.warned_7 and 7 in reached,
            }
            await uow.conn.execute(
                legal_clocks.update()
                .where(legal_clocks.c.request_id == clock.request_id)
                .values(**changes)
            )
            announce_clock(uow, clock, "redemarrage" if restart else "reprise", **changes)
        await uow.commit()


async def on_status_checked(event: AgencyStatusChecked, uow: UnitOfWork) -> None:
    """What reconciliation last found about a request still without a decision (shown with
    the stuck requests); an older check read late changes nothing."""
    async with uow:
        clock = legal_clocks.c
        await uow.conn.execute(
            legal_clocks.update()
            .where(
                clock.request_id == event.request_id,
                sa.or_(clock.checked_at.is_(None), clock.checked_at < event.occurred_at),
            )
            .values(
                checked_at=event.occurred_at,
                check_finding=event.finding.value,
                checks=event.checks,
            )
        )
        await uow.commit()
