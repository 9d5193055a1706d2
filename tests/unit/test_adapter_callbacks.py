"""The adapter runtime's callbacks and reconciliation (issue 17: no agency decision is ever
lost), against the adapter's real SQLite database and a fake France Travail answering over
httpx's mock transport. No broker: published answers are read back from the outbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import adapter_sdk
from adapter_france_travail import FranceTravailAdapter
from adapter_sdk import signatures, tables
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.reconcile import poll_delay
from adapter_sdk.runtime import AdapterRuntime
from adapter_sdk.tables import CallbackOutcome, RequestStatus
from adapter_sdk.transport import Transport
from guichet_runtime import migrations
from guichet_runtime.db import UnitOfWork, make_engine, utcnow
from shared_models import AgencyRequestIssued, citizen_data_for
from tests.unit.agency_server import serve_agency
from tests.unit.samples import citizen

SECRET = "secret-partage-de-test"
GRANTED = {
    "decision": "accorde",
    "summary": "Allocation d'aide au retour à l'emploi accordée",
    "agency_reference": "FT-2026-000000000001",
    "amount_eur": 1234.5,
    "start_date": "2026-03-01",
}
REFUSED = {
    "decision": "refuse",
    "summary": "Demande d'allocation refusée",
    "agency_reference": "FT-2026-000000000001",
    "reason": "Durée d'affiliation insuffisante.",
}


@dataclass
class FakeFranceTravail:
    """France Travail's system: acknowledges, and tells the state of each request."""

    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_calls: list[str] = field(default_factory=list)
    #: request ids sent (POST), repeats included
    received: list[str] = field(default_factory=list)
    down: bool = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, json={"detail": "indisponible"})
        if request.method == "POST":
            sent = json.loads(request.content)
            self.received.append(sent["request_id"])
            return httpx.Response(
                202, json={"reference": f"FT-{sent['request_id']}", "statut": "recue"}
            )
        request_id = request.url.path.rsplit("/", 1)[-1]
        self.status_calls.append(request_id)
        decision = self.decisions.get(request_id)
        if decision is None:
            return httpx.Response(200, json={"request_id": request_id, "statut": "en_instruction"})
        return httpx.Response(200, json={"request_id": request_id, "decision": decision})


@dataclass
class Adapter:
    core: AdapterRuntime
    agency: FakeFranceTravail
    engine: Any
    metrics: AdapterMetrics
    #: The gate's "now" (fixed); each delivery is signed anew, a second earlier than the last.
    now: float = field(default_factory=time.time)
    earlier: itertools.count = field(default_factory=itertools.count)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, tables.outbox, tables.inbox)

    async def issue(self, request_id: str) -> None:
        event = AgencyRequestIssued(
            file_id=file_of(request_id),
            request_id=request_id,
            agency="france_travail",
            life_event="perte_emploi",
            citizen=citizen_data_for("france_travail", citizen(), "Fin de contrat."),
            urgent=False,
        )
        await self.core.on_request(event, self.uow())

    async def callback(
        self, request_id: str, callback_id: str, decision: dict[str, Any] = GRANTED
    ) -> tuple[int, dict]:
        body = json.dumps(
            {"callback_id": callback_id, "request_id": request_id, "decision": decision}
        ).encode()
        signed_at = int(self.now) - next(self.earlier)
        header = signatures.sign(SECRET, body, signed_at)
        return await self.core.on_callback(body, {"x-signature": header})

    async def rows(self, table: sa.Table, *where: Any) -> list[sa.Row]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.select(table).where(*where))).all())

    async def answers(self, request_id: str) -> list[dict]:
        """The answers published for a request (AgencyAnswerReceived in the outbox)."""
        rows = await self.rows(tables.outbox, tables.outbox.c.event_type == "AgencyAnswerReceived")
        return [
            json.loads(r.payload) for r in rows if json.loads(r.payload)["request_id"] == request_id
        ]

    async def ledger(self, request_id: str) -> list[str]:
        return [
            r.purpose
            for r in await self.rows(tables.exchanges, tables.exchanges.c.request_id == request_id)
        ]

    def counted(self, name: str, **labels: str) -> float:
        return (
            self.metrics.registry.get_sample_value(name, {"agency": "france_travail", **labels})
            or 0.0
        )

    async def make_due(self, request_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                tables.requests.update()
                .where(tables.requests.c.request_id == request_id)
                .values(next_poll_at=utcnow() - dt.timedelta(seconds=1))
            )


