"""The directory's admin API: agents join, a versioned file is imported all or nothing,
and every change becomes an event (over the real routes, on SQLite)."""

from __future__ import annotations

import copy
import datetime as dt
import json

import httpx
import pytest
from fastapi import FastAPI

from assignment import api
from assignment.commands import directory_import
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.errors import install_french_validation
from guichet_runtime.refusals import install_refusals
from shared_models import (
    AgentAbsenceDeclared,
    AgentDetailsChanged,
    AgentJoined,
    AgentLeft,
    AgentReturned,
    OfficeOpened,
    topics,
)

TODAY = dt.date(2026, 11, 24)
#: The reason an import must give (journal d'audit).
IMPORT_REASON = {"reason": "Mise à jour mensuelle de l'annuaire"}
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
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    app = FastAPI()
    install_french_validation(app)
    install_refusals(app)
    tokens.install(app)
    app.include_router(api.router(assignment_db))
    app.include_router(api.admin_router(assignment_db, lambda: TODAY))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers=tokens.network_head(),
    ) as c:
        c.db = assignment_db
        yield c


async def directory_events(db) -> list:
    return [e for t, e in await db.outbox_events() if t == topics.DIRECTORY_CHANGES]


def versioned_file() -> dict:
    return json.loads(DEFAULT_DIRECTORY.read_text(encoding="utf-8"))


async def test_the_seeded_directory_announced_every_office_and_agent(client):
    seeded = versioned_file()
    events = await directory_events(client.db)

    assert sorted(e.office.office_id for e in events if isinstance(e, OfficeOpened)) == sorted(
        o["office_id"] for o in seeded["offices"]
    )
    joined = [e for e in events if isinstance(e, AgentJoined)]
    assert sorted(e.agent_id for e in joined) == sorted(a["agent_id"] for a in seeded["agents"])
    assert {e.directory_version for e in joined} == {seeded["version"]}


async def test_an_agent_joins_and_can_be_named_referent_at_once(client):
    before = len(await directory_events(client.db))

    response = await client.post("/api/agents", json=NEWCOMER)

    assert response.status_code == 201, response.text
    [joined] = (await directory_events(client.db))[before:]
    assert isinstance(joined, AgentJoined)
    assert (joined.agent_id, joined.agent.name, joined.agent.capacity) == (
        "AG-23-01-9",
        "Léa Dubreuil",
        25,
    )
    [row] = await client.db.rows("agents", client.db.tables.agents.c.agent_id == "AG-23-01-9")
    assert (row.status, row.active_files, row.agencies) == ("actif", 0, ["caf", "cpam"])


async def test_joining_twice_or_with_bad_fields_is_refused_in_french(client):
    assert (await client.post("/api/agents", json=NEWCOMER)).status_code == 201

    again = await client.post("/api/agents", json=NEWCOMER)
    assert again.status_code == 409
    assert again.json()["message"] == "Un agent porte déjà l'identifiant AG-23-01-9."

    bad = await client.post(
        "/api/agents",
        json={
            **NEWCOMER,
            "agent_id": "AG-NEW-1",
            "capacity": 0,
            "email": "pas-une-adresse",
            "agencies": ["urssaf"],
        },
    )
    assert bad.status_code == 422
    by_field = {e["field"]: e["message"] for e in bad.json()["errors"]}
    assert by_field["capacity"] == "La valeur doit être supérieure à 0."
    assert by_field["email"] == "Adresse électronique invalide."
    assert by_field["agencies.0"].startswith("Valeur inconnue : choisissez parmi caf")

    nowhere = await client.post(
        "/api/agents", json={**NEWCOMER, "agent_id": "AG-NEW-2", "office_id": "FS-99-01"}
    )
    assert nowhere.status_code == 422
    assert nowhere.json()["message"] == "le bureau FS-99-01 n'existe pas."
    assert not await client.db.rows(
        "agents", client.db.tables.agents.c.agent_id.in_(["AG-NEW-1", "AG-NEW-2"])
    )


