"""Intake's pure rules and typed states: no SQL, HTTP or Kafka here.

A rule lives in one function whose name says it; a refusal is a `Refused` with its kind
and the French message the citizen (or the agent) reads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from guichet_runtime.auth.principal import Principal, PrincipalKind, Role
from guichet_runtime.refusals import RefusalKind, Refused
from intake.domain.privacy import (
    ALREADY_ERASED,
    ERASED_DATA,
    ERASURE_NOT_CONFIRMED,
    STILL_PROCESSED,
    ensure_erasure_allowed,
    ensure_erasure_confirmed,
    ensure_not_erased,
    key_may_be_shredded,
)
from intake.domain.states import (
    DESK_CHANNELS,
    AgencyStatus,
    DeadlineState,
    FileStatus,
    TimelineKind,
)
from shared_models import (
    AGENCY_LABELS,
    DeadlineRule,
    Decision,
    IntakeChannel,
    NotificationChannel,
    NotificationKind,
    NotificationSent,
    PreferredChannel,
    Referent,
)

__all__ = [
    "ALREADY_ERASED",
    "DESK_CHANNELS",
    "ERASED_DATA",
    "ERASURE_NOT_CONFIRMED",
    "STILL_PROCESSED",
    "AgencyStatus",
    "DeadlineState",
    "FileStatus",
    "TimelineKind",
    "ensure_erasure_allowed",
    "ensure_erasure_confirmed",
    "ensure_not_erased",
    "key_may_be_shredded",
]


class UnknownFile(Exception):
    """An event names a file intake never opened (the consumer retries, then dead-letters
    it). Not a refusal: no citizen or agent asked for anything."""


# --------------------------------------------------------------------------- files and agencies

# Alphabet without look-alikes (no 0/O, 1/I/L), read aloud over the phone.
FILE_ID_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

AGENCY_STATUS_RANK = {status: rank for rank, status in enumerate(AgencyStatus)}
AGENCY_STATUS_LABELS = {
    AgencyStatus.WAITING: "en attente de transmission",
    AgencyStatus.SENT: "réponse attendue de l'organisme",
    AgencyStatus.DOCUMENT_REQUESTED: "pièce justificative attendue de votre part",
    AgencyStatus.DOCUMENT_SENT: "pièce transmise, réponse attendue de l'organisme",
    AgencyStatus.ANSWERED: "a répondu",
}
DECISION_WORDS = {
    Decision.GRANTED: "accordé",
    Decision.REFUSED: "refusé",
    Decision.DOCUMENT_REQUESTED: "pièce justificative demandée",
    Decision.IMPLICIT_ACCEPTANCE: "accepté implicitement (silence gardé pendant le délai légal)",
    Decision.IMPLICIT_REJECTION: "rejeté implicitement (silence gardé pendant le délai légal)",
}
#: What became of the citizen's request when an agency kept silent ("votre demande est …").
IMPLICIT_OUTCOMES = {
    Decision.IMPLICIT_ACCEPTANCE: "acceptée implicitement",
    Decision.IMPLICIT_REJECTION: "rejetée implicitement",
}
SENT_ON = {
    NotificationChannel.EMAIL: "Courriel envoyé",
    NotificationChannel.SMS: "SMS envoyé",
    NotificationChannel.LETTER: "Courrier postal envoyé",
}
CHANNEL_WORDS = {
    PreferredChannel.EMAIL: "par courriel",
    PreferredChannel.SMS: "par SMS",
    PreferredChannel.LETTER: "par courrier postal",
    PreferredChannel.PHONE: "par téléphone (et par courrier)",
}


def implicit_decision_sentence(agency_label: str, due_on: dt.date, decision: Decision) -> str:
    """The timeline's sentence when an agency's silence decided the citizen's request."""
    return (
        f"{agency_label} n'a pas répondu avant le {due_on:%d/%m/%Y} : votre demande est "
        f"{IMPLICIT_OUTCOMES[decision]} (silence gardé pendant le délai légal). "
        "Un courrier vous le confirme."
    )


def new_file_id(today: dt.date) -> str:
    return f"GU-{today.year}-" + "".join(secrets.choice(FILE_ID_ALPHABET) for _ in range(8))


