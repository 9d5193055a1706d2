"""An absence declared after a booking (issue 16 §3): the référent's appointments on its days
are cancelled in the transaction of the absence, each citizen told why and whom to book with
again; the audit entry of the absence counts them; replaying finds nothing more to cancel.
Through the real command (`directory.declare_absence`, `apply_due_absences`) on assignment's
real SQLite database, bookings through the real routes (tests.unit.test_appointments).
Dates and sentences are written out by hand."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from assignment import scheduling
from assignment.commands import appointments as appointment_commands
from assignment.commands import directory
from guichet_runtime.auth.principal import Principal, PrincipalKind, Role
from shared_models import AppointmentCancelled, topics
from shared_models.wording import span_fr
from tests.unit import test_appointments
from tests.unit.samples import citizen
from tests.unit.test_appointments import UTC, paris
from tests.unit.test_referent_desk import open_file

calendar = test_appointments.calendar  # the fixture: Awa's file, its référent, the routes

SUPERVISOR = Principal(
    kind=PrincipalKind.AGENT,
    subject="sub-helene",
    client_id="web",
    roles=frozenset({Role.SUPERVISEUR}),
    agent_id="SUP-IDF",
    offices=frozenset({"FS-75-01", "FS-93-01"}),
)
TODAY = dt.date(2027, 3, 1)  # the calendar fixture's Monday
NOW = paris(2027, 3, 1, 10).astimezone(UTC)


# ------------------------------------------------------------------ the rules


@pytest.mark.parametrize(
    ("starts_at", "now", "cancelled"),
    [
        # Absence from Monday 29 March to Wednesday 31 March 2027 (summer time from the 28th).
        # Monday 29, 0h30 in Paris is Sunday 28, 22h30 UTC: a day of the absence.
        (dt.datetime(2027, 3, 28, 22, 30, tzinfo=UTC), paris(2027, 3, 1, 10), True),
        # Sunday 28 at 23h30 in Paris (21h30 UTC): the day before.
        (dt.datetime(2027, 3, 28, 21, 30, tzinfo=UTC), paris(2027, 3, 1, 10), False),
        # Wednesday 31 at 17h in Paris (15h UTC): its last day, included.
        (dt.datetime(2027, 3, 31, 15, 0, tzinfo=UTC), paris(2027, 3, 1, 10), True),
        # Thursday 1 April, 1h30 in Paris (Wednesday 23h30 UTC): the day after.
        (dt.datetime(2027, 3, 31, 23, 30, tzinfo=UTC), paris(2027, 3, 1, 10), False),
        # Declared on its first day: the appointment already begun that morning stays.
        (dt.datetime(2027, 3, 29, 7, 0, tzinfo=UTC), paris(2027, 3, 29, 9, 15), False),
        (dt.datetime(2027, 3, 29, 12, 0, tzinfo=UTC), paris(2027, 3, 29, 9, 15), True),
    ],
)
def test_an_absence_cancels_the_appointments_not_begun_on_its_days(starts_at, now, cancelled):
    first, last = dt.date(2027, 3, 29), dt.date(2027, 3, 31)
    assert scheduling.absence_cancels(starts_at, first, last, now) is cancelled


def test_the_reason_the_citizen_reads_names_the_absent_referent_and_the_days():
    assert scheduling.absence_reason("Marie Dupont", dt.date(2027, 3, 3), dt.date(2027, 3, 7)) == (
        "Marie Dupont sera absent(e) du 3 au 7 mars 2027."
    )
    assert span_fr(dt.date(2027, 3, 3), dt.date(2027, 3, 3)) == "le 3 mars 2027"
    assert span_fr(dt.date(2027, 2, 26), dt.date(2027, 3, 1)) == "du 26 février au 1er mars 2027"
    assert span_fr(dt.date(2026, 12, 30), dt.date(2027, 1, 2)) == (
        "du 30 décembre 2026 au 2 janvier 2027"
    )


# ------------------------------------------------------------------ through the command


async def cancellations(db) -> list[AppointmentCancelled]:
    return [
        e
        for t, e in await db.outbox_events()
        if t == topics.APPOINTMENTS and isinstance(e, AppointmentCancelled)
    ]


async def book(calendar, file_id: str, starts_at: str) -> str:
    headers = calendar.tokens.agent(calendar.agent_id)
    booked = await calendar.post(
        f"/api/files/{file_id}/appointments", json={"starts_at": starts_at}, headers=headers
    )
    assert booked.status_code == 201, booked.text
    return booked.json()["appointment_id"]


async def second_file(calendar) -> str:
    """Léa's file, with the same référent as Awa's."""
    other = "GU-2027-BBBBBBBB"
    await open_file(calendar.db, other, citizen=citizen(given_name="Léa", family_name="Roux"))
    files = calendar.db.tables.files
    await calendar.db.execute(
        files.update().where(files.c.file_id == other).values(referent_id=calendar.agent_id)
    )
    return other


async def test_a_planned_absence_cancels_the_appointments_on_its_days_and_says_so(calendar):
    inside = await book(calendar, calendar.file_id, "2027-03-04T10:00:00+01:00")  # Thursday
    other = await second_file(calendar)
    outside = await book(calendar, other, "2027-03-08T10:00:00+01:00")  # the Monday after

    declared = await directory.declare_absence(
        calendar.db.uow(),
        calendar.agent_id,
        dt.date(2027, 3, 3),
        dt.date(2027, 3, 5),
        "Congés annuels",
        TODAY,
        by=SUPERVISOR,
        now=NOW,
    )

    assert (declared["status"], declared["appointments_cancelled"]) == ("prevue", 1)
    rows = {r.appointment_id: r for r in await calendar.db.rows("appointments")}
    assert (rows[inside].status, rows[inside].cancelled_by) == ("annule", "agent")
    assert rows[inside].cancelled_by_agent == "SUP-IDF"
    assert rows[outside].status == "reserve"
    [event] = await cancellations(calendar.db)
    name = event.referent.name
    assert event.appointment.appointment_id == inside and event.file_id == calendar.file_id
    assert event.reason == f"{name} sera absent(e) du 3 au 5 mars 2027."
    assert event.absence is not None
    assert (event.absence.starts_on, event.absence.ends_on) == (
        dt.date(2027, 3, 3),
        dt.date(2027, 3, 5),
    )
    # Planned: the file is still with its référent, whose other days the citizen may book.
    assert event.absence.book_again_with == event.referent
    assert event.citizen == citizen()
    log = calendar.db.tables.audit.log
    [entry] = await calendar.db.rows(log, log.c.action == "agent.absence.declared")
    details = json.loads(entry.details)
    assert (details["appointments_cancelled"], details["files_covered"]) == (1, 0)
    # The days of the planned absence are no longer offered.
    refused = await calendar.post(
        f"/api/files/{calendar.file_id}/appointments",
        json={"starts_at": "2027-03-04T10:00:00+01:00"},
    )
    assert refused.status_code == 422
    # The absence begins (housekeeping, Wednesday): nothing more to cancel, no second event.
    assert await directory.apply_due_absences(
        calendar.db.uow, dt.date(2027, 3, 3), paris(2027, 3, 3, 0, 5).astimezone(UTC)
    )
    assert len(await cancellations(calendar.db)) == 1


async def test_an_absence_starting_today_sends_the_citizen_to_the_cover(calendar):
    booked = await book(calendar, calendar.file_id, "2027-03-02T14:00:00+01:00")

    declared = await directory.declare_absence(
        calendar.db.uow(),
        calendar.agent_id,
        TODAY,
        dt.date(2027, 3, 2),
        "Arrêt maladie",
        TODAY,
        by=SUPERVISOR,
        now=NOW,
    )

    assert (declared["status"], declared["files_covered"]) == ("en_cours", 1)
    assert declared["appointments_cancelled"] == 1
    [file] = [f for f in await calendar.db.rows("files") if f.file_id == calendar.file_id]
    assert file.referent_id != calendar.agent_id
    [event] = await cancellations(calendar.db)
    assert event.appointment.appointment_id == booked
    assert event.referent.agent_id == calendar.agent_id  # the appointment's référent
    assert event.absence is not None and event.absence.book_again_with is not None
    assert event.absence.book_again_with.agent_id == file.referent_id  # the cover
    assert event.reason == f"{event.referent.name} sera absent(e) du 1er au 2 mars 2027."


async def test_one_booked_as_the_absence_was_declared_is_cancelled_when_it_begins(calendar):
    await directory.declare_absence(
        calendar.db.uow(),
        calendar.agent_id,
        dt.date(2027, 3, 3),
        dt.date(2027, 3, 3),
        "Formation",
        TODAY,
        by=SUPERVISOR,
        now=NOW,
    )
    assert await cancellations(calendar.db) == []
    # A booking that read the calendar before the absence was committed (written by hand:
    # the routes now refuse that day).
    apps = calendar.db.tables.appointments
    await calendar.db.execute(
        apps.insert().values(
            appointment_id="rdv-late",
            file_id=calendar.file_id,
            agent_id=calendar.agent_id,
            starts_at=dt.datetime(2027, 3, 3, 13, 0, tzinfo=UTC),
            ends_at=dt.datetime(2027, 3, 3, 13, 30, tzinfo=UTC),
            office_address="2 place du Caquet, 93200 Saint-Denis",
            status="reserve",
            booked_by="citoyen",
            booked_at=dt.datetime(2027, 3, 1, 9, 0, tzinfo=UTC),
            revision=0,
        )
    )

    await directory.apply_due_absences(
        calendar.db.uow, dt.date(2027, 3, 3), paris(2027, 3, 3, 0, 5).astimezone(UTC)
    )

    [event] = await cancellations(calendar.db)
    assert event.appointment.appointment_id == "rdv-late"
    assert event.reason == f"{event.referent.name} sera absent(e) le 3 mars 2027."
    [row] = await calendar.db.rows("appointments")
    assert row.status == "annule"


async def test_nothing_is_half_written_when_the_absence_fails(calendar, monkeypatch):
    first = await book(calendar, calendar.file_id, "2027-03-03T10:00:00+01:00")
    other = await second_file(calendar)
    await book(calendar, other, "2027-03-04T10:00:00+01:00")
    real = appointment_commands.citizen_of
    calls = 0

    async def fails_on_the_second(uow, file):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the service died")
        return await real(uow, file)

    monkeypatch.setattr(appointment_commands, "citizen_of", fails_on_the_second)
    with pytest.raises(RuntimeError):
        await directory.declare_absence(
            calendar.db.uow(),
            calendar.agent_id,
            dt.date(2027, 3, 3),
            dt.date(2027, 3, 5),
            "Congés",
            TODAY,
            by=SUPERVISOR,
            now=NOW,
        )

    assert [r.status for r in await calendar.db.rows("appointments")] == ["reserve", "reserve"]
    assert await calendar.db.rows("absences") == []
    assert await cancellations(calendar.db) == []
    monkeypatch.setattr(appointment_commands, "citizen_of", real)
    # Declared again: both cancelled, once each.
    declared = await directory.declare_absence(
        calendar.db.uow(),
        calendar.agent_id,
        dt.date(2027, 3, 3),
        dt.date(2027, 3, 5),
        "Congés",
        TODAY,
        by=SUPERVISOR,
        now=NOW,
    )
    assert declared["appointments_cancelled"] == 2
    assert first in [e.appointment.appointment_id for e in await cancellations(calendar.db)]
