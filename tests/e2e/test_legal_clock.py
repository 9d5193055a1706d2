"""The legal clock on real processes and a controllable date, on SQLite and on
PostgreSQL: the real broker, every service, one simulated system per agency, the SMTP
sink and the postal service. "Today" is the date in one file every service reads
(`CLOCK_FILE`); the test moves it and the assignment's housekeeping (every half second
here) does the rest.

Covered: agencies that never answer — acceptance by silence (DGFiP) and rejection by
silence (CAF), both after two months counted date to date — reach the citizen as letters
naming the référent, and the coordinated answer follows — with the J-15, J-7 and breach
messages each issued and sent exactly once although the assignment service is killed
(SIGKILL) twice on the way; and a suspension while the CPAM (a period of 30 days) waits
for a document, which no breach crosses, then the resumption with the due date pushed by
the suspended days; and a document the CPAM finds incomplete: asked again (the citizen
and the référent told once more, once), suspended again, and the complete document
restarts the whole period; and France Travail deciding without ever calling back
(reconciliation slowed): five days after its acknowledgement the request is listed to the
supervisor, shown on the référent's file and counted by the adapter's overdue gauge
(issue 17 §3).

The fallback chain and "no duplicate message after a redelivery" are covered on the same
kind of stack in tests/e2e/test_channels.py.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import re

import httpx
import pytest

from devstack.stack import Stack
from guichet_runtime.tls_context import client_tls
from tests.e2e.legal_clock_support import (
    PDF,
    agencies_of,
    clock_history,
    deadline_events,
    deadline_mails,
    flat,
    letter_text,
    once_each,
    send_document_and_see_due,
    set_fault,
    settle,
    settle_and_count,
    today,
)
from tests.e2e.support import (
    answered_view,
    assert_no_repeats,
    citizen_client,
    eventually,
    file_body,
    mails_for,
)

pytestmark = pytest.mark.integration

ADDRESS = {"street": "8 allée des Tilleuls", "city": "Bobigny", "postcode": "93000"}


@pytest.fixture
def stack(clock_stack) -> Stack:
    """The session's stack on a controllable date (tests/e2e/conftest.py), on each backend."""
    return clock_stack


@pytest.fixture
async def client(stack, tokens):
    """Marie's client of intake: she submits the files, and reads them."""
    async with citizen_client(stack, tokens) as c:
        yield c


