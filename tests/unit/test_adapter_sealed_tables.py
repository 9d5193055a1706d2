"""The adapter's tables hold the agency's decision about the citizen sealed with the file's
data key (issue 13 §4, adapter_sdk.personal): against the adapter's real database, real
AES-GCM, France Travail faked over httpx's mock transport, and a key service double that
gives real keys, or answers "shredded", or cannot be reached.

A sealed request (the consumer opened it with the citizen's key) leaves the key recorded
before the agency is called; every decision stored afterwards (`requests.answer`, a held
callback's `answer` and exact bytes `payload`) is the sealed object, opens with the key to
what the agency said, and no column of any table holds the decision in clear. A file without
a key stays in clear, and rows in clear stay readable. After shredding, the adapter answers
callbacks and polls without crashing and stores nothing readable."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import adapter_sdk
from adapter_france_travail import FranceTravailAdapter
from adapter_sdk import signatures, tables
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.runtime import AdapterRuntime
from adapter_sdk.tables import CallbackOutcome, RequestStatus
from adapter_sdk.transport import Transport
from guichet_runtime import migrations
from guichet_runtime.db import UnitOfWork, make_engine
from guichet_runtime.personal_data import (
    KeyShredded,
    KeyUnavailable,
    PersonalData,
    new_data_key,
    open_value,
)
from shared_models import AgencyRequestIssued, citizen_data_for, is_sealed
from tests.unit.agency_server import AgencyServer, serve_agency
from tests.unit.samples import citizen
from tests.unit.test_adapter_callbacks import (
    GRANTED,
    REFUSED,
    SECRET,
    Adapter,
    FakeFranceTravail,
    adapter_template,  # noqa: F401  (the migrated database, copied per test)
    file_of,
    new_request,
)

#: Words of the decisions that must never rest in clear once sealed.
DECISION_WORDS = ("affiliation", "1234.5", "retour à l'emploi", "2026-03-01")


class Keys:
    """The key service: real keys; None: shredded; `down`: unreachable."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}
        self.down = False

    async def get(self, key_id: str) -> bytes:
        if self.down:
            raise KeyUnavailable("key service unreachable")
        key = self.keys.get(key_id)
        if key is None:
            raise KeyShredded(key_id)
        return key

    def new(self) -> tuple[str, bytes]:
        key_id, key = new_data_key()
        self.keys[key_id] = key
        return key_id, key


