"""The référent's desk: the personal word joined to the coordinated answer (assignment)
and the messages to the citizen (intake, then notification), over the real routes on
each service's real SQLite database."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from assignment import api as assignment_api
from assignment.commands import directory_import
from assignment.projections import files as assignment
from assignment.settings import DEFAULT_DIRECTORY
from guichet_runtime.errors import install_french_validation
from guichet_runtime.refusals import install_refusals
from intake import api as intake_api
from intake import projections
from intake.commands.files import SubmitFile, submit_file
from intake.schemas import FileIn
from intake.views import files as views
from notification import projections as notification
from shared_models import (
    AgencyAnswerReceived,
    AgencyRequestIssued,
    CoordinatedAnswerIssued,
    NotificationChannel,
    NotificationKind,
    NotificationSent,
    ReferentAssigned,
    ReferentChangeRequested,
    ReferentMessageSent,
    topics,
)
from tests.unit.samples import AWA_BIRTH_FORM, KEYRING, citizen, decision, file_submitted, referent
from tests.unit.test_notification_channels import dispatch_all

WORD = "Je reste à vos côtés pour la suite : passez me voir quand vous le souhaitez."


def app_client(router, tokens, **headers: str) -> httpx.AsyncClient:
    """The router's app, verifying `tokens`; `headers` go with every request (a token)."""
    app = FastAPI()
    install_french_validation(app)
    install_refusals(app)
    app.include_router(router)
    tokens.install(app)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
    )


# ------------------------------------------------------------------ the personal word (assignment)


@pytest.fixture
async def desk(assignment_db, tokens):
    await directory_import.seed_directory(assignment_db.uow(), DEFAULT_DIRECTORY)
    async with app_client(assignment_api.router(assignment_db), tokens) as c:
        c.db = assignment_db
        c.tokens = tokens
        yield c


async def open_file(db, file_id: str, **overrides) -> tuple[str, list[AgencyRequestIssued]]:
    event = file_submitted(file_id, **overrides)
    await assignment.on_file_submitted(event, db.uow(("assignment", str(event.event_id))))
    emitted = [e for _, e in await db.outbox_events() if getattr(e, "file_id", None) == file_id]
    agent_id = next(e for e in emitted if isinstance(e, ReferentAssigned)).referent.agent_id
    return agent_id, [e for e in emitted if isinstance(e, AgencyRequestIssued)]


async def answer_all(db, requests: list[AgencyRequestIssued]) -> list[CoordinatedAnswerIssued]:
    for r in requests:
        answer = AgencyAnswerReceived(
            file_id=r.file_id, request_id=r.request_id, answer=decision(r.agency)
        )
        await assignment.on_agency_answer(answer, db.uow(("assignment", str(answer.event_id))))
    return [e for _, e in await db.outbox_events() if isinstance(e, CoordinatedAnswerIssued)]


async def test_the_referents_word_set_before_the_last_answer_leaves_with_it_then_is_frozen(desk):
    agent, requests = await open_file(desk.db, "GU-2026-WORD0001")
    url = "/api/files/GU-2026-WORD0001/personal-word"

    first = await desk.put(url, headers=desk.tokens.agent(agent), json={"text": "Un premier jet."})
    replaced = await desk.put(url, headers=desk.tokens.agent(agent), json={"text": f"  {WORD}  "})
    assert first.status_code == replaced.status_code == 200, replaced.text
    shown = (
        await desk.get("/api/files/GU-2026-WORD0001/assignment", headers=desk.tokens.agent(agent))
    ).json()["personal_word"]
    assert (shown["text"], shown["agent_id"], shown["included"]) == (WORD, agent, True)

    [answer] = await answer_all(desk.db, requests)

    assert answer.personal_word == WORD
    body, signature = answer.text.split("Je reste votre interlocuteur", 1)
    assert WORD in body and answer.referent.phone in signature
    assert (
        answer.referent.opening_hours and f"Accueil : {answer.referent.opening_hours}" in signature
    )
    late = await desk.put(url, headers=desk.tokens.agent(agent), json={"text": "Trop tard ?"})
    withdrawn = await desk.delete(url, headers=desk.tokens.agent(agent))
    assert late.status_code == withdrawn.status_code == 409
    assert late.json()["message"].startswith("La réponse coordonnée est déjà partie")
    [file] = await desk.db.rows("files")
    assert file.personal_word == WORD  # unchanged


async def test_the_answer_does_not_wait_for_a_word_and_a_withdrawn_word_is_not_sent(desk):
    agent, requests = await open_file(desk.db, "GU-2026-WORD0002")
    url = "/api/files/GU-2026-WORD0002/personal-word"
    await desk.put(url, headers=desk.tokens.agent(agent), json={"text": WORD})
    assert (await desk.delete(url, headers=desk.tokens.agent(agent))).status_code == 200

    [answer] = await answer_all(desk.db, requests)

    assert answer.personal_word is None and WORD not in answer.text
    assert "Un mot de votre référent" not in answer.text


