"""Issue 18 §4-5: the adapter runtime (adapter_sdk.runtime.AdapterRuntime) on its real
SQLite database, the CPAM's adapter in front of a fake CPAM answering over httpx's mock
transport: how each kind of agency failure is sorted (wait and redeliver, retry then
dead-letter, never retry), what a request that cannot be sent says (in French), and the
supporting documents' path (ledger, legal clock resumed, the next answer tied to the
document). Emitted events are read back from the outbox (no broker)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from adapter_cpam import CpamAdapter
from adapter_france_travail import FranceTravailAdapter
from adapter_sdk import tables
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.runtime import AdapterRuntime
from adapter_sdk.tables import RequestStatus
from adapter_sdk.transport import Transport
from guichet_runtime.consumer import PermanentError, TransientError
from guichet_runtime.db import UnitOfWork, make_engine
from shared_models import (
    AgencyRequestIssued,
    SupportingDocumentSubmitted,
    citizen_data_for,
    select_citizen_data,
)
from tests.unit import test_adapter_callbacks as base
from tests.unit.agency_server import AgencyServer, serve_agency
from tests.unit.samples import citizen

adapter_template = base.adapter_template  # the migrated SQLite database, once per session
PDF = b"%PDF-1.4\n% arret de travail\n%%EOF\n"
ASKS_FOR = {"code": "arret_travail", "label": "Avis d'arrêt de travail"}


@dataclass
class FakeCpam:
    """The CPAM's system: each call answered by the next of `replies` (the last repeats)."""

    replies: list[Callable[[httpx.Request], httpx.Response]] = field(default_factory=list)
    calls: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        return reply(request)


def decision(decision: str, **extra: Any) -> Callable[[httpx.Request], httpx.Response]:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "decision": decision,
                "summary": "Indemnités journalières",
                "agency_reference": "CPAM-2026-0001",
                **extra,
            },
        )

    return reply


def status(code: int, text: str = "") -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, text=text)


class Runtime:
    """One adapter's runtime, its fake agency and its database."""

    def __init__(
        self, core: AdapterRuntime, agency: FakeCpam, engine: Any, server: AgencyServer
    ) -> None:
        self.core, self.agency, self.engine, self.server = core, agency, engine, server

    async def close(self) -> None:
        await self.core.transport.close()
        await self.server.close()
        await self.engine.dispose()

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, tables.outbox, tables.inbox)

    def event(self, request_id: str, **changes: Any) -> AgencyRequestIssued:
        values: dict[str, Any] = {
            "file_id": request_id.rsplit("-", 1)[0],
            "request_id": request_id,
            "agency": "cpam",
            "life_event": "arret_maladie",
            "citizen": citizen_data_for("cpam", citizen(), "Arrêt de travail depuis lundi."),
            "urgent": False,
        }
        return AgencyRequestIssued(**{**values, **changes})

    async def issue(self, request_id: str, **changes: Any) -> None:
        await self.core.on_request(self.event(request_id, **changes), self.uow())

    def document(self, request_id: str, content: bytes = PDF, **changes: Any):
        values: dict[str, Any] = {
            "file_id": request_id.rsplit("-", 1)[0],
            "request_id": request_id,
            "agency": "cpam",
            "document_id": "DOC-1",
            "document_code": "arret_travail",
            "filename": "arret.pdf",
            "media_type": "application/pdf",
            "sha256": hashlib.sha256(content).hexdigest(),
            "content_base64": base64.b64encode(content).decode(),
        }
        return SupportingDocumentSubmitted(**{**values, **changes})

    async def rows(self, table: sa.Table, *where: Any) -> list[sa.Row]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.select(table).where(*where))).all())

    async def emitted(self) -> list[tuple[str, dict]]:
        return [(r.event_type, json.loads(r.payload)) for r in await self.rows(tables.outbox)]

    async def ledger(self) -> list[str]:
        return [r.purpose for r in await self.rows(tables.exchanges)]


async def make_runtime(adapter_cls: type, path: Path, **config: Any) -> Runtime:
    url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(url)
    defaults = {"attempts": 3, "backoff_seconds": 0, "unavailable_pause_seconds": 0}
    agency = FakeCpam()
    server = await serve_agency(agency)
    settings = adapter_cls.Config(
        database_url=url, agency_base_url=server.url, **(defaults | config)
    )
    metrics = AdapterMetrics()
    transport = Transport(settings, adapter_cls.declaration.agency, metrics)

    def uow(inbox_key=None):
        return UnitOfWork(engine, tables.outbox, tables.inbox, inbox_key=inbox_key)

    core = AdapterRuntime(adapter_cls(settings), settings, uow, transport, metrics)
    return Runtime(core, agency, engine, server)


