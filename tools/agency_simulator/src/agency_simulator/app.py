"""HTTP simulator of the four partner agencies' own systems, each speaking its own way:

* CAF — JSON REST, answers at once: ``POST /agencies/caf/requests``.
* DGFiP — XML/SOAP-style: ``POST /agencies/dgfip/soap`` (SOAP 1.1 envelope in, envelope out,
  a ``soap:Fault`` for a bad request).
* France Travail — asynchronous: ``POST /agencies/france_travail/demandes`` acknowledges with
  202 and a reference, then POSTs the decision to the request's ``callback_url`` (retrying
  until the adapter answers it); ``POST /admin/callbacks/{request_id}/replay`` delivers the
  same callback (same ``callback_id``) once more; ``GET …/demandes/{request_id}`` is its
  status endpoint (see :mod:`agency_simulator.france_travail`).
* CPAM — JSON REST that asks for a missing document: for a sick leave (``arret_maladie``)
  the first answer is ``piece_demandee`` (the employer's salary certificate); the document
  goes to ``POST /agencies/cpam/requests/{request_id}/pieces`` (multipart) and the CPAM
  then decides.

The simulator is deterministic: every decision is derived from a SHA-256 hash of
``"{agency}:{request_id}"`` (see :func:`decide`), never from randomness or the clock, so a
test can predict what an agency will answer (:mod:`agency_simulator.decisions`). Requests are
idempotent per ``(agency, request_id)``: a repeated request gets the stored answer back and
its body is kept once (``/received``), but every call is recorded and counted, repeats
included: ``GET /agencies/{agency}/stats`` gives ``calls``, ``requests``, ``repeats``,
``per_request`` and ``repeated``, so a test can see a request sent twice. Agency references
are unique per agency (twelve digits, checked against those issued) and callback ids are
long random ids.

Common endpoints: ``GET /agencies/{agency}/received`` (bodies the agency accepted, first copy
only, exactly as sent), ``GET /agencies/{agency}/stats`` (every call counted),
``GET /health``, ``GET /admin/pending`` (callbacks not yet delivered, calls held: what a test
waits for before it says nothing more will happen), ``POST|GET /admin/faults`` (per agency:
ok, down (503), error500, slow, garbage (an unreadable 200), invalid (a readable 200 of the
wrong schema), silent (the agency acknowledges receipt — "en instruction" — and never decides: a 202
``{"agency_reference", "statut": "en_instruction"}`` in JSON, a SOAP answer with
``<Statut>EN_INSTRUCTION</Statut>`` and no decision, no France Travail callback, and a
CPAM that takes the awaited document without deciding; the legal clock then runs out,
for deadline tests), incomplete (the CPAM finds the first document sent for a request
incomplete and asks for it again; the next one is complete), reuse (the previous reference
and callback id are given again: issue 17's collision, on purpose), no_callback (France
Travail decides but never calls back: its status endpoint only has the decision), hold (each
call's answer is kept until ``POST /admin/faults/release``; ``GET /admin/faults/held`` lists
the calls held, see :mod:`agency_simulator.hold`); see :mod:`agency_simulator.state`),
``POST /admin/reset``. ``agency-simulator --agency caf`` runs one
agency's system alone, as its own process.

Decision texts (summary, reason) are in French because agents and citizens read them.
"""

from __future__ import annotations

import hashlib
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse

from agency_simulator import dgfip, france_travail
from agency_simulator.callback_client import CallbackClient
from agency_simulator.decisions import (
    AGENCIES,
    UNDER_REVIEW,
    AgencyAnswer,
    AgencyRequest,
    decide,
)
from agency_simulator.hold import Release
from agency_simulator.soap import DGFIP_NS, SOAP_NS
from agency_simulator.state import (
    Fault,
    FaultSetting,
    SimulatorState,
    answer_for,
    fault_response,
    get_state,
    known_agency,
)

__all__ = [
    "AGENCIES",
    "DGFIP_NS",
    "SOAP_NS",
    "AgencyAnswer",
    "AgencyRequest",
    "create_app",
    "decide",
]


