"""HTTP simulator of the four partner agencies' own systems, each speaking its own way:

* CAF — JSON REST, answers at once: ``POST /agencies/caf/requests``.
* DGFiP — XML/SOAP-style: ``POST /agencies/dgfip/soap`` (SOAP 1.1 envelope in, envelope out,
  a ``soap:Fault`` for a bad request).
* France Travail — asynchronous: ``POST /agencies/france_travail/demandes`` acknowledges with
  202 and a reference, then POSTs the decision to the request's ``callback_url`` (retrying
  until the callback is accepted); ``POST /admin/callbacks/{request_id}/replay`` delivers the
  same callback (same ``callback_id``) once more; ``GET …/demandes/{request_id}`` reads it.
* CPAM — JSON REST that asks for a missing document: for a sick leave (``arret_maladie``)
  the first answer is ``piece_demandee`` (the employer's salary certificate); the document
  goes to ``POST /agencies/cpam/requests/{request_id}/pieces`` (multipart) and the CPAM
  then decides.

The simulator is deterministic: every decision is derived from a SHA-256 hash of
``"{agency}:{request_id}"`` (see :func:`decide`), never from randomness or the clock, so a
test can predict what an agency will answer. Requests are idempotent per
``(agency, request_id)``: a repeated request gets the stored answer back and is recorded once.

Common endpoints: ``GET /agencies/{agency}/received`` (bodies the agency accepted, first copy
only, exactly as sent), ``GET /health``, ``POST|GET /admin/faults`` (per agency: ok, down
(503), error500, slow, garbage (an unreadable 200), invalid (a readable 200 of the wrong
schema), silent (the agency acknowledges receipt — "en instruction" — and never decides:
a 202 ``{"agency_reference", "statut": "en_instruction"}`` in JSON, a SOAP answer with
``<Statut>EN_INSTRUCTION</Statut>`` and no decision, no France Travail callback, and a
CPAM that takes the awaited document without deciding; the legal clock then runs out,
for deadline tests), incomplete (the CPAM finds the first document sent for a request
incomplete and asks for it again; the next one is complete)), ``POST /admin/reset``. ``agency-simulator --agency caf`` runs one agency's system
alone, as its own process.

Decision texts (summary, reason) are in French because agents and citizens read them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import unicodedata
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from xml.sax.saxutils import escape

import defusedxml.ElementTree as DefusedET
import httpx
from defusedxml import DefusedXmlException
from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

AGENCIES: tuple[str, ...] = ("caf", "dgfip", "france_travail", "cpam", "ants")

REFERENCE_PREFIX: dict[str, str] = {
    "caf": "CAF",
    "dgfip": "DGFIP",
    "france_travail": "FT",
    "cpam": "CPAM",
    "ants": "ANTS",
}

# Out of 100 hash buckets, how many end in a refusal (about 10%).
REFUSAL_PERCENT = 10

# Year used in agency references and in the range of start dates.
SIMULATED_YEAR = 2026

DEFAULT_SLOW_SECONDS = 5.0

Decision = Literal["accorde", "refuse", "piece_demandee"]
FaultMode = Literal["ok", "down", "error500", "slow", "garbage", "invalid", "silent", "incomplete"]

#: Status of a request an agency took without deciding (fault mode "silent").
UNDER_REVIEW = "en_instruction"


class AgencyRequest(BaseModel):
    """Body of ``POST /agencies/{agency}/requests``."""

    model_config = ConfigDict(extra="allow")

    request_id: str = Field(min_length=1)
    file_id: str = Field(min_length=1)
    life_event: str
    citizen: dict[str, Any]
    description: str | None = None


class RequestedDocument(BaseModel):
    code: str
    label: str


class AgencyAnswer(BaseModel):
    """What an agency answers."""

    agency_reference: str
    decision: Decision
    summary: str
    amount_eur: float | None = None
    start_date: dt.date | None = None
    reason: str | None = None
    requested_document: RequestedDocument | None = None


#: What the CPAM asks for before deciding, per event kind.
CPAM_DOCUMENTS: dict[str, RequestedDocument] = {
    "illness": RequestedDocument(
        code="attestation_salaire", label="Attestation de salaire établie par votre employeur"
    ),
}


def document_request(agency: str, request: AgencyRequest) -> AgencyAnswer | None:
    """The document ``agency`` asks for before deciding on ``request``, if any."""
    if agency != "cpam":
        return None
    document = CPAM_DOCUMENTS.get(event_kind(request.life_event))
    if document is None:
        return None
    seed = request_seed(agency, request.request_id)
    return AgencyAnswer(
        agency_reference=f"{REFERENCE_PREFIX[agency]}-{SIMULATED_YEAR}-{seed % 1_000_000:06d}",
        decision="piece_demandee",
        summary=f"Pièce justificative demandée : {document.label}",
        requested_document=document,
    )


class FaultSetting(BaseModel):
    """Body of ``POST /admin/faults``."""

    agency: str
    mode: FaultMode
    seconds: float | None = Field(default=None, ge=0)


# --------------------------------------------------------------------------------------
# Deterministic decision logic
# --------------------------------------------------------------------------------------


def request_seed(agency: str, request_id: str) -> int:
    """Integer seed for one request: SHA-256 of ``"{agency}:{request_id}"``."""
    digest = hashlib.sha256(f"{agency}:{request_id}".encode()).digest()
    return int.from_bytes(digest, "big")


def _normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def event_kind(life_event: str) -> str:
    """Map a free-form life event name to ``birth``, ``job_loss``, ``move`` or ``other``."""
    text = _normalise(life_event)
    if any(k in text for k in ("naissance", "birth", "enfant", "child", "adoption")):
        return "birth"
    if any(
        k in text
        for k in ("emploi", "job", "chomage", "unemploy", "licenci", "layoff", "fin_de_contrat")
    ):
        return "job_loss"
    if any(k in text for k in ("demenag", "move", "moving", "adresse", "address", "relocat")):
        return "move"
    if any(k in text for k in ("maladie", "arret", "illness", "sick")):
        return "illness"
    return "other"


# (summary when granted, amount rule) per agency and event kind.
# amount rule: None (no money involved) or (base, spread) -> base + seed-derived part of spread.
_GRANTED: dict[str, dict[str, tuple[str, tuple[float, float] | None]]] = {
    "caf": {
        "birth": ("Prime à la naissance accordée", (1084.43, 0.0)),
        "job_loss": ("Droit au revenu de solidarité active (RSA) ouvert", (400.0, 250.0)),
        "move": ("Aide personnalisée au logement (APL) accordée", (150.0, 200.0)),
        "illness": ("Droits recalculés pendant l'arrêt de travail : prime d'activité maintenue", (150.0, 100.0)),
        "other": ("Dossier allocataire mis à jour", None),
    },
    "dgfip": {
        "birth": (
            "Situation fiscale mise à jour : taux de prélèvement à la source recalculé",
            None,
        ),
        "job_loss": (
            "Situation fiscale mise à jour : taux de prélèvement à la source recalculé",
            None,
        ),
        "move": ("Adresse fiscale mise à jour", None),
        "illness": ("Situation fiscale mise à jour : indemnités journalières à déclarer", None),
        "other": ("Situation fiscale mise à jour", None),
    },
    "france_travail": {
        "birth": ("Situation familiale du demandeur d'emploi mise à jour", None),
        "job_loss": ("Allocation d'aide au retour à l'emploi accordée", (1100.0, 1100.0)),
        "move": ("Changement d'adresse enregistré, agence de rattachement mise à jour", None),
        "illness": ("Arrêt de travail enregistré : recherche d'emploi suspendue", None),
        "other": ("Dossier du demandeur d'emploi mis à jour", None),
    },
    "cpam": {
        "birth": ("Rattachement de l'enfant enregistré", None),
        "job_loss": ("Maintien des droits à l'assurance maladie confirmé", None),
        "move": ("Changement d'adresse enregistré, caisse de rattachement mise à jour", None),
        "illness": ("Indemnités journalières maladie accordées", (900.0, 600.0)),
        "other": ("Dossier d'assuré mis à jour", None),
    },
    "ants": {
        "birth": ("Demande de carte d'identité pour l'enfant enregistrée : rendez-vous en mairie à prendre", None),
        "job_loss": ("Demande de titre d'identité enregistrée : rendez-vous en mairie à prendre", None),
        "move": ("Changement d'adresse enregistré : le titre d'identité reste valable", None),
        "illness": ("Demande de titre d'identité enregistrée : rendez-vous en mairie à prendre", None),
        "other": ("Demande de titre d'identité enregistrée : rendez-vous en mairie à prendre", None),
    },
}

_REFUSED: dict[str, tuple[str, str]] = {
    "caf": (
        "Demande de prestation refusée",
        "Les ressources du foyer dépassent le plafond d'attribution de la prestation.",
    ),
    "dgfip": (
        "Demande de mise à jour de la situation fiscale refusée",
        "Le numéro fiscal ne correspond pas à l'identité déclarée.",
    ),
    "france_travail": (
        "Demande d'allocation d'aide au retour à l'emploi refusée",
        "Durée d'affiliation insuffisante : moins de 6 mois travaillés au cours des 24 derniers mois.",
    ),
    "cpam": (
        "Demande de mise à jour du dossier d'assuré refusée",
        "Le numéro de sécurité sociale est inconnu de la caisse.",
    ),
    "ants": (
        "Demande de titre d'identité refusée",
        "Aucune pré-demande en ligne ne correspond à l'identité déclarée.",
    ),
}


def decide(agency: str, request: AgencyRequest) -> AgencyAnswer:
    """The answer ``agency`` gives to ``request``; a pure function of agency, request_id
    and life_event (the citizen data is not looked at)."""
    if agency not in AGENCIES:
        raise ValueError(f"unknown agency {agency!r}")
    seed = request_seed(agency, request.request_id)
    reference = f"{REFERENCE_PREFIX[agency]}-{SIMULATED_YEAR}-{seed % 1_000_000:06d}"

    if (seed >> 20) % 100 < REFUSAL_PERCENT:
        summary, reason = _REFUSED[agency]
        return AgencyAnswer(
            agency_reference=reference,
            decision="refuse",
            summary=summary,
            reason=reason,
        )

    summary, amount_rule = _GRANTED[agency][event_kind(request.life_event)]
    amount: float | None = None
    if amount_rule is not None:
        base, spread = amount_rule
        # Cents derived from the hash, so the amount looks real but stays reproducible.
        extra_cents = (seed >> 40) % (int(spread * 100) + 1)
        amount = round(base + extra_cents / 100, 2)
    # First day of a month of the simulated year.
    start = dt.date(SIMULATED_YEAR, (seed >> 60) % 12 + 1, 1)
    return AgencyAnswer(
        agency_reference=reference,
        decision="accorde",
        summary=summary,
        amount_eur=amount,
        start_date=start,
    )


# --------------------------------------------------------------------------------------
# In-memory state
# --------------------------------------------------------------------------------------

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
DGFIP_NS = "urn:dgfip:situation:v1"
CALLBACK_ATTEMPTS = 60
CALLBACK_DELAY_SECONDS = 0.3


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
    faults: dict[str, Fault] = field(default_factory=lambda: {a: Fault() for a in AGENCIES})
    awaiting: dict[str, tuple[AgencyRequest, RequestedDocument]] = field(default_factory=dict)
    documents: list[dict[str, Any]] = field(default_factory=list)
    #: Requests whose first document the CPAM found incomplete (fault mode "incomplete").
    found_incomplete: set[str] = field(default_factory=set)
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: set[asyncio.Task] = field(default_factory=set)

    def reset(self) -> None:
        self.answers.clear()
        self.awaiting.clear()
        self.documents.clear()
        self.found_incomplete.clear()
        self.callbacks.clear()
        for agency in AGENCIES:
            self.received[agency] = []
            self.faults[agency] = Fault()


def _known_agency(agency: str, request: Request) -> str:
    served = request.app.state.simulator.agencies
    if agency not in served:
        raise HTTPException(
            status_code=404,
            detail=f"Unknown agency {agency!r}; expected one of {', '.join(served)}",
        )
    return agency


def _state(request: Request) -> SimulatorState:
    return request.app.state.simulator


async def _fault(state: SimulatorState, agency: str) -> Response | None:
    """The injected fault's response for ``agency``, or None to answer normally."""
    fault = state.faults[agency]
    if fault.mode == "down":
        return JSONResponse(status_code=503, content={"detail": f"{agency} unavailable (simulated outage)"})
    if fault.mode == "error500":
        return JSONResponse(status_code=500, content={"detail": f"{agency} internal error (simulated)"})
    if fault.mode == "slow":
        await asyncio.sleep(fault.seconds if fault.seconds is not None else DEFAULT_SLOW_SECONDS)
    if fault.mode == "garbage":
        body = "<html><body>Erreur interne du frontal" if agency != "dgfip" else "<soap:Envelope><soap:Bo"
        return Response(content=body, status_code=200, media_type="text/html")
    if fault.mode == "invalid":
        if agency == "dgfip":
            return Response(content=_soap("<dgfip:Statut>OK</dgfip:Statut>"), media_type="text/xml")
        return JSONResponse(content={"statut": "OK", "code": 0})
    return None


