"""Crypto-shredding (issue 13 §4), end to end on real processes (a real broker with SASL and
ACLs, Keycloak, every service, the agency simulators), once on SQLite, once on PostgreSQL:

- a file crosses the whole path (référent, four agencies, coordinated answer, emails) and no
  record on any topic of the stack carries one of the citizen's values in clear, nor any
  column of an adapter's tables (France Travail's decision rests sealed with the file's key);
- every sealed field opens with the citizen's data key, which intake's key service gives to
  our services only (anonymous 401, a citizen 403, a service 200);
- once the key is shredded, the key service answers 410: no sealed copy can be opened any
  more; what is emitted for the file afterwards carries nothing; the services keep running
  (France Travail's adapter answers its callbacks, no dead letter, the citizen's next file goes
  through with a new key)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from devstack.kafka_sasl import client_options
from devstack.stack import Stack
from guichet_runtime.db import UnitOfWork, make_engine
from guichet_runtime.personal_data import open_value
from guichet_runtime.tls_context import client_tls
from shared_models import is_sealed
from tests.e2e.sealed_adapters import (
    adapters_hold_nothing_in_clear,
    france_travail_answers_after_shredding,
)
from tests.e2e.sealing_support import key_caches_expired
from tests.e2e.support import (
    answered_view,
    citizen_client,
    eventually,
    file_body,
    mails_for,
    query,
)

pytestmark = pytest.mark.integration

CITIZEN_USER = "maelys.quintard"
CONTACT = {
    "given_name": "Maëlys",
    "family_name": "Quintard-Olivo",
    "email": "maelys.quintard@exemple.fr",
    "phone": "07 81 92 63 54",
    "street": "17 rue des Tanneurs",
    "city": "Quincieux",
    "postcode": "93200",
}
DESCRIPTION = "Licenciement chez Tissage Ravinel après onze années : que faire maintenant ?"
#: Probed in the raw bytes of every record: name, email, phone in both forms (and the
#: international one), street, city, words of the description.
IN_CLEAR = (
    "Maëlys",
    "Ma\\u00eblys",
    "Quintard",
    "maelys.quintard@exemple.fr",
    "07 81 92 63 54",
    "0781926354",
    "+33781926354",
    "Tanneurs",
    "Quincieux",
    "Ravinel",
    "Tissage",
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, shared_stack):
    """The session's shared stack on each backend (tests/e2e/conftest.py): personal data
    sealed, each service keeping a key in memory `KEY_TTL_SECONDS`."""
    return shared_stack(request.param)


async def every_record(stack: Stack) -> list[dict[str, Any]]:
    """Every record on every topic of the stack's namespace, from the beginning to the end."""
    options = client_options(stack.kafka_bootstrap)
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(stack.namespace)]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    partitions = [
        TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
    ]
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            batch = await consumer.getmany(timeout_ms=500)
            for tp, part in batch.items():
                for r in part:
                    if r.offset < ends[tp]:
                        records.append(
                            {
                                "topic": tp.topic.removeprefix(stack.namespace),
                                "key": r.key.decode() if r.key else None,
                                "raw": r.value or b"",
                                "event_type": dict(r.headers).get("event_type", b"").decode(),
                            }
                        )
    finally:
        await consumer.stop()
    return records


def sealed_fields(record: dict[str, Any]) -> list[dict[str, str]]:
    body = json.loads(record["raw"])
    return [v for v in body.values() if is_sealed(v)] if isinstance(body, dict) else []


async def key_service(stack: Stack, key_id: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10, verify=client_tls()) as client:
        return await client.get(
            f"{stack.intake_url}/internal/personal-data-keys/{key_id}", headers=headers
        )


