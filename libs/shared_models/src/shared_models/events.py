"""Events: past-tense facts, one envelope (`Event`), every field described."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from shared_models.agencies import AgencyCode
from shared_models.citizen_data import CitizenExtract, CitizenName, PreferredChannel
from shared_models.contract import Contract
from shared_models.email_address import EmailAddress
from shared_models.personal import PERSONAL

#: The schema version of an event whose personal fields are sealed (version 1: in clear).
SEALED_VERSION_2 = (
    "Version of this event's schema (2: its personal fields travel sealed with the citizen's "
    "data key, see shared_models.personal; version 1 records, in clear, stay readable)."
)


def time_ordered_id() -> uuid.UUID:
    """A version 7 UUID (RFC 9562, section 5.7): the Unix time in milliseconds in its first
    48 bits, then 74 random bits, so ids made later sort later. Every consumer records the
    ids it handled in its inbox, an index on (consumer, event id), and intake its timeline's
    lines by event id: random (version 4) ids put each new entry on a page of its own, so a
    batch of records wrote as many index pages; time-ordered ones go to the index's last
    pages, and a batch writes a few (intake wrote a sixth fewer bytes per file on SQLite).
    Written here rather than taken from a package: `uuid.uuid7` is the standard library's
    from Python 3.14, and this is its layout in a few lines."""
    milliseconds = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits: 12 (rand_a) and 62 (rand_b) used
    return uuid.UUID(
        int=(milliseconds & (1 << 48) - 1) << 80
        | 0x7 << 76  # version
        | (rand >> 68) << 64  # rand_a: 12 bits
        | 0b10 << 62  # variant (RFC 9562)
        | rand & (1 << 62) - 1  # rand_b: 62 bits
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Envelope(Contract):
    """The one base of every event: identity, time and schema version."""

    event_type: ClassVar[str]
    event_id: uuid.UUID = Field(
        default_factory=time_ordered_id,
        description="Unique id of this event; consumers deduplicate on it. Made time-ordered "
        "(UUID version 7) by the producers of this project; any unique UUID is accepted.",
    )
    occurred_at: dt.datetime = Field(
        default_factory=_now, description="When the fact happened (UTC, ISO 8601)."
    )
    schema_version: int = Field(default=1, description="Version of this event's schema.")

    def key(self) -> str:
        """Kafka key: the events of one key stay ordered within one partition."""
        raise NotImplementedError


class Event(Envelope):
    """An event about one citizen file, keyed by the file's reference."""

    file_id: str = Field(description="Reference of the citizen file, also the Kafka key.")

    def key(self) -> str:
        return self.file_id


class DirectoryEvent(Envelope):
    """A change in the agent directory, keyed by the agent (or office) it is about."""

    def key(self) -> str:
        agent_id: str | None = getattr(self, "agent_id", None)
        return agent_id or str(self.office.office_id)  # type: ignore[attr-defined]


class IntakeChannel(StrEnum):
    """How a file came in: online by the citizen, or registered by a front-desk agent."""

    ONLINE = "en_ligne"  # the citizen, on the site (logged in or not)
    COUNTER = "guichet"  # at a France Services counter
    PHONE = "telephone"  # on the phone line
    MAIL = "courrier"  # a letter to the mail room


class CitizenContact(Contract):
    """Who the file is about and how to reach them."""

    given_name: str = Field(description="Citizen's given name.")
    family_name: str = Field(description="Citizen's family name.")
    email: EmailAddress | None = Field(default=None, description="Citizen's email address, if any.")
    phone: str | None = Field(default=None, description="Citizen's phone number, if any.")
    street: str | None = Field(
        default=None, description="Number and street of the citizen's postal address, if given."
    )
    postcode: str = Field(description="French postcode of the citizen's home (5 digits).")
    city: str | None = Field(
        default=None, description="Town of the citizen's postal address, if given."
    )
    preferred_channel: PreferredChannel = Field(
        description="Channel the citizen chose for messages."
    )


class SealedSecret(Contract):
    """A short secret encrypted for one reader (AES-256-GCM, see guichet_runtime.sealing)."""

    key_id: str = Field(
        description="Which key sealed it (a fingerprint of the key, never the key): lets the "
        "reader pick among its current and previous keys during a rotation."
    )
    nonce: str = Field(description="The 12-byte GCM nonce, base64url.")
    ciphertext: str = Field(description="The encrypted secret with its GCM tag, base64url.")


class Referent(Contract):
    """The named agent coordinating the file, with a direct contact."""

    agent_id: str = Field(description="Directory id of the agent.")
    name: str = Field(description="Agent's full name, shown to the citizen.")
    office: str = Field(description="Name of the agent's France Services office.")
    office_id: str = Field(description="Directory id of the office.")
    phone: str = Field(description="Agent's direct phone line.")
    email: EmailAddress = Field(description="Agent's direct email address.")
    opening_hours: str | None = Field(
        default=None,
        description="Opening hours of the agent's office, in French (part of the signature block).",
    )


class Decision(StrEnum):
    GRANTED = "accorde"
    REFUSED = "refuse"
    DOCUMENT_REQUESTED = "piece_demandee"
    #: The legal period ran out without an answer where silence means acceptance.
    IMPLICIT_ACCEPTANCE = "acceptation_implicite"
    #: The legal period ran out without an answer where silence means rejection.
    IMPLICIT_REJECTION = "rejet_implicite"


