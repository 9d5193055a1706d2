"""The citizen's GDPR rights (issue 13 §6): the erasure rule, the export ("Mes données") and
the erasure over intake's real routes, and the copies assignment and notification erase
when told."""

from __future__ import annotations

import datetime as dt

import pytest

from assignment.projections.erasure import on_citizen_data_erased as assignment_erases
from assignment.projections.files import on_file_submitted
from guichet_runtime.refusals import RefusalKind, Refused
from intake import projections
from intake.commands.documents import submit_document
from intake.domain import ALREADY_ERASED, STILL_PROCESSED, FileStatus, ensure_erasure_allowed
from notification.erasure import on_citizen_data_erased as notification_erases
from shared_models import (
    CitizenDataErased,
    CoordinatedAnswerIssued,
    ErasureCause,
    FileSubmitted,
    topics,
)
from tests.unit.samples import citizen, decision, file_submitted, referent
from tests.unit.test_intake_access import assign, client, filed, proof_for, stored

__all__ = ["client"]  # the fixture, shared with test_intake_access

CONFIRMED = {"confirm": True}
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


async def close(db, file_id: str, at: dt.datetime | None = None) -> None:
    """The coordinated answer is sent: the file is closed."""
    event = CoordinatedAnswerIssued(
        file_id=file_id,
        referent=referent(),
        citizen=citizen(),
        decisions=[],
        text="Madame, votre demande est accordée.",
        **({"occurred_at": at} if at else {}),
    )
    await projections.on_coordinated_answer_issued(event, db.uow(("intake", str(event.event_id))))


async def trail(db, file_id: str | None = None) -> list[tuple[str, str]]:
    log = db.tables.audit.log
    where = [log.c.file_id == file_id] if file_id else []
    return [(r.action, r.actor_kind) for r in await db.rows(log, *where, order_by=log.c.seq)]


# --------------------------------------------------------------------------- the rule


def test_a_file_being_processed_is_kept_a_closed_one_is_erased_once():
    with pytest.raises(Refused) as processed:
        ensure_erasure_allowed(FileStatus.IN_PROGRESS, None)
    assert processed.value.kind is RefusalKind.CONFLICT
    assert processed.value.message == STILL_PROCESSED
    assert "article 17" in STILL_PROCESSED
    with pytest.raises(Refused):
        ensure_erasure_allowed(FileStatus.SUBMITTED, None)
    ensure_erasure_allowed(FileStatus.ANSWERED, None)
    with pytest.raises(Refused) as twice:
        ensure_erasure_allowed(FileStatus.ANSWERED, dt.datetime.now(dt.UTC))
    assert twice.value.message == ALREADY_ERASED


# --------------------------------------------------------------------------- the export


async def test_the_citizen_downloads_everything_held_about_them_and_the_export_is_audited(
    client,
):
    marie, paul = client.tokens.citizen("marie"), client.tokens.citizen("paul")
    first = await filed(client, marie)
    second = await filed(client, marie, life_event="perte_emploi", description="Licenciée.")
    await filed(client, paul)
    await assign(client.db, first)

    mine = await client.get("/api/me/export", headers=marie)
    one = await client.get(f"/api/files/{first}/export", headers=marie)
    theirs = await client.get(f"/api/files/{first}/export", headers=paul)
    anonymous = await client.get("/api/me/export")

    assert (mine.status_code, one.status_code) == (200, 200)
    assert (theirs.status_code, anonymous.status_code) == (403, 401)
    files = mine.json()["files"]
    assert {f["file_id"] for f in files} == {first, second}
    [exported] = [f for f in files if f["file_id"] == first]
    assert exported["contact"]["email"] == "awa@example.fr"
    assert exported["description"] == "Naissance de notre fille."
    assert exported["referent"]["agent_id"] == referent().agent_id
    assert [line["kind"] for line in exported["referents"]] == ["referent"]
    [lost_job] = [f for f in files if f["file_id"] == second]
    sent = {a["agency"]: a["fields_sent"] for a in lost_job["agencies"]}
    # What each agency received, from the catalogue's fields (docs/data-protection.md).
    assert sent["dgfip"] == ["prénom", "nom", "code postal"]
    assert "description de votre situation" in sent["france_travail"]
    assert one.json()["files"][0]["file_id"] == first
    assert [s["service"] for s in mine.json()["sources"]][:1] == ["accueil (intake)"]
    assert await trail(client.db) == [
        ("citizen.data.exported", "citizen"),
        ("citizen.data.exported", "citizen"),
    ]