@pytest.fixture
async def cpam(adapter_template: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    path = tmp_path / "adapter_cpam.db"
    shutil.copyfile(adapter_template, path)
    runtime = await make_runtime(CpamAdapter, path, breaker_threshold=50)
    yield runtime
    await runtime.close()


def new_request() -> str:
    return f"GU-2026-{uuid.uuid4().hex[:8].upper()}-cpam"


# --------------------------------------------------------------------------- agency failures


async def test_a_failing_agency_is_tried_three_times_then_the_request_is_dead_lettered(
    cpam: Runtime,
):
    cpam.agency.replies = [status(500, "erreur interne")]
    request_id = new_request()

    with pytest.raises(PermanentError) as failed:
        await cpam.issue(request_id)

    assert str(failed.value) == (
        "Caisse primaire d'assurance maladie (CPAM), demande : cpam en erreur (HTTP 500) : "
        "erreur interne (après 3 tentative(s))"
    )
    assert len(cpam.agency.calls) == 3
    assert await cpam.rows(tables.requests) == [] and await cpam.emitted() == []


async def test_a_failure_then_an_answer_records_the_attempts_once(cpam: Runtime):
    cpam.agency.replies = [status(502), status(429), decision("accorde")]
    request_id = new_request()

    await cpam.issue(request_id)

    assert len(cpam.agency.calls) == 3
    [sent] = await cpam.rows(tables.exchanges, tables.exchanges.c.direction == "envoi")
    assert sent.attempts == 3
    assert [t for t, _ in await cpam.emitted()].count("AgencyAnswerReceived") == 1
    [row] = await cpam.rows(tables.requests)
    assert row.status == RequestStatus.DECIDED


async def test_a_refused_call_is_never_retried(cpam: Runtime):
    cpam.agency.replies = [status(400, "champ manquant : nir")]

    with pytest.raises(PermanentError) as failed:
        await cpam.issue(new_request())

    assert str(failed.value) == (
        "Caisse primaire d'assurance maladie (CPAM), demande : cpam a refusé l'appel "
        "(HTTP 400) : champ manquant : nir"
    )
    assert len(cpam.agency.calls) == 1


async def test_an_unavailable_agency_hands_the_request_back_for_redelivery(cpam: Runtime):
    cpam.agency.replies = [status(503)]

    with pytest.raises(TransientError) as waiting:
        await cpam.issue(new_request())

    assert str(waiting.value) == "cpam indisponible (HTTP 503)"
    assert len(cpam.agency.calls) == 1  # not retried in place: the consumer redelivers it
    assert await cpam.rows(tables.requests) == [] and await cpam.emitted() == []


async def test_an_unreadable_answer_is_retried_then_dead_lettered(cpam: Runtime):
    cpam.agency.replies = [lambda request: httpx.Response(200, json={"bonjour": 1})]

    with pytest.raises(PermanentError) as failed:
        await cpam.issue(new_request())

    assert "réponse sans décision" in str(failed.value)
    assert str(failed.value).endswith("(après 3 tentative(s))")
    assert len(cpam.agency.calls) == 3


async def test_after_repeated_failures_the_circuit_opens_and_the_agency_is_left_alone(
    adapter_template: Path, tmp_path: Path
):
    path = tmp_path / "adapter_cpam.db"
    shutil.copyfile(adapter_template, path)
    cpam = await make_runtime(CpamAdapter, path, breaker_threshold=2, attempts=1)
    try:
        cpam.agency.replies = [status(500)]
        for _ in range(2):
            with pytest.raises(PermanentError):
                await cpam.issue(new_request())
        with pytest.raises(TransientError) as waiting:
            await cpam.issue(new_request())
        assert str(waiting.value) == "cpam : circuit ouvert après des échecs répétés"
        assert len(cpam.agency.calls) == 2  # the third request did not reach the agency
    finally:
        await cpam.close()


# --------------------------------------------------------------------------- requests refused


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"agency": "caf"},
            "demande pour caf reçue par l'adaptateur cpam",
        ),
        (
            {"life_event": "perte_emploi"},
            "Caisse primaire d'assurance maladie (CPAM) ne traite pas l'événement de vie "
            "« perte_emploi » (voir sa déclaration)",
        ),
    ],
)
async def test_a_request_the_adapter_cannot_take_is_dead_lettered_unsent(
    cpam: Runtime, changes: dict, message: str
):
    with pytest.raises(PermanentError) as refused:
        await cpam.issue(new_request(), **changes)
    assert str(refused.value) == message
    assert cpam.agency.calls == []


