"""The citizen's GDPR rights end to end (issue 13 §6), on real processes and a real Kafka
broker, once on SQLite and once on PostgreSQL: "Mes données" downloads everything held about
the citizen and is audited; a file still being processed is not erased; a closed one is, and
`CitizenDataErased` makes assignment and notification erase their copies; assignment and
notification serve their parts of the export to the file's citizen only (intake recognising
them); the retention job (`intake retention`, on a rehearsal date) erases a file closed two
years before; six years on, the jobs of intake and assignment purge their audit trails and
`guichet-admin audit verify` still proves what remains."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys

import httpx
import pytest

from devstack.stack import Stack
from guichet_admin.audit import verify_database
from guichet_runtime.tls_context import client_tls
from tests.e2e.sealing_support import opened_column
from tests.e2e.support import (
    BACKENDS,
    answered_view,
    citizen_client,
    client_as,
    eventually,
    file_body,
    query,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request, shared_stack):
    """The session's stack on each backend (tests/e2e/conftest.py). The retention test erases
    every file closed by then on it: the modules before are done with theirs."""
    return shared_stack(request.param)


@pytest.fixture
async def client(stack, tokens):
    async with citizen_client(stack, tokens) as c:
        yield c


async def copies_erased(stack: Stack, file_id: str) -> bool:
    """Assignment's and notification's copies of the citizen are gone."""
    [assigned] = await query(
        stack.database_urls["assignment"],
        "SELECT citizen, description, citizen_key FROM files WHERE file_id = :f",
        f=file_id,
    )
    # JSON columns: decoded by PostgreSQL's driver, JSON text on SQLite; sealed with the
    # citizen's key until erased (the shared stacks seal, as production does): opened as
    # assignment would open them.
    decoded = isinstance(assigned.citizen, dict)
    citizen = assigned.citizen if decoded else json.loads(assigned.citizen)
    description = assigned.description if decoded else json.loads(assigned.description)
    citizen = await opened_column(stack, citizen, file_id)
    description = await opened_column(stack, description, file_id)
    kept = await query(
        stack.database_urls["notification"],
        "SELECT count(*) AS n FROM notifications WHERE file_id = :f AND recipient IS NOT NULL",
        f=file_id,
    )
    return (
        isinstance(citizen, dict)
        and "email" in citizen
        and citizen["email"] is None
        and citizen["given_name"] == "(effacé)"
        and description == ""
        and assigned.citizen_key == f"erased:{file_id}"
        and kept[0].n == 0
    )


async def audited(stack: Stack, file_id: str) -> list[tuple[str, str]]:
    rows = await query(
        stack.database_urls["intake"],
        "SELECT action, actor_kind FROM audit_log WHERE file_id = :f ORDER BY seq",
        f=file_id,
    )
    return [(r.action, r.actor_kind) for r in rows]


async def test_the_citizen_downloads_their_data_then_erases_their_closed_file(stack: Stack, client):
    body = file_body(email="mes.donnees@example.fr")
    file_id = (await client.post("/api/files", json=body)).json()["file_id"]
    # A sick leave waits for the employer's certificate: the file stays open.
    waiting = (
        await client.post("/api/files", json=file_body("arret_maladie", email="ouvert@example.fr"))
    ).json()["file_id"]
    await eventually(lambda: answered_view(client, file_id), timeout=90, what="the answer")

    exported = (await client.get("/api/me/export")).json()
    mine = {f["file_id"]: f for f in exported["files"]}
    assert {file_id, waiting} <= set(mine)
    closed = mine[file_id]
    assert closed["contact"]["email"] == "mes.donnees@example.fr"
    assert closed["description"] == body["description"]
    assert closed["referent"]["name"] and closed["referents"]
    sent = {a["agency"]: a["fields_sent"] for a in closed["agencies"]}
    assert sent == {
        "caf": ["prénom", "nom", "code postal", "description de votre situation"],
        "dgfip": ["prénom", "nom", "code postal"],
        "france_travail": [
            "prénom",
            "nom",
            "adresse électronique",
            "code postal",
            "description de votre situation",
        ],
    }
    assert len(closed["notifications"]) >= 2 and closed["answer"]["text"]
    one = await client.get(f"/api/files/{file_id}/export")
    assert [f["file_id"] for f in one.json()["files"]] == [file_id]

    refused = await client.post(f"/api/files/{waiting}/erasure", json={"confirm": True})
    assert refused.status_code == 409
    assert "article 17" in refused.json()["message"]

    erased = await client.post(f"/api/files/{file_id}/erasure", json={"confirm": True})
    assert erased.status_code == 200, erased.text
    await eventually(lambda: copies_erased(stack, file_id), what="the other services' copies")
    [row] = await query(
        stack.database_urls["intake"],
        "SELECT description, citizen_subject, erased_at, status FROM files WHERE file_id = :f",
        f=file_id,
    )
    assert (row.description, row.citizen_subject, row.status) == ("", None, "repondu")
    assert row.erased_at is not None
    # The file's skeleton still counts in the indicators.
    assert await query(
        stack.database_urls["intake"],
        "SELECT answered_at FROM file_metrics WHERE file_id = :f AND answered_at IS NOT NULL",
        f=file_id,
    )
    assert await audited(stack, file_id) == [
        ("citizen.data.exported", "citizen"),
        ("file.data.erased", "citizen"),
    ]
    after = (await client.get("/api/me/export")).json()["files"]
    assert file_id not in {f["file_id"] for f in after}
    # The open file is untouched.
    assert (await client.get(f"/api/files/{waiting}/export")).json()["files"][0]["contact"]


async def test_assignment_and_notification_serve_their_parts_to_the_files_citizen_only(
    stack: Stack, client, tokens
):
    body = file_body(email="mes.parties@example.fr")
    file_id = (await client.post("/api/files", json=body)).json()["file_id"]
    await eventually(lambda: answered_view(client, file_id), timeout=90, what="the answer")
    path = f"/api/files/{file_id}/export"
    parts = {}
    for service, url in (
        ("assignment", stack.assignment_url),
        ("notification", stack.notification_url),
    ):
        async with client_as(url, lambda: tokens.citizen("marie.dupont")) as marie:
            answer = await marie.get(path)
            assert answer.status_code == 200, (service, answer.text)
            parts[service] = answer.json()
        async with client_as(url, lambda: tokens.citizen("lucas.bernard")) as lucas:
            other = await lucas.get(path)
        async with httpx.AsyncClient(base_url=url, verify=client_tls()) as anonymous:
            nobody = await anonymous.get(path)
        assert (other.status_code, nobody.status_code) == (403, 401), service
        assert other.json()["message"] and nobody.json()["message"]
    assigned = parts["assignment"]
    assert assigned["held"] and assigned["citizen"]["email"] == "mes.parties@example.fr"
    assert assigned["description"] == body["description"]
    assert assigned["referents"][0]["name"] and assigned["referents"][0]["why"]
    assert {r["agency"] for r in assigned["agency_requests"]} == {"caf", "dgfip", "france_travail"}
    assert all(r["answer"] for r in assigned["agency_requests"])
    messages = parts["notification"]["messages"]
    assert len(messages) >= 2
    assert {m["address"] for m in messages} == {"mes.parties@example.fr"}
    assert all(m["subject"] and m["body"] and m["recorded_at"] for m in messages)
    assert any(m["sent_at"] and m["attempts"] for m in messages)


async def test_the_retention_job_erases_a_file_closed_two_years_before(stack: Stack, client):
    file_id = (
        await client.post("/api/files", json=file_body(email="conservation@example.fr"))
    ).json()["file_id"]
    await eventually(lambda: answered_view(client, file_id), timeout=90, what="the answer")
    clock = stack.workdir / "retention-clock"
    in_two_years = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2 * 365 + 2)
    clock.write_text(in_two_years.isoformat(), encoding="utf-8")
    env = {
        **os.environ,
        "DATABASE_URL": stack.database_urls["intake"],
        "CLOCK_FILE": str(clock),
    }

    job = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "intake",
        "retention",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(job.communicate(), timeout=120)

    assert job.returncode == 0, err.decode()
    done = json.loads(out.decode().strip().splitlines()[-1])
    assert file_id in done["erased_files"]
    # The running intake's relay publishes the job's event: the copies go.
    await eventually(lambda: copies_erased(stack, file_id), what="the copies, after the job")
    assert ("file.data.erased", "system") in await audited(stack, file_id)


async def run_job(service: str, stack: Stack, day: dt.date) -> dict:
    """`<service> retention` once, "today" being `day` (the controllable clock)."""
    clock = stack.workdir / f"{service}-retention-clock"
    clock.write_text(day.isoformat(), encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": stack.database_urls[service], "CLOCK_FILE": str(clock)}
    job = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        service,
        "retention",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(job.communicate(), timeout=120)
    assert job.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


async def test_six_years_on_the_audit_trails_are_purged_and_still_verify(stack: Stack, client):
    """Last of the module: it purges the stack's whole audit trails (every entry is older)."""
    await client.get("/api/me/export")  # an entry at intake, at least
    six_years_on = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=6 * 365 + 2)
    for service in ("intake", "assignment"):
        url = stack.database_urls[service]
        before = await verify_database(url, None)
        assert before.ok, (service, before.problems)
        done = await run_job(service, stack, six_years_on)
        assert done["audit_entries"] >= 1, (service, done)
        after = await verify_database(url, None)
        assert after.ok, (service, after.problems)
        assert after.purged_through >= done["audit_entries"] and after.entries >= 1
    # The chain goes on from the purge: a new entry, still verified.
    await client.get("/api/me/export")
    again = await verify_database(stack.database_urls["intake"], None)
    assert again.ok and again.entries >= 2, again.problems
