"""Tests of the agency simulator: in-process (httpx ASGITransport) and over a real socket."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date

import defusedxml.ElementTree as ET
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
from agency_simulator.app import AGENCIES, DGFIP_NS, SOAP_NS, AgencyRequest, create_app, decide

EXPECTED_PREFIX = {
    "caf": "CAF",
    "dgfip": "DGFIP",
    "france_travail": "FT",
    "cpam": "CPAM",
    "ants": "ANTS",
}


def body(request_id: str, life_event: str = "naissance", **extra: object) -> dict[str, object]:
    return {
        "request_id": request_id,
        "file_id": "DOS-2026-0001",
        "life_event": life_event,
        "citizen": {
            "nir": "2850575123456",
            "nom": "Martin",
            "prenom": "Camille",
            "adresse": "12 rue des Lilas, 69003 Lyon",
        },
        "description": "Naissance de Léa le 3 janvier",
        **extra,
    }


def find_request_id(agency: str, decision: str, life_event: str = "naissance") -> str:
    """First request id, in a fixed sequence, that ``agency`` answers with ``decision``."""
    for i in range(10_000):
        rid = f"req-{life_event}-{i}"
        req = AgencyRequest(**body(rid, life_event))
        if decide(agency, req).decision == decision:
            return rid
    raise AssertionError(f"no request id gives {decision} for {agency}")


class Reply:
    """An agency's answer, whatever its protocol, as status code + JSON decision."""

    def __init__(self, status_code: int, data: dict | None) -> None:
        self.status_code, self._data = status_code, data

    def json(self) -> dict | None:
        return self._data


def soap_request(sent: dict) -> str:
    citizen = "".join(f"<dgfip:{k}>{v}</dgfip:{k}>" for k, v in sent["citizen"].items())
    return (
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:dgfip="{DGFIP_NS}"><soap:Body>'
        f"<dgfip:DeclarerChangementSituation><dgfip:IdentifiantDemande>{sent['request_id']}</dgfip:IdentifiantDemande>"
        f"<dgfip:Dossier>{sent['file_id']}</dgfip:Dossier><dgfip:Evenement>{sent['life_event']}</dgfip:Evenement>"
        f"<dgfip:Contribuable>{citizen}</dgfip:Contribuable></dgfip:DeclarerChangementSituation></soap:Body></soap:Envelope>"
    )


def soap_answer(text: str) -> dict:
    root = ET.fromstring(text)
    node = root.find(f"{{{SOAP_NS}}}Body/{{{DGFIP_NS}}}DeclarerChangementSituationReponse")
    values = {child.tag.split("}")[1]: child.text for child in node}
    return {
        "agency_reference": values["Reference"],
        "decision": values["Decision"],
        "summary": values["Resume"],
        "amount_eur": float(values["Montant"]) if "Montant" in values else None,
        "start_date": values.get("DateEffet"),
        "reason": values.get("Motif"),
        "requested_document": None,
    }


async def submit(client: httpx.AsyncClient, agency: str, sent: dict, **kw) -> Reply:
    """Send a request the way ``agency``'s system takes it; its decision back."""
    if agency == "dgfip":
        r = await client.post("/agencies/dgfip/soap", content=soap_request(sent), **kw)
        return Reply(r.status_code, soap_answer(r.text) if r.status_code == 200 else None)
    if agency == "france_travail":
        r = await client.post(
            "/agencies/france_travail/demandes",
            json={**sent, "callback_url": "http://127.0.0.1:9/callbacks"},
            **kw,
        )
        if r.status_code != 202:
            return Reply(r.status_code, None)
        record = (
            await client.get(f"/agencies/france_travail/demandes/{sent['request_id']}")
        ).json()
        return Reply(200, record["decision"])
    r = await client.post(f"/agencies/{agency}/requests", json=sent, **kw)
    return Reply(r.status_code, r.json() if r.status_code == 200 else None)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://simulator"
    ) as c:
        yield c


# ----------------------------------------------------------------------------- answers


