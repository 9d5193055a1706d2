"""The HTTP contract of intake: what a citizen or front-desk agent sends and sees."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from intake.catalogue import CATALOGUE
from intake.domain import AgencyStatus, FileStatus, IntakeChannel, TimelineKind
from shared_models import Decision, PreferredChannel

_POSTCODE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_PHONE = re.compile(r"^(?:\+33|0)[1-9]\d{8}$")


class ContactIn(BaseModel):
    """How the citizen wants to be reached; set at intake, changeable later."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr | None = Field(default=None, description="Adresse électronique.")
    phone: str | None = Field(default=None, description="Téléphone (format français).")
    street: str | None = Field(
        default=None, max_length=200, description="Numéro et rue (pour les courriers)."
    )
    postcode: str = Field(description="Code postal du domicile.")
    city: str | None = Field(
        default=None, max_length=100, description="Commune (pour les courriers)."
    )
    preferred_channel: PreferredChannel = Field(description="Canal de contact préféré.")

    @field_validator("postcode")
    @classmethod
    def _postcode(cls, value: str) -> str:
        if not _POSTCODE.match(value):
            raise PydanticCustomError("postcode", "Code postal invalide : 5 chiffres attendus.")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        compact = re.sub(r"[\s.\-]", "", value)
        if not _PHONE.match(compact):
            raise PydanticCustomError(
                "phone",
                "Numéro de téléphone invalide : 10 chiffres attendus, par ex. 06 12 34 56 78.",
            )
        return compact

    @model_validator(mode="after")
    def _reachable(self) -> CitizenIn:
        if self.preferred_channel is PreferredChannel.EMAIL and not self.email:
            raise PydanticCustomError(
                "contact",
                "Une adresse électronique est nécessaire pour être contacté par courriel.",
            )
        if (
            self.preferred_channel in (PreferredChannel.SMS, PreferredChannel.PHONE)
            and not self.phone
        ):
            raise PydanticCustomError(
                "contact",
                "Un numéro de téléphone est nécessaire pour être contacté par SMS ou téléphone.",
            )
        has_address = bool(self.street and self.city)
        if (
            self.preferred_channel in (PreferredChannel.LETTER, PreferredChannel.PHONE)
            and not has_address
        ):
            # A citizen who is phoned also receives every message as a letter.
            raise PydanticCustomError(
                "contact",
                "Une adresse postale complète (rue et commune) est nécessaire pour recevoir vos "
                "courriers.",
            )
        return self

    @field_validator("street", "city")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class CitizenIn(ContactIn):
    given_name: str = Field(min_length=1, max_length=100, description="Prénom.")
    family_name: str = Field(min_length=1, max_length=100, description="Nom de famille.")


