"""Messages from the citizen (issue 16 §1): the citizen writes to their référent on their
own file (intake: thread, attachments, timeline, CitizenMessageReceived), the référent's
inbox at assignment (unread, urgency, waiting time, the cover during an absence), read and
answered. Real routes on each service's real SQLite database."""

from __future__ import annotations

import datetime as dt

import pytest

from assignment import api as assignment_api
from assignment import domain as assignment_domain
from assignment.commands import directory, directory_import
from assignment.projections import files as assignment
from assignment.projections import messages as inbox_projections
from assignment.settings import DEFAULT_DIRECTORY
from intake import api as intake_api
from intake import projections
from intake.commands import gdpr
from intake.domain.thread import covering_after_assignment, who_answers
from intake.views import exports
from intake.views import files as views
from shared_models import (
    CitizenMessageReceived,
    ErasureCause,
    ReferentAssigned,
    ReferentMessageSent,
    topics,
)
from tests.unit.samples import KEYRING, citizen, file_submitted, referent
from tests.unit.test_referent_desk import app_client, intake_file

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
TEXT = "Bonjour, j'ai reçu un courrier de la CAF : que dois-je en faire ?"
COVER = referent(agent_id="AG-93-01-3", name="Karim Benali")


@pytest.fixture
async def space(intake_db, tokens):
    """The citizen space at intake: Awa's file, her référent named (her token by default)."""
    async with app_client(intake_api.router(intake_db, KEYRING), tokens) as c:
        c.db = intake_db
        c.tokens = tokens
        c.file_id = await intake_file(intake_db)
        await intake_db.execute(intake_db.tables.files.update().values(citizen_subject="awa"))
        c.headers.update(tokens.citizen("awa"))
        yield c


async def assign(db, file_id: str, to, rule: str, previous=None) -> None:
    event = ReferentAssigned(
        file_id=file_id,
        referent=to,
        rule=rule,
        explanation="…",
        citizen=citizen(),
        previous_referent=previous,
    )
    await projections.on_referent_assigned(event, db.uow(("intake", str(event.event_id))))


async def received(db) -> list[tuple[str, CitizenMessageReceived]]:
    return [(t, e) for t, e in await db.outbox_events() if isinstance(e, CitizenMessageReceived)]


# ------------------------------------------------------------------ intake: the citizen writes


async def test_the_citizen_writes_with_an_attachment_once_per_key_and_is_told_who_answers(space):
    url = f"/api/files/{space.file_id}/citizen-messages"
    form = {"text": f"  {TEXT}  "}
    files = {"fichier": ("courrier.pdf", PDF, "application/pdf")}

    sent = await space.post(url, data=form, files=files, headers={"Idempotency-Key": "c-1"})
    again = await space.post(url, data=form, files=files, headers={"Idempotency-Key": "c-1"})
    other = await space.post(url, data={"text": "Autre."}, headers={"Idempotency-Key": "c-1"})

    assert sent.status_code == again.status_code == 201, sent.text
    assert other.status_code == 409 and again.headers["Idempotent-Replayed"] == "true"
    body = sent.json()
    assert body["message_id"] == again.json()["message_id"] and body["text"] == TEXT
    by = dt.date.fromisoformat(body["answer_due_on"])
    assert body["message"] == (
        f"Votre message est transmis à votre référent, {referent().name}, qui vous répondra "
        f"au plus tard le {by:%d/%m/%Y}."
    )
    [(topic, event)] = await received(space.db)
    assert topic == topics.CITIZEN_MESSAGES
    assert (event.message_id, event.referent, event.covering_for, event.attachments) == (
        body["message_id"],
        referent(),
        None,
        1,
    )
    timeline = (await views.file_view(space.db.uow(), space.file_id))["timeline"]
    assert [e["label"] for e in timeline if e["kind"] == "message_citoyen"] == [
        f"Votre message à {referent().name} (1 pièce(s) jointe(s)) : « {TEXT} »"
    ]
    [entry] = (await space.get(f"/api/files/{space.file_id}/thread")).json()
    assert (entry["from"], entry["to"], entry["text"]) == ("citoyen", referent().name, TEXT)
    [attached] = entry["attachments"]
    assert (attached["filename"], attached["media_type"]) == ("courrier.pdf", "application/pdf")
    download = await space.get(
        f"/api/files/{space.file_id}/attachments/{attached['attachment_id']}",
        headers=space.tokens.agent(referent().agent_id),
    )
    assert download.status_code == 200 and download.content == PDF


