"""The answer-time promise of the citizen's messages (issue 16 §2) on real processes and a
controllable date, on SQLite and on PostgreSQL (the session's clock stack, after the legal
clock's module): a message written on a Monday is promised an answer by Wednesday; nothing
on Tuesday; on Wednesday the référent is reminded once; on Thursday the supervisors of the
département are alerted once each and the citizen's timeline says so, with the assignment
service killed (SIGKILL) after each step."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt

import pytest

from devstack.stack import Stack
from guichet_runtime.clock import PARIS
from tests.e2e.legal_clock_support import deadline_events, once_each, settle, today
from tests.e2e.support import citizen_client, eventually, file_body, mails_for

pytestmark = pytest.mark.integration

ADDRESS = {"street": "3 rue des Lilas", "city": "Bobigny", "postcode": "93000"}


#: A Monday after the legal clock's module has moved the clock (it only moves forward); no
#: public holiday in the days that follow.
MESSAGE_DAY = dt.date(2027, 9, 6)


def promise_mails(stack: Stack, file_id: str) -> collections.Counter:
    """(kind, recipient) -> how many emails of the answer-time promise the sink holds."""
    counts: collections.Counter = collections.Counter()
    for mail in mails_for(stack.maildir, file_id):
        if "un message de l'usager attend votre réponse" in mail["Subject"]:
            counts[("rappel", mail["To"])] += 1
        elif "message de l'usager sans réponse dans le délai promis" in mail["Subject"]:
            counts[("retard", mail["To"])] += 1
    return counts


@pytest.fixture
def stack(clock_stack) -> Stack:
    return clock_stack


@pytest.fixture
async def client(stack, tokens):
    """Marie's client of intake: she submits the file and writes to her référent."""
    async with citizen_client(stack, tokens) as c:
        yield c


async def test_an_unanswered_message_reminds_on_its_last_day_then_escalates_once_across_a_crash(
    stack: Stack, client
):
    assert today(stack) <= MESSAGE_DAY, "an earlier module moved the clock past this test's day"
    response = await client.post("/api/files", json=file_body("naissance", **ADDRESS))
    assert response.status_code == 201, response.text
    file_id = response.json()["file_id"]

    async def named():
        found = (await client.get(f"/api/files/{file_id}")).json()["referent"]
        return found if found and found.get("agent_id") else None

    referent = await eventually(named, what="the file's référent")
    stack.travel_to(MESSAGE_DAY)
    sent = await client.post(
        f"/api/files/{file_id}/citizen-messages",
        data={"text": "Bonjour, faut-il envoyer l'acte de naissance par courrier ?"},
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["answer_due_on"] == "2027-09-08"  # Monday -> Wednesday
    assert sent.json()["message"].endswith("qui vous répondra au plus tard le 08/09/2027.")
    await settle(stack)
    assert promise_mails(stack, file_id) == collections.Counter()  # not due yet

    # Tuesday: still nothing; Wednesday, the last day: the référent is reminded, once.
    stack.travel_to(dt.date(2027, 9, 7))
    await settle(stack)
    assert promise_mails(stack, file_id) == collections.Counter()
    stack.travel_to(dt.date(2027, 9, 8))
    reminded = collections.Counter({("rappel", referent["email"]): 1})

    async def arrived(expected):
        got = promise_mails(stack, file_id)
        assert not got - expected, f"unexpected or duplicate messages: {got - expected}"
        return got == expected

    await eventually(lambda: arrived(reminded), timeout=30, what="the reminder")
    stack.kill("assignment")
    await asyncio.to_thread(stack.restart, "assignment")
    await settle(stack)
    assert promise_mails(stack, file_id) == reminded

    # Thursday: the promise lapsed. The supervisors of the département, once each.
    stack.travel_to(dt.date(2027, 9, 9))

    def escalated(records):
        return any(
            r["key"] == file_id and r["event_type"] == "CitizenMessageEscalated" for r in records
        )

    records = once_each(
        r
        for r in await deadline_events(stack, escalated)
        if r["key"] == file_id and r["event_type"].startswith("CitizenMessage")
    )
    assert sorted(r["event_type"] for r in records) == [
        "CitizenMessageEscalated",
        "CitizenMessageReminderIssued",
    ]
    [escalation] = [r["body"] for r in records if r["event_type"] == "CitizenMessageEscalated"]
    assert escalation["referent"]["agent_id"] == referent["agent_id"]
    supervisors = {s["email"] for s in escalation["supervisors"]}
    assert supervisors, "nobody alerted"
    expected = reminded + collections.Counter({("retard", email): 1 for email in supervisors})
    await eventually(lambda: arrived(expected), timeout=30, what="the supervisors' alerts")
    stack.kill("assignment")
    await asyncio.to_thread(stack.restart, "assignment")
    stack.travel_to(dt.date(2027, 9, 13))
    await settle(stack)
    assert promise_mails(stack, file_id) == expected

    timeline = (await client.get(f"/api/files/{file_id}")).json()["timeline"]
    [told] = [e["label"] for e in timeline if e["kind"] == "message_en_retard"]
    # The message's own instant is the real one (the clock moves calendar days for the
    # rules, not the stored timestamps).
    day = dt.datetime.fromisoformat(sent.json()["at"]).astimezone(PARIS)
    assert told.startswith(f"Votre message du {day:%d/%m/%Y} n'a pas reçu de réponse dans le")
    assert referent["name"] in told
