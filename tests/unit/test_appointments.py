"""Appointments with the référent (issue 16 §3) at assignment: the slots from the office's
opening hours, public holidays and the référent's absences; booking, racing for one slot,
moving, cancelling by either side; the day view; the reminder of the day before, once.
Real routes on assignment's real SQLite database; intake's answer to "is this the file's
citizen?" is given as intake gives it (tests.unit.test_export_parts). Expected instants are
written out, not computed with the rule."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from assignment import api as assignment_api
from assignment import citizen_export, scheduling
from assignment.commands import appointments, directory_import
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.clock import PARIS
from guichet_runtime.file_citizen import FileCitizenCheck
from shared_models import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentReminderIssued,
    AppointmentSide,
    topics,
)
from tests.unit.samples import citizen
from tests.unit.test_referent_desk import app_client, open_file

HOURS = "Du lundi au vendredi, 9h-12h30 et 13h30-17h"
UTC = dt.UTC


def paris(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS)


# ------------------------------------------------------------------ the rules


def test_the_week_is_read_from_the_offices_published_hours():
    morning, afternoon = (dt.time(9), dt.time(12, 30)), (dt.time(13, 30), dt.time(17))
    assert scheduling.weekly_hours(HOURS) == dict.fromkeys(range(5), (morning, afternoon))
    assert scheduling.weekly_hours("Lundi, 9h-12h ; du mardi au jeudi, 14h-17h30") == {
        0: ((dt.time(9), dt.time(12)),),
        1: ((dt.time(14), dt.time(17, 30)),),
        2: ((dt.time(14), dt.time(17, 30)),),
        3: ((dt.time(14), dt.time(17, 30)),),
    }
    # Nothing is guessed: hours that cannot be read offer no slot.
    for unreadable in ("Sur rendez-vous", "Du vendredi au lundi, 9h-12h", "Lundi, 12h-9h", ""):
        assert scheduling.weekly_hours(unreadable) is None, unreadable


def test_slots_fill_the_opening_ranges_in_paris_time():
    week = scheduling.weekly_hours(HOURS)
    assert week is not None
    tuesday = scheduling.slots_of_day(week, dt.date(2027, 3, 2), 30)
    assert len(tuesday) == 14  # 7 in the morning, 7 in the afternoon
    assert tuesday[0] == scheduling.Slot(
        dt.datetime(2027, 3, 2, 8, 0, tzinfo=UTC), dt.datetime(2027, 3, 2, 8, 30, tzinfo=UTC)
    )
    assert tuesday[7].starts_at == dt.datetime(2027, 3, 2, 12, 30, tzinfo=UTC)  # 13h30
    assert tuesday[-1].ends_at == dt.datetime(2027, 3, 2, 16, 0, tzinfo=UTC)  # 17h
    # Summer time: 9h in Paris is 7h UTC; a 45-minute slot leaves the range's tail unused.
    july = scheduling.slots_of_day(week, dt.date(2027, 7, 15), 45)
    assert july[0].starts_at == dt.datetime(2027, 7, 15, 7, 0, tzinfo=UTC)
    assert [s.starts_at.astimezone(PARIS).time() for s in july[:5]] == [
        dt.time(9),
        dt.time(9, 45),
        dt.time(10, 30),
        dt.time(11, 15),
        dt.time(13, 30),  # 12h00-12h45 would pass 12h30
    ]
    assert scheduling.slots_of_day(week, dt.date(2027, 3, 6), 30) == []  # a Saturday


def test_no_slot_on_a_holiday_a_day_of_absence_or_one_taken():
    week = scheduling.weekly_hours(HOURS)
    assert week is not None
    days = [dt.date(2027, 7, 13), dt.date(2027, 7, 14), dt.date(2027, 7, 15)]
    taken = [dt.datetime(2027, 7, 13, 7, 0, tzinfo=UTC)]  # Tuesday 9h in Paris
    free = scheduling.free_slots(week, days, 30, absent={dt.date(2027, 7, 15)}, taken=taken)
    assert list(free) == [dt.date(2027, 7, 13)]  # 14 July: holiday; 15th: absent
    assert len(free[dt.date(2027, 7, 13)]) == 13
    assert free[dt.date(2027, 7, 13)][0].starts_at == dt.datetime(2027, 7, 13, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("starts_at", "booked_at", "now", "due"),
    [
        # Thursday 4 March 2027 at 10h, booked on Monday: reminded from Wednesday 0h (Paris).
        (paris(2027, 3, 4, 10), paris(2027, 3, 1, 11), paris(2027, 3, 2, 23, 59), False),
        (paris(2027, 3, 4, 10), paris(2027, 3, 1, 11), paris(2027, 3, 3, 0, 0), True),
        (paris(2027, 3, 4, 10), paris(2027, 3, 1, 11), paris(2027, 3, 4, 8, 0), True),
        (paris(2027, 3, 4, 10), paris(2027, 3, 1, 11), paris(2027, 3, 4, 10, 0), False),
        # Booked on the eve: the confirmation has just told them.
        (paris(2027, 3, 4, 10), paris(2027, 3, 3, 9), paris(2027, 3, 3, 12), False),
    ],
)
def test_the_reminder_is_due_from_the_day_before(starts_at, booked_at, now, due):
    assert scheduling.reminder_due(starts_at, booked_at, now) is due


# ------------------------------------------------------------------ the routes


class Clock:
    """The service's clock, set by the test: Monday 1 March 2027, 10h in Paris."""

    def __init__(self) -> None:
        self.at = paris(2027, 3, 1, 10)

    def now(self) -> dt.datetime:
        return self.at.astimezone(UTC)

    def today(self) -> dt.date:
        return self.at.date()


