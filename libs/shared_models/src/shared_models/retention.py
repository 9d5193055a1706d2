"""How long each kind of personal data is kept: the single declaration behind the retention
table of docs/data-protection.md (a test keeps them equal), the retention job
(`intake retention`, `assignment retention`) and the privacy notice the citizen reads.

Topics keep their own declaration (`shared_models.topics.RETENTIONS`); they are listed here
too, by reference, so the table and the notice cover every place personal data rests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from shared_models import topics


class DataKind(StrEnum):
    """The kinds of personal data, each with its retention period (PERIODS)."""

    DOCUMENTS = "documents"  # supporting documents the citizen uploaded (intake)
    CLOSED_FILES = "closed-files"  # a closed file's personal data, every service's copy
    ACCESS_CODES = "access-codes"  # one-time codes and the proofs they gave (intake)
    AUDIT_TRAIL = "audit-trail"  # intake's and assignment's audit trails
    WEB_SESSIONS = "web-sessions"  # the web's server-side sessions
    EVENT_TOPICS = "event-topics"  # records on the events, requests, answers, documents topics
    DEAD_LETTER_TOPICS = "dead-letter-topics"  # records parked on dead-letter topics


@dataclass(frozen=True)
class Period:
    """A retention period: how long, counted from when, and what happens at expiry."""

    days: int
    counted_from: str  # in French, for the notice and the table
    at_expiry: str  # in French

    @property
    def delta(self) -> dt.timedelta:
        return dt.timedelta(days=self.days)

    def expired(self, start: dt.datetime, now: dt.datetime) -> bool:
        """Whether data whose period started at `start` is past its period at `now`."""
        return start + self.delta <= now


#: Closed files keep their personal data two years after the coordinated answer.
CLOSED_FILE_DAYS = 2 * 365

#: The retention period of each kind of personal data.
PERIODS: dict[DataKind, Period] = {
    DataKind.DOCUMENTS: Period(
        90,
        "la réponse coordonnée (clôture du dossier)",
        "pièce supprimée ; son empreinte reste au registre des échanges",
    ),
    DataKind.CLOSED_FILES: Period(
        CLOSED_FILE_DAYS,
        "la réponse coordonnée (clôture du dossier)",
        "données personnelles effacées dans chaque service (comme à la demande de l'usager) ; "
        "le dossier garde un squelette anonyme pour les indicateurs",
    ),
    DataKind.ACCESS_CODES: Period(
        1, "l'expiration du code", "code (empreinte) et preuve d'accès supprimés"
    ),
    DataKind.AUDIT_TRAIL: Period(
        6 * 365,
        "l'enregistrement de l'action",
        "entrées supprimées par journées entières ; le journal reste vérifiable",
    ),
    DataKind.WEB_SESSIONS: Period(
        1, "la dernière activité (30 minutes d'inactivité au plus)", "session supprimée"
    ),
    DataKind.EVENT_TOPICS: Period(
        topics.RETENTIONS[topics.TopicKind.EVENTS].days,
        "la publication du message",
        "message supprimé par Kafka",
    ),
    DataKind.DEAD_LETTER_TOPICS: Period(
        topics.RETENTIONS[topics.TopicKind.DEAD_LETTERS].days,
        "la mise à l'écart du message",
        "message supprimé par Kafka",
    ),
}


def period(kind: DataKind) -> Period:
    return PERIODS[kind]
