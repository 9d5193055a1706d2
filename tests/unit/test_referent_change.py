"""A citizen may ask for another référent once per file ("sauf incompatibilité
d'humeur"); supervisors may move a file with a reason. Never the same person, the whole
file follows, everyone is told."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from assignment.commands import directory_import
from assignment.projections import files as assignment
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.consumer import PermanentError
from guichet_runtime.db import AlreadyProcessed
from guichet_runtime.refusals import Refused
from intake import projections
from intake.commands.citizen import request_referent_change
from intake.commands.files import SubmitFile, submit_file
from intake.schemas import FileIn
from intake.views import files as views
from notification import projections as notification
from shared_models import (
    AgencyAnswerReceived,
    AgencyRequestIssued,
    NotificationKind,
    ReferentAssigned,
    ReferentChangeRequested,
    topics,
)
from tests.unit.samples import AWA_BIRTH_FORM, decision, file_submitted, referent

REASON = "Nous ne parvenons pas à nous comprendre."


async def handle(db, handler, event, consumer="assignment"):
    await handler(event, db.uow((consumer, str(event.event_id))))


async def emitted(db, cls):
    return [e for _, e in await db.outbox_events() if isinstance(e, cls)]


async def load(db, agent_id):
    async with db.engine.connect() as conn:
        return (
            await conn.execute(sa.text("SELECT * FROM agents WHERE agent_id = :a"), {"a": agent_id})
        ).one()


@pytest.fixture
async def assigned(assignment_db):
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    await handle(assignment_db, assignment.on_file_submitted, file_submitted("GU-2026-CHANGE01"))
    [first] = await emitted(assignment_db, ReferentAssigned)
    return assignment_db, first.referent


async def test_the_citizen_gets_another_referent_and_the_whole_file_follows(assigned):
    db, first = assigned
    await handle(
        db,
        assignment.on_referent_change_requested,
        ReferentChangeRequested(file_id="GU-2026-CHANGE01", requested_by="citoyen", reason=REASON),
    )

    [_, change] = await emitted(db, ReferentAssigned)
    assert change.referent.agent_id != first.agent_id
    assert change.previous_referent == first and change.reason == REASON
    assert change.rule == "changement_demande"
    assert (await load(db, first.agent_id)).active_files == 0
    assert (await load(db, change.referent.agent_id)).active_files == 1
    [file] = await db.rows("files")
    assert file.referent_id == change.referent.agent_id
    history = await db.rows("assignments", order_by=sa.text("id"))
    assert [h.rule for h in history] == ["proximite", "changement_demande"]
    assert REASON in history[1].explanation
    # The agency requests were not re-sent: the file, not the agencies, changed hands.
    assert len(await emitted(db, AgencyRequestIssued)) == 3


async def test_a_second_citizen_request_is_not_granted_but_a_supervisor_may_still_move_the_file(
    assigned,
):
    db, _ = assigned
    for by in ("citoyen", "citoyen", "superviseur"):
        await handle(
            db,
            assignment.on_referent_change_requested,
            ReferentChangeRequested(file_id="GU-2026-CHANGE01", requested_by=by, reason=REASON),
        )
    changes = (await emitted(db, ReferentAssigned))[1:]
    assert [c.rule for c in changes] == ["changement_demande", "reaffectation_superviseur"]
    assert changes[1].previous_referent == changes[0].referent
    assert changes[1].referent.agent_id != changes[0].referent.agent_id


async def test_no_change_on_an_answered_file(assigned):
    db, _ = assigned
    requests = await emitted(db, AgencyRequestIssued)
    for r in requests:
        await handle(
            db,
            assignment.on_agency_answer,
            AgencyAnswerReceived(
                file_id=r.file_id, request_id=r.request_id, answer=decision(r.agency)
            ),
        )
    await handle(
        db,
        assignment.on_referent_change_requested,
        ReferentChangeRequested(file_id="GU-2026-CHANGE01", requested_by="citoyen", reason=REASON),
    )
    assert len(await emitted(db, ReferentAssigned)) == 1


async def test_a_change_for_an_unknown_file_is_a_permanent_error(assigned):
    db, _ = assigned
    with pytest.raises(PermanentError):
        await handle(
            db,
            assignment.on_referent_change_requested,
            ReferentChangeRequested(
                file_id="GU-2026-INCONNU", requested_by="citoyen", reason=REASON
            ),
        )


FORM = AWA_BIRTH_FORM


async def test_intake_grants_one_request_per_open_file_and_says_why_not_in_french(intake_db):
    file_id, _ = await submit_file(SubmitFile(form=FileIn.model_validate(FORM)), intake_db.uow())
    with pytest.raises(Refused) as no_referent:
        await request_referent_change(file_id, REASON, intake_db.uow())
    assert no_referent.value.status == 409 and "Aucun référent" in no_referent.value.message

    await handle(
        intake_db,
        projections.on_referent_assigned,
        ReferentAssigned(
            file_id=file_id,
            referent=referent(),
            rule="proximite",
            explanation="…",
            citizen=file_submitted().citizen,
        ),
        consumer="intake",
    )
    await request_referent_change(file_id, REASON, intake_db.uow())
    [(topic, event)] = [
        (t, e) for t, e in await intake_db.outbox_events() if isinstance(e, ReferentChangeRequested)
    ]
    assert (
        topic == topics.REFERENT_CHANGES
        and event.reason == REASON
        and event.requested_by == "citoyen"
    )

    with pytest.raises(Refused) as second:
        await request_referent_change(file_id, REASON, intake_db.uow())
    assert second.value.status == 409 and "déjà été accordé" in second.value.message
    with pytest.raises(Refused) as unknown:
        await request_referent_change("GU-2026-INCONNU", REASON, intake_db.uow())
    assert unknown.value.status == 404
    view = await views.file_view(intake_db.uow(), file_id)
    assert any(e["kind"] == "demande_changement" and REASON in e["label"] for e in view["timeline"])


async def test_the_citizen_and_both_agents_are_told_of_the_change(notification_db):
    before, after = (
        referent(agent_id="AG-1", name="Karim Benali", email="karim@fs.gouv.fr"),
        referent(),
    )
    change = ReferentAssigned(
        file_id="GU-2026-CHANGE01",
        referent=after,
        rule="changement_demande",
        explanation="…",
        citizen=file_submitted().citizen,
        previous_referent=before,
        reason=REASON,
    )
    await handle(
        notification_db, notification.on_referent_assigned, change, consumer="notification"
    )
    with pytest.raises(AlreadyProcessed):  # a redelivery: the consumer skips it
        await handle(
            notification_db, notification.on_referent_assigned, change, consumer="notification"
        )

    rows = await notification_db.rows("notifications")
    by_recipient = {r.recipient: r for r in rows}
    assert set(by_recipient) == {"awa.diallo@example.fr", "karim@fs.gouv.fr", after.email}
    citizen_mail = by_recipient["awa.diallo@example.fr"]
    assert citizen_mail.kind == NotificationKind.REFERENT_CHANGED.value
    assert after.name in citizen_mail.body and after.phone in citizen_mail.body
    assert before.name in citizen_mail.body and REASON in citizen_mail.body
    assert {by_recipient[a].kind for a in ("karim@fs.gouv.fr", after.email)} == {"agent_handover"}
