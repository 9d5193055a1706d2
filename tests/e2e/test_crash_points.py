"""The crash windows of at-least-once delivery, hit on purpose on the real broker.

Each test arms one crash point (guichet_runtime.crashpoints) in one service, submits a
file, sees the process die exactly there, restarts it without the crash point and checks
what the citizen and the agencies see: the window reopened, and its effect happened once.
The session's shared SQLite stack; the tests run in order, each on its own file.
"""

from __future__ import annotations

import asyncio
import collections

import httpx
import pytest

from devstack.stack import Stack
from guichet_runtime.crashpoints import EXIT_STATUS
from tests.e2e.support import (
    answered_view,
    assert_no_repeats,
    citizen_client,
    eventually,
    file_body,
    mails_for,
    query,
    read_topic,
    repeats,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(500)]

#: A restart joins the consumer group again; slow on a loaded 2-core machine.
RESTART_TIMEOUT = 150


@pytest.fixture(scope="module")
def stack(shared_stack):
    """The session's SQLite stack (tests/e2e/conftest.py); each test restarts what it crashed."""
    return shared_stack("sqlite")


@pytest.fixture
async def client(stack, tokens):
    """Marie's client of intake: she submits the files, and reads them."""
    async with citizen_client(stack, tokens) as c:
        yield c


async def submit(client: httpx.AsyncClient, life_event: str, email: str) -> str:
    response = await client.post("/api/files", json=file_body(life_event, email=email))
    assert response.status_code == 201, response.text
    return response.json()["file_id"]


async def crash_at(stack: Stack, service: str, point: str, action):
    """Restart `service` with the crash point `point` armed, run `action`, wait for the
    process to die at the point, then restart it unarmed. Returns what `action` returned."""
    proc = stack.processes[service]
    armed = {"GUICHET_CRASH_POINTS_ENABLED": "1", "GUICHET_CRASH_AT": point}
    proc.env.update(armed)
    try:
        await asyncio.to_thread(stack.restart, service, RESTART_TIMEOUT)
        result = await action()

        async def died() -> bool:
            return not proc.is_running

        await eventually(died, timeout=90, what=f"{service} dying at {point}")
    finally:
        for name in armed:
            proc.env.pop(name, None)
    assert proc.returncode == EXIT_STATUS, proc.log_tail()
    assert proc.log_path.read_text(errors="replace").count(f"crash point {point} reached") == 1
    await asyncio.to_thread(stack.restart, service, RESTART_TIMEOUT)
    return result


async def events_of(stack: Stack, topic: str, file_id: str, wanted=lambda rs: bool(rs)):
    """The records of `topic` keyed by `file_id`, polled until `wanted(records)`."""
    return [
        r
        for r in await read_topic(
            stack.kafka_bootstrap,
            stack.namespace + topic,
            lambda rs: wanted([r for r in rs if r["key"] == file_id]),
        )
        if r["key"] == file_id
    ]


async def assert_answered_once(stack: Stack, client: httpx.AsyncClient, file_id: str) -> dict:
    """One référent, one coordinated answer, each email once as the citizen sees it."""
    view = await eventually(
        lambda: answered_view(client, file_id), timeout=150, what=f"answer for {file_id}"
    )
    urls = stack.database_urls
    assigned = await query(
        urls["assignment"], "SELECT file_id FROM assignments WHERE file_id = :f", f=file_id
    )
    assert len(assigned) == 1
    answers = await query(
        urls["intake"],
        "SELECT count(*) AS n FROM timeline WHERE kind = 'reponse_coordonnee' AND file_id = :f",
        f=file_id,
    )
    assert answers[0].n == 1
    mails = mails_for(stack.maildir, file_id)
    by_id = collections.Counter(m["Message-ID"] for m in mails)
    subjects = {m["Subject"] for m in mails}
    assert len(by_id) == 2 and len(subjects) == 2, (by_id, subjects)
    return view


async def test_relay_crash_between_commit_and_publish_publishes_at_restart(stack, client):
    """intake committed FileSubmitted to its outbox and died before publishing it."""
    file_id = await crash_at(
        stack,
        "intake",
        "relay.before_publish",
        lambda: submit(client, "naissance", "avant.publication@example.fr"),
    )
    await assert_answered_once(stack, client, file_id)
    [submitted] = await events_of(stack, "files.submitted", file_id)
    assert submitted["event_type"] == "FileSubmitted"


