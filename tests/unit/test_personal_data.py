"""Crypto-shredding (issue 13 §4, docs/data-protection.md): personal fields sealed with the
citizen's data key in the outbox, opened in the consumer; a wrong key, a tampered value, a
value moved to another file are refused; a shredded key erases; intake's key service lets
only our services in (anonymous 401, a citizen or an agent or an agency 403, a service 200,
shredded 410)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from guichet_runtime.auth.dependencies import optional_principal
from guichet_runtime.auth.principal import (
    IssuerKind,
    Principal,
    PrincipalKind,
    Role,
    principal_from_claims,
)
from guichet_runtime.db import UnitOfWork, make_engine, messaging_tables, service_metadata
from guichet_runtime.personal_data import (
    CannotOpen,
    KeyCache,
    KeyShredded,
    PersonalData,
    PersonalDataErased,
    new_data_key,
    open_value,
    personal_data_key_refs_table,
    seal_value,
    unwrap_key,
    wrap_key,
)
from guichet_runtime.refusals import Refused
from guichet_runtime.sealing import new_key
from shared_models import (
    EVENT_TYPES,
    CitizenContact,
    FileSubmitted,
    LegalDeadlineSet,
    is_sealed,
    personal_fields,
    topics,
)

CITIZEN = CitizenContact(
    given_name="Maëlys",
    family_name="Quintard-Olivo",
    email="maelys.quintard@exemple.fr",
    phone="06 12 34 56 78",
    street="17 rue des Tanneurs",
    postcode="69004",
    city="Lyon",
    preferred_channel="email",
)
WORDS = "Licenciement économique après dix ans dans la même entreprise"
PLAIN = (
    "Maëlys",
    "Quintard",
    "maelys.quintard",
    "06 12 34 56 78",
    "0612345678",
    "Tanneurs",
    "Lyon",
    "Licenciement",
)


def submitted(file_id: str = "GU-2026-CRYPTO01") -> FileSubmitted:
    return FileSubmitted(
        file_id=file_id,
        life_event="perte_emploi",
        life_event_label="Perte d'emploi",
        agencies=["france_travail"],
        citizen=CITIZEN,
        description=WORDS,
        urgent=False,
    )


class Keys:
    """Data keys in a dict (a shredded one is None), counting fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}
        self.fetches = 0

    def new(self) -> str:
        key_id, key = new_data_key()
        self.keys[key_id] = key
        return key_id

    async def get(self, key_id: str) -> bytes:
        self.fetches += 1
        key = self.keys.get(key_id)
        if key is None:
            raise KeyShredded(key_id)
        return key


def sealing() -> tuple[PersonalData, Keys]:
    keys = Keys()
    return PersonalData(keys, personal_data_key_refs_table(sa.MetaData())), keys


# --- the fields and the envelope ----------------------------------------------------------


def test_the_personal_fields_are_marked_on_the_events_and_versions_say_so():
    assert personal_fields(FileSubmitted) == ("citizen", "description")
    assert personal_fields(LegalDeadlineSet) == ()
    marked = {name for name, cls in EVENT_TYPES.items() if personal_fields(cls)}
    # Every event carrying a contact, a name, the citizen's words or a decision about them.
    assert {
        "FileSubmitted",
        "AgencyRequestIssued",
        "AgencyAnswerReceived",
        "SupportingDocumentSubmitted",
        "CoordinatedAnswerIssued",
        "ReferentThanked",
        "NotificationSent",
    } <= marked
    for name in marked:
        assert EVENT_TYPES[name].model_fields["schema_version"].default >= 2, name


def test_a_sealed_event_carries_none_of_the_citizens_values_and_opens_back():
    data, keys = sealing()
    key_id = keys.new()
    event = submitted()

    payload = asyncio.run(data.seal(event, key_id))

    for value in PLAIN:
        assert value not in payload, value
    record = json.loads(payload)
    assert set(record["citizen"]) == {"key_id", "nonce", "ciphertext"}
    assert record["citizen"]["key_id"] == key_id
    assert record["life_event"] == "perte_emploi" and record["schema_version"] == 2
    opened, used = asyncio.run(data.open(FileSubmitted, payload))
    assert opened == event and used == key_id


def test_a_record_in_clear_still_reads():
    data, _ = sealing()
    event = submitted()
    opened, used = asyncio.run(data.open(FileSubmitted, event.model_dump_json()))
    assert opened == event and used is None


