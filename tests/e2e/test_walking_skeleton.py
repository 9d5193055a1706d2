"""The walking skeleton, end to end on real processes: a real Kafka broker, every
service, the agency simulator and the SMTP sink; once on SQLite, once on PostgreSQL."""

from __future__ import annotations

import asyncio
import collections
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.kafka_sasl import client_options
from devstack.stack import Stack
from tests.e2e.hold_support import agency_holds
from tests.e2e.support import (
    BACKENDS,
    answered_view,
    assert_no_repeats,
    citizen_client,
    client_as,
    eventually,
    file_body,
    mails_for,
    query,
    repeats,
    simulator,
    spans,
)

pytestmark = pytest.mark.integration

ALL_SERVICES = {
    "intake",
    "assignment",
    "notification",
    "adapter-caf",
    "adapter-dgfip",
    "adapter-france-travail",
    "adapter-cpam",
}


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request, shared_stack):
    """The session's stack on each backend (tests/e2e/conftest.py)."""
    return shared_stack(request.param)


@pytest.fixture
async def client(stack, tokens):
    """Marie's client of intake: she submits the files, and reads them."""
    async with citizen_client(stack, tokens) as c:
        yield c


@pytest.fixture
async def fresh(stack, tokens):
    """The client of a citizen of their own (a fresh account): no file of theirs before."""
    async with citizen_client(stack, tokens, f"nouveau.{uuid.uuid4().hex[:8]}") as c:
        yield c


async def test_one_file_crosses_three_agencies_with_one_named_referent(stack: Stack, client):
    response = await client.post("/api/files", json=file_body())
    assert response.status_code == 201, response.text
    file_id = response.json()["file_id"]
    trace_id = response.headers["X-Trace-Id"]

    view = await eventually(lambda: answered_view(client, file_id), what="coordinated answer")

    # The citizen's view: one named référent, every agency answered, one answer.
    referent = view["referent"]
    assert referent["name"] and referent["office"].startswith("France Services")
    assert referent["phone"] and referent["email"].endswith("@france-services.gouv.fr")
    assert {a["agency"]: a["status"] for a in view["agencies"]} == {
        "caf": "repondu",
        "dgfip": "repondu",
        "france_travail": "repondu",
    }
    assert view["status"] == "repondu"
    assert (
        referent["name"] in view["answer"]["text"] and referent["phone"] in view["answer"]["text"]
    )
    assert {d["agency"] for d in view["answer"]["decisions"]} == {"caf", "dgfip", "france_travail"}
    kinds = collections.Counter(e["kind"] for e in view["timeline"])
    # The exchange ledger: request and answer for the CAF and the DGFiP, request,
    # acknowledgement and callback for France Travail.
    assert kinds == {
        "depot": 1,
        "referent": 1,
        "transmission": 3,
        "reponse_organisme": 3,
        "reponse_coordonnee": 1,
        "notification": 2,
        "echange": 7,
    }
    assert view["awaited"] == []

    # Every service's own final state.
    urls = stack.database_urls
    rows = await query(
        urls["assignment"], "SELECT status, referent_id FROM files WHERE file_id = :f", f=file_id
    )
    assert [r.status for r in rows] == ["repondu"]
    agent = await query(
        urls["assignment"], "SELECT name FROM agents WHERE agent_id = :a", a=rows[0].referent_id
    )
    assert agent[0].name == referent["name"]
    requests = await query(
        urls["assignment"],
        "SELECT agency, status FROM agency_requests WHERE file_id = :f",
        f=file_id,
    )
    assert sorted((r.agency, r.status) for r in requests) == [
        ("caf", "repondue"),
        ("dgfip", "repondue"),
        ("france_travail", "repondue"),
    ]
    assert (
        len(
            await query(
                urls["assignment"], "SELECT id FROM assignments WHERE file_id = :f", f=file_id
            )
        )
        == 1
    )
    sent = await query(
        urls["notification"], "SELECT kind, status FROM notifications WHERE file_id = :f", f=file_id
    )
    assert sorted((r.kind, r.status) for r in sent) == [
        ("answer_ready", "envoye"),
        ("referent_assigned", "envoye"),
    ]
    for adapter in ("adapter-caf", "adapter-dgfip", "adapter-france-travail"):
        assert len(await query(urls[adapter], "SELECT event_id FROM inbox")) >= 1
    for service in ALL_SERVICES:

        async def drained(url=urls[service]):
            return (await query(url, "SELECT count(*) AS n FROM outbox"))[0].n == 0

        await eventually(drained, what=f"{service} outbox drained")
    async with simulator(stack, "caf") as sim:
        received = (await sim.get("/agencies/caf/received")).json()
    assert any(r["file_id"] == file_id for r in received)
    await assert_no_repeats(stack, [file_id])

    # The emails, through the real SMTP server, name the référent.
    mails = mails_for(stack.maildir, file_id)
    assert sorted(m["Subject"] for m in mails) == sorted(
        [
            f"Votre dossier {file_id} : {referent['name']} est votre référent",
            f"Votre dossier {file_id} : la réponse coordonnée est prête",
        ]
    )
    for mail in mails:
        body = mail.get_body(preferencelist=("plain",)).get_content()
        assert mail["To"] == "marie.dupont@example.fr"
        assert referent["name"] in body and referent["phone"] in body and referent["office"] in body
        # One trace from the POST to the email.
        assert mail["traceparent"].split("-")[1] == trace_id

    async def traced_services():
        found = {s["service"] for s in spans(stack.spans_dir) if s["trace_id"] == trace_id}
        return (
            found
            if {
                "intake",
                "assignment",
                "adapter-caf",
                "adapter-dgfip",
                "adapter-france-travail",
                "notification",
            }
            <= found
            else None
        )

    found = await eventually(traced_services, timeout=15, what="spans of every hop in one trace")
    assert "adapter-cpam" not in found  # not concerned by a job loss