async def test_the_thread_shows_the_referents_answer_after_the_citizens_message(space):
    await space.post(f"/api/files/{space.file_id}/citizen-messages", data={"text": TEXT})
    answer = await space.post(
        f"/api/files/{space.file_id}/messages",
        json={"text": "Envoyez-le-moi, je m'en occupe."},
        headers=space.tokens.agent(referent().agent_id),
    )
    assert answer.status_code == 201, answer.text

    thread = (await space.get(f"/api/files/{space.file_id}/thread")).json()

    assert [(e["from"], e["author"]) for e in thread] == [
        ("citoyen", None),
        ("referent", referent().name),
    ]


async def test_only_the_files_citizen_writes_and_bad_messages_are_refused_in_french(space):
    url = f"/api/files/{space.file_id}/citizen-messages"
    waiting = await intake_file(space.db, assigned=False)
    await space.db.execute(
        space.db.tables.files.update()
        .where(space.db.tables.files.c.file_id == waiting)
        .values(citizen_subject="awa")
    )
    cases = {
        "other citizen": await space.post(
            url, data={"text": TEXT}, headers=space.tokens.citizen("quelquun-d-autre")
        ),
        "the référent": await space.post(
            url, data={"text": TEXT}, headers=space.tokens.agent(referent().agent_id)
        ),
        "empty": await space.post(url, data={"text": "   "}),
        "too long": await space.post(url, data={"text": "a" * 2001}),
        "not a document": await space.post(
            url, data={"text": TEXT}, files={"fichier": ("note.txt", b"bonjour", "text/plain")}
        ),
        "four documents": await space.post(
            url,
            data={"text": TEXT},
            files=[("fichier", (f"p{i}.pdf", PDF, "application/pdf")) for i in range(4)],
        ),
        "no référent yet": await space.post(
            f"/api/files/{waiting}/citizen-messages", data={"text": TEXT}
        ),
    }

    assert {k: r.status_code for k, r in cases.items()} == {
        "other citizen": 403,
        "the référent": 403,
        "empty": 422,
        "too long": 422,
        "not a document": 415,
        "four documents": 422,
        "no référent yet": 409,
    }
    empty = cases["empty"].json()
    assert (empty["message"], empty["field"]) == (
        "Écrivez votre message avant de l'envoyer.",
        "text",
    )
    assert cases["not a document"].json()["field"] == "fichier"
    assert cases["no référent yet"].json()["message"].startswith("Aucun référent")
    assert await received(space.db) == []
    other_thread = await space.get(
        f"/api/files/{space.file_id}/thread", headers=space.tokens.citizen("quelquun-d-autre")
    )
    assert other_thread.status_code == 403


async def test_during_an_absence_the_cover_answers_and_the_citizen_is_told_so(space):
    await assign(space.db, space.file_id, COVER, "suppleance", previous=referent())

    sent = await space.post(f"/api/files/{space.file_id}/citizen-messages", data={"text": TEXT})

    assert sent.status_code == 201, sent.text
    by = dt.date.fromisoformat(sent.json()["answer_due_on"])
    assert sent.json()["message"] == (
        f"{referent().name} est absent(e) : votre message est transmis à {COVER.name}, qui "
        f"assure le suivi de votre dossier pendant cette absence et vous répondra au plus tard "
        f"le {by:%d/%m/%Y}."
    )
    [(_, event)] = await received(space.db)
    assert (event.referent, event.covering_for) == (COVER, referent())
    # The titular is back: the file is theirs again, nobody is covered any more.
    await assign(space.db, space.file_id, referent(), "retour", previous=COVER)
    again = await space.post(f"/api/files/{space.file_id}/citizen-messages", data={"text": "Et ?"})
    assert again.json()["covering_for_name"] is None