def create_app(agencies: tuple[str, ...] = AGENCIES, callback_secret: str = "") -> FastAPI:
    """A fresh simulator with empty state, serving ``agencies`` (default: all four);
    France Travail signs its callbacks with ``callback_secret`` (none: unsigned)."""
    unknown = set(agencies) - set(AGENCIES)
    if unknown:
        raise ValueError(f"unknown agencies {sorted(unknown)}")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await app.state.simulator.holds.release()
        for task in list(app.state.simulator.tasks):
            task.cancel()
        await app.state.client.aclose()

    app = FastAPI(
        title="Agency simulator",
        description="Deterministic stand-in for the CAF, DGFiP, France Travail and CPAM systems.",
        lifespan=lifespan,
    )
    app.state.simulator = SimulatorState(agencies=tuple(agencies), callback_secret=callback_secret)
    app.state.client = CallbackClient()  # France Travail's callbacks
    app.include_router(dgfip.router)
    app.include_router(france_travail.router)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "agencies": list(app.state.simulator.agencies)}

    @app.post(
        "/agencies/{agency}/requests",
        response_model=AgencyAnswer,
        response_model_exclude_none=False,
    )
    async def submit_request(
        body: AgencyRequest,
        request: Request,
        agency: str = Depends(known_agency),
        state: SimulatorState = Depends(get_state),
    ) -> Any:
        """JSON REST (CAF, CPAM)."""
        if agency in ("dgfip", "france_travail"):
            where = {
                "dgfip": "POST /agencies/dgfip/soap (SOAP)",
                "france_travail": "POST /agencies/france_travail/demandes",
            }
            raise HTTPException(
                status_code=404, detail=f"{agency} does not speak JSON REST: use {where[agency]}"
            )
        faulty = await fault_response(state, agency, body.request_id, request)
        if faulty is not None:
            return faulty
        answer = answer_for(state, agency, body, await request.json())
        if "decision" not in answer:
            return JSONResponse(status_code=202, content=answer)
        return answer

    @app.post("/agencies/cpam/requests/{request_id}/pieces")
    async def submit_document(
        request_id: str,
        request: Request,
        code: str = Form(...),
        fichier: UploadFile = File(...),
        state: SimulatorState = Depends(get_state),
    ) -> Any:
        """CPAM: the document it asked for; it then decides."""
        if "cpam" not in state.agencies:
            raise HTTPException(status_code=404, detail="cpam not served here")
        faulty = await fault_response(state, "cpam", request_id, request)
        if faulty is not None:
            return faulty
        content = await fichier.read()
        key = ("cpam", request_id)
        if key not in state.answers:
            raise HTTPException(status_code=404, detail=f"demande {request_id} inconnue")
        if request_id not in state.awaiting:
            state.documents_again[request_id] += 1  # counted: a sender that tries twice shows
            return state.answers[key]  # already decided: the same document sent again
        body, wanted = state.awaiting[request_id]
        if code != wanted.code:
            raise HTTPException(
                status_code=422, detail=f"pièce attendue : {wanted.code}, reçue : {code}"
            )
        state.documents.append(
            {
                "request_id": request_id,
                "code": code,
                "filename": fichier.filename,
                "media_type": fichier.content_type,
                "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        )
        if state.faults["cpam"].mode == "incomplete" and request_id not in state.found_incomplete:
            state.found_incomplete.add(request_id)  # still awaited: the same document, complete
            answer = {
                **state.answers[key],
                "decision": "piece_demandee",
                "summary": (
                    f"Pièce incomplète : {wanted.label} (la page des salaires manque), à "
                    "renvoyer complète"
                ),
            }
            state.answers[key] = answer
            return answer
        del state.awaiting[request_id]
        if state.faults["cpam"].mode == "silent":  # takes the document, then never decides
            answer = {"statut": UNDER_REVIEW}
        else:
            answer = decide("cpam", body).model_dump(mode="json")
        answer["agency_reference"] = state.answers[key]["agency_reference"]
        state.answers[key] = answer
        return answer

    @app.get("/agencies/cpam/documents")
    async def documents(state: SimulatorState = Depends(get_state)) -> list[dict[str, Any]]:
        return state.documents

    @app.get("/agencies/{agency}/received")
    async def received(
        agency: str = Depends(known_agency), state: SimulatorState = Depends(get_state)
    ) -> list[dict[str, Any]]:
        return state.received[agency]

    @app.get("/agencies/{agency}/stats")
    async def stats(
        agency: str = Depends(known_agency), state: SimulatorState = Depends(get_state)
    ) -> dict[str, Any]:
        """Every call the agency got, repeats included (see SimulatorState.stats)."""
        return state.stats(agency)

    @app.post("/admin/faults")
    async def set_fault(
        setting: FaultSetting, request: Request, state: SimulatorState = Depends(get_state)
    ) -> dict[str, Any]:
        known_agency(setting.agency, request)
        await state.set_fault(setting.agency, Fault(mode=setting.mode, seconds=setting.seconds))
        return {"agency": setting.agency, "mode": setting.mode, "seconds": setting.seconds}

    @app.get("/admin/faults")
    async def get_faults(state: SimulatorState = Depends(get_state)) -> dict[str, Any]:
        return {
            agency: {"mode": fault.mode, "seconds": fault.seconds}
            for agency, fault in state.faults.items()
            if agency in state.agencies
        }

    @app.get("/admin/pending")
    async def pending(state: SimulatorState = Depends(get_state)) -> dict[str, int]:
        """Work the simulator still has to do on its own: France Travail's callbacks not yet
        delivered (or still retried), and the calls it holds (fault mode "hold")."""
        return {
            "callbacks": sum(1 for task in state.tasks if not task.done()),
            "held": len(state.holds.calls),
        }

    @app.get("/admin/faults/held")
    async def held(state: SimulatorState = Depends(get_state)) -> list[dict[str, Any]]:
        """The calls held under fault mode "hold", oldest first (see agency_simulator.hold)."""
        return await state.holds.held()

    @app.post("/admin/faults/release")
    async def release(
        body: Release, request: Request, state: SimulatorState = Depends(get_state)
    ) -> dict[str, Any]:
        """Release the agency's held calls (of one request, with ``request_id``): each is
        answered as in mode ok. Answers what was released, ``waiting`` telling whether the
        caller still waited for it."""
        known_agency(body.agency, request)
        return {"released": await state.holds.release(body.agency, body.request_id)}

    @app.post("/admin/reset")
    async def reset(state: SimulatorState = Depends(get_state)) -> dict[str, str]:
        await state.reset()
        return {"status": "reset"}

    return app
