"""The appointment events through notification as it runs: its own composition root
(`bootstrap`) subscribed to `appointments.events` on FastStream's in-memory broker, its real
SQLite database, its real channels (the SMTP sink, the SMS gateway simulator). The email
leaves with its calendar file attached under the Message-ID recorded before sending; an SMS
has none; a replayed event, or the same fact under a new event id, sends nothing twice."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker
from icalendar import Calendar

from guichet_runtime.sealing import new_key
from notification.bootstrap import NotificationSettings, bootstrap
from notification.dispatch import dispatch_pending
from shared_models import Envelope, NotificationSent, PreferredChannel, topics
from tests.unit.samples import citizen
from tests.unit.test_appointment_notifications import booked, cancelled


@pytest.fixture
async def service(notification_db, channels) -> AsyncIterator[Any]:
    """Notification's runtime on the test's database, its broker in memory."""
    app = bootstrap(
        NotificationSettings(database_url=notification_db.url, access_code_key=new_key()),
        channels=channels,
    )
    runtime = app.state.runtime
    runtime.consumer.attach()
    async with TestKafkaBroker(runtime.broker):
        yield runtime
    await runtime.engine.dispose()


async def publish(runtime, event: Envelope) -> None:
    await runtime.broker.publish(
        event.model_dump_json().encode(),
        topics.APPOINTMENTS,
        key=event.file_id.encode(),
        headers={"event_type": event.event_type},
    )


async def dispatch_all(runtime, channels) -> int:
    sent = 0
    while n := await dispatch_pending(runtime.uow, channels):
        sent += n
    return sent


def calendar_part(mail) -> tuple[Any, Calendar]:
    [part] = [p for p in mail.iter_attachments() if p.get_content_type() == "text/calendar"]
    return part, Calendar.from_ical(part.get_content())


async def test_the_confirmation_email_carries_the_calendar_file_once_even_when_replayed(
    service, channels, sink, notification_db
):
    event = booked()

    await publish(service, event)
    await publish(service, event)  # redelivered: the inbox drops it
    await publish(service, event.model_copy(update={"event_id": uuid.uuid4()}))  # same fact

    assert await dispatch_all(service, channels) == 1
    assert await dispatch_all(service, channels) == 0

    [mail] = sink.mails()
    assert mail.get_content_type() == "multipart/mixed"
    assert mail["Message-ID"] == (
        "<GU-2027-RDV00001.appointment_booked.rdv-0001@guichet-unique.gouv.fr>"
    )
    assert mail["Subject"] == (
        "Votre dossier GU-2027-RDV00001 : rendez-vous confirmé avec Yasmine Haddad"
    )
    text = mail.get_body(preferencelist=("plain",)).get_content()
    page = mail.get_body(preferencelist=("html",)).get_content()
    assert "le mardi 2 mars 2027 à 9 h 30 (jusqu'à 10 h)" in text
    assert "Téléphone direct : 01 49 33 60 12" in text and "Yasmine Haddad" in page
    part, calendar = calendar_part(mail)
    assert part.get_filename() == "rendez-vous.ics"
    assert part.get_param("method") == "REQUEST"
    [vevent] = calendar.walk("VEVENT")
    assert str(vevent["uid"]) == "rdv-0001@guichet-unique.gouv.fr"
    assert vevent.decoded("dtstart") == dt.datetime(2027, 3, 2, 8, 30, tzinfo=dt.UTC)
    assert str(vevent["location"]) == "2 place du Caquet, 93200 Saint-Denis"

    [row] = await notification_db.rows("notifications")
    assert (row.status, row.kind) == ("envoye", "appointment_booked")
    assert len(await notification_db.rows("inbox")) == 2
    reported = [e for _, e in await notification_db.outbox_events()]
    assert [(type(e), e.kind.value) for e in reported] == [(NotificationSent, "appointment_booked")]


async def test_the_cancellation_email_cancels_the_same_calendar_entry(
    service, channels, sink, notification_db
):
    await publish(service, booked())
    await publish(service, cancelled())

    assert await dispatch_all(service, channels) == 2

    mails = {m["Message-ID"]: m for m in sink.mails()}
    confirmation = mails["<GU-2027-RDV00001.appointment_booked.rdv-0001@guichet-unique.gouv.fr>"]
    cancellation = mails["<GU-2027-RDV00001.appointment_cancelled.rdv-0001@guichet-unique.gouv.fr>"]
    _, requested = calendar_part(confirmation)
    part, cancelling = calendar_part(cancellation)
    assert part.get_param("method") == "CANCEL" and str(cancelling["method"]) == "CANCEL"
    [first], [second] = requested.walk("VEVENT"), cancelling.walk("VEVENT")
    assert str(first["uid"]) == str(second["uid"]) == "rdv-0001@guichet-unique.gouv.fr"
    assert second["sequence"] > first["sequence"]


async def test_an_sms_carries_the_text_and_no_attachment(service, channels, gateway):
    event = booked(citizen=citizen(preferred_channel=PreferredChannel.SMS))

    await publish(service, event)
    await publish(service, event.model_copy(update={"event_id": uuid.uuid4()}))

    assert await dispatch_all(service, channels) == 1
    [sms] = gateway[1].get("/api/sms").json()
    assert sms["text"] == (
        "Dossier GU-2027-RDV00001 : rendez-vous confirmé le mardi 2 mars 2027 à 9 h 30 avec "
        "Yasmine Haddad, France Services Saint-Denis, 2 place du Caquet, 93200 Saint-Denis. "
        "Empêchement : appelez le 01 49 33 60 12."
    )
