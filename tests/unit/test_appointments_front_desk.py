"""A front-desk agent books for a citizen on the phone (issue 16 §3): the front desk of the
référent's office may book, move and cancel the file's appointments, stating why each time
(the reason goes to the audit trail), and sees nothing of the file but the citizen's name and
the référent's slots; the front desk of another office is refused, an anonymous caller asked
to log in. Real routes on assignment's real SQLite database (tests.unit.test_appointments)."""

from __future__ import annotations

from guichet_runtime.audit import REASON_NEEDED
from tests.unit import test_appointments as booking
from tests.unit.test_appointments import TUESDAY_9H, booked_events

calendar = booking.calendar  # the fixture: Awa's file with its référent, assignment's routes

ON_THE_PHONE = "Appel téléphonique de l'usager"


def desk_agent(calendar, office: str = "FS-93-01") -> str:
    """An agent of `office` in the directory, not the file's référent."""
    number = office.removeprefix("FS-")
    return next(a for a in (f"AG-{number}-{n}" for n in (1, 2, 3)) if a != calendar.agent_id)


def front_desk_of(calendar, office: str) -> dict[str, str]:
    """A front-desk agent of `office` (in the directory), who did not register the file."""
    return calendar.tokens.guichet(desk_agent(calendar, office))


async def audit_entries(calendar, action: str) -> list:
    log = calendar.db.tables.audit.log
    return await calendar.db.rows(log, log.c.action == action)


async def test_the_front_desk_of_the_referents_office_books_moves_cancels_stating_why(calendar):
    assert calendar.agent_id.startswith("AG-93-01-")  # Awa lives in the 93
    desk = front_desk_of(calendar, "FS-93-01")
    url = f"/api/files/{calendar.file_id}/appointments"

    # What booking needs: the citizen's name, the référent's card and slots.
    card = await calendar.get(url, headers=desk)
    assert card.status_code == 200, card.text
    assert card.json()["citizen"] == {"given_name": "Awa", "family_name": "Diallo"}
    assert card.json()["referent"]["agent_id"] == calendar.agent_id
    # Their reading of the citizen's name is in the audit trail.
    [read] = await audit_entries(calendar, "file.appointments.read")
    assert (read.file_id, read.actor_agent_id) == (calendar.file_id, desk_agent(calendar))
    slots = await calendar.get(f"{url}/slots", headers=desk)
    assert slots.status_code == 200 and slots.json()["days"][0]["day"] == "2027-03-02"

    # No reason stated: refused, nothing booked.
    for missing in ({"starts_at": TUESDAY_9H}, {"starts_at": TUESDAY_9H, "access_reason": " "}):
        refused = await calendar.post(url, json=missing, headers=desk)
        assert refused.status_code == 422, refused.text
        assert refused.json()["message"] == REASON_NEEDED
        assert refused.json()["field"] == "access_reason"
    assert await calendar.db.rows("appointments") == []

    booked = await calendar.post(
        url, json={"starts_at": TUESDAY_9H, "access_reason": ON_THE_PHONE}, headers=desk
    )
    assert booked.status_code == 201, booked.text
    assert booked.json()["booked_by"] == "agent"
    [event] = await booked_events(calendar.db)
    assert event.booked_by_agent != calendar.agent_id and event.booked_by_agent is not None
    [entry] = await audit_entries(calendar, "file.appointment.booked")
    assert (entry.file_id, entry.actor_agent_id, entry.reason) == (
        calendar.file_id,
        event.booked_by_agent,
        ON_THE_PHONE,
    )

    moved_url = f"{url}/{booked.json()['appointment_id']}/move"
    later = {"starts_at": "2027-03-04T14:00:00+01:00"}
    assert (await calendar.post(moved_url, json=later, headers=desk)).status_code == 422
    moved = await calendar.post(
        moved_url, json={**later, "access_reason": "Appel de l'usager : empêchement"}, headers=desk
    )
    assert moved.status_code == 200, moved.text
    [entry] = await audit_entries(calendar, "file.appointment.moved")
    assert entry.reason == "Appel de l'usager : empêchement"

    cancel_url = f"{url}/{moved.json()['appointment_id']}/cancel"
    told = {"reason": "Vous nous avez appelés pour annuler."}
    assert (await calendar.post(cancel_url, json=told, headers=desk)).status_code == 422
    cancelled = await calendar.post(
        cancel_url, json={**told, "access_reason": ON_THE_PHONE}, headers=desk
    )
    assert cancelled.status_code == 200, cancelled.text
    [entry] = await audit_entries(calendar, "file.appointment.cancelled")
    assert (entry.reason, entry.file_id) == (ON_THE_PHONE, calendar.file_id)


async def test_the_front_desk_of_another_office_is_refused_and_nothing_is_written(calendar):
    url = f"/api/files/{calendar.file_id}/appointments"
    elsewhere = front_desk_of(calendar, "FS-75-01")
    body = {"starts_at": TUESDAY_9H, "access_reason": ON_THE_PHONE}
    assert (await calendar.get(url, headers=elsewhere)).status_code == 403
    assert (await calendar.get(f"{url}/slots", headers=elsewhere)).status_code == 403
    refused = await calendar.post(url, json=body, headers=elsewhere)
    assert refused.status_code == 403
    assert refused.json()["message"] == "Vous n'avez pas accès à cette ressource."
    # A front-desk token whose agent the directory does not know: refused too.
    assert (
        await calendar.post(url, json=body, headers=calendar.tokens.guichet("AG-X"))
    ).status_code == 403
    # A référent of the référent's office is no front desk: refused.
    referent_colleague = calendar.tokens.agent(
        next(a for a in ("AG-93-01-1", "AG-93-01-2", "AG-93-01-3") if a != calendar.agent_id)
    )
    assert (await calendar.post(url, json=body, headers=referent_colleague)).status_code == 403
    anonymous = await calendar.post(url, json=body, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert await calendar.db.rows("appointments") == []
    assert await audit_entries(calendar, "file.appointment.booked") == []


async def test_the_referent_and_the_citizen_state_no_reason(calendar):
    url = f"/api/files/{calendar.file_id}/appointments"
    booked = await calendar.post(
        url, json={"starts_at": TUESDAY_9H}, headers=calendar.tokens.agent(calendar.agent_id)
    )
    assert booked.status_code == 201, booked.text
    [entry] = await audit_entries(calendar, "file.appointment.booked")
    assert entry.reason is None
    # The référent's reading of the file's appointments is not one to record.
    card = await calendar.get(url, headers=calendar.tokens.agent(calendar.agent_id))
    assert card.status_code == 200
    assert await audit_entries(calendar, "file.appointments.read") == []