async def test_silent_agencies_decide_by_silence_with_each_warning_once_across_crashes(
    stack: Stack, client
):
    # The DGFiP (silence means acceptance) and the CAF (silence means rejection) take the
    # request and never decide; France Travail answers as usual.
    for agency in ("dgfip", "caf"):
        await set_fault(stack, agency, "silent")
    try:
        response = await client.post("/api/files", json=file_body("perte_emploi", **ADDRESS))
        assert response.status_code == 201, response.text
        file_id = response.json()["file_id"]

        async def clocks_running():
            agencies = await agencies_of(client, file_id)
            running = all(agencies[a]["deadline"] for a in ("dgfip", "caf"))
            return (
                agencies if running and agencies["france_travail"]["status"] == "repondu" else None
            )

        agencies = await eventually(
            clocks_running, what="both legal clocks running, France Travail answered"
        )
    finally:
        for agency in ("dgfip", "caf"):
            await set_fault(stack, agency, "ok")
    received = today(stack)
    assert received == dt.date(2027, 3, 1)
    # Both declare two months (CRPA L231-1), counted date to date: 1 March -> 1 May.
    due = dt.date(2027, 5, 1)
    assert agencies["dgfip"]["due_on"] == agencies["caf"]["due_on"] == "2027-05-01"
    assert agencies["dgfip"]["deadline"] == (
        "Réponse au plus tard le 01/05/2027 ; sans réponse à cette date, votre demande sera "
        "acceptée."
    )
    assert agencies["caf"]["deadline"] == (
        "Réponse au plus tard le 01/05/2027 ; sans réponse à cette date, votre demande sera "
        "rejetée (vous pourrez la contester)."
    )
    view = (await client.get(f"/api/files/{file_id}")).json()
    referent = view["referent"]
    assert view["answer"] is None

    expected: collections.Counter = collections.Counter()
    await settle(stack)
    assert deadline_mails(stack, file_id) == expected  # nothing is due yet

    # J-15: the référent is warned, once per agency.
    stack.travel_to(due - dt.timedelta(days=15))
    expected.update({("avertissement", a, "J-15", referent["email"]): 1 for a in ("CAF", "DGFiP")})
    await settle_and_count(stack, file_id, expected, "the J-15 warnings")

    # J-7 while the assignment service dies: killed one housekeeping round after the date
    # moved, whether or not that round had committed or published its warnings.
    stack.travel_to(due - dt.timedelta(days=7))
    await asyncio.sleep(0.6)
    stack.kill("assignment")
    await asyncio.to_thread(stack.restart, "assignment")
    expected.update({("avertissement", a, "J-7", referent["email"]): 1 for a in ("CAF", "DGFiP")})
    await settle_and_count(stack, file_id, expected, "the J-7 warnings")

    # The day after the last day, with the service killed again on the way.
    breach_day = dt.date(2027, 5, 2)
    stack.travel_to(breach_day)
    await asyncio.sleep(0.3)
    stack.kill("assignment")
    await asyncio.to_thread(stack.restart, "assignment")

    def decided(records):
        mine = [r for r in records if r["key"] == file_id]
        return len([r for r in mine if r["event_type"] == "ImplicitDecisionRecorded"]) >= 2

    records = once_each(r for r in await deadline_events(stack, decided) if r["key"] == file_id)
    breaches = [r["body"] for r in records if r["event_type"] == "LegalDeadlineBreached"]
    assert sorted(b["agency"] for b in breaches) == ["caf", "dgfip"]
    supervisors = {s["email"] for s in breaches[0]["supervisors"]}
    assert supervisors and all(b["referent"]["agent_id"] == referent["agent_id"] for b in breaches)
    expected.update(
        {("depassement", a, email): 1 for a in ("CAF", "DGFiP") for email in supervisors}
    )
    await settle_and_count(stack, file_id, expected, "the breach emails to the supervisors")

    # Each event issued exactly once. The relay publishes at least once: a kill between its
    # publish and its delete puts the same event (same event id) on the topic again, which
    # consumers drop; a second event id for one warning would be a real repeat.
    records = once_each(r for r in await deadline_events(stack, decided) if r["key"] == file_id)
    issued = collections.Counter(
        (r["event_type"], r["body"]["agency"], r["body"].get("threshold"))
        for r in records
        if r["event_type"] != "LegalDeadlineSet"
    )
    assert issued == collections.Counter(
        {
            (kind, agency, threshold): 1
            for agency in ("caf", "dgfip")
            for kind, threshold in (
                ("DeadlineWarningIssued", 15),
                ("DeadlineWarningIssued", 7),
                ("LegalDeadlineBreached", None),
                ("ImplicitDecisionRecorded", None),
            )
        }
    )
    implicit = {
        r["body"]["agency"]: r["body"]
        for r in records
        if r["event_type"] == "ImplicitDecisionRecorded"
    }
    assert implicit["dgfip"]["decision"] == "acceptation_implicite"
    assert implicit["caf"]["decision"] == "rejet_implicite"
    assert {b["decided_on"] for b in implicit.values()} == {"2027-05-02"}

    # The citizen: one letter per silent agency, dated on the breach day, signed by the référent.
    async with httpx.AsyncClient(
        base_url=stack.providers_url, timeout=10, verify=client_tls()
    ) as providers:

        async def two_letters():
            letters = [
                x for x in (await providers.get("/api/letters")).json() if x["file_id"] == file_id
            ]
            return letters if len(letters) >= 2 else None

        letters = await eventually(two_letters, what="the two implicit-decision letters")
        await settle(stack)
        letters = [
            x for x in (await providers.get("/api/letters")).json() if x["file_id"] == file_id
        ]
        texts = [
            letter_text((await providers.get(f"/api/letters/{x['id']}.pdf")).content)
            for x in letters
        ]
    assert len(texts) == 2
    acceptance = next(t for t in texts if "DGFiP" in t)
    rejection = next(t for t in texts if "(CAF)" in t)
    for text in (acceptance, rejection):
        assert f"Votre référent : {referent['name']}" in text and referent["phone"] in text, text
        assert "8 allée des Tilleuls" in text and "93000 BOBIGNY" in text
        assert "Le 2 mai 2027" in text  # dated on the rehearsal date (the breach day)
    assert "le silence de l'administration vaut acceptation" in acceptance
    assert "votre demande est donc acceptée depuis le 02/05/2027" in acceptance
    assert "le silence de l'administration vaut rejet" in rejection
    assert "recours gracieux" in rejection and "tribunal administratif" in rejection

    # The citizen's view, then the coordinated answer now that every agency has answered.
    view = await eventually(
        lambda: answered_view(client, file_id, notifications=2), what="the coordinated answer"
    )
    kinds = [e["kind"] for e in view["timeline"]]
    assert kinds.count("decision_implicite") == 2
    implicit_labels = {
        e["label"].split(" n'a pas")[0]: e["label"]
        for e in view["timeline"]
        if e["kind"] == "decision_implicite"
    }
    assert (
        "votre demande est acceptée implicitement"
        in implicit_labels["Direction générale des Finances publiques (DGFiP)"]
    )
    assert (
        "votre demande est rejetée implicitement"
        in implicit_labels["Caisse d'allocations familiales (CAF)"]
    )
    decisions = {d["agency"]: d["decision"] for d in view["answer"]["decisions"]}
    assert decisions["dgfip"] == "acceptation_implicite" and decisions["caf"] == "rejet_implicite"
    assert decisions["france_travail"] in ("accorde", "refuse")
    assert view["awaited"] == []
    await assert_no_repeats(stack, [file_id])  # no email, letter or request sent twice