async def test_only_the_current_referent_writes_the_word_and_errors_are_in_french(desk):
    agent, _ = await open_file(desk.db, "GU-2026-WORD0003")
    url = "/api/files/GU-2026-WORD0003/personal-word"
    other = next(r.agent_id for r in await desk.db.rows("agents") if r.agent_id != agent)

    cases = {
        "colleague": await desk.put(url, headers=desk.tokens.agent(other), json={"text": WORD}),
        "unknown agent": await desk.put(
            url, headers=desk.tokens.agent("AG-INCONNU"), json={"text": WORD}
        ),
        "unknown file": await desk.put(
            "/api/files/GU-0000-INCONNU/personal-word",
            headers=desk.tokens.agent(agent),
            json={"text": WORD},
        ),
        "blank": await desk.put(url, headers=desk.tokens.agent(agent), json={"text": "   "}),
        "too long": await desk.put(
            url, headers=desk.tokens.agent(agent), json={"text": "x" * 1001}
        ),
    }

    # The author is the token's agent: an agent the directory does not know is nobody's
    # référent, and a body naming the référent is refused (the field is gone).
    cases["body names the author"] = await desk.put(
        url, headers=desk.tokens.agent(other), json={"agent_id": agent, "text": WORD}
    )
    cases["anonymous"] = await desk.put(url, json={"text": WORD})

    assert {k: r.status_code for k, r in cases.items()} == {
        "colleague": 403,
        "unknown agent": 403,
        "unknown file": 404,
        "blank": 422,
        "too long": 422,
        "body names the author": 403,
        "anonymous": 401,
    }
    for refused in ("colleague", "unknown agent", "body names the author"):
        assert cases[refused].json()["message"].startswith("Seul le référent actuel du dossier")
    assert (
        cases["unknown file"].json()["message"]
        == "Aucun dossier ne porte la référence GU-0000-INCONNU."
    )
    assert cases["blank"].json()["errors"] == [
        {"field": "text", "message": "Écrivez quelques mots avant d'enregistrer."}
    ]
    assert (
        cases["too long"].json()["errors"][0]["message"]
        == "Le mot personnel fait au plus 1000 caractères (ici : 1001)."
    )
    [file] = await desk.db.rows("files")
    assert file.personal_word is None


async def test_a_word_leaves_only_under_the_name_of_the_referent_who_wrote_it(desk):
    agent, requests = await open_file(desk.db, "GU-2026-WORD0004")
    await desk.put(
        "/api/files/GU-2026-WORD0004/personal-word",
        headers=desk.tokens.agent(agent),
        json={"text": WORD},
    )
    change = ReferentChangeRequested(
        file_id="GU-2026-WORD0004", requested_by="citoyen", reason="Incompatibilité."
    )
    await assignment.on_referent_change_requested(
        change, desk.db.uow(("assignment", str(change.event_id)))
    )
    record = (
        await desk.get("/api/files/GU-2026-WORD0004/assignment", headers=desk.tokens.network_head())
    ).json()
    assert record["referent_id"] != agent and record["personal_word"]["included"] is False

    [answer] = await answer_all(desk.db, requests)

    assert answer.referent.agent_id == record["referent_id"]
    assert answer.personal_word is None and WORD not in answer.text


# ---------------------------------------------------------------- messages to the citizen (intake)


@pytest.fixture
async def counter(intake_db, tokens):
    """The desk of the file's référent (their token goes with every request)."""
    async with app_client(
        intake_api.router(intake_db, KEYRING), tokens, **tokens.agent(referent().agent_id)
    ) as c:
        c.db = intake_db
        c.tokens = tokens
        yield c


async def intake_file(db, assigned: bool = True) -> str:
    form = FileIn.model_validate(AWA_BIRTH_FORM)
    file_id, _ = await submit_file(SubmitFile(form=form), db.uow())
    if assigned:
        event = ReferentAssigned(
            file_id=file_id,
            referent=referent(),
            rule="proximite",
            explanation="…",
            citizen=citizen(),
        )
        await projections.on_referent_assigned(event, db.uow(("intake", str(event.event_id))))
    return file_id


