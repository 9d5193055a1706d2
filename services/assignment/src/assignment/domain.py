"""The référent rules and the coordinated answer: pure functions, no I/O."""

from __future__ import annotations

import calendar
import math
import datetime as dt
from dataclasses import dataclass

from shared_models import AGENCY_LABELS, AgencyDecision, CitizenContact, Decision, Referent


#: Percentage of each agent's capacity kept for urgent files (loss of income, eviction,
#: health). Integer arithmetic, so SQL and Python agree on every agent's limit.
URGENT_RESERVE_PERCENT = 10


def limit_for(capacity: int, reserve_percent: int) -> int:
    """Files an agent may hold for a file that must leave `reserve_percent` of capacity free."""
    return capacity - capacity * reserve_percent // 100


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (latitude, longitude) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def departement_of(postcode: str) -> str:
    """Département code of a French postcode (Corsica 2A/2B, overseas 97x)."""
    if postcode.startswith(("2A", "2B")):
        return postcode[:2]
    if postcode.startswith("20"):
        return "2A" if int(postcode) < 20200 else "2B"
    if postcode.startswith("97"):
        return postcode[:3]
    return postcode[:2]


def citizen_key(citizen: CitizenContact) -> str:
    """Identifies the same person across files (continuity of the référent)."""
    if citizen.email:
        return "email:" + citizen.email.lower()
    if citizen.phone:
        return "phone:" + citizen.phone
    return f"name:{citizen.family_name.lower()}|{citizen.given_name.lower()}|{citizen.postcode}"


@dataclass(frozen=True)
class Candidate:
    agent_id: str
    name: str
    departement: str
    agencies: frozenset[str]
    active_files: int
    capacity: int
    distance_km: float | None = None
    office_name: str = ""
    latitude: float = 0.0
    longitude: float = 0.0

    def limit(self, reserve_percent: int = 0) -> int:
        """Files this agent may hold for a file of this kind (urgent files: the whole capacity)."""
        return limit_for(self.capacity, reserve_percent)

    def has_room(self, reserve_percent: int = 0) -> bool:
        return self.active_files < self.limit(reserve_percent)


@dataclass(frozen=True)
class Choice:
    agent_id: str
    rule: str
    explanation: str
    considered: list[str]


def choose_referent(
    candidates: list[Candidate],
    agencies: list[str],
    departement: str,
    previous: Candidate | None = None,
    reserve_percent: int = 0,
) -> Choice | None:
    """Continuity, then proximity (the citizen's département, else the nearest office
    when candidates carry their distance), then skills, then least loaded; never above
    capacity.

    Returns None when nobody has room: the file waits for a référent.
    """
    if previous is not None and previous.has_room(reserve_percent):
        return Choice(
            previous.agent_id,
            "continuite",
            f"{previous.name} est déjà le référent de ce citoyen pour un autre dossier.",
            [previous.agent_id],
        )
    open_ = [c for c in candidates if c.has_room(reserve_percent)]
    if not open_:
        return None
    needed = set(agencies)
    local = [c for c in open_ if c.departement == departement]
    located = [c for c in open_ if c.distance_km is not None]
    if local:
        pool, where, rule = local, "dans le département", "proximite"
    elif located:
        nearest = min(c.distance_km for c in located)
        pool = [c for c in located if c.distance_km == nearest]
        where = f"le plus proche hors du département ({pool[0].office_name}, {nearest:.0f} km)"
        rule = "proximite_distance"
    else:
        pool, where, rule = open_, "hors du département (aucun bureau proche disponible)", "proximite_elargie"

    def rank(c: Candidate) -> tuple[int, float, str]:
        return (-len(needed & c.agencies), c.active_files / c.capacity, c.agent_id)

    best = min(pool, key=rank)
    coverage = len(needed & best.agencies)
    skills = (
        "formé pour tous les organismes du dossier"
        if coverage == len(needed)
        else f"formé pour {coverage} organisme(s) sur {len(needed)}"
    )
    explanation = (
        f"{best.name} : bureau {where}, {skills}, "
        f"{best.active_files} dossier(s) actif(s) sur {best.capacity}."
    )
    return Choice(best.agent_id, rule, explanation, [c.agent_id for c in sorted(pool, key=rank)[:10]])