async def test_a_suspended_clock_crosses_its_due_date_without_breach_then_resumes_pushed(
    stack: Stack, client
):
    response = await client.post(
        "/api/files", json=file_body("arret_maladie", email="suspension@example.fr")
    )
    assert response.status_code == 201, response.text
    file_id = response.json()["file_id"]
    received = today(stack)

    async def suspended():
        cpam = (await agencies_of(client, file_id))["cpam"]
        # The document request and the suspension travel on different topics: wait for both.
        return (
            cpam
            if cpam["status"] == "piece_demandee"
            and (cpam["deadline"] or "").startswith("Délai suspendu")
            else None
        )

    cpam = await eventually(suspended, what="the CPAM asks for a document, its clock suspended")
    assert cpam["deadline"] == "Délai suspendu jusqu'à réception de la pièce demandée."
    referent = (await client.get(f"/api/files/{file_id}")).json()["referent"]

    # 40 days later, past the 30-day period: still suspended, no breach, nothing sent.
    later = received + dt.timedelta(days=40)
    stack.travel_to(later)
    await settle(stack)
    assert (await agencies_of(client, file_id))["cpam"]["deadline"] == cpam["deadline"]
    assert deadline_mails(stack, file_id) == collections.Counter()

    # The document arrives; the CPAM takes it and stays silent, so the resumed clock shows:
    # the 30 days it had left run from the day of the document.
    new_due = later + dt.timedelta(days=30)
    cpam = await send_document_and_see_due(
        stack, client, file_id, new_due, "the clock resumed with the days it had left"
    )
    assert cpam["deadline"] == (
        f"Réponse au plus tard le {new_due:%d/%m/%Y} ; sans réponse à cette date, votre demande "
        "sera rejetée "
        "(vous pourrez la contester)."
    )
    assert await clock_history(stack, file_id, "reprise") == [
        ("en_cours", "reception", (received + dt.timedelta(days=30)).isoformat()),
        ("suspendu", "suspension", None),
        ("en_cours", "reprise", new_due.isoformat()),
    ]

    # The warnings follow the pushed date: J-15 of the new last day (the old one is 25 days past).
    stack.travel_to(new_due - dt.timedelta(days=15))
    await settle_and_count(
        stack,
        file_id,
        collections.Counter({("avertissement", "CPAM", "J-15", referent["email"]): 1}),
        "the J-15 warning of the resumed clock",
    )
    await assert_no_repeats(stack, [file_id])


