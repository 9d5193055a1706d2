"""Notification's tables sealed (issue 13 §4), end to end on real processes (a real broker
with SASL and ACLs, Keycloak, every service, the simulators), once on SQLite, once on
PostgreSQL, with crypto-shredding on:

- a file crosses the whole path (référent, agencies, coordinated answer, emails), a second
  file of the same citizen waits on an SMS gateway that keeps failing; notification's
  database then holds none of the citizen's values (name, email, phone in every form,
  street, city, the words of their description) in any column of any table, and each
  personal column holds a value sealed with the citizen's key;
- once the key is shredded, the waiting message is never sent: recorded as erased and
  counted, the service keeps answering, still nothing in clear."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from guichet_runtime.db import UnitOfWork, make_engine
from guichet_runtime.tls_context import client_tls
from tests.e2e.sealing_support import key_caches_expired
from tests.e2e.support import answered_view, citizen_client, eventually, file_body, query
from tests.personal_data import leaks

pytestmark = pytest.mark.integration

CITIZEN_USER = "oriane.vasseur-kellec"
CONTACT = {
    "given_name": "Oriane",
    "family_name": "Vasseur-Kellec",
    "email": "oriane.vasseur@exemple.fr",
    "phone": "07 64 28 19 53",
    "street": "8 impasse des Cordiers",
    "city": "Montbrison",
    "postcode": "42600",
}
DESCRIPTION = "Fermeture de la Filature Brossolette : licenciement après douze années."
PROBES = {**CONTACT, "description": DESCRIPTION}
#: The postcode is left out: five digits a timestamp may hold by chance.
PROBED = ("given_name", "family_name", "email", "phone", "street", "city", "description")
#: Notification's personal columns (notification.personal_columns.PERSONAL_COLUMNS).
PERSONAL = {
    "notifications": ("recipient", "subject", "body", "content", "last_error"),
    "deliveries": ("recipient", "error"),
    "contacts": ("citizen",),
}
#: What a message never sent to an erased citizen holds instead (no personal data).
ERASED = ("[données effacées]", "données effacées")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, shared_stack):
    """The session's shared stack on each backend (tests/e2e/conftest.py): personal data
    sealed, each service keeping a key in memory `KEY_TTL_SECONDS`."""
    return shared_stack(request.param)


async def notification_values(
    stack: Stack, files: set[str] | None = None
) -> list[tuple[str, str, str]]:
    """(table, column, value) of every non-empty value of every table of notification; with
    `files`, of the rows about those files only (the shared stack holds other modules' files,
    sealed with their citizens' keys)."""
    from notification.tables import metadata

    url = stack.database_urls["notification"]
    found = []
    for table in metadata.sorted_tables:
        for row in await query(url, f"SELECT * FROM {table.name}"):
            if files is not None and row._mapping.get("file_id") not in files:
                continue
            for column, value in row._mapping.items():
                if value is not None and str(value):
                    found.append((table.name, column, str(value)))
    return found


def in_clear(values: list[tuple[str, str, str]]) -> list[tuple[str, str, list[str]]]:
    found = [(t, c, leaks(v.encode(), PROBES, PROBED)) for t, c, v in values]
    return [f for f in found if f[2]]


def key_ids(values: list[tuple[str, str, str]]) -> set[str]:
    """The key ids of the sealed values of the personal columns; AssertionError if one is
    in clear."""
    ids = set()
    for table, column, value in values:
        if column in PERSONAL.get(table, ()) and value not in ERASED:
            sealed = json.loads(value) if value.startswith("{") else None
            assert isinstance(sealed, dict) and set(sealed) == {"key_id", "nonce", "ciphertext"}, (
                table,
                column,
            )
            ids.add(sealed["key_id"])
    return ids


async def message_row(stack: Stack, file_id: str, kind: str) -> Any:
    rows = await query(
        stack.database_urls["notification"],
        "SELECT status, attempts, last_error, channel FROM notifications "
        "WHERE file_id = :f AND kind = :k",
        f=file_id,
        k=kind,
    )
    return rows[0] if rows else None


@pytest.mark.timeout(900)
async def test_notifications_tables_hold_nothing_in_clear_and_a_shredded_key_stops_sending(
    stack, tokens
):
    providers = httpx.AsyncClient(base_url=stack.providers_url, timeout=10, verify=client_tls())
    # Every SMS fails for a while (503, retried with backoff): the second file's message waits.
    await providers.post("/admin/faults", json={"sms_unavailable": 100_000})

    # 1. A file crosses the whole path by email; a second one waits on the SMS gateway.
    async with citizen_client(stack, tokens, CITIZEN_USER, timeout=20) as client:
        body = {**file_body("perte_emploi", **CONTACT), "description": DESCRIPTION}
        created = await client.post("/api/files", json=body)
        assert created.status_code == 201, created.text
        first = created.json()["file_id"]
        await eventually(
            lambda: answered_view(client, first), timeout=180, what="the coordinated answer"
        )
        by_sms = file_body("naissance", **CONTACT, preferred_channel="sms")
        created = await client.post("/api/files", json=by_sms)
        assert created.status_code == 201, created.text
        second = created.json()["file_id"]

    async def waiting() -> Any:
        row = await message_row(stack, second, "referent_assigned")
        return row if row and row.status == "a_envoyer" and row.attempts >= 1 else None

    await eventually(waiting, timeout=120, what="the SMS to the référent's citizen, retried")

    # 2. Nothing of the citizen in clear in any column; the personal ones sealed with one key.
    values = await notification_values(stack)
    assert not in_clear(values), in_clear(values)
    [key_id] = key_ids(await notification_values(stack, {first, second}))
    refs = await query(
        stack.database_urls["notification"],
        "SELECT file_id, key_id FROM personal_data_key_refs WHERE file_id IN (:a, :b)",
        a=first,
        b=second,
    )
    assert {r.key_id for r in refs} == {key_id} and len(refs) == 2

    # 3. The key is shredded (the use case the erasure request calls) before the SMS goes.
    from intake.commands.personal_data import shred_personal_data_key
    from intake.tables import inbox, outbox

    engine = make_engine(stack.database_urls["intake"])
    try:
        reason = "Demande d'effacement de l'usager (test de bout en bout)"
        assert await shred_personal_data_key(key_id, reason, UnitOfWork(engine, outbox, inbox))
    finally:
        await engine.dispose()
    await key_caches_expired()
    await providers.post("/admin/faults", json={"reset": True})

    # 4. The waiting message is never sent: recorded as erased, counted; notification answers.
    async def erased() -> Any:
        row = await message_row(stack, second, "referent_assigned")
        return row if row.status != "a_envoyer" else None

    row = await eventually(erased, timeout=120, what="the waiting message, handled")
    assert (row.status, row.last_error) == ("canal_indisponible", "données effacées")
    sms = (await providers.get("/api/sms")).json()
    assert not [s for s in sms if s.get("file_id") == second], sms
    notification = f"http://127.0.0.1:{stack.ports.notification}"
    async with httpx.AsyncClient(timeout=10, verify=client_tls()) as client:
        assert (await client.get(f"{notification}/health")).status_code == 200
        metrics = (await client.get(f"{notification}/metrics")).text
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("guichet_notifications_total") and 'outcome="erased"' in line
    ]
    # The référent's message, and the answer's if it was recorded before the shredding (the
    # other modules on the shared stack send no SMS).
    [sms_erased] = [line for line in counted if 'channel="sms"' in line]
    assert float(sms_erased.rsplit(" ", 1)[1]) >= 1, counted
    await providers.aclose()

    # 5. Still nothing in clear; what stays is sealed with the shredded key, or erased.
    values = await notification_values(stack)
    assert not in_clear(values), in_clear(values)
    assert key_ids(await notification_values(stack, {first, second})) == {key_id}