class DeadlineRule(StrEnum):
    """What the law says an agency's silence means once its period has run out."""

    SILENCE_ACCEPTS = "silence_vaut_acceptation"
    SILENCE_REJECTS = "silence_vaut_rejet"
    NONE = "aucune"


class RequestedDocument(Contract):
    """A supporting document (pièce justificative) an agency needs before deciding."""

    code: str = Field(description="The agency's code of the document, e.g. attestation_salaire.")
    label: str = Field(description="Name of the document in French, shown to the citizen.")


class AgencyDecision(Contract):
    """One agency's answer on its part of the file."""

    agency: AgencyCode = Field(description="Agency that decided.")
    decision: Decision = Field(description="The agency's decision.")
    summary: str = Field(description="One sentence in French describing the decision.")
    amount_eur: float | None = Field(default=None, description="Amount granted, in euros.")
    start_date: dt.date | None = Field(default=None, description="Date the decision applies from.")
    reason: str | None = Field(default=None, description="Reason given, in French, if refused.")
    agency_reference: str = Field(description="The agency's own reference for the request.")
    requested_document: RequestedDocument | None = Field(
        default=None,
        description="The document the agency asks for, when the decision is piece_demandee.",
    )


class FileSubmitted(Event):
    """A citizen file was opened at intake (web form, counter or phone)."""

    event_type: ClassVar[str] = "FileSubmitted"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    life_event: str = Field(description="Code of the life event from intake's catalogue.")
    life_event_label: str = Field(description="Name of the life event, in French.")
    agencies: list[AgencyCode] = Field(description="Agencies concerned by this life event.")
    citizen: Annotated[CitizenContact, PERSONAL] = Field(
        description="The citizen and how to reach them."
    )
    description: Annotated[str, PERSONAL] = Field(
        description="The citizen's situation in their own words."
    )
    urgent: bool = Field(description="True when the citizen is in an urgent situation.")
    channel: IntakeChannel = Field(
        default=IntakeChannel.ONLINE,
        description="How the file came in: `en_ligne` (the citizen, on the site), or "
        "registered by a front-desk agent at the counter (`guichet`), on the phone "
        "(`telephone`) or from a letter (`courrier`).",
    )
    registered_by: str | None = Field(
        default=None,
        description="Directory id of the front-desk agent who registered the file for the "
        "citizen (from their verified token); absent when the citizen filed it themselves.",
    )


class ReferentAssigned(Event):
    """A named référent was chosen (or kept) for the file."""

    event_type: ClassVar[str] = "ReferentAssigned"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    referent: Referent = Field(description="The référent now responsible for the file.")
    rule: str = Field(description="Rule that decided the choice (continuity, proximity, …).")
    explanation: str = Field(description="Why this agent, in French, for supervisors.")
    citizen: Annotated[CitizenContact, PERSONAL] = Field(
        description="Recipient of the notification."
    )
    previous_referent: Referent | None = Field(
        default=None, description="The référent this one replaces, when the référent changed."
    )
    reason: Annotated[str | None, PERSONAL] = Field(
        default=None, description="Why the référent changed, in French."
    )


class ReferentChangeRequested(Event):
    """The citizen (once per file) or a supervisor asked for another référent."""

    event_type: ClassVar[str] = "ReferentChangeRequested"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    requested_by: Literal["citoyen", "superviseur"] = Field(description="Who asked for the change.")
    reason: Annotated[str, PERSONAL] = Field(
        description="The reason given, in French; shown in the file's history."
    )
    current_agent_id: str | None = Field(
        default=None,
        description="The référent the requester saw, if known (stale requests are ignored).",
    )


class AgencyRequestIssued(Event):
    """The référent's file was transmitted to one agency."""

    event_type: ClassVar[str] = "AgencyRequestIssued"
    schema_version: int = Field(
        default=3,
        description="Version of this event's schema (2: only the citizen fields the catalogue "
        "lists for the agency, the description among them; 3: the citizen data sealed).",
    )
    request_id: str = Field(description="Unique id of this agency request.")
    agency: AgencyCode = Field(description="Agency the request is addressed to.")
    life_event: str = Field(description="Life event code of the file.")
    citizen: Annotated[CitizenExtract, PERSONAL] = Field(
        description="The citizen data transmitted to the agency: only the fields the catalogue "
        "lists for it ([citizen_fields]; the situation's description is one of them); the "
        "others are absent from the record."
    )
    urgent: bool = Field(description="Urgent files are handled first.")

    @model_validator(mode="before")
    @classmethod
    def _description_inside(cls, data: Any) -> Any:
        # Version 1 carried the whole contact and the description beside it: read as
        # version 2 (the adapter still keeps only what it declares).
        old = isinstance(data, dict) and "description" in data
        if old and isinstance(data.get("citizen"), dict):
            data = dict(data)
            data["citizen"] = {**data["citizen"], "description": data.pop("description")}
        return data


class AgencyAnswerReceived(Event):
    """An agency answered its request."""

    event_type: ClassVar[str] = "AgencyAnswerReceived"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    request_id: str = Field(description="Id of the agency request this answers.")
    answer: Annotated[AgencyDecision, PERSONAL] = Field(description="The agency's decision.")
    after_document: str | None = Field(
        default=None,
        description=(
            "Intake's id of the citizen's document this answer follows; none for the answer to"
            " the request itself. An agency asking again for the same document after one (it"
            " was incomplete) is a new request, not a repeat."
        ),
    )