class SurveyIn(BaseModel):
    """The short satisfaction survey, sent with the coordinated answer."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    score: int = Field(
        description="Satisfaction, de 1 (pas du tout satisfait) à 5 (très satisfait)."
    )
    referent_reachable: bool | None = Field(
        default=None, description="Avez-vous pu joindre directement votre référent ?"
    )
    comment: str | None = Field(default=None, max_length=2000, description="Commentaire libre.")

    @field_validator("score")
    @classmethod
    def _score(cls, value: int) -> int:
        if not 1 <= value <= 5:
            raise PydanticCustomError("score", "Note invalide : un nombre de 1 à 5 est attendu.")
        return value


class ThanksIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    message: str = Field(
        min_length=2, max_length=2000, description="Votre message de remerciement."
    )


class ThanksOut(BaseModel):
    thanks_id: str
    file_id: str
    citizen_given_name: str
    message: str
    at: dt.datetime


class AgentThanks(BaseModel):
    """Every thanks an agent received, newest first."""

    agent_id: str
    agent_name: str | None
    count: int
    thanks: list[ThanksOut]


class FileIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    life_event: str = Field(description="Événement de vie (perte_emploi, naissance, demenagement).")
    citizen: CitizenIn
    description: str = Field(
        min_length=1, max_length=5000, description="La situation, en quelques mots."
    )
    urgent: bool = Field(
        default=False, description="Situation urgente (perte de revenus, expulsion, santé)."
    )
    channel: IntakeChannel | None = Field(
        default=None,
        description="Canal de l'accueil, obligatoire pour un agent d'accueil qui enregistre le "
        "dossier d'un usager : guichet, telephone ou courrier (en ligne sinon).",
    )

    @field_validator("life_event")
    @classmethod
    def _known_event(cls, value: str) -> str:
        if value not in CATALOGUE:
            raise PydanticCustomError(
                "life_event",
                "Événement de vie inconnu : choisissez parmi {choices}.",
                {"choices": ", ".join(CATALOGUE)},
            )
        return value


class ReferentChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(
        min_length=5, max_length=1000, description="Pourquoi vous souhaitez un autre référent."
    )


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: bool = Field(
        description="true: the citizen confirms the erasure, which cannot be undone (false: "
        "refused with 422, nothing erased)."
    )


class MessageIn(BaseModel):
    """A message from the file's référent to the citizen, written on the desk (the author
    is the agent of the access token)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(description="Le message, en texte simple (1 à 2000 caractères).")

    @field_validator("text")
    @classmethod
    def _length(cls, value: str) -> str:
        if not value:
            raise PydanticCustomError("message", "Écrivez votre message avant de l'envoyer.")
        if len(value) > 2000:
            raise PydanticCustomError(
                "message", "Le message fait au plus 2000 caractères (ici : {n}).", {"n": len(value)}
            )
        return value


class MessageOut(BaseModel):
    message_id: str
    file_id: str
    agent_id: str
    agent_name: str
    text: str
    at: dt.datetime
    channel: str | None = Field(
        default=None, description="Canal qui l'a délivré (courriel, sms, courrier)."
    )
    delivered_at: dt.datetime | None = None


class AttachmentOut(BaseModel):
    attachment_id: str
    filename: str = Field(description="Nom du fichier envoyé par l'usager.")
    media_type: str = Field(description="Type vérifié sur le contenu (PDF, JPEG, PNG).")
    size_bytes: int


class CitizenMessageOut(BaseModel):
    """The citizen's message as sent, and who answers it."""

    message_id: str
    file_id: str
    text: str
    at: dt.datetime
    answerer_name: str = Field(description="Qui répond : le référent, ou son suppléant.")
    covering_for_name: str | None = Field(
        default=None, description="Le référent absent que le suppléant remplace."
    )
    message: str = Field(description="Ce qui est dit à l'usager : qui lui répondra.")
    answer_due_at: dt.datetime | None = Field(
        default=None, description="L'engagement de délai : la réponse vient avant cet instant."
    )
    answer_due_on: dt.date | None = Field(
        default=None, description="Le dernier jour (ouvré, heure de Paris) de l'engagement."
    )
    attachments: list[AttachmentOut] = []


class ThreadEntry(BaseModel):
    """One message of the file's thread."""

    model_config = ConfigDict(populate_by_name=True)

    message_id: str
    from_: str = Field(alias="from", description="citoyen ou referent.")
    author: str | None = Field(default=None, description="Le référent qui a écrit.")
    to: str | None = Field(default=None, description="Qui répond au message de l'usager.")
    covering_for: str | None = Field(
        default=None, description="Le référent absent, quand un suppléant répond."
    )
    text: str
    at: dt.datetime
    attachments: list[AttachmentOut] = []
    channel: str | None = Field(
        default=None,
        description="Message du référent : canal qui l'a délivré ; message de l'usager : "
        "« courriel » s'il a répondu par courriel (rien : depuis son espace).",
    )
    answer_due_on: dt.date | None = Field(
        default=None,
        description="Message de l'usager : le dernier jour de l'engagement de délai de réponse.",
    )
    answered_at: dt.datetime | None = Field(
        default=None, description="Message de l'usager : quand le référent y a répondu."
    )


class AccessCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(description="Le code à 6 chiffres reçu par courriel.")

    @field_validator("code")
    @classmethod
    def _six_digits(cls, value: str) -> str:
        compact = re.sub(r"\s", "", value)
        if not re.fullmatch(r"\d{6}", compact):
            raise PydanticCustomError("code", "Le code comporte 6 chiffres, par ex. 123456.")
        return compact


class FileCreated(BaseModel):
    file_id: str
    status: FileStatus
    created_at: dt.datetime


class ReferentOut(BaseModel):
    name: str
    office: str
    phone: str
    email: str
    agent_id: str | None = None
    office_id: str | None = None
    opening_hours: str | None = None


class RequestedDocumentOut(BaseModel):
    code: str
    label: str


class AgencyOut(BaseModel):
    agency: str
    label: str
    status: AgencyStatus
    status_label: str
    awaited: bool
    requested_document: RequestedDocumentOut | None = None
    due_on: dt.date | None = None
    deadline: str | None = None


class ExchangeOut(BaseModel):
    """One transmission between the platform and an agency (the exchange ledger)."""

    at: dt.datetime
    agency: str
    direction: str
    purpose: str
    legal_basis: str
    payload_sha256: str
    size_bytes: int


class DocumentCreated(BaseModel):
    document_id: str
    agency: str
    message: str


class DecisionOut(BaseModel):
    agency: str
    decision: Decision
    summary: str
    amount_eur: float | None
    start_date: dt.date | None
    reason: str | None


class AnswerOut(BaseModel):
    text: str
    decisions: list[DecisionOut]
    issued_at: dt.datetime
    personal_word: str | None = None


class TimelineEntry(BaseModel):
    at: dt.datetime
    kind: TimelineKind
    label: str


class FileView(BaseModel):
    """The citizen's view of their file."""

    file_id: str = Field(description="Référence du dossier (GU-AAAA-XXXXXXXX).")
    status: FileStatus = Field(
        description="depose, en_cours (référent désigné) or repondu (closed)."
    )
    life_event: str = Field(description="Code of the life event declared.")
    life_event_label: str = Field(description="The life event, in French.")
    created_at: dt.datetime = Field(description="When the file was submitted.")
    referent: ReferentOut | None = Field(description="The current référent's card, once named.")
    agencies: list[AgencyOut] = Field(description="Each agency concerned and where it stands.")
    awaited: list[str] = Field(description="Names of the agencies whose answer is awaited.")
    answer: AnswerOut | None = Field(description="The coordinated answer, once sent.")
    thanked: bool = Field(
        default=False,
        description="The citizen already thanked the current référent for this file (thanks "
        "go once per référent and file).",
    )
    survey_answered: bool = Field(
        default=False,
        description="The citizen already answered the satisfaction survey (once per file).",
    )
    timeline: list[TimelineEntry] = Field(description="The file's history, oldest first.")
    exchanges: list[ExchangeOut] = Field(description="The exchange ledger with the agencies.")


class ContactOut(BaseModel):
    """How the file's citizen is reached, as stored: what their contact form shows."""

    preferred_channel: PreferredChannel = Field(description="Canal de contact préféré.")
    email: str | None = Field(default=None, description="Adresse électronique.")
    phone: str | None = Field(default=None, description="Téléphone.")
    street: str | None = Field(default=None, description="Numéro et rue.")
    postcode: str = Field(description="Code postal du domicile.")
    city: str | None = Field(default=None, description="Commune.")


class OwnFile(BaseModel):
    """One file in a list of one's own files (a citizen's, or those a front-desk agent
    registered)."""

    file_id: str = Field(description="Référence du dossier (GU-AAAA-XXXXXXXX).")
    status: FileStatus = Field(description="depose, en_cours or repondu.")
    life_event: str = Field(description="Code of the life event declared.")
    life_event_label: str = Field(description="The life event, in French.")
    created_at: dt.datetime = Field(description="When the file was submitted.")
    channel: IntakeChannel | None = Field(
        description="How it came in (en_ligne, guichet, telephone, courrier); null for a file "
        "opened before it was kept."
    )
    referent_name: str | None = Field(description="The current référent's name, once named.")
    citizen_name: str | None = Field(
        default=None,
        description="The citizen's name: only in the front desk's list (they registered it).",
    )