def test_a_wrong_key_a_tampered_value_or_another_file_does_not_open():
    key_id, key = new_data_key()
    sealed = seal_value(key_id, key, {"a": "Maëlys"}, "GU-2026-CRYPTO01")
    assert open_value(key, sealed, "GU-2026-CRYPTO01") == {"a": "Maëlys"}

    with pytest.raises(CannotOpen):
        open_value(new_data_key()[1], sealed, "GU-2026-CRYPTO01")
    with pytest.raises(CannotOpen):  # copied into another file's record
        open_value(key, sealed, "GU-2026-OTHER001")
    raw = bytearray(base64.urlsafe_b64decode(sealed["ciphertext"] + "=="))
    raw[3] ^= 1
    tampered = {**sealed, "ciphertext": base64.urlsafe_b64encode(bytes(raw)).decode()}
    with pytest.raises(CannotOpen):
        open_value(key, tampered, "GU-2026-CRYPTO01")


def test_a_tampered_event_is_refused_by_the_consumer_side():
    data, keys = sealing()
    payload = json.loads(asyncio.run(data.seal(submitted(), keys.new())))
    payload["description"]["nonce"] = payload["citizen"]["nonce"]
    with pytest.raises(CannotOpen):
        asyncio.run(data.open(FileSubmitted, json.dumps(payload)))


def test_a_shredded_key_erases_the_event():
    data, keys = sealing()
    key_id = keys.new()
    payload = asyncio.run(data.seal(submitted(), key_id))
    keys.keys[key_id] = None  # shredded
    with pytest.raises(PersonalDataErased) as erased:
        asyncio.run(data.open(FileSubmitted, payload))
    assert erased.value.key_id == key_id and erased.value.file_id == "GU-2026-CRYPTO01"


def test_data_keys_rest_wrapped_with_the_kek_bound_to_their_id():
    kek = base64.b64decode(new_key())
    key_id, key = new_data_key()
    wrapped = wrap_key(kek, key_id, key)
    assert key not in wrapped and unwrap_key(kek, key_id, wrapped) == key
    with pytest.raises(CannotOpen):
        unwrap_key(base64.b64decode(new_key()), key_id, wrapped)
    with pytest.raises(CannotOpen):  # another row's key pasted here
        unwrap_key(kek, new_data_key()[0], wrapped)


def test_keys_stay_in_memory_for_their_ttl_then_are_asked_again():
    keys = Keys()
    key_id = keys.new()
    now = [0.0]
    cache = KeyCache(keys.get, ttl=60, clock=lambda: now[0])
    for _ in range(5):
        asyncio.run(cache.get(key_id))
    assert keys.fetches == 1
    keys.keys[key_id] = None
    now[0] = 61.0
    with pytest.raises(KeyShredded):
        asyncio.run(cache.get(key_id))
    with pytest.raises(KeyShredded):  # remembered as shredded, not asked in a loop
        asyncio.run(cache.get(key_id))
    assert keys.fetches == 2


# --- the unit of work seals what it writes to the outbox ------------------------------------


async def sealing_service_db(path: Path) -> tuple[AsyncEngine, sa.Table, sa.Table, sa.Table]:
    """A service's database, created: (engine, outbox, inbox, key refs)."""
    metadata = service_metadata()
    outbox, inbox = messaging_tables(metadata)
    refs = personal_data_key_refs_table(metadata)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine, outbox, inbox, refs


def test_the_outbox_row_is_sealed_with_the_files_key(tmp_path: Path):
    async def run() -> tuple[list[str], str | None]:
        engine, outbox, inbox, refs = await sealing_service_db(tmp_path / "s.db")
        keys = Keys()
        data = PersonalData(keys, refs)
        key_id = keys.new()
        first = UnitOfWork(engine, outbox, inbox, personal_data=data)
        async with first:
            first.use_personal_key("GU-2026-CRYPTO01", key_id)
            first.emit(topics.FILES_SUBMITTED, submitted())
            await first.commit()
        # Later, a route or a worker emits for the file: the key is found by the file.
        later = UnitOfWork(engine, outbox, inbox, personal_data=data)
        async with later:
            later.emit(topics.FILES_SUBMITTED, submitted())
            later.emit(topics.FILES_SUBMITTED, submitted("GU-2026-NOKEY001"))
            await later.commit()
        async with engine.connect() as conn:
            payloads = [r.payload for r in await conn.execute(sa.select(outbox.c.payload))]
            known = await data.key_of(conn, "GU-2026-CRYPTO01")
        await engine.dispose()
        return payloads, known

    payloads, known = asyncio.run(run())
    sealed, sealed_later, no_key = payloads
    assert known is not None
    for payload in (sealed, sealed_later):
        assert "Maëlys" not in payload and WORDS not in payload
        assert json.loads(payload)["citizen"]["key_id"] == known
    # A file without a key (crypto-shredding off at intake) travels as before.
    assert json.loads(no_key)["citizen"]["given_name"] == "Maëlys"