def intake_says(status: int) -> FileCitizenCheck:
    """Intake's answer to "is the caller this file's citizen?" (200 yes, 403 no)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if not request.headers.get("Authorization") and "X-Access-Proof" not in request.headers:
            return httpx.Response(401, json={"message": "Identifiez-vous pour continuer."})
        body = {"citizen": True} if status == 200 else {"message": "Pas votre dossier."}
        return httpx.Response(status, json=body)

    return FileCitizenCheck(
        "http://intake", httpx.AsyncClient(transport=httpx.MockTransport(answer))
    )


@pytest.fixture
async def calendar(assignment_db, tokens):
    """Assignment's appointment routes, Awa's file with its référent; Awa's token."""
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    clock = Clock()
    cal = appointments.Calendar(30, 28, clock.today, clock.now)
    routes = assignment_api.appointments_router(assignment_db, cal, intake_says(200))
    async with app_client(routes, tokens) as c:
        c.db, c.tokens, c.clock = assignment_db, tokens, clock
        c.agent_id, _ = await open_file(assignment_db, "GU-2027-AAAAAAAA")
        c.file_id = "GU-2027-AAAAAAAA"
        c.headers.update(tokens.citizen("awa"))
        yield c


TUESDAY_9H = "2027-03-02T09:00:00+01:00"


async def booked_events(db) -> list:
    return [
        e
        for t, e in await db.outbox_events()
        if t == topics.APPOINTMENTS and isinstance(e, AppointmentBooked)
    ]


