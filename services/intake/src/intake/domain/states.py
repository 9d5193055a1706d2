"""Intake's typed states (the values stored in its tables and sent in its views)."""

from __future__ import annotations

from enum import StrEnum

from shared_models import IntakeChannel


class FileStatus(StrEnum):
    """Where a file stands, as the citizen sees it."""

    SUBMITTED = "depose"
    IN_PROGRESS = "en_cours"  # a référent is named
    ANSWERED = "repondu"  # the coordinated answer was sent: the file is closed


class AgencyStatus(StrEnum):
    """Where one agency of a file stands; it only moves forward (see `statuses_before`)."""

    WAITING = "en_attente"
    SENT = "transmis"
    DOCUMENT_REQUESTED = "piece_demandee"
    DOCUMENT_SENT = "piece_envoyee"
    ANSWERED = "repondu"


class DeadlineState(StrEnum):
    """The state of an agency's legal clock, as the assignment service keeps it."""

    RUNNING = "en_cours"
    SUSPENDED = "suspendu"
    NONE = "sans_delai"
    ANSWERED = "repondu"


class TimelineKind(StrEnum):
    """What a line of the citizen's timeline is about."""

    SUBMITTED = "depot"
    REFERENT = "referent"
    REFERENT_CHANGE_REQUESTED = "demande_changement"
    SENT_TO_AGENCY = "transmission"
    DOCUMENT_REQUESTED = "piece_demandee"
    DOCUMENT_SENT = "piece_envoyee"
    AGENCY_ANSWER = "reponse_organisme"
    IMPLICIT_DECISION = "decision_implicite"
    EXCHANGE = "echange"
    COORDINATED_ANSWER = "reponse_coordonnee"
    NOTIFICATION = "notification"
    CONTACT_PREFERENCES = "preferences"
    SURVEY = "enquete"
    THANKS = "remerciement"
    REFERENT_MESSAGE = "message_referent"
    CITIZEN_MESSAGE = "message_citoyen"
    MESSAGE_OVERDUE = "message_en_retard"
    #: Appointments with the référent (issue 16 §3): a move books a new one.
    APPOINTMENT_BOOKED = "rendez_vous_pris"
    APPOINTMENT_MOVED = "rendez_vous_deplace"
    APPOINTMENT_CANCELLED = "rendez_vous_annule"


#: The channels a front-desk agent registers a file through.
DESK_CHANNELS = (IntakeChannel.COUNTER, IntakeChannel.PHONE, IntakeChannel.MAIL)
