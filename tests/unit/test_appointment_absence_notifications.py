"""What the citizen receives when their appointment is cancelled because their référent was
declared absent on its day (issue 16 §3): the reason, and whom they may book with again (the
colleague covering the file, the same référent on another day, or nobody yet). Word for
word, written out by hand; notification's handler on its real SQLite database."""

from __future__ import annotations

import datetime as dt

from intake.domain.appointments import cancelled_sentence
from notification import appointments
from shared_models import AbsenceCancellation, AppointmentSide
from tests.unit.samples import referent
from tests.unit.test_appointment_notifications import SIGNATURE, cancelled, contents, handle

REASON = "Yasmine Haddad sera absent(e) du 1er au 3 mars 2027."
COVER = referent(
    agent_id="AG-93-01-4",
    name="Karim Benali",
    phone="01 49 33 60 14",
    email="karim.benali@france-services.gouv.fr",
)
OPENING = (
    "Bonjour Awa Diallo,\n\n"
    "Votre rendez-vous du mardi 2 mars 2027 à 9 h 30 avec Yasmine Haddad, votre référent pour "
    "le dossier GU-2027-RDV00001, à France Services Saint-Denis (2 place du Caquet, 93200 "
    "Saint-Denis), est annulé : Yasmine Haddad sera absent(e) du 1er au 3 mars 2027.\n\n"
    "Ouvrez la pièce jointe pour le retirer de votre agenda. "
)


def for_absence(book_again_with):
    return cancelled(
        cancelled_by=AppointmentSide.AGENT,
        cancelled_by_agent="SUP-IDF",
        reason=REASON,
        absence=AbsenceCancellation(
            starts_on=dt.date(2027, 3, 1),
            ends_on=dt.date(2027, 3, 3),
            book_again_with=book_again_with,
        ),
    )


async def test_the_citizen_is_sent_to_the_colleague_covering_their_file(notification_db):
    await handle(notification_db, appointments.on_appointment_cancelled, for_absence(COVER))

    [(key, content)] = (await contents(notification_db)).items()
    assert key == "GU-2027-RDV00001:appointment_cancelled:rdv-0001"
    assert content["email"]["subject"] == (
        "Votre dossier GU-2027-RDV00001 : votre rendez-vous avec Yasmine Haddad est annulé"
    )
    assert content["email"]["text"] == (
        OPENING + "Pendant cette absence, Karim Benali (France Services Saint-Denis, téléphone "
        "direct : 01 49 33 60 14) suit votre dossier : vous pouvez reprendre rendez-vous avec "
        "Karim Benali depuis votre espace en ligne.\n" + SIGNATURE
    )
    assert content["sms"]["text"] == (
        "Dossier GU-2027-RDV00001 : votre rendez-vous du mardi 2 mars 2027 à 9 h 30 avec "
        "Yasmine Haddad est annulé : Yasmine Haddad sera absent(e) du 1er au 3 mars 2027. "
        "Reprenez rendez-vous avec Karim Benali, qui suit votre dossier pendant cette absence, "
        "depuis votre espace.\n"
        "Yasmine Haddad, France Services Saint-Denis, tél. direct 01 49 33 60 12"
    )


async def test_a_planned_absence_sends_them_to_another_day_with_their_referent(notification_db):
    event = for_absence(referent())

    await handle(notification_db, appointments.on_appointment_cancelled, event)

    [content] = (await contents(notification_db)).values()
    assert content["email"]["text"] == (
        OPENING + "Vous pouvez reprendre rendez-vous avec Yasmine Haddad un autre jour, en "
        "dehors de son absence, depuis votre espace en ligne.\n" + SIGNATURE
    )
    assert content["sms"]["text"].endswith(
        "du 1er au 3 mars 2027. Reprenez rendez-vous un autre jour depuis votre espace.\n"
        "Yasmine Haddad, France Services Saint-Denis, tél. direct 01 49 33 60 12"
    )


async def test_a_file_waiting_for_a_referent_is_told_it_will_be_possible_later(notification_db):
    await handle(notification_db, appointments.on_appointment_cancelled, for_absence(None))

    [content] = (await contents(notification_db)).values()
    assert content["email"]["text"] == (
        OPENING + "Vous pourrez reprendre rendez-vous depuis votre espace en ligne dès qu'un "
        "agent suivra de nouveau votre dossier : vous en serez prévenu(e).\n" + SIGNATURE
    )


def test_the_files_timeline_tells_the_cancellation_and_its_reason():
    event = for_absence(COVER)
    sentence = cancelled_sentence(
        event.appointment,
        event.referent,
        event.cancelled_by,
        event.cancelled_by_agent,
        event.reason,
    )
    assert sentence == (
        "Rendez-vous du mardi 2 mars 2027 à 9 h 30 avec Yasmine Haddad annulé par un agent de "
        "France Services. Motif : Yasmine Haddad sera absent(e) du 1er au 3 mars 2027."
    )
