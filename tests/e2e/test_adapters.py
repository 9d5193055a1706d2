"""The agency adapters on real processes (real broker, every service, one simulated system
per agency): missing documents end to end, minimisation, the exchange ledger, duplicate and
colliding callbacks, silent agencies reconciled by status polls, forged and replayed callbacks
refused, faults ending in the dead-letter topic, an agency down longer than the retries."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid

import pytest

from adapter_sdk import signatures
from devstack.quiescence import wait_quiescent
from devstack.stack import Stack
from shared_models import topics
from tests.e2e.adapters_support import (
    OUTAGE_SECONDS,
    PDF,
    adapters_stack,
    agency_calls,
    agency_status,
    assert_outlived_the_retries,
    france_travail_decision,
    france_travail_received,
    submit,
    when,
)
from tests.e2e.support import (
    answered_view,
    assert_no_repeats,
    citizen_client,
    client_of,
    eventually,
    file_body,
    mails_for,
    query,
    read_topic,
    simulator,
)
from tests.personal_data import MAY_RECEIVE, PROBED_FIELDS, leaks

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, keycloak, tmp_path_factory):
    st = adapters_stack(
        kafka_bootstrap, tmp_path_factory.mktemp("stack-adapters"), keycloak.issuers
    )
    st.start()
    yield st
    st.stop()


@pytest.fixture
async def client(stack, tokens):
    """Marie's client of intake: she submits the files, and reads them."""
    async with citizen_client(stack, tokens) as c:
        yield c


