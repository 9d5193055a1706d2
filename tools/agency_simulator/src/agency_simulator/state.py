"""The simulator's in-memory state, the faults an agency can be put in, and the one place
a request is answered (idempotent per ``(agency, request_id)``; every call is recorded all
the same, repeats included, and counted: :meth:`SimulatorState.stats`).

Fault modes (``POST /admin/faults``, per agency): ok, down (503), error500, slow, garbage (an
unreadable 200), invalid (a readable 200 of the wrong schema), silent (the agency
acknowledges and never decides), incomplete (the CPAM finds the first document incomplete),
reuse (the agency gives the next requests the reference and the callback id it gave the
previous one: the collision of issue 17, on purpose), no_callback (France Travail decides
but never calls back: the decision is on its status endpoint only) and hold (the agency keeps
each call's answer until a test releases it: :mod:`agency_simulator.hold`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from agency_simulator.decisions import (
    AGENCIES,
    UNDER_REVIEW,
    AgencyRequest,
    RequestedDocument,
    decide,
    document_request,
    reference,
)
from agency_simulator.hold import Holds
from agency_simulator.soap import soap_envelope

FaultMode = Literal[
    "ok",
    "down",
    "error500",
    "slow",
    "garbage",
    "invalid",
    "silent",
    "incomplete",
    "reuse",
    "no_callback",
    "hold",
]
DEFAULT_SLOW_SECONDS = 5.0


class FaultSetting(BaseModel):
    """Body of ``POST /admin/faults``."""

    agency: str
    mode: FaultMode
    seconds: float | None = Field(default=None, ge=0)


@dataclass
class Fault:
    mode: FaultMode = "ok"
    seconds: float | None = None


@dataclass
class SimulatorState:
    agencies: tuple[str, ...] = AGENCIES
    answers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    received: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {a: [] for a in AGENCIES}
    )
    #: Per agency, every call that reached it (request id, file id, time), repeats included.
    calls: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {a: [] for a in AGENCIES}
    )
    #: CPAM: documents sent again for a request already decided, per request id.
    documents_again: Counter[str] = field(default_factory=Counter)
    faults: dict[str, Fault] = field(default_factory=lambda: {a: Fault() for a in AGENCIES})
    awaiting: dict[str, tuple[AgencyRequest, RequestedDocument]] = field(default_factory=dict)
    documents: list[dict[str, Any]] = field(default_factory=list)
    #: Requests whose first document the CPAM found incomplete (fault mode "incomplete").
    found_incomplete: set[str] = field(default_factory=set)
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Per agency, the request each reference was issued to (references are unique per agency).
    issued: dict[str, dict[str, str]] = field(default_factory=lambda: {a: {} for a in AGENCIES})
    #: Per agency, the last reference and callback id issued (what fault mode "reuse" gives again).
    last_reference: dict[str, str] = field(default_factory=dict)
    last_callback_id: dict[str, str] = field(default_factory=dict)
    tasks: set[asyncio.Task] = field(default_factory=set)
    #: The secret France Travail signs its callbacks with (shared with its adapter); "": unsigned.
    callback_secret: str = ""
    #: The calls kept under fault mode "hold" until released.
    holds: Holds = field(default_factory=Holds)

    async def set_fault(self, agency: str, fault: Fault) -> None:
        """Put ``agency`` in ``fault``; what it held (mode "hold") is released."""
        self.faults[agency] = fault
        if fault.mode != "hold":
            await self.holds.release(agency)

    async def reset(self) -> None:
        await self.holds.release()
        self.answers.clear()
        self.awaiting.clear()
        self.documents.clear()
        self.found_incomplete.clear()
        self.callbacks.clear()
        self.last_reference.clear()
        self.last_callback_id.clear()
        self.documents_again.clear()
        for agency in AGENCIES:
            self.received[agency] = []
            self.calls[agency] = []
            self.faults[agency] = Fault()
            self.issued[agency] = {}

    def record_call(self, agency: str, body: AgencyRequest) -> None:
        """One more call of ``body``'s request at ``agency`` (a repeat is recorded too)."""
        self.calls[agency].append(
            {
                "request_id": body.request_id,
                "file_id": body.file_id,
                "at": datetime.now(UTC).isoformat(),
            }
        )

    def stats(self, agency: str) -> dict[str, Any]:
        """What ``agency`` was called with: ``calls`` (every call), ``requests`` (distinct
        request ids), ``repeats`` (calls repeating a request id already called), ``per_request``
        (calls per request id) and ``repeated`` (the request ids called more than once, with
        their file id and count); for the CPAM also ``documents_again`` (per request, how many
        times its document was sent again once the request was decided)."""
        calls = self.calls[agency]
        per_request = Counter(c["request_id"] for c in calls)
        file_of = {c["request_id"]: c["file_id"] for c in calls}
        stats: dict[str, Any] = {
            "calls": len(calls),
            "requests": len(per_request),
            "repeats": len(calls) - len(per_request),
            "per_request": dict(per_request),
            "repeated": [
                {"request_id": r, "file_id": file_of[r], "calls": n}
                for r, n in per_request.items()
                if n > 1
            ],
        }
        if agency == "cpam":
            stats["documents_again"] = [
                {"request_id": r, "file_id": file_of.get(r), "times": n}
                for r, n in self.documents_again.items()
            ]
        return stats

    def unique_reference(self, agency: str, request_id: str) -> str:
        """The request's reference, never one already issued to another request of the agency
        (unless fault mode "reuse" asks for the previous one again)."""
        if self.faults[agency].mode == "reuse" and agency in self.last_reference:
            return self.last_reference[agency]
        issued = self.issued[agency]
        attempt = 0
        while (ref := reference(agency, request_id, attempt)) in issued and issued[
            ref
        ] != request_id:
            attempt += 1
        issued[ref] = request_id
        self.last_reference[agency] = ref
        return ref

    def callback_id(self, agency: str) -> str:
        """A new callback id (a long random id), or the previous one under fault mode "reuse"."""
        if self.faults[agency].mode == "reuse" and agency in self.last_callback_id:
            return self.last_callback_id[agency]
        callback_id = f"cb-{uuid.uuid4().hex}"
        self.last_callback_id[agency] = callback_id
        return callback_id


