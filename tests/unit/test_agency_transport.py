"""adapter_sdk.transport over real sockets: each way an agency's system can fail, sorted
into what to wait for (AgencyUnavailable), retry (AgencyFailed) or never retry
(AgencyRejected), and counted under the outcome the operators read."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import RawTestServer

from adapter_cpam import CpamAdapter
from adapter_sdk.interface import AgencyCall
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.transport import AgencyFailed, AgencyRejected, AgencyUnavailable, Transport

Answer = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def transport_to(url: str, timeout: float = 0.5) -> Transport:
    config = CpamAdapter.Config(
        database_url="sqlite+aiosqlite:///:memory:",
        agency_base_url=url,
        agency_timeout_seconds=timeout,
        breaker_threshold=50,
    )
    return Transport(config, "cpam", AdapterMetrics())


def outcomes(transport: Transport) -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for metric in transport.metrics.calls.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }


@pytest.fixture
async def agency() -> AsyncIterator[Callable[[Answer], Awaitable[Transport]]]:
    servers: list[RawTestServer] = []
    transports: list[Transport] = []

    async def serving(answer: Answer) -> Transport:
        server = RawTestServer(answer, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        transports.append(transport_to(str(server.make_url("/cpam"))))
        return transports[-1]

    yield serving
    for transport in transports:
        await transport.close()
    for server in servers:
        await server.close()


CALL = AgencyCall.json("/dossiers", {"demande": "GU-2026-AAAA0001-cpam"}, {"X-Trace": "t-1"})


async def test_an_answer_comes_back_with_its_body_and_headers_the_call_as_sent(agency):
    seen: dict[str, object] = {}

    async def answer(request: web.BaseRequest) -> web.Response:
        seen.update(
            method=request.method,
            path=request.path,
            body=await request.read(),
            type=request.headers["Content-Type"],
            trace=request.headers["X-Trace"],
        )
        return web.Response(status=201, body=b'{"ok":1}', headers={"X-Agency-Ref": "R-1"})

    transport = await agency(answer)
    reply = await transport.send(CALL)

    assert (reply.status, reply.body, reply.headers["x-agency-ref"]) == (201, b'{"ok":1}', "R-1")
    assert seen == {
        "method": "POST",
        "path": "/cpam/dossiers",
        "body": CALL.body,
        "type": "application/json",
        "trace": "t-1",
    }
    assert outcomes(transport) == {"ok": 1.0}


@pytest.mark.parametrize(
    "status, error, outcome, words",
    [
        (503, AgencyUnavailable, "indisponible", "cpam indisponible (HTTP 503)"),
        (500, AgencyFailed, "erreur_serveur", "cpam en erreur (HTTP 500) : panne"),
        (429, AgencyFailed, "erreur_serveur", "cpam en erreur (HTTP 429) : panne"),
        (422, AgencyRejected, "refus_appel", "cpam a refusé l'appel (HTTP 422) : panne"),
    ],
)
async def test_an_error_status_is_sorted_by_what_retrying_can_do(
    agency, status, error, outcome, words
):
    async def answer(request: web.BaseRequest) -> web.Response:
        return web.Response(status=status, text="panne")

    transport = await agency(answer)
    with pytest.raises(error) as raised:
        await transport.send(CALL)
    assert str(raised.value) == words
    assert outcomes(transport) == {outcome: 1.0}


async def test_an_agency_that_takes_the_call_and_does_not_answer_in_time_failed(agency):
    async def answer(request: web.BaseRequest) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="trop tard")

    transport = await agency(answer)
    with pytest.raises(AgencyFailed, match="cpam n'a pas répondu à temps"):
        await transport.send(CALL)
    assert outcomes(transport) == {"delai_depasse": 1.0}


async def test_a_connection_dropped_before_the_answer_is_waited_out(agency):
    async def answer(request: web.BaseRequest) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()  # the agency's side goes away mid-call
        await asyncio.sleep(0.1)
        return web.Response(text="jamais lu")

    transport = await agency(answer)
    with pytest.raises(AgencyUnavailable, match="cpam : connexion interrompue"):
        await transport.send(CALL)
    assert outcomes(transport) == {"injoignable": 1.0}


async def test_an_agency_refusing_connections_is_waited_out():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = transport_to(f"http://127.0.0.1:{port}/cpam")
    try:
        with pytest.raises(AgencyUnavailable, match="cpam injoignable"):
            await transport.send(CALL)
        assert outcomes(transport) == {"injoignable": 1.0}
    finally:
        await transport.close()


async def test_calls_in_a_row_share_one_kept_alive_connection(agency):
    peers: set[object] = set()

    async def answer(request: web.BaseRequest) -> web.Response:
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(text="{}")

    transport = await agency(answer)
    for _ in range(3):
        await transport.send(CALL)
    assert len(peers) == 1 and None not in peers
