"""The services' use cases against their real (SQLite) databases: the unit of work,
assignment, intake and the outbox relay (notification: test_notification_channels.py). No broker: emitted events are
read back from the outbox table."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry import trace

from assignment.commands import directory_import
from assignment.projections import files as assignment
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.consumer import PermanentError
from guichet_runtime.db import AlreadyProcessed, UnitOfWork
from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.relay import OutboxRelay
from intake import domain, projections
from intake.commands.files import SubmitFile, submit_file
from intake.schemas import FileIn
from shared_models import (
    AGENCY_LABELS,
    AgencyAnswerReceived,
    AgencyRequestIssued,
    CoordinatedAnswerIssued,
    Decision,
    ReferentAssigned,
    ReferentAssignmentDeferred,
    RequestedDocument,
    SupportingDocumentRequested,
    topics,
)
from tests.unit.samples import (
    citizen,
    decision,
    file_submitted,
    headers_of,
    one_event_of_each_type,
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


# =========================================================================== assignment


@pytest.fixture
async def directory(assignment_db):
    """The assignment database with the versioned directory loaded."""
    loaded = await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    assert loaded > 0
    return assignment_db


async def agent_row(db, agent_id: str) -> sa.Row:
    t = db.tables
    async with db.engine.connect() as conn:
        return (
            await conn.execute(
                sa.select(t.agents, t.offices.c.departement)
                .join(t.offices, t.agents.c.office_id == t.offices.c.office_id)
                .where(t.agents.c.agent_id == agent_id)
            )
        ).one()


async def submit_to_assignment(
    db, event
) -> tuple[ReferentAssigned | None, list[AgencyRequestIssued]]:
    """Handle FileSubmitted; return the events it emitted."""
    before = len(await db.outbox())
    await assignment.on_file_submitted(event, db.uow(("assignment", str(event.event_id))))
    emitted = [e for _, e in (await db.outbox_events())[before:]]
    assigned = [e for e in emitted if isinstance(e, ReferentAssigned)]
    requests = [e for e in emitted if isinstance(e, AgencyRequestIssued)]
    deferred = [e for e in emitted if isinstance(e, ReferentAssignmentDeferred)]
    assert len(assigned) + len(requests) + len(deferred) == len(emitted)
    assert len(deferred) <= 1 and not (assigned and deferred)
    return (assigned[0] if assigned else None), requests


def answer_to(
    request: AgencyRequestIssued, verdict: Decision = Decision.GRANTED, **kw: Any
) -> AgencyAnswerReceived:
    return AgencyAnswerReceived(
        file_id=request.file_id,
        request_id=request.request_id,
        answer=decision(request.agency, verdict, **kw),
    )


async def test_seeding_the_directory_happens_once(assignment_db):
    first = await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    second = await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)

    assert first == len(await assignment_db.rows("agents")) > 0
    assert second == 0


async def test_a_citizen_in_seine_saint_denis_gets_a_referent_whose_office_is_in_93(directory):
    event = file_submitted("GU-2025-AAAA0093", citizen=citizen(postcode="93200"))

    assigned, requests = await submit_to_assignment(directory, event)

    assert assigned is not None
    agent = await agent_row(directory, assigned.referent.agent_id)
    assert agent.departement == "93"
    assert assigned.referent.office_id == agent.office_id
    assert assigned.rule == "proximite"
    assert assigned.referent.name in assigned.explanation
    assert assigned.citizen == event.citizen
    assert agent.active_files == 1

    [row] = await directory.rows("assignments")
    assert (row.file_id, row.agent_id, row.rule) == (event.file_id, agent.agent_id, "proximite")

    assert sorted(r.agency for r in requests) == sorted(event.agencies)
    assert len({r.request_id for r in requests}) == len(event.agencies)
    topics_used = [
        t
        for t, e in await directory.outbox_events()
        if getattr(e, "file_id", None) == event.file_id
    ]
    assert topics_used.count(topics.REFERENTS_ASSIGNED) == 1
    assert sorted(t for t in topics_used if t != topics.REFERENTS_ASSIGNED) == sorted(
        topics.agency_requests(a) for a in event.agencies
    )


async def test_the_same_file_announced_twice_is_assigned_once(directory):
    event = file_submitted("GU-2025-AAAATWIC")
    await submit_to_assignment(directory, event)
    again = event.model_copy(update={"event_id": uuid.uuid4()})

    assigned, requests = await submit_to_assignment(directory, again)

    assert (assigned, requests) == (None, [])
    assert len(await directory.rows("assignments")) == 1


async def test_a_second_file_of_the_same_citizen_goes_to_the_same_referent(directory):
    first, _ = await submit_to_assignment(directory, file_submitted("GU-2025-AAAAFIRS"))
    # Same email; now living in Paris and declaring a birth: continuity still wins.
    moved = citizen(postcode="75011", email="AWA.DIALLO@example.fr")
    second, _ = await submit_to_assignment(
        directory,
        file_submitted("GU-2025-AAAASECO", agencies=("caf", "cpam"), citizen=moved),
    )

    assert first is not None and second is not None
    assert second.referent.agent_id == first.referent.agent_id
    assert second.rule == "continuite"
    assert (await agent_row(directory, first.referent.agent_id)).active_files == 2


async def test_a_citizen_with_no_office_in_their_departement_gets_the_nearest_office(directory):
    # Limoges (87) has no office in the directory: Guéret (23) is ~75 km away, Bordeaux
    # ~180 km, Toulouse ~250 km, Paris ~350 km.
    assigned, _ = await submit_to_assignment(
        directory, file_submitted("GU-2025-AAAALIMO", citizen=citizen(postcode="87000"))
    )

    assert assigned is not None
    assert assigned.rule == "proximite_distance"
    assert assigned.referent.office_id == "FS-23-01"
    assert "km" in assigned.explanation and "Guéret" in assigned.explanation


async def test_when_the_nearest_office_is_full_the_next_nearest_serves(directory):
    t = directory.tables
    await directory.execute(
        t.agents.update()
        .where(t.agents.c.office_id == "FS-23-01")
        .values(active_files=t.agents.c.capacity)
    )

    assigned, _ = await submit_to_assignment(
        directory, file_submitted("GU-2025-AAAALIM2", citizen=citizen(postcode="87000"))
    )

    assert assigned is not None and assigned.rule == "proximite_distance"
    assert assigned.referent.office_id == "FS-33-01"  # Bordeaux, the next nearest


async def test_when_nobody_has_room_the_file_waits_without_a_referent(directory):
    await directory.execute(
        directory.tables.agents.update().values(active_files=directory.tables.agents.c.capacity)
    )

    assigned, requests = await submit_to_assignment(directory, file_submitted("GU-2025-AAAAWAIT"))

    assert (assigned, requests) == (None, [])
    [file] = await directory.rows("files")
    assert (file.status, file.referent_id) == ("en_attente_attribution", None)
    # The supervisors of the citizen's département (93) are alerted, through the outbox.
    [(topic, alert)] = [
        (t, e)
        for t, e in await directory.outbox_events()
        if isinstance(e, ReferentAssignmentDeferred)
    ]
    assert topic == topics.FILES_AWAITING_REFERENT
    assert (alert.file_id, alert.departement) == ("GU-2025-AAAAWAIT", "93")
    assert [s.supervisor_id for s in alert.supervisors] == ["SUP-IDF"]
    assert "Aucun agent" in alert.reason


async def test_a_missing_document_holds_the_answer_and_reaches_the_referent_and_the_citizen(
    directory,
):
    assigned, requests = await submit_to_assignment(directory, file_submitted("GU-2025-AAAAPIEC"))
    salary = RequestedDocument(
        code="attestation_salaire", label="Attestation de salaire de l'employeur"
    )
    *others, waiting = requests
    for request in others:
        answer = answer_to(request)
        await assignment.on_agency_answer(
            answer, directory.uow(("assignment", str(answer.event_id)))
        )
    asked = answer_to(waiting, Decision.DOCUMENT_REQUESTED, requested_document=salary)
    await assignment.on_agency_answer(asked, directory.uow(("assignment", str(asked.event_id))))
    # The same request for the same document again (another delivery) tells nobody twice.
    again = answer_to(waiting, Decision.DOCUMENT_REQUESTED, requested_document=salary)
    await assignment.on_agency_answer(again, directory.uow(("assignment", str(again.event_id))))

    events = await directory.outbox_events()
    assert not any(isinstance(e, CoordinatedAnswerIssued) for _, e in events)
    [(topic, told)] = [(t, e) for t, e in events if isinstance(e, SupportingDocumentRequested)]
    assert topic == topics.DOCUMENTS_REQUESTED
    assert (told.agency, told.document, told.referent) == (
        waiting.agency,
        salary,
        assigned.referent,
    )
    assert told.after_document is None

    # The citizen sent it; the agency found it incomplete and asks for the same document
    # again: a new request, told again (once, however often it is delivered).
    for _ in range(2):
        incomplete = answer_to(
            waiting,
            Decision.DOCUMENT_REQUESTED,
            requested_document=salary,
            summary="Pièce incomplète : la page 2 manque",
        )
        incomplete = incomplete.model_copy(update={"after_document": "doc-1"})
        await assignment.on_agency_answer(
            incomplete, directory.uow(("assignment", str(incomplete.event_id)))
        )
    told_again = [
        e for _, e in await directory.outbox_events() if isinstance(e, SupportingDocumentRequested)
    ][1:]
    assert [(e.after_document, e.reason) for e in told_again] == [
        ("doc-1", "Pièce incomplète : la page 2 manque")
    ]

    final = answer_to(waiting, Decision.GRANTED)
    await assignment.on_agency_answer(final, directory.uow(("assignment", str(final.event_id))))
    answered = [
        e for _, e in await directory.outbox_events() if isinstance(e, CoordinatedAnswerIssued)
    ]
    assert len(answered) == 1 and {d.decision for d in answered[0].decisions} == {Decision.GRANTED}


async def test_the_coordinated_answer_is_issued_once_after_the_last_agency_answered(directory):
    event = file_submitted("GU-2025-AAAAANSW")
    assigned, requests = await submit_to_assignment(directory, event)
    assert assigned is not None and len(requests) == 3
    agent_id = assigned.referent.agent_id
    verdicts = [Decision.GRANTED, Decision.REFUSED, Decision.GRANTED]

    async def answered_count() -> int:
        return sum(
            isinstance(e, CoordinatedAnswerIssued) for _, e in await directory.outbox_events()
        )

    answers = [
        answer_to(r, v, amount_eur=812.5 if v is Decision.GRANTED else None)
        for r, v in zip(requests, verdicts)
    ]
    for answer in answers[:-1]:
        await assignment.on_agency_answer(
            answer, directory.uow(("assignment", str(answer.event_id)))
        )
        assert await answered_count() == 0
        assert (await agent_row(directory, agent_id)).active_files == 1

    last = answers[-1]
    await assignment.on_agency_answer(last, directory.uow(("assignment", str(last.event_id))))

    [(topic, coordinated)] = [
        (t, e) for t, e in await directory.outbox_events() if isinstance(e, CoordinatedAnswerIssued)
    ]
    assert topic == topics.FILES_ANSWERED
    assert coordinated.referent == assigned.referent
    assert sorted(d.agency for d in coordinated.decisions) == sorted(event.agencies)
    for agency in event.agencies:
        assert AGENCY_LABELS[agency] in coordinated.text
    assert "812,50\u00a0€" in coordinated.text
    assert assigned.referent.name in coordinated.text
    assert (await agent_row(directory, agent_id)).active_files == 0
    [file] = await directory.rows("files")
    assert file.status == "repondu"

    # The last answer delivered again (a new event id, so the inbox lets it through).
    replay = last.model_copy(update={"event_id": uuid.uuid4()})
    await assignment.on_agency_answer(replay, directory.uow(("assignment", str(replay.event_id))))

    assert await answered_count() == 1
    assert (await agent_row(directory, agent_id)).active_files == 0


async def test_an_answer_for_an_unknown_request_is_a_permanent_error(directory):
    _, requests = await submit_to_assignment(directory, file_submitted("GU-2025-AAAAUNKN"))
    unknown = AgencyAnswerReceived(
        file_id="GU-2025-AAAAUNKN", request_id="GU-2025-AAAAUNKN-cpam", answer=decision("cpam")
    )
    wrong_file = requests[0].model_copy(update={"file_id": "GU-2025-NOSUCHFI"})

    with pytest.raises(PermanentError, match="demande inconnue"):
        await assignment.on_agency_answer(unknown, directory.uow())
    with pytest.raises(PermanentError):
        await assignment.on_agency_answer(answer_to(wrong_file), directory.uow())
    assert not any(
        isinstance(e, CoordinatedAnswerIssued) for _, e in await directory.outbox_events()
    )


async def test_an_answer_from_another_agency_than_the_requested_one_is_a_permanent_error(directory):
    _, requests = await submit_to_assignment(directory, file_submitted("GU-2025-AAAAOTHR"))
    caf_request = next(r for r in requests if r.agency == "caf")
    impostor = AgencyAnswerReceived(
        file_id=caf_request.file_id, request_id=caf_request.request_id, answer=decision("dgfip")
    )

    with pytest.raises(PermanentError):
        await assignment.on_agency_answer(impostor, directory.uow())


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
            citizen=citizen(),
            description="…",
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
