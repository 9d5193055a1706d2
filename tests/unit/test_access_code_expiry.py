"""Issue 18 §4: access codes and the proofs they give expire, with time really moving.

A one-time code lives 15 minutes, the proof of access a verified code gives 30 minutes, and
a file is sent at most 3 codes in 15 minutes. Intake times them with the wall clock (the
rehearsal clock of guichet_runtime.clock moves calendar days only, for the legal deadlines),
so these tests move the wall clock itself (time-machine) and check, over intake's real HTTP
routes on its real database, that a code or proof is honoured just before its end and
refused, in French, just after. Expected instants and wordings are written out literally.
"""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import time_machine
from fastapi import FastAPI

from guichet_runtime.errors import install_french_validation
from guichet_runtime.refusals import RefusalKind, Refused, install_refusals
from intake import api as intake_api
from intake.commands.access import ensure_access_proof, issue_access_code, verify_access_code
from shared_models import AccessCodeIssued
from tests.unit.samples import AWA_BIRTH_FORM, KEYRING, opened_code

FORM = AWA_BIRTH_FORM
NEW_CONTACT = {"email": "awa.diallo@example.fr", "postcode": "93200", "preferred_channel": "email"}
#: The moment each test starts at (a Monday morning in Paris, 10:00).
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
CODE_DEAD = "Ce code n'est plus valable : demandez un nouveau code."
PROOF_DEAD = (
    "Votre accès au dossier a expiré : demandez un nouveau code d'accès pour modifier vos "
    "coordonnées."
)
TOO_MANY_CODES = (
    "Plusieurs codes vous ont déjà été envoyés : utilisez le dernier reçu ou réessayez "
    "dans 15 minutes."
)