class AgencyReceiptAcknowledged(Event):
    """An agency's system acknowledged receipt of a request: its legal clock starts."""

    event_type: ClassVar[str] = "AgencyReceiptAcknowledged"
    request_id: str = Field(description="Id of the agency request.")
    agency: str = Field(description="Code of the agency (caf, dgfip, …).")
    agency_reference: str = Field(description="The agency's own reference for the request.")
    deadline_rule: DeadlineRule = Field(
        description="What the agency's silence means when the period ends."
    )
    deadline_months: int | None = Field(
        default=None,
        description=(
            "Legal period in calendar months from receipt (CRPA L231-1: two months), counted from"
            " date to date in Europe/Paris; none when the rule is aucune or the period counts days."
        ),
    )
    deadline_days: int | None = Field(
        default=None,
        description=(
            "Legal period in calendar days from receipt, only for a procedure that really"
            " counts days; none when the period counts months or the rule is aucune."
        ),
    )


class LegalClockSuspended(Event):
    """An agency asked for a missing document: its legal clock stops until the document arrives."""

    event_type: ClassVar[str] = "LegalClockSuspended"
    request_id: str = Field(description="Id of the agency request.")
    agency: str = Field(description="Code of the agency.")
    document: RequestedDocument = Field(description="The document the agency waits for.")


class LegalClockResumed(Event):
    """The awaited document reached the agency: its legal clock runs again."""

    event_type: ClassVar[str] = "LegalClockResumed"
    request_id: str = Field(description="Id of the agency request.")
    agency: str = Field(description="Code of the agency.")
    document_code: str = Field(description="Code of the document that was delivered.")


class StatusFinding(StrEnum):
    """What reconciliation found when it asked an agency where a request stands."""

    PENDING = "en_instruction"  # the agency answered: no decision yet
    FAILED = "echec"  # no usable answer (unreachable, refused, unreadable)


class AgencyStatusChecked(Event):
    """Reconciliation asked the agency where an acknowledged request stands and found no
    decision (a decision found is an AgencyAnswerReceived): what it last found is shown to
    the supervisors with the requests left without a decision too long."""

    event_type: ClassVar[str] = "AgencyStatusChecked"
    request_id: str = Field(description="Id of the agency request.")
    agency: str = Field(description="Code of the agency.")
    finding: StatusFinding = Field(
        description="en_instruction: the agency has not decided yet; echec: no usable answer."
    )
    checks: int = Field(description="Status queries made since the request was acknowledged.")
    next_check_at: dt.datetime | None = Field(
        default=None, description="When the agency is asked again (UTC); none: not again."
    )


class SupportingDocumentRequested(Event):
    """An agency needs a document: the référent and the citizen are to be told."""

    event_type: ClassVar[str] = "SupportingDocumentRequested"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    request_id: str = Field(description="Id of the agency request waiting for the document.")
    agency: AgencyCode = Field(description="Agency asking for the document.")
    document: RequestedDocument = Field(description="The document asked for.")
    referent: Referent = Field(description="The référent of the file, who signs the message.")
    citizen: Annotated[CitizenContact, PERSONAL] = Field(
        description="The citizen who is to send the document."
    )
    after_document: str | None = Field(
        default=None,
        description=(
            "Intake's id of the document the citizen already sent and the agency found"
            " incomplete; none for the first request."
        ),
    )
    reason: Annotated[str | None, PERSONAL] = Field(
        default=None, description="The agency's own words on the request, in French."
    )


class SupportingDocumentSubmitted(Event):
    """The citizen sent a supporting document through intake, for one agency's request."""

    event_type: ClassVar[str] = "SupportingDocumentSubmitted"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    request_id: str = Field(description="Id of the agency request the document answers.")
    agency: AgencyCode = Field(description="Agency the document is for.")
    document_id: str = Field(description="Intake's id of the stored document.")
    document_code: str = Field(description="Code of the document the agency asked for.")
    filename: Annotated[str, PERSONAL] = Field(
        description="Name of the file as sent by the citizen."
    )
    media_type: str = Field(
        description="Checked media type: application/pdf, image/jpeg or image/png."
    )
    sha256: str = Field(description="SHA-256 digest of the content, hexadecimal.")
    content_base64: Annotated[str, PERSONAL] = Field(
        description="The document itself, base64 (at most 512 KiB before encoding)."
    )


class ExchangeDirection(StrEnum):
    SENT = "envoi"
    RECEIVED = "reception"


class RecordedExchange(Contract):
    """One transmission between an adapter and its agency, a line of the exchange ledger."""

    exchange_id: str = Field(description="Unique id of the transmission in the adapter's ledger.")
    direction: ExchangeDirection = Field(description="envoi: to the agency; reception: from it.")
    purpose: str = Field(description="What was transmitted, in French (demande, réponse, pièce…).")
    legal_basis: str = Field(description="Legal text allowing the transmission, in French.")
    payload_sha256: str = Field(description="SHA-256 digest of the bytes exchanged, hexadecimal.")
    size_bytes: int = Field(description="Size of the payload exchanged.")
    at: dt.datetime = Field(description="When the adapter recorded the transmission (UTC).")


