"""The simulator's identifiers (issue 17): references and callback ids unique per agency, a
fault mode that reuses them on purpose, one that never calls back, and callback delivery
that stops at a refusal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from agency_simulator import decisions, france_travail
from agency_simulator.app import create_app
from agency_simulator.state import SimulatorState


def demande(request_id: str) -> dict[str, object]:
    return {
        "request_id": request_id,
        "file_id": "DOS-2026-0009",
        "life_event": "perte_emploi",
        "citizen": {"given_name": "Camille", "family_name": "Martin"},
        "description": "Fin de contrat",
        "callback_url": "http://adapter.test/callbacks",
    }


class Adapter:
    """A stand-in for the adapter's callback endpoint, answering with a chosen status."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(json.loads(request.content))
        return httpx.Response(self.status, json={"statut": "recu"})


@pytest.fixture
async def sim(monkeypatch) -> AsyncIterator[tuple[httpx.AsyncClient, Adapter]]:
    monkeypatch.setattr(france_travail, "CALLBACK_DELAY_SECONDS", 0)
    app = create_app()
    adapter = Adapter()
    app.state.client = httpx.AsyncClient(transport=httpx.MockTransport(adapter))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://simulator"
    ) as c:
        yield c, adapter
    await app.state.client.aclose()


async def settle(adapter: Adapter, count: int) -> None:
    for _ in range(100):
        if len(adapter.received) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} callback(s) expected, {len(adapter.received)} received")


async def no_callback_pending(client: httpx.AsyncClient) -> None:
    """Until France Travail has no callback left to deliver (none scheduled, or every one
    delivered or given up): after that, nothing more reaches the adapter."""
    for _ in range(500):
        if (await client.get("/admin/pending")).json()["callbacks"] == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"callbacks still pending: {(await client.get('/admin/pending')).json()}")


def test_references_are_unique_per_agency_even_when_their_hashes_collide(monkeypatch) -> None:
    state = SimulatorState()
    # Make every first draw the same number: the state still issues distinct references.
    real = decisions.reference
    monkeypatch.setattr(
        "agency_simulator.state.reference",
        lambda agency, request_id, attempt=0: real(
            agency, "same" if attempt == 0 else request_id, attempt
        ),
    )
    refs = {state.unique_reference("france_travail", f"r-{i}") for i in range(50)}
    assert len(refs) == 50
    assert (
        state.unique_reference("france_travail", "r-7") in refs
    )  # the same request: its own reference


def test_twelve_digit_references_do_not_collide_at_a_realistic_volume() -> None:
    refs = {
        decisions.reference("france_travail", f"GU-2026-{i:06d}-france_travail")
        for i in range(20_000)
    }
    assert len(refs) == 20_000


async def test_callback_ids_are_long_random_and_distinct(sim) -> None:
    client, adapter = sim
    for i in range(5):
        assert (
            await client.post("/agencies/france_travail/demandes", json=demande(f"id-{i}"))
        ).status_code == 202
    await settle(adapter, 5)
    ids = [c["callback_id"] for c in adapter.received]
    assert len(set(ids)) == 5 and all(len(i) >= 32 for i in ids)
    assert len({c["reference"] for c in adapter.received}) == 5


async def test_reuse_gives_the_previous_reference_and_callback_id_again(sim) -> None:
    client, adapter = sim
    first = (await client.post("/agencies/france_travail/demandes", json=demande("reuse-1"))).json()
    await client.post("/admin/faults", json={"agency": "france_travail", "mode": "reuse"})
    second = (
        await client.post("/agencies/france_travail/demandes", json=demande("reuse-2"))
    ).json()
    await settle(adapter, 2)
    assert second["reference"] == first["reference"]
    one, two = adapter.received
    assert (one["request_id"], two["request_id"]) == ("reuse-1", "reuse-2")
    assert one["callback_id"] == two["callback_id"]


