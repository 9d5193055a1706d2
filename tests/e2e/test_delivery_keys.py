"""Side effects that survive a crash once as the citizen sees them (issue 14 §3), on the real
broker, on SQLite and PostgreSQL.

notification records each attempt with its delivery key (the Message-ID, the
Idempotency-Key) before calling the provider; the crash point `notification.after_send`
kills it (`os._exit(137)`, as a SIGKILL) after the provider accepted and before the outcome
is recorded. After the lease the message is presented again with the key recorded: the SMS
and postal providers deliver one message per key; SMTP cannot be asked, so the email is
stored twice under the recorded Message-ID, and both the attempt (`resent`) and the SMTP
sink (`/duplicates`) report that one repeat. An adapter killed after the agency answered
asks again with the same request id: the agency answers from its record, counts the repeat
and decides once. Each test uses its own file; a file's messages are all sent before the
next test arms a crash point (so that the point catches the next test's first message).
"""

from __future__ import annotations

import asyncio
import collections

import httpx
import pytest

from devstack.stack import Stack
from guichet_runtime.tls_context import client_tls
from tests.e2e.crash_support import assert_answered_once, crash_at, events_of, submit
from tests.e2e.hold_support import agency_holds
from tests.e2e.support import (
    BACKENDS,
    answered_view,
    citizen_client,
    eventually,
    mails_for,
    query,
    repeats,
    simulator,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ADDRESS = {"street": "8 allée des Tilleuls", "city": "Bobigny", "postcode": "93000"}


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request, shared_stack):
    """The session's shared stack on each backend; each test restarts what it crashed."""
    return shared_stack(request.param)


@pytest.fixture
async def client(stack, tokens):
    """Marie's client of intake: she submits the files, and reads them."""
    async with citizen_client(stack, tokens) as c:
        yield c


async def all_sent(stack: Stack, file_id: str) -> list:
    """The file's attempts (notification id, channel, outcome, key, resends) once its
    messages (at least two: the référent named, the answer) are all sent."""
    url = stack.database_urls["notification"]
    waiting = await query(
        url,
        "SELECT count(*) AS n FROM notifications WHERE file_id = :f AND status <> 'envoye'",
        f=file_id,
    )
    rows = await query(
        url,
        "SELECT notification_id, channel, outcome, delivery_key, resent FROM deliveries "
        "WHERE file_id = :f ORDER BY id",
        f=file_id,
    )
    sent = [r for r in rows if r.outcome == "envoye"]
    return rows if waiting[0].n == 0 and len(sent) >= 2 else []


async def attempts_once_sent(stack: Stack, client: httpx.AsyncClient, file_id: str) -> list:
    await eventually(lambda: answered_view(client, file_id), timeout=150, what="the answer")
    return await eventually(
        lambda: all_sent(stack, file_id), timeout=150, what=f"every message of {file_id} sent"
    )


async def crash_on_the_referents_message(
    stack: Stack, client: httpx.AsyncClient, email: str, **citizen
) -> str:
    """Submit a birth file (the CAF and the CPAM) with notification armed to die after its
    first send: the message naming the référent. The CAF holds its answer until notification
    is back, so the answer's message cannot be in flight beside it (notification sends up to
    four at once: a kill would cut both, and which one reached the provider would be chance).
    Leaving the hold answers the CAF."""
    async with agency_holds(stack, "caf"):
        return await crash_at(
            stack,
            "notification",
            "notification.after_send",
            lambda: submit(client, "naissance", email, **citizen),
        )


def the_cut_attempt(rows: list) -> object:
    """The one attempt the crash cut: every attempt ended `envoye`, one per message, and
    exactly one was presented again, once."""
    assert {r.outcome for r in rows} == {"envoye"}, rows
    assert len({r.notification_id for r in rows}) == len(rows)
    [cut] = [r for r in rows if r.resent]
    assert cut.resent == 1
    return cut


@pytest.mark.parametrize("channel", ["sms", "courrier"])
async def test_a_kill_after_the_provider_accepted_delivers_each_message_once(
    stack, client, channel
):
    """The SMS gateway (or the postal service) accepted the référent's message, notification
    died before recording it: the resend presents the recorded Idempotency-Key, the provider
    answers it from its first answer. One message per key at the provider, the repeat
    counted there as a replayed key and here as a resend."""
    extra = ADDRESS if channel == "courrier" else {}
    file_id = await crash_on_the_referents_message(
        stack, client, f"cle.{channel}@example.fr", preferred_channel=channel, **extra
    )
    rows = await attempts_once_sent(stack, client, file_id)
    cut = the_cut_attempt(rows)
    assert {r.channel for r in rows} == {channel}
    assert cut.notification_id == f"{file_id}:referent_assigned"
    assert [r.delivery_key for r in rows] == [f"{r.notification_id}/{channel}" for r in rows]

    path = "/api/sms" if channel == "sms" else "/api/letters"
    async with httpx.AsyncClient(
        base_url=stack.providers_url, timeout=10, verify=client_tls()
    ) as providers:
        delivered = [x for x in (await providers.get(path)).json() if x["file_id"] == file_id]
    # Exactly one message at the provider per recorded key: nothing delivered twice.
    assert sorted(x["key"] for x in delivered) == sorted(r.delivery_key for r in rows)
    kind = "sms" if channel == "sms" else "letters"
    found = await repeats(stack, [file_id])
    assert [(r["key"], r["calls"]) for r in found[kind]] == [(cut.delivery_key, 2)]
    assert found["mail"] == []
    print(f"{channel} of {file_id}: {len(delivered)} delivered, repeats {found[kind]}")