async def test_an_incomplete_document_is_asked_again_and_restarts_the_whole_period(
    stack: Stack, client
):
    """The CPAM finds the first document incomplete: the citizen and the référent are told
    again (once each), the clock suspends again, and the complete document restarts the
    whole period from its own day (not the days that were left)."""
    await set_fault(stack, "cpam", "incomplete")
    try:
        response = await client.post(
            "/api/files", json=file_body("arret_maladie", email="incomplete@example.fr")
        )
        assert response.status_code == 201, response.text
        file_id = response.json()["file_id"]

        async def suspended():
            cpam = (await agencies_of(client, file_id))["cpam"]
            return (
                cpam
                if cpam["status"] == "piece_demandee"
                and (cpam["deadline"] or "").startswith("Délai suspendu")
                else None
            )

        await eventually(suspended, what="the CPAM asks for a document, its clock suspended")
        referent = (await client.get(f"/api/files/{file_id}")).json()["referent"]

        # Ten days later, a first document: the CPAM finds it incomplete and asks again.
        first_day = today(stack) + dt.timedelta(days=10)
        stack.travel_to(first_day)
        sent = await client.post(
            f"/api/files/{file_id}/documents",
            files={"fichier": ("attestation.pdf", PDF, "application/pdf")},
        )
        assert sent.status_code == 201, sent.text

        async def asked_again():
            view = (await client.get(f"/api/files/{file_id}")).json()
            cpam = next(a for a in view["agencies"] if a["agency"] == "cpam")
            again = [t for t in view["timeline"] if "juge incomplète" in t["label"]]
            ready = (
                cpam["status"] == "piece_demandee"
                and again
                and (cpam["deadline"] or "").startswith("Délai suspendu")
            )
            return (view, again) if ready else None

        _, again = await eventually(
            asked_again, what="the document asked again, the clock suspended again"
        )
        assert "la page des salaires manque" in again[0]["label"]

        def document_mails() -> collections.Counter:
            counts: collections.Counter = collections.Counter()
            for mail in mails_for(stack.maildir, file_id):
                if "pièce justificative est demandée" in mail["Subject"]:
                    body = flat(mail.get_body(preferencelist=("plain",)).get_content())
                    assert referent["name"] in body and referent["phone"] in body
                    counts[(mail["To"], "incomplete" if "incomplète" in body else "first")] += 1
            return counts

        expected = collections.Counter(
            {
                ("incomplete@example.fr", "first"): 1,
                (referent["email"], "first"): 1,
                ("incomplete@example.fr", "incomplete"): 1,
                (referent["email"], "incomplete"): 1,
            }
        )

        async def told_twice():
            got = document_mails()
            assert not got - expected, f"unexpected or duplicate messages: {got - expected}"
            return got == expected

        await eventually(
            told_twice, timeout=30, what="citizen and référent told of each request once"
        )
    finally:
        await set_fault(stack, "cpam", "ok")

    # Five days later the complete document; the CPAM takes it and stays silent, so the
    # restarted clock shows: the whole 30 days from the day of the complete document.
    complete_day = first_day + dt.timedelta(days=5)
    stack.travel_to(complete_day)
    new_due = complete_day + dt.timedelta(days=30)
    await send_document_and_see_due(
        stack,
        client,
        file_id,
        new_due,
        "the clock restarted for the whole period",
        filename="attestation-complete.pdf",
    )
    received = first_day - dt.timedelta(days=10)
    assert await clock_history(stack, file_id, "redemarrage") == [
        ("en_cours", "reception", (received + dt.timedelta(days=30)).isoformat()),
        ("suspendu", "suspension", None),
        ("en_cours", "reprise", (first_day + dt.timedelta(days=30)).isoformat()),
        ("suspendu", "suspension", None),
        ("en_cours", "redemarrage", new_due.isoformat()),
    ]
    await settle(stack)
    assert document_mails() == expected  # nothing sent twice
    await assert_no_repeats(stack, [file_id])  # nor any document or request


