"""What the citizen receives about an appointment with their référent (issue 16 §3), word
for word: the confirmation, the move, the cancellation and the reminder, on each channel,
recorded by notification's handlers from the events; the calendar file the emails carry,
read back with icalendar. The dates, times and sentences below are written out by hand
(Paris time: 8:30 UTC on Tuesday 2 March 2027 is 9 h 30), never produced by the wording
functions or the templates under test (docs/testing.md, "Independent oracles")."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from icalendar import Calendar

from notification import appointments
from shared_models import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentReminderIssued,
    AppointmentSide,
    PreferredChannel,
)
from shared_models.wording import moment_fr
from tests.unit.samples import appointment, citizen, referent

FILE_ID = "GU-2027-RDV00001"
POSTAL = {"street": "12 rue de la République", "city": "Saint-Denis"}
SIGNATURE = (
    "\n--\n"
    "Yasmine Haddad\n"
    "Votre référent — France Services Saint-Denis\n"
    "Téléphone direct : 01 49 33 60 12\n"
    "Courriel : yasmine.haddad@france-services.gouv.fr\n"
    "Accueil : Du lundi au vendredi, 9h-12h30 et 13h30-17h\n"
)


def booked(**overrides) -> AppointmentBooked:
    values = {
        "file_id": FILE_ID,
        "occurred_at": dt.datetime(2027, 2, 20, 10, 0, tzinfo=dt.UTC),
        "appointment": appointment(),
        "referent": referent(),
        "booked_by": AppointmentSide.CITIZEN,
        "citizen": citizen(),
    }
    return AppointmentBooked(**{**values, **overrides})


def cancelled(**overrides) -> AppointmentCancelled:
    values = {
        "file_id": FILE_ID,
        "occurred_at": dt.datetime(2027, 2, 25, 16, 0, tzinfo=dt.UTC),
        "appointment": appointment(),
        "referent": referent(),
        "cancelled_by": AppointmentSide.CITIZEN,
        "citizen": citizen(),
    }
    return AppointmentCancelled(**{**values, **overrides})


def reminded(**overrides) -> AppointmentReminderIssued:
    values = {
        "file_id": FILE_ID,
        "appointment": appointment(),
        "referent": referent(),
        "citizen": citizen(),
    }
    return AppointmentReminderIssued(**{**values, **overrides})


async def handle(db, handler, event) -> None:
    """As the consumer does: one unit of work keyed by the event id."""
    await handler(event, db.uow(("notification", str(event.event_id))))


async def contents(db) -> dict[str, dict]:
    """notification id -> each channel's content, as recorded."""
    return {r.notification_id: json.loads(r.content) for r in await db.rows("notifications")}


def calendar_of(content: dict) -> Calendar:
    [attachment] = content["attachments"]
    assert (attachment["filename"], attachment["content_type"]) == (
        "rendez-vous.ics",
        "text/calendar",
    )
    calendar = Calendar.from_ical(attachment["text"])
    assert str(calendar["method"]) == attachment["params"]["method"]
    return calendar


# ------------------------------------------------------------------ the time in words


@pytest.mark.parametrize(
    ("at", "words"),
    [
        (dt.datetime(2027, 3, 2, 8, 30, tzinfo=dt.UTC), "mardi 2 mars 2027 à 9 h 30"),
        (dt.datetime(2027, 3, 1, 13, 0, tzinfo=dt.UTC), "lundi 1er mars 2027 à 14 h"),
        # Summer time: UTC+2.
        (dt.datetime(2027, 6, 15, 7, 5, tzinfo=dt.UTC), "mardi 15 juin 2027 à 9 h 05"),
        # Sunday 28 March 2027, 1:00 UTC: clocks go from 2:00 to 3:00 in Paris.
        (dt.datetime(2027, 3, 28, 1, 30, tzinfo=dt.UTC), "dimanche 28 mars 2027 à 3 h 30"),
        # 23:30 UTC on 31 December is already the new year in Paris.
        (dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC), "vendredi 1er janvier 2027 à 0 h 30"),
    ],
)
def test_an_appointments_time_is_said_in_french_in_paris_time(at, words):
    assert moment_fr(at) == words


# ------------------------------------------------------------------ the confirmation