async def test_no_callback_decides_and_only_the_status_endpoint_says_so(sim) -> None:
    client, adapter = sim
    await client.post("/admin/faults", json={"agency": "france_travail", "mode": "no_callback"})
    await client.post("/agencies/france_travail/demandes", json=demande("mute-1"))
    await no_callback_pending(client)  # none was scheduled
    assert adapter.received == []
    status = (await client.get("/agencies/france_travail/demandes/mute-1")).json()
    assert status["decision"]["decision"] in ("accorde", "refuse") and status["delivered"] == 0


async def test_a_refused_callback_is_not_sent_again_but_a_failing_adapter_is_retried(
    sim, monkeypatch
) -> None:
    client, adapter = sim
    adapter.status = 409
    await client.post("/agencies/france_travail/demandes", json=demande("refused-1"))
    await settle(adapter, 1)
    await no_callback_pending(client)  # the delivery stopped at the refusal
    assert len(adapter.received) == 1
    status = (await client.get("/agencies/france_travail/demandes/refused-1")).json()
    assert (status["delivered"], status["last_status"]) == (0, 409)

    adapter.status = 500
    monkeypatch.setattr(france_travail, "RETRY_FIRST_SECONDS", 0.001)
    await client.post("/agencies/france_travail/demandes", json=demande("failing-1"))
    await settle(adapter, 4)  # the first delivery and its retries
    adapter.status = 200
    for _ in range(100):
        status = (await client.get("/agencies/france_travail/demandes/failing-1")).json()
        if status["delivered"]:
            break
        await asyncio.sleep(0.02)
    assert status["delivered"] == 1 and status["last_status"] == 200


async def test_the_status_endpoint_is_subject_to_the_agency_s_faults(sim) -> None:
    client, _ = sim
    await client.post("/agencies/france_travail/demandes", json=demande("down-1"))
    await client.post("/admin/faults", json={"agency": "france_travail", "mode": "down"})
    assert (await client.get("/agencies/france_travail/demandes/down-1")).status_code == 503
    await client.post("/admin/faults", json={"agency": "france_travail", "mode": "ok"})
    assert (await client.get("/agencies/france_travail/demandes/unknown")).status_code == 404


async def test_france_travail_signs_each_delivery_as_the_adapter_checks_it(monkeypatch) -> None:
    """Issue 12: the simulator signs with the shared secret, anew for each delivery; an
    `exact` replay sends the same bytes and signature again."""
    import time

    from adapter_sdk import signatures

    monkeypatch.setattr(france_travail, "CALLBACK_DELAY_SECONDS", 0)
    app = create_app(("france_travail",), callback_secret="partage")
    seen: list[tuple[bytes, str]] = []

    def adapter(request: httpx.Request) -> httpx.Response:
        seen.append((request.content, request.headers["x-signature"]))
        return httpx.Response(200, json={"statut": "recu"})

    app.state.client = httpx.AsyncClient(transport=httpx.MockTransport(adapter))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://simulator"
    ) as client:
        await client.post("/agencies/france_travail/demandes", json=demande("id-signe"))
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        await client.post("/admin/callbacks/id-signe/replay", params={"exact": "true"})
    await app.state.client.aclose()
    (body, header), (again, again_header) = seen
    signed = signatures.verify(["partage"], header, body, time.time(), 300)
    assert json.loads(body)["request_id"] == "id-signe" and signed.timestamp
    assert (again, again_header) == (body, header)
    with pytest.raises(signatures.SignatureRefused):
        signatures.verify(["autre"], header, body, time.time(), 300)


def test_two_deliveries_signed_in_the_same_second_carry_different_signatures():
    """A redelivery signed anew must not look like a replay to the adapter, even within the
    second of the previous delivery (the signature's timestamp is in whole seconds)."""
    state = SimulatorState(callback_secret="s3cret")
    body = json.dumps({"request_id": "R-1", "callback_id": "cb-1"}).encode()
    first = france_travail.signed(state, body)["X-Signature"]
    first_t = int(first.split(",")[0].removeprefix("t="))
    again = france_travail.signed(state, body, not_before=first_t + 1)["X-Signature"]
    assert int(again.split(",")[0].removeprefix("t=")) >= first_t + 1
    assert again != first
