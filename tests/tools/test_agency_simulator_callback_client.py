"""France Travail's simulator delivers its callbacks over real sockets
(agency_simulator.callback_client): to an HTTP server standing for the adapter's endpoint,
signed, again after a 503 or while nothing listens, and not again once accepted."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from agency_simulator import france_travail
from agency_simulator.app import create_app
from agency_simulator.callback_client import CallbackClient
from tests.tools import test_agency_simulator_identifiers as identifiers


class Endpoint:
    """The adapter's callback endpoint: answers each delivery with the next status given."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((json.loads(await request.read()), request.headers["X-Signature"]))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"statut": "recu"}, status=status)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve(endpoint: Endpoint, port: int) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/callbacks", endpoint.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def simulator(monkeypatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setattr(france_travail, "CALLBACK_DELAY_SECONDS", 0)
    monkeypatch.setattr(france_travail, "RETRY_FIRST_SECONDS", 0.05)
    app = create_app(("france_travail",), callback_secret="partage")
    assert isinstance(app.state.client, CallbackClient)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://simulator"
    ) as client:
        yield client
    await app.state.client.aclose()


def demande(request_id: str, port: int) -> dict[str, object]:
    return {**identifiers.demande(request_id), "callback_url": f"http://127.0.0.1:{port}/callbacks"}


async def status_of(simulator: httpx.AsyncClient, request_id: str) -> dict:
    response = await simulator.get(f"/agencies/france_travail/demandes/{request_id}")
    return dict(response.json())


async def until_delivered(simulator: httpx.AsyncClient, request_id: str) -> dict:
    for _ in range(200):
        status = await status_of(simulator, request_id)
        if status.get("delivered"):
            return status
        await asyncio.sleep(0.025)
    raise AssertionError(f"callback of {request_id} not delivered: {status}")


async def test_a_callback_refused_for_now_is_delivered_again_until_accepted(simulator) -> None:
    port = free_port()
    endpoint = Endpoint([503])
    runner = await serve(endpoint, port)
    try:
        await simulator.post("/agencies/france_travail/demandes", json=demande("ft-1", port))
        status = await until_delivered(simulator, "ft-1")
        await asyncio.sleep(0.2)  # nothing more comes once it is accepted
    finally:
        await runner.cleanup()
    assert (status["delivered"], status["last_status"]) == (1, 200)
    assert [body["request_id"] for body, _ in endpoint.received] == ["ft-1", "ft-1"]
    assert all(signature.startswith("t=") for _, signature in endpoint.received)


async def test_a_callback_nobody_listens_to_is_kept_and_delivered_later(simulator) -> None:
    port = free_port()
    await simulator.post("/agencies/france_travail/demandes", json=demande("ft-2", port))
    await asyncio.sleep(0.2)  # connection refused, maybe more than once: retried, not lost
    assert (await status_of(simulator, "ft-2"))["delivered"] == 0
    endpoint = Endpoint([])
    runner = await serve(endpoint, port)
    try:
        status = await until_delivered(simulator, "ft-2")
    finally:
        await runner.cleanup()
    assert status["last_status"] == 200
    assert [body["request_id"] for body, _ in endpoint.received] == ["ft-2"]
