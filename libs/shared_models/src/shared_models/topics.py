"""Kafka topics, declared once. Every record is keyed by file id, so one file's
events stay ordered within one partition."""

from dataclasses import dataclass
from enum import StrEnum

from shared_models.agencies import AGENCY_CODE
from shared_models.catalogue import catalogue

PARTITIONS = 3

FILES_SUBMITTED = "files.submitted"
REFERENTS_ASSIGNED = "referents.assigned"
REFERENT_CHANGES = "referents.change-requested"
FILES_ANSWERED = "files.answered"
NOTIFICATIONS_SENT = "notifications.sent"
FILES_AWAITING_REFERENT = "files.awaiting-referent"
#: Agent directory changes, keyed by agent id (office id for office events).
DIRECTORY_CHANGES = "directory.changes"
DIRECTORY_EVENT_TYPES = (
    "OfficeOpened",
    "OfficeDetailsChanged",
    "AgentJoined",
    "AgentDetailsChanged",
    "AgentAbsenceDeclared",
    "AgentReturned",
    "AgentLeft",
)
CONTACT_CHANGES = "citizens.contact-changed"
THANKS = "referents.thanked"
SURVEYS = "files.survey-answered"
DOCUMENTS_REQUESTED = "files.document-requested"
EXCHANGES_RECORDED = "exchanges.recorded"
LEGAL_CLOCK = "legal-clock.events"
#: The legal deadlines as assignment keeps them: set/moved, warnings, breaches, implicit decisions.
DEADLINES = "legal-deadlines.events"
ACCESS_CODES = "access-codes.issued"
#: Messages a référent writes to the citizen from the desk.
REFERENT_MESSAGES = "referents.messages"
#: Messages a citizen writes to their référent from their space.
CITIZEN_MESSAGES = "citizens.messages"
#: A citizen's personal data was erased at intake (request or retention): every copy goes.
CITIZEN_DATA_ERASED = "citizens.data-erased"
#: Appointments of citizens with their référents: booked, moved, cancelled, reminded.
APPOINTMENTS = "appointments.events"
APPOINTMENT_EVENT_TYPES = (
    "AppointmentBooked",
    "AppointmentCancelled",
    "AppointmentReminderIssued",
)
DEADLINE_EVENT_TYPES = (
    "LegalDeadlineSet",
    "DeadlineWarningIssued",
    "LegalDeadlineBreached",
    "ImplicitDecisionRecorded",
    # The answer-time promise of the citizen's messages (a deadline of the référent's own).
    "CitizenMessageReminderIssued",
    "CitizenMessageEscalated",
)


def _code(agency: str) -> str:
    # Any well-formed code: an agency plugs its adapter in (docs/adapters.md) and is
    # reached once the catalogue lists it.
    code = str(agency)
    if not AGENCY_CODE.match(code):
        raise ValueError(f"invalid agency code {code!r}")
    return code


def agency_requests(agency: str) -> str:
    """Topic an agency's adapter consumes (one per agency, so access can be confined)."""
    return f"agency.{_code(agency)}.requests"


def agency_answers(agency: str) -> str:
    """Topic an agency's adapter publishes its answers on."""
    return f"agency.{_code(agency)}.answers"


def agency_documents(agency: str) -> str:
    """Topic of the supporting documents citizens send to an agency (its adapter forwards them)."""
    return f"agency.{_code(agency)}.documents"


def dead_letter(topic: str) -> str:
    """Where records of `topic` that can never be processed are parked, with the reason."""
    return f"{topic}.dlq"


def agency_topics(agency: str) -> list[str]:
    """The topics one agency's adapter reads or writes."""
    return [agency_requests(agency), agency_answers(agency), agency_documents(agency)]


def all_topics() -> dict[str, int]:
    """Every topic of the system with its partition count, dead-letter topics included."""
    main = [
        FILES_SUBMITTED,
        REFERENTS_ASSIGNED,
        REFERENT_CHANGES,
        FILES_ANSWERED,
        NOTIFICATIONS_SENT,
        FILES_AWAITING_REFERENT,
        DIRECTORY_CHANGES,
        CONTACT_CHANGES,
        THANKS,
        SURVEYS,
        DOCUMENTS_REQUESTED,
        EXCHANGES_RECORDED,
        LEGAL_CLOCK,
        DEADLINES,
        ACCESS_CODES,
        REFERENT_MESSAGES,
        CITIZEN_MESSAGES,
        CITIZEN_DATA_ERASED,
        APPOINTMENTS,
    ]
    for agency in catalogue().served_agencies():
        main += agency_topics(agency)
    declared = dict.fromkeys(main, PARTITIONS)
    declared.update({dead_letter(name): 1 for name in main})
    return declared


def adapter_service(agency: str) -> str:
    """Service (and consumer group) name of an agency's adapter."""
    return f"adapter-{_code(agency).replace('_', '-')}"


