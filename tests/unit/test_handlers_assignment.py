"""Assignment's use cases against its real (SQLite) database: the directory, the choice
of a référent, deferred files, documents asked for and the coordinated answer. No broker:
emitted events are read back from the outbox table."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from assignment.commands import directory_import
from assignment.projections import files as assignment
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.consumer import PermanentError
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
)


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
        for r, v in zip(requests, verdicts, strict=True)
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
