"""What référents and supervisors read from the assignment service: the portfolio and
the explained assignment record (over the real routes, on SQLite)."""

from __future__ import annotations

import datetime as dt
import itertools

import httpx
import pytest
from fastapi import FastAPI

from assignment import api
from assignment.commands import directory_import
from assignment.legal_deadline import add_months, estimated_deadline
from assignment.projections import files as assignment
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.refusals import install_refusals
from shared_models import AgencyAnswerReceived, AgencyRequestIssued, ReferentAssigned
from tests.unit.samples import citizen, decision, file_submitted


@pytest.fixture
async def client(assignment_db, tokens):
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    app = FastAPI()
    install_refusals(app)
    tokens.install(app)
    app.include_router(api.router(assignment_db))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers=tokens.network_head(),
    ) as c:
        c.db = assignment_db
        yield c


#: When the assignment service receives the files of a test: 31 December 2026, 10:00 in Paris.
#: Two calendar months later, 28 February 2027 is the estimated last day (no 31 February).
RECEIVED = dt.datetime(2026, 12, 31, 9, 0, tzinfo=dt.UTC)


def received_from(monkeypatch, first: dt.datetime = RECEIVED) -> None:
    """The service receives each next file a minute after the previous one, from `first`."""
    instants = (first + dt.timedelta(minutes=n) for n in itertools.count())
    monkeypatch.setattr(assignment, "utcnow", lambda: next(instants))


async def submit(db, event):
    await assignment.on_file_submitted(event, db.uow(("assignment", str(event.event_id))))
    emitted = [
        e for _, e in await db.outbox_events() if getattr(e, "file_id", None) == event.file_id
    ]
    referent = next(e for e in emitted if isinstance(e, ReferentAssigned)).referent
    return referent, [e for e in emitted if isinstance(e, AgencyRequestIssued)]


def test_the_legal_deadline_is_two_calendar_months_in_paris_time():
    assert add_months(dt.date(2026, 12, 31), 2) == dt.date(2027, 2, 28)
    assert add_months(dt.date(2027, 12, 31), 2) == dt.date(2028, 2, 29)
    assert add_months(dt.date(2026, 11, 24), 2) == dt.date(2027, 1, 24)
    # 23:30 UTC on 30 November is already 1 December in Paris.
    assert estimated_deadline(dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC)) == dt.date(
        2027, 2, 1
    )


async def test_the_portfolio_lists_open_files_urgent_first_and_drops_answered_ones(
    client, monkeypatch
):
    received_from(monkeypatch)
    same = citizen(email="meme.personne@example.fr")
    ref, _ = await submit(client.db, file_submitted("GU-2026-AAAA0001", citizen=same))
    _, requests = await submit(
        client.db, file_submitted("GU-2026-AAAA0002", citizen=same, urgent=True)
    )
    await submit(client.db, file_submitted("GU-2026-AAAA0003", citizen=same))

    body = (await client.get(f"/api/agents/{ref.agent_id}/portfolio")).json()
    assert body["agent"]["name"] == ref.name and body["agent"]["active_files"] == 3
    assert [f["file_id"] for f in body["files"]] == [
        "GU-2026-AAAA0002",
        "GU-2026-AAAA0001",
        "GU-2026-AAAA0003",
    ]
    assert body["files"][0]["agencies_awaited"] == 3
    assert [f["deadline"] for f in body["files"]] == ["2027-02-28"] * 3  # received 31 Dec 2026

    for request in requests:
        answer = AgencyAnswerReceived(
            file_id=request.file_id, request_id=request.request_id, answer=decision(request.agency)
        )
        await assignment.on_agency_answer(
            answer, client.db.uow(("assignment", str(answer.event_id)))
        )
    body = (await client.get(f"/api/agents/{ref.agent_id}/portfolio")).json()
    assert [f["file_id"] for f in body["files"]] == ["GU-2026-AAAA0001", "GU-2026-AAAA0003"]
    assert body["agent"]["active_files"] == 2


async def test_the_assignment_record_says_which_rule_decided_and_who_was_considered(client):
    same = citizen(email="deux.dossiers@example.fr")
    ref, _ = await submit(client.db, file_submitted("GU-2026-BBBB0001", citizen=same))
    await submit(client.db, file_submitted("GU-2026-BBBB0002", citizen=same))

    first = (await client.get("/api/files/GU-2026-BBBB0001/assignment")).json()
    second = (await client.get("/api/files/GU-2026-BBBB0002/assignment")).json()
    assert first["history"][0]["rule"] == "proximite"
    assert ref.name in first["history"][0]["explanation"]
    assert ref.agent_id in first["history"][0]["considered"]
    assert second["history"][0]["rule"] == "continuite"
    assert second["referent_id"] == ref.agent_id


async def test_unknown_agents_and_files_are_answered_in_french(client):
    agent = await client.get("/api/agents/AG-INCONNU/portfolio")
    file = await client.get("/api/files/GU-0000-INCONNU/assignment")
    assert agent.status_code == file.status_code == 404
    assert agent.json()["message"] == "Aucun agent ne porte l'identifiant AG-INCONNU."
    assert file.json()["message"] == "Aucun dossier ne porte la référence GU-0000-INCONNU."