class ExchangesRecorded(Event):
    """The transmissions of one agency request that an adapter recorded together (a request
    sent and the agency's reply, a callback received), for the exchange ledger: one event
    for the lines of one transaction, in the order they happened."""

    event_type: ClassVar[str] = "ExchangesRecorded"
    request_id: str = Field(description="Agency request the transmissions belong to.")
    agency: str = Field(description="Code of the agency.")
    exchanges: list[RecordedExchange] = Field(
        min_length=1, description="The transmissions, in the order they happened."
    )


class ExchangeRecorded(Event):
    """One transmission between an adapter and its agency, for the exchange ledger. Adapters
    publish ExchangesRecorded instead (one event per transaction); intake still reads this
    one, for the records a former adapter published."""

    event_type: ClassVar[str] = "ExchangeRecorded"
    exchange_id: str = Field(description="Unique id of the transmission in the adapter's ledger.")
    request_id: str = Field(description="Agency request the transmission belongs to.")
    agency: str = Field(description="Code of the agency.")
    direction: ExchangeDirection = Field(description="envoi: to the agency; reception: from it.")
    purpose: str = Field(description="What was transmitted, in French (demande, réponse, pièce…).")
    legal_basis: str = Field(description="Legal text allowing the transmission, in French.")
    payload_sha256: str = Field(description="SHA-256 digest of the bytes exchanged, hexadecimal.")
    size_bytes: int = Field(description="Size of the payload exchanged.")


class CoordinatedAnswerIssued(Event):
    """Every agency has answered: one coordinated answer was composed for the citizen."""

    event_type: ClassVar[str] = "CoordinatedAnswerIssued"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    referent: Referent = Field(description="The référent signing the answer.")
    citizen: Annotated[CitizenContact, PERSONAL] = Field(description="Recipient of the answer.")
    decisions: Annotated[list[AgencyDecision], PERSONAL] = Field(
        description="Each agency's decision."
    )
    text: Annotated[str, PERSONAL] = Field(
        description="The coordinated answer in plain French (the personal word included, if any)."
    )
    personal_word: Annotated[str | None, PERSONAL] = Field(
        default=None,
        description=(
            "The référent's personal word to the citizen, in their own words, when they wrote"
            " one (also part of `text`, before the signature block)."
        ),
    )


class ReferentMessageSent(Event):
    """The file's référent wrote to the citizen from their desk."""

    event_type: ClassVar[str] = "ReferentMessageSent"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    message_id: str = Field(
        description="Unique id of the message; notification sends each id once."
    )
    referent: Referent = Field(description="The référent who wrote, who signs the message.")
    citizen: Annotated[CitizenContact, PERSONAL] = Field(
        description="The citizen the message is for."
    )
    text: Annotated[str, PERSONAL] = Field(
        description="The référent's message, plain text in French (1 to 2,000 characters)."
    )


class CitizenMessageReceived(Event):
    """The citizen wrote to their référent from their space, on their own file.

    The words and the attachments stay at intake (the file's thread, read on the desk): this
    event tells who answers, so the référent's inbox counts the message and orders it.
    """

    event_type: ClassVar[str] = "CitizenMessageReceived"
    message_id: str = Field(description="Unique id of the message in the file's thread.")
    referent: Referent = Field(
        description="Who answers: the file's current référent (the agent covering their "
        "absence, while it lasts)."
    )
    covering_for: Referent | None = Field(
        default=None,
        description="The absent référent the answering agent covers, during an absence; "
        "none otherwise.",
    )
    attachments: int = Field(
        default=0, ge=0, description="How many documents the citizen attached (kept at intake)."
    )
    remind_at: dt.datetime | None = Field(
        default=None,
        description="When the answerer is reminded if the message is still unanswered: the "
        "start (Paris time) of the promise's last working day; none for messages older than "
        "the promise.",
    )
    answer_due_at: dt.datetime | None = Field(
        default=None,
        description="The answer-time promise: the end (Paris time) of the second working day "
        "after the day of receipt (weekends and public holidays of metropolitan France are "
        "not working days); past it, the supervisors are alerted once.",
    )


class AccessCodeIssued(Event):
    """A one-time code was issued so the citizen can open their file online without an account.

    Only intake's hash of the code is kept; the code itself travels once, sealed for the
    notification service (which opens it only to send it), and expires quickly.
    """

    event_type: ClassVar[str] = "AccessCodeIssued"
    schema_version: int = Field(
        default=3,
        description="Version of this event's schema (2: the code travels sealed; 3: the "
        "contact sealed too).",
    )
    sealed_code: SealedSecret = Field(
        description="The one-time code, encrypted for the notification service only "
        "(AES-256-GCM, bound to the file id): it never travels in plaintext."
    )
    expires_at: dt.datetime = Field(description="When the code stops working (UTC).")
    citizen: Annotated[CitizenContact, PERSONAL] = Field(
        description="Recipient of the code: the file's citizen."
    )
    referent: Referent | None = Field(
        default=None, description="The file's référent signing the message, when one is designated."
    )

    @staticmethod
    def sealing_context(file_id: str) -> str:
        """What the sealed code is bound to (authenticated with it): it opens for this file
        only, so a sealed code copied into another file's event does not open."""
        return f"access-code:{file_id}"