def test_sealing_costs_little_per_event():
    """A micro-benchmark, reported in docs/data-protection.md (not a performance gate)."""
    data, keys = sealing()
    key_id = keys.new()
    event = submitted()
    payload = asyncio.run(data.seal(event, key_id))

    async def many(n: int) -> tuple[float, float]:
        started = time.perf_counter()
        for _ in range(n):
            await data.seal(event, key_id)
        sealed = time.perf_counter()
        for _ in range(n):
            await data.open(FileSubmitted, payload)
        return (sealed - started) / n, (time.perf_counter() - sealed) / n

    seal_s, open_s = asyncio.run(many(2000))
    plain = time.perf_counter()
    for _ in range(2000):
        FileSubmitted.model_validate_json(event.model_dump_json())
    plain_s = (time.perf_counter() - plain) / 2000
    print(
        f"\nseal {seal_s * 1e6:.0f} µs, open {open_s * 1e6:.0f} µs per FileSubmitted "
        f"(plain dump + parse {plain_s * 1e6:.0f} µs)"
    )
    assert seal_s < 0.005 and open_s < 0.005


# --- who is a service ----------------------------------------------------------------------


def test_a_service_token_is_a_service_and_only_services_hold_the_key_reader_role():
    claims = {
        "sub": "svc-1",
        "azp": "service-assignment",
        "service": "assignment",
        "realm_access": {"roles": ["personal-data-reader", "referent", "default-roles-agents"]},
    }
    service = principal_from_claims(claims, IssuerKind.AGENT)
    assert service.kind is PrincipalKind.SERVICE and service.service == "assignment"
    assert service.roles == frozenset({Role.PERSONAL_DATA_READER})
    agent = principal_from_claims({**claims, "service": None}, IssuerKind.AGENT)
    assert agent.kind is PrincipalKind.AGENT and Role.PERSONAL_DATA_READER not in agent.roles
    citizen = principal_from_claims(claims, IssuerKind.CITIZEN)
    assert citizen.kind is PrincipalKind.CITIZEN and not citizen.roles


# --- intake's key service ------------------------------------------------------------------

SERVICE = Principal(
    kind=PrincipalKind.SERVICE,
    subject="svc-notification",
    service="notification",
    roles=frozenset({Role.PERSONAL_DATA_READER}),
)
CALLERS = {
    "anonymous": (Principal.anonymous(), 401),
    "citizen": (Principal(kind=PrincipalKind.CITIZEN, subject="c-1"), 403),
    "agent": (
        Principal(
            kind=PrincipalKind.AGENT,
            subject="a-1",
            agent_id="AG-1",
            roles=frozenset({Role.REFERENT, Role.SUPERVISEUR}),
        ),
        403,
    ),
    "agency": (Principal(kind=PrincipalKind.AGENCY, subject="caf", agency="caf"), 403),
    "service without the role": (
        Principal(kind=PrincipalKind.SERVICE, subject="svc-x", service="x"),
        403,
    ),
    "service": (SERVICE, 200),
}


@pytest.fixture
def intake(tmp_path: Path):
    from intake.bootstrap import IntakeSettings, bootstrap
    from intake.tables import metadata

    db = f"sqlite+aiosqlite:///{tmp_path}/intake.db"
    app = bootstrap(IntakeSettings(database_url=db, access_code_key=new_key()))
    runtime = app.state.runtime
    runtime.personal_data.vault.kek = base64.b64decode(new_key())

    async def create() -> None:
        async with runtime.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    asyncio.run(create())
    caller: list[Principal] = [SERVICE]

    async def who() -> Principal:
        return caller[0]

    app.dependency_overrides[optional_principal] = who
    yield app, runtime, caller
    asyncio.run(runtime.engine.dispose())


def new_key_at_intake(runtime, subject: str | None) -> str:
    async def run() -> str:
        async with runtime.uow() as uow:
            key_id = await runtime.personal_data.key_for(uow.conn, subject)
            await uow.commit()
        return str(key_id)

    return asyncio.run(run())