def _answer_for(state: SimulatorState, agency: str, body: AgencyRequest, raw: dict[str, Any]) -> dict[str, Any]:
    """The stored answer for a request, deciding (and recording the request) the first time."""
    key = (agency, body.request_id)
    stored = state.answers.get(key)
    if stored is not None:
        return stored
    # No await between the lookup above and the store below, so concurrent duplicates
    # (e.g. both sleeping under "slow") are still answered identically and recorded once.
    asked = document_request(agency, body)
    if state.faults[agency].mode == "silent":
        # Taken, never decided: the request asked again gets the same acknowledgement.
        reference = decide(agency, body).agency_reference
        answer = {"agency_reference": reference, "statut": UNDER_REVIEW}
    elif asked is not None:
        state.awaiting[body.request_id] = (body, asked.requested_document)  # type: ignore[assignment]
        answer = asked.model_dump(mode="json")
    else:
        answer = decide(agency, body).model_dump(mode="json")
    state.answers[key] = answer
    state.received[agency].append(raw)
    return answer


# -- DGFiP: SOAP ----------------------------------------------------------------------

def _soap(inner: str) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:dgfip="{DGFIP_NS}"><soap:Body>{inner}'
        f"</soap:Body></soap:Envelope>"
    )


def _soap_fault(message: str) -> Response:
    fault = f"<soap:Fault><faultcode>soap:Client</faultcode><faultstring>{escape(message)}</faultstring></soap:Fault>"
    return Response(content=_soap(fault), status_code=400, media_type="text/xml")