class NotificationKind(StrEnum):
    """What a message is about; notification keeps one template set per kind."""

    REFERENT_ASSIGNED = "referent_assigned"
    REFERENT_CHANGED = "referent_changed"
    AGENT_HANDOVER = "agent_handover"
    ANSWER_READY = "answer_ready"
    CALL_REQUESTED = "call_requested"
    THANKS_RECEIVED = "thanks_received"
    DOCUMENT_REQUESTED = "document_requested"
    DEADLINE_WARNING = "deadline_warning"
    DEADLINE_BREACHED = "deadline_breached"
    IMPLICIT_DECISION = "implicit_decision"
    SUPERVISOR_ALERT = "supervisor_alert"
    ACCESS_CODE = "access_code"
    REFERENT_MESSAGE = "referent_message"
    CONTACT_CHANGED_NOTICE = "contact_changed_notice"
    MESSAGE_REMINDER = "message_reminder"
    MESSAGE_OVERDUE = "message_overdue"
    #: Appointments with the référent (issue 16 §3): confirmed, moved, cancelled, the day before.
    APPOINTMENT_BOOKED = "appointment_booked"
    APPOINTMENT_MOVED = "appointment_moved"
    APPOINTMENT_CANCELLED = "appointment_cancelled"
    APPOINTMENT_REMINDER = "appointment_reminder"


class NotificationChannel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    LETTER = "courrier"


class NotificationSent(Event):
    """A message reached its recipient's channel (the citizen's, or an agent's)."""

    event_type: ClassVar[str] = "NotificationSent"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    notification_id: str = Field(description="Id of the notification, unique per file and kind.")
    kind: NotificationKind = Field(description="What the message was about.")
    channel: NotificationChannel = Field(
        description="Channel the message went through (after any fallback)."
    )
    subject: Annotated[str, PERSONAL] = Field(description="Subject of the message, in French.")
    referent_name: str = Field(description="Name of the référent the message was signed with.")
    audience: Literal["citoyen", "agent"] = Field(
        default="citoyen",
        description="Who received it: the citizen, or an agent (handover, call, thanks).",
    )


class ContactPreferencesChanged(Event):
    """The citizen changed how they want to be reached (channel, email, phone, address).

    The previous contact is told of the change on its own channel, so that a change the
    citizen did not make does not go unnoticed."""

    event_type: ClassVar[str] = "ContactPreferencesChanged"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    citizen: Annotated[CitizenContact, PERSONAL] = Field(
        description="The citizen's contact as it now stands, complete."
    )
    previous_citizen: Annotated[CitizenContact | None, PERSONAL] = Field(
        default=None,
        description="The contact as it stood before the change, told of it (absent in events "
        "recorded before notices were sent).",
    )
    referent: Referent | None = Field(
        default=None,
        description="The file's référent signing the notice, when one is designated.",
    )


class ReferentThanked(Event):
    """The citizen thanked their référent by name."""

    event_type: ClassVar[str] = "ReferentThanked"
    thanks_id: str = Field(description="Unique id of these thanks.")
    schema_version: int = Field(
        default=3,
        description="Version of this event's schema (2: the citizen's name only; 3: personal "
        "fields sealed).",
    )
    referent: Referent = Field(description="The référent thanked.")
    citizen: Annotated[CitizenName, PERSONAL] = Field(
        description="The citizen who thanks, by name (no contact: the référent is written to)."
    )
    message: Annotated[str, PERSONAL] = Field(description="The citizen's words, in French.")


class SurveyAnswered(Event):
    """The citizen answered the satisfaction survey sent with the coordinated answer."""

    event_type: ClassVar[str] = "SurveyAnswered"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    score: int = Field(
        ge=1, le=5, description="Overall satisfaction, 1 (very unhappy) to 5 (very happy)."
    )
    referent_reachable: bool | None = Field(
        default=None,
        description="Whether the citizen could reach their référent directly, if answered.",
    )
    comment: Annotated[str | None, PERSONAL] = Field(
        default=None, description="The citizen's free comment, in French."
    )
    referent_agent_id: str | None = Field(
        default=None,
        description="Directory id of the file's référent when the survey was answered.",
    )
    office_id: str | None = Field(default=None, description="Office of that référent.")


class ErasureCause(StrEnum):
    """Why a citizen's personal data was erased (the values travel in `CitizenDataErased`)."""

    REQUEST = "demande"  # the citizen asked for it (RGPD art. 17)
    RETENTION = "conservation"  # the retention period after the file was closed ran out


class CitizenDataErased(Event):
    """Intake erased the citizen's personal data of a closed file: every service erases its
    own copy (contact, own words, messages sent); the file keeps an anonymous skeleton for
    the indicators (dates, life event, agencies, decisions)."""

    event_type: ClassVar[str] = "CitizenDataErased"
    cause: ErasureCause = Field(
        description="`demande`: the citizen asked for the erasure (RGPD art. 17); "
        "`conservation`: the retention period of closed files ran out (docs/data-protection.md)."
    )
    erased: list[str] = Field(
        description="What intake erased, by kind of data (e.g. `contact`, `description`, "
        "`documents`), so each reader can tell what its own copy must lose."
    )


class SupervisorContact(Contract):
    """A supervisor to alert about the files of their départements."""

    supervisor_id: str = Field(description="Directory id of the supervisor.")
    name: str = Field(description="Supervisor's full name.")
    email: EmailAddress = Field(description="Supervisor's direct email address.")
    phone: str = Field(description="Supervisor's direct phone line.")