async def test_a_request_missing_a_declared_field_is_dead_lettered_unsent(cpam: Runtime):
    # A catalogue giving the CPAM fewer fields than its adapter declares (no postcode).
    partial = select_citizen_data(frozenset({"given_name", "family_name"}), citizen(), "Arrêt.")
    request_id = new_request()
    with pytest.raises(PermanentError) as refused:
        await cpam.issue(request_id, citizen=partial)
    assert str(refused.value) == (
        f"la demande {request_id} ne porte pas les champs citoyen déclarés postcode : le "
        "catalogue ([citizen_fields]) et la déclaration de l'adaptateur divergent"
    )
    assert cpam.agency.calls == []


async def test_an_adapter_that_cannot_translate_a_request_is_dead_lettered(
    cpam: Runtime, monkeypatch: pytest.MonkeyPatch
):
    def broken(request: Any) -> Any:
        raise KeyError("nir")

    monkeypatch.setattr(cpam.core.adapter, "build_call", broken)
    with pytest.raises(PermanentError) as refused:
        await cpam.issue(new_request())
    assert str(refused.value) == "l'adaptateur cpam n'a pas pu traduire la demande : 'nir'"


async def test_the_same_request_issued_twice_is_recorded_once(cpam: Runtime):
    cpam.agency.replies = [decision("accorde")]
    request_id = new_request()
    await cpam.issue(request_id)
    await cpam.issue(request_id)  # redelivered (a crash before the offset was acknowledged)
    # Its reply was recorded the first time: the agency is not asked again.
    assert len(cpam.agency.calls) == 1
    assert len(await cpam.rows(tables.requests)) == 1
    assert [t for t, _ in await cpam.emitted()].count("AgencyAnswerReceived") == 1
    assert len(await cpam.ledger()) == 2  # sent, received: once


# --------------------------------------------------------------------------- documents


async def test_a_requested_document_goes_to_the_agency_and_restarts_the_legal_clock(
    cpam: Runtime,
):
    cpam.agency.replies = [
        decision("piece_demandee", requested_document=ASKS_FOR),
        decision("accorde", amount_eur=42.5),
    ]
    request_id = new_request()
    await cpam.issue(request_id)
    [row] = await cpam.rows(tables.requests)
    assert row.status == "piece_demandee"

    await cpam.core.on_document(cpam.document(request_id), cpam.uow())

    sent = cpam.agency.calls[-1]
    assert sent.url.path == f"/agencies/cpam/requests/{request_id}/pieces"
    assert PDF in sent.content and b'name="code"' in sent.content
    kinds = [t for t, _ in await cpam.emitted()]
    assert kinds.count("LegalClockSuspended") == 1 and kinds.count("LegalClockResumed") == 1
    answers = [e for t, e in await cpam.emitted() if t == "AgencyAnswerReceived"]
    assert [(a["answer"]["decision"], a["after_document"]) for a in answers] == [
        ("piece_demandee", None),
        ("accorde", "DOC-1"),
    ]
    ledger = await cpam.ledger()
    assert "Pièce justificative : arret_travail" in ledger
    assert "Réponse après la pièce : arret_travail" in ledger
    [row] = await cpam.rows(tables.requests)
    assert (row.status, row.last_document_id) == (RequestStatus.DECIDED, "DOC-1")


async def test_documents_that_cannot_be_sent_are_dead_lettered(cpam: Runtime):
    cpam.agency.replies = [decision("piece_demandee", requested_document=ASKS_FOR)]
    request_id = new_request()
    await cpam.issue(request_id)

    with pytest.raises(PermanentError) as unknown:
        await cpam.core.on_document(cpam.document(new_request()), cpam.uow())
    assert str(unknown.value).startswith("aucune demande GU-2026-")
    assert str(unknown.value).endswith("transmise à Caisse primaire d'assurance maladie (CPAM)")

    tampered = cpam.document(request_id).model_copy(update={"sha256": "0" * 64})
    with pytest.raises(PermanentError) as altered:
        await cpam.core.on_document(tampered, cpam.uow())
    assert str(altered.value) == ("pièce DOC-1 altérée : l'empreinte SHA-256 ne correspond pas")
    assert len(cpam.agency.calls) == 1  # neither reached the agency


async def test_an_agency_that_takes_no_documents_refuses_them(
    adapter_template: Path, tmp_path: Path
):
    path = tmp_path / "adapter_france_travail.db"
    shutil.copyfile(adapter_template, path)
    ft = await make_runtime(FranceTravailAdapter, path, callback_secret="s" * 32)
    try:
        event = ft.document("GU-2026-AAAA0001-france_travail").model_copy(
            update={"agency": "france_travail"}
        )
        with pytest.raises(PermanentError) as refused:
            await ft.core.on_document(event, ft.uow())
        assert str(refused.value) == "France Travail ne reçoit pas de pièces justificatives"
    finally:
        await ft.close()