def unknown_file(file_id: str) -> Refused:
    """The refusal for a reference no file carries."""
    return Refused(RefusalKind.NOT_FOUND, f"Aucun dossier ne porte la référence {file_id}.")


@dataclass(frozen=True)
class Submitter:
    """Who opens a file, as the verified token says: recorded with the file."""

    channel: IntakeChannel
    citizen_subject: str | None = None  # the logged-in citizen's `sub`
    registered_by: str | None = None  # the front-desk agent's directory id


DESK_CHANNEL_NEEDED = (
    "Précisez par quel canal l'usager s'est adressé à vous : guichet, telephone ou courrier."
)
DESK_ONLY = "Seul un agent d'accueil enregistre un dossier au nom d'un usager."


def submitter_of(principal: Principal, channel: IntakeChannel | None) -> Submitter:
    """Who may open a file, and how it is recorded: anyone online (a logged-in citizen's
    file is linked to them); a front-desk agent for a citizen, saying the channel; no other
    agent, and no agency's system."""
    if principal.kind is PrincipalKind.AGENT and principal.has_role(Role.GUICHET):
        if not principal.agent_id:
            raise Refused(RefusalKind.FORBIDDEN, DESK_ONLY)
        if channel not in DESK_CHANNELS:
            raise Refused(RefusalKind.INVALID, DESK_CHANNEL_NEEDED, field="channel")
        return Submitter(channel, registered_by=principal.agent_id)
    if principal.kind in (PrincipalKind.AGENT, PrincipalKind.AGENCY, PrincipalKind.SERVICE):
        raise Refused(RefusalKind.FORBIDDEN, DESK_ONLY)
    if channel not in (None, IntakeChannel.ONLINE):
        raise Refused(RefusalKind.INVALID, DESK_ONLY, field="channel")
    if principal.kind is PrincipalKind.CITIZEN:
        return Submitter(IntakeChannel.ONLINE, citizen_subject=principal.subject)
    return Submitter(IntakeChannel.ONLINE)


def statuses_before(status: AgencyStatus) -> list[AgencyStatus]:
    """The statuses an agency may move to `status` from: events of different topics may
    cross, so a status only moves forward."""
    return [s for s, rank in AGENCY_STATUS_RANK.items() if rank < AGENCY_STATUS_RANK[status]]


def agency_label(code: str) -> str:
    """The agency's name, or its code when it is not one we know."""
    try:
        return AGENCY_LABELS.get(code, code)
    except ValueError:
        return code


def deadline_text(due_on: dt.date | None, state: str | None, rule: str | None) -> str | None:
    """What the citizen reads about an agency's legal deadline."""
    if state == DeadlineState.SUSPENDED:
        return "Délai suspendu jusqu'à réception de la pièce demandée."
    if state == DeadlineState.RUNNING and due_on is not None:
        meanings: dict[str, str] = {
            DeadlineRule.SILENCE_ACCEPTS: (
                " ; sans réponse à cette date, votre demande sera acceptée"
            ),
            DeadlineRule.SILENCE_REJECTS: (
                " ; sans réponse à cette date, votre demande sera rejetée"
                " (vous pourrez la contester)"
            ),
        }
        meaning = meanings.get(rule or "", "")
        return f"Réponse au plus tard le {due_on:%d/%m/%Y}{meaning}."
    return None


def named_referent(card: dict[str, Any] | None, no_one: str) -> Referent:
    """The file's référent, or a CONFLICT saying `no_one` while none is named (a card
    recorded before agent ids were kept does not name anyone who can be reached)."""
    if not card or "agent_id" not in card:
        raise Refused(RefusalKind.CONFLICT, no_one)
    return Referent.model_validate(card)


NO_REFERENT_YET = "Aucun référent n'est encore désigné pour ce dossier ; il le sera très bientôt."

# --------------------------------------------------------------------------- citizen's actions


def ensure_referent_change_allowed(
    status: str, referent: dict[str, Any] | None, already_requested_at: dt.datetime | None
) -> None:
    """A change of référent is granted once per file, on an open file with a référent."""
    if status == FileStatus.ANSWERED:
        raise Refused(
            RefusalKind.CONFLICT, "Ce dossier est clos : la réponse coordonnée vous a été envoyée."
        )
    if referent is None:
        raise Refused(RefusalKind.CONFLICT, NO_REFERENT_YET)
    if already_requested_at is not None:
        raise Refused(
            RefusalKind.CONFLICT,
            "Un changement de référent a déjà été accordé pour ce dossier. Pour en demander un "
            "autre, adressez-vous au responsable de votre espace France Services.",
        )