async def test_the_referent_writes_to_the_citizen_once_per_idempotency_key(counter):
    file_id = await intake_file(counter.db)
    url = f"/api/files/{file_id}/messages"
    body = {"text": "Pouvez-vous m'envoyer votre livret de famille ?"}

    sent = await counter.post(url, json=body, headers={"Idempotency-Key": "desk-1"})
    again = await counter.post(url, json=body, headers={"Idempotency-Key": "desk-1"})
    other = await counter.post(
        url, json={**body, "text": "Autre chose."}, headers={"Idempotency-Key": "desk-1"}
    )

    assert sent.status_code == again.status_code == 201 and other.status_code == 409
    assert again.headers["Idempotent-Replayed"] == "true"
    assert sent.json()["message_id"] == again.json()["message_id"]
    [(topic, event)] = [
        (t, e) for t, e in await counter.db.outbox_events() if isinstance(e, ReferentMessageSent)
    ]
    assert topic == topics.REFERENT_MESSAGES
    assert (event.message_id, event.text, event.referent, event.citizen.email) == (
        sent.json()["message_id"],
        body["text"],
        referent(),
        "awa@example.fr",
    )
    timeline = (await views.file_view(counter.db.uow(), file_id))["timeline"]
    assert [e["label"] for e in timeline if e["kind"] == "message_referent"] == [
        f"Message de votre référent, {referent().name} : « {body['text']} »"
    ]

    # Notification reports it delivered: the desk's history shows by which channel.
    delivered = NotificationSent(
        file_id=file_id,
        notification_id=f"{file_id}:referent_message:{event.message_id}",
        kind=NotificationKind.REFERENT_MESSAGE,
        channel=NotificationChannel.SMS,
        subject="Votre dossier : un message",
        referent_name=referent().name,
    )
    await projections.on_notification_sent(
        delivered, counter.db.uow(("intake", str(delivered.event_id)))
    )
    [listed] = (await counter.get(url)).json()
    assert (listed["text"], listed["agent_name"], listed["channel"]) == (
        body["text"],
        referent().name,
        "sms",
    )


async def test_only_the_files_referent_writes_and_bad_messages_are_refused_in_french(counter):
    file_id = await intake_file(counter.db)
    waiting = await intake_file(counter.db, assigned=False)
    me = referent().agent_id

    colleague = counter.tokens.agent("AG-AUTRE")
    cases = {
        "colleague": await counter.post(
            f"/api/files/{file_id}/messages", json={"text": "Bonjour"}, headers=colleague
        ),
        # Nobody is the référent of a waiting file: nobody writes from it.
        "no référent yet": await counter.post(
            f"/api/files/{waiting}/messages", json={"text": "Bonjour"}
        ),
        "unknown file": await counter.post(
            "/api/files/GU-0000-INCONNU/messages", json={"text": "Bonjour"}
        ),
        "blank": await counter.post(f"/api/files/{file_id}/messages", json={"text": " "}),
        "too long": await counter.post(f"/api/files/{file_id}/messages", json={"text": "x" * 2001}),
        # The author comes from the token: a body naming the référent is refused.
        "body names the author": await counter.post(
            f"/api/files/{file_id}/messages",
            json={"agent_id": me, "text": "Bonjour"},
            headers=colleague,
        ),
    }

    assert {k: r.status_code for k, r in cases.items()} == {
        "colleague": 403,
        "no référent yet": 403,
        "unknown file": 404,
        "blank": 422,
        "too long": 422,
        "body names the author": 403,
    }
    for refused in ("colleague", "no référent yet", "body names the author"):
        assert cases[refused].json()["message"].startswith("Seul le référent actuel du dossier")
    assert cases["blank"].json()["errors"] == [
        {"field": "text", "message": "Écrivez votre message avant de l'envoyer."}
    ]
    assert not [
        e for _, e in await counter.db.outbox_events() if isinstance(e, ReferentMessageSent)
    ]
    assert (await counter.get("/api/files/GU-0000-INCONNU/messages")).status_code == 404


# ------------------------------------------------------------------------- delivery (notification)


async def test_a_redelivered_message_event_is_sent_once_signed_with_the_referents_contact(
    notification_db,
    channels,
    sink,
):
    event = ReferentMessageSent(
        file_id="GU-2026-MESS0001",
        message_id=str(uuid.uuid4()),
        referent=referent(),
        citizen=citizen(),
        text="Votre dossier avance : la CAF a bien reçu votre attestation.",
    )
    await notification.on_referent_message_sent(
        event, notification_db.uow(("notification", str(event.event_id)))
    )
    replay = event.model_copy(
        update={"event_id": uuid.uuid4()}
    )  # the same message, published again
    await notification.on_referent_message_sent(
        replay, notification_db.uow(("notification", str(replay.event_id)))
    )

    assert await dispatch_all(notification_db, channels) == 1
    [mail] = [m for m in sink.mails() if m["X-Guichet-File"] == "GU-2026-MESS0001"]
    text = mail.get_body(("plain",)).get_content()
    assert mail["Subject"] == f"Votre dossier GU-2026-MESS0001 : un message de {referent().name}"
    assert event.text in text
    for part in (
        referent().name,
        referent().phone,
        referent().email,
        f"Accueil : {referent().opening_hours}",
    ):
        assert part in text
    [(_, reported)] = [
        (t, e) for t, e in await notification_db.outbox_events() if isinstance(e, NotificationSent)
    ]
    assert reported.kind is NotificationKind.REFERENT_MESSAGE
    assert reported.notification_id == f"GU-2026-MESS0001:referent_message:{event.message_id}"