@pytest.mark.parametrize("agency", AGENCIES)
async def test_granted_answer_has_the_documented_shape(
    client: httpx.AsyncClient, agency: str
) -> None:
    rid = find_request_id(agency, "accorde")
    r = await submit(client, agency, body(rid))
    assert r.status_code == 200
    answer = r.json()
    assert set(answer) == {
        "agency_reference",
        "decision",
        "summary",
        "amount_eur",
        "start_date",
        "reason",
        "requested_document",
    }
    prefix, year, number = answer["agency_reference"].split("-")
    assert (prefix, year) == (EXPECTED_PREFIX[agency], "2026")
    assert len(number) == 12 and number.isdigit()
    assert answer["decision"] == "accorde"
    assert answer["reason"] is None
    assert date.fromisoformat(answer["start_date"]).day == 1


async def test_summaries_and_amounts_are_realistic_per_agency_and_event(
    client: httpx.AsyncClient,
) -> None:
    async def granted(agency: str, life_event: str) -> dict[str, object]:
        rid = find_request_id(agency, "accorde", life_event)
        r = await submit(client, agency, body(rid, life_event))
        assert r.status_code == 200
        return r.json()

    caf = await granted("caf", "naissance")
    assert caf["summary"] == "Prime à la naissance accordée"
    assert caf["amount_eur"] == pytest.approx(1084.43)

    ft = await granted("france_travail", "perte_emploi")
    assert ft["summary"] == "Allocation d'aide au retour à l'emploi accordée"
    assert 1100 <= ft["amount_eur"] <= 2200

    dgfip = await granted("dgfip", "naissance")
    assert dgfip["summary"] == (
        "Situation fiscale mise à jour : taux de prélèvement à la source recalculé"
    )
    assert dgfip["amount_eur"] is None

    cpam = await granted("cpam", "birth")
    assert cpam["summary"] == "Rattachement de l'enfant enregistré"

    apl = await granted("caf", "demenagement")
    assert "APL" in apl["summary"] and 150 <= apl["amount_eur"] <= 350


@pytest.mark.parametrize("agency", AGENCIES)
async def test_refusal_carries_a_french_reason_and_no_money(
    client: httpx.AsyncClient, agency: str
) -> None:
    rid = find_request_id(agency, "refuse")
    r = await submit(client, agency, body(rid))
    assert r.status_code == 200
    answer = r.json()
    assert answer["decision"] == "refuse"
    assert answer["amount_eur"] is None and answer["start_date"] is None
    assert answer["reason"] and answer["reason"].endswith(".")
    assert "refusée" in answer["summary"]


def test_about_ten_percent_of_requests_are_refused() -> None:
    for agency in AGENCIES:
        decisions = [
            decide(agency, AgencyRequest(**body(f"rate-{i}"))).decision for i in range(2000)
        ]
        refused = decisions.count("refuse") / len(decisions)
        assert 0.07 <= refused <= 0.13, (agency, refused)
        assert decisions.count("accorde") + decisions.count("refuse") == len(decisions)


async def test_answers_are_deterministic_across_app_instances() -> None:
    answers = []
    for _ in range(2):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app()), base_url="http://simulator"
        ) as c:
            r = await submit(c, "france_travail", body("stable-1", "perte_emploi"))
            answers.append(r.json())
    assert answers[0] == answers[1]
    assert answers[0] == decide(
        "france_travail", AgencyRequest(**body("stable-1", "perte_emploi"))
    ).model_dump(mode="json")


# ------------------------------------------------------------------ idempotency, received


async def test_same_request_id_twice_gives_same_answer_and_is_recorded_once(
    client: httpx.AsyncClient,
) -> None:
    first = await submit(client, "caf", body("dup-1"))
    second = await submit(client, "caf", body("dup-1"))
    other = await submit(client, "caf", body("dup-2"))
    assert first.status_code == second.status_code == other.status_code == 200
    assert first.json() == second.json()
    assert first.json()["agency_reference"] != other.json()["agency_reference"]

    received = (await client.get("/agencies/caf/received")).json()
    assert [r["request_id"] for r in received] == ["dup-1", "dup-2"]


