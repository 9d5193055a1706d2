"""The agency simulator's faults (down, error 500, slow, silent, incomplete, garbage...),
in-process through httpx ASGITransport."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from adapter_sdk import (
    Acknowledged,
    AdapterConfig,
    AgencyReply,
    CanonicalRequest,
    CitizenData,
    discovery,
)
from tests.tools.simulator_requests import (
    ANSWERS,
    EXPECTED_PREFIX,
    SALARY_CERTIFICATE,
    SICK_LEAVE,
    body,
    soap_request,
    submit,
)

# ---------------------------------------------------------------------------- faults


async def test_down_and_error500_faults_are_per_agency_and_not_recorded(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/admin/faults", json={"agency": "caf", "mode": "down", "seconds": None})
    assert r.status_code == 200
    r = await client.post("/admin/faults", json={"agency": "dgfip", "mode": "error500"})
    assert r.status_code == 200

    faults = (await client.get("/admin/faults")).json()
    assert faults["caf"]["mode"] == "down"
    assert faults["dgfip"]["mode"] == "error500"
    assert faults["cpam"]["mode"] == "ok"

    assert (await submit(client, "caf", body("f-1"))).status_code == 503
    assert (await submit(client, "dgfip", body("f-1"))).status_code == 500
    assert (await submit(client, "cpam", body("f-1"))).status_code == 200
    assert (await client.get("/agencies/caf/received")).json() == []
    assert (await client.get("/agencies/dgfip/received")).json() == []

    # back to normal: the retried request now gets through, once
    await client.post("/admin/faults", json={"agency": "caf", "mode": "ok"})
    retry = await submit(client, "caf", body("f-1"))
    assert retry.status_code == 200
    assert retry.json() == ANSWERS[("caf", "f-1", "naissance")]
    assert len((await client.get("/agencies/caf/received")).json()) == 1
    # the refused attempts never reached the agency: no repeat
    assert (await client.get("/agencies/caf/stats")).json()["repeats"] == 0


async def test_slow_fault_delays_the_answer(client: httpx.AsyncClient) -> None:
    await client.post(
        "/admin/faults", json={"agency": "france_travail", "mode": "slow", "seconds": 0.5}
    )
    start = time.monotonic()
    r = await submit(client, "france_travail", body("slow-1"))
    elapsed = time.monotonic() - start
    assert r.status_code == 200
    assert elapsed >= 0.5

    start = time.monotonic()
    assert (await submit(client, "cpam", body("slow-1"))).status_code == 200
    assert time.monotonic() - start < 0.5


async def test_concurrent_duplicates_under_slow_are_recorded_once(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/admin/faults", json={"agency": "caf", "mode": "slow", "seconds": 0.2})
    answers = await asyncio.gather(
        *(client.post("/agencies/caf/requests", json=body("conc-1")) for _ in range(3))
    )
    assert {r.status_code for r in answers} == {200}
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert len((await client.get("/agencies/caf/received")).json()) == 1
    stats = (await client.get("/agencies/caf/stats")).json()
    assert (stats["calls"], stats["repeats"]) == (3, 2)  # the agency did take all three


async def test_fault_validation(client: httpx.AsyncClient) -> None:
    r = await client.post("/admin/faults", json={"agency": "urssaf", "mode": "down"})
    assert r.status_code == 404
    r = await client.post("/admin/faults", json={"agency": "caf", "mode": "flaky"})
    assert r.status_code == 422
    r = await client.post("/admin/faults", json={"agency": "caf", "mode": "slow", "seconds": -1})
    assert r.status_code == 422
    assert (await client.get("/admin/faults")).json()["caf"] == {"mode": "ok", "seconds": None}


@pytest.mark.parametrize("agency", ["caf", "dgfip", "france_travail", "cpam"])
async def test_a_silent_agency_acknowledges_and_never_decides_and_its_adapter_reads_a_receipt(
    client: httpx.AsyncClient, agency: str
) -> None:
    adapter_cls = discovery.load(agency)
    adapter = adapter_cls(AdapterConfig())
    values = {
        "given_name": "Camille",
        "family_name": "Martin",
        "email": "c@example.fr",
        "postcode": "69003",
        "description": "Perte d'emploi",
    }
    request = CanonicalRequest(
        request_id=f"silent-{agency}",
        file_id="DOS-2026-0002",
        life_event="arret_maladie",
        urgent=False,
        citizen=CitizenData(values, adapter_cls.declaration.citizen_fields),
        callback_url="http://127.0.0.1:9/callbacks",
    )
    call = adapter.build_call(request)
    await client.post("/admin/faults", json={"agency": agency, "mode": "silent"})

    async def send() -> Acknowledged:
        r = await client.post(call.path, content=call.body, headers=dict(call.headers))
        assert r.status_code in (200, 202), r.text
        read = adapter.read_answer(AgencyReply(r.status_code, r.content, dict(r.headers)))
        assert isinstance(read, Acknowledged), read
        return read

    first = await send()
    assert first.agency_reference.startswith(EXPECTED_PREFIX[agency])
    # Back to normal, the same request is still under review: this agency never answers it.
    await client.post("/admin/faults", json={"agency": agency, "mode": "ok"})
    assert await send() == first
    assert len((await client.get(f"/agencies/{agency}/received")).json()) == 1
    if agency == "france_travail":
        # No callback scheduled (France Travail waits CALLBACK_DELAY_SECONDS before one).
        assert (await client.get("/admin/pending")).json() == {"callbacks": 0, "held": 0}
        status = (
            await client.get(f"/agencies/france_travail/demandes/{request.request_id}")
        ).json()
        assert status == {
            "request_id": request.request_id,
            "reference": first.agency_reference,
            "statut": "en_instruction",
            "delivered": 0,
        }


async def test_a_silent_cpam_takes_the_awaited_document_and_does_not_decide(
    client: httpx.AsyncClient,
) -> None:
    asked = (
        await client.post("/agencies/cpam/requests", json=body("ij-silent", "arret_maladie"))
    ).json()
    await client.post("/admin/faults", json={"agency": "cpam", "mode": "silent"})
    taken = await client.post(
        "/agencies/cpam/requests/ij-silent/pieces",
        data={"code": "attestation_salaire"},
        files={"fichier": ("a.pdf", b"%PDF-1.4", "application/pdf")},
    )
    assert taken.json() == {
        "statut": "en_instruction",
        "agency_reference": asked["agency_reference"],
    }
    assert [d["code"] for d in (await client.get("/agencies/cpam/documents")).json()] == [
        "attestation_salaire"
    ]


async def test_an_incomplete_cpam_asks_for_the_first_document_again_then_decides(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/admin/faults", json={"agency": "cpam", "mode": "incomplete"})
    asked = (
        await client.post("/agencies/cpam/requests", json=body("ij-inc", "arret_maladie"))
    ).json()
    assert asked["decision"] == "piece_demandee"

    async def send() -> dict:
        return (
            await client.post(
                "/agencies/cpam/requests/ij-inc/pieces",
                data={"code": "attestation_salaire"},
                files={"fichier": ("a.pdf", b"%PDF-1.4", "application/pdf")},
            )
        ).json()

    first = await send()
    assert first["decision"] == "piece_demandee" and first["summary"].startswith("Pièce incomplète")
    assert (first["requested_document"], first["agency_reference"]) == (
        asked["requested_document"],
        asked["agency_reference"],
    )
    second = await send()
    assert second == SICK_LEAVE["ij-inc"]
    assert await send() == second  # decided: the same document sent again gets the decision
    assert len((await client.get("/agencies/cpam/documents")).json()) == 2


async def test_reset_forgets_everything(client: httpx.AsyncClient) -> None:
    await submit(client, "caf", body("reset-1"))
    await client.post("/admin/faults", json={"agency": "cpam", "mode": "down"})
    assert (await client.post("/admin/reset")).status_code == 200
    assert (await client.get("/agencies/caf/received")).json() == []
    assert (await client.get("/admin/faults")).json()["cpam"]["mode"] == "ok"


async def test_garbage_and_schema_invalid_faults_answer_200_with_an_unusable_body(
    client: httpx.AsyncClient,
) -> None:
    for agency in ("caf", "dgfip"):
        await client.post("/admin/faults", json={"agency": agency, "mode": "garbage"})
    caf = await client.post("/agencies/caf/requests", json=body("g-1"))
    assert caf.status_code == 200 and caf.text.startswith("<html>")
    soap = await client.post("/agencies/dgfip/soap", content=soap_request(body("g-1")))
    assert soap.status_code == 200 and not soap.text.endswith("</soap:Envelope>")
    await client.post("/admin/faults", json={"agency": "caf", "mode": "invalid"})
    invalid = await client.post("/agencies/caf/requests", json=body("g-2"))
    assert invalid.status_code == 200 and "decision" not in invalid.json()
    assert (await client.get("/agencies/caf/received")).json() == []


async def test_dgfip_answers_a_malformed_envelope_with_a_soap_fault(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/agencies/dgfip/soap", content="<soap:Envelope>pas du tout")
    assert r.status_code == 400 and "<soap:Fault>" in r.text and "requête invalide" in r.text


async def test_dgfip_and_france_travail_do_not_speak_json_rest(client: httpx.AsyncClient) -> None:
    for agency in ("dgfip", "france_travail"):
        assert (
            await client.post(f"/agencies/{agency}/requests", json=body("x"))
        ).status_code == 404


async def test_cpam_asks_for_the_salary_certificate_on_sick_leave_then_decides(
    client: httpx.AsyncClient,
) -> None:
    asked = (
        await client.post("/agencies/cpam/requests", json=body("ij-1", "arret_maladie"))
    ).json()
    assert asked == {
        "agency_reference": "CPAM-2026-345389533188",
        "decision": "piece_demandee",
        "summary": "Pièce justificative demandée : Attestation de salaire établie par votre "
        "employeur",
        "amount_eur": None,
        "start_date": None,
        "reason": None,
        "requested_document": SALARY_CERTIFICATE,
    }
    wrong = await client.post(
        "/agencies/cpam/requests/ij-1/pieces",
        data={"code": "rib"},
        files={"fichier": ("a.pdf", b"%PDF-1.4", "application/pdf")},
    )
    assert wrong.status_code == 422
    final = await client.post(
        "/agencies/cpam/requests/ij-1/pieces",
        data={"code": "attestation_salaire"},
        files={"fichier": ("a.pdf", b"%PDF-1.4", "application/pdf")},
    )
    decided = final.json()
    assert decided == SICK_LEAVE["ij-1"]  # under the reference given with the request
    again = (
        await client.post("/agencies/cpam/requests", json=body("ij-1", "arret_maladie"))
    ).json()
    assert again == decided  # the request asked again gets the decision now
    assert [d["code"] for d in (await client.get("/agencies/cpam/documents")).json()] == [
        "attestation_salaire"
    ]
    assert (await client.get("/agencies/cpam/stats")).json()["documents_again"] == []
    resent = await client.post(
        "/agencies/cpam/requests/ij-1/pieces",
        data={"code": "attestation_salaire"},
        files={"fichier": ("a.pdf", b"%PDF-1.4", "application/pdf")},
    )
    assert resent.json() == decided  # answered alike, but counted
    stats = (await client.get("/agencies/cpam/stats")).json()
    assert stats["repeats"] == 1
    assert stats["documents_again"] == [
        {"request_id": "ij-1", "file_id": "DOS-2026-0001", "times": 1}
    ]


# ---------------------------------------------------------------------------- hold


async def held(client: httpx.AsyncClient) -> list[dict]:
    return (await client.get("/admin/faults/held")).json()


async def until_held(client: httpx.AsyncClient, count: int) -> list[dict]:
    """The held calls once there are `count` (the calls are in flight in other tasks)."""
    for _ in range(500):
        calls = await held(client)
        if len(calls) >= count:
            return calls
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} calls never held: {await held(client)}")


async def test_hold_keeps_each_answer_until_its_release_then_answers_as_ok(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/admin/faults", json={"agency": "caf", "mode": "hold"})
    assert r.status_code == 200
    first = asyncio.create_task(submit(client, "caf", body("req-naissance-0")))
    second = asyncio.create_task(submit(client, "caf", body("hold-2")))
    calls = await until_held(client, 2)
    assert sorted(c["request_id"] for c in calls) == ["hold-2", "req-naissance-0"]
    assert {(c["agency"], c["waiting"]) for c in calls} == {("caf", True)}
    # Other agencies answer as usual; a held call is not recorded yet (not answered).
    assert (await submit(client, "cpam", body("req-naissance-0"))).status_code == 200
    assert (await client.get("/agencies/caf/stats")).json()["calls"] == 0
    assert not first.done() and not second.done()

    released = (
        await client.post(
            "/admin/faults/release", json={"agency": "caf", "request_id": "req-naissance-0"}
        )
    ).json()["released"]
    assert [(c["request_id"], c["waiting"]) for c in released] == [("req-naissance-0", True)]
    answer = await asyncio.wait_for(first, 5)
    assert answer.status_code == 200
    assert answer.json() == ANSWERS[("caf", "req-naissance-0", "naissance")]
    # hold-2 is still held, and the mode still holds the next calls.
    assert [c["request_id"] for c in await held(client)] == ["hold-2"]
    third = asyncio.create_task(submit(client, "caf", body("hold-3")))
    await until_held(client, 2)
    released = (await client.post("/admin/faults/release", json={"agency": "caf"})).json()
    assert [c["request_id"] for c in released["released"]] == ["hold-2", "hold-3"]
    assert {(await asyncio.wait_for(t, 5)).status_code for t in (second, third)} == {200}
    assert await held(client) == []
    stats = (await client.get("/agencies/caf/stats")).json()
    assert (stats["calls"], stats["repeats"]) == (3, 0)


async def test_another_mode_or_a_reset_releases_what_is_held(client: httpx.AsyncClient) -> None:
    await client.post("/admin/faults", json={"agency": "dgfip", "mode": "hold"})
    await client.post("/admin/faults", json={"agency": "france_travail", "mode": "hold"})
    soap = asyncio.create_task(
        client.post("/agencies/dgfip/soap", content=soap_request(body("hold-soap")))
    )
    status = asyncio.create_task(client.get("/agencies/france_travail/demandes/inconnue"))
    calls = await until_held(client, 2)
    assert {(c["agency"], c["request_id"]) for c in calls} == {
        ("dgfip", "hold-soap"),
        ("france_travail", "inconnue"),
    }
    # Back to ok: the DGFiP's held call is answered; France Travail still holds its own.
    await client.post("/admin/faults", json={"agency": "dgfip", "mode": "ok"})
    assert (await asyncio.wait_for(soap, 5)).status_code == 200
    assert [c["agency"] for c in await held(client)] == ["france_travail"]
    await client.post("/admin/reset")
    assert (await asyncio.wait_for(status, 5)).status_code == 404  # answered: unknown request
    assert await held(client) == []
    assert (await client.get("/admin/faults")).json()["france_travail"]["mode"] == "ok"


async def test_release_of_an_unknown_agency_is_404_and_of_nothing_held_is_empty(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/admin/faults/release", json={"agency": "urssaf"})
    assert r.status_code == 404
    r = await client.post("/admin/faults/release", json={"agency": "caf", "request_id": "x"})
    assert r.json() == {"released": []}