async def test_the_confirmation_gives_the_time_the_office_and_the_referent_word_for_word(
    notification_db,
):
    await handle(notification_db, appointments.on_appointment_booked, booked())

    [(key, content)] = (await contents(notification_db)).items()
    assert key == "GU-2027-RDV00001:appointment_booked:rdv-0001"
    email = content["email"]
    assert email["subject"] == (
        "Votre dossier GU-2027-RDV00001 : rendez-vous confirmé avec Yasmine Haddad"
    )
    assert email["text"] == (
        "Bonjour Awa Diallo,\n\n"
        "Votre rendez-vous avec Yasmine Haddad, votre référent pour le dossier GU-2027-RDV00001, "
        "est confirmé :\n\n"
        "le mardi 2 mars 2027 à 9 h 30 (jusqu'à 10 h)\n"
        "France Services Saint-Denis\n"
        "2 place du Caquet, 93200 Saint-Denis\n\n"
        "Pensez à apporter une pièce d'identité et les documents utiles à votre dossier. "
        "Le rendez-vous est joint à ce message : ouvrez la pièce jointe pour l'ajouter à "
        "votre agenda.\n\n"
        "Si vous ne pouvez pas venir, déplacez ou annulez ce rendez-vous depuis votre espace "
        "en ligne, ou appelez directement votre référent : ses coordonnées sont ci-dessous.\n"
        + SIGNATURE
    )
    assert content["sms"]["text"] == (
        "Dossier GU-2027-RDV00001 : rendez-vous confirmé le mardi 2 mars 2027 à 9 h 30 avec "
        "Yasmine Haddad, France Services Saint-Denis, 2 place du Caquet, 93200 Saint-Denis. "
        "Empêchement : appelez le 01 49 33 60 12."
    )
    assert "attachments" not in content["sms"]
    page = email["html"]
    assert "2 place du Caquet, 93200 Saint-Denis" in page and "mardi 2 mars 2027 à 9 h 30" in page


async def test_the_confirmation_carries_a_calendar_request_for_the_appointment(notification_db):
    await handle(notification_db, appointments.on_appointment_booked, booked())

    [content] = (await contents(notification_db)).values()
    calendar = calendar_of(content["email"])
    text = content["email"]["attachments"][0]["text"]
    assert str(calendar["method"]) == "REQUEST"
    assert str(calendar["version"]) == "2.0" and "prodid" in calendar
    [event] = calendar.walk("VEVENT")
    assert str(event["uid"]) == "rdv-0001@guichet-unique.gouv.fr"
    assert event.decoded("dtstart") == dt.datetime(2027, 3, 2, 8, 30, tzinfo=dt.UTC)
    assert event.decoded("dtend") == dt.datetime(2027, 3, 2, 9, 0, tzinfo=dt.UTC)
    # In UTC on the wire ("Z"), not in a local time zone the calendar must know.
    assert "DTSTART:20270302T083000Z" in text and "DTEND:20270302T090000Z" in text
    assert str(event["location"]) == "2 place du Caquet, 93200 Saint-Denis"
    assert str(event["summary"]) == (
        "Rendez-vous avec Yasmine Haddad, votre référent (France Services Saint-Denis)"
    )
    organizer = event["organizer"]
    assert str(organizer) == "mailto:yasmine.haddad@france-services.gouv.fr"
    assert organizer.params["CN"] == "Yasmine Haddad"
    attendee = event["attendee"]
    assert str(attendee) == "mailto:awa.diallo@example.fr"
    assert attendee.params["CN"] == "Awa Diallo"
    assert (event["sequence"], str(event["status"])) == (0, "CONFIRMED")
    assert event.decoded("dtstamp") == dt.datetime(2027, 2, 20, 10, 0, tzinfo=dt.UTC)
    assert "01 49 33 60 12" in str(event["description"])


