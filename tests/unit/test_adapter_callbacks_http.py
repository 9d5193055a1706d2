"""Issue 18 §4: the callback variants on the adapter's real app (adapter_sdk.app.build_app:
the route, the gate, the desk, its database), over HTTP, on SQLite and on PostgreSQL.

What docs/adapters.md ("Callbacks") claims, and what these tests hold the adapter to:
a second decision for a request never overwrites the first (the same one is "deja_decide",
a different one is refused 409 and kept in the ledger); callbacks racing one another or
racing the request's own recording apply one decision, once; a callback that outruns the
request is held, then applied exactly once, even when the request's transaction could not
see it (the reconciliation worker picks it up). Published answers are read back from the
adapter's outbox (no broker)."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
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
from adapter_sdk.app import build_app
from adapter_sdk.runtime import AdapterRuntime
from adapter_sdk.tables import CallbackOutcome, RequestStatus
from guichet_runtime import migrations
from guichet_runtime.db import UnitOfWork, utcnow
from shared_models import AgencyRequestIssued, citizen_data_for
from tests.unit import test_adapter_callbacks as base
from tests.unit.agency_server import serve_agency
from tests.unit.samples import citizen

GRANTED, REFUSED, SECRET = base.GRANTED, base.REFUSED, base.SECRET
adapter_template = base.adapter_template  # the migrated SQLite database, once per session
DIVERGENT = (
    "La demande {request_id} a déjà reçu une décision différente : ce rappel est enregistré "
    "au registre des échanges, mais n'est pas appliqué."
)
HELD = (
    "Demande {request_id} inconnue pour l'instant : le rappel est conservé et sera appliqué dès "
    "qu'elle sera enregistrée."
)


class HeldUnitOfWork(UnitOfWork):
    """A unit of work that, at commit, says so and waits to be let go."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.at_commit = asyncio.Event()
        self.go = asyncio.Event()

    async def commit(self) -> None:
        self.at_commit.set()
        await self.go.wait()
        await super().commit()


