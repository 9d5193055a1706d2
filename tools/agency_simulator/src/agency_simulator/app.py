"""HTTP simulator of the four partner agencies' own systems (CAF, DGFiP, France Travail, CPAM).

The simulator is deterministic: every answer is derived from a SHA-256 hash of
``"{agency}:{request_id}"`` (see :func:`decide`), never from randomness or the clock,
so a test can predict what an agency will answer. Requests are idempotent per
``(agency, request_id)``: a repeated request gets the stored answer back and is recorded once.

Endpoints:

* ``POST /agencies/{agency}/requests``  submit a request, get the agency's decision.
* ``GET  /agencies/{agency}/received``  request bodies the agency accepted (first copy only).
* ``GET  /health``                      liveness.
* ``POST /admin/faults`` / ``GET /admin/faults``  fault injection (down / error500 / slow).
* ``POST /admin/reset``                 forget answers, received requests and faults.

Decision texts (summary, reason) are in French because agents and citizens read them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

AGENCIES: tuple[str, ...] = ("caf", "dgfip", "france_travail", "cpam")

REFERENCE_PREFIX: dict[str, str] = {
    "caf": "CAF",
    "dgfip": "DGFIP",
    "france_travail": "FT",
    "cpam": "CPAM",
}

# Out of 100 hash buckets, how many end in a refusal (about 10%).
REFUSAL_PERCENT = 10

# Year used in agency references and in the range of start dates.
SIMULATED_YEAR = 2026

DEFAULT_SLOW_SECONDS = 5.0

Decision = Literal["accorde", "refuse", "piece_demandee"]
FaultMode = Literal["ok", "down", "error500", "slow"]


class AgencyRequest(BaseModel):
    """Body of ``POST /agencies/{agency}/requests``."""

    model_config = ConfigDict(extra="allow")

    request_id: str = Field(min_length=1)
    file_id: str = Field(min_length=1)
    life_event: str
    citizen: dict[str, Any]
    description: str | None = None


class AgencyAnswer(BaseModel):
    """What an agency answers."""

    agency_reference: str
    decision: Decision
    summary: str
    amount_eur: float | None = None
    start_date: dt.date | None = None
    reason: str | None = None


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
    return "other"


# (summary when granted, amount rule) per agency and event kind.
# amount rule: None (no money involved) or (base, spread) -> base + seed-derived part of spread.
_GRANTED: dict[str, dict[str, tuple[str, tuple[float, float] | None]]] = {
    "caf": {
        "birth": ("Prime à la naissance accordée", (1084.43, 0.0)),
        "job_loss": ("Droit au revenu de solidarité active (RSA) ouvert", (400.0, 250.0)),
        "move": ("Aide personnalisée au logement (APL) accordée", (150.0, 200.0)),
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
        "other": ("Situation fiscale mise à jour", None),
    },
    "france_travail": {
        "birth": ("Situation familiale du demandeur d'emploi mise à jour", None),
        "job_loss": ("Allocation d'aide au retour à l'emploi accordée", (1100.0, 1100.0)),
        "move": ("Changement d'adresse enregistré, agence de rattachement mise à jour", None),
        "other": ("Dossier du demandeur d'emploi mis à jour", None),
    },
    "cpam": {
        "birth": ("Rattachement de l'enfant enregistré", None),
        "job_loss": ("Maintien des droits à l'assurance maladie confirmé", None),
        "move": ("Changement d'adresse enregistré, caisse de rattachement mise à jour", None),
        "other": ("Dossier d'assuré mis à jour", None),
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


@dataclass
class Fault:
    mode: FaultMode = "ok"
    seconds: float | None = None


@dataclass
class SimulatorState:
    answers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    received: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {a: [] for a in AGENCIES}
    )
    faults: dict[str, Fault] = field(default_factory=lambda: {a: Fault() for a in AGENCIES})

    def reset(self) -> None:
        self.answers.clear()
        for agency in AGENCIES:
            self.received[agency] = []
            self.faults[agency] = Fault()


def _known_agency(agency: str) -> str:
    if agency not in AGENCIES:
        raise HTTPException(
            status_code=404,
            detail=f"Unknown agency {agency!r}; expected one of {', '.join(AGENCIES)}",
        )
    return agency


def _state(request: Request) -> SimulatorState:
    return request.app.state.simulator


def create_app() -> FastAPI:
    """A fresh simulator with empty state."""
    app = FastAPI(
        title="Agency simulator",
        description="Deterministic stand-in for the CAF, DGFiP, France Travail and CPAM systems.",
    )
    app.state.simulator = SimulatorState()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/agencies/{agency}/requests", response_model=AgencyAnswer)
    async def submit_request(
        body: AgencyRequest,
        request: Request,
        agency: str = Depends(_known_agency),
        state: SimulatorState = Depends(_state),
    ) -> Any:
        fault = state.faults[agency]
        if fault.mode == "down":
            return JSONResponse(
                status_code=503, content={"detail": f"{agency} unavailable (simulated outage)"}
            )
        if fault.mode == "error500":
            return JSONResponse(
                status_code=500, content={"detail": f"{agency} internal error (simulated)"}
            )
        if fault.mode == "slow":
            await asyncio.sleep(
                fault.seconds if fault.seconds is not None else DEFAULT_SLOW_SECONDS
            )

        raw = await request.json()  # the body exactly as sent, extra fields included
        key = (agency, body.request_id)
        stored = state.answers.get(key)
        if stored is not None:
            return stored
        # No await between the lookup above and the store below, so concurrent duplicates
        # (e.g. both sleeping under "slow") are still answered identically and recorded once.
        answer = decide(agency, body).model_dump(mode="json")
        state.answers[key] = answer
        state.received[agency].append(raw)
        return answer

    @app.get("/agencies/{agency}/received")
    async def received(
        agency: str = Depends(_known_agency), state: SimulatorState = Depends(_state)
    ) -> list[dict[str, Any]]:
        return state.received[agency]

    @app.post("/admin/faults")
    async def set_fault(
        setting: FaultSetting, state: SimulatorState = Depends(_state)
    ) -> dict[str, Any]:
        _known_agency(setting.agency)
        state.faults[setting.agency] = Fault(mode=setting.mode, seconds=setting.seconds)
        return {"agency": setting.agency, "mode": setting.mode, "seconds": setting.seconds}

    @app.get("/admin/faults")
    async def get_faults(state: SimulatorState = Depends(_state)) -> dict[str, Any]:
        return {
            agency: {"mode": fault.mode, "seconds": fault.seconds}
            for agency, fault in state.faults.items()
        }

    @app.post("/admin/reset")
    async def reset(state: SimulatorState = Depends(_state)) -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    return app
