"""Events: past-tense facts, one envelope (`Event`), every field described."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, TypeAdapter

from shared_models.agencies import Agency


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Contract(BaseModel):
    """Base of every value carried by an event: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(Contract):
    """Envelope shared by every event."""

    event_type: ClassVar[str]
    event_id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        description="Unique id of this event; consumers deduplicate on it.",
    )
    occurred_at: dt.datetime = Field(
        default_factory=_now, description="When the fact happened (UTC, ISO 8601)."
    )
    file_id: str = Field(description="Reference of the citizen file, also the Kafka key.")
    schema_version: int = Field(default=1, description="Version of this event's schema.")

    def key(self) -> bytes:
        return self.file_id.encode()


class PreferredChannel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    LETTER = "courrier"
    PHONE = "telephone"


class CitizenContact(Contract):
    """Who the file is about and how to reach them."""

    given_name: str = Field(description="Citizen's given name.")
    family_name: str = Field(description="Citizen's family name.")
    email: EmailStr | None = Field(default=None, description="Citizen's email address, if any.")
    phone: str | None = Field(default=None, description="Citizen's phone number, if any.")
    postcode: str = Field(description="French postcode of the citizen's home (5 digits).")
    preferred_channel: PreferredChannel = Field(
        description="Channel the citizen chose for messages."
    )


class Referent(Contract):
    """The named agent coordinating the file, with a direct contact."""

    agent_id: str = Field(description="Directory id of the agent.")
    name: str = Field(description="Agent's full name, shown to the citizen.")
    office: str = Field(description="Name of the agent's France Services office.")
    office_id: str = Field(description="Directory id of the office.")
    phone: str = Field(description="Agent's direct phone line.")
    email: EmailStr = Field(description="Agent's direct email address.")


class Decision(StrEnum):
    GRANTED = "accorde"
    REFUSED = "refuse"
    DOCUMENT_REQUESTED = "piece_demandee"


class AgencyDecision(Contract):
    """One agency's answer on its part of the file."""

    agency: Agency = Field(description="Agency that decided.")
    decision: Decision = Field(description="The agency's decision.")
    summary: str = Field(description="One sentence in French describing the decision.")
    amount_eur: float | None = Field(default=None, description="Amount granted, in euros.")
    start_date: dt.date | None = Field(default=None, description="Date the decision applies from.")
    reason: str | None = Field(default=None, description="Reason given, in French, if refused.")
    agency_reference: str = Field(description="The agency's own reference for the request.")


class FileSubmitted(Event):
    """A citizen file was opened at intake (web form, counter or phone)."""

    event_type: ClassVar[str] = "FileSubmitted"
    life_event: str = Field(description="Code of the life event from intake's catalogue.")
    life_event_label: str = Field(description="Name of the life event, in French.")
    agencies: list[Agency] = Field(description="Agencies concerned by this life event.")
    citizen: CitizenContact = Field(description="The citizen and how to reach them.")
    description: str = Field(description="The citizen's situation in their own words.")
    urgent: bool = Field(description="True when the citizen is in an urgent situation.")


class ReferentAssigned(Event):
    """A named référent was chosen (or kept) for the file."""

    event_type: ClassVar[str] = "ReferentAssigned"
    referent: Referent = Field(description="The référent now responsible for the file.")
    rule: str = Field(description="Rule that decided the choice (continuity, proximity, …).")
    explanation: str = Field(description="Why this agent, in French, for supervisors.")
    citizen: CitizenContact = Field(description="Recipient of the notification.")
    previous_referent: Referent | None = Field(
        default=None, description="The référent this one replaces, when the référent changed."
    )
    reason: str | None = Field(default=None, description="Why the référent changed, in French.")


class ReferentChangeRequested(Event):
    """The citizen (once per file) or a supervisor asked for another référent."""

    event_type: ClassVar[str] = "ReferentChangeRequested"
    requested_by: Literal["citoyen", "superviseur"] = Field(description="Who asked for the change.")
    reason: str = Field(description="The reason given, in French; shown in the file's history.")
    current_agent_id: str | None = Field(
        default=None, description="The référent the requester saw, if known (stale requests are ignored)."
    )


class AgencyRequestIssued(Event):
    """The référent's file was transmitted to one agency."""

    event_type: ClassVar[str] = "AgencyRequestIssued"
    request_id: str = Field(description="Unique id of this agency request.")
    agency: Agency = Field(description="Agency the request is addressed to.")
    life_event: str = Field(description="Life event code of the file.")
    citizen: CitizenContact = Field(description="Citizen data transmitted to the agency.")
    description: str = Field(description="The citizen's description of the situation.")
    urgent: bool = Field(description="Urgent files are handled first.")


class AgencyAnswerReceived(Event):
    """An agency answered its request."""

    event_type: ClassVar[str] = "AgencyAnswerReceived"
    request_id: str = Field(description="Id of the agency request this answers.")
    answer: AgencyDecision = Field(description="The agency's decision.")


class CoordinatedAnswerIssued(Event):
    """Every agency has answered: one coordinated answer was composed for the citizen."""

    event_type: ClassVar[str] = "CoordinatedAnswerIssued"
    referent: Referent = Field(description="The référent signing the answer.")
    citizen: CitizenContact = Field(description="Recipient of the answer.")
    decisions: list[AgencyDecision] = Field(description="Each agency's decision.")
    text: str = Field(description="The coordinated answer in plain French.")


class AccessCodeIssued(Event):
    """A one-time code was issued so the citizen can open their file online without an account.

    Only intake's hash of the code is kept; the code itself travels once, to the notification
    service, and expires quickly.
    """

    event_type: ClassVar[str] = "AccessCodeIssued"
    code: str = Field(description="The one-time code, to send to the citizen only.")
    expires_at: dt.datetime = Field(description="When the code stops working (UTC).")
    citizen: CitizenContact = Field(description="Recipient of the code: the file's citizen.")
    referent: Referent | None = Field(
        default=None, description="The file's référent signing the message, when one is designated."
    )


class NotificationKind(StrEnum):
    REFERENT_ASSIGNED = "referent_assigned"
    REFERENT_CHANGED = "referent_changed"
    AGENT_HANDOVER = "agent_handover"
    ANSWER_READY = "answer_ready"
    ACCESS_CODE = "access_code"


class NotificationSent(Event):
    """A message reached its recipient's channel (the citizen's, or an agent's for a handover)."""

    event_type: ClassVar[str] = "NotificationSent"
    notification_id: str = Field(description="Id of the notification, unique per file and kind.")
    kind: NotificationKind = Field(description="What the message was about.")
    channel: Literal["email"] = Field(description="Channel the message went through.")
    subject: str = Field(description="Subject of the message, in French.")
    referent_name: str = Field(description="Name of the référent the message was signed with.")


EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_type: cls
    for cls in (
        FileSubmitted,
        ReferentAssigned,
        ReferentChangeRequested,
        AgencyRequestIssued,
        AgencyAnswerReceived,
        CoordinatedAnswerIssued,
        AccessCodeIssued,
        NotificationSent,
    )
}


def parse_event(event_type: str, body: bytes | str | dict[str, Any]) -> Event:
    """Validate a raw record as the event named by its `event_type` header.

    Raises KeyError for an unknown type and pydantic.ValidationError for a bad body.
    """
    cls = EVENT_TYPES[event_type]
    if isinstance(body, dict):
        return cls.model_validate(body)
    return cls.model_validate_json(body)