async def test_a_missing_document_goes_from_the_agency_to_the_citizen_and_back(
    stack: Stack, client
):
    file_id = await submit(client, "arret_maladie", email="arret.maladie@example.fr")

    async def document_asked():
        agencies = await agency_status(client, file_id)
        return (
            agencies
            if agencies["cpam"]["status"] == "piece_demandee"
            and agencies["caf"]["status"] == "repondu"
            else None
        )

    agencies = await eventually(document_asked, what="the CPAM asks for a document")
    assert agencies["cpam"]["requested_document"]["code"] == "attestation_salaire"
    view = (await client.get(f"/api/files/{file_id}")).json()
    assert view["answer"] is None
    assert view["awaited"] == ["Caisse primaire d'assurance maladie (CPAM)"]
    referent = view["referent"]

    # The citizen and the référent are told, by a message that names the référent.
    async def two_mails():
        mails = [
            m for m in mails_for(stack.maildir, file_id) if "pièce justificative" in m["Subject"]
        ]
        return mails if len(mails) == 2 else None

    mails = {
        m["To"]: m.get_body(preferencelist=("plain",)).get_content()
        for m in await eventually(two_mails, what="mails")
    }
    assert set(mails) == {"arret.maladie@example.fr", referent["email"]}
    citizen_mail = mails["arret.maladie@example.fr"]
    assert (
        "Attestation de salaire" in citizen_mail
        and referent["name"] in citizen_mail
        and referent["phone"] in citizen_mail
    )

    # Bad uploads are refused in French, and nothing is sent.
    not_a_pdf = await client.post(
        f"/api/files/{file_id}/documents",
        files={"fichier": ("a.pdf", b"MZ\x90\x00", "application/pdf")},
    )
    assert not_a_pdf.status_code == 415 and "PDF" in not_a_pdf.json()["message"]
    too_big = await client.post(
        f"/api/files/{file_id}/documents",
        files={"fichier": ("a.pdf", PDF + b"0" * 600_000, "application/pdf")},
    )
    assert too_big.status_code == 413 and "512 Ko" in too_big.json()["message"]
    sent = await client.post(
        f"/api/files/{file_id}/documents",
        files={"fichier": ("attestation.pdf", PDF, "application/pdf")},
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["agency"] == "cpam"
    again = await client.post(
        f"/api/files/{file_id}/documents",
        files={"fichier": ("attestation.pdf", PDF, "application/pdf")},
    )
    assert again.status_code == 409 and "Aucun organisme" in again.json()["message"]

    # The adapter forwards it, the CPAM decides, the one answer is composed.
    view = await eventually(
        lambda: answered_view(client, file_id, notifications=3),
        timeout=60,
        what="answer after the document",
    )
    assert {d["agency"] for d in view["answer"]["decisions"]} == {"caf", "cpam"}
    async with simulator(stack, "cpam") as sim:
        delivered = [
            d
            for d in (await sim.get("/agencies/cpam/documents")).json()
            if d["request_id"] == f"{file_id}-cpam"
        ]
    assert [(d["code"], d["sha256"]) for d in delivered] == [
        ("attestation_salaire", hashlib.sha256(PDF).hexdigest())
    ]
    kinds = [e["kind"] for e in view["timeline"]]
    assert kinds.count("piece_demandee") == 1 and kinds.count("piece_envoyee") == 1

    # The legal clock: receipt with the declared rule, suspension, resumption.
    def clock_complete(records):
        return {r["event_type"] for r in records if r["key"] == file_id} >= {
            "AgencyReceiptAcknowledged",
            "LegalClockSuspended",
            "LegalClockResumed",
        }

    records = await read_topic(
        stack.kafka_bootstrap, stack.namespace + topics.LEGAL_CLOCK, clock_complete
    )
    # Distinct events: the relay may publish a record twice (same event id, at least once).
    mine = list({r["body"]["event_id"]: r for r in records if r["key"] == file_id}.values())
    receipt = next(
        r["body"]
        for r in mine
        if r["event_type"] == "AgencyReceiptAcknowledged" and r["body"]["agency"] == "cpam"
    )
    assert (receipt["deadline_rule"], receipt["deadline_days"]) == ("silence_vaut_rejet", 30)
    order = [r["event_type"] for r in mine if r["body"]["agency"] == "cpam"]
    assert order == ["AgencyReceiptAcknowledged", "LegalClockSuspended", "LegalClockResumed"]
    await assert_no_repeats(stack, [file_id])  # the request and the document went once


async def test_no_agency_ever_receives_a_citizen_field_it_did_not_declare(stack: Stack, client):
    """Each agency's intake, probed for every value the policy does not allow, in every form."""
    token = uuid.uuid4().hex[:10]
    typed = {"email": f"mini.{token}@example.fr", "phone": "07 98 76 54 32"}
    typed |= {"street": "7 impasse des Glycines", "city": "Pierrefitte-sur-Seine"}
    files = []
    for life_event in ("perte_emploi", "demenagement"):  # every agency between the two
        body = file_body(life_event, **typed)
        body["description"] = f"Récit {token} : usine fermée."
        response = await client.post("/api/files", json=body)
        files.append(response.json()["file_id"])
    personal = {**body["citizen"], "description": body["description"]}
    for file_id in files:
        await eventually(lambda f=file_id: answered_view(client, f), what=f"answer for {file_id}")
    for agency in ("caf", "dgfip", "france_travail", "cpam"):
        async with simulator(stack, agency) as sim:
            received = [
                r
                for r in (await sim.get(f"/agencies/{agency}/received")).json()
                if r["file_id"] in files
            ]
        assert received, agency
        dump = json.dumps(received, ensure_ascii=False).encode()
        forbidden = set(PROBED_FIELDS) - MAY_RECEIVE[agency]
        assert leaks(dump, personal, forbidden) == [], agency
        sent = {f.split(":")[0] for f in leaks(dump, personal, MAY_RECEIVE[agency])}
        assert sent == MAY_RECEIVE[agency], agency  # the probes do see what did go
    await assert_no_repeats(stack, files)


async def test_the_exchange_ledger_matches_what_the_agency_received(stack: Stack, client):
    file_id = await submit(client, "perte_emploi", email="registre@example.fr")

    async def answered_and_recorded() -> dict | None:
        # The ledger (exchanges.recorded) and the answers travel on different topics: the
        # answer may be projected a moment before an agency's exchanges are.
        view = await answered_view(client, file_id)
        return view if view and len(view["exchanges"]) >= 6 else None

    view = await eventually(answered_and_recorded, what="answer and its six exchanges")
    ledger = view["exchanges"]
    assert {(x["agency"], x["direction"]) for x in ledger} == {
        ("caf", "envoi"),
        ("caf", "reception"),
        ("dgfip", "envoi"),
        ("dgfip", "reception"),
        ("france_travail", "envoi"),
        ("france_travail", "reception"),
    }
    assert all(x["legal_basis"] and x["purpose"] and len(x["payload_sha256"]) == 64 for x in ledger)
    # The DGFiP keeps the SOAP envelope exactly as it came: its digest is the ledger's.
    async with simulator(stack, "dgfip") as sim:
        [soap] = [
            r["soap"]
            for r in (await sim.get("/agencies/dgfip/received")).json()
            if r["file_id"] == file_id
        ]
    sent = next(x for x in ledger if (x["agency"], x["direction"]) == ("dgfip", "envoi"))
    assert sent["payload_sha256"] == hashlib.sha256(soap.encode()).hexdigest()
    assert "Livre des procédures fiscales" in sent["legal_basis"]
    labels = [e["label"] for e in view["timeline"] if e["kind"] == "echange"]
    assert any(
        sent["payload_sha256"] in label and label.startswith("Transmis à Direction générale")
        for label in labels
    )
    await assert_no_repeats(stack, [file_id])


async def test_the_same_callback_delivered_twice_has_one_effect(stack: Stack, client):
    file_id = await submit(client, "perte_emploi", email="rappel@example.fr")
    await eventually(lambda: answered_view(client, file_id), what="answer")
    request_id = f"{file_id}-france_travail"
    async with simulator(stack, "france_travail") as sim:
        replay = (await sim.post(f"/admin/callbacks/{request_id}/replay")).json()
    assert replay == {"status": 200, "body": {"statut": "deja_recu"}}

    topic = stack.namespace + topics.agency_answers("france_travail")
    await wait_quiescent(stack)  # a wrong second answer would be published by now
    records = await read_topic(
        stack.kafka_bootstrap, topic, lambda rs: any(r["key"] == file_id for r in rs)
    )
    # One answer event (a record the relay republished keeps its id; a second answer would not)
    assert len({r["body"]["event_id"] for r in records if r["key"] == file_id}) == 1
    view = (await client.get(f"/api/files/{file_id}")).json()
    assert [e["kind"] for e in view["timeline"]].count("reponse_coordonnee") == 1
    await assert_no_repeats(stack, [file_id])  # one request, one answer email


async def test_two_requests_given_the_same_callback_id_both_get_their_decision(
    stack: Stack, client
):
    """Issue 17: France Travail gave a second request the callback id of the first. The
    adapter refuses that callback (409), records and counts it, and its reconciliation fetches
    the second decision from the agency's status endpoint: both files are answered."""
    async with simulator(stack, "france_travail") as sim:
        first = await submit(client, "perte_emploi", email="collision.un@example.fr")
        await eventually(
            lambda: france_travail_received(sim, first), what="the first request at France Travail"
        )
        await sim.post("/admin/faults", json={"agency": "france_travail", "mode": "reuse"})
        try:
            second = await submit(client, "perte_emploi", email="collision.deux@example.fr")
            await eventually(
                lambda: france_travail_received(sim, second), what="the second request"
            )
        finally:
            await sim.post("/admin/faults", json={"agency": "france_travail", "mode": "ok"})
        views = [
            await eventually(
                lambda f=f: answered_view(client, f), timeout=90, what=f"answer for {f}"
            )
            for f in (first, second)
        ]
        agency = [
            (await sim.get(f"/agencies/france_travail/demandes/{f}-france_travail")).json()
            for f in (first, second)
        ]
    assert agency[0]["callback_id"] == agency[1]["callback_id"]
    assert sorted(a["last_status"] for a in agency) == [
        200,
        409,
    ]  # one callback refused, none dropped
    for view, told in zip(views, agency, strict=True):
        decided = france_travail_decision(view)
        assert (decided["decision"], decided["summary"]) == (
            told["decision"]["decision"],
            told["decision"]["summary"],
        )
        assert [e["kind"] for e in view["timeline"]].count("reponse_coordonnee") == 1
    refused = next(
        f"{f}-france_travail"
        for f, a in zip((first, second), agency, strict=True)
        if a["last_status"] == 409
    )
    ledger = await query(
        stack.database_urls["adapter-france-travail"],
        "SELECT purpose FROM exchanges WHERE request_id = :r",
        r=refused,
    )
    purposes = [row.purpose for row in ledger]
    assert any(p.startswith("Rappel refusé : identifiant") for p in purposes), purposes
    assert any(p.startswith("Réponse (consultation de l'état)") for p in purposes), purposes
    metrics = (await client.get(f"{stack.adapter_url('france_travail')}/metrics")).text
    assert (
        "adapter_callbacks_refused_total"
        '{agency="france_travail",reason="identifiant_reutilise"} 1.0' in metrics
    )
    await assert_no_repeats(stack, [first, second])  # reconciled by reading, not by resending


async def test_an_agency_that_never_calls_back_is_reconciled_by_its_status_endpoint(
    stack: Stack, client
):
    async with simulator(stack, "france_travail") as sim:
        await sim.post("/admin/faults", json={"agency": "france_travail", "mode": "no_callback"})
        try:
            file_id = await submit(client, "perte_emploi", email="jamais.rappele@example.fr")
            await eventually(
                lambda: france_travail_received(sim, file_id), what="the request at France Travail"
            )
        finally:
            await sim.post("/admin/faults", json={"agency": "france_travail", "mode": "ok"})
        view = await eventually(
            lambda: answered_view(client, file_id), timeout=90, what="answer by reconciliation"
        )
        told = (await sim.get(f"/agencies/france_travail/demandes/{file_id}-france_travail")).json()
    assert (told["delivered"], told["last_status"]) == (0, None)  # never called back
    assert france_travail_decision(view)["summary"] == told["decision"]["summary"]
    metrics = (await client.get(f"{stack.adapter_url('france_travail')}/metrics")).text
    assert 'adapter_status_polls_total{agency="france_travail",outcome="reponse"}' in metrics
    await assert_no_repeats(stack, [file_id])


async def test_a_forged_unsigned_decision_is_refused_and_never_reaches_the_answer(
    stack: Stack, client
):
    """Issue 12: `POST :8013/callbacks` with a made-up France Travail decision, unsigned, is
    refused (401), counted and recorded; so is France Travail's own signature on another
    agency's request (403). The file's answer is the agency's real decision."""
    forged_decision = {
        "decision": "refuse",
        "summary": "Décision inventée par un tiers",
        "agency_reference": "FT-2026-000000000000",
        "reason": "Rappel forgé.",
    }
    async with simulator(stack, "france_travail") as sim:
        # The real decision comes by reconciliation only: the forgery arrives first.
        await sim.post("/admin/faults", json={"agency": "france_travail", "mode": "no_callback"})
        try:
            file_id = await submit(client, "perte_emploi", email="rappel.forge@example.fr")
            await eventually(
                lambda: france_travail_received(sim, file_id), what="the request at France Travail"
            )
        finally:
            await sim.post("/admin/faults", json={"agency": "france_travail", "mode": "ok"})
        request_id = f"{file_id}-france_travail"
        forged = {"callback_id": "forge-1", "request_id": request_id, "decision": forged_decision}
        async with client_of(stack.adapter_url("france_travail")) as adapter:
            unsigned = await adapter.post("/callbacks", json=forged)
            assert unsigned.status_code == 401, unsigned.text
            assert unsigned.json()["kind"] == "unauthenticated"
            other = json.dumps({**forged, "request_id": f"{file_id}-caf"}).encode()
            secret = stack.callback_secrets["france_travail"]
            header = signatures.sign(secret, other, int(time.time()))
            cross = await adapter.post(
                "/callbacks",
                content=other,
                headers={"X-Signature": header, "Content-Type": "application/json"},
            )
            assert cross.status_code == 403 and cross.json()["kind"] == "forbidden"
        view = await eventually(
            lambda: answered_view(client, file_id), timeout=90, what="answer by reconciliation"
        )
        told = (await sim.get(f"/agencies/france_travail/demandes/{request_id}")).json()
    decided = france_travail_decision(view)
    assert decided["summary"] == told["decision"]["summary"] != forged_decision["summary"]
    assert forged_decision["summary"] not in json.dumps(view, ensure_ascii=False)
    ledger = await query(
        stack.database_urls["adapter-france-travail"],
        "SELECT purpose FROM exchanges WHERE request_id = :r",
        r=request_id,
    )
    assert any(row.purpose.startswith("Rappel refusé (non signé)") for row in ledger)
    metrics = (await client.get(f"{stack.adapter_url('france_travail')}/metrics")).text
    for reason in ("signature_absente", "demande_d_un_autre_organisme"):
        assert (
            f'adapter_callbacks_refused_total{{agency="france_travail",reason="{reason}"}} 1.0'
            in metrics
        )


async def test_a_captured_callback_replayed_as_is_is_refused(stack: Stack, client):
    file_id = await submit(client, "perte_emploi", email="rappel.rejoue@example.fr")
    await eventually(lambda: answered_view(client, file_id), what="answer")
    request_id = f"{file_id}-france_travail"
    async with simulator(stack, "france_travail") as sim:
        replay = await sim.post(f"/admin/callbacks/{request_id}/replay", params={"exact": "true"})
    assert replay.json()["status"] == 401 and "rejeu" in replay.json()["body"]["message"]
    view = (await client.get(f"/api/files/{file_id}")).json()
    assert [e["kind"] for e in view["timeline"]].count("reponse_coordonnee") == 1


@pytest.mark.parametrize(
    "mode, seconds, reason",
    [
        ("error500", None, "en erreur (HTTP 500)"),
        ("slow", 4, "n'a pas répondu à temps"),
        ("garbage", None, "pas du JSON"),
        ("invalid", None, "réponse sans décision"),
    ],
)
async def test_a_failing_agency_ends_in_the_dead_letter_topic_with_the_reason(
    stack: Stack, client, mode, seconds, reason
):
    async with simulator(stack, "caf") as sim:
        await sim.post("/admin/faults", json={"agency": "caf", "mode": mode, "seconds": seconds})
        try:
            file_id = await submit(client, "naissance", email=f"panne.{mode}@example.fr")
            dlq = stack.namespace + topics.dead_letter(topics.agency_requests("caf"))
            records = await read_topic(
                stack.kafka_bootstrap,
                dlq,
                lambda rs: any(r["key"] == file_id for r in rs),
                timeout=60,
            )
        finally:
            await sim.post("/admin/faults", json={"agency": "caf", "mode": "ok"})
    [parked] = [r for r in records if r["key"] == file_id]
    assert reason in parked["dlq_reason"] and "après 3 tentative(s)" in parked["dlq_reason"], (
        parked["dlq_reason"]
    )
    assert parked["dlq_consumer"] == "adapter-caf"
    # The other agency of the file went on; the citizen sees which one is awaited.
    agencies = await eventually(
        lambda: when(agency_status(client, file_id), lambda a: a["cpam"]["status"] == "repondu"),
        what="CPAM answer",
    )
    assert agencies["caf"]["awaited"] and agencies["caf"]["status"] == "transmis"
    # The partition is not blocked: the next file to the CAF is answered.
    after = await submit(client, "naissance", email=f"apres.{mode}@example.fr")
    await eventually(lambda: answered_view(client, after), what="the next file to the CAF")
    await assert_no_repeats(stack, [after])
    if mode == "slow":
        # The three attempts timed out on the client side, yet each reached the CAF, which
        # answered them alike: the simulator counts them (it no longer hides a repeat).
        async with simulator(stack, "caf") as sim:

            async def three_calls():
                calls = (await sim.get("/agencies/caf/stats")).json()["per_request"]
                return calls.get(f"{file_id}-caf") == 3

            await eventually(three_calls, timeout=15, what="the three attempts counted")


async def test_an_agency_down_longer_than_the_retry_window_loses_nothing_and_holds_up_no_other(
    stack: Stack, client
):
    calls_before = await agency_calls(client, stack, "caf")
    down_since = time.monotonic()
    stack.kill("simulator-caf")  # the CAF's system is gone: refused connections
    try:
        files = [
            await submit(client, "perte_emploi", email=f"panne.longue.{i}@example.fr")
            for i in range(3)
        ]

        async def others_answered():
            for file_id in files:
                view = (await client.get(f"/api/files/{file_id}")).json()
                statuses = {a["agency"]: a["status"] for a in view["agencies"]}
                if statuses["dgfip"] != "repondu" or statuses["france_travail"] != "repondu":
                    return None
            return view

        view = await eventually(others_answered, timeout=60, what="the others without the CAF")
        assert view["awaited"] == ["Caisse d'allocations familiales (CAF)"] and not view["answer"]
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_since)))
        calls = await agency_calls(client, stack, "caf")
    finally:
        await asyncio.to_thread(stack.restart, "simulator-caf")
    assert_outlived_the_retries(calls_before, calls)

    for f in files:
        await eventually(lambda f=f: answered_view(client, f), timeout=90, what=f"answer for {f}")
    async with simulator(stack, "caf") as sim:
        received = [r["file_id"] for r in (await sim.get("/agencies/caf/received")).json()]
    assert sorted(received) == sorted(files)  # each request reached the CAF, once
    await assert_no_repeats(stack, files)  # ... and was not sent to it again