def _soap_answer(answer: dict[str, Any]) -> str:
    if "decision" not in answer:
        status = answer["statut"].upper()
        inner = f"<dgfip:Reference>{escape(answer['agency_reference'])}</dgfip:Reference><dgfip:Statut>{status}</dgfip:Statut>"
        return _soap(f"<dgfip:DeclarerChangementSituationReponse>{inner}</dgfip:DeclarerChangementSituationReponse>")
    fields = [("Reference", answer["agency_reference"]), ("Decision", answer["decision"]),
              ("Resume", answer["summary"]), ("Motif", answer.get("reason")),
              ("Montant", answer.get("amount_eur")), ("DateEffet", answer.get("start_date"))]
    inner = "".join(f"<dgfip:{tag}>{escape(str(v))}</dgfip:{tag}>" for tag, v in fields if v is not None)
    return _soap(f"<dgfip:DeclarerChangementSituationReponse>{inner}</dgfip:DeclarerChangementSituationReponse>")


def _parse_soap_request(text: str) -> tuple[AgencyRequest, dict[str, Any]]:
    root = DefusedET.fromstring(text)
    call = root.find(f"{{{SOAP_NS}}}Body/{{{DGFIP_NS}}}DeclarerChangementSituation")
    if call is None:
        raise ValueError("opération DeclarerChangementSituation absente")

    def text_of(tag: str) -> str:
        node = call.find(f"{{{DGFIP_NS}}}{tag}")
        if node is None or not (node.text or "").strip():
            raise ValueError(f"élément {tag} absent")
        return node.text.strip()

    taxpayer = call.find(f"{{{DGFIP_NS}}}Contribuable")
    citizen = {} if taxpayer is None else {
        child.tag.split("}")[-1]: (child.text or "") for child in taxpayer
    }
    request = AgencyRequest(
        request_id=text_of("IdentifiantDemande"), file_id=text_of("Dossier"),
        life_event=text_of("Evenement"), citizen=citizen,
    )
    raw = {"request_id": request.request_id, "file_id": request.file_id,
           "life_event": request.life_event, "citizen": citizen, "soap": text}
    return request, raw


