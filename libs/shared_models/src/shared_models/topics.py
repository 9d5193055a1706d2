"""Kafka topics, declared once. Every record is keyed by file id, so one file's
events stay ordered within one partition."""

from shared_models.agencies import Agency

PARTITIONS = 3

FILES_SUBMITTED = "files.submitted"
REFERENTS_ASSIGNED = "referents.assigned"
REFERENT_CHANGES = "referents.change-requested"
FILES_ANSWERED = "files.answered"
NOTIFICATIONS_SENT = "notifications.sent"
ACCESS_CODES = "access-codes.issued"


def agency_requests(agency: Agency | str) -> str:
    """Topic an agency's adapter consumes (one per agency, so access can be confined)."""
    return f"agency.{Agency(agency).value}.requests"


def agency_answers(agency: Agency | str) -> str:
    """Topic an agency's adapter publishes its answers on."""
    return f"agency.{Agency(agency).value}.answers"


def dead_letter(topic: str) -> str:
    """Where records of `topic` that can never be processed are parked, with the reason."""
    return f"{topic}.dlq"


def all_topics() -> dict[str, int]:
    """Every topic of the system with its partition count, dead-letter topics included."""
    main = [FILES_SUBMITTED, REFERENTS_ASSIGNED, REFERENT_CHANGES, FILES_ANSWERED, NOTIFICATIONS_SENT,
            ACCESS_CODES]
    for agency in Agency:
        main += [agency_requests(agency), agency_answers(agency)]
    declared = {name: PARTITIONS for name in main}
    declared.update({dead_letter(name): 1 for name in main})
    return declared


def flows() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """Who publishes what where: topic -> (event type, producer, consumers).

    Documentation of the system (it feeds the AsyncAPI document); a test checks it
    against the services' real subscriptions.
    """
    table = {
        FILES_SUBMITTED: ("FileSubmitted", "intake", ("assignment",)),
        REFERENTS_ASSIGNED: ("ReferentAssigned", "assignment", ("intake", "notification")),
        REFERENT_CHANGES: ("ReferentChangeRequested", "intake", ("assignment",)),
        FILES_ANSWERED: ("CoordinatedAnswerIssued", "assignment", ("intake", "notification")),
        NOTIFICATIONS_SENT: ("NotificationSent", "notification", ("intake",)),
        ACCESS_CODES: ("AccessCodeIssued", "intake", ("notification",)),
    }
    for agency in Agency:
        adapter = f"adapter-{agency.value.replace('_', '-')}"
        table[agency_requests(agency)] = ("AgencyRequestIssued", "assignment", (adapter, "intake"))
        table[agency_answers(agency)] = ("AgencyAnswerReceived", adapter, ("assignment", "intake"))
    return table