def ensure_survey_open(status: str, already_answered: bool) -> None:
    """The satisfaction survey opens with the coordinated answer, and is answered once."""
    if status != FileStatus.ANSWERED:
        raise Refused(
            RefusalKind.CONFLICT,
            "L'enquête de satisfaction s'ouvre quand la réponse coordonnée vous a été envoyée.",
        )
    if already_answered:
        raise Refused(
            RefusalKind.CONFLICT, "Vous avez déjà répondu à l'enquête pour ce dossier : merci !"
        )


def ensure_not_thanked_yet(referent: Referent, already_thanked: bool) -> None:
    """A citizen thanks a référent once per file."""
    if already_thanked:
        raise Refused(
            RefusalKind.CONFLICT,
            f"Vous avez déjà remercié {referent.name} pour ce dossier : "
            "votre message lui a été transmis.",
        )


ONLY_THE_REFERENT_WRITES = (
    "Seul le référent actuel du dossier peut écrire à l'usager depuis ce dossier."
)


def ensure_current_referent_writes(card: dict[str, Any] | None, agent_id: str) -> Referent:
    """Only the file's current référent writes to the citizen from the file."""
    referent = named_referent(card, "Aucun référent n'est encore désigné pour ce dossier.")
    if referent.agent_id != agent_id:
        raise Refused(RefusalKind.FORBIDDEN, ONLY_THE_REFERENT_WRITES)
    return referent


# --------------------------------------------------------------------------- access codes

ACCESS_CODE_TTL = dt.timedelta(minutes=15)
ACCESS_CODE_MAX_ATTEMPTS = 5
ACCESS_CODES_PER_TTL = 3  # codes a file may be sent within ACCESS_CODE_TTL
CODE_NO_LONGER_VALID = "Ce code n'est plus valable : demandez un nouveau code."
#: How long a verified code proves control of the file's channel (the pages keep the file
#: open as long); changing contact details needs such a proof.
ACCESS_PROOF_TTL = dt.timedelta(minutes=30)
PROOF_NEEDED = (
    "Pour modifier vos coordonnées, ouvrez d'abord votre dossier avec le code d'accès reçu "
    "par courriel ou SMS."
)
PROOF_EXPIRED = (
    "Votre accès au dossier a expiré : demandez un nouveau code d'accès pour modifier vos "
    "coordonnées."
)


def new_access_code() -> tuple[str, str]:
    """A 6-digit one-time code and the salt its hash is kept with."""
    return f"{secrets.randbelow(10**6):06d}", secrets.token_hex(16)


def code_hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def new_access_proof() -> str:
    """The proof a verified code gives: 256 random bits, so a plain hash keeps it safe."""
    return secrets.token_urlsafe(32)


def proof_hash(proof: str) -> str:
    return hashlib.sha256(proof.encode()).hexdigest()


def ensure_code_can_be_sent(
    has_email: bool, has_phone: bool, sent_recently: int, retry_after_seconds: int = 0
) -> None:
    """A code goes by email or SMS only (a letter would arrive after it expires), and a
    file is sent at most ACCESS_CODES_PER_TTL codes within ACCESS_CODE_TTL; beyond, the
    refusal tells when to try again (`retry_after_seconds`: until the oldest of those codes
    leaves the window, see `code_retry_after`)."""
    if not (has_email or has_phone):
        raise Refused(
            RefusalKind.CONFLICT,
            "Aucune adresse électronique ni aucun numéro de téléphone ne sont enregistrés pour ce "
            "dossier : le code ne peut pas vous être envoyé. Votre référent peut vous renseigner "
            "au guichet ou par courrier.",
        )
    if sent_recently >= ACCESS_CODES_PER_TTL:
        raise Refused(
            RefusalKind.TOO_MANY,
            "Plusieurs codes vous ont déjà été envoyés : utilisez le dernier reçu ou réessayez "
            "dans 15 minutes.",
            headers={"Retry-After": str(max(1, retry_after_seconds))},
        )


