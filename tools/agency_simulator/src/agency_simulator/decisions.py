"""The agencies' deterministic decisions: every decision is derived from a SHA-256 hash of
``"{agency}:{request_id}"`` (see :func:`decide`), never from randomness or the clock, so a
test can predict what an agency will answer. Decision texts (summary, reason) are in French
because agents and citizens read them."""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata
from typing import Any, Literal

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

#: Digits of the number in an agency reference.
REFERENCE_DIGITS = 12
REFERENCE_SPACE = 10**REFERENCE_DIGITS

# Year used in agency references and in the range of start dates.
SIMULATED_YEAR = 2026

Decision = Literal["accorde", "refuse", "piece_demandee"]

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
    return AgencyAnswer(
        agency_reference=reference(agency, request.request_id),
        decision="piece_demandee",
        summary=f"Pièce justificative demandée : {document.label}",
        requested_document=document,
    )


# --------------------------------------------------------------------------------------
# Deterministic decision logic
# --------------------------------------------------------------------------------------


def request_seed(agency: str, request_id: str) -> int:
    """Integer seed for one request: SHA-256 of ``"{agency}:{request_id}"``."""
    digest = hashlib.sha256(f"{agency}:{request_id}".encode()).digest()
    return int.from_bytes(digest, "big")


def reference(agency: str, request_id: str, attempt: int = 0) -> str:
    """The agency's reference for a request: ``FT-2026-012345678901``, twelve digits drawn from
    the request's hash (six digits collided within a few thousand requests: issue 17). The
    simulator's state still checks that no two requests share one (see ``attempt``)."""
    key = request_id if attempt == 0 else f"{request_id}#{attempt}"
    number = request_seed(agency, key) % REFERENCE_SPACE
    return f"{REFERENCE_PREFIX[agency]}-{SIMULATED_YEAR}-{number:0{REFERENCE_DIGITS}d}"


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
        "illness": (
            "Droits recalculés pendant l'arrêt de travail : prime d'activité maintenue",
            (150.0, 100.0),
        ),
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
        "birth": (
            "Demande de carte d'identité pour l'enfant enregistrée : rendez-vous en mairie à prendre",
            None,
        ),
        "job_loss": (
            "Demande de titre d'identité enregistrée : rendez-vous en mairie à prendre",
            None,
        ),
        "move": ("Changement d'adresse enregistré : le titre d'identité reste valable", None),
        "illness": (
            "Demande de titre d'identité enregistrée : rendez-vous en mairie à prendre",
            None,
        ),
        "other": (
            "Demande de titre d'identité enregistrée : rendez-vous en mairie à prendre",
            None,
        ),
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

    if (seed >> 20) % 100 < REFUSAL_PERCENT:
        summary, reason = _REFUSED[agency]
        return AgencyAnswer(
            agency_reference=reference(agency, request.request_id),
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
        agency_reference=reference(agency, request.request_id),
        decision="accorde",
        summary=summary,
        amount_eur=amount,
        start_date=start,
    )
