"""Channels end to end on real processes: the real broker, every service, the SMTP sink
(answering 550 to a bouncing domain), the SMS gateway / postal service simulator. The
fallback chain, preferences changed on the way, thanks and survey, and no second message
after a redelivered event or a notification service killed mid-way."""

from __future__ import annotations

import asyncio
import collections
import json
import re
import uuid
import warnings

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.kafka_sasl import client_options
from devstack.quiescence import wait_quiescent
from devstack.stack import BOUNCING_DOMAIN, Stack
from guichet_runtime.tls_context import client_tls
from tests.e2e.hold_support import agency_holds
from tests.e2e.sealing_support import opened_column
from tests.e2e.support import (
    answered_view,
    assert_no_repeats,
    citizen_client,
    eventually,
    file_body,
    mails_for,
    query,
    repeats,
)
from tests.pdfs import pdf_text

pytestmark = pytest.mark.integration

ADDRESS = {"street": "8 allée des Tilleuls", "city": "Bobigny", "postcode": "93000"}
#: Messages a notification process has in flight per channel (`dispatch_pending`'s
#: concurrency): the most a SIGKILL can catch between a provider's acceptance and the commit.
IN_FLIGHT = 4


@pytest.fixture(scope="module")
def stack(shared_stack):
    """The session's SQLite stack (tests/e2e/conftest.py)."""
    return shared_stack("sqlite")


@pytest.fixture
async def client(stack, tokens):
    """Marie's client of intake: she submits the files, and reads them."""
    async with citizen_client(stack, tokens) as c:
        yield c


@pytest.fixture
async def providers(stack):
    async with httpx.AsyncClient(
        base_url=stack.providers_url, timeout=10, verify=client_tls()
    ) as c:
        yield c
        await c.post("/admin/faults", json={"reset": True})


async def submit(client, life_event: str = "naissance", **citizen) -> str:
    response = await client.post("/api/files", json=file_body(life_event, **citizen))
    assert response.status_code == 201, response.text
    return response.json()["file_id"]


async def test_a_bounced_email_falls_back_to_sms_then_a_refused_sms_to_a_signed_letter(
    stack, client, providers
):
    await providers.post(
        "/admin/faults", json={"refuse_numbers": ["0698765432"], "code": "numero_inconnu"}
    )
    file_id = await submit(
        client, email=f"marie@{BOUNCING_DOMAIN}", phone="06 98 76 54 32", **ADDRESS
    )

    view = await eventually(lambda: answered_view(client, file_id), what="answer sent by letter")
    referent = view["referent"]
    labels = [e["label"] for e in view["timeline"] if e["kind"] == "notification"]
    assert all(label.startswith("Courrier postal envoyé") for label in labels), labels

    letters = [
        item for item in (await providers.get("/api/letters")).json() if item["file_id"] == file_id
    ]
    assert len(letters) == 2
    for letter in letters:
        text = pdf_text((await providers.get(f"/api/letters/{letter['id']}.pdf")).content)
        assert "8 allée des Tilleuls" in text and "93000 BOBIGNY" in text
        assert f"Votre référent : {referent['name']}" in text and referent["phone"] in text
        assert letter["traceparent"]  # the trace reaches the postal provider
    assert mails_for(stack.maildir, file_id) == []
    rows = await query(
        stack.database_urls["notification"],
        "SELECT notification_id, channel, outcome, error FROM deliveries WHERE file_id = :f ORDER "
        "BY id",
        f=file_id,
    )
    by_message = collections.defaultdict(list)
    for r in rows:
        by_message[r.notification_id].append((r.channel, r.outcome))
    assert (
        list(by_message.values())
        == [[("email", "refus_definitif"), ("sms", "refus_definitif"), ("courrier", "envoye")]] * 2
    )
    # The providers' refusals, stored sealed with the citizen's key (they quote the address).
    errors = [await opened_column(stack, r.error, file_id) or "" for r in rows]
    assert any("550" in e for e in errors) and any("numero_inconnu" in e for e in errors)
    await assert_no_repeats(stack, [file_id])


async def access_proof(client, stack: Stack, file_id: str) -> str:
    """A code sent to the file's email, read there, verified: the proof intake returns (asked
    for and verified anonymously, as a citizen without an account does)."""
    asked = await client.post(f"/api/files/{file_id}/access-codes", auth=None)
    assert asked.status_code == 202, asked.text

    async def code() -> str | None:
        mails = mails_for(stack.maildir, file_id)
        for mail in mails:
            if mail["Subject"] == f"Votre dossier {file_id} : votre code d'accès":
                text = mail.get_body(("plain",)).get_content()
                return re.search(r"^\s+(\d{6})\s*$", text, re.MULTILINE).group(1)
        return None

    typed = await eventually(code, what="the access code by email")
    verified = await client.post(
        f"/api/files/{file_id}/access-codes/verify", json={"code": typed}, auth=None
    )
    assert verified.status_code == 200, verified.text
    return verified.json()["proof"]