async def test_the_pages_read_models_card_balance_and_deadlines(assignment_db, tokens, monkeypatch):
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    received_from(monkeypatch)
    ref, _ = await submit(assignment_db, file_submitted("GU-2026-VIEW0001"))
    app = FastAPI()
    install_refusals(app)
    tokens.install(app)
    # Received 31 December 2026, due 28 February 2027; seen on 24 February: 4 days left.
    app.include_router(api.views_router(assignment_db, lambda: dt.date(2027, 2, 24)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers=tokens.network_head(),
    ) as c:
        card = (await c.get(f"/api/agents/{ref.agent_id}")).json()
        balance = (await c.get("/api/supervision/portfolios")).json()
        soon = (await c.get("/api/supervision/deadlines", params={"within_days": 10})).json()
        later = (await c.get("/api/supervision/deadlines", params={"within_days": 0})).json()
        missing = await c.get("/api/agents/AG-00-00-0")

    assert card["name"] == ref.name and card["office"]["name"] == ref.office
    assert card["office"]["opening_hours"].startswith("Du lundi")
    mine = next(a for a in balance["agents"] if a["agent_id"] == ref.agent_id)
    assert mine["active_files"] == 1
    office = next(o for o in balance["offices"] if o["office_id"] == ref.office_id)
    assert office["active_files"] == 1 and office["capacity"] >= office["agents"] > 0
    # Due 28 February, seen on 24 February: within 10 days, not yet within 0.
    [at_risk] = soon["files"]
    assert at_risk["file_id"] == "GU-2026-VIEW0001" and at_risk["referent"] == ref.name
    assert at_risk["days_left"] == 4 and later["count"] == 0
    assert missing.status_code == 404


async def test_the_portfolio_and_the_risk_list_follow_the_agencies_running_legal_clocks(
    assignment_db, tokens, monkeypatch
):
    """Nearest running clock first; a file whose only clock is suspended has no deadline and
    comes last; a file no agency acknowledged yet shows the two-month estimate."""
    from assignment.projections import legal_clock
    from shared_models import (
        AgencyReceiptAcknowledged,
        DeadlineRule,
        LegalClockSuspended,
        RequestedDocument,
    )

    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    received_from(monkeypatch)
    same = citizen(email="trois.horloges@example.fr")
    ref, _ = await submit(
        assignment_db, file_submitted("GU-2026-CLKA0001", citizen=same, agencies=("caf", "dgfip"))
    )
    await submit(assignment_db, file_submitted("GU-2026-CLKB0001", citizen=same))
    await submit(
        assignment_db, file_submitted("GU-2026-CLKC0001", citizen=same, agencies=("cpam",))
    )
    received = dt.datetime(2026, 12, 31, 10, 0, tzinfo=dt.UTC)  # the receipts: 31 December

    async def handle(handler, event):
        await handler(event, assignment_db.uow(("assignment", str(event.event_id))))

    for file_id, agency, days in (
        ("GU-2026-CLKA0001", "caf", 40),
        ("GU-2026-CLKA0001", "dgfip", 20),
        ("GU-2026-CLKC0001", "cpam", 10),
    ):
        await handle(
            legal_clock.on_receipt_acknowledged,
            AgencyReceiptAcknowledged(
                file_id=file_id,
                request_id=f"{file_id}-{agency}",
                agency=agency,
                agency_reference="R",
                deadline_rule=DeadlineRule.SILENCE_ACCEPTS,
                deadline_days=days,
                occurred_at=received,
            ),
        )
    await handle(
        legal_clock.on_clock_suspended,
        LegalClockSuspended(
            file_id="GU-2026-CLKC0001",
            request_id="GU-2026-CLKC0001-cpam",
            agency="cpam",
            document=RequestedDocument(code="attestation_salaire", label="Attestation de salaire"),
            occurred_at=received,
        ),
    )

    app = FastAPI()
    install_refusals(app)
    tokens.install(app)
    app.include_router(api.router(assignment_db))
    app.include_router(api.views_router(assignment_db, lambda: dt.date(2026, 12, 31)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers=tokens.network_head(),
    ) as c:
        files = (await c.get(f"/api/agents/{ref.agent_id}/portfolio")).json()["files"]
        at_risk = (await c.get("/api/supervision/deadlines", params={"within_days": 30})).json()

    assert [f["file_id"] for f in files] == [
        "GU-2026-CLKA0001",
        "GU-2026-CLKB0001",
        "GU-2026-CLKC0001",
    ]
    first, estimated, suspended = files
    # The DGFiP's 20 days from 31 December end on 20 January; the CAF's 40 on 9 February.
    assert (first["deadline"], first["deadline_agency"]) == ("2027-01-20", "dgfip")
    # No agency acknowledged the second file: two months from 31 December, 28 February.
    assert estimated["deadline_estimated"] is True and estimated["deadline"] == "2027-02-28"
    assert suspended["deadline"] is None and suspended["clock_suspended"] is True
    assert [(f["file_id"], f["agency"], f["days_left"]) for f in at_risk["files"]] == [
        ("GU-2026-CLKA0001", "dgfip", 20)
    ]