def file_of(request_id: str) -> str:
    return request_id.rsplit("-", 1)[0]


def new_request() -> str:
    return f"GU-2026-{uuid.uuid4().hex[:8].upper()}-france_travail"


@pytest.fixture(scope="session")
async def adapter_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("adapter") / "adapter.db"
    await migrations.upgrade(
        Path(adapter_sdk.__file__).parent / "migrations", f"sqlite+aiosqlite:///{path}"
    )
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def ft(request, adapter_template: Path, tmp_path: Path) -> AsyncIterator[Adapter]:
    if request.param == "sqlite":
        path = tmp_path / "adapter_france_travail.db"
        shutil.copyfile(adapter_template, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:  # the same rules on a real PostgreSQL server: concurrent transactions really overlap
        url = request.getfixturevalue("postgres_factory")(f"adapter_cb_{uuid.uuid4().hex[:12]}")
        await migrations.upgrade(Path(adapter_sdk.__file__).parent / "migrations", url)
    engine = make_engine(url)
    agency = FakeFranceTravail()
    server = await serve_agency(agency)
    config = FranceTravailAdapter.Config(
        database_url=url,
        agency_base_url=server.url,
        attempts=1,
        backoff_seconds=0,
        reconcile_first_seconds=60,
        reconcile_backoff_factor=2,
        reconcile_max_seconds=600,
        callback_secret=SECRET,
    )
    metrics = AdapterMetrics()
    transport = Transport(config, "france_travail", metrics)

    def uow(inbox_key=None):
        return UnitOfWork(engine, tables.outbox, tables.inbox, inbox_key=inbox_key)

    core = AdapterRuntime(FranceTravailAdapter(config), config, uow, transport, metrics)
    adapter = Adapter(core, agency, engine, metrics)
    core.desk.gate.clock = lambda: adapter.now
    yield adapter
    await transport.close()
    await server.close()
    await engine.dispose()


# ------------------------------------------------------------------------------ requests


async def test_a_request_issued_twice_is_sent_to_the_agency_once(ft: Adapter):
    """Its event published twice (a relay that died between publishing and deleting): the
    second, another delivery of a request whose reply is recorded, does not reach the agency."""
    request_id = new_request()

    await ft.issue(request_id)
    await ft.issue(request_id)

    assert ft.agency.received == [request_id]
    assert len(await ft.ledger(request_id)) == 2  # the request and the acknowledgement, once


# ------------------------------------------------------------------------------ callbacks


async def test_the_same_callback_twice_for_the_same_request_has_one_effect(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    assert await ft.callback(request_id, "cb-1") == (200, {"statut": "recu"})
    assert await ft.callback(request_id, "cb-1") == (200, {"statut": "deja_recu"})
    assert len(await ft.answers(request_id)) == 1
    [row] = await ft.rows(tables.requests, tables.requests.c.request_id == request_id)
    assert (row.status, row.next_poll_at) == (RequestStatus.DECIDED, None)


async def test_a_callback_id_already_used_for_another_request_is_refused_recorded_and_counted(
    ft: Adapter,
):
    first, second = new_request(), new_request()
    await ft.issue(first)
    await ft.issue(second)
    assert (await ft.callback(first, "cb-shared"))[0] == 200
    status, body = await ft.callback(second, "cb-shared", REFUSED)
    assert status == 409
    assert body["kind"] == "conflict" and body["field"] == "callback_id"
    assert "a déjà servi pour une autre demande" in body["message"]
    assert await ft.answers(second) == []  # not acknowledged as received, not applied
    assert any(
        p.startswith("Rappel refusé : identifiant cb-shared") for p in await ft.ledger(second)
    )
    assert ft.counted("adapter_callbacks_refused_total", reason="identifiant_reutilise") == 1
    [row] = await ft.rows(tables.requests, tables.requests.c.request_id == second)
    assert (
        row.status == RequestStatus.AWAITING and row.next_poll_at is not None
    )  # reconciliation will ask
    # The first request keeps its one decision.
    assert [a["answer"]["decision"] for a in await ft.answers(first)] == ["accorde"]


async def test_a_new_callback_id_for_a_decided_request_applies_nothing_a_different_one_is_recorded(
    ft: Adapter,
):
    request_id = new_request()
    await ft.issue(request_id)
    assert (await ft.callback(request_id, "cb-a"))[0] == 200
    assert await ft.callback(request_id, "cb-b") == (200, {"statut": "deja_decide"})
    status, body = await ft.callback(request_id, "cb-c", REFUSED)
    assert status == 409 and "déjà reçu une décision différente" in body["message"]
    assert [a["answer"]["decision"] for a in await ft.answers(request_id)] == ["accorde"]
    assert any(
        p.startswith("Décision divergente, non appliquée (rappel)")
        for p in await ft.ledger(request_id)
    )
    outcomes = {r.callback_id: r.outcome for r in await ft.rows(tables.callbacks)}
    assert outcomes == {
        "cb-a": CallbackOutcome.APPLIED,
        "cb-b": CallbackOutcome.SAME,
        "cb-c": CallbackOutcome.CONFLICT,
    }
    assert ft.counted("adapter_callbacks_refused_total", reason="decision_divergente") == 1


async def test_concurrent_copies_of_a_callback_are_applied_exactly_once(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    replies = await asyncio.gather(*(ft.callback(request_id, "cb-storm") for _ in range(8)))
    assert sorted(status for status, _ in replies) == [200] * 8
    assert [body for _, body in replies].count({"statut": "recu"}) == 1
    assert len(await ft.answers(request_id)) == 1


async def test_concurrent_callbacks_with_different_ids_decide_once(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    replies = await asyncio.gather(*(ft.callback(request_id, f"cb-{i}") for i in range(6)))
    assert [body for _, body in replies].count({"statut": "recu"}) == 1
    assert len(await ft.answers(request_id)) == 1


async def test_an_early_callback_is_held_then_applied_when_the_request_is_recorded(ft: Adapter):
    request_id = new_request()
    status, body = await ft.callback(request_id, "cb-early")
    assert status == 202 and body["statut"] == "en_attente"
    [held] = await ft.rows(tables.callbacks)
    assert held.outcome == CallbackOutcome.HELD and held.payload
    assert await ft.callback(request_id, "cb-early") == (200, {"statut": "deja_recu"})
    await ft.issue(request_id)
    assert [a["answer"]["decision"] for a in await ft.answers(request_id)] == ["accorde"]
    [row] = await ft.rows(tables.requests, tables.requests.c.request_id == request_id)
    assert row.status == RequestStatus.DECIDED and row.next_poll_at is None
    [applied] = await ft.rows(tables.callbacks)
    assert (applied.outcome, applied.payload) == (CallbackOutcome.APPLIED, None)


async def test_a_held_callback_the_request_transaction_missed_is_applied_by_the_worker(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    # As if the callback had been held while the request's transaction was committing.
    async with ft.engine.begin() as conn:
        await conn.execute(
            tables.callbacks.insert().values(
                callback_id="cb-raced",
                request_id=request_id,
                received_at=utcnow(),
                outcome=CallbackOutcome.HELD,
                payload=b"{}",
                answer=json.dumps(GRANTED),
            )
        )
    await ft.core.reconciler.sweep()
    assert len(await ft.answers(request_id)) == 1


# ------------------------------------------------------------------------------ reconciliation


def test_polls_back_off_up_to_the_longest_interval(ft: Adapter):
    config = ft.core.config
    assert [poll_delay(config, n) for n in range(6)] == [60, 120, 240, 480, 600, 600]


async def test_an_acknowledged_request_is_first_polled_after_the_configured_delay(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    [row] = await ft.rows(tables.requests, tables.requests.c.request_id == request_id)
    assert row.status == RequestStatus.AWAITING and row.next_poll_at is not None
    assert 55 <= (row.next_poll_at - row.updated_at).total_seconds() <= 65
    assert await ft.core.reconciler.sweep() == 0  # not due yet
    assert ft.agency.status_calls == []


async def test_a_poll_without_a_decision_backs_off_and_a_later_poll_applies_it_once(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    await ft.make_due(request_id)
    assert await ft.core.reconciler.sweep() == 1
    [row] = await ft.rows(tables.requests, tables.requests.c.request_id == request_id)
    assert row.polls == 1 and row.status == RequestStatus.AWAITING
    assert await ft.answers(request_id) == []

    ft.agency.decisions[request_id] = GRANTED
    await ft.make_due(request_id)
    assert await ft.core.reconciler.sweep() == 1
    assert [a["answer"]["decision"] for a in await ft.answers(request_id)] == ["accorde"]
    ledger = await ft.ledger(request_id)
    assert any(p.startswith("Consultation de l'état de la demande") for p in ledger)
    assert any(p.startswith("Réponse (consultation de l'état)") for p in ledger)
    # Decided: never polled again; the late callback has no effect.
    await ft.make_due(request_id)
    assert await ft.core.reconciler.sweep() == 0
    assert await ft.callback(request_id, "cb-late") == (200, {"statut": "deja_decide"})
    assert len(await ft.answers(request_id)) == 1


async def test_an_unreachable_agency_keeps_the_request_for_a_later_poll(ft: Adapter):
    request_id = new_request()
    await ft.issue(request_id)
    await ft.make_due(request_id)
    ft.agency.down = True
    await ft.core.reconciler.sweep()
    [row] = await ft.rows(tables.requests, tables.requests.c.request_id == request_id)
    assert row.status == RequestStatus.AWAITING and row.polls == 1 and row.next_poll_at is not None
    assert ft.counted("adapter_status_polls_total", outcome="echec") == 1


async def test_a_poll_and_a_callback_racing_apply_the_decision_once(ft: Adapter):
    for _ in range(5):
        request_id = new_request()
        await ft.issue(request_id)
        ft.agency.decisions[request_id] = GRANTED
        await ft.make_due(request_id)
        await asyncio.gather(
            ft.core.reconciler.sweep(), ft.callback(request_id, f"cb-{request_id}")
        )
        assert len(await ft.answers(request_id)) == 1


async def test_the_gauges_count_requests_awaiting_a_decision_and_those_overdue(ft: Adapter):
    waiting, decided = new_request(), new_request()
    await ft.issue(waiting)
    await ft.issue(decided)
    await ft.callback(decided, "cb-gauge")
    async with ft.engine.begin() as conn:
        await conn.execute(
            tables.requests.update()
            .where(tables.requests.c.request_id == waiting)
            .values(updated_at=utcnow() - dt.timedelta(days=6))
        )
    await ft.core.reconciler.measure()
    assert ft.counted("adapter_requests_awaiting_decision") == 1
    assert ft.counted("adapter_requests_overdue") == 1


async def test_a_reused_callback_id_for_a_request_not_recorded_yet_is_still_in_the_ledger(
    ft: Adapter,
):
    first, second = new_request(), new_request()
    await ft.issue(first)
    await ft.callback(first, "cb-shared")
    status, _ = await ft.callback(second, "cb-shared")  # second's acknowledgement not recorded yet
    assert status == 409
    await ft.issue(second)
    [refused] = [
        r
        for r in await ft.rows(tables.exchanges, tables.exchanges.c.request_id == second)
        if r.purpose.startswith("Rappel refusé")
    ]
    assert refused.file_id == file_of(second)
    published = [
        json.loads(r.payload)
        for r in await ft.rows(tables.outbox, tables.outbox.c.event_type == "ExchangesRecorded")
    ]
    assert refused.exchange_id in {e["exchange_id"] for p in published for e in p["exchanges"]}


async def test_a_poll_without_a_decision_tells_assignment_what_it_found(ft: Adapter):
    """Issue 17 §3: the supervisors see what reconciliation last found (AgencyStatusChecked
    on the legal-clock topic); a decision found is an answer, not a check."""
    request_id = new_request()
    await ft.issue(request_id)

    async def checks() -> list[dict]:
        rows = await ft.rows(tables.outbox, tables.outbox.c.event_type == "AgencyStatusChecked")
        return [json.loads(r.payload) for r in rows if r.topic == "legal-clock.events"]

    await ft.make_due(request_id)
    await ft.core.reconciler.sweep()
    ft.agency.down = True
    await ft.make_due(request_id)
    await ft.core.reconciler.sweep()
    found = [(c["request_id"], c["finding"], c["checks"]) for c in await checks()]
    assert found == [(request_id, "en_instruction", 1), (request_id, "echec", 2)]
    assert all(c["next_check_at"] for c in await checks())

    ft.agency.down = False
    ft.agency.decisions[request_id] = GRANTED
    await ft.make_due(request_id)
    await ft.core.reconciler.sweep()
    assert len(await checks()) == 2 and len(await ft.answers(request_id)) == 1
