"""The answer-time promise of the citizen's messages (issue 16 §2): two working days of the
Paris calendar (public holidays of metropolitan France), a reminder to the agent who
answers on the last day, the supervisors alerted once after it, the citizen told, and the
published answer times. Expected dates are written out, not computed with the rule."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from assignment.commands import housekeeping
from guichet_runtime.clock import PARIS
from intake.domain.promise import answer_promise, is_working_day, nth_working_day_after
from intake.views import files as views
from intake.views import indicators
from notification import projections as notification
from shared_models import (
    CitizenMessageEscalated,
    CitizenMessageReceived,
    CitizenMessageReminderIssued,
    SupervisorContact,
    topics,
)
from tests.unit import test_citizen_messages
from tests.unit.samples import citizen, referent
from tests.unit.test_citizen_messages import TEXT, deliver, open_file

# The citizen space at intake and the référent's desk at assignment, as in §1's tests.
space = test_citizen_messages.space
desk = test_citizen_messages.desk


def paris(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS)


# ------------------------------------------------------------------ the rule


@pytest.mark.parametrize(
    ("received", "last_day"),
    [
        (paris(2026, 11, 27, 15, 0), dt.date(2026, 12, 1)),  # Friday -> Tuesday
        (paris(2026, 11, 28, 10, 0), dt.date(2026, 12, 1)),  # Saturday -> Tuesday
        (paris(2026, 11, 30, 9, 0), dt.date(2026, 12, 2)),  # Monday -> Wednesday
        (paris(2026, 4, 30, 10, 0), dt.date(2026, 5, 5)),  # 1 May (Friday) is a holiday
        (paris(2026, 5, 13, 10, 0), dt.date(2026, 5, 18)),  # Ascension Thursday
        (paris(2026, 5, 22, 10, 0), dt.date(2026, 5, 27)),  # Whit Monday
        (paris(2026, 12, 23, 10, 0), dt.date(2026, 12, 28)),  # Christmas (Friday)
        (paris(2026, 7, 13, 10, 0), dt.date(2026, 7, 16)),  # 14 July (Tuesday)
        (paris(2027, 12, 31, 10, 0), dt.date(2028, 1, 4)),  # New Year's Day, a new year
        # 23:30 UTC on Monday 30 November is Tuesday 1 December in Paris.
        (dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC), dt.date(2026, 12, 3)),
    ],
)
def test_the_promise_is_two_working_days_of_the_paris_calendar(received, last_day):
    assert answer_promise(received).last_day == last_day


def test_the_promise_ends_at_midnight_paris_and_reminds_at_the_start_of_its_last_day():
    promise = answer_promise(paris(2026, 11, 27, 15, 0))
    assert promise.remind_at == dt.datetime(2026, 11, 30, 23, 0, tzinfo=dt.UTC)
    assert promise.due_at == dt.datetime(2026, 12, 1, 23, 0, tzinfo=dt.UTC)
    # Summer time: midnight in Paris is 22:00 UTC.
    summer = answer_promise(paris(2026, 7, 13, 10, 0))
    assert summer.due_at == dt.datetime(2026, 7, 16, 22, 0, tzinfo=dt.UTC)
    # Another target (setting MESSAGE_ANSWER_WORKING_DAYS).
    assert answer_promise(paris(2026, 11, 27, 15, 0), 1).last_day == dt.date(2026, 11, 30)
    with pytest.raises(ValueError):
        nth_working_day_after(dt.date(2026, 11, 27), 0)


def test_working_days():
    assert is_working_day(dt.date(2026, 11, 30))  # a Monday
    assert not is_working_day(dt.date(2026, 11, 28))  # a Saturday
    for holiday in ("2026-01-01", "2026-04-06", "2026-05-08", "2026-08-15", "2026-11-11"):
        assert not is_working_day(dt.date.fromisoformat(holiday)), holiday
    # Good Friday and 26 December are holidays in Alsace-Moselle only.
    assert is_working_day(dt.date(2026, 4, 3)) and is_working_day(dt.date(2025, 12, 26))


# ------------------------------------------------------------------ intake: told, answered, counted


async def test_the_citizen_is_told_the_promise_and_the_answer_is_timed(space):
    sent = await space.post(f"/api/files/{space.file_id}/citizen-messages", data={"text": TEXT})
    assert sent.status_code == 201, sent.text
    body = sent.json()
    [event] = [
        e for _, e in await space.db.outbox_events() if isinstance(e, CitizenMessageReceived)
    ]
    assert dt.datetime.fromisoformat(body["answer_due_at"]) == event.answer_due_at
    assert event.remind_at is not None and event.remind_at < event.answer_due_at
    assert event.answer_due_at - event.remind_at in (
        dt.timedelta(hours=24),
        dt.timedelta(hours=23),  # the last day is a DST change
        dt.timedelta(hours=25),
    )
    last_day = dt.date.fromisoformat(body["answer_due_on"])
    assert last_day.weekday() < 5 and last_day > event.occurred_at.astimezone(PARIS).date()

    answer = await space.post(
        f"/api/files/{space.file_id}/messages",
        json={"text": "Envoyez-le-moi, je m'en occupe."},
        headers=space.tokens.agent(referent().agent_id),
    )
    assert answer.status_code == 201, answer.text

    [mine, theirs] = (await space.get(f"/api/files/{space.file_id}/thread")).json()
    assert mine["answer_due_on"] == body["answer_due_on"]
    assert mine["answered_at"] == theirs["at"]
    [row] = await space.db.rows("citizen_messages")
    assert row.answered_at is not None and 0 <= row.answer_delay_s < 60


async def test_the_published_answer_times_per_office(space):
    """Known inputs: three answered messages of one office's files (1 h, 5 h, 70 h; the
    last one past its promise), one unanswered."""
    db = space.db
    cm = db.tables.citizen_messages
    fm = db.tables.file_metrics
    await db.execute(
        fm.update()
        .where(fm.c.file_id == space.file_id)
        .values(office_id="FS-93-01", office_name="France Services Saint-Denis")
    )
    t0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)  # a Monday
    due = dt.datetime(2026, 11, 4, 23, 0, tzinfo=dt.UTC)
    for i, hours in enumerate((1, 5, 70, None)):
        await db.execute(
            cm.insert().values(
                message_id=f"m-{i}",
                file_id=space.file_id,
                text="…",
                answerer_id=referent().agent_id,
                answerer_name=referent().name,
                request_digest="0" * 64,
                at=t0,
                answer_due_at=due,
                answered_at=None if hours is None else t0 + dt.timedelta(hours=hours),
                answer_delay_s=None if hours is None else hours * 3600,
            )
        )

    published = await indicators.compute(db.uow(), min_files=1)

    [office] = published["offices"]
    assert (office["message_answered"], office["message_within_promise"]) == (3, 2)
    assert office["message_answer_median_hours"] == 5.0
    assert office["message_answer_p90_hours"] == 57.0  # 5 + 0.8 x (70 - 5)
    assert office["message_promise_share"] == 0.667
    assert published["national"]["message_answered"] == 3
    assert all(row["message_answered"] is None for row in published["agencies"])
    header, *_rows = indicators.to_csv(published).splitlines()
    assert "delai_reponse_message_median_heures" in header.split(";")


# ------------------------------------------------------------------ assignment: remind, escalate


def promised(file_id: str, message_id: str, received: dt.datetime) -> CitizenMessageReceived:
    promise = answer_promise(received)
    return CitizenMessageReceived(
        file_id=file_id,
        occurred_at=received,
        message_id=message_id,
        referent=referent(),
        remind_at=promise.remind_at,
        answer_due_at=promise.due_at,
    )


async def issued(db) -> list[tuple[str, object]]:
    kinds = (CitizenMessageReminderIssued, CitizenMessageEscalated)
    return [(t, e) for t, e in await db.outbox_events() if isinstance(e, kinds)]


async def test_a_reminder_on_the_last_day_then_one_escalation_and_none_once_answered(desk):
    agent = await open_file(desk.db, "GU-2026-PROMISE1")
    await open_file(desk.db, "GU-2026-PROMISE2")
    friday = paris(2026, 11, 27, 15, 0)  # due by Tuesday 1 December, midnight
    await deliver(desk.db, promised("GU-2026-PROMISE1", "m-late", friday))
    await deliver(desk.db, promised("GU-2026-PROMISE2", "m-answered", friday))

    async def tick(at: dt.datetime) -> int:
        return await housekeeping.tick_message_promises(desk.db.uow, at)

    assert await tick(paris(2026, 11, 30, 18, 0)) == 0  # Monday evening: not yet
    assert await tick(paris(2026, 12, 1, 0, 0)) == 2  # Tuesday, the last day: reminders
    assert await tick(paris(2026, 12, 1, 12, 0)) == 0  # once
    [(topic, reminder), _] = await issued(desk.db)
    assert topic == topics.DEADLINES and isinstance(reminder, CitizenMessageReminderIssued)
    assert reminder.referent.agent_id == agent and reminder.citizen.given_name == "Awa"
    assert "email" not in reminder.citizen.model_dump()

    # The référent answers one of them; the other lapses.
    answer = promised("GU-2026-PROMISE2", "r-1", paris(2026, 12, 1, 16, 0))
    from shared_models import ReferentMessageSent

    await deliver(
        desk.db,
        ReferentMessageSent(
            file_id="GU-2026-PROMISE2",
            occurred_at=answer.occurred_at,
            message_id="r-1",
            referent=referent(agent_id=agent),
            citizen=citizen(),
            text="Voici la réponse.",
        ),
    )
    assert await tick(paris(2026, 12, 1, 23, 59)) == 0  # the last minute of the promise
    assert await tick(paris(2026, 12, 2, 0, 0)) == 1  # lapsed: the supervisors
    assert await tick(paris(2026, 12, 3, 9, 0)) == 0  # once
    escalations = [e for _, e in await issued(desk.db) if isinstance(e, CitizenMessageEscalated)]
    [escalation] = escalations
    assert (escalation.file_id, escalation.message_id) == ("GU-2026-PROMISE1", "m-late")
    assert escalation.supervisors and escalation.referent.agent_id == agent
    rows = {r.message_id: r for r in await desk.db.rows("citizen_messages")}
    assert rows["m-late"].escalated_at is not None and rows["m-answered"].escalated_at is None


async def test_a_message_lapsed_during_a_downtime_escalates_without_a_late_reminder(desk):
    await open_file(desk.db, "GU-2026-PROMISE3")
    await deliver(desk.db, promised("GU-2026-PROMISE3", "m-1", paris(2026, 11, 27, 15, 0)))

    assert await housekeeping.tick_message_promises(desk.db.uow, paris(2026, 12, 7, 9, 0)) == 1

    [(_, only)] = await issued(desk.db)
    assert isinstance(only, CitizenMessageEscalated)


async def test_messages_without_a_promise_are_left_alone(desk):
    await open_file(desk.db, "GU-2026-PROMISE4")
    old = CitizenMessageReceived(
        file_id="GU-2026-PROMISE4",
        occurred_at=paris(2026, 11, 2, 9, 0),
        message_id="m-old",
        referent=referent(),
    )
    await deliver(desk.db, old)
    assert await housekeeping.tick_message_promises(desk.db.uow, paris(2027, 1, 4, 9, 0)) == 0


# ------------------------------------------------------------------ notification: the emails

SUPERVISORS = [
    SupervisorContact(
        supervisor_id="SUP-IDF",
        name="Hélène Marchand",
        email="helene.marchand@example.fr",
        phone="01 40 10 21 00",
    ),
    SupervisorContact(
        supervisor_id="SUP-IDF-2",
        name="Paul Girard",
        email="paul.girard@example.fr",
        phone="01 40 10 21 01",
    ),
]
RECEIVED = dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.UTC)
DUE = dt.datetime(2026, 12, 1, 23, 0, tzinfo=dt.UTC)


async def test_the_referent_is_reminded_by_email_once(notification_db):
    event = CitizenMessageReminderIssued(
        file_id="GU-2026-REMIND01",
        message_id="m-1",
        received_at=RECEIVED,
        answer_due_at=DUE,
        referent=referent(),
        citizen=citizen(),
    )
    await notification.on_citizen_message_reminder_issued(event, notification_db.uow(("n", "1")))
    await notification.on_citizen_message_reminder_issued(event, notification_db.uow(("n", "2")))

    [row] = await notification_db.rows("notifications")
    email = json.loads(row.content)["email"]
    assert (row.kind, row.recipient) == ("message_reminder", referent().email)
    assert (
        email["subject"] == "Dossier GU-2026-REMIND01 : un message de l'usager attend votre réponse"
    )
    assert email["text"].startswith(
        "Bonjour Yasmine Haddad,\n\nAwa Diallo vous a écrit le 27/11/2026 au sujet du dossier "
        "GU-2026-REMIND01, et attend encore votre réponse. Nous nous sommes engagés à lui "
        "répondre au plus tard le 01/12/2026 : c'est aujourd'hui."
    )


async def test_each_supervisor_is_alerted_once_naming_who_was_to_answer(notification_db):
    event = CitizenMessageEscalated(
        file_id="GU-2026-OVERDUE1",
        message_id="m-1",
        received_at=RECEIVED,
        answer_due_at=DUE,
        referent=referent(),
        citizen=citizen(),
        supervisors=SUPERVISORS,
    )
    await notification.on_citizen_message_escalated(event, notification_db.uow(("n", "1")))
    await notification.on_citizen_message_escalated(event, notification_db.uow(("n", "2")))

    rows = await notification_db.rows(
        "notifications", order_by=notification_db.tables.notifications.c.recipient
    )
    assert [(r.kind, r.recipient) for r in rows] == [
        ("message_overdue", "helene.marchand@example.fr"),
        ("message_overdue", "paul.girard@example.fr"),
    ]
    text = json.loads(rows[0].content)["email"]["text"]
    assert text.startswith(
        "Bonjour Hélène Marchand,\n\nAwa Diallo a écrit le 27/11/2026 au sujet du dossier "
        "GU-2026-OVERDUE1 et n'a pas reçu de réponse dans le délai promis, qui s'est terminé "
        "le 01/12/2026."
    )
    assert "Yasmine Haddad (France Services Saint-Denis, 01 49 33 60 12)" in text


# ------------------------------------------------------------------ intake: the citizen's timeline


async def test_the_citizens_timeline_says_the_supervisor_knows(space):
    from intake import projections

    event = CitizenMessageEscalated(
        file_id=space.file_id,
        message_id="m-1",
        received_at=RECEIVED,
        answer_due_at=DUE,
        referent=referent(),
        citizen=citizen(),
        supervisors=SUPERVISORS,
    )
    for key in ("1", "2"):
        await projections.on_citizen_message_escalated(event, space.db.uow(("intake", key)))

    timeline = (await views.file_view(space.db.uow(), space.file_id))["timeline"]
    assert [e["label"] for e in timeline if e["kind"] == "message_en_retard"] == [
        "Votre message du 27/11/2026 n'a pas reçu de réponse dans le délai promis : le "
        "responsable de France Services Saint-Denis en est informé et veille à ce que "
        "Yasmine Haddad vous réponde."
    ]


async def test_the_inbox_shows_each_files_nearest_promise_and_what_is_past_it(desk):
    agent = await open_file(desk.db, "GU-2026-PROMISE5")
    # Thursday 27 November 2025: due by Monday 1 December 2025, long past.
    await deliver(desk.db, promised("GU-2026-PROMISE5", "m-past", paris(2025, 11, 27, 10, 0)))
    # A year ahead: not due yet.
    await deliver(desk.db, promised("GU-2026-PROMISE5", "m-next", paris(2099, 11, 27, 10, 0)))

    box = (await desk.get(f"/api/agents/{agent}/inbox", headers=desk.tokens.agent(agent))).json()

    [entry] = box["files"]
    assert (box["late"], entry["late"], entry["answer_due_on"]) == (1, 1, "2025-12-01")
    assert {m["message_id"]: m["late"] for m in entry["messages"]} == {
        "m-past": True,
        "m-next": False,
    }
