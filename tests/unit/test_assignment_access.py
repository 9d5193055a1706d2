"""Who may do what at assignment (issue 12; the route -> policy table of docs/security.md),
over the real routes with tokens from an in-process provider: référents their own
portfolio and files, supervisors their offices only, the directory's administrator the
imports; identity only from the token."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from fastapi import FastAPI

from assignment import api
from assignment.commands import directory_import
from assignment.projections import files as assignment
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.errors import install_french_validation
from guichet_runtime.refusals import install_refusals
from shared_models import ReferentAssigned
from tests.unit.samples import citizen, file_submitted

TODAY = dt.date(2026, 11, 24)
NEWCOMER = {
    "agent_id": "AG-23-01-9",
    "name": "Léa Dubreuil",
    "office_id": "FS-23-01",
    "phone": "05 55 10 20 39",
    "email": "lea.dubreuil@france-services.gouv.fr",
    "agencies": ["caf", "cpam"],
    "capacity": 25,
}


@pytest.fixture
async def client(assignment_db, tokens):
    """Two files in Saint-Denis (FS-93-01) and one in Paris (FS-75-01)."""
    db = assignment_db
    await directory_import.seed_directory(db.uow(), DEFAULT_DIRECTORY)
    app = FastAPI()
    install_french_validation(app)
    install_refusals(app)
    app.include_router(api.router(db))
    app.include_router(api.admin_router(db, lambda: TODAY))
    app.include_router(api.views_router(db, lambda: TODAY))
    tokens.install(app, "assignment")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        c.db, c.tokens, c.referents = db, tokens, {}
        for file_id, postcode in (
            ("GU-2026-ACCES093", "93200"),
            ("GU-2026-ACCES094", "93200"),
            ("GU-2026-ACCES075", "75011"),
        ):
            event = file_submitted(
                file_id, citizen=citizen(email=f"{file_id}@example.fr", postcode=postcode)
            )
            await assignment.on_file_submitted(event, db.uow(("assignment", str(event.event_id))))
            [named] = [
                e
                for _, e in await db.outbox_events()
                if isinstance(e, ReferentAssigned) and e.file_id == file_id
            ]
            c.referents[file_id] = named.referent
        yield c


async def statuses(client, method: str, url: str, callers: dict, **kwargs) -> dict[str, int]:
    return {
        name: (await client.request(method, url, headers=headers, **kwargs)).status_code
        for name, headers in callers.items()
    }


async def test_a_portfolio_is_its_agents_and_their_supervisors(client):
    tokens = client.tokens
    ref = client.referents["GU-2026-ACCES093"]
    assert ref.office_id == "FS-93-01"
    colleague = "AG-93-01-1" if ref.agent_id != "AG-93-01-1" else "AG-93-01-3"

    found = await statuses(
        client,
        "GET",
        f"/api/agents/{ref.agent_id}/portfolio",
        {
            "anonymous": {},
            "the agent": tokens.agent(ref.agent_id),
            "a colleague": tokens.agent(colleague),
            "supervisor of the office": tokens.supervisor_of("FS-93-01"),
            "supervisor elsewhere": tokens.supervisor_of("FS-75-01"),
            "administrator": tokens.admin(),
            "citizen": tokens.citizen(),
        },
    )

    assert found == {
        "anonymous": 401,
        "the agent": 200,
        "a colleague": 403,
        "supervisor of the office": 200,
        "supervisor elsewhere": 403,
        "administrator": 403,
        "citizen": 403,
    }
    unknown = await client.get(
        "/api/agents/AG-INCONNU/portfolio", headers=tokens.agent("AG-INCONNU")
    )
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "Aucun agent ne porte l'identifiant AG-INCONNU."


async def test_the_assignment_record_is_for_the_files_agents(client):
    tokens = client.tokens
    ref = client.referents["GU-2026-ACCES093"]
    found = await statuses(
        client,
        "GET",
        "/api/files/GU-2026-ACCES093/assignment",
        {
            "anonymous": {},
            "référent": tokens.agent(ref.agent_id),
            "référent of another file": tokens.agent(client.referents["GU-2026-ACCES075"].agent_id),
            "supervisor of the office": tokens.supervisor_of("FS-93-01"),
            "supervisor elsewhere": tokens.supervisor_of("FS-75-01"),
            "citizen": tokens.citizen(),
            "agency": tokens.agency("caf"),
        },
    )
    assert found == {
        "anonymous": 401,
        "référent": 200,
        "référent of another file": 403,
        "supervisor of the office": 200,
        "supervisor elsewhere": 403,
        "citizen": 403,
        "agency": 403,
    }
    unknown = await client.get(
        "/api/files/GU-0000-INCONNU/assignment", headers=tokens.supervisor_of("FS-93-01")
    )
    assert unknown.status_code == 404


async def test_the_front_desk_agent_who_registered_a_file_reads_its_assignment(client):
    """FileSubmitted says who registered the file at the counter; assignment keeps it, so
    that agent (and no other front-desk agent) reads the assignment (FILE_AGENTS)."""
    tokens, db = client.tokens, client.db
    event = file_submitted(
        "GU-2026-GUICHET1",
        citizen=citizen(email="guichet@example.fr", postcode="93200"),
        channel="guichet",
        registered_by="AG-93-01-9",
    )
    await assignment.on_file_submitted(event, db.uow(("assignment", str(event.event_id))))
    found = await statuses(
        client,
        "GET",
        "/api/files/GU-2026-GUICHET1/assignment",
        {
            "front desk who registered it": tokens.guichet("AG-93-01-9"),
            "another front desk": tokens.guichet("AG-93-01-8"),
            "citizen": tokens.citizen(),
        },
    )
    assert found == {
        "front desk who registered it": 200,
        "another front desk": 403,
        "citizen": 403,
    }
    # An online file has no front-desk agent: none of them reads it.
    online = await client.get(
        "/api/files/GU-2026-ACCES093/assignment", headers=tokens.guichet("AG-93-01-9")
    )
    assert online.status_code == 403


async def test_supervision_answers_only_the_callers_offices(client):
    tokens = client.tokens
    for url in ("/api/supervision/waiting", "/api/supervision/portfolios"):
        assert (await client.get(url)).status_code == 401
        referent = tokens.agent(client.referents["GU-2026-ACCES093"].agent_id)
        assert (await client.get(url, headers=referent)).status_code == 403
        assert (await client.get(url, headers=tokens.admin())).status_code == 403
    saint_denis = tokens.supervisor_of("FS-93-01")

    balance = (await client.get("/api/supervision/portfolios", headers=saint_denis)).json()
    deadlines = (
        await client.get(
            "/api/supervision/deadlines", params={"within_days": 366}, headers=saint_denis
        )
    ).json()
    paris = (
        await client.get(
            "/api/supervision/deadlines",
            params={"within_days": 366},
            headers=tokens.supervisor_of("FS-75-01"),
        )
    ).json()

    assert {a["office_id"] for a in balance["agents"]} == {"FS-93-01"}
    assert [o["office_id"] for o in balance["offices"]] == ["FS-93-01"]
    assert sorted(f["file_id"] for f in deadlines["files"]) == [
        "GU-2026-ACCES093",
        "GU-2026-ACCES094",
    ]
    assert [f["file_id"] for f in paris["files"]] == ["GU-2026-ACCES075"]


async def test_waiting_files_are_shown_to_the_supervisors_of_their_departement(client):
    db = client.db
    async with db.engine.begin() as conn:  # nobody has room for ordinary files
        await conn.exec_driver_sql("UPDATE agents SET active_files = capacity")
    for file_id, postcode in (("GU-2026-WAIT0093", "93200"), ("GU-2026-WAIT0069", "69001")):
        event = file_submitted(
            file_id, citizen=citizen(email=f"{file_id}@example.fr", postcode=postcode)
        )
        await assignment.on_file_submitted(event, db.uow(("assignment", str(event.event_id))))

    def waiting(*offices: str):
        return client.get("/api/supervision/waiting", headers=client.tokens.supervisor_of(*offices))

    assert [f["file_id"] for f in (await waiting("FS-93-01")).json()["files"]] == [
        "GU-2026-WAIT0093"
    ]
    assert [f["file_id"] for f in (await waiting("FS-69-01")).json()["files"]] == [
        "GU-2026-WAIT0069"
    ]
    assert (await waiting("FS-75-01")).json() == {"count": 0, "files": []}


async def test_the_directory_is_administered_by_its_administrator(client):
    tokens = client.tokens
    found = await statuses(
        client,
        "POST",
        "/api/agents",
        {
            "anonymous": {},
            "référent": tokens.agent("AG-93-01-1"),
            "supervisor": tokens.supervisor_of("FS-23-01"),
            "agency": tokens.agency("caf"),
        },
        json=NEWCOMER,
    )
    assert found == {"anonymous": 401, "référent": 403, "supervisor": 403, "agency": 403}
    joined = await client.post("/api/agents", json=NEWCOMER, headers=tokens.admin())
    assert joined.status_code == 201
    imported = await client.post(
        "/api/directory/import",
        json={"version": "x"},
        headers=tokens.supervisor_of("FS-93-01"),
    )
    assert imported.status_code == 403


async def test_absences_and_departures_are_decided_by_a_supervisor_of_the_agents_office(client):
    tokens = client.tokens
    absence = {"starts_on": "2026-12-01", "ends_on": "2026-12-05"}
    url = "/api/agents/AG-75-01-3/absences"

    found = await statuses(
        client,
        "POST",
        url,
        {
            "anonymous": {},
            "the agent": tokens.agent("AG-75-01-3"),
            "administrator": tokens.admin(),
            "supervisor elsewhere": tokens.supervisor_of("FS-93-01"),
        },
        json=absence,
    )
    assert found == {
        "anonymous": 401,
        "the agent": 403,
        "administrator": 403,
        "supervisor elsewhere": 403,
    }
    paris = tokens.supervisor_of("FS-75-01")
    assert (await client.post(url, json=absence, headers=paris)).status_code == 201
    assert (
        await client.post("/api/agents/AG-75-01-3/return", headers=tokens.supervisor_of("FS-13-01"))
    ).status_code == 403
    gone = await client.post(
        "/api/agents/AG-75-01-3/departure", json={}, headers=tokens.supervisor_of("FS-13-01")
    )
    assert gone.status_code == 403
    unknown = await client.post("/api/agents/AG-INCONNU/return", headers=paris)
    assert unknown.status_code == 404


async def test_a_supervisor_reassigns_only_within_the_offices_they_supervise(client):
    tokens = client.tokens
    ref = client.referents["GU-2026-ACCES093"]
    colleague = next(a for a in ("AG-93-01-2", "AG-93-01-3") if a != ref.agent_id)
    url = "/api/files/GU-2026-ACCES093/reassign"
    reason = "Rééquilibrage des portefeuilles."
    saint_denis = tokens.supervisor_of("FS-93-01")

    found = await statuses(
        client,
        "POST",
        url,
        {
            "anonymous": {},
            "référent": tokens.agent(ref.agent_id),
            "supervisor elsewhere": tokens.supervisor_of("FS-75-01"),
            "administrator": tokens.admin(),
        },
        json={"reason": reason, "agent_id": colleague},
    )
    outside = await client.post(
        url, json={"reason": reason, "agent_id": "AG-75-01-1"}, headers=saint_denis
    )
    moved = await client.post(
        url, json={"reason": reason, "agent_id": colleague}, headers=saint_denis
    )

    assert found == {
        "anonymous": 401,
        "référent": 403,
        "supervisor elsewhere": 403,
        "administrator": 403,
    }
    assert outside.status_code == 403
    assert "espace que vous ne supervisez pas" in outside.json()["message"]
    assert moved.status_code == 200 and moved.json()["referent_id"] == colleague
    # Supervising both offices, the move to Paris is theirs to make.
    both = tokens.supervisor_of("FS-93-01", "FS-75-01")
    to_paris = await client.post(
        url, json={"reason": reason, "agent_id": "AG-75-01-1"}, headers=both
    )
    assert to_paris.status_code == 200, to_paris.text


async def test_the_agents_public_card_says_nothing_of_their_load(client):
    ref = client.referents["GU-2026-ACCES093"]
    card = await client.get(f"/api/agents/{ref.agent_id}")
    assert card.status_code == 200
    assert set(card.json()) == {"agent_id", "name", "phone", "email", "office"}