def code_retry_after(oldest_recent: dt.datetime | None, now: dt.datetime) -> int:
    """Seconds until the oldest code sent within ACCESS_CODE_TTL stops counting (0: none)."""
    if oldest_recent is None:
        return 0
    return max(0, math.ceil((oldest_recent + ACCESS_CODE_TTL - now).total_seconds()))


def wrong_code(most_attempts: int) -> Refused:
    """The refusal of a wrong code, given the most attempts a live code had before it."""
    left = ACCESS_CODE_MAX_ATTEMPTS - 1 - most_attempts
    if left <= 0:
        return Refused(RefusalKind.FORBIDDEN, f"Code incorrect. {CODE_NO_LONGER_VALID}")
    plural = "s" if left > 1 else ""
    return Refused(RefusalKind.FORBIDDEN, f"Code incorrect. Il vous reste {left} essai{plural}.")


# --------------------------------------------------------------------------- documents

#: What a citizen may upload, recognised by the content's first bytes (not the name).
DOCUMENT_SIGNATURES = {
    "application/pdf": b"%PDF-",
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
}
MAX_DOCUMENT_BYTES = 512 * 1024


def document_type(content: bytes, declared: str | None) -> str:
    """The checked media type of an upload, or a refusal in French."""
    if not content:
        raise Refused(RefusalKind.INVALID, "Le fichier est vide.", field="fichier")
    if len(content) > MAX_DOCUMENT_BYTES:
        raise Refused(
            RefusalKind.TOO_LARGE,
            f"Le fichier dépasse {MAX_DOCUMENT_BYTES // 1024} Ko.",
            field="fichier",
        )
    found = next((t for t, magic in DOCUMENT_SIGNATURES.items() if content.startswith(magic)), None)
    if found is None:
        raise Refused(
            RefusalKind.UNSUPPORTED,
            "Format non accepté : envoyez un PDF, une image JPEG ou PNG.",
            field="fichier",
        )
    if declared and declared not in (found, "application/octet-stream"):
        raise Refused(
            RefusalKind.UNSUPPORTED,
            f"Le contenu du fichier ({found}) ne correspond pas au type annoncé ({declared}).",
            field="fichier",
        )
    return found


def ensure_one_agency_waits(waiting: list[str]) -> str:
    """The one agency waiting for a document (the citizen names it when several do)."""
    if not waiting:
        raise Refused(
            RefusalKind.CONFLICT,
            "Aucun organisme n'attend de pièce justificative pour ce dossier.",
            field="agency",
        )
    if len(waiting) > 1:
        raise Refused(
            RefusalKind.INVALID,
            f"Plusieurs organismes attendent une pièce ({', '.join(waiting)}) : précisez lequel.",
            field="agency",
        )
    return waiting[0]


# --------------------------------------------------------------------------- indicators

#: Below this many files (or survey answers), a group's figures are not published.
DEFAULT_MIN_FILES = 5
MEDIAN, P90 = Fraction(1, 2), Fraction(9, 10)


def elapsed_seconds(start: dt.datetime, end: dt.datetime) -> int:
    # Events are stamped by different hosts: a small skew must not give a negative delay.
    return max(0, int((end - start).total_seconds()))


def is_citizen_contact(event: NotificationSent) -> bool:
    """A message the administration sent the citizen (not one between agents, nor the access
    code the citizen asked for themselves)."""
    return (
        event.audience == "citoyen"
        and not event.notification_id.endswith(":referent")
        and event.kind is not NotificationKind.ACCESS_CODE
    )


def interpolate(ranked: dict[int, float], n: int, p: Fraction) -> float:
    """Percentile by linear interpolation between the closest ranks (PostgreSQL's
    percentile_cont, numpy's default), from the values at ranks floor and ceil of (n-1)p
    (0-based; exact fractions, so the ranks are the ones the query fetched)."""
    position = (n - 1) * p
    low = math.floor(position)
    high = math.ceil(position)
    return ranked[low] + (ranked[high] - ranked[low]) * float(position - low)


def share(part: int | None, whole: int | None) -> float | None:
    return round(part / whole, 3) if whole and part is not None else None