def flows() -> dict[str, tuple[str | tuple[str, ...], str, tuple[str, ...]]]:
    """Who publishes what where: topic -> (event type(s), producer, consumers).

    Documentation of the system (it feeds the AsyncAPI document); a test checks it
    against the services' real subscriptions.
    """
    adapters = "adapter-<organisme>"
    table: dict[str, tuple[str | tuple[str, ...], str, tuple[str, ...]]] = {
        FILES_SUBMITTED: ("FileSubmitted", "intake", ("assignment",)),
        REFERENTS_ASSIGNED: ("ReferentAssigned", "assignment", ("intake", "notification")),
        REFERENT_CHANGES: ("ReferentChangeRequested", "intake", ("assignment",)),
        FILES_ANSWERED: ("CoordinatedAnswerIssued", "assignment", ("intake", "notification")),
        NOTIFICATIONS_SENT: ("NotificationSent", "notification", ("intake",)),
        FILES_AWAITING_REFERENT: ("ReferentAssignmentDeferred", "assignment", ("notification",)),
        DIRECTORY_CHANGES: (DIRECTORY_EVENT_TYPES, "assignment", ()),
        CONTACT_CHANGES: ("ContactPreferencesChanged", "intake", ("notification",)),
        THANKS: ("ReferentThanked", "intake", ("notification",)),
        # Satisfaction is kept for the published indicators; no service consumes it yet.
        SURVEYS: ("SurveyAnswered", "intake", ()),
        DOCUMENTS_REQUESTED: ("SupportingDocumentRequested", "assignment", ("notification",)),
        # ExchangeRecorded: one line per event, as former adapters published it.
        EXCHANGES_RECORDED: (("ExchangesRecorded", "ExchangeRecorded"), adapters, ("intake",)),
        LEGAL_CLOCK: (
            (
                "AgencyReceiptAcknowledged",
                "LegalClockSuspended",
                "LegalClockResumed",
                "AgencyStatusChecked",
            ),
            adapters,
            ("assignment",),
        ),
        DEADLINES: (DEADLINE_EVENT_TYPES, "assignment", ("intake", "notification")),
        ACCESS_CODES: ("AccessCodeIssued", "intake", ("notification",)),
        # Assignment marks the citizen's messages answered (the référent's inbox).
        REFERENT_MESSAGES: ("ReferentMessageSent", "intake", ("notification", "assignment")),
        CITIZEN_MESSAGES: ("CitizenMessageReceived", "intake", ("assignment",)),
        CITIZEN_DATA_ERASED: ("CitizenDataErased", "intake", ("assignment", "notification")),
        APPOINTMENTS: (APPOINTMENT_EVENT_TYPES, "assignment", ("intake", "notification")),
    }
    for agency in catalogue().served_agencies():
        adapter = adapter_service(agency)
        table[agency_requests(agency)] = ("AgencyRequestIssued", "assignment", (adapter, "intake"))
        table[agency_answers(agency)] = ("AgencyAnswerReceived", adapter, ("assignment", "intake"))
        table[agency_documents(agency)] = ("SupportingDocumentSubmitted", "intake", (adapter,))
    return table


def parked(topic: str) -> str:
    """Where operators move aside dead letters of `topic` they will not replay (guichet-admin)."""
    return f"{topic}.parked"


def replayed(topic: str) -> str:
    """Marker topic recording which dead letters of `topic` were replayed (guichet-admin), so
    replaying one twice publishes it once."""
    return f"{dead_letter(topic)}.replayed"


def operations_topics() -> dict[str, int]:
    """The topics only the operators' CLI writes (one partition each), per dead-letter topic."""
    sources = [name.removesuffix(".dlq") for name in all_topics() if name.endswith(".dlq")]
    return {name: 1 for source in sources for name in (parked(source), replayed(source))}


# -- retention -----------------------------------------------------------------------------

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Retention:
    """How long a topic keeps its records: Kafka's `cleanup.policy` and `retention.ms`."""

    days: int
    cleanup_policy: str = "delete"

    @property
    def ms(self) -> int:
        return self.days * DAY_MS

    def configs(self) -> dict[str, str]:
        """The topic configuration to create it with (Kafka's names and string values)."""
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.ms)}


class TopicKind(StrEnum):
    """The kinds of topic, each with its retention (RETENTIONS)."""

    EVENTS = "events"
    DEAD_LETTERS = "dead-letters"
    OPERATIONS = "operations"


#: The single declaration of every topic's retention, applied where a topic is created: by the
#: services and adapters (guichet_runtime.service.ensure_topics), by the development stack's
#: administrator (devstack.kafka_sasl), by the operators' CLI (guichet-admin) and on a cluster by
#: Strimzi's KafkaTopics (devstack.k8s_kafka); docs/operations.md, "Topic retention".
RETENTIONS = {
    # Events, agency requests, answers and documents: a long weekend of outage plus time to
    # replay; not an archive (each service keeps what it needs in its database).
    TopicKind.EVENTS: Retention(days=7),
    # Dead letters wait for an operator to read, fix and replay them.
    TopicKind.DEAD_LETTERS: Retention(days=30),
    # The operators' ledgers (parked letters, replay markers) outlive the dead letters they
    # account for, so a letter still in its dead-letter topic is never replayed twice; parked
    # letters are also the record of what was given up, kept for a quarter.
    TopicKind.OPERATIONS: Retention(days=90),
}


def topic_kind(topic: str) -> TopicKind:
    """The kind of `topic` (with or without a TOPIC_NAMESPACE prefix)."""
    if topic.endswith((".parked", ".dlq.replayed")):
        return TopicKind.OPERATIONS
    if topic.endswith(".dlq"):
        return TopicKind.DEAD_LETTERS
    return TopicKind.EVENTS


def retention(topic: str) -> Retention:
    """The retention `topic` is created with."""
    return RETENTIONS[topic_kind(topic)]
