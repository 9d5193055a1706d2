"""DGFiP's system: SOAP-style XML in, XML out (``POST /agencies/dgfip/soap``), a
``soap:Fault`` for a bad request."""

from __future__ import annotations

from typing import Any

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from agency_simulator.soap import parse_soap_request, soap_answer, soap_fault
from agency_simulator.state import SimulatorState, answer_for, fault_response, get_state

router = APIRouter()


@router.post("/agencies/dgfip/soap")
async def soap(request: Request, state: SimulatorState = Depends(get_state)) -> Any:
    """DGFiP: SOAP-style XML in, XML out."""
    if "dgfip" not in state.agencies:
        raise HTTPException(status_code=404, detail="dgfip not served here")
    text = (await request.body()).decode("utf-8", errors="replace")
    try:
        body, raw = parse_soap_request(text)
    except (DefusedET.ParseError, ValueError, DefusedXmlException) as exc:
        unreadable = soap_fault(f"requête invalide : {exc}")
        return await fault_response(state, "dgfip", None, request) or unreadable
    faulty = await fault_response(state, "dgfip", body.request_id, request)
    if faulty is not None:
        return faulty
    answer = answer_for(state, "dgfip", body, raw)
    return Response(content=soap_answer(answer), media_type="text/xml")
