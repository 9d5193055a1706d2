"""Messages from the citizen (issue 16 §1), end to end on the real broker: the citizen
writes to their référent from their space, the référent's inbox shows it, the answer
reaches the citizen signed by name; during an absence the cover gets it and the citizen is
told who answers. The citizen of another file can neither write nor read."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from devstack.stack import Stack
from guichet_runtime.clock import Clock
from tests.e2e.support import (
    BACKENDS,
    citizen_client,
    client_as,
    eventually,
    file_body,
    mails_for,
)

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n% avis de la CAF\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request, shared_stack):
    """The session's stack on each backend (tests/e2e/conftest.py)."""
    return shared_stack(request.param)


@pytest.fixture
async def client(stack, tokens):
    """Marie's client of intake: her file, her messages."""
    async with citizen_client(stack, tokens) as c:
        yield c


async def referent_of(client: httpx.AsyncClient, file_id: str, not_: str | None = None) -> dict:
    async def named():
        card = (await client.get(f"/api/files/{file_id}")).json().get("referent")
        return card if card and card.get("agent_id") not in (None, not_) else None

    return await eventually(named, what=f"the référent of {file_id} (other than {not_})")


async def inbox_entry(stack: Stack, tokens, agent: str, file_id: str) -> dict | None:
    async with client_as(stack.assignment_url, lambda: tokens.agent_id(agent)) as assignment:
        box = (await assignment.get(f"/api/agents/{agent}/inbox")).json()
    return next((f for f in box["files"] if f["file_id"] == file_id), None)


def notes_from(stack: Stack, file_id: str, name: str) -> list[str]:
    """The emails of the référent's messages to the citizen, signed by `name`."""
    subject = f"Votre dossier {file_id} : un message de {name}"
    return [
        m.get_body(preferencelist=("plain",)).get_content()
        for m in mails_for(stack.maildir, file_id)
        if m["Subject"] == subject
    ]


async def test_the_citizen_writes_the_inbox_shows_it_and_the_signed_answer_reaches_them(
    stack: Stack, client, tokens
):
    created = await client.post("/api/files", json=file_body(email="fil.messages@example.fr"))
    file_id = created.json()["file_id"]
    referent = await referent_of(client, file_id)
    agent = referent["agent_id"]
    url = f"/api/files/{file_id}/citizen-messages"
    text = "Bonjour, j'ai reçu l'avis ci-joint de la CAF : est-ce normal ?"

    sent = await client.post(
        url,
        data={"text": text},
        files={"fichier": ("avis.pdf", PDF, "application/pdf")},
        headers={"Idempotency-Key": f"fil-{file_id}"},
    )
    assert sent.status_code == 201, sent.text
    by = dt.date.fromisoformat(sent.json()["answer_due_on"])
    assert sent.json()["message"] == (
        f"Votre message est transmis à votre référent, {referent['name']}, qui vous répondra "
        f"au plus tard le {by:%d/%m/%Y}."
    )
    # Another citizen can neither write on the file nor read its thread and attachments.
    [attached] = sent.json()["attachments"]
    stranger = tokens.citizen("lucas.bernard")
    refused = await client.post(url, data={"text": "Bonjour"}, headers=stranger)
    peek = await client.get(f"/api/files/{file_id}/thread", headers=stranger)
    grab = await client.get(
        f"/api/files/{file_id}/attachments/{attached['attachment_id']}", headers=stranger
    )
    assert (refused.status_code, peek.status_code, grab.status_code) == (403, 403, 403)

    waiting = await eventually(
        lambda: inbox_entry(stack, tokens, agent, file_id), what="the message in the inbox"
    )
    assert (waiting["unread"], waiting["messages"][0]["attachments"]) == (1, 1)

    as_referent = tokens.agent_id(agent)
    [entry] = (await client.get(f"/api/files/{file_id}/thread", headers=as_referent)).json()
    assert (entry["from"], entry["text"]) == ("citoyen", text)
    download = await client.get(
        f"/api/files/{file_id}/attachments/{attached['attachment_id']}", headers=as_referent
    )
    assert download.content == PDF
    async with client_as(stack.assignment_url, lambda: tokens.agent_id(agent)) as assignment:
        read = await assignment.post(f"/api/files/{file_id}/citizen-messages/read")
        assert read.status_code == 200 and read.json()["marked_read"] == 1

    answer = "C'est normal : la CAF recalcule vos droits. Je vous rappelle demain."
    replied = await client.post(
        f"/api/files/{file_id}/messages", json={"text": answer}, headers=as_referent
    )
    assert replied.status_code == 201, replied.text

    async def answered():
        return await inbox_entry(stack, tokens, agent, file_id) is None

    await eventually(answered, what="the answered message leaves the inbox")
    [note] = await eventually(
        lambda: _async(notes_from(stack, file_id, referent["name"])),
        what="the signed answer in the citizen's mailbox",
    )
    assert answer in note and referent["phone"] in note and referent["email"] in note
    thread = (await client.get(f"/api/files/{file_id}/thread")).json()
    assert [(e["from"], e["author"]) for e in thread] == [
        ("citoyen", None),
        ("referent", referent["name"]),
    ]


async def test_during_an_absence_the_cover_gets_the_message_and_the_citizen_is_told(
    stack: Stack, client, tokens
):
    # A sick leave: the CPAM waits for the salary certificate, so the file stays open (an
    # absence moves the open files to a cover; answered ones stay with their référent).
    created = await client.post(
        "/api/files", json=file_body("arret_maladie", email="fil.absence@example.fr")
    )
    file_id = created.json()["file_id"]
    titular = await referent_of(client, file_id)
    supervisor = tokens.supervisor_of(titular["office_id"])
    today = Clock().today()  # the services' day (Paris)
    async with client_as(stack.assignment_url, lambda: supervisor) as assignment:
        away = await assignment.post(
            f"/api/agents/{titular['agent_id']}/absences",
            json={
                "starts_on": today.isoformat(),
                "ends_on": (today + dt.timedelta(days=1)).isoformat(),
                "reason": "Formation",
            },
        )
        assert away.status_code == 201 and away.json()["files_covered"] >= 1, away.text
        try:
            cover = await referent_of(client, file_id, not_=titular["agent_id"])
            sent = await client.post(
                f"/api/files/{file_id}/citizen-messages",
                data={"text": "Bonjour, mon employeur m'a envoyé l'attestation."},
            )
            assert sent.status_code == 201, sent.text
            by = dt.date.fromisoformat(sent.json()["answer_due_on"])
            assert sent.json()["message"] == (
                f"{titular['name']} est absent(e) : votre message est transmis à "
                f"{cover['name']}, qui assure le suivi de votre dossier pendant cette absence "
                f"et vous répondra au plus tard le {by:%d/%m/%Y}."
            )
            held = await eventually(
                lambda: inbox_entry(stack, tokens, cover["agent_id"], file_id),
                what="the message in the cover's inbox",
            )
            assert held["covering_for"] == titular["name"]
            assert await inbox_entry(stack, tokens, titular["agent_id"], file_id) is None

            replied = await client.post(
                f"/api/files/{file_id}/messages",
                json={"text": "Bien reçu, je transmets à la CPAM."},
                headers=tokens.agent_id(cover["agent_id"]),
            )
            assert replied.status_code == 201, replied.text
            [note] = await eventually(
                lambda: _async(notes_from(stack, file_id, cover["name"])),
                what="the cover's signed answer",
            )
            assert cover["phone"] in note
        finally:
            back = await assignment.post(f"/api/agents/{titular['agent_id']}/return")
            assert back.status_code == 200, back.text


async def _async(value):
    return value