class Sealed(Adapter):
    keys: Keys
    sealing: PersonalData
    server: AgencyServer

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, tables.outbox, tables.inbox, personal_data=self.sealing)

    async def issue_sealed(self, request_id: str, key_id: str | None) -> None:
        """The request as the consumer hands it over: opened, its file's key told (None: a
        request that travelled in clear)."""
        event = AgencyRequestIssued(
            file_id=file_of(request_id),
            request_id=request_id,
            agency="france_travail",
            life_event="perte_emploi",
            citizen=citizen_data_for("france_travail", citizen(), "Fin de contrat."),
            urgent=False,
        )
        uow = self.uow()
        if key_id is not None:
            uow.use_personal_key(event.file_id, key_id)
        await self.core.on_request(event, uow)

    def signed(self, request_id: str, callback_id: str, decision: dict[str, Any]) -> tuple:
        body = json.dumps(
            {"callback_id": callback_id, "request_id": request_id, "decision": decision}
        ).encode()
        signed_at = int(self.now) - next(self.earlier)
        return body, {"x-signature": signatures.sign(SECRET, body, signed_at)}

    async def everything(self) -> str:
        """Every column of every table, as text (folded): where a leak would show."""
        out = []
        async with self.engine.connect() as conn:
            for table in tables.metadata.sorted_tables:
                for row in (await conn.execute(sa.select(table))).all():
                    for value in row:
                        if isinstance(value, bytes):
                            value = value.decode("utf-8", errors="replace")
                        out.append(str(value))
        text = "\n".join(out)
        return (text + "\n" + json.dumps(text, ensure_ascii=False)).casefold()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def ft(request, adapter_template: Path, tmp_path: Path) -> AsyncIterator[Sealed]:  # noqa: F811
    if request.param == "sqlite":
        path = tmp_path / "adapter_france_travail.db"
        shutil.copyfile(adapter_template, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_factory")(f"adapter_seal_{uuid.uuid4().hex[:12]}")
        await migrations.upgrade(Path(adapter_sdk.__file__).parent / "migrations", url)
    engine = make_engine(url)
    agency = FakeFranceTravail()
    server = await serve_agency(agency)
    config = FranceTravailAdapter.Config(
        database_url=url,
        agency_base_url=server.url,
        attempts=1,
        backoff_seconds=0,
        callback_secret=SECRET,
    )
    keys = Keys()
    sealing = PersonalData(keys, tables.personal_data_key_refs)
    metrics = AdapterMetrics()
    transport = Transport(config, "france_travail", metrics)

    def uow(inbox_key=None):
        return UnitOfWork(
            engine, tables.outbox, tables.inbox, inbox_key=inbox_key, personal_data=sealing
        )

    core = AdapterRuntime(FranceTravailAdapter(config), config, uow, transport, metrics)
    adapter = Sealed(core, agency, engine, metrics)
    adapter.keys, adapter.sealing, adapter.server = keys, sealing, server
    core.desk.gate.clock = lambda: adapter.now
    yield adapter
    await transport.close()
    await server.close()
    await engine.dispose()


async def stored_answer(ft: Sealed, request_id: str) -> Any:
    [row] = await ft.rows(tables.requests, tables.requests.c.request_id == request_id)
    return row, json.loads(row.answer) if row.answer is not None else None


async def test_a_callbacks_decision_is_stored_sealed_with_the_files_key(ft: Sealed):
    request_id = new_request()
    key_id, key = ft.keys.new()
    await ft.issue_sealed(request_id, key_id)
    [ref] = await ft.rows(tables.personal_data_key_refs)
    assert (ref.file_id, ref.key_id) == (file_of(request_id), key_id)

    assert await ft.callback(request_id, "cb-1") == (200, {"statut": "recu"})
    assert await ft.callback(request_id, "cb-2") == (200, {"statut": "deja_decide"})
    assert (await ft.callback(request_id, "cb-3", REFUSED))[0] == 409

    row, answer = await stored_answer(ft, request_id)
    assert row.status == RequestStatus.DECIDED
    assert is_sealed(answer) and answer["key_id"] == key_id
    opened = open_value(key, answer, file_of(request_id))
    assert (opened["decision"], opened["amount_eur"]) == ("accorde", 1234.5)
    [published] = await ft.answers(request_id)  # the event in the outbox, sealed as well
    assert is_sealed(published["answer"]) and published["answer"]["key_id"] == key_id
    everything = await ft.everything()
    assert not [w for w in DECISION_WORDS if w in everything]


async def test_a_callback_outrunning_the_acknowledgement_is_held_sealed_then_applied(
    ft: Sealed,
):
    """The agency calls back before its acknowledgement reaches the adapter: the file's key
    was recorded before the call, so the held callback's decision and bytes rest sealed; once
    the request is recorded they open, the decision applies and the ledger has the digest of
    the very bytes received."""
    request_id = new_request()
    key_id, key = ft.keys.new()
    body, headers = ft.signed(request_id, "cb-early", GRANTED)
    seen: dict[str, Any] = {}
    answer_at_once = ft.agency.__call__

    async def agency(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            seen["reply"] = await ft.core.on_callback(body, headers)
            [held] = await ft.rows(tables.callbacks)
            seen["held"] = held
        return answer_at_once(request)

    ft.server.handler = agency
    await ft.issue_sealed(request_id, key_id)

    assert seen["reply"][0] == 202
    held = seen["held"]
    assert held.outcome == CallbackOutcome.HELD
    payload, answer = json.loads(held.payload), json.loads(held.answer)
    assert is_sealed(payload) and is_sealed(answer) and payload["key_id"] == key_id
    assert base64.b64decode(open_value(key, payload, file_of(request_id))) == body
    assert open_value(key, answer, file_of(request_id))["decision"] == "accorde"

    [callback] = await ft.rows(tables.callbacks)
    assert (callback.outcome, callback.payload, callback.answer) == (
        CallbackOutcome.APPLIED,
        None,
        None,
    )
    row, stored = await stored_answer(ft, request_id)
    assert row.status == RequestStatus.DECIDED and is_sealed(stored)
    digests = [r.payload_sha256 for r in await ft.rows(tables.exchanges)]
    assert hashlib.sha256(body).hexdigest() in digests
    assert len(await ft.answers(request_id)) == 1


async def test_without_a_key_the_decision_stays_in_clear_and_clear_rows_stay_readable(
    ft: Sealed,
):
    """A request that travelled in clear (a file without a key) keeps its decision in clear,
    as before; a callback held in clear (before this change) is applied once its request
    comes, and compared with afterwards."""
    plain = new_request()
    await ft.issue_sealed(plain, None)
    assert await ft.callback(plain, "cb-plain") == (200, {"statut": "recu"})
    _, answer = await stored_answer(ft, plain)
    assert answer["decision"] == "accorde" and not is_sealed(answer)

    early = new_request()
    assert (await ft.callback(early, "cb-old"))[0] == 202  # no key known: held in clear
    [old] = await ft.rows(tables.callbacks, tables.callbacks.c.callback_id == "cb-old")
    assert json.loads(old.payload)["callback_id"] == "cb-old"
    key_id, _ = ft.keys.new()
    await ft.issue_sealed(early, key_id)
    row, stored = await stored_answer(ft, early)
    assert row.status == RequestStatus.DECIDED and is_sealed(stored)  # sealed from now on
    assert await ft.callback(early, "cb-again") == (200, {"statut": "deja_decide"})


async def test_after_shredding_callbacks_and_polls_are_answered_and_nothing_readable_stays(
    ft: Sealed,
):
    decided, awaiting, held = new_request(), new_request(), new_request()
    key_id, _ = ft.keys.new()
    for request_id in (decided, awaiting):
        await ft.issue_sealed(request_id, key_id)
    assert (await ft.callback(decided, "cb-1"))[0] == 200
    # A callback held with the key known, then the key shredded before its request comes.
    async with ft.uow() as uow:
        uow.use_personal_key(file_of(held), key_id)
        await uow.commit()
    assert (await ft.callback(held, "cb-held"))[0] == 202
    ft.keys.keys[key_id] = None  # shredded

    # The decided request: another callback is compared with nothing, answered, not applied.
    assert await ft.callback(decided, "cb-2", REFUSED) == (200, {"statut": "deja_decide"})
    # The awaiting one: a decision is applied, stored and published erased.
    assert await ft.callback(awaiting, "cb-3") == (200, {"statut": "recu"})
    _, stored = await stored_answer(ft, awaiting)
    assert stored == {"key_id": key_id, "nonce": "", "ciphertext": ""}
    [published] = await ft.answers(awaiting)
    assert published["answer"] == {"key_id": key_id, "nonce": "", "ciphertext": ""}
    # The held one: cannot be opened any more; its request is recorded without a crash.
    await ft.issue_sealed(held, key_id)
    [row] = await ft.rows(tables.callbacks, tables.callbacks.c.callback_id == "cb-held")
    assert (row.outcome, row.payload, row.answer) == (CallbackOutcome.ERASED, None, None)
    [request] = await ft.rows(tables.requests, tables.requests.c.request_id == held)
    assert request.status == RequestStatus.AWAITING  # a status poll will fetch the decision

    # A poll finding the decision of the held one: applied, stored erased.
    ft.agency.decisions[held] = GRANTED
    assert await ft.core.reconciler.poll(request) == CallbackOutcome.APPLIED
    _, stored = await stored_answer(ft, held)
    assert stored["ciphertext"] == ""
    outcomes = {r.callback_id: r.outcome for r in await ft.rows(tables.callbacks)}
    assert outcomes["cb-2"] == CallbackOutcome.ERASED
    everything = await ft.everything()
    assert not [w for w in DECISION_WORDS if w in everything]


async def test_the_key_service_unreachable_the_callback_is_refused_for_now_then_taken(
    ft: Sealed,
):
    request_id = new_request()
    key_id, _ = ft.keys.new()
    await ft.issue_sealed(request_id, key_id)
    ft.keys.down = True
    status, body = await ft.callback(request_id, "cb-1")
    assert status == 503 and body["kind"] == "unavailable"
    assert await ft.rows(tables.callbacks) == []  # nothing stored, nothing applied
    row, _ = await stored_answer(ft, request_id)
    assert row.status == RequestStatus.AWAITING
    ft.keys.down = False
    assert await ft.callback(request_id, "cb-1") == (200, {"statut": "recu"})
