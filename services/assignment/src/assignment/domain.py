"""The référent rules and the coordinated answer: pure functions, no I/O."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from shared_models import AGENCY_LABELS, AgencyDecision, CitizenContact, Decision, Referent


#: Share of each agent's capacity kept for urgent files (loss of income, eviction, health).
URGENT_RESERVE_SHARE = 0.1


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

    def limit(self, reserve_share: float = 0.0) -> int:
        """Files this agent may hold for a file of this kind (urgent files: the whole capacity)."""
        return self.capacity - int(self.capacity * reserve_share)

    def has_room(self, reserve_share: float = 0.0) -> bool:
        return self.active_files < self.limit(reserve_share)


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
    reserve_share: float = 0.0,
) -> Choice | None:
    """Continuity, then proximity, then skills, then least loaded; never above capacity.

    Returns None when nobody has room: the file waits for a référent.
    """
    if previous is not None and previous.has_room(reserve_share):
        return Choice(
            previous.agent_id,
            "continuite",
            f"{previous.name} est déjà le référent de ce citoyen pour un autre dossier.",
            [previous.agent_id],
        )
    open_ = [c for c in candidates if c.has_room(reserve_share)]
    if not open_:
        return None
    needed = set(agencies)
    local = [c for c in open_ if c.departement == departement]
    pool, where = (local, "dans le département") if local else (open_, "hors du département (aucun bureau proche disponible)")

    def rank(c: Candidate) -> tuple[int, float, str]:
        return (-len(needed & c.agencies), c.active_files / c.capacity, c.agent_id)

    best = min(pool, key=rank)
    coverage = len(needed & best.agencies)
    rule = "proximite" if local else "proximite_elargie"
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
}


def _euros(amount: float) -> str:
    whole, cents = f"{amount:,.2f}".split(".")
    return f"{whole.replace(',', ' ')},{cents} €"


def compose_answer(
    file_id: str,
    life_event_label: str,
    citizen: CitizenContact,
    decisions: list[AgencyDecision],
    referent: Referent,
    opening_hours: str,
) -> str:
    """The one coordinated answer, in plain French, signed by the référent."""
    lines = [
        f"Bonjour {citizen.given_name} {citizen.family_name},",
        "",
        f"Votre dossier {file_id} ({life_event_label}) a reçu la réponse de chacun des "
        f"{len(decisions)} organismes concernés :",
    ]
    next_steps = []
    for d in sorted(decisions, key=lambda d: d.agency.value):
        line = f"- {AGENCY_LABELS[d.agency]} : {_DECISION_WORDS[d.decision]}. {d.summary.rstrip('.')}."
        if d.amount_eur is not None:
            line += f" Montant : {_euros(d.amount_eur)}"
            line += f" à partir du {d.start_date:%d/%m/%Y}." if d.start_date else "."
        if d.reason:
            line += f" Motif : {d.reason}"
        lines.append(line)
        if d.decision is Decision.REFUSED:
            next_steps.append(
                f"vous pouvez contester la décision de {AGENCY_LABELS[d.agency]} dans un délai de deux mois ; "
                "votre référent peut vous aider à préparer ce recours"
            )
        if d.decision is Decision.DOCUMENT_REQUESTED:
            next_steps.append(f"{AGENCY_LABELS[d.agency]} attend une pièce justificative de votre part")
    lines.append("")
    if next_steps:
        lines.append("Ce qu'il vous reste à faire : " + " ; ".join(next_steps) + ".")
    else:
        lines.append("Vous n'avez aucune démarche supplémentaire à faire.")
    lines += [
        "",
        "Je reste votre interlocuteur pour toute question sur ce dossier :",
        referent.name,
        referent.office,
        f"Téléphone direct : {referent.phone}",
        f"Courriel : {referent.email}",
        f"Accueil : {opening_hours}",
    ]
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