def test_who_answers_and_whom_a_cover_covers():
    titular, cover, third = referent(), COVER, referent(agent_id="AG-93-01-4", name="Léa Roux")
    card = titular.model_dump(mode="json")
    assert covering_after_assignment("suppleance", titular, None) == card
    # A cover covered in turn: the citizen's référent is still the one away.
    assert covering_after_assignment("suppleance", cover, card) == card
    assert covering_after_assignment("retour", cover, card) is None
    assert covering_after_assignment("proximite", None, None) is None
    answerer = who_answers(third.model_dump(mode="json"), card)
    assert (answerer.referent, answerer.covering_for) == (third, titular)
    assert who_answers(card, card).covering_for is None


# ------------------------------------------------------------------ assignment: the inbox


@pytest.fixture
async def desk(assignment_db, tokens):
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    async with app_client(assignment_api.router(assignment_db), tokens) as c:
        c.db = assignment_db
        c.tokens = tokens
        yield c


async def open_file(db, file_id: str, **overrides) -> str:
    event = file_submitted(file_id, **overrides)
    await assignment.on_file_submitted(event, db.uow(("assignment", str(event.event_id))))
    [assigned] = [
        e
        for _, e in await db.outbox_events()
        if isinstance(e, ReferentAssigned) and e.file_id == file_id
    ]
    return assigned.referent.agent_id


async def deliver(db, event) -> None:
    handler = (
        inbox_projections.on_citizen_message_received
        if isinstance(event, CitizenMessageReceived)
        else inbox_projections.on_referent_message_sent
    )
    # Twice, the second past the inbox's deduplication (a replayed dead letter, say): the
    # handler itself changes nothing more.
    for key in (str(event.event_id), f"{event.event_id}:again"):
        await handler(event, db.uow(("assignment", key)))


def message(file_id: str, message_id: str, at: dt.datetime) -> CitizenMessageReceived:
    return CitizenMessageReceived(
        file_id=file_id, occurred_at=at, message_id=message_id, referent=referent()
    )


async def test_the_inbox_orders_by_urgency_then_waiting_and_answers_empty_it(desk):
    agent = await open_file(desk.db, "GU-2026-INBOX001")
    assert await open_file(desk.db, "GU-2026-INBOX002", urgent=True) == agent
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(hours=5)
    await deliver(desk.db, message("GU-2026-INBOX001", "m-old", t0))
    await deliver(desk.db, message("GU-2026-INBOX002", "m-urgent", t0 + dt.timedelta(hours=2)))
    await deliver(desk.db, message("GU-2026-INBOX001", "m-new", t0 + dt.timedelta(hours=3)))
    me = desk.tokens.agent(agent)

    box = (await desk.get(f"/api/agents/{agent}/inbox", headers=me)).json()

    assert (box["unread"], box["waiting"]) == (3, 3)
    assert [f["file_id"] for f in box["files"]] == ["GU-2026-INBOX002", "GU-2026-INBOX001"]
    assert [m["message_id"] for m in box["files"][1]["messages"]] == ["m-old", "m-new"]
    assert box["files"][1]["waiting_minutes"] >= 5 * 60 - 1
    assert "citizen" not in box["files"][0]  # no citizen's words nor name in the inbox

    read = await desk.post("/api/files/GU-2026-INBOX001/citizen-messages/read", headers=me)
    assert read.status_code == 200 and read.json()["marked_read"] == 2
    box = (await desk.get(f"/api/agents/{agent}/inbox", headers=me)).json()
    assert box["unread"] == 1
    assert {m["state"] for m in box["files"][1]["messages"]} == {"lu"}

    answer = ReferentMessageSent(
        file_id="GU-2026-INBOX001",
        message_id="r-1",
        referent=referent(agent_id=agent),
        citizen=citizen(),
        text="Je m'en occupe.",
    )
    await deliver(desk.db, answer)
    box = (await desk.get(f"/api/agents/{agent}/inbox", headers=me)).json()
    assert [f["file_id"] for f in box["files"]] == ["GU-2026-INBOX002"]
    rows = await desk.db.rows("citizen_messages", order_by="message_id")
    assert {r.message_id: r.answered_by for r in rows} == {
        "m-new": agent,
        "m-old": agent,
        "m-urgent": None,
    }
    # Somebody else's file: neither its inbox nor its messages.
    other = desk.tokens.agent("AG-75-01-2")
    assert (await desk.get(f"/api/agents/{agent}/inbox", headers=other)).status_code == 403
    marked = await desk.post("/api/files/GU-2026-INBOX002/citizen-messages/read", headers=other)
    assert marked.status_code == 403


