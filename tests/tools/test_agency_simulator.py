"""Tests of the agency simulator: its answers and idempotency in-process (httpx
ASGITransport), then over a real socket (faults: test_agency_simulator_faults.py)."""

from __future__ import annotations

import concurrent.futures
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date

import httpx
import pytest

from agency_simulator.app import AGENCIES, AgencyRequest, create_app, decide
from guichet_runtime.tls_context import client_tls
from tests.tools.simulator_requests import (
    ANSWERS,
    EXPECTED_PREFIX,
    GRANTED_BIRTH,
    REFUSED_BIRTH,
    body,
    soap_request,
    submit,
)

# ----------------------------------------------------------------------------- answers


@pytest.mark.parametrize(("agency", "request_id", "life_event"), sorted(ANSWERS))
async def test_each_request_gets_the_answer_written_out_for_it(
    client: httpx.AsyncClient, agency: str, request_id: str, life_event: str
) -> None:
    """Over each agency's own protocol (REST, SOAP, France Travail's callback API)."""
    r = await submit(client, agency, body(request_id, life_event))
    assert r.status_code == 200
    assert r.json() == ANSWERS[(agency, request_id, life_event)]


@pytest.mark.parametrize("agency", AGENCIES)
async def test_granted_answer_has_the_documented_shape(
    client: httpx.AsyncClient, agency: str
) -> None:
    r = await submit(client, agency, body(GRANTED_BIRTH[agency]))
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
    async def granted(agency: str, request_id: str, life_event: str) -> dict[str, object]:
        r = await submit(client, agency, body(request_id, life_event))
        assert r.status_code == 200 and r.json()["decision"] == "accorde"
        return r.json()

    caf = await granted("caf", "req-naissance-0", "naissance")
    assert caf["summary"] == "Prime à la naissance accordée"
    assert caf["amount_eur"] == pytest.approx(1084.43)

    ft = await granted("france_travail", "req-perte_emploi-0", "perte_emploi")
    assert ft["summary"] == "Allocation d'aide au retour à l'emploi accordée"
    assert ft["amount_eur"] == pytest.approx(1493.02)  # within 1 100 € - 2 200 €

    dgfip = await granted("dgfip", "req-naissance-0", "naissance")
    assert dgfip["summary"] == (
        "Situation fiscale mise à jour : taux de prélèvement à la source recalculé"
    )
    assert dgfip["amount_eur"] is None

    cpam = await granted("cpam", "req-birth-1", "birth")  # "birth" read like "naissance"
    assert cpam["summary"] == "Rattachement de l'enfant enregistré"

    apl = await granted("caf", "req-demenagement-0", "demenagement")
    assert apl["summary"] == "Aide personnalisée au logement (APL) accordée"
    assert apl["amount_eur"] == pytest.approx(184.97)  # within 150 € - 350 €


@pytest.mark.parametrize("agency", AGENCIES)
async def test_refusal_carries_a_french_reason_and_no_money(
    client: httpx.AsyncClient, agency: str
) -> None:
    r = await submit(client, agency, body(REFUSED_BIRTH[agency]))
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
    assert answers[0] == ANSWERS[("france_travail", "stable-1", "perte_emploi")]


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


@pytest.mark.parametrize("agency", ["caf", "dgfip", "france_travail", "cpam", "ants"])
async def test_a_request_called_twice_is_answered_alike_and_counted_as_one_repeat(
    client: httpx.AsyncClient, agency: str
) -> None:
    """Issue 18: the agency answers a repeat idempotently, but the repeat is not hidden."""
    quiet = await client.get(f"/agencies/{agency}/stats")
    assert quiet.json()["repeats"] == 0 and quiet.json()["calls"] == 0
    first = await submit(client, agency, body("twice-1", "perte_emploi"))
    second = await submit(client, agency, body("twice-1", "perte_emploi"))
    await submit(client, agency, body("once-1", "perte_emploi"))
    assert first.json() == second.json()
    stats = (await client.get(f"/agencies/{agency}/stats")).json()
    assert (stats["calls"], stats["requests"], stats["repeats"]) == (3, 2, 1)
    assert stats["per_request"] == {"twice-1": 2, "once-1": 1}
    assert stats["repeated"] == [{"request_id": "twice-1", "file_id": "DOS-2026-0001", "calls": 2}]
    assert len((await client.get(f"/agencies/{agency}/received")).json()) == 2  # first copies
    await client.post("/admin/reset")
    assert (await client.get(f"/agencies/{agency}/stats")).json()["calls"] == 0


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
    assert (await client.get("/agencies/urssaf/stats")).status_code == 404
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
                if httpx.get(f"{url}/health", timeout=1, verify=client_tls()).status_code == 200:
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
    with httpx.Client(base_url=simulator_url, timeout=5, verify=client_tls()) as c:
        assert c.get("/health").json()["status"] == "ok"
        sent = body("socket-1", "perte_emploi")
        r1 = c.post("/agencies/caf/requests", json=sent)
        r2 = c.post("/agencies/caf/requests", json=sent)
        assert r1.status_code == 200
        assert r1.json() == r2.json()
        assert r1.json() == ANSWERS[("caf", "socket-1", "perte_emploi")]
        assert c.get("/agencies/caf/received").json() == [sent]
        assert c.post("/agencies/unknown/requests", json=sent).status_code == 404


def test_real_process_slow_fault_trips_a_client_timeout(simulator_url: str) -> None:
    with httpx.Client(base_url=simulator_url, timeout=5, verify=client_tls()) as c:
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


def test_real_process_hold_tells_a_caller_still_waiting_from_one_that_gave_up(
    simulator_url: str,
) -> None:
    """The release says whether the caller still waited: a test that releases a held request
    knows its step happened while the agency held the request's only call."""
    with httpx.Client(base_url=simulator_url, timeout=5, verify=client_tls()) as c:
        c.post("/admin/faults", json={"agency": "caf", "mode": "hold"})
        try:
            with pytest.raises(httpx.ReadTimeout):  # a caller that gives up
                c.post("/agencies/caf/requests", json=body("socket-hold-1"), timeout=0.3)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(
                    httpx.post,
                    f"{simulator_url}/agencies/caf/requests",
                    json=body("socket-hold-2"),
                    timeout=30,
                )
                deadline = time.monotonic() + 10
                while len(c.get("/admin/faults/held").json()) < 2:
                    assert time.monotonic() < deadline, c.get("/admin/faults/held").json()
                    time.sleep(0.05)
                released = c.post("/admin/faults/release", json={"agency": "caf"}).json()
                assert [(r["request_id"], r["waiting"]) for r in released["released"]] == [
                    ("socket-hold-1", False),
                    ("socket-hold-2", True),
                ]
                assert waiting.result(timeout=10).status_code == 200
        finally:
            c.post("/admin/faults", json={"agency": "caf", "mode": "ok"})
        assert c.get("/admin/faults/held").json() == []