async def test_the_citizen_sees_the_free_slots_books_one_and_is_confirmed(calendar):
    slots = (await calendar.get(f"/api/files/{calendar.file_id}/appointments/slots")).json()
    assert slots["referent"]["agent_id"] == calendar.agent_id
    first = slots["days"][0]
    assert first["day"] == "2027-03-02"  # from tomorrow
    assert first["slots"][0] == {
        "starts_at": "2027-03-02T08:00:00+00:00",
        "ends_at": "2027-03-02T08:30:00+00:00",
    }
    assert [d["day"] for d in slots["days"]][:5] == [
        "2027-03-02",
        "2027-03-03",
        "2027-03-04",
        "2027-03-05",
        "2027-03-08",  # no weekend
    ]

    booked = await calendar.post(
        f"/api/files/{calendar.file_id}/appointments", json={"starts_at": TUESDAY_9H}
    )
    assert booked.status_code == 201, booked.text
    body = booked.json()
    assert (body["starts_at"], body["status"], body["booked_by"]) == (
        "2027-03-02T08:00:00+00:00",
        "reserve",
        "citoyen",
    )
    [event] = await booked_events(calendar.db)
    assert event.appointment.appointment_id == body["appointment_id"]
    assert event.referent.agent_id == calendar.agent_id and event.citizen == citizen()
    assert event.booked_by is AppointmentSide.CITIZEN and event.rescheduled_from is None
    assert event.appointment.office_address == body["office_address"] != ""
    listed = (await calendar.get(f"/api/files/{calendar.file_id}/appointments")).json()
    assert listed["upcoming"]["appointment_id"] == body["appointment_id"]
    # The slot is no longer offered; a second booking for the file is refused.
    again = (await calendar.get(f"/api/files/{calendar.file_id}/appointments/slots")).json()
    assert again["days"][0]["slots"][0]["starts_at"] == "2027-03-02T08:30:00+00:00"
    second = await calendar.post(
        f"/api/files/{calendar.file_id}/appointments",
        json={"starts_at": "2027-03-02T09:30:00+01:00"},
    )
    assert second.status_code == 409
    assert second.json()["message"] == appointments.ALREADY_BOOKED