_DECISION_WORDS = {
    Decision.GRANTED: "accordé",
    Decision.REFUSED: "refusé",
    Decision.DOCUMENT_REQUESTED: "en attente d'une pièce justificative",
    Decision.IMPLICIT_ACCEPTANCE: "accepté implicitement (sans réponse dans le délai légal)",
    Decision.IMPLICIT_REJECTION: "rejeté implicitement (sans réponse dans le délai légal)",
}


def _euros(amount: float) -> str:
    whole, cents = f"{amount:,.2f}".split(".")
    return f"{whole.replace(',', ' ')},{cents} €"


def _next_step(d: AgencyDecision) -> str:
    """What the citizen has to do after one agency's decision, in plain words."""
    agency = AGENCY_LABELS[d.agency]
    if d.decision is Decision.GRANTED:
        when = f" à partir du {d.start_date:%d/%m/%Y}" if d.start_date else ""
        return f"{agency} : rien à faire, la décision s'applique{when} ; signalez-nous tout changement de situation"
    if d.decision is Decision.IMPLICIT_ACCEPTANCE:
        return (
            f"{agency} : rien à faire, votre demande est acceptée ; vous pouvez demander à {agency} "
            "une attestation d'acceptation implicite"
        )
    if d.decision is Decision.DOCUMENT_REQUESTED:
        document = f" ({d.requested_document.label})" if d.requested_document else ""
        return f"{agency} : envoyez la pièce justificative demandée{document} depuis votre espace ou à votre référent"
    return (
        f"{agency} : vous pouvez contester la décision dans un délai de deux mois ; "
        "votre référent peut vous aider à préparer ce recours"
    )


def compose_answer(
    file_id: str,
    life_event_label: str,
    citizen: CitizenContact,
    decisions: list[AgencyDecision],
    referent: Referent,
    personal_word: str | None = None,
) -> str:
    """The one coordinated answer, in plain French: each decision with its amount and
    dates, what to do next for each, the référent's personal word if they wrote one, and
    the référent's signature block (name, office, direct phone, email, opening hours)."""
    lines = [
        f"Bonjour {citizen.given_name} {citizen.family_name},",
        "",
        f"Votre dossier {file_id} ({life_event_label}) a reçu la réponse de chacun des "
        f"{len(decisions)} organismes concernés :",
    ]
    ordered = sorted(decisions, key=lambda d: d.agency)
    for d in ordered:
        line = f"- {AGENCY_LABELS[d.agency]} : {_DECISION_WORDS[d.decision]}. {d.summary.rstrip('.')}."
        if d.amount_eur is not None:
            line += f" Montant : {_euros(d.amount_eur)}"
            line += f" à partir du {d.start_date:%d/%m/%Y}." if d.start_date else "."
        elif d.start_date:
            line += f" À partir du {d.start_date:%d/%m/%Y}."
        if d.reason:
            line += f" Motif : {d.reason}"
        line += f" (référence {d.agency_reference})"
        lines.append(line)
    lines.append("")
    to_do = [d for d in ordered if d.decision not in (Decision.GRANTED, Decision.IMPLICIT_ACCEPTANCE)]
    if to_do:
        lines.append("Ce qu'il vous reste à faire :")
    else:
        lines.append("Vous n'avez aucune démarche supplémentaire à faire :")
    lines += [f"- {_next_step(d)}." for d in ordered]
    if personal_word:
        lines += ["", f"Un mot de votre référent, {referent.name} :", personal_word.strip()]
    lines += [
        "",
        "Je reste votre interlocuteur pour toute question sur ce dossier :",
        referent.name,
        referent.office,
        f"Téléphone direct : {referent.phone}",
        f"Courriel : {referent.email}",
    ]
    if referent.opening_hours:
        lines.append(f"Accueil : {referent.opening_hours}")
    return "\n".join(lines)


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day `months` later, clamped to the month's end (31 Dec + 2 months = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def legal_deadline(received: dt.datetime, months: int = 2) -> dt.date:
    """The administration must answer within two months of receipt (Paris calendar days)."""
    from zoneinfo import ZoneInfo

    return add_months(received.astimezone(ZoneInfo("Europe/Paris")).date(), months)