async def test_during_an_absence_the_covers_inbox_holds_the_message(desk):
    agent = await open_file(desk.db, "GU-2026-INBOX003")
    today = dt.datetime.now(dt.UTC).date()
    await directory.declare_absence(
        desk.db.uow(), agent, today, today + dt.timedelta(days=3), "Congés", today
    )
    [cover] = [r.referent_id for r in await desk.db.rows("files")]
    assert cover != agent
    await deliver(desk.db, message("GU-2026-INBOX003", "m-away", dt.datetime.now(dt.UTC)))

    covering = (
        await desk.get(f"/api/agents/{cover}/inbox", headers=desk.tokens.agent(cover))
    ).json()
    away = (await desk.get(f"/api/agents/{agent}/inbox", headers=desk.tokens.agent(agent))).json()

    [held] = covering["files"]
    assert (held["file_id"], held["unread"]) == ("GU-2026-INBOX003", 1)
    assert held["covering_for"] is not None and away["files"] == []


def test_the_inbox_rules():
    now = dt.datetime.now(dt.UTC)
    state = assignment_domain.message_state
    assert state(None, None) is assignment_domain.MessageState.UNREAD
    assert state(now, None) is assignment_domain.MessageState.READ
    assert state(None, now) is assignment_domain.MessageState.ANSWERED
    rank = assignment_domain.inbox_rank
    soon, later = dt.date(2026, 12, 1), dt.date(2027, 1, 1)
    assert sorted(
        [
            ("late, no deadline", rank(False, None, now - dt.timedelta(days=9))),
            ("urgent", rank(True, later, now)),
            ("deadline soon", rank(False, soon, now)),
            ("deadline later, waiting long", rank(False, later, now - dt.timedelta(days=3))),
            ("deadline later", rank(False, later, now)),
        ],
        key=lambda x: x[1],
    ) == sorted(
        [
            ("urgent", rank(True, later, now)),
            ("deadline soon", rank(False, soon, now)),
            ("deadline later, waiting long", rank(False, later, now - dt.timedelta(days=3))),
            ("deadline later", rank(False, later, now)),
            ("late, no deadline", rank(False, None, now - dt.timedelta(days=9))),
        ],
        key=lambda x: x[1],
    )


async def test_the_citizens_messages_are_in_their_export_and_go_with_an_erasure(space):
    await space.post(
        f"/api/files/{space.file_id}/citizen-messages",
        data={"text": TEXT},
        files={"fichier": ("courrier.pdf", PDF, "application/pdf")},
    )
    [exported] = await exports.export_of_file(space.db.uow(), space.file_id)
    [written] = exported["citizen_messages"]
    assert (written["text"], written["answerer_name"], written["attachments"]) == (
        TEXT,
        referent().name,
        1,
    )

    uow = space.db.uow()
    async with uow:
        await gdpr.erase_personal_data(
            uow, space.file_id, ErasureCause.REQUEST, dt.datetime.now(dt.UTC)
        )
        await uow.commit()

    assert await space.db.rows("citizen_message_attachments") == []
    [kept] = await space.db.rows("citizen_messages")
    assert kept.text == gdpr.ERASED_WORD and TEXT not in str(kept)