async def test_a_file_travels_sealed_and_shredding_erases_every_copy(stack, tokens, keycloak):
    service = {"Authorization": f"Bearer {keycloak.client_token('service-notification')}"}

    # 1. The whole path: référent, four agencies, the coordinated answer, the emails.
    async with citizen_client(stack, tokens, CITIZEN_USER, timeout=20) as client:
        body = {**file_body("perte_emploi", **CONTACT), "description": DESCRIPTION}
        created = await client.post("/api/files", json=body)
        assert created.status_code == 201, created.text
        file_id = created.json()["file_id"]
        view = await eventually(
            lambda: answered_view(client, file_id), timeout=180, what="the coordinated answer"
        )
    mails = mails_for(stack.maildir, file_id)
    assert any(m["To"] == CONTACT["email"] for m in mails), "notification opened the contact"

    # 2. No record on any topic carries the citizen's values in clear.
    records = await every_record(stack)
    assert len(records) > 20
    for record in records:
        raw = record["raw"].decode("utf-8", errors="replace")
        found = [value for value in IN_CLEAR if value in raw]
        assert not found, f"{record['topic']} {record['event_type']}: {found} in clear"
    mine = [r for r in records if r["key"] == file_id]
    [submitted] = [r for r in mine if r["event_type"] == "FileSubmitted"]
    citizen = json.loads(submitted["raw"])["citizen"]
    assert set(citizen) == {"key_id", "nonce", "ciphertext"}
    key_id = citizen["key_id"]
    sealed = [s for r in mine for s in sealed_fields(r)]
    kinds = {r["event_type"] for r in mine if sealed_fields(r)}
    assert {
        "FileSubmitted",
        "ReferentAssigned",
        "AgencyRequestIssued",
        "AgencyAnswerReceived",
        "CoordinatedAnswerIssued",
        "NotificationSent",
    } <= kinds, kinds
    assert {s["key_id"] for s in sealed} == {key_id}

    # 3. The key service: our services only; every sealed field opens with the key.
    assert (await key_service(stack, key_id, {})).status_code == 401
    citizen_token = tokens.citizen(CITIZEN_USER)
    assert (await key_service(stack, key_id, citizen_token)).status_code == 403
    served = await key_service(stack, key_id, service)
    assert served.status_code == 200, served.text
    key = base64.b64decode(served.json()["key"])
    opened = open_value(key, citizen, file_id)
    assert (opened["given_name"], opened["email"]) == (CONTACT["given_name"], CONTACT["email"])
    for value in sealed:
        open_value(key, value, file_id)  # raises CannotOpen otherwise
    # ... and in the adapters' tables (the agency's decision sealed as well).
    personal = {**CONTACT, "description": DESCRIPTION}
    await adapters_hold_nothing_in_clear(stack, file_id, key_id, key, personal)

    # 4. Shredding (the use case the erasure request calls), in intake's database.
    from intake.commands.personal_data import shred_personal_data_key
    from intake.tables import inbox, outbox, personal_data_keys

    engine = make_engine(stack.database_urls["intake"])
    try:
        uow = UnitOfWork(engine, outbox, inbox)
        reason = "Demande d'effacement de l'usager (test de bout en bout)"
        assert await shred_personal_data_key(key_id, reason, uow)
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(personal_data_keys).where(personal_data_keys.c.key_id == key_id)
                )
            ).one()
    finally:
        await engine.dispose()
    assert row.wrapped_key is None and row.shredded_at is not None and row.subject is None

    # 5. Nobody gets the key any more: no sealed copy opens.
    gone = await key_service(stack, key_id, service)
    assert gone.status_code == 410, gone.text
    await key_caches_expired()
    await france_travail_answers_after_shredding(stack, file_id)

    # 6. The services keep running: the citizen thanks the référent (intake answers, the
    # thanks carry nothing, notification writes to nobody), then files again (a new key).
    referent = view["referent"]
    async with citizen_client(stack, tokens, CITIZEN_USER, timeout=20) as client:
        thanks = await client.post(
            f"/api/files/{file_id}/thanks", json={"message": "Merci Tissage Ravinel !"}
        )
        assert thanks.status_code == 201, thanks.text

        async def thanks_handled() -> list[Any] | None:
            after = [r for r in await every_record(stack) if r["event_type"] == "ReferentThanked"]
            mine = [r for r in after if r["key"] == file_id]
            if not mine:
                return None
            event_id = json.loads(mine[0]["raw"])["event_id"]
            seen = await query(
                stack.database_urls["notification"],
                "SELECT event_id FROM inbox WHERE event_id = :e",
                e=event_id,
            )
            return [mine[0], seen] if seen else None

        thanked, _ = await eventually(thanks_handled, timeout=60, what="the thanks, handled")
        thanked_body = json.loads(thanked["raw"])
        assert thanked_body["citizen"] == {"key_id": key_id, "nonce": "", "ciphertext": ""}
        assert thanked_body["message"]["ciphertext"] == ""
        to_referent = [
            m
            for m in mails_for(stack.maildir, file_id)
            if m["To"] == referent["email"]
            and "remercie" in m.get_body(preferencelist=("plain",)).get_content()
        ]
        assert not to_referent, "a thanks from an erased citizen was sent"

        again = await client.post("/api/files", json=file_body("naissance", **CONTACT))
        assert again.status_code == 201, again.text
        second = again.json()["file_id"]
        await eventually(
            lambda: answered_view(client, second), timeout=180, what="the next file's answer"
        )
    records = await every_record(stack)
    [next_submitted] = [
        r for r in records if r["key"] == second and r["event_type"] == "FileSubmitted"
    ]
    assert json.loads(next_submitted["raw"])["citizen"]["key_id"] != key_id
    dead = [r for r in records if r["topic"].endswith(".dlq")]
    assert not dead, [(r["topic"], r["event_type"]) for r in dead]
    for record in records:
        raw = record["raw"].decode("utf-8", errors="replace")
        assert not [v for v in IN_CLEAR if v in raw], (record["topic"], record["event_type"])
