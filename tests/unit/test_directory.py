"""Absences, returns, departures and supervisor moves: each open file keeps exactly one
active référent, nobody goes above capacity, and every move is told and recorded."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from assignment import api
from assignment.commands import directory, directory_import, housekeeping
from assignment.projections import files as assignment
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.errors import install_french_validation
from guichet_runtime.refusals import install_refusals
from shared_models import ReferentAssigned
from tests.unit.samples import citizen, file_submitted

TODAY = dt.date(2026, 11, 24)


@pytest.fixture
async def desk(assignment_db, tokens):
    """Three files of three citizens in Saint-Denis, and the admin API on a fixed day."""
    db = assignment_db
    await directory_import.seed_directory(db.uow(), DEFAULT_DIRECTORY)
    for i in range(3):
        event = file_submitted(
            f"GU-2026-DIR0000{i}", citizen=citizen(email=f"c{i}@example.fr"), urgent=i == 0
        )
        await assignment.on_file_submitted(event, db.uow(("assignment", str(event.event_id))))
    app = FastAPI()
    install_french_validation(app)
    install_refusals(app)
    tokens.install(app)
    app.include_router(api.admin_router(db, lambda: TODAY))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers=tokens.network_head(),
    ) as client:
        client.db = db
        yield client


async def state(db):
    async with db.engine.connect() as conn:
        files = {r.file_id: r for r in (await conn.execute(sa.text("SELECT * FROM files"))).all()}
        agents = {
            r.agent_id: r for r in (await conn.execute(sa.text("SELECT * FROM agents"))).all()
        }
    return files, agents


async def assert_invariant(db):
    files, agents = await state(db)
    for agent in agents.values():
        assert agent.active_files <= agent.capacity, agent.agent_id
        held = [
            f for f in files.values() if f.referent_id == agent.agent_id and f.status != "repondu"
        ]
        assert agent.active_files == len(held), agent.agent_id
    for f in files.values():
        assert f.status == "repondu" or agents[f.referent_id].status == "actif"


async def changes(db):
    return [
        e
        for _, e in await db.outbox_events()
        if isinstance(e, ReferentAssigned) and e.previous_referent
    ]


async def test_an_absent_agent_is_covered_by_an_office_colleague_then_gets_the_files_back(
    desk,
):
    files, agents = await state(desk.db)
    titular = files["GU-2026-DIR00000"].referent_id
    mine = {f for f, r in files.items() if r.referent_id == titular}

    response = await desk.post(
        f"/api/agents/{titular}/absences",
        json={"starts_on": "2026-11-24", "ends_on": "2026-12-12", "reason": "congés"},
    )
    assert response.status_code == 201 and response.json()["files_covered"] == len(mine)
    files, agents = await state(desk.db)
    for f in mine:
        cover = agents[files[f].referent_id]
        assert cover.agent_id != titular and cover.office_id == agents[titular].office_id
        assert files[f].titular_id == titular
    told = await changes(desk.db)
    assert {c.rule for c in told} == {"suppleance"} and "12/12/2026" in told[0].reason
    await assert_invariant(desk.db)

    assert (await desk.post(f"/api/agents/{titular}/return")).json() == {
        "files_returned": len(mine)
    }
    files, agents = await state(desk.db)
    assert {f for f, r in files.items() if r.referent_id == titular} == mine
    assert all(files[f].titular_id is None for f in mine)
    assert [c.rule for c in await changes(desk.db)].count("retour") == len(mine)
    await assert_invariant(desk.db)


async def test_a_planned_absence_starts_and_ends_on_its_dates(desk):
    files, _ = await state(desk.db)
    titular = files["GU-2026-DIR00001"].referent_id
    created = await desk.post(
        f"/api/agents/{titular}/absences",
        json={"starts_on": "2026-12-01", "ends_on": "2026-12-03", "reason": "Formation"},
    )
    assert created.json()["status"] == "prevue"
    assert await directory.apply_due_absences(desk.db.uow, dt.date(2026, 11, 30)) == 0
    assert await directory.apply_due_absences(desk.db.uow, dt.date(2026, 12, 1)) == 1
    _, agents = await state(desk.db)
    assert agents[titular].status == "absent"
    assert (
        await directory.apply_due_absences(desk.db.uow, dt.date(2026, 12, 3)) == 0
    )  # last day still off
    assert await directory.apply_due_absences(desk.db.uow, dt.date(2026, 12, 4)) == 1
    files, agents = await state(desk.db)
    assert agents[titular].status == "actif" and files["GU-2026-DIR00001"].referent_id == titular
    await assert_invariant(desk.db)


async def test_a_departure_spreads_the_portfolio_and_tells_each_citizen(desk):
    files, _ = await state(desk.db)
    leaving = files["GU-2026-DIR00000"].referent_id
    mine = {f for f, r in files.items() if r.referent_id == leaving}
    reason = "arrêt de longue durée"  # internal: in the audit trail, never told to citizens
    body = (await desk.post(f"/api/agents/{leaving}/departure", json={"reason": reason})).json()
    assert body == {"files_redistributed": len(mine), "files_without_referent": 0}
    files, agents = await state(desk.db)
    assert agents[leaving].status == "parti" and all(files[f].referent_id != leaving for f in mine)
    told = [c for c in await changes(desk.db) if c.rule == "depart"]
    assert {c.file_id for c in told} == mine
    assert all("a quitté son poste" in c.reason and reason not in c.reason for c in told)
    await assert_invariant(desk.db)
    again = await desk.post(f"/api/agents/{leaving}/departure", json={})
    assert again.status_code == 409 and "déjà quitté" in again.json()["message"]


async def test_a_supervisor_moves_a_file_with_a_mandatory_reason(desk):
    files, agents = await state(desk.db)
    current = files["GU-2026-DIR00002"].referent_id
    target = next(
        a
        for a in agents.values()
        if a.agent_id != current and a.office_id == agents[current].office_id
    )
    missing = await desk.post(
        "/api/files/GU-2026-DIR00002/reassign", json={"agent_id": target.agent_id}
    )
    assert (
        missing.status_code == 422
        and missing.json()["errors"][0]["message"] == "Ce champ est obligatoire."
    )
    moved = await desk.post(
        "/api/files/GU-2026-DIR00002/reassign",
        json={"reason": "Rééquilibrage du portefeuille", "agent_id": target.agent_id},
    )
    assert moved.status_code == 200 and moved.json()["referent_id"] == target.agent_id
    [change] = await changes(desk.db)
    assert (
        change.rule == "reaffectation_superviseur"
        and change.reason == "Rééquilibrage du portefeuille"
    )
    same = await desk.post(
        "/api/files/GU-2026-DIR00002/reassign",
        json={"reason": "encore une fois", "agent_id": target.agent_id},
    )
    assert same.status_code == 409
    await assert_invariant(desk.db)


async def test_bad_directory_requests_are_refused_in_french_and_change_nothing(desk):
    before = await state(desk.db)
    backwards = await desk.post(
        "/api/agents/AG-93-01-1/absences", json={"starts_on": "2026-12-10", "ends_on": "2026-12-01"}
    )
    assert backwards.status_code == 422
    assert backwards.json()["message"] == "La date de fin d'absence précède la date de début."
    unknown = await desk.post(
        "/api/agents/AG-INCONNU/absences", json={"starts_on": "2026-12-01", "ends_on": "2026-12-02"}
    )
    assert unknown.status_code == 404 and "AG-INCONNU" in unknown.json()["message"]
    bad_date = await desk.post(
        "/api/agents/AG-93-01-1/absences", json={"starts_on": "demain", "ends_on": "2026-12-02"}
    )
    assert bad_date.status_code == 422 and "AAAA-MM-JJ" in bad_date.json()["errors"][0]["message"]
    not_absent = await desk.post("/api/agents/AG-93-01-1/return")
    assert not_absent.status_code == 409
    assert await state(desk.db) == before


async def test_a_file_nobody_can_take_waits_visibly_then_gets_a_referent_urgent_first(
    assignment_db, tokens
):
    db = assignment_db
    await directory_import.seed_directory(db.uow(), DEFAULT_DIRECTORY)
    async with db.engine.begin() as conn:  # everybody is full for ordinary files
        await conn.execute(sa.text("UPDATE agents SET active_files = capacity - 1"))
    calm = file_submitted("GU-2026-WAIT0001", citizen=citizen(email="calme@example.fr"))
    urgent = file_submitted(
        "GU-2026-WAIT0002", citizen=citizen(email="urgent@example.fr"), urgent=True
    )
    for event in (calm, urgent):
        await assignment.on_file_submitted(event, db.uow(("assignment", str(event.event_id))))

    files, _ = await state(db)
    # The reserved share lets the urgent file through; the ordinary one waits.
    assert files["GU-2026-WAIT0002"].referent_id is not None
    assert files["GU-2026-WAIT0001"].status == "en_attente_attribution"
    app = FastAPI()
    install_refusals(app)
    tokens.install(app)
    app.include_router(api.router(db))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers=tokens.network_head(),
    ) as client:
        waiting = (await client.get("/api/supervision/waiting")).json()
    assert [f["file_id"] for f in waiting["files"]] == ["GU-2026-WAIT0001"]

    assert await housekeeping.assign_waiting(db.uow()) == 0  # still nobody with room
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE agents SET active_files = 0 WHERE office_id = 'FS-93-01'")
        )
    assert await housekeeping.assign_waiting(db.uow()) == 1
    files, _ = await state(db)
    assert files["GU-2026-WAIT0001"].status == "en_cours" and files["GU-2026-WAIT0001"].referent_id
    requests = [
        e for _, e in await db.outbox_events() if getattr(e, "file_id", None) == "GU-2026-WAIT0001"
    ]
    assert sorted(type(e).__name__ for e in requests) == ["AgencyRequestIssued"] * 3 + [
        "ReferentAssigned",
        "ReferentAssignmentDeferred",
    ]


def test_a_share_of_capacity_is_kept_for_urgent_files():
    from assignment.domain import Candidate, choose_referent

    nearly_full = Candidate("a", "Agent A", "93", frozenset({"caf"}), active_files=9, capacity=10)
    assert (
        choose_referent([nearly_full], ["caf"], "93", reserve_percent=10) is None
    )  # ordinary file
    assert (
        choose_referent([nearly_full], ["caf"], "93", reserve_percent=0).agent_id == "a"
    )  # urgent file
    full = Candidate("b", "Agent B", "93", frozenset({"caf"}), active_files=10, capacity=10)
    assert choose_referent([full], ["caf"], "93", reserve_percent=0) is None  # never above capacity