async def test_a_citizen_without_an_account_downloads_the_file_their_code_opened(client):
    file_id = await filed(client)
    other = await filed(client)
    proof = await proof_for(client.db, file_id)

    mine = await client.get(f"/api/files/{file_id}/export", headers=proof)
    not_that_one = await client.get(f"/api/files/{other}/export", headers=proof)

    assert mine.status_code == 200
    assert [f["file_id"] for f in mine.json()["files"]] == [file_id]
    assert not_that_one.status_code == 401
    assert await trail(client.db, file_id) == [("citizen.data.exported", "anonymous")]


# --------------------------------------------------------------------------- the erasure


async def test_a_file_being_processed_is_not_erased_and_says_why(client):
    marie = client.tokens.citizen("marie")
    file_id = await filed(client, marie)
    await assign(client.db, file_id)

    unconfirmed = await client.post(
        f"/api/files/{file_id}/erasure", json={"confirm": False}, headers=marie
    )
    refused = await client.post(f"/api/files/{file_id}/erasure", json=CONFIRMED, headers=marie)

    assert unconfirmed.status_code == 422 and unconfirmed.json()["field"] == "confirm"
    assert refused.status_code == 409
    assert refused.json()["message"] == STILL_PROCESSED
    row = await stored(client.db, file_id)
    assert (row.citizen["email"], row.erased_at) == ("awa@example.fr", None)
    assert not [e for _, e in await client.db.outbox_events() if isinstance(e, CitizenDataErased)]


async def test_a_closed_file_is_erased_keeping_an_anonymous_skeleton_and_others_are_told(
    client,
):
    marie = client.tokens.citizen("marie")
    file_id = await filed(client, marie, life_event="arret_maladie", description="Arrêt.")
    await assign(client.db, file_id)
    await client.db.execute(
        client.db.tables.file_agencies.update()
        .where(client.db.tables.file_agencies.c.file_id == file_id)
        .values(
            status="piece_demandee",
            requested_document={"request_id": "r", "code": "c", "label": "Arrêt"},
        )
    )
    await submit_document(file_id, "cpam", "arret.pdf", "application/pdf", PDF, client.db.uow())
    await close(client.db, file_id)

    erased = await client.post(f"/api/files/{file_id}/erasure", json=CONFIRMED, headers=marie)
    again = await client.post(f"/api/files/{file_id}/erasure", json=CONFIRMED, headers=marie)

    assert erased.status_code == 200, erased.text
    assert erased.json()["message"].startswith("Les données personnelles de votre dossier")
    row = await stored(client.db, file_id)
    assert (row.citizen, row.description, row.citizen_subject, row.answer) == ({}, "", None, None)
    # The skeleton: what the indicators count.
    assert (row.status, row.life_event, row.channel) == ("repondu", "arret_maladie", "en_ligne")
    assert row.erased_at is not None
    tables = client.db.tables
    assert await client.db.rows(tables.documents, tables.documents.c.file_id == file_id) == []
    assert await client.db.rows(tables.timeline, tables.timeline.c.file_id == file_id) == []
    assert await client.db.rows(tables.file_agencies, tables.file_agencies.c.file_id == file_id)
    [(topic, event)] = [
        (t, e) for t, e in await client.db.outbox_events() if isinstance(e, CitizenDataErased)
    ]
    assert (topic, event.file_id, event.cause) == (
        topics.CITIZEN_DATA_ERASED,
        file_id,
        ErasureCause.REQUEST,
    )
    assert "contact" in event.erased and "pieces" in event.erased
    # The citizen no longer owns it (their account is unlinked): the second ask is refused.
    assert again.status_code == 403
    assert ("file.data.erased", "citizen") in await trail(client.db, file_id)
    assert (await client.get("/api/me/export", headers=marie)).json()["files"] == []