async def test_received_lists_exact_bodies_per_agency(client: httpx.AsyncClient) -> None:
    sent = body("data-1", extra_field={"canal": "guichet"})
    assert (await client.post("/agencies/cpam/requests", json=sent)).status_code == 200

    assert (await client.get("/agencies/cpam/received")).json() == [sent]
    for agency in ("caf", "dgfip", "france_travail"):
        assert (await client.get(f"/agencies/{agency}/received")).json() == []


async def test_unknown_agency_is_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/agencies/urssaf/requests", json=body("x"))
    assert r.status_code == 404
    assert (await client.get("/agencies/urssaf/received")).status_code == 404
    # even with an invalid body, the unknown agency is what is reported
    assert (await client.post("/agencies/urssaf/requests", json={})).status_code == 404


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"file_id": "F", "life_event": "naissance", "citizen": {}},  # no request_id
        {"request_id": "r", "file_id": "F", "life_event": "naissance", "citizen": "Camille"},
        {"request_id": "", "file_id": "F", "life_event": "naissance", "citizen": {}},
    ],
)
async def test_invalid_body_is_422_and_not_recorded(
    client: httpx.AsyncClient, bad: dict[str, object]
) -> None:
    r = await client.post("/agencies/cpam/requests", json=bad)
    assert r.status_code == 422
    assert (await client.get("/agencies/cpam/received")).json() == []


async def test_health(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok", "agencies": list(AGENCIES)}


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
    assert retry.json() == decide("caf", AgencyRequest(**body("f-1"))).model_dump(mode="json")
    assert len((await client.get("/agencies/caf/received")).json()) == 1


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
        await asyncio.sleep(0.5)  # past the simulated callback delay: none was scheduled
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
    assert second["decision"] in ("accorde", "refuse")
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
    assert asked["decision"] == "piece_demandee"
    assert asked["requested_document"]["code"] == "attestation_salaire"
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
    assert decided["decision"] in ("accorde", "refuse")
    assert decided["agency_reference"] == asked["agency_reference"]
    again = (
        await client.post("/agencies/cpam/requests", json=body("ij-1", "arret_maladie"))
    ).json()
    assert again == decided  # the request asked again gets the decision now
    assert [d["code"] for d in (await client.get("/agencies/cpam/documents")).json()] == [
        "attestation_salaire"
    ]


# ----------------------------------------------------------------------- real socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def simulator_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agency_simulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise AssertionError(f"simulator exited early ({proc.returncode}): {out}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("simulator did not become healthy in 20 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_real_process_answers_over_http(simulator_url: str) -> None:
    with httpx.Client(base_url=simulator_url, timeout=5) as c:
        assert c.get("/health").json()["status"] == "ok"
        sent = body("socket-1", "perte_emploi")
        r1 = c.post("/agencies/caf/requests", json=sent)
        r2 = c.post("/agencies/caf/requests", json=sent)
        assert r1.status_code == 200
        assert r1.json() == r2.json()
        assert r1.json() == decide("caf", AgencyRequest(**sent)).model_dump(mode="json")
        assert c.get("/agencies/caf/received").json() == [sent]
        assert c.post("/agencies/unknown/requests", json=sent).status_code == 404


def test_real_process_slow_fault_trips_a_client_timeout(simulator_url: str) -> None:
    with httpx.Client(base_url=simulator_url, timeout=5) as c:
        c.post("/admin/faults", json={"agency": "dgfip", "mode": "slow", "seconds": 1.5})
        try:
            with pytest.raises(httpx.ReadTimeout):
                c.post(
                    "/agencies/dgfip/soap", content=soap_request(body("socket-slow")), timeout=0.3
                )
        finally:
            c.post("/admin/faults", json={"agency": "dgfip", "mode": "ok"})
        assert (
            c.post("/agencies/dgfip/soap", content=soap_request(body("socket-slow-2"))).status_code
            == 200
        )
