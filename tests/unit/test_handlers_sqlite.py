"""The services' use cases against their real (SQLite) databases: the unit of work,
intake and the outbox relay (assignment: test_handlers_assignment.py; notification:
test_notification_channels.py). No broker: emitted events are read back from the outbox
table."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry import trace

from guichet_runtime.db import AlreadyProcessed, UnitOfWork, utcnow
from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.relay import OutboxRelay
from intake import domain, projections
from intake.commands.files import SubmitFile, submit_file
from intake.records import agency_answered
from intake.schemas import FileIn
from shared_models import (
    AgencyAnswerReceived,
    AgencyRequestIssued,
    Decision,
    ExchangeRecorded,
    ExchangesRecorded,
    RequestedDocument,
    citizen_data_for,
    topics,
)
from tests.unit.event_samples import one_event_of_each_type
from tests.unit.samples import (
    citizen,
    decision,
    file_submitted,
    headers_of,
    trace_id_of,
)


def span_trace_id(span: trace.Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


# =========================================================================== unit of work


async def test_emitted_events_reach_the_outbox_at_commit_with_the_trace_context(intake_db, tracer):
    event = file_submitted("GU-2025-UOW00001")
    committed = []
    uow = UnitOfWork(
        intake_db.engine,
        intake_db.tables.outbox,
        intake_db.tables.inbox,
        on_commit=lambda: committed.append(1),
    )

    with tracer.start_as_current_span("handler") as span:
        async with uow:
            uow.emit(topics.FILES_SUBMITTED, event)
            assert committed == []
            await uow.commit()

    [row] = await intake_db.outbox()
    assert (row.topic, row.key, row.event_type) == (
        "files.submitted",
        "GU-2025-UOW00001",
        "FileSubmitted",
    )
    assert (await intake_db.outbox_events()) == [("files.submitted", event)]
    assert trace_id_of(headers_of(row)["traceparent"]) == span_trace_id(span)
    assert committed == [1]


async def test_the_relay_is_woken_by_the_commits_that_wrote_outbox_rows_only(intake_db):
    """A relay round that finds nothing costs two transactions: a commit that wrote no event
    (a signature recorded, an inbox row only) must not start one."""
    woken, committed = [], []

    def uow() -> UnitOfWork:
        return UnitOfWork(
            intake_db.engine,
            intake_db.tables.outbox,
            intake_db.tables.inbox,
            on_commit=lambda: committed.append(1),
            on_outbox=lambda: woken.append(1),
        )

    async with uow() as nothing_emitted:
        await nothing_emitted.commit()
    assert (committed, woken) == ([1], [])

    async with uow() as emitting:
        emitting.emit(topics.FILES_SUBMITTED, file_submitted())
        await emitting.commit()
    assert (committed, woken) == ([1, 1], [1])


async def test_leaving_the_unit_of_work_without_commit_writes_nothing(intake_db):
    async with intake_db.uow(("intake", "event-1")) as uow:
        uow.emit(topics.FILES_SUBMITTED, file_submitted())

    with pytest.raises(RuntimeError):
        async with intake_db.uow() as uow:
            uow.emit(topics.FILES_SUBMITTED, file_submitted())
            raise RuntimeError("handler failed before commit")

    assert await intake_db.outbox() == []
    assert await intake_db.rows("inbox") == []


async def test_the_same_inbox_key_twice_raises_already_processed(intake_db):
    async with intake_db.uow(("intake", "event-1")) as uow:
        await uow.commit()

    with pytest.raises(AlreadyProcessed):
        async with intake_db.uow(("intake", "event-1")):
            pytest.fail("the block must not run for an event already processed")

    # Another consumer, or another event, is not affected.
    async with intake_db.uow(("notification", "event-1")) as uow:
        await uow.commit()
    async with intake_db.uow(("intake", "event-2")) as uow:
        await uow.commit()
    assert len(await intake_db.rows("inbox")) == 3


async def test_an_event_whose_handling_rolled_back_can_be_handled_again(intake_db):
    async with intake_db.uow(("intake", "event-1")):
        pass  # failed: no commit

    async with intake_db.uow(("intake", "event-1")) as uow:
        await uow.commit()

    [row] = await intake_db.rows("inbox")
    assert (row.consumer, row.event_id) == ("intake", "event-1")


# =========================================================================== intake

FORM = {
    "life_event": "demenagement",
    "citizen": {
        "given_name": "Awa",
        "family_name": "Diallo",
        "email": "awa.diallo@example.fr",
        "phone": "06 12 34 56 78",
        "postcode": "93200",
        "preferred_channel": "email",
    },
    "description": "Je déménage à Saint-Denis le mois prochain.",
}


def submit(form: dict[str, Any] = FORM, key: str | None = None) -> SubmitFile:
    return SubmitFile(form=FileIn.model_validate(form), idempotency_key=key)


async def test_submitting_a_file_emits_file_submitted_for_every_agency_of_the_life_event(intake_db):
    file_id, created = await submit_file(submit(), intake_db.uow())

    assert created
    [(topic, event)] = await intake_db.outbox_events()
    assert topic == topics.FILES_SUBMITTED
    assert event.file_id == file_id
    assert set(event.agencies) == {"caf", "dgfip", "cpam"}
    assert event.citizen.phone == "0612345678"
    statuses = {r.agency: r.status for r in await intake_db.rows("file_agencies")}
    assert statuses == {"caf": "en_attente", "dgfip": "en_attente", "cpam": "en_attente"}


async def test_the_same_idempotency_key_twice_returns_the_same_file_and_emits_once(intake_db):
    first = await submit_file(submit(key="cle-0001"), intake_db.uow())
    second = await submit_file(submit(key="cle-0001"), intake_db.uow())

    assert first == (first[0], True)
    assert second == (first[0], False)
    assert len(await intake_db.outbox()) == 1
    assert len(await intake_db.rows("files")) == 1


async def test_without_an_idempotency_key_each_submission_is_a_new_file(intake_db):
    first, _ = await submit_file(submit(), intake_db.uow())
    second, _ = await submit_file(submit(), intake_db.uow())

    assert first != second
    assert len(await intake_db.outbox()) == 2


async def test_reusing_an_idempotency_key_for_another_request_is_a_conflict(intake_db):
    await submit_file(submit(key="cle-0002"), intake_db.uow())
    other = {**FORM, "description": "Une tout autre demande."}

    with pytest.raises(Refused) as conflict:
        await submit_file(submit(other, key="cle-0002"), intake_db.uow())
    assert conflict.value.kind is RefusalKind.CONFLICT and conflict.value.field == "Idempotency-Key"
    assert len(await intake_db.outbox()) == 1


async def test_an_agency_status_never_moves_back_when_events_cross(intake_db):
    file_id, _ = await submit_file(submit(), intake_db.uow())

    def request(agency: str) -> AgencyRequestIssued:
        return AgencyRequestIssued(
            file_id=file_id,
            request_id=f"{file_id}-{agency}",
            agency=agency,
            life_event="demenagement",
            citizen=citizen_data_for(agency, citizen(), "…"),
            urgent=False,
        )

    caf_answer = AgencyAnswerReceived(
        file_id=file_id, request_id=f"{file_id}-caf", answer=decision("caf")
    )
    # The CAF's answer overtakes its request (different topics); the CPAM's comes in order.
    await projections.on_agency_answer_received(caf_answer, intake_db.uow())
    await projections.on_agency_request_issued(request("caf"), intake_db.uow())
    await projections.on_agency_request_issued(request("cpam"), intake_db.uow())

    statuses = {r.agency: r.status for r in await intake_db.rows("file_agencies")}
    assert statuses == {"caf": "repondu", "cpam": "transmis", "dgfip": "en_attente"}
    kinds = [
        r.kind for r in await intake_db.rows("timeline", order_by=intake_db.tables.timeline.c.id)
    ]
    assert kinds == ["depot", "reponse_organisme", "transmission", "transmission"]


async def test_a_document_request_is_cleared_by_the_answer_and_no_line_rewritten_for_nothing(
    intake_db,
):
    file_id, _ = await submit_file(submit(), intake_db.uow())
    piece = RequestedDocument(code="attestation", label="Attestation")

    def answer(agency: str, verdict: Decision = Decision.GRANTED, **more) -> AgencyAnswerReceived:
        return AgencyAnswerReceived(
            file_id=file_id,
            request_id=f"{file_id}-{agency}",
            answer=decision(agency, verdict, **more),
        )

    await projections.on_agency_answer_received(
        answer("caf", Decision.DOCUMENT_REQUESTED, requested_document=piece), intake_db.uow()
    )
    requested = {r.agency: r.requested_document for r in await intake_db.rows("file_agencies")}
    assert requested["caf"] == {"request_id": f"{file_id}-caf", **piece.model_dump()}
    await projections.on_agency_answer_received(answer("caf"), intake_db.uow())
    await projections.on_agency_answer_received(answer("dgfip"), intake_db.uow())

    lines = {r.agency: r for r in await intake_db.rows("file_agencies")}
    assert {a: (r.status, r.requested_document) for a, r in lines.items()} == {
        "caf": ("repondu", None),
        "dgfip": ("repondu", None),
        "cpam": ("en_attente", None),
    }
    async with intake_db.uow() as uow:  # answered, decided, nothing requested: not rewritten
        await agency_answered(
            uow, file_id, "dgfip", utcnow(), Decision.REFUSED, clear_document=True
        )
        unchanged = await uow.conn.execute(sa.text("SELECT changes()"))
        assert unchanged.scalar_one() == 0
        await uow.commit()
    [dgfip] = [r for r in await intake_db.rows("file_agencies") if r.agency == "dgfip"]
    assert dgfip.decision == "accorde"  # the first decision stands


async def test_the_exchanges_of_one_transaction_are_one_event_and_a_timeline_line_each(
    intake_db,
):
    file_id, _ = await submit_file(submit(), intake_db.uow())
    [batch] = [e for e in one_event_of_each_type() if isinstance(e, ExchangesRecorded)]
    batch = batch.model_copy(update={"file_id": file_id})
    [former] = [e for e in one_event_of_each_type() if isinstance(e, ExchangeRecorded)]
    former = former.model_copy(update={"file_id": file_id})

    await projections.on_exchanges_recorded(batch, intake_db.uow())
    await projections.on_exchanges_recorded(batch, intake_db.uow())  # redelivered
    await projections.on_exchange_recorded(former, intake_db.uow())  # a former adapter's

    ledger = {r.exchange_id: r for r in await intake_db.rows("exchanges")}
    cpam = "Caisse primaire d'assurance maladie (CPAM)"
    assert set(ledger) == {"x-1", "x-2", "x-3"}
    assert (ledger["x-3"].direction, ledger["x-3"].size_bytes) == ("reception", 80)
    lines = [
        r.label
        for r in await intake_db.rows("timeline", order_by=intake_db.tables.timeline.c.id)
        if r.kind == "echange"
    ]
    assert lines == [
        f"Transmis à {cpam} — Demande : affiliation. Base légale : CSS, art. "
        f"L. 161-1-1. Empreinte SHA-256 : {'0' * 64}.",
        f"Reçu de {cpam} — Réponse : affiliation. Base légale : CSS, art. "
        f"L. 161-1-1. Empreinte SHA-256 : {'1' * 64}.",
        f"Transmis à {cpam} — Demande : affiliation. Base légale : CSS, art. "
        f"L. 161-1-1. Empreinte SHA-256 : {'0' * 64}.",
    ]


async def test_an_event_about_a_file_intake_never_opened_is_refused(intake_db):
    stranger = AgencyAnswerReceived(
        file_id="GU-2025-NOSUCHFI", request_id="x", answer=decision("caf")
    )

    with pytest.raises(domain.UnknownFile):
        await projections.on_agency_answer_received(stranger, intake_db.uow())


# =========================================================================== outbox relay


@dataclass
class Published:
    body: bytes
    topic: str
    key: bytes
    headers: dict[str, str]
    no_confirm: bool
    trace_id: str


class FakeBroker:
    """Records what the relay publishes; every publish is acknowledged (or fails)."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.published: list[Published] = []
        self._failure = failure

    async def publish(self, body, topic, *, key, headers, no_confirm=False):
        self.published.append(
            Published(
                body, topic, key, headers, no_confirm, span_trace_id(trace.get_current_span())
            )
        )
        done = asyncio.get_running_loop().create_future()
        if self._failure is None:
            done.set_result(None)
        else:
            done.set_exception(self._failure)
        return done


