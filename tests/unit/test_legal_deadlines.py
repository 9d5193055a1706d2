"""The legal clock of each agency request, on the assignment service's real SQLite
database and a controllable date: warnings at J-15 and J-7, the breach, implicit
decisions, suspension and restart — each issued once."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from assignment.commands import directory_import, housekeeping
from assignment.projections import files as assignment
from assignment.projections import legal_clock
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.clock import Clock
from shared_models import (
    AgencyAnswerReceived,
    AgencyReceiptAcknowledged,
    CoordinatedAnswerIssued,
    DeadlineRule,
    DeadlineWarningIssued,
    Decision,
    ImplicitDecisionRecorded,
    LegalClockResumed,
    LegalClockSuspended,
    LegalDeadlineBreached,
    LegalDeadlineSet,
    RequestedDocument,
)
from tests.unit.samples import decision, file_submitted

RECEIVED = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)  # 1 December in Paris
FILE = "GU-2026-CLOCK001"


def at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(10, 0), tzinfo=dt.UTC)


@pytest.fixture
async def db(assignment_db):
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    event = file_submitted(FILE, agencies=("caf", "cpam"))
    await assignment.on_file_submitted(
        event, assignment_db.uow(("assignment", str(event.event_id)))
    )
    return assignment_db


async def handle(db, handler, event) -> None:
    await handler(event, db.uow(("assignment", str(event.event_id))))


async def receipt(
    db,
    agency: str,
    rule: DeadlineRule,
    days: int | None,
    when: dt.datetime = RECEIVED,
    months: int | None = None,
    file_id: str = FILE,
) -> None:
    await handle(
        db,
        legal_clock.on_receipt_acknowledged,
        AgencyReceiptAcknowledged(
            file_id=file_id,
            request_id=f"{file_id}-{agency}",
            agency=agency,
            agency_reference="REF-1",
            deadline_rule=rule,
            deadline_days=days,
            deadline_months=months,
            occurred_at=when,
        ),
    )


async def deadline_events(db) -> list:
    kinds = (
        LegalDeadlineSet,
        DeadlineWarningIssued,
        LegalDeadlineBreached,
        ImplicitDecisionRecorded,
        CoordinatedAnswerIssued,
    )
    return [e for _, e in await db.outbox_events() if isinstance(e, kinds)]


async def tick(db, day: dt.date) -> int:
    return await housekeeping.tick_legal_clocks(db.uow, day)


async def test_receipt_sets_the_last_day_in_paris_calendar_days(db):
    await receipt(db, "caf", DeadlineRule.SILENCE_ACCEPTS, 60)

    [clock] = await db.rows("legal_clocks")
    assert (clock.received_on, clock.due_on, clock.status) == (
        dt.date(2026, 12, 1),
        dt.date(2027, 1, 30),
        "en_cours",
    )
    [announced] = await deadline_events(db)
    assert isinstance(announced, LegalDeadlineSet)
    assert (announced.due_on, announced.state, announced.why) == (
        dt.date(2027, 1, 30),
        "en_cours",
        "reception",
    )


async def test_two_months_from_31_december_end_on_28_february(db):
    """CAF, DGFiP and France Travail declare two months (CRPA L231-1), counted date to date."""
    await receipt(
        db, "caf", DeadlineRule.SILENCE_ACCEPTS, None, at(dt.date(2026, 12, 31)), months=2
    )

    [clock] = await db.rows("legal_clocks")
    assert (clock.received_on, clock.period_months, clock.period_days) == (
        dt.date(2026, 12, 31),
        2,
        None,
    )
    assert (clock.due_on, clock.status) == (dt.date(2027, 2, 28), "en_cours")
    [announced] = await deadline_events(db)
    assert (announced.due_on, announced.state, announced.why) == (
        dt.date(2027, 2, 28),
        "en_cours",
        "reception",
    )


async def test_a_two_month_clock_warns_at_j15_and_j7_and_breaches_on_1_march(db):
    await receipt(
        db, "caf", DeadlineRule.SILENCE_ACCEPTS, None, at(dt.date(2026, 12, 31)), months=2
    )
    await handle(
        db,
        assignment.on_agency_answer,
        AgencyAnswerReceived(
            file_id=FILE,
            request_id=f"{FILE}-cpam",
            answer=decision("cpam"),
        ),
    )

    for day in (
        dt.date(2027, 2, 12),
        dt.date(2027, 2, 13),
        dt.date(2027, 2, 20),
        dt.date(2027, 2, 21),
        dt.date(2027, 2, 28),
    ):
        await tick(db, day)
    warnings = [e for e in await deadline_events(db) if isinstance(e, DeadlineWarningIssued)]
    assert [(e.threshold, e.days_left, e.due_on) for e in warnings] == [
        (15, 15, dt.date(2027, 2, 28)),
        (7, 7, dt.date(2027, 2, 28)),
    ]
    assert not [e for e in await deadline_events(db) if isinstance(e, LegalDeadlineBreached)]

    await tick(db, dt.date(2027, 3, 1))
    [implicit] = [e for e in await deadline_events(db) if isinstance(e, ImplicitDecisionRecorded)]
    assert (implicit.due_on, implicit.decided_on) == (dt.date(2027, 2, 28), dt.date(2027, 3, 1))


DOCUMENT = RequestedDocument(code="attestation_salaire", label="Attestation de salaire")


async def suspend(db, agency: str, day: dt.date) -> None:
    """The agency asked for the salary certificate on `day`: its clock stops."""
    event = LegalClockSuspended(
        file_id=FILE,
        request_id=f"{FILE}-{agency}",
        agency=agency,
        document=DOCUMENT,
        occurred_at=at(day),
    )
    await handle(db, legal_clock.on_clock_suspended, event)


async def resume(db, agency: str, day: dt.date) -> None:
    """The certificate reached the agency on `day`: its clock runs again."""
    event = LegalClockResumed(
        file_id=FILE,
        request_id=f"{FILE}-{agency}",
        agency=agency,
        document_code=DOCUMENT.code,
        occurred_at=at(day),
    )
    await handle(db, legal_clock.on_clock_resumed, event)


async def test_a_two_month_clock_suspended_across_a_month_end_then_restarted_in_months(db):
    await receipt(db, "caf", DeadlineRule.SILENCE_ACCEPTS, None, at(dt.date(2027, 1, 10)), months=2)

    async def suspended(day: dt.date) -> None:
        await suspend(db, "caf", day)

    async def resumed(day: dt.date) -> None:
        await resume(db, "caf", day)

    await suspended(dt.date(2027, 1, 25))  # due 10 March: 44 days left
    [clock] = await db.rows("legal_clocks")
    assert (clock.status, clock.remaining_days) == ("suspendu", 44)
    await resumed(dt.date(2027, 2, 3))
    [clock] = await db.rows("legal_clocks")
    assert clock.due_on == dt.date(2027, 3, 19)  # the 44 days, from 3 February

    await suspended(dt.date(2027, 2, 10))  # asked again: the document was incomplete
    await resumed(dt.date(2027, 2, 15))
    [clock] = await db.rows("legal_clocks")
    assert clock.due_on == dt.date(2027, 4, 15)  # two whole months from the restart day

    sets = [
        (e.state, e.why, e.due_on)
        for e in await deadline_events(db)
        if isinstance(e, LegalDeadlineSet)
    ]
    assert sets == [
        ("en_cours", "reception", dt.date(2027, 3, 10)),
        ("suspendu", "suspension", None),
        ("en_cours", "reprise", dt.date(2027, 3, 19)),
        ("suspendu", "suspension", None),
        ("en_cours", "redemarrage", dt.date(2027, 4, 15)),
    ]


async def test_late_evening_utc_is_already_the_next_day_in_paris(db):
    await receipt(
        db,
        "caf",
        DeadlineRule.SILENCE_ACCEPTS,
        30,
        dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC),
    )

    [clock] = await db.rows("legal_clocks")
    assert clock.received_on == dt.date(2026, 12, 1)


async def test_warnings_at_j15_and_j7_then_acceptance_by_silence_each_exactly_once(db):
    await receipt(db, "caf", DeadlineRule.SILENCE_ACCEPTS, 30)  # last day: 31 December
    await handle(
        db,
        assignment.on_agency_answer,
        AgencyAnswerReceived(
            file_id=FILE,
            request_id=f"{FILE}-cpam",
            answer=decision("cpam"),
        ),
    )
    last_day = dt.date(2026, 12, 31)

    for day in (
        dt.date(2026, 12, 15),
        last_day - dt.timedelta(days=15),
        last_day - dt.timedelta(days=15),
        dt.date(2026, 12, 20),
        last_day - dt.timedelta(days=7),
        dt.date(2026, 12, 28),
        last_day,
    ):
        await tick(db, day)
    events = [e for e in await deadline_events(db) if not isinstance(e, LegalDeadlineSet)]
    assert [(type(e).__name__, e.threshold, e.days_left) for e in events] == [
        ("DeadlineWarningIssued", 15, 15),
        ("DeadlineWarningIssued", 7, 7),
    ]
    assert events[0].referent.name and events[0].agency == "caf"

    await tick(db, last_day + dt.timedelta(days=1))
    await tick(db, last_day + dt.timedelta(days=2))

    events = [
        e
        for e in await deadline_events(db)
        if not isinstance(e, (LegalDeadlineSet, DeadlineWarningIssued))
    ]
    breached, implicit, answer = events
    assert isinstance(breached, LegalDeadlineBreached) and breached.supervisors
    assert isinstance(implicit, ImplicitDecisionRecorded)
    assert (implicit.decision, implicit.due_on, implicit.decided_on) == (
        Decision.IMPLICIT_ACCEPTANCE,
        last_day,
        dt.date(2027, 1, 1),
    )
    # The silence is the CAF's answer: the coordinated answer leaves, and says so.
    assert isinstance(answer, CoordinatedAnswerIssued)
    assert (
        "accepté implicitement" in answer.text
        and "silence de l'administration vaut acceptation" in answer.text
    )
    [clock] = await db.rows("legal_clocks", db.tables.legal_clocks.c.agency == "caf")
    assert (clock.status, clock.breached) == ("echu", True)


async def test_an_answer_read_before_its_receipt_leaves_no_running_clock(db):
    """The answer (agency-answers topic) and the receipt (legal-clock topic) of an agency
    that answers at once can be consumed in either order."""
    await handle(
        db,
        assignment.on_agency_answer,
        AgencyAnswerReceived(
            file_id=FILE,
            request_id=f"{FILE}-cpam",
            answer=decision("cpam"),
        ),
    )
    await receipt(db, "cpam", DeadlineRule.SILENCE_REJECTS, 30)

    [clock] = await db.rows("legal_clocks")
    assert clock.status == "repondu"
    for day in (dt.date(2026, 12, 16), dt.date(2026, 12, 24), dt.date(2027, 2, 1)):
        assert await tick(db, day) == 0
    # Only the clock's announcement, born stopped but with its last day (the published
    # indicators measure the answer against it): no warning, breach nor implicit decision.
    [announced] = [
        e for e in await deadline_events(db) if not isinstance(e, CoordinatedAnswerIssued)
    ]
    assert isinstance(announced, LegalDeadlineSet)
    assert (announced.state, announced.due_on, announced.rule) == (
        "repondu",
        dt.date(2026, 12, 31),
        DeadlineRule.SILENCE_REJECTS,
    )


async def test_a_receipt_for_a_file_assignment_does_not_know_starts_no_clock(db):
    await receipt(db, "caf", DeadlineRule.SILENCE_ACCEPTS, 30, file_id="GU-2026-UNKNOWN1")
    assert await db.rows("legal_clocks") == []
    assert await deadline_events(db) == []
    # The file's own request, known: its clock runs.
    await receipt(db, "caf", DeadlineRule.SILENCE_ACCEPTS, 30)
    [clock] = await db.rows("legal_clocks")
    assert (clock.file_id, clock.status) == (FILE, "en_cours")


async def test_after_a_downtime_only_the_nearest_warning_is_issued(db):
    await receipt(db, "caf", DeadlineRule.SILENCE_ACCEPTS, 30)

    await tick(db, dt.date(2026, 12, 26))  # five days left: J-15 and J-7 are both past

    [warning] = [e for e in await deadline_events(db) if isinstance(e, DeadlineWarningIssued)]
    assert (warning.threshold, warning.days_left) == (7, 5)
    await tick(db, dt.date(2026, 12, 27))
    assert len([e for e in await deadline_events(db) if isinstance(e, DeadlineWarningIssued)]) == 1


async def test_silence_means_rejection_records_an_implicit_rejection_with_means_of_appeal(db):
    await receipt(db, "cpam", DeadlineRule.SILENCE_REJECTS, 10)
    await handle(
        db,
        assignment.on_agency_answer,
        AgencyAnswerReceived(
            file_id=FILE,
            request_id=f"{FILE}-caf",
            answer=decision("caf"),
        ),
    )

    await tick(db, dt.date(2026, 12, 12))

    implicit = [e for e in await deadline_events(db) if isinstance(e, ImplicitDecisionRecorded)]
    assert [e.decision for e in implicit] == [Decision.IMPLICIT_REJECTION]
    [answer] = [e for e in await deadline_events(db) if isinstance(e, CoordinatedAnswerIssued)]
    assert "rejeté implicitement" in answer.text and "contester la décision" in answer.text


async def test_an_answer_in_time_stops_the_clock(db):
    await receipt(db, "caf", DeadlineRule.SILENCE_ACCEPTS, 30)
    await handle(
        db,
        assignment.on_agency_answer,
        AgencyAnswerReceived(
            file_id=FILE,
            request_id=f"{FILE}-caf",
            answer=decision("caf"),
        ),
    )

    await tick(db, dt.date(2027, 3, 1))

    assert not [e for e in await deadline_events(db) if not isinstance(e, LegalDeadlineSet)]
    [clock] = await db.rows("legal_clocks")
    assert clock.status == "repondu"


async def test_no_rule_no_deadline(db):
    await receipt(db, "caf", DeadlineRule.NONE, None)
    await tick(db, dt.date(2028, 1, 1))

    [clock] = await db.rows("legal_clocks")
    assert (clock.status, clock.due_on) == ("sans_delai", None)
    [announced] = await deadline_events(db)
    assert announced.state == "sans_delai"


async def test_a_document_request_suspends_the_clock_and_an_incomplete_one_restarts_it(db):
    await receipt(db, "cpam", DeadlineRule.SILENCE_ACCEPTS, 30)  # last day 31 December

    async def suspended(day: dt.date) -> None:
        await suspend(db, "cpam", day)

    async def resumed(day: dt.date) -> None:
        await resume(db, "cpam", day)

    await suspended(dt.date(2026, 12, 11))  # 20 days left
    await tick(db, dt.date(2027, 2, 1))  # a suspended clock never breaches
    await resumed(dt.date(2026, 12, 21))
    [clock] = await db.rows("legal_clocks")
    assert clock.due_on == dt.date(2027, 1, 10)  # the 20 days left, from the document's arrival

    await suspended(dt.date(2026, 12, 22))  # the document was incomplete: asked again
    await resumed(dt.date(2027, 1, 5))
    [clock] = await db.rows("legal_clocks")
    assert clock.due_on == dt.date(2027, 2, 4)  # the whole period again

    sets = [
        (e.state, e.why, e.due_on)
        for e in await deadline_events(db)
        if isinstance(e, LegalDeadlineSet)
    ]
    assert sets == [
        ("en_cours", "reception", dt.date(2026, 12, 31)),
        ("suspendu", "suspension", None),
        ("en_cours", "reprise", dt.date(2027, 1, 10)),
        ("suspendu", "suspension", None),
        ("en_cours", "redemarrage", dt.date(2027, 2, 4)),
    ]
    assert not [e for e in await deadline_events(db) if isinstance(e, LegalDeadlineBreached)]


async def test_the_clock_file_moves_today_for_running_processes(tmp_path):
    override = tmp_path / "today"
    clock = Clock(override)
    real = clock.today()
    override.write_text("2027-01-15\n")
    assert clock.today() == dt.date(2027, 1, 15)
    override.write_text("")
    assert clock.today() == real


@pytest.mark.parametrize("day", [dt.date(2027, 1, 15), dt.date(2027, 3, 28), dt.date(2027, 7, 1)])
async def test_now_on_a_rehearsal_date_falls_on_that_paris_day(tmp_path, day):
    """The adapters stamp legal-clock events with `now()`: its Paris day is the rehearsal
    day whatever the hour and the summer-time change in between (28 March 2027)."""
    override = tmp_path / "today"
    override.write_text(day.isoformat())
    stamped = Clock(override).now()
    assert stamped.tzinfo is not None and stamped.astimezone(ZoneInfo("Europe/Paris")).date() == day
    assert abs((stamped - dt.datetime.now(dt.UTC)) - (day - Clock().today())) < dt.timedelta(
        hours=2
    )