@pytest.mark.parametrize("caller", CALLERS)
def test_the_key_service_serves_our_services_only(intake, caller):
    app, runtime, current = intake
    key_id = new_key_at_intake(runtime, None)
    principal, status = CALLERS[caller]
    current[0] = principal

    answer = TestClient(app).get(f"/internal/personal-data-keys/{key_id}")

    assert answer.status_code == status, answer.text
    if status == 200:
        key = base64.b64decode(answer.json()["key"])
        assert len(key) == 32 and asyncio.run(runtime.personal_data.vault.get(key_id)) == key


def test_a_logged_in_citizen_has_one_key_for_all_their_files(intake):
    _, runtime, _ = intake
    first = new_key_at_intake(runtime, "citizen-sub-1")
    assert new_key_at_intake(runtime, "citizen-sub-1") == first
    assert new_key_at_intake(runtime, "citizen-sub-2") != first
    assert new_key_at_intake(runtime, None) != new_key_at_intake(runtime, None)


def test_shredding_deletes_the_key_keeps_the_row_audits_and_answers_410(intake):
    from intake.commands.personal_data import shred_personal_data_key
    from intake.tables import audit, personal_data_keys

    app, runtime, _ = intake
    key_id = new_key_at_intake(runtime, "citizen-sub-1")
    client = TestClient(app)
    assert client.get(f"/internal/personal-data-keys/{key_id}").status_code == 200

    with pytest.raises(Refused) as no_reason:
        asyncio.run(shred_personal_data_key(key_id, "", runtime.uow()))
    assert no_reason.value.status == 422
    assert asyncio.run(shred_personal_data_key(key_id, "Demande d'effacement", runtime.uow()))
    assert not asyncio.run(shred_personal_data_key(key_id, "Demande d'effacement", runtime.uow()))

    gone = client.get(f"/internal/personal-data-keys/{key_id}")
    assert gone.status_code == 410 and gone.json()["message"].startswith("Ces données")
    assert client.get("/internal/personal-data-keys/nope").status_code == 404

    async def rows() -> tuple[sa.Row, list[sa.Row]]:
        async with runtime.engine.connect() as conn:
            key = (await conn.execute(sa.select(personal_data_keys))).one()
            entries = (await conn.execute(sa.select(audit.log))).all()
        return key, entries

    key, entries = asyncio.run(rows())
    assert key.wrapped_key is None and key.shredded_at is not None
    assert [e.action for e in entries] == ["personal-data-key.shredded"]
    assert entries[0].reason == "Demande d'effacement"
    # A new file of the same citizen gets a new key.
    assert new_key_at_intake(runtime, "citizen-sub-1") != key_id


def test_what_is_emitted_after_the_shredding_carries_nothing_and_reads_as_erased():
    data, keys = sealing()
    key_id = keys.new()
    keys.keys[key_id] = None  # shredded before a worker emits for the file

    payload = asyncio.run(data.seal(submitted(), key_id))

    record = json.loads(payload)
    assert record["citizen"] == {"key_id": key_id, "nonce": "", "ciphertext": ""}
    for value in PLAIN:
        assert value not in payload, value
    with pytest.raises(PersonalDataErased):
        asyncio.run(data.open(FileSubmitted, payload))


@pytest.mark.parametrize("subject", [None, "citizen-sub-1"])
def test_intake_seals_a_new_files_event_in_the_same_transaction(intake, subject):
    """The key is created and read through the unit of work's connection (on SQLite a second
    connection would wait for the write lock; on PostgreSQL it would not see the new key)."""
    from intake.commands.personal_data import seal_new_file
    from intake.tables import outbox

    _, runtime, _ = intake
    if subject is not None:
        new_key_at_intake(runtime, subject)  # the citizen's key exists: read, not created

    async def submit() -> str:
        async with runtime.uow() as uow:
            await seal_new_file(uow, "GU-2026-CRYPTO01", subject, submitted().citizen)
            uow.emit(topics.FILES_SUBMITTED, submitted())
            await uow.commit()
        async with runtime.engine.connect() as conn:
            return str(await conn.scalar(sa.select(outbox.c.payload)))

    payload = asyncio.run(asyncio.wait_for(submit(), timeout=20))
    assert "Maëlys" not in payload and WORDS not in payload
    assert is_sealed(json.loads(payload)["citizen"])
