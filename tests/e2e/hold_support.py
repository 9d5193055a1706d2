"""An agency that holds its answer until the test releases it (the simulator's fault mode
"hold", see agency_simulator.hold): the test acts while the agency provably still holds a
request, instead of racing an agency made slow for a few seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from devstack.stack import Stack
from tests.e2e.support import eventually, simulator


class HeldAgency:
    """One agency in fault mode "hold" (`agency_holds`)."""

    def __init__(self, sim: httpx.AsyncClient, agency: str) -> None:
        self.sim = sim
        self.agency = agency

    async def held(self, request_id: str) -> list[dict[str, Any]]:
        calls = (await self.sim.get("/admin/faults/held")).json()
        return [c for c in calls if (c["agency"], c["request_id"]) == (self.agency, request_id)]

    async def holding(self, request_id: str) -> dict[str, Any]:
        """The request's call, once the agency holds it (its adapter waits for the answer)."""

        async def held_once() -> dict[str, Any] | None:
            calls = await self.held(request_id)
            assert len(calls) <= 1, f"{self.agency} called again for {request_id}: {calls}"
            return calls[0] if calls and calls[0]["waiting"] else None

        return await eventually(held_once, what=f"{self.agency} holding {request_id}")

    async def release(self, request_id: str) -> None:
        """Answer the request; fails unless its first and only call was still awaited, so
        what the test did meanwhile happened while the agency held the request."""
        released = (
            await self.sim.post(
                "/admin/faults/release", json={"agency": self.agency, "request_id": request_id}
            )
        ).json()["released"]
        assert [(c["request_id"], c["waiting"]) for c in released] == [(request_id, True)], (
            f"{self.agency} should hold one call of {request_id}, still awaited by its adapter "
            f"(a retry or a call given up means the adapter timed out meanwhile): {released}"
        )


@asynccontextmanager
async def agency_holds(stack: Stack, agency: str) -> AsyncIterator[HeldAgency]:
    """`agency` holds every answer until `release`; back to mode ok (every held call answered)
    on the way out."""
    async with simulator(stack, agency, timeout=10) as sim:
        r = await sim.post("/admin/faults", json={"agency": agency, "mode": "hold"})
        assert r.status_code == 200, r.text
        try:
            yield HeldAgency(sim, agency)
        finally:
            await sim.post("/admin/faults", json={"agency": agency, "mode": "ok"})