async def test_bad_input_is_refused_in_french_and_nothing_is_stored(stack: Stack, client):
    before = (await query(stack.database_urls["intake"], "SELECT count(*) AS n FROM files"))[0].n
    body = file_body(life_event="mariage", email="pas-une-adresse", postcode="9320")
    del body["citizen"]["given_name"]
    response = await client.post("/api/files", json=body)
    assert response.status_code == 422
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert errors["citizen.given_name"] == "Ce champ est obligatoire."
    assert errors["citizen.email"] == "Adresse électronique invalide."
    assert errors["citizen.postcode"] == "Code postal invalide : 5 chiffres attendus."
    assert errors["life_event"].startswith("Événement de vie inconnu")
    assert response.json()["message"] == "Certaines informations sont manquantes ou invalides."

    broken = await client.post(
        "/api/files", content=b"{pas du json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    assert (
        broken.json()["errors"][0]["message"] == "Le corps de la requête n'est pas un JSON valide."
    )
    assert (
        (await client.get("/api/files/GU-0000-INCONNU"))
        .json()["message"]
        .startswith("Aucun dossier")
    )
    after = (await query(stack.database_urls["intake"], "SELECT count(*) AS n FROM files"))[0].n
    assert after == before


async def test_a_retried_post_with_the_same_idempotency_key_returns_the_same_file(
    stack: Stack, client
):
    key = f"essai-{uuid.uuid4()}"
    first = await client.post(
        "/api/files", json=file_body("naissance"), headers={"Idempotency-Key": key}
    )
    again = await client.post(
        "/api/files", json=file_body("naissance"), headers={"Idempotency-Key": key}
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["file_id"] == again.json()["file_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await client.post(
        "/api/files", json=file_body("demenagement"), headers={"Idempotency-Key": key}
    )
    assert other.status_code == 409
    rows = await query(
        stack.database_urls["intake"], "SELECT file_id FROM files WHERE idempotency_key = :k", k=key
    )
    assert len(rows) == 1


async def test_a_service_killed_mid_flow_loses_nothing_and_duplicates_nothing(stack: Stack, client):
    bodies = [
        file_body(
            ("perte_emploi", "naissance", "demenagement")[i % 3], email=f"citoyen{i}@example.fr"
        )
        for i in range(24)
    ]
    file_ids = []
    for i, body in enumerate(bodies):
        response = await client.post("/api/files", json=body)
        assert response.status_code == 201
        file_ids.append(response.json()["file_id"])
        if i == 8:
            stack.kill("assignment")  # SIGKILL while files are in flight
        if i == 16:
            stack.kill("adapter-caf")
    await asyncio.to_thread(stack.restart, "assignment")
    await asyncio.to_thread(stack.restart, "adapter-caf")

    for file_id in file_ids:
        await eventually(
            lambda f=file_id: answered_view(client, f), timeout=90, what=f"answer for {file_id}"
        )

    urls = stack.database_urls
    placeholders = ",".join(f"'{f}'" for f in file_ids)
    assignments = await query(
        urls["assignment"], f"SELECT file_id FROM assignments WHERE file_id IN ({placeholders})"
    )
    assert sorted(r.file_id for r in assignments) == sorted(file_ids)  # exactly one référent each
    answers = await query(
        urls["intake"],
        f"SELECT file_id, count(*) AS n FROM timeline WHERE kind = 'reponse_coordonnee' "
        f"AND file_id IN ({placeholders}) GROUP BY file_id",
    )
    assert {r.file_id: r.n for r in answers} == dict.fromkeys(file_ids, 1)
    for file_id in file_ids:
        subjects = collections.Counter(m["Subject"] for m in mails_for(stack.maildir, file_id))
        assert len(subjects) == 2 and set(subjects.values()) == {1}, (file_id, subjects)
    # Notification was not killed: no message twice. The CAF's adapter was: a request it had
    # sent when SIGKILL came, before committing, goes again with the same request id, which
    # the agency takes as the same request (docs/adapters.md). The simulator counts such a
    # repeat; the bound: only at the CAF, each request at most once more.
    found = await repeats(stack, file_ids)
    assert not any(v for k, v in found.items() if k != "caf"), {k: v for k, v in found.items() if v}
    assert all(r["calls"] == 2 for r in found["caf"]), found["caf"]
    # and no agent above capacity
    over = await query(
        urls["assignment"], "SELECT agent_id FROM agents WHERE active_files > capacity"
    )
    assert over == []


async def test_a_malformed_event_is_dead_lettered_and_the_next_one_processed(stack: Stack, client):
    topic = f"{stack.namespace}files.submitted"
    producer = AIOKafkaProducer(**client_options(stack.kafka_bootstrap))
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            b'{"file_id": "GU-CASSE", "life_event": 42',
            key=b"GU-CASSE",
            headers=[("event_type", b"FileSubmitted")],
        )
        await producer.send_and_wait(
            topic, b"{}", key=b"GU-INCONNU", headers=[("event_type", b"FileExploded")]
        )
    finally:
        await producer.stop()
    response = await client.post(
        "/api/files", json=file_body("naissance", email="apres.le.poison@example.fr")
    )
    file_id = response.json()["file_id"]
    await eventually(lambda: answered_view(client, file_id), what="the valid file after the poison")

    consumer = AIOKafkaConsumer(
        f"{topic}.dlq",
        **client_options(stack.kafka_bootstrap),
        group_id=f"dlq-reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        parked = {}

        async def read_dlq():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    parked[r.key] = {k: v.decode() for k, v in r.headers} | {"body": r.value}
            return parked if {b"GU-CASSE", b"GU-INCONNU"} <= parked.keys() else None

        await eventually(read_dlq, timeout=30, what="dead-lettered records")
    finally:
        await consumer.stop()
    poison = parked[b"GU-CASSE"]
    assert poison["body"] == b'{"file_id": "GU-CASSE", "life_event": 42'
    assert poison["dlq_reason"].startswith("événement invalide")
    assert poison["dlq_consumer"] == "assignment"
    assert poison["dlq_source_topic"] == topic
    assert "FileExploded" in parked[b"GU-INCONNU"]["dlq_reason"]
    rows = await query(
        stack.database_urls["assignment"], "SELECT file_id FROM files WHERE file_id = 'GU-CASSE'"
    )
    assert rows == []


async def test_the_citizen_asks_for_another_referent_once_and_everyone_is_told(
    stack: Stack, fresh, tokens
):
    # A citizen with no other file: the first référent is chosen by proximity (continuity
    # would keep the référent of another file of theirs: their files share one data key).
    # The CAF holds its answer until released, so the file is still open when the citizen asks.
    async with agency_holds(stack, "caf") as caf:
        response = await fresh.post(
            "/api/files", json=file_body("naissance", email="changement@example.fr")
        )
        file_id = response.json()["file_id"]

        async def first_referent():
            return (await fresh.get(f"/api/files/{file_id}")).json()["referent"]

        first = await eventually(first_referent, what="first référent")
        await caf.holding(f"{file_id}-caf")
        reason = "Je ne parviens pas à joindre mon référent."
        granted = await fresh.post(f"/api/files/{file_id}/referent-change", json={"reason": reason})
        assert granted.status_code == 202, granted.text
        again = await fresh.post(f"/api/files/{file_id}/referent-change", json={"reason": reason})
        assert again.status_code == 409 and "déjà été accordé" in again.json()["message"]
        short = await fresh.post(f"/api/files/{file_id}/referent-change", json={"reason": "non"})
        assert short.status_code == 422

        async def new_referent():
            named = (await fresh.get(f"/api/files/{file_id}")).json()["referent"]
            return named if named and named["name"] != first["name"] else None

        # The change is made while the file is open; only then does the CAF answer. (Released
        # at once, its answer raced the change: assignment took both in one batch once, the
        # answer first, and a file answered keeps its référent.)
        await eventually(new_referent, what="the new référent, the file still open")
        await caf.release(f"{file_id}-caf")  # the CAF held the file's request all along

    view = await eventually(
        lambda: answered_view(fresh, file_id, notifications=3), what="answer after the change"
    )
    new = view["referent"]
    assert new["name"] != first["name"]
    assert new["name"] in view["answer"]["text"]  # the answer is signed by the new référent
    labels = [e["label"] for e in view["timeline"]]
    assert any(reason in label for label in labels)
    assert any(label.startswith(f"Votre nouveau référent est {new['name']}") for label in labels)

    async def all_mails():
        mails = mails_for(stack.maildir, file_id)
        return mails if len(mails) == 5 else None

    mails = await eventually(all_mails, what="citizen's three emails and both agents' handover")
    to = collections.Counter(m["To"] for m in mails)
    assert to == {"changement@example.fr": 3, first["email"]: 1, new["email"]: 1}
    changed = next(m for m in mails if "nouveau référent" in m["Subject"])
    body = changed.get_body(preferencelist=("plain",)).get_content()
    assert new["name"] in body and new["phone"] in body and first["name"] in body and reason in body
    record = (
        await fresh.get(
            f"http://127.0.0.1:{stack.ports.assignment}/api/files/{file_id}/assignment",
            headers=tokens.agent_id(new["agent_id"]),  # the file's (new) référent
        )
    ).json()
    assert [h["rule"] for h in record["history"]] == ["proximite", "changement_demande"]


PDF = b"%PDF-1.4\n% attestation de salaire\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def test_the_referents_word_goes_with_the_answer_and_a_message_reaches_the_citizen_once(
    stack: Stack, client, tokens
):
    # A sick leave: the CPAM waits for the salary certificate, so the file stays open.
    created = await client.post(
        "/api/files", json=file_body("arret_maladie", email="mot.personnel@example.fr")
    )
    file_id = created.json()["file_id"]

    async def document_asked():
        view = (await client.get(f"/api/files/{file_id}")).json()
        return view if any(a["status"] == "piece_demandee" for a in view["agencies"]) else None

    referent = (await eventually(document_asked, what="the CPAM asks for a document"))["referent"]
    agent = referent["agent_id"]

    word = "Je sais que cet arrêt tombe mal : passez me voir sans rendez-vous si besoin."
    as_referent = tokens.agent_id(agent)
    async with client_as(stack.assignment_url, lambda: tokens.agent_id(agent)) as assignment:
        # The author of the word and of the message: the référent's token.
        put = await assignment.put(f"/api/files/{file_id}/personal-word", json={"text": word})
        assert put.status_code == 200, put.text
        message = {"text": "Bonjour, votre attestation de salaire est attendue par la CPAM."}
        headers = {"Idempotency-Key": f"desk-{file_id}", **as_referent}
        first = await client.post(f"/api/files/{file_id}/messages", json=message, headers=headers)
        retried = await client.post(f"/api/files/{file_id}/messages", json=message, headers=headers)
        assert first.status_code == retried.status_code == 201, first.text
        assert first.json()["message_id"] == retried.json()["message_id"]

        sent = await client.post(
            f"/api/files/{file_id}/documents", files={"fichier": ("a.pdf", PDF, "application/pdf")}
        )
        assert sent.status_code == 201, sent.text
        # referent assigned, document requested, message, answer
        view = await eventually(
            lambda: answered_view(client, file_id, notifications=4), what="answer with the word"
        )
        late = await assignment.put(
            f"/api/files/{file_id}/personal-word", json={"text": "Encore ?"}
        )
        assert late.status_code == 409 and "déjà partie" in late.json()["message"]

    assert view["answer"]["personal_word"] == word and word in view["answer"]["text"]

    async def delivered():
        listed = (await client.get(f"/api/files/{file_id}/messages")).json()
        return listed if listed and listed[0]["delivered_at"] else None

    [listed] = await eventually(delivered, what="the message reported delivered")
    assert listed["channel"] == "email"

    mails = mails_for(stack.maildir, file_id)
    answers = [m for m in mails if m["Subject"].endswith("la réponse coordonnée est prête")]
    notes = [
        m
        for m in mails
        if m["Subject"] == f"Votre dossier {file_id} : un message de {referent['name']}"
    ]
    assert len(answers) == 1 and len(notes) == 1  # the retried POST sent nothing more
    await assert_no_repeats(stack, [file_id])  # nor did anything reach a double twice
    answer = answers[0].get_body(preferencelist=("plain",)).get_content()
    html = answers[0].get_body(preferencelist=("html",)).get_content()
    assert word in answer and word.replace("'", "&#39;") in html
    block = answer.split("Je reste votre interlocuteur", 1)[1]
    for part in (
        referent["name"],
        referent["office"],
        f"Téléphone direct : {referent['phone']}",
        f"Courriel : {referent['email']}",
        "Accueil : ",
    ):
        assert part in block, part
    note = notes[0].get_body(preferencelist=("plain",)).get_content()
    assert message["text"] in note and referent["phone"] in note and referent["email"] in note