async def test_two_citizens_racing_for_one_slot_get_one_booking_and_one_refusal(calendar):
    # Another citizen's file with the same référent.
    other = "GU-2027-BBBBBBBB"
    await open_file(calendar.db, other, citizen=citizen(given_name="Léa", family_name="Roux"))
    files = calendar.db.tables.files
    await calendar.db.execute(
        files.update().where(files.c.file_id == other).values(referent_id=calendar.agent_id)
    )
    answers = await asyncio.gather(
        *(
            calendar.post(f"/api/files/{f}/appointments", json={"starts_at": TUESDAY_9H})
            for f in (calendar.file_id, other)
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 409]
    [lost] = [a for a in answers if a.status_code == 409]
    assert lost.json()["message"] == appointments.SLOT_TAKEN
    assert len(await booked_events(calendar.db)) == 1
    rows = await calendar.db.rows("appointments")
    assert [(r.status, r.starts_at) for r in rows] == [
        ("reserve", dt.datetime(2027, 3, 2, 8, 0, tzinfo=UTC))
    ]


async def test_a_time_not_offered_is_refused_and_nothing_is_written(calendar):
    url = f"/api/files/{calendar.file_id}/appointments"
    for when in (
        "2027-03-06T10:00:00+01:00",  # a Saturday
        "2027-03-02T08:00:00+01:00",  # before opening
        "2027-03-02T09:10:00+01:00",  # not a slot's start
        "2027-03-01T15:00:00+01:00",  # today
        "2027-04-05T10:00:00+02:00",  # Easter Monday
        "2027-06-01T10:00:00+02:00",  # beyond the 28 days
        "2027-03-02T09:00:00",  # no time zone
    ):
        refused = await calendar.post(url, json={"starts_at": when})
        assert refused.status_code == 422, (when, refused.text)
        assert refused.json()["errors"][0]["field"] == "starts_at"
    assert await calendar.db.rows("appointments") == []
    assert await booked_events(calendar.db) == []


async def test_the_referents_absence_takes_its_days_out(calendar):
    absences = calendar.db.tables.absences
    await calendar.db.execute(
        absences.insert().values(
            agent_id=calendar.agent_id,
            starts_on=dt.date(2027, 3, 3),
            ends_on=dt.date(2027, 3, 4),
            status="prevue",
            created_at=dt.datetime(2027, 2, 1, tzinfo=UTC),
        )
    )
    slots = (await calendar.get(f"/api/files/{calendar.file_id}/appointments/slots")).json()
    assert [d["day"] for d in slots["days"]][:3] == ["2027-03-02", "2027-03-05", "2027-03-08"]
    refused = await calendar.post(
        f"/api/files/{calendar.file_id}/appointments",
        json={"starts_at": "2027-03-03T10:00:00+01:00"},
    )
    assert refused.status_code == 422


async def test_moving_frees_the_former_slot_and_confirms_once(calendar):
    url = f"/api/files/{calendar.file_id}/appointments"
    first = (await calendar.post(url, json={"starts_at": TUESDAY_9H})).json()
    moved = await calendar.post(
        f"{url}/{first['appointment_id']}/move", json={"starts_at": "2027-03-04T14:00:00+01:00"}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["starts_at"] == "2027-03-04T13:00:00+00:00"
    statuses = {r.appointment_id: r.status for r in await calendar.db.rows("appointments")}
    assert statuses == {
        first["appointment_id"]: "deplace",
        moved.json()["appointment_id"]: "reserve",
    }
    _, event = await booked_events(calendar.db)
    assert event.rescheduled_from == dt.datetime(2027, 3, 2, 8, 0, tzinfo=UTC)
    # The same calendar entry, moved (its first appointment's id), one revision on.
    assert (event.appointment.calendar_id, event.appointment.revision) == (
        first["appointment_id"],
        1,
    )
    moved_twice = await calendar.post(
        f"{url}/{moved.json()['appointment_id']}/move",
        json={"starts_at": "2027-03-05T10:00:00+01:00"},
    )
    assert moved_twice.status_code == 200, moved_twice.text
    *_, last = await booked_events(calendar.db)
    assert (last.appointment.calendar_id, last.appointment.revision) == (
        first["appointment_id"],
        2,
    )
    slots = (await calendar.get(f"{url}/slots")).json()
    assert slots["days"][0]["slots"][0]["starts_at"] == "2027-03-02T08:00:00+00:00"  # free
    assert "2027-03-04T13:00:00+00:00" in [s["starts_at"] for s in slots["days"][2]["slots"]]
    # The former appointment can no longer be moved or cancelled.
    stale = await calendar.post(f"{url}/{first['appointment_id']}/cancel", json={})
    assert stale.status_code == 409 and stale.json()["message"] == appointments.NO_LONGER_BOOKED


async def test_the_referent_cancels_with_a_reason_the_citizen_is_told_and_it_is_audited(calendar):
    url = f"/api/files/{calendar.file_id}/appointments"
    booked = (await calendar.post(url, json={"starts_at": TUESDAY_9H})).json()
    referent = calendar.tokens.agent(calendar.agent_id)
    cancelled = await calendar.post(
        f"{url}/{booked['appointment_id']}/cancel",
        json={"reason": "Je serai en formation ce jour-là."},
        headers=referent,
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["cancelled_by"]) == ("annule", "agent")
    [event] = [
        e for _, e in await calendar.db.outbox_events() if isinstance(e, AppointmentCancelled)
    ]
    assert (event.cancelled_by, event.cancelled_by_agent, event.reason) == (
        AppointmentSide.AGENT,
        calendar.agent_id,
        "Je serai en formation ce jour-là.",
    )
    log = calendar.db.tables.audit.log
    [entry] = await calendar.db.rows(log, log.c.action == "file.appointment.cancelled")
    assert (entry.file_id, entry.actor_agent_id) == (calendar.file_id, calendar.agent_id)
    # The slot is free again, and the citizen may book anew.
    again = await calendar.post(url, json={"starts_at": TUESDAY_9H})
    assert again.status_code == 201
    # The citizen's export (RGPD art. 15) holds both, the reason opened.
    part = await citizen_export.citizen_part(calendar.db.uow(), calendar.file_id)
    assert [(a["status"], a["cancel_reason"]) for a in part["appointments"]] == [
        ("annule", "Je serai en formation ce jour-là."),
        ("reserve", None),
    ]


async def test_who_may_act_on_a_files_appointments(calendar, assignment_db, tokens):
    url = f"/api/files/{calendar.file_id}/appointments"
    other_referent = tokens.agent("AG-75-01-1")
    assert (await calendar.get(url, headers=other_referent)).status_code == 403
    assert (await calendar.get(url, headers={"Authorization": ""})).status_code == 401
    # A citizen intake does not recognise as the file's: refused, nothing booked.
    cal = appointments.Calendar(30, 28, calendar.clock.today, calendar.clock.now)
    routes = assignment_api.appointments_router(assignment_db, cal, intake_says(403))
    async with app_client(routes, tokens, **tokens.citizen("paul")) as stranger:
        refused = await stranger.post(url, json={"starts_at": TUESDAY_9H})
        assert refused.status_code == 403
    assert await assignment_db.rows("appointments") == []
    # The référent books for the citizen on the phone: booked by an agent, audited.
    booked = await calendar.post(
        url, json={"starts_at": TUESDAY_9H}, headers=tokens.agent(calendar.agent_id)
    )
    assert booked.status_code == 201 and booked.json()["booked_by"] == "agent"


async def test_the_referents_day_lists_the_citizens_by_time(calendar):
    url = f"/api/files/{calendar.file_id}/appointments"
    await calendar.post(url, json={"starts_at": "2027-03-02T14:00:00+01:00"})
    day = await calendar.get(
        f"/api/agents/{calendar.agent_id}/appointments",
        params={"day": "2027-03-02"},
        headers=calendar.tokens.agent(calendar.agent_id),
    )
    assert day.status_code == 200, day.text
    [seen] = day.json()["appointments"]
    assert (seen["file_id"], seen["starts_at"], seen["citizen"]) == (
        calendar.file_id,
        "2027-03-02T13:00:00+00:00",
        {"given_name": "Awa", "family_name": "Diallo"},
    )
    empty = await calendar.get(
        f"/api/agents/{calendar.agent_id}/appointments",
        params={"day": "2027-03-03"},
        headers=calendar.tokens.agent(calendar.agent_id),
    )
    assert empty.json()["appointments"] == []
    assert (
        await calendar.get(
            f"/api/agents/{calendar.agent_id}/appointments",
            headers=calendar.tokens.agent("AG-75-01-1"),
        )
    ).status_code == 403


async def test_the_citizen_is_reminded_the_day_before_once(calendar):
    url = f"/api/files/{calendar.file_id}/appointments"
    booked = await calendar.post(url, json={"starts_at": "2027-03-04T10:00:00+01:00"})
    assert booked.status_code == 201

    for now, expected in (
        (paris(2027, 3, 2, 23, 0), 0),  # Tuesday evening: not yet
        (paris(2027, 3, 3, 0, 5), 1),  # Wednesday: the day before
        (paris(2027, 3, 3, 9, 0), 0),  # once
    ):
        assert await appointments.tick_reminders(calendar.db.uow, now.astimezone(UTC)) == expected
    events = [e for _, e in await calendar.db.outbox_events()]
    [reminder] = [e for e in events if isinstance(e, AppointmentReminderIssued)]
    assert reminder.appointment.appointment_id == booked.json()["appointment_id"]
    assert reminder.citizen == citizen()
    [row] = await calendar.db.rows("appointments")
    assert row.reminded_at == dt.datetime(2027, 3, 2, 23, 5, tzinfo=UTC)


async def test_a_cancelled_appointment_is_never_reminded(calendar):
    url = f"/api/files/{calendar.file_id}/appointments"
    booked = (await calendar.post(url, json={"starts_at": "2027-03-04T10:00:00+01:00"})).json()
    await calendar.post(f"{url}/{booked['appointment_id']}/cancel", json={"reason": None})
    assert (
        await appointments.tick_reminders(calendar.db.uow, paris(2027, 3, 3, 9).astimezone(UTC))
        == 0
    )
