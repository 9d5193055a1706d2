"""Infrastructure: an appointment as a calendar file (iCalendar, RFC 5545, with the iTIP
methods of RFC 5546), attached to the email that confirms it (`REQUEST`) and to the one that
cancels it (`CANCEL`), so the citizen's calendar adds it or takes it away.

The calendar recognises the appointment by its UID, `<calendar id>@<mail domain>`: the id
of the first appointment of a chain of moves (`Appointment.calendar_id`, else its own id),
so a move's confirmation updates the same entry, and a cancellation removes it. The SEQUENCE
grows with each move and is one higher for a cancellation (`sequence`), so a calendar
applies the latest.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from icalendar import Calendar, Event, vCalAddress, vText

from notification.domain import MAIL_DOMAIN
from shared_models import Appointment, CitizenContact, Referent

Method = Literal["REQUEST", "CANCEL"]
REQUEST: Method = "REQUEST"
CANCEL: Method = "CANCEL"
PRODID = "-//Guichet unique//Rendez-vous France Services//FR"
FILENAME = "rendez-vous.ics"
#: Each method's STATUS.
_STATUS: dict[Method, str] = {REQUEST: "CONFIRMED", CANCEL: "CANCELLED"}


def uid(appointment: Appointment) -> str:
    """The appointment's identity in calendars (shared by the appointments of a chain of
    moves)."""
    return f"{appointment.calendar_id or appointment.appointment_id}@{MAIL_DOMAIN}"


def sequence(method: Method, appointment: Appointment) -> int:
    """0 for the first confirmation, 2 after one move, 4 after two…; a cancellation one
    higher than the confirmation it cancels: a calendar applies the highest."""
    return 2 * appointment.revision + (1 if method == CANCEL else 0)


def _address(email: str, name: str, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    address.params["cn"] = vText(name)
    for key, value in params.items():
        address.params[key.replace("_", "-")] = vText(value)
    return address


def appointment_ics(
    method: Method,
    appointment: Appointment,
    referent: Referent,
    citizen: CitizenContact,
    *,
    file_id: str,
    stamp: dt.datetime,
) -> str:
    """The calendar file of `appointment`: start and end in UTC, the office's address as its
    location, a French summary, the référent as organiser, the citizen as attendee (when they
    have an email). `stamp` (DTSTAMP) is the event's time, so a replay builds the same file."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    event = Event()
    event.add("uid", uid(appointment))
    event.add("dtstamp", stamp.astimezone(dt.UTC))
    event.add("dtstart", appointment.starts_at.astimezone(dt.UTC))
    event.add("dtend", appointment.ends_at.astimezone(dt.UTC))
    event.add("sequence", sequence(method, appointment))
    event.add("status", _STATUS[method])
    event.add("summary", f"Rendez-vous avec {referent.name}, votre référent ({referent.office})")
    event.add("location", appointment.office_address)
    event.add(
        "description",
        f"Dossier {file_id}. Votre référent : {referent.name}, {referent.office}, "
        f"téléphone direct {referent.phone}.",
    )
    event.add("organizer", _address(referent.email, referent.name))
    if citizen.email:
        event.add(
            "attendee",
            _address(
                citizen.email,
                f"{citizen.given_name} {citizen.family_name}",
                role="REQ-PARTICIPANT",
                partstat="ACCEPTED",
                rsvp="FALSE",
            ),
        )
    calendar.add_component(event)
    text: str = calendar.to_ical().decode("utf-8")
    return text


def attachment(ics: str, method: Method) -> dict[str, object]:
    """The calendar file as an email attachment (`recording.record(email_attachments=…)`):
    `text/calendar` with its method, as calendar clients expect."""
    return {
        "filename": FILENAME,
        "content_type": "text/calendar",
        "params": {"method": method},
        "text": ics,
    }