@pytest.fixture
def clock():
    """The wall clock, stopped at T0; `clock.shift(timedelta)` moves it."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
async def client(intake_db, clock):
    app = FastAPI()
    install_french_validation(app)
    install_refusals(app)
    app.include_router(intake_api.router(intake_db, KEYRING))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        c.db = intake_db
        yield c


async def new_file(client) -> str:
    created = await client.post("/api/files", json=FORM, headers={"Idempotency-Key": "k"})
    assert created.status_code == 201, created.text
    return created.json()["file_id"]


async def last_code(db) -> str:
    *_, event = [e for _, e in await db.outbox_events() if isinstance(e, AccessCodeIssued)]
    return opened_code(event)


async def ask_code(client, file_id: str) -> httpx.Response:
    return await client.post(f"/api/files/{file_id}/access-codes")


async def verify(client, file_id: str, code: str) -> httpx.Response:
    return await client.post(f"/api/files/{file_id}/access-codes/verify", json={"code": code})


# --------------------------------------------------------------------------- the code


async def test_a_code_sent_at_9h00_says_it_ends_at_9h15_and_opens_the_file_until_then(
    client, clock
):
    file_id = await new_file(client)

    asked = await ask_code(client, file_id)
    assert asked.status_code == 202, asked.text
    assert dt.datetime.fromisoformat(asked.json()["expires_at"]) == dt.datetime(
        2026, 3, 2, 9, 15, tzinfo=dt.UTC
    )

    clock.shift(dt.timedelta(minutes=14, seconds=59))
    opened = await verify(client, file_id, await last_code(client.db))
    assert opened.status_code == 200, opened.text
    assert opened.json()["access"] == "accorde"


async def test_the_right_code_typed_after_its_15_minutes_is_refused_in_french(client, clock):
    file_id = await new_file(client)
    assert (await ask_code(client, file_id)).status_code == 202
    code = await last_code(client.db)

    clock.shift(dt.timedelta(minutes=15, seconds=1))
    late = await verify(client, file_id, code)

    assert late.status_code == 403, late.text
    assert late.json()["kind"] == "forbidden"
    assert late.json()["message"] == CODE_DEAD
    [row] = await client.db.rows("access_codes")
    assert row.used_at is None and row.proof_hash is None  # no proof was given


async def test_an_expired_code_stays_refused_and_a_fresh_one_opens_the_file(client, clock):
    """Expiry is per code: the citizen asks again and the new code opens the file."""
    file_id = await new_file(client)
    assert (await ask_code(client, file_id)).status_code == 202
    first = await last_code(client.db)
    clock.shift(dt.timedelta(minutes=20))

    stale = await verify(client, file_id, first)
    assert stale.status_code == 403
    assert stale.json()["message"] == CODE_DEAD
    assert (await ask_code(client, file_id)).status_code == 202
    assert (await verify(client, file_id, await last_code(client.db))).status_code == 200


async def test_three_codes_in_15_minutes_then_a_fourth_only_once_the_first_is_15_minutes_old(
    client, clock
):
    file_id = await new_file(client)
    for _ in range(3):  # 9:00, 9:05, 9:10
        assert (await ask_code(client, file_id)).status_code == 202
        clock.shift(dt.timedelta(minutes=5))

    clock.shift(dt.timedelta(minutes=-3))  # 9:12:00: three minutes before 9:00's code ends
    refused = await ask_code(client, file_id)
    assert refused.status_code == 429, refused.text
    assert refused.json() == {"message": TOO_MANY_CODES, "kind": "too_many"}
    assert refused.headers["Retry-After"] == "180"

    clock.shift(dt.timedelta(minutes=2, seconds=59))  # 9:14:59: the first code still counts
    last_second = await ask_code(client, file_id)
    assert (last_second.status_code, last_second.headers["Retry-After"]) == (429, "1")

    clock.shift(dt.timedelta(seconds=2))  # 9:15:01: it no longer does
    assert (await ask_code(client, file_id)).status_code == 202
    assert len(await client.db.rows("access_codes")) == 4


# --------------------------------------------------------------------------- the proof


async def proof_at_t0(client, file_id: str) -> dict[str, str]:
    assert (await ask_code(client, file_id)).status_code == 202
    opened = await verify(client, file_id, await last_code(client.db))
    assert opened.status_code == 200, opened.text
    body = opened.json()
    assert dt.datetime.fromisoformat(body["proof_expires_at"]) == dt.datetime(
        2026, 3, 2, 9, 30, tzinfo=dt.UTC
    )
    return {"X-Access-Proof": body["proof"]}


async def test_a_proof_opens_the_file_and_changes_the_contact_for_30_minutes_then_expires(
    client, clock
):
    file_id = await new_file(client)
    proof = await proof_at_t0(client, file_id)
    url = f"/api/files/{file_id}/contact-preferences"

    clock.shift(dt.timedelta(minutes=29, seconds=59))
    assert (await client.get(f"/api/files/{file_id}", headers=proof)).status_code == 200
    changed = await client.put(url, json=NEW_CONTACT, headers=proof)
    assert changed.status_code == 200, changed.text

    clock.shift(dt.timedelta(seconds=2))  # 9:30:01
    read = await client.get(f"/api/files/{file_id}", headers=proof)
    late = await client.put(url, json={**NEW_CONTACT, "email": "autre@example.fr"}, headers=proof)

    for refused in (read, late):
        assert refused.status_code == 401, refused.text
        assert refused.json() == {"message": PROOF_DEAD, "kind": "unauthenticated"}
    [row] = await client.db.rows("files")
    assert row.citizen["email"] == "awa.diallo@example.fr"  # the late change did not happen


async def test_a_proof_expires_at_the_command_level_too(intake_db, clock, client):
    """The contact change re-checks the proof inside its own transaction: a proof that dies
    between the route's check and the command is refused there as well."""
    file_id = await new_file(client)
    await issue_access_code(file_id, intake_db.uow(), KEYRING)
    proof = await verify_access_code(file_id, await last_code(intake_db), intake_db.uow())
    assert proof.expires_at == dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)

    async with intake_db.uow() as uow:
        await ensure_access_proof(uow, file_id, proof.token)  # still alive at 9:00
    clock.shift(dt.timedelta(minutes=30, seconds=1))
    with pytest.raises(Refused) as refused:
        async with intake_db.uow() as uow:
            await ensure_access_proof(uow, file_id, proof.token)
    assert (refused.value.kind, refused.value.message) == (RefusalKind.UNAUTHENTICATED, PROOF_DEAD)