async def test_the_confirmation_by_letter_has_no_attachment_and_says_who_booked(notification_db):
    event = booked(
        booked_by=AppointmentSide.AGENT,
        booked_by_agent="AG-93-01-9",  # a front-desk agent, not the référent
        citizen=citizen(preferred_channel=PreferredChannel.LETTER, **POSTAL),
    )

    await handle(notification_db, appointments.on_appointment_booked, event)

    # (Its reminder letter is planned beside it: test_appointment_reminder_letters.py.)
    content = (await contents(notification_db))["GU-2027-RDV00001:appointment_booked:rdv-0001"]
    assert list(content) == ["courrier"]
    letter = content["courrier"]
    assert "attachments" not in letter and "pièce jointe" not in letter["text"]
    assert letter["to"] == ["Awa Diallo", "12 rue de la République", "93200 SAINT-DENIS"]
    assert (
        "2 place du Caquet, 93200 Saint-Denis\n\n"
        "Un agent de France Services a pris ce rendez-vous pour vous. Pensez à apporter une "
        "pièce d'identité et les documents utiles à votre dossier.\n\n"
    ) in letter["text"]


async def test_a_booking_by_the_referent_says_so(notification_db):
    event = booked(booked_by=AppointmentSide.AGENT, booked_by_agent=referent().agent_id)

    await handle(notification_db, appointments.on_appointment_booked, event)

    [content] = (await contents(notification_db)).values()
    assert (
        "\n\nVotre référent a pris ce rendez-vous pour vous. Pensez à apporter une pièce d'identité"
    ) in content["email"]["text"]


async def test_a_phone_preferring_citizen_gets_a_letter_and_their_referent_a_call_request(
    notification_db,
):
    event = booked(citizen=citizen(preferred_channel=PreferredChannel.PHONE, **POSTAL))

    await handle(notification_db, appointments.on_appointment_booked, event)

    rows = {r.notification_id: r for r in await notification_db.rows("notifications")}
    assert set(rows) == {
        "GU-2027-RDV00001:appointment_booked:rdv-0001",
        "GU-2027-RDV00001:appointment_booked:rdv-0001:appel",
    }
    call = rows["GU-2027-RDV00001:appointment_booked:rdv-0001:appel"]
    assert (call.kind, call.recipient) == ("call_requested", referent().email)
    assert (
        "Le même message lui est envoyé par courrier." in json.loads(call.content)["email"]["text"]
    )


# ------------------------------------------------------------------ the move


async def test_a_move_confirms_the_new_slot_and_frees_the_former_one(notification_db):
    event = booked(
        appointment=appointment(
            appointment_id="rdv-0002",
            starts_at=dt.datetime(2027, 3, 3, 13, 0, tzinfo=dt.UTC),
            ends_at=dt.datetime(2027, 3, 3, 13, 30, tzinfo=dt.UTC),
            calendar_id="rdv-0001",
            revision=1,
        ),
        rescheduled_from=dt.datetime(2027, 3, 2, 8, 30, tzinfo=dt.UTC),
    )

    await handle(notification_db, appointments.on_appointment_booked, event)

    [(key, content)] = (await contents(notification_db)).items()
    assert key == "GU-2027-RDV00001:appointment_moved:rdv-0002"
    email = content["email"]
    assert email["subject"] == (
        "Votre dossier GU-2027-RDV00001 : votre rendez-vous avec Yasmine Haddad est déplacé"
    )
    assert email["text"] == (
        "Bonjour Awa Diallo,\n\n"
        "Votre rendez-vous avec Yasmine Haddad, votre référent pour le dossier GU-2027-RDV00001, "
        "est déplacé. Il aura lieu :\n\n"
        "le mercredi 3 mars 2027 à 14 h (jusqu'à 14 h 30)\n"
        "France Services Saint-Denis\n"
        "2 place du Caquet, 93200 Saint-Denis\n\n"
        "Le créneau du mardi 2 mars 2027 à 9 h 30 est libéré : ne vous y présentez pas. "
        "Le rendez-vous mis à jour est joint à ce message : ouvrez la pièce jointe pour le "
        "déplacer dans votre agenda.\n\n"
        "Si vous ne pouvez pas venir, déplacez ou annulez ce rendez-vous depuis votre espace "
        "en ligne, ou appelez directement votre référent : ses coordonnées sont ci-dessous.\n"
        + SIGNATURE
    )
    assert content["sms"]["text"] == (
        "Dossier GU-2027-RDV00001 : rendez-vous avec Yasmine Haddad déplacé au mercredi 3 mars "
        "2027 à 14 h, France Services Saint-Denis, 2 place du Caquet, 93200 Saint-Denis. Le "
        "créneau du mardi 2 mars 2027 à 9 h 30 est libéré. Empêchement : appelez le "
        "01 49 33 60 12."
    )
    calendar = calendar_of(email)
    [vevent] = calendar.walk("VEVENT")
    assert str(calendar["method"]) == "REQUEST"
    # The entry of the first booking, moved: same UID, a higher sequence.
    assert str(vevent["uid"]) == "rdv-0001@guichet-unique.gouv.fr"
    assert vevent["sequence"] == 2
    assert vevent.decoded("dtstart") == dt.datetime(2027, 3, 3, 13, 0, tzinfo=dt.UTC)
    # Cancelled after the move: the same entry, one higher again.
    await handle(
        notification_db,
        appointments.on_appointment_cancelled,
        cancelled(appointment=event.appointment),
    )
    cancel_email = (await contents(notification_db))[
        "GU-2027-RDV00001:appointment_cancelled:rdv-0002"
    ]["email"]
    [gone] = calendar_of(cancel_email).walk("VEVENT")
    assert (str(gone["uid"]), gone["sequence"]) == ("rdv-0001@guichet-unique.gouv.fr", 3)