async def test_relay_crash_after_publish_republishes_and_consumers_apply_it_once(stack, client):
    """intake's relay published FileSubmitted but died before deleting the outbox row."""
    file_id = await crash_at(
        stack,
        "intake",
        "relay.after_publish",
        lambda: submit(client, "perte_emploi", "relais@example.fr"),
    )
    # The restarted relay published the same event again: the window was really open.
    records = await events_of(stack, "files.submitted", file_id, lambda rs: len(rs) >= 2)
    assert len(records) == 2 and len({r["body"]["event_id"] for r in records}) == 1
    await assert_answered_once(stack, client, file_id)
    referents = await events_of(stack, "referents.assigned", file_id)
    assert len({r["body"]["event_id"] for r in referents}) == 1


async def test_consumer_crash_after_commit_before_ack_is_redelivered_and_skipped(stack, client):
    """assignment committed its handling of FileSubmitted but died before the offset commit."""
    file_id = await crash_at(
        stack,
        "assignment",
        "consumer.after_commit_before_ack",
        lambda: submit(client, "naissance", "consommateur@example.fr"),
    )
    [submitted] = await events_of(stack, "files.submitted", file_id)
    # Committed before the crash: the inbox holds the event, and the référent is chosen.
    inbox = await query(
        stack.database_urls["assignment"],
        "SELECT consumer FROM inbox WHERE event_id = :e",
        e=submitted["body"]["event_id"],
    )
    assert len(inbox) == 1
    await assert_answered_once(stack, client, file_id)
    referents = await events_of(stack, "referents.assigned", file_id)
    assert len({r["body"]["event_id"] for r in referents}) == 1


async def test_adapter_crash_after_the_agency_call_asks_again_and_the_agency_decides_once(
    stack, client
):
    """adapter-caf got the CAF's answer but died before recording it: the request is
    redelivered and sent again with the same request id."""
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
        "SELECT request_id FROM requests WHERE file_id = :f",
        f=file_id,
    )
    async with httpx.AsyncClient(base_url=stack.simulator_url("caf"), timeout=10) as sim:
        received = (await sim.get("/agencies/caf/received")).json()
    calls = [r for r in received if r["request_id"] == request.request_id]
    # The simulator decides once per request id (it answers a repeat from its record).
    assert calls and all(c == calls[0] for c in calls)
    decisions = await events_of(stack, "agency.caf.answers", file_id)
    assert len({r["body"]["event_id"] for r in decisions}) == 1
    print(f"CAF simulator: request {request.request_id} recorded {len(calls)} time(s)")


async def test_notification_crash_after_send_resends_with_the_same_message_id(stack, client):
    """notification's first email was accepted by the SMTP server, then the process died
    before marking it sent: after the lease it is sent again, with the same Message-ID."""
    file_id = await crash_at(
        stack,
        "notification",
        "notification.after_send",
        lambda: submit(client, "naissance", "courriel@example.fr"),
    )
    await assert_answered_once(stack, client, file_id)
    sent = await query(
        stack.database_urls["notification"],
        "SELECT notification_id, count(*) AS n FROM deliveries WHERE outcome = 'envoye' "
        "AND file_id = :f GROUP BY notification_id",
        f=file_id,
    )
    assert len(sent) == 2 and {r.n for r in sent} == {1}
    # The SMTP server received the crashed message twice, under one Message-ID, and reports
    # it (this file's mail only: the shared stack's sink holds other tests' too).
    duplicates = (await repeats(stack, [file_id]))["mail"]
    print(f"SMTP sink duplicates of {file_id}: {duplicates}")
    assert [d["copies"] for d in duplicates] == [2]
    stored = collections.Counter(m["Message-ID"] for m in mails_for(stack.maildir, file_id))
    assert sorted(stored.values()) == [1, 2] and stored[duplicates[0]["message_id"]] == 2


@pytest.mark.parametrize("service", ["assignment", "notification"])
async def test_consumer_crash_mid_batch_applies_every_record_once(stack, client, service):
    """The service applied a record of a batch (its savepoint released; in notification the
    emails to send recorded) and died before the batch's commit: nothing of the batch was
    committed, so nothing had left; the batch comes again at restart, every record is
    applied once and every email leaves once."""
    emails = [f"lot.{service}.{i}@example.fr" for i in range(3)]

    async def submit_together() -> list[str]:  # their events reach the consumer together
        return list(await asyncio.gather(*(submit(client, "naissance", e) for e in emails)))

    file_ids = await crash_at(stack, service, "consumer.mid_batch", submit_together)
    for file_id in file_ids:
        await assert_answered_once(stack, client, file_id)
        referents = await events_of(stack, "referents.assigned", file_id)
        assert len({r["body"]["event_id"] for r in referents}) == 1
        sent = await query(
            stack.database_urls["notification"],
            "SELECT notification_id, count(*) AS n FROM deliveries WHERE outcome = 'envoye' "
            "AND file_id = :f GROUP BY notification_id",
            f=file_id,
        )
        assert len(sent) == 2 and {r.n for r in sent} == {1}
    await assert_no_repeats(stack, file_ids)