class CitizenMessageReminderIssued(Event):
    """A citizen's message is still unanswered on the last day of the answer-time promise:
    the agent who answers is reminded, once per message."""

    event_type: ClassVar[str] = "CitizenMessageReminderIssued"
    message_id: str = Field(description="Id of the citizen's message in the file's thread.")
    received_at: dt.datetime = Field(description="When the citizen's message came.")
    answer_due_at: dt.datetime = Field(description="The end of the answer-time promise.")
    schema_version: int = Field(
        default=3,
        description="Version of this event's schema (3, as the other events to agents: the "
        "citizen's name only, sealed).",
    )
    referent: Referent = Field(
        description="Who is reminded: the agent who answers for the file now (the référent, "
        "or their cover)."
    )
    citizen: Annotated[CitizenName, PERSONAL] = Field(
        description="The citizen who wrote, by name (no contact: the agent is reminded)."
    )


class CitizenMessageEscalated(Event):
    """The answer-time promise of a citizen's message lapsed without an answer: the
    supervisors of the file's département are alerted, once per message."""

    event_type: ClassVar[str] = "CitizenMessageEscalated"
    message_id: str = Field(description="Id of the citizen's message in the file's thread.")
    received_at: dt.datetime = Field(description="When the citizen's message came.")
    answer_due_at: dt.datetime = Field(description="The end of the promise that lapsed.")
    schema_version: int = Field(
        default=3,
        description="Version of this event's schema (3, as the other events to agents: the "
        "citizen's name only, sealed).",
    )
    referent: Referent = Field(
        description="The agent who was to answer (the référent, or their cover), named to "
        "the supervisors."
    )
    citizen: Annotated[CitizenName, PERSONAL] = Field(
        description="The citizen who wrote, by name (no contact: supervisors are alerted)."
    )
    supervisors: list[SupervisorContact] = Field(
        description="Supervisors of the file's département (all supervisors when none is named)."
    )


class ReferentAssignmentDeferred(Event):
    """Nobody near the citizen had room: the file waits for a référent (never dropped)."""

    event_type: ClassVar[str] = "ReferentAssignmentDeferred"
    departement: str = Field(description="Département of the citizen's home.")
    urgent: bool = Field(description="Urgent files are served first as capacity frees.")
    life_event_label: str = Field(description="Name of the life event, in French.")
    schema_version: int = Field(
        default=3,
        description="Version of this event's schema (2: the citizen's name only; 3: personal "
        "fields sealed).",
    )
    reason: str = Field(description="Why the file waits, in French, for supervisors.")
    citizen: Annotated[CitizenName, PERSONAL] = Field(
        description="The citizen whose file waits, by name (no contact: supervisors are alerted)."
    )
    supervisors: list[SupervisorContact] = Field(
        description="Supervisors of the citizen's département (all supervisors when none is named)."
    )


class OfficeProfile(Contract):
    """A France Services point as the directory describes it."""

    office_id: str = Field(description="Directory id of the office.")
    name: str = Field(description="Name of the office, shown to citizens.")
    address: str = Field(description="Street address.")
    commune: str = Field(description="Commune of the office.")
    departement: str = Field(description="Département code of the office.")
    latitude: float = Field(description="Latitude (WGS 84).")
    longitude: float = Field(description="Longitude (WGS 84).")
    opening_hours: str = Field(description="Opening hours, in French.")


class AgentProfile(Contract):
    """An agent as the directory describes them."""

    agent_id: str = Field(description="Directory id of the agent.")
    name: str = Field(description="Agent's full name, shown to citizens.")
    office_id: str = Field(description="Directory id of the agent's office.")
    phone: str = Field(description="Agent's direct phone line.")
    email: EmailAddress = Field(description="Agent's direct email address.")
    agencies: list[AgencyCode] = Field(description="Agencies the agent is trained for.")
    capacity: int = Field(description="Maximum number of active files.")


class OfficeOpened(DirectoryEvent):
    """A France Services office entered the directory."""

    event_type: ClassVar[str] = "OfficeOpened"
    office: OfficeProfile = Field(description="The new office.")
    directory_version: str | None = Field(
        default=None, description="Version of the imported directory file, if any."
    )


class OfficeDetailsChanged(DirectoryEvent):
    """An office's address, coordinates or opening hours changed."""

    event_type: ClassVar[str] = "OfficeDetailsChanged"
    office: OfficeProfile = Field(description="The office as it is now.")
    directory_version: str | None = Field(
        default=None, description="Version of the imported directory file, if any."
    )


class AgentJoined(DirectoryEvent):
    """An agent joined the network and can be named référent."""

    event_type: ClassVar[str] = "AgentJoined"
    agent_id: str = Field(description="Directory id of the agent (the Kafka key).")
    agent: AgentProfile = Field(description="The new agent.")
    directory_version: str | None = Field(
        default=None, description="Version of the imported directory file, if any."
    )


class AgentDetailsChanged(DirectoryEvent):
    """An agent's contact, office, training or capacity changed."""

    event_type: ClassVar[str] = "AgentDetailsChanged"
    agent_id: str = Field(description="Directory id of the agent (the Kafka key).")
    agent: AgentProfile = Field(description="The agent as they are now.")
    directory_version: str | None = Field(
        default=None, description="Version of the imported directory file, if any."
    )