# ------------------------------------------------------------------ the cancellation


async def test_a_cancellation_says_who_cancelled_and_why_and_cancels_the_calendar_entry(
    notification_db,
):
    event = cancelled(
        cancelled_by=AppointmentSide.AGENT,
        cancelled_by_agent=referent().agent_id,
        reason="Je suis en formation ce jour-là.",
    )

    await handle(notification_db, appointments.on_appointment_cancelled, event)

    [(key, content)] = (await contents(notification_db)).items()
    assert key == "GU-2027-RDV00001:appointment_cancelled:rdv-0001"
    email = content["email"]
    assert email["subject"] == (
        "Votre dossier GU-2027-RDV00001 : votre rendez-vous avec Yasmine Haddad est annulé"
    )
    assert email["text"] == (
        "Bonjour Awa Diallo,\n\n"
        "Votre rendez-vous du mardi 2 mars 2027 à 9 h 30 avec Yasmine Haddad, votre référent "
        "pour le dossier GU-2027-RDV00001, à France Services Saint-Denis (2 place du Caquet, "
        "93200 Saint-Denis), est annulé par votre référent. Motif : Je suis en formation ce "
        "jour-là.\n\n"
        "Ouvrez la pièce jointe pour le retirer de votre agenda. Vous pouvez prendre un nouveau "
        "rendez-vous depuis votre espace en ligne, ou en appelant directement votre référent : "
        "ses coordonnées sont ci-dessous.\n" + SIGNATURE
    )
    assert content["sms"]["text"] == (
        "Dossier GU-2027-RDV00001 : votre rendez-vous du mardi 2 mars 2027 à 9 h 30 avec "
        "Yasmine Haddad est annulé par votre référent. Motif : Je suis en formation ce jour-là. "
        "Pour un autre rendez-vous, appelez le 01 49 33 60 12."
    )
    calendar = calendar_of(email)
    [vevent] = calendar.walk("VEVENT")
    assert str(calendar["method"]) == "CANCEL"
    # The confirmation's UID, a higher sequence: the calendar takes that entry away.
    assert str(vevent["uid"]) == "rdv-0001@guichet-unique.gouv.fr"
    assert (vevent["sequence"], str(vevent["status"])) == (1, "CANCELLED")
    assert vevent.decoded("dtstart") == dt.datetime(2027, 3, 2, 8, 30, tzinfo=dt.UTC)


async def test_a_cancellation_asked_by_the_citizen_without_a_reason(notification_db):
    await handle(notification_db, appointments.on_appointment_cancelled, cancelled())

    [content] = (await contents(notification_db)).values()
    assert ("Saint-Denis), est annulé à votre demande.\n\nOuvrez la pièce jointe") in content[
        "email"
    ]["text"]
    assert "Motif" not in content["email"]["text"]
    assert content["sms"]["text"].startswith(
        "Dossier GU-2027-RDV00001 : votre rendez-vous du mardi 2 mars 2027 à 9 h 30 avec "
        "Yasmine Haddad est annulé à votre demande. Pour un autre rendez-vous"
    )


# ------------------------------------------------------------------ the reminder


