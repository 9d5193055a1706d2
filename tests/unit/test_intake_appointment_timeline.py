"""The file's timeline tells the citizen's appointments with their référent (issue 16 §3):
booked, moved, cancelled, from assignment's events on `appointments.events`, as intake
consumes them (its composition root on FastStream's in-memory broker) and word for word
(8:30 UTC on Tuesday 2 March 2027 is 9 h 30 in Paris; every sentence written out by hand)."""

from __future__ import annotations

import datetime as dt

import pytest
from faststream.kafka import TestKafkaBroker

from guichet_runtime.sealing import new_key
from intake import projections
from intake.bootstrap import IntakeSettings, bootstrap
from intake.commands.files import SubmitFile, submit_file
from intake.domain import UnknownFile
from intake.schemas import FileIn
from intake.views import files as views
from shared_models import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentReminderIssued,
    AppointmentSide,
    Envelope,
    topics,
)
from tests.unit.samples import AWA_FORM, appointment, citizen, referent

FORM = AWA_FORM
MOVED = appointment(
    appointment_id="rdv-0002",
    starts_at=dt.datetime(2027, 3, 3, 13, 0, tzinfo=dt.UTC),
    ends_at=dt.datetime(2027, 3, 3, 13, 30, tzinfo=dt.UTC),
)


async def open_file(db) -> str:
    file_id, _ = await submit_file(SubmitFile(form=FileIn.model_validate(FORM)), db.uow())
    return file_id


async def appointment_lines(db, file_id: str) -> list[tuple[str, str]]:
    timeline = (await views.file_view(db.uow(), file_id))["timeline"]
    return [(e["kind"], e["label"]) for e in timeline if e["kind"].startswith("rendez_vous")]


def booked(file_id: str, minutes: int, **fields) -> AppointmentBooked:
    values = {
        "file_id": file_id,
        "occurred_at": dt.datetime(2027, 2, 20, 10, minutes, tzinfo=dt.UTC),
        "appointment": appointment(),
        "referent": referent(),
        "booked_by": AppointmentSide.CITIZEN,
        "citizen": citizen(),
    }
    return AppointmentBooked(**{**values, **fields})


def cancelled(file_id: str, minutes: int, **fields) -> AppointmentCancelled:
    values = {
        "file_id": file_id,
        "occurred_at": dt.datetime(2027, 2, 20, 10, minutes, tzinfo=dt.UTC),
        "appointment": MOVED,
        "referent": referent(),
        "cancelled_by": AppointmentSide.CITIZEN,
        "citizen": citizen(),
    }
    return AppointmentCancelled(**{**values, **fields})


async def handle(db, handler, event) -> None:
    await handler(event, db.uow(("intake", str(event.event_id))))


async def test_a_booking_a_move_and_a_cancellation_in_the_timeline_word_for_word(intake_db):
    file_id = await open_file(intake_db)

    await handle(intake_db, projections.on_appointment_booked, booked(file_id, 0))
    moved = booked(
        file_id,
        1,
        appointment=MOVED,
        booked_by=AppointmentSide.AGENT,
        booked_by_agent=referent().agent_id,
        rescheduled_from=dt.datetime(2027, 3, 2, 8, 30, tzinfo=dt.UTC),
    )
    await handle(intake_db, projections.on_appointment_booked, moved)
    await handle(
        intake_db,
        projections.on_appointment_cancelled,
        cancelled(
            file_id,
            2,
            cancelled_by=AppointmentSide.AGENT,
            cancelled_by_agent="AG-93-01-9",  # a front-desk agent, not the référent
            reason="Le bureau est fermé ce jour-là.",
        ),
    )

    assert await appointment_lines(intake_db, file_id) == [
        (
            "rendez_vous_pris",
            "Rendez-vous pris avec Yasmine Haddad le mardi 2 mars 2027 à 9 h 30, France "
            "Services Saint-Denis (2 place du Caquet, 93200 Saint-Denis).",
        ),
        (
            "rendez_vous_deplace",
            "Rendez-vous avec Yasmine Haddad déplacé du mardi 2 mars 2027 à 9 h 30 au mercredi "
            "3 mars 2027 à 14 h, France Services Saint-Denis (2 place du Caquet, 93200 "
            "Saint-Denis), par votre référent ; l'ancien créneau est libéré.",
        ),
        (
            "rendez_vous_annule",
            "Rendez-vous du mercredi 3 mars 2027 à 14 h avec Yasmine Haddad annulé par un agent "
            "de France Services. Motif : Le bureau est fermé ce jour-là.",
        ),
    ]


async def test_who_booked_and_who_cancelled_in_words(intake_db):
    file_id = await open_file(intake_db)

    await handle(
        intake_db,
        projections.on_appointment_booked,
        booked(file_id, 0, booked_by=AppointmentSide.AGENT, booked_by_agent="AG-93-01-9"),
    )
    await handle(intake_db, projections.on_appointment_cancelled, cancelled(file_id, 1))

    assert [label for _, label in await appointment_lines(intake_db, file_id)] == [
        "Rendez-vous pris avec Yasmine Haddad le mardi 2 mars 2027 à 9 h 30, France Services "
        "Saint-Denis (2 place du Caquet, 93200 Saint-Denis), par un agent de France Services.",
        "Rendez-vous du mercredi 3 mars 2027 à 14 h avec Yasmine Haddad annulé à votre demande.",
    ]


async def test_intake_consumes_the_topic_once_per_event_and_leaves_the_reminder_out(intake_db):
    file_id = await open_file(intake_db)
    app = bootstrap(IntakeSettings(database_url=intake_db.url, access_code_key=new_key()))
    runtime = app.state.runtime
    runtime.consumer.attach()
    first = booked(file_id, 0)
    reminder = AppointmentReminderIssued(
        file_id=file_id, appointment=appointment(), referent=referent(), citizen=citizen()
    )

    async def publish(event: Envelope) -> None:
        await runtime.broker.publish(
            event.model_dump_json().encode(),
            topics.APPOINTMENTS,
            key=file_id.encode(),
            headers={"event_type": event.event_type},
        )

    try:
        async with TestKafkaBroker(runtime.broker):
            await publish(first)
            await publish(first)  # redelivered
            await publish(reminder)
            await publish(cancelled(file_id, 1, appointment=appointment()))
    finally:
        await runtime.engine.dispose()

    assert [kind for kind, _ in await appointment_lines(intake_db, file_id)] == [
        "rendez_vous_pris",
        "rendez_vous_annule",
    ]
    # The reminder is left out (no timeline line, no inbox row), never dead-lettered.
    handled = [r.event_id for r in await intake_db.rows("inbox")]
    assert str(first.event_id) in handled and str(reminder.event_id) not in handled
    assert runtime.consumer.dead_lettered == 0


async def test_an_event_for_a_file_intake_never_opened_is_refused(intake_db):
    unknown = booked("GU-2027-INCONNU1", 0)
    # The consumer retries, then dead-letters it; nothing is written.
    with pytest.raises(UnknownFile, match="dossier inconnu : GU-2027-INCONNU1"):
        await handle(intake_db, projections.on_appointment_booked, unknown)
    assert (
        await intake_db.rows("timeline", intake_db.tables.timeline.c.file_id == unknown.file_id)
        == []
    )