async def test_a_kill_after_the_smtp_server_accepted_resends_the_recorded_message_id(stack, client):
    """The SMTP server accepted the référent's email, notification died before recording it:
    after the lease it is sent again under the Message-ID recorded before the first send. The
    relay cannot be asked whether it has it, so the sink stores it twice; the attempt counts
    that resend and the sink reports the same repeat. Never a message under a key that was
    not recorded."""
    file_id = await crash_on_the_referents_message(stack, client, "courriel@example.fr")
    await assert_answered_once(stack, client, file_id)
    rows = await attempts_once_sent(stack, client, file_id)
    cut = the_cut_attempt(rows)
    assert {r.channel for r in rows} == {"email"} and len(rows) == 2
    assert cut.notification_id == f"{file_id}:referent_assigned"
    stored = collections.Counter(m["Message-ID"] for m in mails_for(stack.maildir, file_id))
    assert set(stored) == {r.delivery_key for r in rows}  # every email under a recorded key
    assert stored[cut.delivery_key] == 2 and sorted(stored.values()) == [1, 2]
    # The SMTP sink reports the repeat (this file's mail only: the stack holds other tests').
    duplicates = (await repeats(stack, [file_id]))["mail"]
    print(f"SMTP sink duplicates of {file_id}: {duplicates}")
    assert [(d["message_id"], d["copies"]) for d in duplicates] == [(cut.delivery_key, 2)]
    assert sum(r.resent for r in rows) == sum(d["copies"] - 1 for d in duplicates)


async def test_a_kill_after_the_agency_answered_asks_again_with_the_same_id_decided_once(
    stack, client
):
    """adapter-caf got the CAF's answer but died before recording it: the request is
    redelivered and sent again with the same request id; the agency answers it from its
    record (one body kept, one decision) and counts the repeat."""
    file_id = await crash_at(
        stack,
        "adapter-caf",
        "adapter.after_agency_call",
        lambda: submit(client, "perte_emploi", "organisme@example.fr"),
    )
    view = await assert_answered_once(stack, client, file_id)
    assert [d["agency"] for d in view["answer"]["decisions"]].count("caf") == 1
    [request] = await query(
        stack.database_urls["adapter-caf"],
        "SELECT request_id, agency_reference FROM requests WHERE file_id = :f",
        f=file_id,
    )
    async with simulator(stack, "caf", timeout=10) as sim:
        received = (await sim.get("/agencies/caf/received")).json()
        stats = (await sim.get("/agencies/caf/stats")).json()
    kept = [r for r in received if r["request_id"] == request.request_id]
    # The window was open: the CAF was asked twice under one request id, kept the body once
    # and counted the repeat.
    assert len(kept) == 1
    assert stats["per_request"][request.request_id] == 2
    assert [r["calls"] for r in stats["repeated"] if r["request_id"] == request.request_id] == [2]
    assert request.agency_reference
    decisions = await events_of(stack, "agency.caf.answers", file_id)
    assert len({r["body"]["event_id"] for r in decisions}) == 1
    calls = stats["per_request"][request.request_id]
    print(f"CAF simulator: request {request.request_id} called {calls} time(s), kept once")


async def test_a_kill_while_an_adapter_handles_several_requests_sends_none_recorded_again(
    stack, client
):
    """adapter-caf handles the requests of several files at once (AGENCY_CONCURRENCY) and
    was killed once one of them was recorded, the batch's offsets not committed: at restart
    the batch comes again, the recorded request is not sent again, one still in flight at
    the kill is sent again under its request id (the CAF answers it from its record and
    counts the repeat), and each file gets one CAF decision."""
    emails = [f"simultanees.{i}@example.fr" for i in range(3)]

    async def submit_together() -> list[str]:  # their CAF requests reach the adapter together
        return list(await asyncio.gather(*(submit(client, "perte_emploi", e) for e in emails)))

    file_ids = await crash_at(stack, "adapter-caf", "consumer.mid_batch", submit_together)
    calls: dict[str, int] = {}
    for file_id in file_ids:
        view = await assert_answered_once(stack, client, file_id)
        assert [d["agency"] for d in view["answer"]["decisions"]].count("caf") == 1
        [request] = await query(
            stack.database_urls["adapter-caf"],
            "SELECT request_id FROM requests WHERE file_id = :f",
            f=file_id,
        )
        decisions = await events_of(stack, "agency.caf.answers", file_id)
        assert len({r["body"]["event_id"] for r in decisions}) == 1
        async with simulator(stack, "caf", timeout=10) as sim:
            received = (await sim.get("/agencies/caf/received")).json()
            stats = (await sim.get("/agencies/caf/stats")).json()
        assert [r["request_id"] for r in received].count(request.request_id) == 1
        calls[request.request_id] = stats["per_request"][request.request_id]
    # The request recorded before the kill was not sent again; at most one repeat each.
    assert 1 in calls.values() and set(calls.values()) <= {1, 2}, calls
    print(f"CAF calls per request around the kill: {sorted(calls.values())}")