def known_agency(agency: str, request: Request) -> str:
    served = request.app.state.simulator.agencies
    if agency not in served:
        raise HTTPException(
            status_code=404,
            detail=f"Unknown agency {agency!r}; expected one of {', '.join(served)}",
        )
    return agency


def get_state(request: Request) -> SimulatorState:
    return request.app.state.simulator


async def fault_response(
    state: SimulatorState,
    agency: str,
    request_id: str | None = None,
    request: Request | None = None,
) -> Response | None:
    """The injected fault's response for ``agency``, or None to answer normally. Under
    "hold", the call (about ``request_id``, from ``request``) waits for its release, then is
    answered normally."""
    fault = state.faults[agency]
    if fault.mode == "hold":
        await state.holds.hold(agency, request_id, request)
        return None
    if fault.mode == "down":
        return JSONResponse(
            status_code=503, content={"detail": f"{agency} unavailable (simulated outage)"}
        )
    if fault.mode == "error500":
        return JSONResponse(
            status_code=500, content={"detail": f"{agency} internal error (simulated)"}
        )
    if fault.mode == "slow":
        await asyncio.sleep(fault.seconds if fault.seconds is not None else DEFAULT_SLOW_SECONDS)
    if fault.mode == "garbage":
        body = (
            "<html><body>Erreur interne du frontal"
            if agency != "dgfip"
            else "<soap:Envelope><soap:Bo"
        )
        return Response(content=body, status_code=200, media_type="text/html")
    if fault.mode == "invalid":
        if agency == "dgfip":
            return Response(
                content=soap_envelope("<dgfip:Statut>OK</dgfip:Statut>"), media_type="text/xml"
            )
        return JSONResponse(content={"statut": "OK", "code": 0})
    return None


def answer_for(
    state: SimulatorState, agency: str, body: AgencyRequest, raw: dict[str, Any]
) -> dict[str, Any]:
    """The stored answer for a request, deciding (and keeping the body) the first time; every
    call is recorded (:meth:`SimulatorState.record_call`), a repeat too."""
    state.record_call(agency, body)
    key = (agency, body.request_id)
    stored = state.answers.get(key)
    if stored is not None:
        return stored
    # No await between the lookup above and the store below, so concurrent duplicates
    # (e.g. both sleeping under "slow") are still answered identically and kept once.
    asked = document_request(agency, body)
    if state.faults[agency].mode == "silent":
        # Taken, never decided: the request asked again gets the same acknowledgement.
        answer = {"agency_reference": "", "statut": UNDER_REVIEW}
    elif asked is not None:
        state.awaiting[body.request_id] = (body, asked.requested_document)  # type: ignore[assignment]
        answer = asked.model_dump(mode="json")
    else:
        answer = decide(agency, body).model_dump(mode="json")
    answer["agency_reference"] = state.unique_reference(agency, body.request_id)
    state.answers[key] = answer
    state.received[agency].append(raw)
    return answer
