"""Helpers of tests/e2e/test_legal_clock.py: the simulators' faults, what the citizen sees,
the deadline messages in the SMTP sink and the deadline events on the broker."""

from __future__ import annotations

import collections
import datetime as dt
import re
from collections.abc import Iterable

import httpx

from devstack.quiescence import wait_quiescent
from devstack.stack import Stack
from shared_models import topics
from tests.e2e.support import eventually, mails_for, read_topic, simulator
from tests.pdfs import pdf_text

#: How long the stack stays quiescent (nothing in flight, no new event) before counting: the
#: assignment's housekeeping (every 0.5 s) has then run three rounds with nothing to do, so a
#: duplicate would have shown.
SETTLE_SECONDS = 1.5
PDF = b"%PDF-1.4\n% attestation de salaire\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def set_fault(stack: Stack, agency: str, mode: str) -> None:
    async with simulator(stack, agency) as sim:
        assert (
            await sim.post("/admin/faults", json={"agency": agency, "mode": mode})
        ).status_code == 200


async def agencies_of(client: httpx.AsyncClient, file_id: str) -> dict[str, dict]:
    return {a["agency"]: a for a in (await client.get(f"/api/files/{file_id}")).json()["agencies"]}


def today(stack: Stack) -> dt.date:
    return dt.date.fromisoformat(stack.clock_file.read_text())


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def letter_text(data: bytes) -> str:
    return flat(pdf_text(data, " "))


def deadline_mails(stack: Stack, file_id: str) -> collections.Counter:
    """(kind, agency word, detail) -> how many emails the SMTP sink holds for the file."""
    counts: collections.Counter = collections.Counter()
    for mail in mails_for(stack.maildir, file_id):
        body = flat(mail.get_body(preferencelist=("plain",)).get_content())
        agency = next((a for a in ("CAF", "DGFiP", "CPAM") if f"({a})" in body), "autre")
        if "délai légal bientôt atteint" in mail["Subject"]:
            days = re.search(r"il reste (\d+) jour", body).group(1)
            counts[("avertissement", agency, f"J-{days}", mail["To"])] += 1
        elif "délai légal dépassé" in mail["Subject"]:
            counts[("depassement", agency, mail["To"])] += 1
    return counts


async def deadline_events(stack: Stack, wanted) -> list[dict]:
    return await read_topic(stack.kafka_bootstrap, stack.namespace + topics.DEADLINES, wanted)


async def send_document_and_see_due(
    stack: Stack, client, file_id: str, due: dt.date, what: str, filename: str = "attestation.pdf"
) -> dict:
    """The citizen sends the awaited document; the CPAM takes it and stays silent, so the
    clock's new last day shows on the citizen's view."""
    await set_fault(stack, "cpam", "silent")
    try:
        sent = await client.post(
            f"/api/files/{file_id}/documents", files={"fichier": (filename, PDF, "application/pdf")}
        )
        assert sent.status_code == 201, sent.text

        async def shown():
            cpam = (await agencies_of(client, file_id))["cpam"]
            return cpam if cpam["due_on"] == due.isoformat() else None

        return await eventually(shown, what=what)
    finally:
        await set_fault(stack, "cpam", "ok")


async def clock_history(stack: Stack, file_id: str, until_why: str) -> list[tuple]:
    """(state, why, due_on) of every LegalDeadlineSet of the file's CPAM clock, once `until_why`
    is there."""

    def reached(records):
        return any(r["key"] == file_id and r["body"].get("why") == until_why for r in records)

    records = await deadline_events(stack, reached)
    return [
        (r["body"]["state"], r["body"]["why"], r["body"]["due_on"])
        for r in records
        if r["key"] == file_id and r["body"].get("request_id") == f"{file_id}-cpam"
    ]


async def settle_and_count(
    stack: Stack, file_id: str, expected: collections.Counter, what: str
) -> None:
    """The expected messages arrive, and no more after a few rounds of housekeeping."""

    async def arrived():
        got = deadline_mails(stack, file_id)
        assert not got - expected, f"unexpected or duplicate messages: {got - expected}"
        return got == expected

    await eventually(arrived, timeout=30, what=what)
    await settle(stack)
    assert deadline_mails(stack, file_id) == expected


async def settle(stack: Stack) -> None:
    """Until nothing is in flight and nothing new happened for a few housekeeping rounds."""
    await wait_quiescent(stack, stable=SETTLE_SECONDS)


def once_each(records: Iterable[dict]) -> list[dict]:
    """The records of distinct events: a record republished by the outbox relay (same event
    id, at-least-once delivery) counts once."""
    seen: dict[str, dict] = {}
    for record in records:
        seen.setdefault(record["body"]["event_id"], record)
    return list(seen.values())