async def test_the_reminder_goes_by_email_or_sms_with_the_time_and_place(notification_db):
    await handle(notification_db, appointments.on_appointment_reminder_issued, reminded())

    [row] = await notification_db.rows("notifications")
    assert (row.notification_id, row.plan) == (
        "GU-2027-RDV00001:appointment_reminder:rdv-0001",
        "email,sms",
    )
    content = json.loads(row.content)
    assert content["email"]["subject"] == (
        "Votre dossier GU-2027-RDV00001 : rappel de votre rendez-vous avec Yasmine Haddad"
    )
    assert content["email"]["text"] == (
        "Bonjour Awa Diallo,\n\n"
        "Nous vous rappelons votre rendez-vous avec Yasmine Haddad, votre référent pour le "
        "dossier GU-2027-RDV00001 :\n\n"
        "le mardi 2 mars 2027 à 9 h 30 (jusqu'à 10 h)\n"
        "France Services Saint-Denis\n"
        "2 place du Caquet, 93200 Saint-Denis\n\n"
        "Pensez à apporter une pièce d'identité et les documents utiles à votre dossier. Si "
        "vous ne pouvez pas venir, prévenez votre référent au plus tôt : ses coordonnées sont "
        "ci-dessous.\n" + SIGNATURE
    )
    assert "attachments" not in content["email"]
    assert content["sms"]["text"] == (
        "Rappel, dossier GU-2027-RDV00001 : rendez-vous le mardi 2 mars 2027 à 9 h 30 avec "
        "Yasmine Haddad, France Services Saint-Denis, 2 place du Caquet, 93200 Saint-Denis. "
        "Empêchement : appelez le 01 49 33 60 12."
    )


async def test_no_reminder_by_letter_it_would_arrive_after_the_appointment(notification_db):
    # Email and SMS left out by the preference: letters only. Their reminder letter was
    # planned with the confirmation, posted days before (test_appointment_reminder_letters.py).
    letters_only = citizen(preferred_channel=PreferredChannel.LETTER, **POSTAL)
    await handle(
        notification_db, appointments.on_appointment_reminder_issued, reminded(citizen=letters_only)
    )
    assert await notification_db.rows("notifications") == []

    # A citizen who asked to be phoned: their référent is asked to call, no letter.
    phoned = citizen(preferred_channel=PreferredChannel.PHONE, **POSTAL)
    await handle(
        notification_db, appointments.on_appointment_reminder_issued, reminded(citizen=phoned)
    )
    [call] = await notification_db.rows("notifications")
    assert (call.notification_id, call.kind, call.recipient) == (
        "GU-2027-RDV00001:appointment_reminder:rdv-0001:appel",
        "call_requested",
        referent().email,
    )
    assert json.loads(call.content)["email"]["text"] == (
        "Bonjour Yasmine Haddad,\n\n"
        "Awa Diallo a choisi d'être contacté(e) par téléphone. Merci de l'appeler au 0612345678 "
        "au sujet du dossier GU-2027-RDV00001 : « Votre dossier GU-2027-RDV00001 : rappel de "
        "votre rendez-vous avec Yasmine Haddad ».\n\n"
        "Aucun courrier ne lui est envoyé : il arriverait trop tard.\n"
        "\n--\n"
        "Yasmine Haddad\n"
        "Contact pour ce dossier — France Services Saint-Denis\n"
        "Téléphone direct : 01 49 33 60 12\n"
        "Courriel : yasmine.haddad@france-services.gouv.fr\n"
        "Accueil : Du lundi au vendredi, 9h-12h30 et 13h30-17h\n"
    )


# ------------------------------------------------------------------ never twice


@pytest.mark.parametrize(
    ("handler", "event"),
    [
        (appointments.on_appointment_booked, booked()),
        (appointments.on_appointment_cancelled, cancelled()),
        (appointments.on_appointment_reminder_issued, reminded()),
    ],
    ids=["booked", "cancelled", "reminder"],
)
async def test_the_same_fact_under_a_new_event_id_records_nothing_more(
    notification_db, handler, event
):
    await handle(notification_db, handler, event)
    await handle(notification_db, handler, event.model_copy(update={"event_id": uuid.uuid4()}))

    [row] = await notification_db.rows("notifications")
    assert row.notification_id.endswith(":rdv-0001")
    assert len(await notification_db.rows("inbox")) == 2  # both events were handled