class AgentAbsenceDeclared(DirectoryEvent):
    """An agent will be (or is) absent; their files get a cover meanwhile."""

    event_type: ClassVar[str] = "AgentAbsenceDeclared"
    agent_id: str = Field(description="Directory id of the agent (the Kafka key).")
    absence_id: int = Field(description="Id of the absence in the directory.")
    starts_on: dt.date = Field(description="First day of absence.")
    ends_on: dt.date = Field(description="Last day of absence, inclusive.")


class AgentReturned(DirectoryEvent):
    """An absent agent is back; their files came back to them."""

    event_type: ClassVar[str] = "AgentReturned"
    agent_id: str = Field(description="Directory id of the agent (the Kafka key).")
    files_returned: int = Field(description="Open files handed back to the agent.")


class AgentLeft(DirectoryEvent):
    """An agent left the network; their portfolio was redistributed."""

    event_type: ClassVar[str] = "AgentLeft"
    agent_id: str = Field(description="Directory id of the agent (the Kafka key).")
    files_redistributed: int = Field(description="Open files given to colleagues.")
    files_waiting: int = Field(description="Open files left waiting because nobody had room.")


class LegalDeadlineSet(Event):
    """An agency request's legal deadline was set or moved (receipt, suspension, resumption)."""

    event_type: ClassVar[str] = "LegalDeadlineSet"
    request_id: str = Field(description="Id of the agency request.")
    agency: str = Field(description="Code of the agency.")
    rule: DeadlineRule = Field(description="What the agency's silence will mean at the deadline.")
    due_on: dt.date | None = Field(
        description=(
            "Last day for the agency to answer (Paris calendar); none while suspended or "
            "without rule."
        )
    )
    state: Literal["en_cours", "suspendu", "sans_delai", "repondu"] = Field(
        description=(
            "State of the legal clock; repondu when the agency's answer was read before its"
            " receipt (the clock was born stopped: due_on still says the last day, for the"
            " published indicators)."
        )
    )
    why: Literal["reception", "suspension", "reprise", "redemarrage"] = Field(
        description=(
            "What set it: receipt, suspension for a document, resumption, or restart "
            "after an incomplete document."
        )
    )


class DeadlineWarningIssued(Event):
    """An agency's legal deadline is near (15 then 7 days): the référent is warned."""

    event_type: ClassVar[str] = "DeadlineWarningIssued"
    request_id: str = Field(description="Id of the agency request.")
    agency: AgencyCode = Field(description="Agency that has not answered yet.")
    due_on: dt.date = Field(description="Last day for the agency to answer.")
    days_left: int = Field(description="Calendar days left when the warning was issued.")
    threshold: Literal[15, 7] = Field(description="Which warning this is: J-15 or J-7.")
    rule: DeadlineRule = Field(description="What the agency's silence will mean at the deadline.")
    schema_version: int = Field(
        default=3,
        description="Version of this event's schema (2: the citizen's name only; 3: personal "
        "fields sealed).",
    )
    referent: Referent = Field(description="The référent warned.")
    citizen: Annotated[CitizenName, PERSONAL] = Field(
        description="The citizen the file is about, by name (no contact: the référent is warned)."
    )


class LegalDeadlineBreached(Event):
    """An agency let its legal deadline pass without answering: supervisors are warned."""

    event_type: ClassVar[str] = "LegalDeadlineBreached"
    request_id: str = Field(description="Id of the agency request.")
    agency: AgencyCode = Field(description="Agency that did not answer in time.")
    due_on: dt.date = Field(description="The deadline that passed.")
    rule: DeadlineRule = Field(description="What the silence means.")
    schema_version: int = Field(
        default=3,
        description="Version of this event's schema (2: the citizen's name only; 3: personal "
        "fields sealed).",
    )
    referent: Referent = Field(description="The file's référent.")
    citizen: Annotated[CitizenName, PERSONAL] = Field(
        description="The citizen the file is about, by name (no contact: supervisors are warned)."
    )
    supervisors: list[SupervisorContact] = Field(
        description="Supervisors of the citizen's département."
    )


class ImplicitDecisionRecorded(Event):
    """The agency's silence became its decision (acceptance or rejection), by law."""

    event_type: ClassVar[str] = "ImplicitDecisionRecorded"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    request_id: str = Field(description="Id of the agency request.")
    agency: AgencyCode = Field(description="Agency whose silence decided.")
    decision: Decision = Field(description="acceptation_implicite or rejet_implicite.")
    due_on: dt.date = Field(description="The deadline that passed.")
    decided_on: dt.date = Field(
        description="Day the implicit decision was recorded (the day after the deadline)."
    )
    referent: Referent = Field(description="The référent who signs the letter.")
    citizen: Annotated[CitizenContact, PERSONAL] = Field(
        description="The citizen, who receives a letter."
    )


class AppointmentSide(StrEnum):
    """Who acted on an appointment: the citizen (their space), or an agent (the référent,
    or a front-desk agent booking for a citizen on the phone)."""

    CITIZEN = "citoyen"
    AGENT = "agent"


