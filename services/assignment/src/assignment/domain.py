"""The référent rules and the coordinated answer: pure functions, no I/O.

Typed states (the strings stored in the database and sent in events), the capacity
formula, the choice of the référent (continuity, proximity, skills, load), and the
composition and signature of the one coordinated answer. The legal deadline is counted
in `assignment.legal_deadline`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from guichet_runtime.refusals import RefusalKind, Refused
from shared_models import AGENCY_LABELS, AgencyDecision, CitizenContact, Decision, Referent
from shared_models.wording import DECISION_WORDS, euros_fr


class FileStatus(StrEnum):
    """Where a citizen file stands in the assignment service."""

    AWAITING_REFERENT = "en_attente_attribution"
    OPEN = "en_cours"
    ANSWERED = "repondu"


class RequestStatus(StrEnum):
    """Where one agency's request of a file stands."""

    TRANSMITTED = "transmise"
    DOCUMENT_REQUESTED = "piece_demandee"
    ANSWERED = "repondue"


class AgentStatus(StrEnum):
    ACTIVE = "actif"
    ABSENT = "absent"
    GONE = "parti"


class AbsenceStatus(StrEnum):
    PLANNED = "prevue"
    ONGOING = "en_cours"
    ENDED = "terminee"


class ClockStatus(StrEnum):
    """The legal clock of one agency request."""

    RUNNING = "en_cours"
    SUSPENDED = "suspendu"
    ANSWERED = "repondu"
    BREACHED = "echu"
    NO_DEADLINE = "sans_delai"


#: An acknowledged request without a decision for this many days or more is "stuck" (the
#: supervisors' view, the référent's file); the assignment setting STUCK_REQUEST_DAYS.
STUCK_REQUEST_DAYS = 5
#: Clocks whose agency owes a decision: running, or without a legal period.
CLOCKS_AWAITING_DECISION = (ClockStatus.RUNNING, ClockStatus.NO_DEADLINE)


def days_awaiting_decision(received_on: dt.date, today: dt.date) -> int:
    """Calendar days since the agency acknowledged the request (0 on the day itself)."""
    return max((today - received_on).days, 0)


def is_stuck(received_on: dt.date, today: dt.date, threshold_days: int) -> bool:
    """A request acknowledged `threshold_days` days ago or more, still without a decision,
    is stuck: its agency has said nothing since, and somebody should ask why."""
    return days_awaiting_decision(received_on, today) >= threshold_days


class AssignmentRule(StrEnum):
    """Why an agent holds a file (recorded in its history and sent in ReferentAssigned)."""

    CONTINUITY = "continuite"
    PROXIMITY = "proximite"
    NEAREST_OFFICE = "proximite_distance"
    ANYWHERE = "proximite_elargie"
    COVER = "suppleance"
    TAKEOVER = "reprise"
    CITIZEN_REQUEST = "changement_demande"
    SUPERVISOR_MOVE = "reaffectation_superviseur"
    RETURN = "retour"
    DEPARTURE = "depart"


#: Who may ask for another référent, and the rule the move is recorded under.
CHANGE_RULES = {
    "citoyen": AssignmentRule.CITIZEN_REQUEST,
    "superviseur": AssignmentRule.SUPERVISOR_MOVE,
}

#: Longest personal word a référent may join to the coordinated answer (characters).
MAX_WORD = 1000

#: Percentage of each agent's capacity kept for urgent files (loss of income, eviction,
#: health). Integer arithmetic, so SQL and Python agree on every agent's limit.
URGENT_RESERVE_PERCENT = 10


def reserve_for(urgent: bool) -> int:
    """The share of capacity a file must leave free: none for an urgent file."""
    return 0 if urgent else URGENT_RESERVE_PERCENT


def room_limit(capacity: Any, reserve_percent: int) -> Any:
    """Files an agent may hold for a file that must leave `reserve_percent` of capacity free.

    The one capacity formula: plain arithmetic, so `capacity` may be an int or a SQL
    column expression and Python and SQL agree on every agent's limit."""
    return capacity - capacity * reserve_percent // 100


def has_room(active_files: Any, capacity: Any, reserve_percent: int = 0) -> Any:
    """Whether an agent may take one more file (a bool, or a SQL condition on columns)."""
    return active_files < room_limit(capacity, reserve_percent)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (latitude, longitude) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
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


def citizen_key(citizen: CitizenContact, data_key_id: str | None = None) -> str:
    """Identifies the same person across files (continuity of the référent).

    A file whose personal data is sealed (crypto-shredding) is keyed by the citizen's data
    key id: a random UUID shared by all the files of a logged-in citizen, carrying nothing of
    the person, so the table holds no contact in clear for matching. Without a key (sealing
    off, or a file from before) the contact keys it, as the contact itself is in clear then."""
    if data_key_id is not None:
        return "key:" + data_key_id
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

    def has_room(self, reserve_percent: int = 0) -> bool:
        return bool(has_room(self.active_files, self.capacity, reserve_percent))


@dataclass(frozen=True)
class Choice:
    agent_id: str
    rule: AssignmentRule
    explanation: str
    considered: list[str]