async def test_an_import_with_one_malformed_row_applies_nothing_and_names_every_bad_row(client):
    data = versioned_file()
    data["version"] = "2026-12-01"
    data["agents"][0]["capacity"] = 60  # a valid change, which must not be applied either
    data["agents"].append({**NEWCOMER})
    data["agents"].append({**NEWCOMER, "agent_id": "AG-23-01-8", "phone": "pas de téléphone"})
    data["agents"].append({**NEWCOMER, "agent_id": "AG-23-01-7", "office_id": "FS-99-01"})
    data["offices"].append({**data["offices"][0]})  # duplicate id
    before_agents = await client.db.rows("agents")
    before_events = len(await client.db.outbox())

    response = await client.post("/api/directory/import", json=data, params=IMPORT_REASON)

    assert response.status_code == 422
    body = response.json()
    assert (
        body["message"] == "Des lignes du fichier d'annuaire sont invalides ; rien n'a été importé."
    )
    messages = [e["message"] for e in body["errors"]]
    n = len(data["agents"])
    assert f"Ligne {n - 1} des agents (AG-23-01-8) : Format invalide." in messages
    assert any("l'identifiant FS-75-01 apparaît deux fois" in m for m in messages)
    assert await client.db.rows("agents") == before_agents
    assert len(await client.db.outbox()) == before_events

    # Once the syntax is right, the unknown office is caught before anything is written.
    data["agents"][-2]["phone"] = "05 55 10 20 38"
    data["offices"].pop()
    response = await client.post("/api/directory/import", json=data, params=IMPORT_REASON)
    assert response.status_code == 422
    assert [e["message"] for e in response.json()["errors"]] == [
        f"Ligne {n} des agents (AG-23-01-7) : le bureau FS-99-01 n'existe pas."
    ]
    assert await client.db.rows("agents") == before_agents


async def test_a_valid_import_applies_changes_as_events_once_per_version(client):
    data = versioned_file()
    data["version"] = "2026-12-01"
    changed = data["agents"][0]
    changed["capacity"] = changed["capacity"] + 5
    data["agents"].append(copy.deepcopy(NEWCOMER))
    before = len(await directory_events(client.db))

    response = await client.post("/api/directory/import", json=data, params=IMPORT_REASON)

    assert response.status_code == 200, response.text
    assert response.json() | {"applied": True} == response.json()
    assert (response.json()["agents_joined"], response.json()["agents_changed"]) == (1, 1)
    events = (await directory_events(client.db))[before:]
    assert sorted(type(e).__name__ for e in events) == ["AgentDetailsChanged", "AgentJoined"]
    [detail] = [e for e in events if isinstance(e, AgentDetailsChanged)]
    assert (detail.agent_id, detail.agent.capacity) == (changed["agent_id"], changed["capacity"])

    again = await client.post("/api/directory/import", json=data, params=IMPORT_REASON)
    assert again.json()["applied"] is False
    assert again.json()["message"] == "La version 2026-12-01 de l'annuaire est déjà importée."
    assert len(await directory_events(client.db)) == before + 2


async def test_an_import_cannot_lower_a_capacity_below_the_files_already_held(client):
    t = client.db.tables
    await client.db.execute(
        t.agents.update().where(t.agents.c.agent_id == "AG-75-01-1").values(active_files=12)
    )
    data = versioned_file()
    data["version"] = "2026-12-02"
    next(a for a in data["agents"] if a["agent_id"] == "AG-75-01-1")["capacity"] = 10

    response = await client.post("/api/directory/import", json=data, params=IMPORT_REASON)

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert "la capacité 10 est inférieure aux 12 dossiers actifs" in error["message"]
    [row] = await client.db.rows("agents", t.agents.c.agent_id == "AG-75-01-1")
    assert row.capacity == 40


async def test_absence_return_and_departure_are_directory_events(client):
    before = len(await directory_events(client.db))

    declared = await client.post(
        "/api/agents/AG-75-01-1/absences",
        json={"starts_on": "2026-11-24", "ends_on": "2026-11-30", "reason": "Congés"},
    )
    back = await client.post("/api/agents/AG-75-01-1/return")
    left = await client.post("/api/agents/AG-75-01-2/departure", json={"reason": "mutation"})

    assert (declared.status_code, back.status_code, left.status_code) == (201, 200, 200)
    absent, returned, gone = (await directory_events(client.db))[before:]
    assert isinstance(absent, AgentAbsenceDeclared)
    assert (absent.agent_id, absent.starts_on, absent.ends_on) == (
        "AG-75-01-1",
        TODAY,
        dt.date(2026, 11, 30),
    )
    assert isinstance(returned, AgentReturned) and returned.agent_id == "AG-75-01-1"
    assert isinstance(gone, AgentLeft) and (gone.agent_id, gone.files_redistributed) == (
        "AG-75-01-2",
        0,
    )
    # Keyed by agent: one agent's changes stay in order on one partition.
    rows = [r for r in await client.db.outbox() if r.topic == topics.DIRECTORY_CHANGES][before:]
    assert [r.key for r in rows] == ["AG-75-01-1", "AG-75-01-1", "AG-75-01-2"]
