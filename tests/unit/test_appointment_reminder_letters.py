"""The reminder of a citizen whose channel is the letter (issue 16 §3, "confirmation and
reminder, SMS or letter, the day before"): recorded with the confirmation, planned for its
posting day so as to be in the letter box the day before, taken back if the appointment is
cancelled or moved first; booked too close, the confirmation letter says it is the only one.
The handlers on notification's real SQLite database, the letters posted through the real
postal simulator (devstack.providers). Dates and instants are written out by hand (Paris:
UTC+1 in winter, UTC+2 from 28 March 2027)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from notification import appointments, dispatch, domain, erasure
from shared_models import CitizenDataErased, ErasureCause, PreferredChannel
from tests.unit.samples import appointment, citizen
from tests.unit.test_appointment_notifications import (
    POSTAL,
    booked,
    cancelled,
    contents,
    handle,
    reminded,
)

UTC = dt.UTC
LETTER_ONLY = citizen(preferred_channel=PreferredChannel.LETTER, **POSTAL)
REMINDER = "GU-2027-RDV00001:appointment_reminder:rdv-0001"
ONLY_LETTER = (
    "Ce courrier est le seul que vous recevrez pour ce rendez-vous : il a été pris trop peu "
    "de temps à l'avance pour qu'un courrier de rappel vous parvienne la veille. Conservez-le."
)


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# ------------------------------------------------------------------ the rule


@pytest.mark.parametrize(
    ("starts_at", "days", "posted_on"),
    [
        # Thursday 4 March 2027 at 10h: in the letter box by Wednesday 3, posted 3 working
        # days before: Friday 26 February (the weekend does not count).
        (at(2027, 3, 4, 9, 0), 3, dt.date(2027, 2, 26)),
        (at(2027, 3, 4, 9, 0), 1, dt.date(2027, 3, 2)),
        # Monday 10 May 2027: the eve is a Sunday, so by Friday 7; Thursday 6 is Ascension:
        # Wednesday 5, Tuesday 4, Monday 3.
        (at(2027, 5, 10, 8, 0), 3, dt.date(2027, 5, 3)),
        # Tuesday 30 March 2027 (summer time): the eve is Easter Monday, so by Friday 26.
        (at(2027, 3, 30, 8, 0), 3, dt.date(2027, 3, 23)),
    ],
)
def test_the_reminder_letter_is_posted_working_days_before_the_eve(starts_at, days, posted_on):
    assert domain.reminder_letter_posting_day(starts_at, days) == posted_on


@pytest.mark.parametrize(
    ("starts_at", "booked_at", "posted_at"),
    [
        # Posted from 0h in Paris on Friday 26 February 2027: 23h UTC the day before (winter).
        (at(2027, 3, 4, 9, 0), at(2027, 2, 25, 17, 0), at(2027, 2, 25, 23, 0)),
        # Booked on the posting day (9h in Paris): too late for a second letter.
        (at(2027, 3, 4, 9, 0), at(2027, 2, 26, 8, 0), None),
        # Booked at 23h30 in Paris on Thursday 25 (22h30 UTC): still the day before.
        (at(2027, 3, 4, 9, 0), at(2027, 2, 25, 22, 30), at(2027, 2, 25, 23, 0)),
        # A summer appointment (30 March) whose letter leaves in winter (Tuesday 23 March).
        (at(2027, 3, 30, 8, 0), at(2027, 3, 1, 9, 0), at(2027, 3, 22, 23, 0)),
        # Monday 10 May 2027, posted Monday 3 May from 0h in Paris: 22h UTC (summer).
        (at(2027, 5, 10, 8, 0), at(2027, 4, 20, 9, 0), at(2027, 5, 2, 22, 0)),
    ],
)
def test_a_booking_too_close_gets_no_reminder_letter(starts_at, booked_at, posted_at):
    assert domain.reminder_letter_posted_at(starts_at, booked_at, 3) == posted_at


def test_who_is_reminded_by_letter():
    assert domain.reminded_by_letter(LETTER_ONLY)
    assert not domain.reminded_by_letter(citizen())  # email
    assert not domain.reminded_by_letter(citizen(preferred_channel=PreferredChannel.SMS))
    # Asked to be phoned: their référent calls them the day before instead.
    assert not domain.reminded_by_letter(
        citizen(preferred_channel=PreferredChannel.PHONE, **POSTAL)
    )


# ------------------------------------------------------------------ through the handlers


async def rows(db) -> dict:
    return {r.notification_id: r for r in await db.rows("notifications")}


async def test_the_reminder_letter_is_planned_then_posted_on_its_day(
    notification_db, channels, gateway, monkeypatch
):
    # Tuesday 2 March 2027 at 9h30, booked on Saturday 20 February: in the letter box by
    # Monday 1 March, so posted on Wednesday 24 February (Friday 26, Thursday 25, Wednesday
    # 24), from 0h in Paris: 23h UTC on the 23rd.
    await handle(notification_db, appointments.on_appointment_booked, booked(citizen=LETTER_ONLY))

    found = await rows(notification_db)
    assert set(found) == {"GU-2027-RDV00001:appointment_booked:rdv-0001", REMINDER}
    planned = found[REMINDER]
    assert (planned.status, planned.plan) == ("programme", "courrier")
    assert planned.next_attempt_at == at(2027, 2, 23, 23, 0)
    letter = json.loads(planned.content)["courrier"]
    assert letter["to"] == ["Awa Diallo", "12 rue de la République", "93200 SAINT-DENIS"]
    assert letter["subject"] == (
        "Votre dossier GU-2027-RDV00001 : rappel de votre rendez-vous avec Yasmine Haddad"
    )
    assert "le mardi 2 mars 2027 à 9 h 30 (jusqu'à 10 h)\n" in letter["text"]
    confirmation = (await contents(notification_db))["GU-2027-RDV00001:appointment_booked:rdv-0001"]
    assert ONLY_LETTER not in confirmation["courrier"]["text"]

    # One minute before its time only the confirmation leaves.
    monkeypatch.setattr(dispatch, "utcnow", lambda: at(2027, 2, 23, 22, 59))
    assert await dispatch.dispatch_pending(notification_db.uow, channels) == 1
    assert len(gateway[1].get("/api/letters").json()) == 1
    assert (await rows(notification_db))[REMINDER].status == "programme"
    # Its time: posted through the postal service.
    monkeypatch.setattr(dispatch, "utcnow", lambda: at(2027, 2, 23, 23, 0))
    assert await dispatch.dispatch_pending(notification_db.uow, channels) == 1
    assert len(gateway[1].get("/api/letters").json()) == 2
    assert (await rows(notification_db))[REMINDER].status == "envoye"
    # The eve's reminder (assignment, once) adds nothing: the letter was the reminder.
    await handle(
        notification_db, appointments.on_appointment_reminder_issued, reminded(citizen=LETTER_ONLY)
    )
    assert len(await rows(notification_db)) == 2


async def test_booked_too_close_the_confirmation_letter_says_it_is_the_only_one(
    notification_db,
):
    # Booked on Wednesday 24 February at 9h in Paris: the posting day itself.
    event = booked(citizen=LETTER_ONLY, occurred_at=at(2027, 2, 24, 8, 0))

    await handle(notification_db, appointments.on_appointment_booked, event)

    [(key, content)] = (await contents(notification_db)).items()
    assert key == "GU-2027-RDV00001:appointment_booked:rdv-0001"
    assert (
        "Pensez à apporter une pièce d'identité et les documents utiles à votre dossier.\n\n"
        + ONLY_LETTER
        + "\n\nSi vous ne pouvez pas venir"
    ) in content["courrier"]["text"]
    await handle(
        notification_db, appointments.on_appointment_reminder_issued, reminded(citizen=LETTER_ONLY)
    )
    assert len(await rows(notification_db)) == 1


async def test_a_cancelled_or_moved_appointments_reminder_letter_is_taken_back(
    notification_db, channels, gateway, monkeypatch
):
    await handle(notification_db, appointments.on_appointment_booked, booked(citizen=LETTER_ONLY))
    # Moved to Friday 5 March 2027 at 14h (13h UTC): posted Monday 1 March (by Thursday 4).
    moved = booked(
        citizen=LETTER_ONLY,
        occurred_at=at(2027, 2, 22, 10, 0),
        appointment=appointment(
            appointment_id="rdv-0002",
            starts_at=at(2027, 3, 5, 13, 0),
            ends_at=at(2027, 3, 5, 13, 30),
            calendar_id="rdv-0001",
            revision=1,
        ),
        rescheduled_from=at(2027, 3, 2, 8, 30),
    )
    await handle(notification_db, appointments.on_appointment_booked, moved)

    found = await rows(notification_db)
    assert found[REMINDER].status == "retire"
    second = found["GU-2027-RDV00001:appointment_reminder:rdv-0002"]
    assert (second.status, second.next_attempt_at) == ("programme", at(2027, 2, 28, 23, 0))

    await handle(
        notification_db,
        appointments.on_appointment_cancelled,
        cancelled(citizen=LETTER_ONLY, appointment=moved.appointment),
    )
    statuses = {k: r.status for k, r in (await rows(notification_db)).items()}
    assert statuses == {
        "GU-2027-RDV00001:appointment_booked:rdv-0001": "a_envoyer",
        "GU-2027-RDV00001:appointment_moved:rdv-0002": "a_envoyer",
        "GU-2027-RDV00001:appointment_cancelled:rdv-0002": "a_envoyer",
        REMINDER: "retire",
        "GU-2027-RDV00001:appointment_reminder:rdv-0002": "retire",
    }
    # Long after both posting days: the three letters leave, never a reminder.
    monkeypatch.setattr(dispatch, "utcnow", lambda: at(2027, 3, 10, 9, 0))
    assert await dispatch.dispatch_pending(notification_db.uow, channels) == 3
    assert len(gateway[1].get("/api/letters").json()) == 3


async def test_an_email_citizen_gets_no_planned_letter(notification_db):
    await handle(notification_db, appointments.on_appointment_booked, booked())
    assert list(await rows(notification_db)) == ["GU-2027-RDV00001:appointment_booked:rdv-0001"]


async def test_the_postal_delay_comes_from_the_setting(notification_db):
    # One working day: posted on Friday 26 February for Tuesday 2 March (by Monday 1).
    await handle(
        notification_db,
        lambda event, uow: appointments.on_appointment_booked(event, uow, delivery_days=1),
        booked(citizen=LETTER_ONLY),
    )
    assert (await rows(notification_db))[REMINDER].next_attempt_at == at(2027, 2, 25, 23, 0)


async def test_an_erasure_leaves_no_planned_letter_to_post(notification_db):
    await handle(notification_db, appointments.on_appointment_booked, booked(citizen=LETTER_ONLY))
    erased = CitizenDataErased(
        file_id="GU-2027-RDV00001", cause=ErasureCause.REQUEST, erased=["contact"]
    )

    await handle(notification_db, erasure.on_citizen_data_erased, erased)

    planned = (await rows(notification_db))[REMINDER]
    assert (planned.status, planned.last_error) == ("canal_indisponible", "données effacées")