def continuity(previous: Candidate | None, reserve_percent: int = 0) -> Choice | None:
    """Continuity: a citizen keeps the référent of their other files while that référent
    has room (the first rule of the choice; `previous` comes from `citizen_key`)."""
    if previous is None or not previous.has_room(reserve_percent):
        return None
    return Choice(
        previous.agent_id,
        AssignmentRule.CONTINUITY,
        f"{previous.name} est déjà le référent de ce citoyen pour un autre dossier.",
        [previous.agent_id],
    )


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
    kept = continuity(previous, reserve_percent)
    if kept is not None:
        return kept
    open_ = [c for c in candidates if c.has_room(reserve_percent)]
    if not open_:
        return None
    needed = set(agencies)
    local = [c for c in open_ if c.departement == departement]
    located = [c for c in open_ if c.distance_km is not None]
    if local:
        pool, where, rule = local, "dans le département", AssignmentRule.PROXIMITY
    elif located:
        nearest = min(c.distance_km for c in located if c.distance_km is not None)
        pool = [c for c in located if c.distance_km == nearest]
        where = f"le plus proche hors du département ({pool[0].office_name}, {nearest:.0f} km)"
        rule = AssignmentRule.NEAREST_OFFICE
    else:
        pool, rule = open_, AssignmentRule.ANYWHERE
        where = "hors du département (aucun bureau proche disponible)"

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
    return Choice(
        best.agent_id, rule, explanation, [c.agent_id for c in sorted(pool, key=rank)[:10]]
    )


def _next_step(d: AgencyDecision) -> str:
    """What the citizen has to do after one agency's decision, in plain words."""
    agency = AGENCY_LABELS[d.agency]
    if d.decision is Decision.GRANTED:
        when = f" à partir du {d.start_date:%d/%m/%Y}" if d.start_date else ""
        return (
            f"{agency} : rien à faire, la décision s'applique{when} ; "
            "signalez-nous tout changement de situation"
        )
    if d.decision is Decision.IMPLICIT_ACCEPTANCE:
        return (
            f"{agency} : rien à faire, votre demande est acceptée ; "
            f"vous pouvez demander à {agency} une attestation d'acceptation implicite"
        )
    if d.decision is Decision.DOCUMENT_REQUESTED:
        document = f" ({d.requested_document.label})" if d.requested_document else ""
        return (
            f"{agency} : envoyez la pièce justificative demandée{document} "
            "depuis votre espace ou à votre référent"
        )
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
        line = (
            f"- {AGENCY_LABELS[d.agency]} : {DECISION_WORDS[d.decision]}. {d.summary.rstrip('.')}."
        )
        if d.amount_eur is not None:
            line += f" Montant : {euros_fr(d.amount_eur)}"
            line += f" à partir du {d.start_date:%d/%m/%Y}." if d.start_date else "."
        elif d.start_date:
            line += f" À partir du {d.start_date:%d/%m/%Y}."
        if d.reason:
            line += f" Motif : {d.reason}"
        line += f" (référence {d.agency_reference})"
        lines.append(line)
    lines.append("")
    to_do = [
        d for d in ordered if d.decision not in (Decision.GRANTED, Decision.IMPLICIT_ACCEPTANCE)
    ]
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


def ensure_target_supervised(name: str, office_id: str, supervised: Collection[str] | None) -> None:
    """A supervisor moves a file only to an agent of an office they supervise (`supervised`;
    None: a move not made by a supervisor's hand, unrestricted)."""
    if supervised is not None and office_id not in supervised:
        raise Refused(
            RefusalKind.FORBIDDEN,
            f"{name} travaille dans un espace que vous ne supervisez pas : confiez ce dossier "
            "à un agent de vos espaces.",
        )


ONLY_THE_REFERENT_WRITES = (
    "Seul le référent actuel du dossier peut écrire le mot personnel joint à la réponse."
)


# --------------------------------------------------------------------------- the inbox


class MessageState(StrEnum):
    """Where a citizen's message stands in the référent's inbox."""

    UNREAD = "non_lu"
    READ = "lu"
    ANSWERED = "repondu"


def message_state(read_at: dt.datetime | None, answered_at: dt.datetime | None) -> MessageState:
    """Answered once the référent wrote to the citizen after it; read once marked read."""
    if answered_at is not None:
        return MessageState.ANSWERED
    return MessageState.READ if read_at is not None else MessageState.UNREAD


def inbox_rank(
    urgent: bool, deadline: dt.date | None, oldest_waiting: dt.datetime
) -> tuple[bool, dt.date, dt.datetime]:
    """The inbox's order: urgent files first, then the nearest legal deadline (none: last),
    then the longest wait."""
    return (not urgent, deadline or dt.date.max, oldest_waiting)


def promise_lapsed(answer_due_at: dt.datetime | None, now: dt.datetime) -> bool:
    """The answer-time promise of an unanswered message lapsed (none: no promise made)."""
    return answer_due_at is not None and now >= answer_due_at


ONLY_THE_REFERENT_READS = (
    "Seul le référent du dossier (ou l'agent qui le remplace) traite les messages de l'usager."
)
