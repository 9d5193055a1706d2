"""The crash windows of at-least-once delivery, hit on purpose on the real broker.

Each test arms one crash point (guichet_runtime.crashpoints) in one service, submits a
file, sees the process die exactly there, restarts it without the crash point and checks
what the citizen and the agencies see: the window reopened, and its effect happened once.
The session's shared SQLite stack; the tests run in order, each on its own file. The
windows of the side effects (a provider or an agency called, its outcome not recorded yet)
are tested on both backends in tests/e2e/test_delivery_keys.py.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.crash_support import assert_answered_once, crash_at, events_of, submit
from tests.e2e.support import assert_no_repeats, citizen_client, query

pytestmark = [pytest.mark.integration, pytest.mark.timeout(500)]


@pytest.fixture(scope="module")
def stack(shared_stack):
    """The session's SQLite stack (tests/e2e/conftest.py); each test restarts what it crashed."""
    return shared_stack("sqlite")


@pytest.fixture
async def client(stack, tokens):
    """Marie's client of intake: she submits the files, and reads them."""
    async with citizen_client(stack, tokens) as c:
        yield c


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
