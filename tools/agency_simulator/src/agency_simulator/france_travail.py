"""France Travail's system: asynchronous.

``POST /agencies/france_travail/demandes`` acknowledges with 202 and a reference, then POSTs
the decision to the request's ``callback_url`` with a new callback id (a long random id),
retrying while the adapter is unreachable or in error (5xx, 408, 429) and stopping at its
first answer otherwise: accepted (2xx) or refused (another 4xx, e.g. 409 for a reused callback
id). ``GET …/demandes/{request_id}`` is the status endpoint (the decision, or ``statut:
en_instruction`` while there is none); ``POST /admin/callbacks/{request_id}/replay`` delivers
the same callback (same ``callback_id``) once more, signed anew (``?exact=true``: the last
delivery's very bytes and signature, as an eavesdropper replaying it would).

Every delivery is signed as France Travail signs (docs/adapters.md, "Signing callbacks"):
``X-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>." + body>`` with the secret it shares
with the adapter (``--callback-secret`` / ``CALLBACK_SECRET``); without a secret, unsigned.

Fault modes of note: ``reuse`` (the next requests get the previous reference and callback
id again), ``no_callback`` (decides, never calls back), ``silent`` (never decides).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import Field

from agency_simulator.callback_client import DELIVERY_ERRORS, CallbackClient, Reply
from agency_simulator.decisions import UNDER_REVIEW, AgencyRequest
from agency_simulator.state import SimulatorState, answer_for, fault_response, get_state

AGENCY = "france_travail"
CALLBACK_ATTEMPTS = 60
CALLBACK_DELAY_SECONDS = 0.3
#: Wait before the second delivery of a callback; doubles each time, up to RETRY_MAX_SECONDS.
RETRY_FIRST_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
#: Statuses after which a callback is delivered again: the adapter may take it later.
RETRIED = frozenset({408, 429})

router = APIRouter()


class FranceTravailRequest(AgencyRequest):
    callback_url: str = Field(min_length=8)


def signed(state: SimulatorState, body: bytes, not_before: int = 0) -> dict[str, str]:
    """The headers of one delivery of `body`: JSON, and France Travail's signature (made
    with the standard library only, as any agency would). The timestamp is in seconds and
    never before `not_before`: a delivery signed anew within the second of the previous one
    would otherwise carry the same signature, which the adapter refuses as a replay."""
    headers = {"Content-Type": "application/json"}
    if state.callback_secret:
        t = max(int(time.time()), not_before)
        mac = hmac.new(state.callback_secret.encode(), f"{t}.".encode() + body, hashlib.sha256)
        headers["X-Signature"] = f"t={t},v1={mac.hexdigest()}"
    return headers


async def post_callback(
    state: SimulatorState, record: dict[str, Any], client: CallbackClient
) -> Reply:
    """One delivery, signed anew; kept as the record's last delivery."""
    body = json.dumps(record["body"]).encode()
    headers = signed(state, body, not_before=record.get("signed_at", 0) + 1)
    record["signed_at"] = int(headers.get("X-Signature", "t=0,").split(",")[0][2:] or 0)
    record["last_delivery"] = (body, headers)
    return await client.post(record["url"], content=body, headers=headers, timeout=5)


async def deliver(state: SimulatorState, request_id: str, client: CallbackClient) -> int | None:
    """POST the stored callback until the adapter answers it (2xx, or a refusal: 4xx other
    than 408/429); returns the last status, also kept in the record (``last_status``)."""
    record = state.callbacks[request_id]
    status = None
    for attempt in range(CALLBACK_ATTEMPTS):
        try:
            response = await post_callback(state, record, client)
            status = record["last_status"] = response.status_code
            if response.is_success:
                record["delivered"] += 1
                return status
            if 400 <= status < 500 and status not in RETRIED:
                return status  # refused: sending it again would be refused again
        except DELIVERY_ERRORS:
            status = None
        await asyncio.sleep(min(RETRY_FIRST_SECONDS * 2**attempt, RETRY_MAX_SECONDS))
    return status


def spawn(request: Request, coro: Any) -> None:
    state: SimulatorState = request.app.state.simulator
    task = asyncio.create_task(coro)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


@router.post("/agencies/france_travail/demandes", status_code=202)
async def demande(
    body: FranceTravailRequest, request: Request, state: SimulatorState = Depends(get_state)
) -> Any:
    """France Travail: acknowledges at once, answers later on ``callback_url``."""
    if AGENCY not in state.agencies:
        raise HTTPException(status_code=404, detail="france_travail not served here")
    faulty = await fault_response(state, AGENCY, body.request_id, request)
    if faulty is not None:
        return faulty
    first = (AGENCY, body.request_id) not in state.answers
    answer = answer_for(state, AGENCY, body, await request.json())
    if first and "decision" in answer:
        state.callbacks[body.request_id] = {
            "url": body.callback_url,
            "body": {
                "callback_id": state.callback_id(AGENCY),
                "request_id": body.request_id,
                "reference": answer["agency_reference"],
                "decision": answer,
            },
            "delivered": 0,
            "last_status": None,
        }
        if state.faults[AGENCY].mode != "no_callback":
            client = request.app.state.client

            async def later() -> None:
                await asyncio.sleep(CALLBACK_DELAY_SECONDS)
                await deliver(state, body.request_id, client)

            spawn(request, later())
    return {
        "reference": answer["agency_reference"],
        "request_id": body.request_id,
        "statut": "recue",
    }


@router.get("/agencies/france_travail/demandes/{request_id}")
async def demande_status(
    request_id: str, request: Request, state: SimulatorState = Depends(get_state)
) -> Any:
    """Where a request stands: its decision (with the callback sent for it, how many times it
    was accepted and the adapter's last status), or ``en_instruction``."""
    faulty = await fault_response(state, AGENCY, request_id, request)
    if faulty is not None:
        return faulty
    record = state.callbacks.get(request_id)
    if record is not None:
        return {
            **record["body"],
            "delivered": record["delivered"],
            "last_status": record["last_status"],
        }
    taken = state.answers.get((AGENCY, request_id))
    if taken is None:
        raise HTTPException(status_code=404, detail=f"demande {request_id} inconnue")
    return {
        "request_id": request_id,
        "reference": taken["agency_reference"],
        "statut": UNDER_REVIEW,
        "delivered": 0,
    }


@router.post("/admin/callbacks/{request_id}/replay")
async def replay(
    request_id: str,
    request: Request,
    exact: bool = False,
    state: SimulatorState = Depends(get_state),
) -> dict[str, Any]:
    """Deliver the same callback (same callback_id) once more, as a flaky network would:
    signed anew, or (``exact``) the last delivery's bytes and signature as they were."""
    record = state.callbacks.get(request_id)
    if record is None:
        raise HTTPException(status_code=404, detail=f"demande {request_id} inconnue")
    client: CallbackClient = request.app.state.client
    if exact and record.get("last_delivery"):
        body, headers = record["last_delivery"]
        response = await client.post(record["url"], content=body, headers=headers, timeout=5)
    else:
        response = await post_callback(state, record, client)
    return {"status": response.status_code, "body": response.json()}