async def test_a_request_without_a_decision_is_seen_by_the_supervisor_and_the_referent(
    stack: Stack, client, tokens
):
    await set_fault(stack, "france_travail", "no_callback")
    try:
        response = await client.post("/api/files", json=file_body("perte_emploi", **ADDRESS))
        assert response.status_code == 201, response.text
        file_id = response.json()["file_id"]

        async def acknowledged():
            agencies = await agencies_of(client, file_id)
            return agencies if agencies["france_travail"]["deadline"] else None

        await eventually(acknowledged, what="France Travail's receipt, its clock running")
    finally:
        await set_fault(stack, "france_travail", "ok")
    request_id = f"{file_id}-france_travail"
    received = today(stack)
    referent = (await client.get(f"/api/files/{file_id}")).json()["referent"]
    supervisor = tokens.agent("helene.marchand")  # FS-75-01 and FS-93-01 (Bobigny)
    async with httpx.AsyncClient(
        base_url=stack.assignment_url, timeout=15, verify=client_tls()
    ) as assignment:

        async def listed() -> dict | None:
            found = await assignment.get("/api/supervision/stuck-requests", headers=supervisor)
            assert found.status_code == 200, found.text
            mine = [r for r in found.json()["requests"] if r["request_id"] == request_id]
            return mine[0] if mine else None

        async def on_the_file() -> dict:
            found = await assignment.get(
                f"/api/files/{file_id}/stuck-requests",
                headers=tokens.agent_id(referent["agent_id"]),
            )
            assert found.status_code == 200, found.text
            return {r["agency"]: r for r in found.json()["requests"]}

        assert await listed() is None  # acknowledged today: not stuck yet
        assert (await on_the_file())["france_travail"]["stuck"] is False

        stack.travel_to(received + dt.timedelta(days=5))
        stuck = await listed()
        assert stuck is not None, "the supervisor does not see the request"
        assert stuck["file_id"] == file_id and stuck["agency"] == "france_travail"
        assert stuck["acknowledged_on"] == received.isoformat() and stuck["days"] == 5
        assert stuck["referent"] == referent["name"] and stuck["last_check"] is None
        france_travail = (await on_the_file())["france_travail"]
        assert france_travail["stuck"] is True and france_travail["days"] == 5
        elsewhere = await assignment.get(
            "/api/supervision/stuck-requests", headers=tokens.agent("julien.faure")
        )
        assert request_id not in {r["request_id"] for r in elsewhere.json()["requests"]}

    async with httpx.AsyncClient(
        base_url=stack.adapter_url("france_travail"), verify=client_tls()
    ) as adapter:

        async def overdue() -> float | None:
            text = (await adapter.get("/metrics")).text
            found = re.search(
                r'^adapter_requests_overdue\{agency="france_travail"\} (\S+)$', text, re.M
            )
            return float(found.group(1)) if found and float(found.group(1)) >= 1 else None

        await eventually(overdue, timeout=30, what="the adapter's overdue gauge")
