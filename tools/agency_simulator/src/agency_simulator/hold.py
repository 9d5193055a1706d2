"""Fault mode ``hold``: the agency takes each call and keeps its answer until a test releases
it, so that a test acts while the agency provably still holds a request (instead of racing a
"slow" agency against the clock).

``POST /admin/faults {"agency": "caf", "mode": "hold"}`` holds every call to the agency
(requests, documents, status polls); ``GET /admin/faults/held`` lists the calls held;
``POST /admin/faults/release {"agency": "caf", "request_id": …}`` releases the held calls of
one request (or, without ``request_id``, all of the agency's) and answers what it released,
each with ``waiting``: whether its caller was still waiting for the answer when released (an
adapter that timed out and gave up shows ``false``). A released call is answered as in mode
ok. The mode stays ``hold`` for the next calls until another mode is set; setting another
mode, ``/admin/reset`` or the simulator's shutdown releases whatever is held.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field


class Release(BaseModel):
    """Body of ``POST /admin/faults/release``."""

    agency: str
    request_id: str | None = Field(
        default=None, description="Release this request's calls only; none: every held call."
    )


@dataclass
class HeldCall:
    """One call the agency holds."""

    agency: str
    #: The request the call is about (None where the call does not name one).
    request_id: str | None
    request: Request | None
    since: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def waiting(self) -> bool:
        """Whether the caller still waits for the answer (it has not hung up)."""
        return self.request is None or not await self.request.is_disconnected()

    async def describe(self) -> dict[str, Any]:
        return {
            "agency": self.agency,
            "request_id": self.request_id,
            "since": self.since,
            "waiting": await self.waiting(),
        }


@dataclass
class Holds:
    """The calls held, oldest first."""

    calls: list[HeldCall] = field(default_factory=list)

    async def hold(self, agency: str, request_id: str | None, request: Request | None) -> None:
        """Keep this call until it is released."""
        call = HeldCall(agency, request_id, request)
        self.calls.append(call)
        try:
            await call.released.wait()
        finally:
            if call in self.calls:
                self.calls.remove(call)

    async def held(self, agency: str | None = None) -> list[dict[str, Any]]:
        return [await c.describe() for c in self.calls if agency in (None, c.agency)]

    async def release(
        self, agency: str | None = None, request_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Release the held calls of ``agency`` (every agency: None), of ``request_id`` only if
        given; what was released, as it stood (``waiting``) just before."""
        chosen = [
            c
            for c in self.calls
            if agency in (None, c.agency) and request_id in (None, c.request_id)
        ]
        described = [await c.describe() for c in chosen]
        for call in chosen:
            self.calls.remove(call)
            call.released.set()
        return described