class Appointment(Contract):
    """A meeting of the citizen with their référent, at the référent's France Services office."""

    appointment_id: str = Field(description="Id of the appointment (stable across reminders).")
    starts_at: dt.datetime = Field(description="Start of the slot (aware; Paris time on pages).")
    ends_at: dt.datetime = Field(description="End of the slot.")
    office_address: str = Field(
        description="Postal address of the office where they meet, in French (address, commune)."
    )
    calendar_id: str | None = Field(
        default=None,
        description="Id the citizen's calendar knows this appointment by: that of the first "
        "appointment of a chain of moves, so a move updates the same calendar entry; absent "
        "for one never moved (its own id).",
    )
    revision: int = Field(
        default=0,
        ge=0,
        description="How many times the appointment was moved (0: as first booked); the "
        "calendar applies the highest.",
    )


class AppointmentBooked(Event):
    """A slot with the référent was booked for the citizen (or an appointment moved to it):
    the citizen gets a confirmation with the address and the référent's name."""

    event_type: ClassVar[str] = "AppointmentBooked"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    appointment: Appointment = Field(description="The slot booked and where.")
    referent: Referent = Field(description="The référent the citizen meets.")
    booked_by: AppointmentSide = Field(description="Who booked: the citizen or an agent.")
    booked_by_agent: str | None = Field(
        default=None, description="Directory id of the agent who booked, when an agent did."
    )
    rescheduled_from: dt.datetime | None = Field(
        default=None,
        description="Start of the slot this appointment replaces, when it was moved (the "
        "former slot is freed in the same transaction).",
    )
    citizen: Annotated[CitizenContact, PERSONAL] = Field(
        description="The citizen, who receives the confirmation on their channel."
    )


class AbsenceCancellation(Contract):
    """Why an appointment was cancelled without anyone asking: its référent was declared
    absent on its day (the cancellation is the agent's side's)."""

    starts_on: dt.date = Field(description="First day of the référent's absence.")
    ends_on: dt.date = Field(description="Last day of the référent's absence, inclusive.")
    book_again_with: Referent | None = Field(
        default=None,
        description="Whom the citizen may book a new appointment with: the file's référent "
        "once the absence was declared (the cover when the absence has started and the file "
        "is covered, else the absent référent on another day); absent when the file waits "
        "for a référent.",
    )


class AppointmentCancelled(Event):
    """An appointment was cancelled by the citizen or by an agent: the slot is free again
    and the citizen is told."""

    event_type: ClassVar[str] = "AppointmentCancelled"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    appointment: Appointment = Field(description="The slot that was cancelled.")
    referent: Referent = Field(description="The référent the citizen was to meet.")
    cancelled_by: AppointmentSide = Field(description="Who cancelled: the citizen or an agent.")
    cancelled_by_agent: str | None = Field(
        default=None, description="Directory id of the agent who cancelled, when an agent did."
    )
    reason: Annotated[str | None, PERSONAL] = Field(
        default=None, description="Why, in French, when one was given."
    )
    absence: AbsenceCancellation | None = Field(
        default=None,
        description="Set when the appointment was cancelled because its référent was declared "
        "absent on its day (the reason then says so in French); absent otherwise.",
    )
    citizen: Annotated[CitizenContact, PERSONAL] = Field(
        description="The citizen, who is told on their channel."
    )


class AppointmentReminderIssued(Event):
    """The day before an appointment: the citizen is reminded of it, once."""

    event_type: ClassVar[str] = "AppointmentReminderIssued"
    schema_version: int = Field(default=2, description=SEALED_VERSION_2)
    appointment: Appointment = Field(description="The appointment of tomorrow.")
    referent: Referent = Field(description="The référent the citizen meets.")
    citizen: Annotated[CitizenContact, PERSONAL] = Field(
        description="The citizen, who receives the reminder on their channel."
    )


EVENT_TYPES: dict[str, type[Envelope]] = {
    cls.event_type: cls
    for cls in (
        FileSubmitted,
        ReferentAssigned,
        ReferentChangeRequested,
        AgencyRequestIssued,
        AgencyAnswerReceived,
        AgencyReceiptAcknowledged,
        LegalClockSuspended,
        LegalClockResumed,
        AgencyStatusChecked,
        SupportingDocumentRequested,
        SupportingDocumentSubmitted,
        ExchangesRecorded,
        ExchangeRecorded,
        CoordinatedAnswerIssued,
        ReferentMessageSent,
        CitizenMessageReceived,
        CitizenMessageReminderIssued,
        CitizenMessageEscalated,
        AccessCodeIssued,
        NotificationSent,
        ReferentAssignmentDeferred,
        OfficeOpened,
        OfficeDetailsChanged,
        AgentJoined,
        AgentDetailsChanged,
        AgentAbsenceDeclared,
        AgentReturned,
        AgentLeft,
        ContactPreferencesChanged,
        ReferentThanked,
        SurveyAnswered,
        CitizenDataErased,
        LegalDeadlineSet,
        DeadlineWarningIssued,
        LegalDeadlineBreached,
        ImplicitDecisionRecorded,
        AppointmentBooked,
        AppointmentCancelled,
        AppointmentReminderIssued,
    )
}


def parse_event(event_type: str, body: bytes | str | dict[str, Any]) -> Envelope:
    """Validate a raw record as the event named by its `event_type` header.

    Raises KeyError for an unknown type and pydantic.ValidationError for a bad body.
    """
    cls = EVENT_TYPES[event_type]
    if isinstance(body, dict):
        return cls.model_validate(body)
    return cls.model_validate_json(body)