async def test_nothing_is_sent_to_a_citizen_whose_data_was_erased(client):
    file_id = await filed(client)
    await assign(client.db, file_id)
    await close(client.db, file_id)
    proof = await proof_for(client.db, file_id)
    erased = await client.post(f"/api/files/{file_id}/erasure", json=CONFIRMED, headers=proof)
    assert erased.status_code == 200

    code = await client.post(f"/api/files/{file_id}/access-codes")

    assert code.status_code == 409
    assert code.json()["message"] == ALREADY_ERASED


# --------------------------------------------------------------------------- the other copies


async def test_assignment_erases_its_copy_and_forgets_the_person(assignment_db):
    submitted: FileSubmitted = file_submitted(agencies=["caf"])
    await on_file_submitted(submitted, assignment_db.uow(("a", str(submitted.event_id))))
    file_id = submitted.file_id
    tables = assignment_db.tables
    await assignment_db.execute(
        tables.agency_requests.insert().values(
            request_id=f"{file_id}-caf",
            file_id=file_id,
            agency="caf",
            status="repondu",
            answer=decision("caf", amount_eur=412.5).model_dump(mode="json"),
            issued_at=dt.datetime.now(dt.UTC),
        )
    )
    erased = CitizenDataErased(file_id=file_id, cause=ErasureCause.RETENTION, erased=["contact"])

    await assignment_erases(erased, assignment_db.uow(("a", str(erased.event_id))))

    tables = assignment_db.tables
    [row] = await assignment_db.rows(tables.files, tables.files.c.file_id == file_id)
    assert row.citizen["given_name"] == "(effacé)" and row.citizen["email"] is None
    assert (row.description, row.citizen_key) == ("", f"erased:{file_id}")
    [request] = await assignment_db.rows(
        tables.agency_requests, tables.agency_requests.c.file_id == file_id
    )
    assert request.answer == {
        "agency": "caf",
        "decision": "accorde",
        "agency_reference": request.answer["agency_reference"],
        "summary": "(effacé)",
    }


async def test_notification_erases_recipients_and_bodies_and_sends_nothing_more(notification_db):
    tables = notification_db.tables
    now = dt.datetime.now(dt.UTC)
    common = {
        "file_id": "GU-2026-ERASE001",
        "kind": "reponse",
        "channel": "email",
        "recipient": "awa@example.fr",
        "subject": "Votre réponse",
        "body": "Madame Diallo, …",
        "referent_name": "Claire Martin",
        "trace_headers": "{}",
        "next_attempt_at": now,
        "created_at": now,
    }
    await notification_db.execute(
        tables.notifications.insert().values(
            [
                {**common, "notification_id": "n-sent", "status": "envoye", "sent_at": now},
                {**common, "notification_id": "n-waiting", "status": "a_envoyer", "sent_at": None},
            ]
        )
    )
    await notification_db.execute(
        tables.contacts.insert().values(file_id="GU-2026-ERASE001", citizen="{}", changed_at=now)
    )
    erased = CitizenDataErased(
        file_id="GU-2026-ERASE001", cause=ErasureCause.REQUEST, erased=["contact"]
    )

    await notification_erases(erased, notification_db.uow(("n", str(erased.event_id))))

    rows = await notification_db.rows(
        tables.notifications, order_by=tables.notifications.c.notification_id
    )
    assert [(r.notification_id, r.status, r.recipient, r.body) for r in rows] == [
        ("n-sent", "envoye", None, "(effacé)"),
        ("n-waiting", "canal_indisponible", None, "(effacé)"),
    ]
    assert rows[0].subject == "Votre réponse"  # the record that it was sent stays
    assert await notification_db.rows(tables.contacts) == []