async def test_preferences_changed_mid_way_then_thanks_and_survey(stack, client, providers, tokens):
    # The CAF holds its answer until released, so the file is still open for the changes.
    async with agency_holds(stack, "caf") as caf:
        file_id = await submit(client, email="pref.change@example.fr")

        async def referent():
            return (await client.get(f"/api/files/{file_id}")).json()["referent"]

        await eventually(referent, what="référent named")
        await caf.holding(f"{file_id}-caf")
        # Changing the contact anonymously needs the proof a code sent to the current one
        # gives (the proof's calls go without Marie's token: `auth=None`).
        anonymous = await client.put(
            f"/api/files/{file_id}/contact-preferences",
            json={"preferred_channel": "sms", "phone": "07 99 99 99 99", "postcode": "93200"},
            auth=None,
        )
        assert anonymous.status_code == 401
        proof = {"X-Access-Proof": await access_proof(client, stack, file_id)}
        early = await client.post(f"/api/files/{file_id}/survey", json={"score": 5})
        assert early.status_code == 409 and "réponse coordonnée" in early.json()["message"]
        bad = await client.put(
            f"/api/files/{file_id}/contact-preferences",
            json={"preferred_channel": "courrier", "postcode": "93200"},
            headers=proof,
            auth=None,
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["message"].startswith("Une adresse postale complète")
        changed = await client.put(
            f"/api/files/{file_id}/contact-preferences",
            json={"preferred_channel": "sms", "phone": "07 11 22 33 44", "postcode": "93200"},
            headers=proof,
            auth=None,
        )
        assert changed.status_code == 200, changed.text

        # The change reaches notification (the notice to the address left behind leaves
        # once it has) before the answer exists: an answer and a change arriving at the
        # same moment are not ordered between services, and the answer would then go by
        # the contact notification knew when it recorded it (seen once: the CAF's answer
        # reached notification 13 ms before the change did).
        async def change_noticed():
            notice = f"Votre dossier {file_id} : vos coordonnées ont été modifiées"
            return [m for m in mails_for(stack.maildir, file_id) if m["Subject"] == notice] or None

        await eventually(change_noticed, what="the change known to notification")
        await caf.release(f"{file_id}-caf")  # the CAF held the file's request all along

    view = await eventually(lambda: answered_view(client, file_id), what="answer after the change")
    referent = view["referent"]

    async def answer_sms():
        sent = [s for s in (await providers.get("/api/sms")).json() if s["file_id"] == file_id]
        return sent or None

    [sms] = await eventually(answer_sms, what="the answer by SMS")
    assert sms["to"] == "+33711223344"
    assert referent["name"] in sms["text"] and referent["phone"] in sms["text"]
    assert f"/dossiers/{file_id}" in sms["text"]  # the survey's link
    # By email: the référent's name, the code, and the notice to the address left behind.
    assert sorted(m["Subject"] for m in mails_for(stack.maildir, file_id)) == sorted(
        [
            f"Votre dossier {file_id} : {referent['name']} est votre référent",
            f"Votre dossier {file_id} : votre code d'accès",
            f"Votre dossier {file_id} : vos coordonnées ont été modifiées",
        ]
    )

    survey = await client.post(
        f"/api/files/{file_id}/survey", json={"score": 4, "referent_reachable": True}
    )
    assert survey.status_code == 201
    again = await client.post(f"/api/files/{file_id}/survey", json={"score": 5})
    assert again.status_code == 409
    invalid = await client.post(f"/api/files/{file_id}/survey", json={"score": 9})
    assert (
        invalid.json()["errors"][0]["message"] == "Note invalide : un nombre de 1 à 5 est attendu."
    )

    thanks = await client.post(
        f"/api/files/{file_id}/thanks", json={"message": "Merci infiniment pour votre aide."}
    )
    assert thanks.status_code == 201 and referent["name"] in thanks.json()["message"]
    assert (
        await client.post(f"/api/files/{file_id}/thanks", json={"message": "Encore merci !"})
    ).status_code == 409

    async def thanked_by_mail():
        mails = [m for m in mails_for(stack.maildir, file_id) if m["To"] == referent["email"]]
        return mails or None

    [mail] = await eventually(thanked_by_mail, what="the référent's thanks email")
    assert (
        "Merci infiniment pour votre aide."
        in mail.get_body(preferencelist=("plain",)).get_content()
    )
    agent_id = (
        await query(
            stack.database_urls["assignment"],
            "SELECT referent_id FROM files WHERE file_id = :f",
            f=file_id,
        )
    )[0].referent_id
    listed = (
        await client.get(f"/api/agents/{agent_id}/thanks", headers=tokens.agent_id(agent_id))
    ).json()
    assert listed["agent_name"] == referent["name"]
    # This file's thanks, once (the référent may hold other tests' thanks on a shared stack).
    assert [(t["file_id"], t["message"]) for t in listed["thanks"] if t["file_id"] == file_id] == [
        (file_id, "Merci infiniment pour votre aide.")
    ]
    await assert_no_repeats(stack, [file_id])


async def _records(stack: Stack, topic: str, file_id: str) -> list:
    consumer = AIOKafkaConsumer(
        f"{stack.namespace}{topic}",
        **client_options(stack.kafka_bootstrap),
        group_id=f"reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found = []
    try:

        async def read():
            batch = await consumer.getmany(timeout_ms=500)
            found.extend(r for rs in batch.values() for r in rs if r.key == file_id.encode())
            return found or None

        await eventually(read, timeout=30, what=f"{topic} record of {file_id}")
    finally:
        await consumer.stop()
    return found


async def test_a_redelivered_event_sends_nothing_twice(stack, client, providers):
    files = {
        "email": await submit(client, email="redelivery@example.fr"),
        "sms": await submit(client, preferred_channel="sms"),
        "courrier": await submit(client, preferred_channel="courrier", **ADDRESS),
    }
    for file_id in files.values():
        await eventually(lambda f=file_id: answered_view(client, f), what="answer")

    async def delivered() -> dict:
        """What the doubles hold of these files (the shared stack holds other tests' too)."""
        return {
            "mail": sorted(
                m["Message-ID"] for f in files.values() for m in mails_for(stack.maildir, f)
            ),
            "sms": sorted(
                s["id"] for s in (await providers.get("/api/sms")).json() if s["file_id"] in mine
            ),
            "letters": sorted(
                x["id"]
                for x in (await providers.get("/api/letters")).json()
                if x["file_id"] in mine
            ),
        }

    mine = set(files.values())
    before_copies = await delivered()
    fresh_ids = []

    producer = AIOKafkaProducer(**client_options(stack.kafka_bootstrap))
    await producer.start()
    try:
        for file_id in files.values():
            for topic in ("referents.assigned", "files.answered"):
                found_records = await _records(stack, topic, file_id)
                # One event (the relay may have published it twice, under one event id).
                [record] = {json.loads(r.value)["event_id"]: r for r in found_records}.values()
                # The same record again (a redelivery), and the same fact under a new event id.
                fresh = json.loads(record.value) | {"event_id": str(uuid.uuid4())}
                fresh_ids.append(fresh["event_id"])
                for value in (record.value, json.dumps(fresh).encode()):
                    await producer.send_and_wait(
                        record.topic, value, key=record.key, headers=list(record.headers)
                    )
    finally:
        await producer.stop()

    async def all_consumed():
        # The exact copies are dropped by the inbox; the six new event ids each leave a row,
        # and each comes after its copy on the same partition.
        ids = ",".join(f"'{e}'" for e in fresh_ids)
        inbox_sql = f"SELECT count(*) AS n FROM inbox WHERE event_id IN ({ids})"
        return (await query(stack.database_urls["notification"], inbox_sql))[0].n == 6

    await eventually(all_consumed, what="the redelivered events consumed")
    # Every event handled, published and sent: a (wrong) second send would have happened.
    await wait_quiescent(stack)

    assert await delivered() == before_copies
    assert len(mails_for(stack.maildir, files["email"])) == 2
    sms = [s for s in (await providers.get("/api/sms")).json() if s["file_id"] == files["sms"]]
    letters = [
        x for x in (await providers.get("/api/letters")).json() if x["file_id"] == files["courrier"]
    ]
    assert len(sms) == 2 and len(letters) == 2
    await assert_no_repeats(stack, files.values())


async def test_notification_killed_mid_way_sends_each_message_once(stack, client, providers):
    kinds = ["email", "sms", "courrier"]
    file_ids = []
    for i in range(12):
        channel = kinds[i % 3]
        extra = ADDRESS if channel == "courrier" else {}
        file_ids.append(
            await submit(client, preferred_channel=channel, email=f"crash{i}@example.fr", **extra)
        )
        if i == 5:
            stack.kill("notification")  # SIGKILL while messages are being sent
    await asyncio.to_thread(stack.restart, "notification")
    for file_id in file_ids:
        await eventually(
            lambda f=file_id: answered_view(client, f), timeout=90, what=f"answer for {file_id}"
        )

    placeholders = ",".join(f"'{f}'" for f in file_ids)
    sent = await query(
        stack.database_urls["notification"],
        f"SELECT notification_id, count(*) AS n FROM deliveries WHERE outcome = 'envoye' "
        f"AND file_id IN ({placeholders}) GROUP BY notification_id",
    )
    assert len(sent) == 24 and {r.n for r in sent} == {1}
    sms = collections.Counter(s["file_id"] for s in (await providers.get("/api/sms")).json())
    letters = collections.Counter(
        x["file_id"] for x in (await providers.get("/api/letters")).json()
    )
    for i, file_id in enumerate(file_ids):
        got = {
            "email": len({m["Message-ID"] for m in mails_for(stack.maildir, file_id)}),
            "sms": sms[file_id],
            "courrier": letters[file_id],
        }
        expected = {k: (2 if k == kinds[i % 3] else 0) for k in kinds}
        assert got == expected, (file_id, got)

    # The one window left (docs/notifications.md, "Never twice"): the SIGKILL landing after a
    # provider accepted a message and before its row was marked sent. The message then goes
    # again with the same key. The SMS gateway and the postal service deliver a key once
    # (counted above) and report the repeated call; SMTP has no way to ask whether a message
    # arrived, so a real relay delivers the email twice, and the sink stores and reports it.
    # Bound: only the messages in flight at the kill, each sent at most once more; nothing
    # else (no agency) sees a repeat.
    found = await repeats(stack, file_ids)
    for kind, count in (("mail", "copies"), ("sms", "calls"), ("letters", "calls")):
        assert all(r[count] == 2 for r in found[kind]), found[kind]
        assert len(found[kind]) <= IN_FLIGHT, found[kind]
    assert not any(found[agency] for agency in stack.ports.simulators), found
    # Every email repeat the sink stored is one it reports (counted here in its maildir, for
    # these files: the shared stack holds other tests' mail too).
    stored = collections.Counter(
        m["Message-ID"] for file_id in file_ids for m in mails_for(stack.maildir, file_id)
    )
    stored_twice = sorted(message_id for message_id, n in stored.items() if n > 1)
    assert stored_twice == sorted(r["message_id"] for r in found["mail"])
    if any(found.values()):
        warnings.warn(f"SIGKILL inside the send/commit window: repeated {found}", stacklevel=1)


async def test_beyond_three_codes_a_429_and_the_sink_holds_exactly_three(stack, client):
    """Issue 18 §4: a file is sent at most 3 access codes in 15 minutes. The fourth and
    fifth asks are refused over HTTP (429, French, Retry-After) and the SMTP sink, which
    stores every message it receives, repeats included, holds exactly the three codes."""
    file_id = await submit(client, email="codes.limit@example.fr")
    url = f"/api/files/{file_id}/access-codes"

    sent = [await client.post(url, auth=None) for _ in range(3)]
    refused = [await client.post(url, auth=None) for _ in range(2)]

    assert [r.status_code for r in sent] == [202, 202, 202], [r.text for r in sent]
    for answer in refused:
        assert answer.status_code == 429, answer.text
        assert answer.json() == {
            "message": "Plusieurs codes vous ont déjà été envoyés : utilisez le dernier reçu ou "
            "réessayez dans 15 minutes.",
            "kind": "too_many",
        }
        assert 1 <= int(answer.headers["Retry-After"]) <= 900

    subject = f"Votre dossier {file_id} : votre code d'accès"

    def codes_in_sink() -> list:
        return [m for m in mails_for(stack.maildir, file_id) if m["Subject"] == subject]

    async def three_delivered() -> bool:
        return len(codes_in_sink()) >= 3

    await eventually(three_delivered, what="the three codes in the SMTP sink")
    # Quiescent: intake created three codes and published them all (its outbox is empty of
    # them), notification sent three code messages and has none left to send.
    assert (
        await query(
            stack.database_urls["intake"],
            "SELECT count(*) FROM access_codes WHERE file_id = :f",
            f=file_id,
        )
    )[0][0] == 3

    async def drained() -> bool:
        left = await query(
            stack.database_urls["intake"],
            "SELECT count(*) FROM outbox WHERE topic LIKE '%access-codes.issued' AND key = :f",
            f=file_id,
        )
        statuses = await query(
            stack.database_urls["notification"],
            "SELECT status, count(*) FROM notifications WHERE file_id = :f AND kind = "
            "'access_code' GROUP BY status",
            f=file_id,
        )
        return left[0][0] == 0 and dict(statuses) == {"envoye": 3}

    await eventually(drained, what="no code left in flight")
    assert len(codes_in_sink()) == 3
    await assert_no_repeats(stack, [file_id])
