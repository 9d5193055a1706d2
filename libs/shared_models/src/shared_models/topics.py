"""Kafka topics, declared once. Every record is keyed by file id, so one file's
events stay ordered within one partition."""

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
DEADLINE_EVENT_TYPES = (
    "LegalDeadlineSet",
    "DeadlineWarningIssued",
    "LegalDeadlineBreached",
    "ImplicitDecisionRecorded",
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
        EXCHANGES_RECORDED: ("ExchangeRecorded", adapters, ("intake",)),
        LEGAL_CLOCK: (
            ("AgencyReceiptAcknowledged", "LegalClockSuspended", "LegalClockResumed"),
            adapters,
            ("assignment",),
        ),
        DEADLINES: (DEADLINE_EVENT_TYPES, "assignment", ("intake", "notification")),
        ACCESS_CODES: ("AccessCodeIssued", "intake", ("notification",)),
        REFERENT_MESSAGES: ("ReferentMessageSent", "intake", ("notification",)),
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
