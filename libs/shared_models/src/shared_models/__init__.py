"""Shared contracts of guichet unique: the events services exchange over Kafka.

Services depend on this library, never on each other.
"""

from shared_models.agencies import AGENCY_LABELS, Agency
from shared_models.events import (
    EVENT_TYPES,
    AccessCodeIssued,
    AgencyAnswerReceived,
    AgencyDecision,
    AgencyRequestIssued,
    CitizenContact,
    CoordinatedAnswerIssued,
    Decision,
    Event,
    FileSubmitted,
    NotificationKind,
    NotificationSent,
    PreferredChannel,
    Referent,
    ReferentAssigned,
    ReferentChangeRequested,
    parse_event,
)
from shared_models import topics

__all__ = [
    "AGENCY_LABELS",
    "EVENT_TYPES",
    "AccessCodeIssued",
    "Agency",
    "AgencyAnswerReceived",
    "AgencyDecision",
    "AgencyRequestIssued",
    "CitizenContact",
    "CoordinatedAnswerIssued",
    "Decision",
    "Event",
    "FileSubmitted",
    "NotificationKind",
    "NotificationSent",
    "PreferredChannel",
    "Referent",
    "ReferentAssigned",
    "ReferentChangeRequested",
    "parse_event",
    "topics",
]