# -- France Travail: acknowledge, then call back ------------------------------------------

class FranceTravailRequest(AgencyRequest):
    callback_url: str = Field(min_length=8)


async def _deliver(state: SimulatorState, request_id: str, client: httpx.AsyncClient) -> int | None:
    """POST the stored callback until it is accepted (2xx); returns the last status."""
    record = state.callbacks[request_id]
    status = None
    for attempt in range(CALLBACK_ATTEMPTS):
        try:
            response = await client.post(record["url"], json=record["body"], timeout=5)
            status = response.status_code
            if response.is_success:
                record["delivered"] += 1
                return status
        except httpx.HTTPError:
            status = None
        await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
    return status


# --------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------

def create_app(agencies: tuple[str, ...] = AGENCIES) -> FastAPI:
    """A fresh simulator with empty state, serving ``agencies`` (default: all four)."""
    unknown = set(agencies) - set(AGENCIES)
    if unknown:
        raise ValueError(f"unknown agencies {sorted(unknown)}")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for task in list(app.state.simulator.tasks):
            task.cancel()
        await app.state.client.aclose()

    app = FastAPI(
        title="Agency simulator",
        description="Deterministic stand-in for the CAF, DGFiP, France Travail and CPAM systems.",
        lifespan=lifespan,
    )
    app.state.simulator = SimulatorState(agencies=tuple(agencies))
    app.state.client = httpx.AsyncClient()  # France Travail's callbacks

    def spawn(state: SimulatorState, coro) -> None:
        task = asyncio.create_task(coro)
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "agencies": list(app.state.simulator.agencies)}

    @app.post("/agencies/{agency}/requests", response_model=AgencyAnswer, response_model_exclude_none=False)
    async def submit_request(
        body: AgencyRequest,
        request: Request,
        agency: str = Depends(_known_agency),
        state: SimulatorState = Depends(_state),
    ) -> Any:
        """JSON REST (CAF, CPAM)."""
        if agency in ("dgfip", "france_travail"):
            where = {"dgfip": "POST /agencies/dgfip/soap (SOAP)", "france_travail": "POST /agencies/france_travail/demandes"}
            raise HTTPException(status_code=404, detail=f"{agency} does not speak JSON REST: use {where[agency]}")
        faulty = await _fault(state, agency)
        if faulty is not None:
            return faulty
        answer = _answer_for(state, agency, body, await request.json())
        if "decision" not in answer:
            return JSONResponse(status_code=202, content=answer)
        return answer

    @app.post("/agencies/cpam/requests/{request_id}/pieces")
    async def submit_document(
        request_id: str,
        code: str = Form(...),
        fichier: UploadFile = File(...),
        state: SimulatorState = Depends(_state),
    ) -> Any:
        """CPAM: the document it asked for; it then decides."""
        if "cpam" not in state.agencies:
            raise HTTPException(status_code=404, detail="cpam not served here")
        faulty = await _fault(state, "cpam")
        if faulty is not None:
            return faulty
        content = await fichier.read()
        key = ("cpam", request_id)
        if key not in state.answers:
            raise HTTPException(status_code=404, detail=f"demande {request_id} inconnue")
        if request_id not in state.awaiting:
            return state.answers[key]  # already decided: the same document sent again
        body, wanted = state.awaiting[request_id]
        if code != wanted.code:
            raise HTTPException(status_code=422, detail=f"pièce attendue : {wanted.code}, reçue : {code}")
        state.documents.append({
            "request_id": request_id, "code": code, "filename": fichier.filename,
            "media_type": fichier.content_type, "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        })
        if state.faults["cpam"].mode == "incomplete" and request_id not in state.found_incomplete:
            state.found_incomplete.add(request_id)  # still awaited: the same document, complete
            answer = {
                **state.answers[key], "decision": "piece_demandee",
                "summary": f"Pièce incomplète : {wanted.label} (la page des salaires manque), à renvoyer complète",
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
    async def documents(state: SimulatorState = Depends(_state)) -> list[dict[str, Any]]:
        return state.documents

    @app.post("/agencies/dgfip/soap")
    async def soap(request: Request, state: SimulatorState = Depends(_state)) -> Any:
        """DGFiP: SOAP-style XML in, XML out."""
        if "dgfip" not in state.agencies:
            raise HTTPException(status_code=404, detail="dgfip not served here")
        faulty = await _fault(state, "dgfip")
        if faulty is not None:
            return faulty
        text = (await request.body()).decode("utf-8", errors="replace")
        try:
            body, raw = _parse_soap_request(text)
        except (DefusedET.ParseError, ValueError, DefusedXmlException) as exc:
            return _soap_fault(f"requête invalide : {exc}")
        answer = _answer_for(state, "dgfip", body, raw)
        return Response(content=_soap_answer(answer), media_type="text/xml")

    @app.post("/agencies/france_travail/demandes", status_code=202)
    async def demande(
        body: FranceTravailRequest, request: Request, state: SimulatorState = Depends(_state)
    ) -> Any:
        """France Travail: acknowledges at once, answers later on ``callback_url``."""
        if "france_travail" not in state.agencies:
            raise HTTPException(status_code=404, detail="france_travail not served here")
        faulty = await _fault(state, "france_travail")
        if faulty is not None:
            return faulty
        first = ("france_travail", body.request_id) not in state.answers
        answer = _answer_for(state, "france_travail", body, await request.json())
        if first and "decision" in answer:
            state.callbacks[body.request_id] = {
                "url": body.callback_url,
                "body": {"callback_id": f"cb-{answer['agency_reference']}", "request_id": body.request_id,
                         "reference": answer["agency_reference"], "decision": answer},
                "delivered": 0,
            }

            async def later() -> None:
                await asyncio.sleep(CALLBACK_DELAY_SECONDS)
                await _deliver(state, body.request_id, app.state.client)
            spawn(state, later())
        return {"reference": answer["agency_reference"], "request_id": body.request_id, "statut": "recue"}

    @app.get("/agencies/france_travail/demandes/{request_id}")
    async def demande_status(request_id: str, state: SimulatorState = Depends(_state)) -> Any:
        record = state.callbacks.get(request_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"demande {request_id} inconnue")
        return {**record["body"], "delivered": record["delivered"]}

    @app.post("/admin/callbacks/{request_id}/replay")
    async def replay(request_id: str, state: SimulatorState = Depends(_state)) -> dict[str, Any]:
        """Deliver the same callback (same callback_id) once more, as a flaky network would."""
        record = state.callbacks.get(request_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"demande {request_id} inconnue")
        response = await app.state.client.post(record["url"], json=record["body"], timeout=5)
        return {"status": response.status_code, "body": response.json()}

    @app.get("/agencies/{agency}/received")
    async def received(
        agency: str = Depends(_known_agency), state: SimulatorState = Depends(_state)
    ) -> list[dict[str, Any]]:
        return state.received[agency]

    @app.post("/admin/faults")
    async def set_fault(
        setting: FaultSetting, request: Request, state: SimulatorState = Depends(_state)
    ) -> dict[str, Any]:
        _known_agency(setting.agency, request)
        state.faults[setting.agency] = Fault(mode=setting.mode, seconds=setting.seconds)
        return {"agency": setting.agency, "mode": setting.mode, "seconds": setting.seconds}

    @app.get("/admin/faults")
    async def get_faults(state: SimulatorState = Depends(_state)) -> dict[str, Any]:
        return {
            agency: {"mode": fault.mode, "seconds": fault.seconds}
            for agency, fault in state.faults.items()
            if agency in state.agencies
        }

    @app.post("/admin/reset")
    async def reset(state: SimulatorState = Depends(_state)) -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    return app
