"""Appointments with the référent (issue 16 §3), end to end on the real broker, SQLite and
PostgreSQL: two citizens of one référent race for the same slot and get one booking and one
clear refusal; the winner's confirmation (with its `.ics`) reaches their mailbox and their
file's timeline; the other books the next slot, both appear in the référent's day, and a
cancellation frees the slot again and tells the citizen."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from devstack.stack import Stack
from tests.e2e.support import (
    BACKENDS,
    citizen_client,
    client_as,
    eventually,
    file_body,
    mails_for,
)

pytestmark = pytest.mark.integration

SLOT_TAKEN = "Ce créneau vient d'être réservé par quelqu'un d'autre. Choisissez-en un autre."


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request, shared_stack):
    """The session's stack on each backend (tests/e2e/conftest.py)."""
    return shared_stack(request.param)


async def referent_of(client: httpx.AsyncClient, file_id: str, agent: str | None = None) -> dict:
    """The file's référent as intake shows it (`agent`: once it is this agent)."""

    async def named():
        card = (await client.get(f"/api/files/{file_id}")).json().get("referent")
        if card and card.get("agent_id") and agent in (None, card["agent_id"]):
            return card
        return None

    return await eventually(named, what=f"the référent of {file_id}")


async def known_at_assignment(client: httpx.AsyncClient, file_id: str, agent: str) -> dict:
    async def listed():
        answer = await client.get(f"/api/files/{file_id}/appointments")
        body = answer.json() if answer.status_code == 200 else {}
        referent = body.get("referent") or {}
        return body if referent.get("agent_id") == agent else None

    return await eventually(listed, what=f"{file_id} with {agent} at assignment")


def calendars(stack: Stack, mail: dict) -> list:
    """The `.ics` parts of the emails of a file."""
    return [
        part
        for m in mails_for(stack.maildir, mail["file_id"])
        for part in m.walk()
        if part.get_content_type() == "text/calendar"
    ]


async def test_two_citizens_race_for_one_slot_then_book_move_and_cancel(stack: Stack, tokens):
    async with (
        citizen_client(stack, tokens) as marie,
        citizen_client(stack, tokens, "lucas.bernard") as lucas,
    ):
        mine = await marie.post("/api/files", json=file_body(email="rdv.marie@example.fr"))
        his = await lucas.post(
            "/api/files",
            json=file_body(given_name="Lucas", family_name="Bernard", email="rdv.lucas@example.fr"),
        )
        marie_file, lucas_file = mine.json()["file_id"], his.json()["file_id"]
        referent = await referent_of(marie, marie_file)
        agent = referent["agent_id"]
        other = await referent_of(lucas, lucas_file)
        if other["agent_id"] != agent:
            # One référent for both: a supervisor of Lucas's référent's office gives it.
            supervisor = tokens.supervisor_of(other["office_id"])
            async with client_as(stack.assignment_url, lambda: supervisor) as desk:
                moved = await desk.post(
                    f"/api/files/{lucas_file}/reassign",
                    json={"reason": "Un seul référent pour le quartier.", "agent_id": agent},
                )
                assert moved.status_code == 200, moved.text
            await referent_of(lucas, lucas_file, agent)

    async with (
        client_as(stack.assignment_url, lambda: tokens.citizen("marie.dupont")) as marie_a,
        client_as(stack.assignment_url, lambda: tokens.citizen("lucas.bernard")) as lucas_a,
        client_as(stack.assignment_url, lambda: tokens.agent_id(agent)) as desk,
    ):
        await known_at_assignment(marie_a, marie_file, agent)
        await known_at_assignment(lucas_a, lucas_file, agent)
        # Lucas cannot see Marie's appointments (intake says he is not her file's citizen).
        peek = await lucas_a.get(f"/api/files/{marie_file}/appointments/slots")
        assert peek.status_code == 403

        slots = (await marie_a.get(f"/api/files/{marie_file}/appointments/slots")).json()
        first, second = slots["days"][0]["slots"][:2]
        race = await asyncio.gather(
            marie_a.post(
                f"/api/files/{marie_file}/appointments", json={"starts_at": first["starts_at"]}
            ),
            lucas_a.post(
                f"/api/files/{lucas_file}/appointments", json={"starts_at": first["starts_at"]}
            ),
        )
        assert sorted(a.status_code for a in race) == [201, 409], [a.text for a in race]
        won, lost = sorted(race, key=lambda a: a.status_code)
        assert lost.json()["message"] == SLOT_TAKEN
        winner = won.json()
        loser_file = lucas_file if winner["file_id"] == marie_file else marie_file
        loser = lucas_a if loser_file == lucas_file else marie_a
        assert winner["starts_at"] == first["starts_at"] and winner["status"] == "reserve"

        # The loser takes the next slot; both are in the référent's day, by time.
        booked = await loser.post(
            f"/api/files/{loser_file}/appointments", json={"starts_at": second["starts_at"]}
        )
        assert booked.status_code == 201, booked.text
        day = slots["days"][0]["day"]
        seen = (await desk.get(f"/api/agents/{agent}/appointments", params={"day": day})).json()
        assert [(a["file_id"], a["starts_at"]) for a in seen["appointments"]] == [
            (winner["file_id"], first["starts_at"]),
            (loser_file, second["starts_at"]),
        ]

        # The référent cancels the loser's appointment: the slot is offered again.
        cancelled = await desk.post(
            f"/api/files/{loser_file}/appointments/{booked.json()['appointment_id']}/cancel",
            json={"reason": "Je serai en réunion à cette heure-là."},
        )
        assert cancelled.status_code == 200, cancelled.text
        again = (await loser.get(f"/api/files/{loser_file}/appointments/slots")).json()
        starts = [s["starts_at"] for s in again["days"][0]["slots"]]
        assert second["starts_at"] in starts and first["starts_at"] not in starts

    # The winner's confirmation reaches their mailbox with its calendar entry; the loser is
    # told of the cancellation (a METHOD:CANCEL entry).
    [invite] = await eventually(
        lambda: _async(calendars(stack, winner)), what="the confirmation's .ics"
    )
    assert "METHOD:REQUEST" in invite.get_content()
    assert f"UID:{winner['appointment_id']}" in invite.get_content()
    starts_utc = dt.datetime.fromisoformat(first["starts_at"]).astimezone(dt.UTC)
    assert f"DTSTART:{starts_utc:%Y%m%dT%H%M%S}Z" in invite.get_content()
    cancel_entries = await eventually(
        lambda: _async(
            [
                p
                for p in calendars(stack, {"file_id": loser_file})
                if "METHOD:CANCEL" in p.get_content()
            ]
        ),
        what="the cancellation's .ics",
    )
    assert len(cancel_entries) == 1


async def _async(value):
    return value