class App:
    """France Travail's adapter as deployed (its app, its database), a fake agency behind."""

    def __init__(self, app: Any, url: str, agency: base.FakeFranceTravail) -> None:
        self.app = app
        self.core: AdapterRuntime = app.state.adapter
        self.engine = app.state.runtime.engine
        self.backend = url.split(":", 1)[0]
        self.agency = agency
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("198.51.100.20", 443)),
            base_url="http://adapter",
        )
        #: The gate's "now", fixed; each delivery is signed anew, a second earlier than the
        #: last, so no two deliveries share a signature (the gate refuses a replay).
        self.now = time.time()
        self.earlier = itertools.count()
        self.core.desk.gate.clock = lambda: self.now

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, tables.outbox, tables.inbox)

    async def issue(self, request_id: str, uow: UnitOfWork | None = None) -> None:
        event = AgencyRequestIssued(
            file_id=base.file_of(request_id),
            request_id=request_id,
            agency="france_travail",
            life_event="perte_emploi",
            citizen=citizen_data_for("france_travail", citizen(), "Fin de contrat."),
            urgent=False,
        )
        await self.core.on_request(event, uow or self.uow())

    async def callback(
        self, request_id: str, callback_id: str, decision: dict[str, Any] = GRANTED
    ) -> httpx.Response:
        body = json.dumps(
            {"callback_id": callback_id, "request_id": request_id, "decision": decision}
        ).encode()
        header = signatures.sign(SECRET, body, int(self.now) - next(self.earlier))
        return await self.http.post(
            "/callbacks",
            content=body,
            headers={"X-Signature": header, "Content-Type": "application/json"},
        )

    async def rows(self, table: sa.Table, *where: Any) -> list[sa.Row]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.select(table).where(*where))).all())

    async def decisions(self, request_id: str) -> list[str]:
        """The decisions published for a request (AgencyAnswerReceived in the outbox)."""
        rows = await self.rows(tables.outbox, tables.outbox.c.event_type == "AgencyAnswerReceived")
        answers = [json.loads(r.payload) for r in rows]
        return [a["answer"]["decision"] for a in answers if a["request_id"] == request_id]

    async def ledger(self, request_id: str) -> list[str]:
        entries = await self.rows(tables.exchanges, tables.exchanges.c.request_id == request_id)
        return [r.purpose for r in entries]

    async def request(self, request_id: str) -> sa.Row:
        [row] = await self.rows(tables.requests, tables.requests.c.request_id == request_id)
        return row

    async def callbacks(self, request_id: str) -> dict[str, CallbackOutcome]:
        rows = await self.rows(tables.callbacks, tables.callbacks.c.request_id == request_id)
        return {r.callback_id: CallbackOutcome(r.outcome) for r in rows}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def ft(request, adapter_template: Path, tmp_path: Path) -> AsyncIterator[App]:
    if request.param == "sqlite":
        path = tmp_path / "adapter_france_travail.db"
        shutil.copyfile(adapter_template, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_factory")(f"adapter_http_{uuid.uuid4().hex[:12]}")
        await migrations.upgrade(Path(adapter_sdk.__file__).parent / "migrations", url)
    agency = base.FakeFranceTravail()
    server = await serve_agency(agency)
    config = FranceTravailAdapter.Config(
        database_url=url,
        agency_base_url=server.url,
        attempts=1,
        backoff_seconds=0,
        reconcile_first_seconds=60,
        callback_secret=SECRET,
    )
    app = build_app(FranceTravailAdapter, config)
    transport = app.state.adapter.transport
    adapter = App(app, url, agency)
    yield adapter
    await adapter.http.aclose()
    await transport.close()
    await server.close()
    await adapter.engine.dispose()


def new_request() -> str:
    return base.new_request()


# --------------------------------------------------------------------------- a second decision


async def test_a_new_callback_id_never_overwrites_the_decision_over_http(ft: App):
    request_id = new_request()
    await ft.issue(request_id)
    first = await ft.callback(request_id, "cb-a")
    same = await ft.callback(request_id, "cb-b")
    other = await ft.callback(request_id, "cb-c", REFUSED)

    assert (first.status_code, first.json()) == (200, {"statut": "recu"})
    assert (same.status_code, same.json()) == (200, {"statut": "deja_decide"})
    assert other.status_code == 409
    assert other.json() == {
        "message": DIVERGENT.format(request_id=request_id),
        "kind": "conflict",
    }
    assert await ft.decisions(request_id) == ["accorde"]
    row = await ft.request(request_id)
    assert row.status == RequestStatus.DECIDED
    assert json.loads(row.answer)["decision"] == "accorde"  # the first decision stays
    ledger = await ft.ledger(request_id)
    assert sum(p.startswith("Décision divergente, non appliquée (rappel)") for p in ledger) == 1


async def test_a_different_decision_after_one_found_by_a_status_poll_is_refused(ft: App):
    """The first decision came by reconciliation (the callback got lost); a late callback
    with another decision does not replace it."""
    request_id = new_request()
    await ft.issue(request_id)
    ft.agency.decisions[request_id] = REFUSED
    async with ft.engine.begin() as conn:
        await conn.execute(
            tables.requests.update()
            .where(tables.requests.c.request_id == request_id)
            .values(next_poll_at=utcnow())
        )
    assert await ft.core.reconciler.sweep() == 1
    assert await ft.decisions(request_id) == ["refuse"]

    late = await ft.callback(request_id, "cb-late", GRANTED)

    assert late.status_code == 409
    assert late.json()["message"] == DIVERGENT.format(request_id=request_id)
    assert await ft.decisions(request_id) == ["refuse"]
    assert await ft.callbacks(request_id) == {"cb-late": CallbackOutcome.CONFLICT}


# --------------------------------------------------------------------------- concurrency


async def test_concurrent_callbacks_with_different_ids_and_decisions_apply_one(ft: App):
    for n in range(3):
        request_id = new_request()
        await ft.issue(request_id)
        replies = await asyncio.gather(
            *(
                ft.callback(request_id, f"cb-{n}-{i}", GRANTED if i % 2 else REFUSED)
                for i in range(6)
            )
        )

        winners = [i for i, r in enumerate(replies) if r.json() == {"statut": "recu"}]
        assert len(winners) == 1
        [decided] = await ft.decisions(request_id)  # one decision published, once
        assert decided == ("accorde" if winners[0] % 2 else "refuse")
        # Every other callback agrees with it (deja_decide) or is refused as divergent (409).
        for i, reply in enumerate(replies):
            if i in winners:
                continue
            if ("accorde" if i % 2 else "refuse") == decided:
                assert (reply.status_code, reply.json()) == (200, {"statut": "deja_decide"})
            else:
                assert (reply.status_code, reply.json()["kind"]) == (409, "conflict")
        outcomes = sorted((await ft.callbacks(request_id)).values())
        assert outcomes.count(CallbackOutcome.APPLIED) == 1
        assert CallbackOutcome.HELD not in outcomes


async def test_copies_of_one_callback_at_once_are_applied_once(ft: App):
    for n in range(4):
        request_id = new_request()
        await ft.issue(request_id)
        replies = await asyncio.gather(
            *(ft.callback(request_id, f"cb-storm-{n}") for _ in range(6))
        )
        got = sorted((r.status_code, r.json().get("statut")) for r in replies)
        assert got == [(200, "deja_recu")] * 5 + [(200, "recu")], [r.json() for r in replies]
        assert await ft.decisions(request_id) == ["accorde"]


# --------------------------------------------------------------------------- early callbacks


async def test_a_callback_racing_the_requests_recording_is_neither_lost_nor_doubled(ft: App):
    """The callback and the acknowledgement's transaction, started together, many times:
    whichever wins, one decision is published once the worker has passed."""
    for n in range(6):
        request_id = new_request()
        _, reply = await asyncio.gather(
            ft.issue(request_id), ft.callback(request_id, f"cb-race-{n}")
        )
        assert reply.status_code in (200, 202), reply.text
        await ft.core.reconciler.sweep()
        await ft.core.reconciler.sweep()
        assert await ft.decisions(request_id) == ["accorde"], reply.json()
        assert await ft.callbacks(request_id) == {f"cb-race-{n}": CallbackOutcome.APPLIED}
        assert (await ft.request(request_id)).status == RequestStatus.DECIDED


async def test_an_early_callback_is_held_and_applied_when_the_request_is_recorded(ft: App):
    request_id = new_request()
    early = await ft.callback(request_id, "cb-early", REFUSED)
    assert early.status_code == 202
    assert early.json() == {"statut": "en_attente", "message": HELD.format(request_id=request_id)}
    assert await ft.callbacks(request_id) == {"cb-early": CallbackOutcome.HELD}
    # A second, different early callback: held too, and it will not win over the first.
    assert (await ft.callback(request_id, "cb-early-2", GRANTED)).status_code == 202

    await ft.issue(request_id)

    assert await ft.decisions(request_id) == ["refuse"]
    assert await ft.callbacks(request_id) == {
        "cb-early": CallbackOutcome.APPLIED,
        "cb-early-2": CallbackOutcome.CONFLICT,
    }
    await ft.core.reconciler.sweep()  # nothing held is left to apply again
    assert await ft.decisions(request_id) == ["refuse"]


@pytest.mark.parametrize(
    "ft", [pytest.param("postgresql", marks=pytest.mark.integration)], indirect=True
)
async def test_a_callback_the_requests_transaction_cannot_see_is_applied_once_by_the_worker(
    ft: App,
):
    """The worst interleaving, played on purpose (PostgreSQL: two transactions overlap for
    real): the request's transaction has looked for held callbacks and waits at its commit;
    the callback arrives then, finds no request (not committed yet) and is held. (On SQLite,
    one writer at a time, the callback would wait for the commit: no such interleaving.)"""
    request_id = new_request()
    held = HeldUnitOfWork(ft.engine, tables.outbox, tables.inbox)
    issuing = asyncio.create_task(ft.issue(request_id, held))
    await asyncio.wait_for(held.at_commit.wait(), 15)

    reply = await ft.callback(request_id, "cb-between")
    held.go.set()
    await asyncio.wait_for(issuing, 15)

    assert reply.status_code == 202 and reply.json()["statut"] == "en_attente"
    assert await ft.decisions(request_id) == []  # not applied yet, but not lost:
    assert await ft.callbacks(request_id) == {"cb-between": CallbackOutcome.HELD}
    await ft.core.reconciler.sweep()
    assert await ft.decisions(request_id) == ["accorde"]
    await ft.core.reconciler.sweep()
    assert await ft.decisions(request_id) == ["accorde"]
    assert await ft.callbacks(request_id) == {"cb-between": CallbackOutcome.APPLIED}
