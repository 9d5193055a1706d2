"""Assignment's tables sealed (issue 13 §4), end to end on real processes (a real broker with
SASL and ACLs, Keycloak, every service, the agency simulators), on SQLite and PostgreSQL:

- a sealed file crosses the whole path (référent, agencies, coordinated answer) and
  assignment's database holds none of the citizen's values (tests/personal_data.py: name,
  email, phone in three forms, street, city, the description's words) in any column of any
  table; `citizen_key` is the data key's id;
- the référent's desk reads the file's history opened;
- once the key is shredded, assignment still answers: the desk shows the erased form."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from assignment.tables import metadata
from guichet_runtime.db import UnitOfWork, make_engine
from shared_models import is_sealed
from tests.e2e.sealing_support import key_caches_expired
from tests.e2e.support import answered_view, citizen_client, client_as, eventually, file_body
from tests.personal_data import PROBED_FIELDS, leaks

pytestmark = pytest.mark.integration

CITIZEN_USER = "yvonne.carabalo"
CONTACT = {
    "given_name": "Yvonne",
    "family_name": "Carabalo-Meunier",
    "email": "yvonne.carabalo@exemple.fr",
    "phone": "07 64 28 19 53",
    "street": "4 impasse des Vanniers",
    "city": "Vernaison",
    "postcode": "93200",
}
DESCRIPTION = "Licenciement chez Verrerie Oustalet après neuf années : quelles démarches ?"
PERSONAL = {**CONTACT, "description": DESCRIPTION}
#: The postcode is left out: the directory's offices carry postcodes of their own.
FIELDS = [f for f in PROBED_FIELDS if f != "postcode"]
ERASED = "[données effacées]"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, shared_stack):
    """The session's shared stack on each backend (tests/e2e/conftest.py): personal data
    sealed, each service keeping a key in memory `KEY_TTL_SECONDS`."""
    return shared_stack(request.param)


async def every_row(url: str) -> bytes:
    """Every row of every table of assignment's database, as bytes (one JSON line each)."""
    engine = create_async_engine(url)
    lines = []
    try:
        async with engine.connect() as conn:
            for table in metadata.sorted_tables:
                for row in (await conn.execute(sa.select(table))).all():
                    lines.append(json.dumps([str(v) for v in row], ensure_ascii=False))
    finally:
        await engine.dispose()
    return "\n".join(lines).encode()


async def file_row(url: str, file_id: str) -> sa.Row:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            files = metadata.tables["files"]
            return (await conn.execute(sa.select(files).where(files.c.file_id == file_id))).one()
    finally:
        await engine.dispose()


async def test_assignment_keeps_nothing_in_clear_and_answers_after_shredding(stack, tokens):
    url = stack.database_urls["assignment"]
    async with citizen_client(stack, tokens, CITIZEN_USER, timeout=20) as client:
        body = {**file_body("perte_emploi", **CONTACT), "description": DESCRIPTION}
        created = await client.post("/api/files", json=body)
        assert created.status_code == 201, created.text
        file_id = created.json()["file_id"]
        view = await eventually(
            lambda: answered_view(client, file_id), timeout=180, what="the coordinated answer"
        )
    referent_id = view["referent"]["agent_id"]

    # 1. Assignment's database: the file sealed, nothing of the citizen in clear.
    row = await file_row(url, file_id)
    assert is_sealed(row.citizen) and is_sealed(row.description)
    key_id = row.citizen["key_id"]
    assert row.citizen_key == f"key:{key_id}"
    assert leaks(await every_row(url), PERSONAL, FIELDS) == []

    # 2. The référent's desk reads the history opened.
    desk = client_as(stack.assignment_url, lambda: tokens.agent_id(referent_id), timeout=20)
    async with desk:
        record = await desk.get(f"/api/files/{file_id}/assignment")
        assert record.status_code == 200, record.text
        explanation = record.json()["history"][0]["explanation"]
        assert view["referent"]["name"] in explanation

        # 3. Shredding (the use case the erasure request calls), in intake's database.
        from intake.commands.personal_data import shred_personal_data_key
        from intake.tables import inbox, outbox

        engine = make_engine(stack.database_urls["intake"])
        try:
            reason = "Demande d'effacement de l'usager (test de bout en bout)"
            assert await shred_personal_data_key(key_id, reason, UnitOfWork(engine, outbox, inbox))
        finally:
            await engine.dispose()
        await key_caches_expired()

        # 4. Assignment still answers; what was sealed shows erased.
        after = await desk.get(f"/api/files/{file_id}/assignment")
        assert after.status_code == 200, after.text
        assert [h["explanation"] for h in after.json()["history"]] == [ERASED]
    assert leaks(await every_row(url), PERSONAL, FIELDS) == []


WITHOUT_ACCOUNT = {
    "given_name": "Anselme",
    "family_name": "Oustric-Barral",
    "email": "anselme.oustric@exemple.fr",
    "phone": "06 58 41 27 90",
    "street": "11 rue du Four-à-Chaux",
    "city": "Montfort-sur-Crould",
    "postcode": "93200",
}


async def test_a_citizen_without_an_account_keeps_their_referent_under_sealing(stack, tokens):
    """Two files registered at the counter for a citizen without an account (no `sub`), with
    the same email: intake gives them one data key (a pseudonym of the contact), so
    assignment's continuity finds the first file's référent for the second, with no contact
    in its tables."""
    url = stack.database_urls["assignment"]
    desk = client_as(stack.intake_url, lambda: tokens.agent("julien.durand"), timeout=20)

    async def referent_named(file_id: str) -> sa.Row | None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                files = metadata.tables["files"]
                row = (
                    await conn.execute(sa.select(files).where(files.c.file_id == file_id))
                ).one_or_none()  # none until assignment has read the file's event
        finally:
            await engine.dispose()
        return row if row is not None and row.referent_id else None

    rows = []
    async with desk:
        for description in ("Perte de mon emploi en mars.", "Une question sur mon allocation."):
            body = {
                **file_body("perte_emploi", **WITHOUT_ACCOUNT),
                "description": description,
                "channel": "guichet",
            }
            created = await desk.post("/api/files", json=body)
            assert created.status_code == 201, created.text
            file_id = created.json()["file_id"]
            rows.append(
                await eventually(lambda f=file_id: referent_named(f), what="the file's référent")
            )
    first, second = rows
    assert is_sealed(first.citizen) and is_sealed(second.citizen)
    assert first.citizen["key_id"] == second.citizen["key_id"]
    assert first.citizen_key == second.citizen_key == f"key:{first.citizen['key_id']}"
    assert second.referent_id == first.referent_id
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            history = metadata.tables["assignments"]
            rule = await conn.scalar(
                sa.select(history.c.rule)
                .where(history.c.file_id == second.file_id)
                .order_by(history.c.id)
                .limit(1)
            )
    finally:
        await engine.dispose()
    assert rule == "continuite"
    contact = {k: v for k, v in WITHOUT_ACCOUNT.items() if k != "postcode"}
    assert leaks(await every_row(url), contact, FIELDS) == []