async def fill_outbox(db, tracer) -> tuple[list[sa.Row], str]:
    with tracer.start_as_current_span("handler") as span:
        async with db.uow() as uow:
            for i, event in enumerate(one_event_of_each_type()[:3]):
                uow.emit(f"topic-{i}", event)
            await uow.commit()
    return await db.outbox(), span_trace_id(span)


async def test_the_relay_publishes_rows_in_id_order_with_their_type_then_deletes_them(
    intake_db, tracer
):
    rows, trace_id = await fill_outbox(intake_db, tracer)
    broker = FakeBroker()
    relay = OutboxRelay(intake_db.engine, intake_db.tables.outbox, broker, namespace="essai-42.")

    assert await relay.publish_pending() == 3

    assert [p.topic for p in broker.published] == [
        "essai-42.topic-0",
        "essai-42.topic-1",
        "essai-42.topic-2",
    ]
    for published, row in zip(broker.published, rows, strict=True):
        assert published.body == row.payload.encode()
        assert published.key == row.key.encode()
        assert published.headers["event_type"] == row.event_type
        assert published.headers["content-type"] == "application/json"
        assert published.no_confirm is True
        assert published.trace_id == trace_id  # published within the handler's trace
    assert [p.headers["event_type"] for p in broker.published] == [
        "FileSubmitted",
        "ReferentAssigned",
        "AgencyRequestIssued",
    ]
    assert await intake_db.outbox() == []
    assert relay.published == 3
    assert await relay.publish_pending() == 0


async def test_the_relay_works_in_batches(intake_db, tracer):
    await fill_outbox(intake_db, tracer)
    relay = OutboxRelay(intake_db.engine, intake_db.tables.outbox, FakeBroker(), batch_size=2)

    assert [await relay.publish_pending() for _ in range(3)] == [2, 1, 0]


async def test_rows_stay_in_the_outbox_when_the_broker_does_not_acknowledge(intake_db, tracer):
    rows, _ = await fill_outbox(intake_db, tracer)
    relay = OutboxRelay(
        intake_db.engine, intake_db.tables.outbox, FakeBroker(failure=TimeoutError())
    )

    with pytest.raises(TimeoutError):
        await relay.publish_pending()

    assert [r.id for r in await intake_db.outbox()] == [r.id for r in rows]
    assert relay.published == 0


async def test_relay_stop_drains_what_is_left(intake_db, tracer):
    await fill_outbox(intake_db, tracer)
    broker = FakeBroker()
    relay = OutboxRelay(intake_db.engine, intake_db.tables.outbox, broker, idle_seconds=60)
    relay.start()

    await relay.stop()

    assert len(broker.published) == 3
    assert await intake_db.outbox() == []