class IndicatorRow(BaseModel):
    """One group's indicators (definitions: docs/indicators.md). Every figure is null when
    the group is not published (too few files to stay anonymous) or has nothing to measure."""

    level: Literal["national", "office", "agency"] = Field(
        description="national, office (espace France Services) or agency."
    )
    id: str | None = Field(
        description="Id of the office or code of the agency; null for the national total."
    )
    label: str = Field(description="Name of the office or agency.")
    published: bool = Field(
        description="False when the group has too few files for its figures to be published."
    )
    files: int | None = Field(description="Files submitted in the period.")
    referent_count: int | None = Field(description="Of which given a référent.")
    referent_median_hours: float | None = Field(
        description="Median time from submission to the first référent, hours."
    )
    referent_p90_hours: float | None = Field(description="90th percentile of that time, hours.")
    contact_count: int | None = Field(description="Files whose citizen received a first message.")
    contact_median_hours: float | None = Field(
        description="Median time from submission to the first message, hours."
    )
    contact_p90_hours: float | None = Field(description="90th percentile of that time, hours.")
    answer_count: int | None = Field(description="Files given their coordinated answer.")
    answer_median_days: float | None = Field(
        description="Median time from submission to the coordinated answer, days."
    )
    answer_p90_days: float | None = Field(description="90th percentile of that time, days.")
    deadline_decided: int | None = Field(
        description="Agency answers (by word or by silence) bound by a legal deadline."
    )
    deadline_within: int | None = Field(
        description="Of which answered explicitly within the legal deadline."
    )
    deadline_share: float | None = Field(description="deadline_within / deadline_decided, 0 to 1.")
    implicit_acceptances: int | None = Field(description="Agency silences that became acceptances.")
    implicit_rejections: int | None = Field(description="Agency silences that became rejections.")
    reassigned: int | None = Field(description="Files whose référent changed at least once.")
    reassignment_rate: float | None = Field(description="reassigned / referent_count, 0 to 1.")
    satisfaction_answers: int | None = Field(description="Satisfaction survey answers.")
    satisfaction_mean: float | None = Field(
        description="Mean satisfaction, 1 to 5 (null under the publication threshold)."
    )
    # The citizens' messages (null for an agency: the référent answers).
    message_answered: int | None = Field(None, description="Messages answered by the référent.")
    message_answer_median_hours: float | None = Field(None, description="Time to answer, median.")
    message_answer_p90_hours: float | None = Field(None, description="Time to answer, P90.")
    message_within_promise: int | None = Field(None, description="Answered within the promise.")
    message_promise_share: float | None = Field(None, description="Share within, 0 to 1.")


class Period(BaseModel):
    from_: dt.date | None = Field(
        alias="from", description="First day of submission (Paris), inclusive."
    )
    to: dt.date | None = Field(description="Last day of submission (Paris), inclusive.")


class Indicators(BaseModel):
    """The published indicators: national total, then per office and per agency."""

    period: Period
    generated_at: dt.datetime
    min_files: int = Field(description="Groups of fewer files are not published.")
    confidentiality: str = Field(description="The publication rule, in French.")
    percentiles: str = Field(description="How medians and percentiles are computed, in French.")
    definitions: str = Field(description="Where each indicator is defined.")
    national: IndicatorRow
    offices: list[IndicatorRow]
    agencies: list[IndicatorRow]


class PersonalDataKeyOut(BaseModel):
    """A citizen's data key, as intake's key service serves it to our services."""

    key_id: str = Field(description="The key's id (as in every sealed field).")
    key: str = Field(description="The key: base64 of 32 bytes (AES-256-GCM).")
