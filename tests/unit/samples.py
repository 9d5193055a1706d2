"""Sample contracts shared by the unit tests (plain functions: import them from
`tests.unit.samples`)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from guichet_runtime.sealing import Keyring, new_key
from shared_models import (
    AccessCodeIssued,
    AgencyAnswerReceived,
    AgencyDecision,
    AgencyReceiptAcknowledged,
    AgencyRequestIssued,
    AgencyStatusChecked,
    AgentAbsenceDeclared,
    AgentDetailsChanged,
    AgentJoined,
    AgentLeft,
    AgentProfile,
    AgentReturned,
    Appointment,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentReminderIssued,
    AppointmentSide,
    CitizenContact,
    CitizenDataErased,
    CitizenMessageEscalated,
    CitizenMessageReceived,
    CitizenMessageReminderIssued,
    ContactPreferencesChanged,
    CoordinatedAnswerIssued,
    DeadlineRule,
    DeadlineWarningIssued,
    Decision,
    Envelope,
    ErasureCause,
    ExchangeDirection,
    ExchangeRecorded,
    FileSubmitted,
    ImplicitDecisionRecorded,
    LegalClockResumed,
    LegalClockSuspended,
    LegalDeadlineBreached,
    LegalDeadlineSet,
    NotificationKind,
    NotificationSent,
    OfficeDetailsChanged,
    OfficeOpened,
    OfficeProfile,
    PreferredChannel,
    Referent,
    ReferentAssigned,
    ReferentAssignmentDeferred,
    ReferentChangeRequested,
    ReferentMessageSent,
    ReferentThanked,
    RequestedDocument,
    StatusFinding,
    SupervisorContact,
    SupportingDocumentRequested,
    SupportingDocumentSubmitted,
    SurveyAnswered,
    citizen_data_for,
)

# --------------------------------------------------------------------------- contracts


#: The key intake and notification share in the unit tests (ACCESS_CODE_KEY).
KEYRING = Keyring.from_text(new_key(), name="ACCESS_CODE_KEY")


def opened_code(event: AccessCodeIssued) -> str:
    """The one-time code an AccessCodeIssued carries sealed, as notification opens it."""
    return KEYRING.open(event.sealed_code, AccessCodeIssued.sealing_context(event.file_id))


def citizen(**overrides: Any) -> CitizenContact:
    values: dict[str, Any] = {
        "given_name": "Awa",
        "family_name": "Diallo",
        "email": "awa.diallo@example.fr",
        "phone": "0612345678",
        "postcode": "93200",
        "preferred_channel": PreferredChannel.EMAIL,
    }
    return CitizenContact(**{**values, **overrides})


def referent(**overrides: Any) -> Referent:
    values: dict[str, Any] = {
        "agent_id": "AG-93-01-2",
        "name": "Yasmine Haddad",
        "office": "France Services Saint-Denis",
        "office_id": "FS-93-01",
        "phone": "01 49 33 60 12",
        "email": "yasmine.haddad@france-services.gouv.fr",
        "opening_hours": "Du lundi au vendredi, 9h-12h30 et 13h30-17h",
    }
    return Referent(**{**values, **overrides})


def appointment(**overrides: Any) -> Appointment:
    """Tuesday 2 March 2027, 9:30 to 10:00 in Paris (8:30 to 9:00 UTC, winter time)."""
    values: dict[str, Any] = {
        "appointment_id": "rdv-0001",
        "starts_at": dt.datetime(2027, 3, 2, 8, 30, tzinfo=dt.UTC),
        "ends_at": dt.datetime(2027, 3, 2, 9, 0, tzinfo=dt.UTC),
        "office_address": "2 place du Caquet, 93200 Saint-Denis",
    }
    return Appointment(**{**values, **overrides})


#: What the appointment templates are given (in words, as notification's handlers give
#: them), for the tests that render every kind (test_notification_messages.py).
APPOINTMENT_AT = {
    "when": "mardi 2 mars 2027 à 9 h 30",
    "until": "10 h",
    "office": "France Services Bobigny",
    "address": "1 place de l'Hôtel de Ville, 93000 Bobigny",
}
APPOINTMENT_CONTEXTS = {
    NotificationKind.APPOINTMENT_BOOKED: {**APPOINTMENT_AT, "booked_by": "agent", "former": None},
    NotificationKind.APPOINTMENT_MOVED: {
        **APPOINTMENT_AT,
        "booked_by": "citoyen",
        "former": "lundi 1er mars 2027 à 14 h",
    },
    NotificationKind.APPOINTMENT_CANCELLED: {
        **APPOINTMENT_AT,
        "cancelled_by": "referent",
        "reason": "Je suis en formation ce jour-là.",
    },
    NotificationKind.APPOINTMENT_REMINDER: APPOINTMENT_AT,
}


def decision(agency: str, verdict: Decision = Decision.GRANTED, **overrides: Any) -> AgencyDecision:
    values: dict[str, Any] = {
        "agency": agency,
        "decision": verdict,
        "summary": f"Décision de {agency} sur votre dossier.",
        "agency_reference": f"{agency.upper()}-2025-0001",
    }
    return AgencyDecision(**{**values, **overrides})


def file_submitted(
    file_id: str = "GU-2025-ABCDEFGH",
    agencies: tuple[str, ...] = ("france_travail", "caf", "dgfip"),
    **overrides: Any,
) -> FileSubmitted:
    values: dict[str, Any] = {
        "file_id": file_id,
        "life_event": "perte_emploi",
        "life_event_label": "Perte d'emploi",
        "agencies": list(agencies),
        "citizen": citizen(),
        "description": "J'ai été licenciée le mois dernier.",
        "urgent": False,
    }
    return FileSubmitted(**{**values, **overrides})


def one_event_of_each_type() -> list[Envelope]:
    """A valid instance of every event type (with every optional field set)."""
    file_id = "GU-2025-ABCDEFGH"
    granted = decision(
        "caf",
        amount_eur=1234.56,
        start_date=dt.date(2025, 2, 1),
    )
    refused = decision("dgfip", Decision.REFUSED, reason="Revenus supérieurs au plafond.")
    office = OfficeProfile(
        office_id="FS-93-01",
        name="France Services Saint-Denis",
        address="2 place du Caquet",
        commune="Saint-Denis",
        departement="93",
        latitude=48.936,
        longitude=2.357,
        opening_hours="Du lundi au vendredi, 9h-17h",
    )
    agent = AgentProfile(
        agent_id="AG-93-01-9",
        name="Yasmine Haddad",
        office_id="FS-93-01",
        phone="01 49 33 00 00",
        email="yasmine.haddad@example.fr",
        agencies=["caf", "cpam"],
        capacity=30,
    )
    salary = RequestedDocument(
        code="attestation_salaire", label="Attestation de salaire de l'employeur"
    )
    return [
        file_submitted(file_id, channel="guichet", registered_by="AG-93-01-9"),
        ReferentAssigned(
            file_id=file_id,
            referent=referent(),
            rule="proximite",
            explanation="Yasmine Haddad : bureau dans le département.",
            citizen=citizen(),
        ),
        AgencyRequestIssued(
            file_id=file_id,
            request_id=f"{file_id}-caf",
            agency="caf",
            life_event="perte_emploi",
            citizen=citizen_data_for("caf", citizen(), "J'ai été licenciée le mois dernier."),
            urgent=True,
        ),
        AgencyAnswerReceived(file_id=file_id, request_id=f"{file_id}-caf", answer=granted),
        CoordinatedAnswerIssued(
            file_id=file_id,
            referent=referent(),
            citizen=citizen(),
            decisions=[granted, refused],
            text="Bonjour Awa Diallo, …",
            personal_word="Bon courage pour la suite.",
        ),
        ReferentMessageSent(
            file_id=file_id,
            message_id="7c9e6679-7425-40de-944b-e07fc1f90ae7",
            referent=referent(),
            citizen=citizen(),
            text="Bonjour, pouvez-vous me rappeler au sujet de votre attestation ?",
        ),
        CitizenMessageReceived(
            file_id=file_id,
            message_id="0b6f3c1e-2a4d-4c8e-9f1a-5d7e3b2c1a90",
            referent=referent(agent_id="AG-93-01-3", name="Karim Benali"),
            covering_for=referent(),
            attachments=1,
            remind_at=dt.datetime(2026, 11, 30, 23, 0, tzinfo=dt.UTC),
            answer_due_at=dt.datetime(2026, 12, 1, 23, 0, tzinfo=dt.UTC),
        ),
        NotificationSent(
            file_id=file_id,
            notification_id=f"{file_id}:referent_assigned",
            kind=NotificationKind.REFERENT_ASSIGNED,
            channel="email",
            subject="Votre dossier",
            referent_name="Yasmine Haddad",
        ),
        ReferentChangeRequested(
            file_id=file_id,
            requested_by="citoyen",
            reason="Nous ne parvenons pas à nous comprendre.",
        ),
        ReferentAssignmentDeferred(
            file_id=file_id,
            departement="93",
            urgent=True,
            life_event_label="Perte d'emploi",
            reason="Aucun agent n'a de place pour ce nouveau dossier.",
            citizen=citizen(),
            supervisors=[
                SupervisorContact(
                    supervisor_id="SUP-IDF",
                    name="Hélène Marchand",
                    email="helene.marchand@example.fr",
                    phone="01 40 10 21 00",
                )
            ],
        ),
        OfficeOpened(office=office, directory_version="2026-11-24"),
        OfficeDetailsChanged(office=office, directory_version="2026-11-25"),
        AgentJoined(agent_id=agent.agent_id, agent=agent, directory_version="2026-11-24"),
        AgentDetailsChanged(agent_id=agent.agent_id, agent=agent),
        AgentAbsenceDeclared(
            agent_id=agent.agent_id,
            absence_id=1,
            starts_on=dt.date(2026, 12, 1),
            ends_on=dt.date(2026, 12, 12),
        ),
        AgentReturned(agent_id=agent.agent_id, files_returned=3),
        AgentLeft(agent_id=agent.agent_id, files_redistributed=7, files_waiting=1),
        ContactPreferencesChanged(
            file_id=file_id,
            citizen=citizen(
                preferred_channel=PreferredChannel.LETTER,
                street="12 rue de la Poste",
                city="Saint-Denis",
            ),
        ),
        ReferentThanked(
            file_id=file_id,
            thanks_id="5b0c3c2e-1111-4c8e-9d7a-000000000001",
            referent=referent(),
            citizen=citizen(),
            message="Merci pour votre patience et vos explications claires.",
        ),
        SurveyAnswered(
            file_id=file_id,
            score=5,
            referent_reachable=True,
            comment="Très bien suivie.",
            referent_agent_id="AG-93-01-2",
            office_id="FS-93-01",
        ),
        CitizenDataErased(
            file_id=file_id, cause=ErasureCause.REQUEST, erased=["contact", "description"]
        ),
        AgencyReceiptAcknowledged(
            file_id=file_id,
            request_id=f"{file_id}-cpam",
            agency="cpam",
            agency_reference="CPAM-2026-000001",
            deadline_rule=DeadlineRule.SILENCE_REJECTS,
            deadline_days=30,
        ),
        LegalClockSuspended(
            file_id=file_id, request_id=f"{file_id}-cpam", agency="cpam", document=salary
        ),
        LegalClockResumed(
            file_id=file_id,
            request_id=f"{file_id}-cpam",
            agency="cpam",
            document_code="attestation_salaire",
        ),
        AgencyStatusChecked(
            file_id=file_id,
            request_id=f"{file_id}-cpam",
            agency="cpam",
            finding=StatusFinding.PENDING,
            checks=2,
            next_check_at=dt.datetime(2025, 1, 20, 9, 30, tzinfo=dt.UTC),
        ),
        SupportingDocumentRequested(
            file_id=file_id,
            request_id=f"{file_id}-cpam",
            agency="cpam",
            document=salary,
            referent=referent(),
            citizen=citizen(),
        ),
        SupportingDocumentSubmitted(
            file_id=file_id,
            request_id=f"{file_id}-cpam",
            agency="cpam",
            document_id="d-1",
            document_code="attestation_salaire",
            filename="attestation.pdf",
            media_type="application/pdf",
            sha256="0" * 64,
            content_base64="JVBERi0=",
        ),
        ExchangeRecorded(
            file_id=file_id,
            exchange_id="x-1",
            request_id=f"{file_id}-cpam",
            agency="cpam",
            direction=ExchangeDirection.SENT,
            purpose="Demande : affiliation",
            legal_basis="CSS, art. L. 161-1-1",
            payload_sha256="0" * 64,
            size_bytes=120,
        ),
        LegalDeadlineSet(
            file_id=file_id,
            request_id=f"{file_id}-caf",
            agency="caf",
            rule=DeadlineRule.SILENCE_ACCEPTS,
            due_on=dt.date(2026, 12, 31),
            state="en_cours",
            why="reception",
        ),
        DeadlineWarningIssued(
            file_id=file_id,
            request_id=f"{file_id}-caf",
            agency="caf",
            due_on=dt.date(2026, 12, 31),
            days_left=7,
            threshold=7,
            rule=DeadlineRule.SILENCE_ACCEPTS,
            referent=referent(),
            citizen=citizen(),
        ),
        LegalDeadlineBreached(
            file_id=file_id,
            request_id=f"{file_id}-caf",
            agency="caf",
            due_on=dt.date(2026, 12, 31),
            rule=DeadlineRule.SILENCE_REJECTS,
            referent=referent(),
            citizen=citizen(),
            supervisors=[
                SupervisorContact(
                    supervisor_id="SUP-IDF",
                    name="Hélène Marchand",
                    email="helene.marchand@example.fr",
                    phone="01 40 10 21 00",
                )
            ],
        ),
        CitizenMessageReminderIssued(
            file_id=file_id,
            message_id="m-1",
            received_at=dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.UTC),
            answer_due_at=dt.datetime(2026, 12, 1, 23, 0, tzinfo=dt.UTC),
            referent=referent(),
            citizen=citizen(),
        ),
        CitizenMessageEscalated(
            file_id=file_id,
            message_id="m-1",
            received_at=dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.UTC),
            answer_due_at=dt.datetime(2026, 12, 1, 23, 0, tzinfo=dt.UTC),
            referent=referent(),
            citizen=citizen(),
            supervisors=[
                SupervisorContact(
                    supervisor_id="SUP-IDF",
                    name="Hélène Marchand",
                    email="helene.marchand@example.fr",
                    phone="01 40 10 21 00",
                )
            ],
        ),
        ImplicitDecisionRecorded(
            file_id=file_id,
            request_id=f"{file_id}-caf",
            agency="caf",
            decision=Decision.IMPLICIT_ACCEPTANCE,
            due_on=dt.date(2026, 12, 31),
            decided_on=dt.date(2027, 1, 1),
            referent=referent(),
            citizen=citizen(),
        ),
        AccessCodeIssued(
            file_id=file_id,
            sealed_code=KEYRING.seal("428193", AccessCodeIssued.sealing_context(file_id)),
            expires_at=dt.datetime(2025, 1, 6, 9, 15, tzinfo=dt.UTC),
            citizen=citizen(),
            referent=referent(),
        ),
        AppointmentBooked(
            file_id=file_id,
            appointment=appointment(appointment_id="rdv-0002"),
            referent=referent(),
            booked_by=AppointmentSide.AGENT,
            booked_by_agent="AG-93-01-9",
            rescheduled_from=dt.datetime(2027, 3, 1, 13, 0, tzinfo=dt.UTC),
            citizen=citizen(),
        ),
        AppointmentCancelled(
            file_id=file_id,
            appointment=appointment(),
            referent=referent(),
            cancelled_by=AppointmentSide.AGENT,
            cancelled_by_agent="AG-93-01-2",
            reason="Je suis en formation ce jour-là.",
            citizen=citizen(),
        ),
        AppointmentReminderIssued(
            file_id=file_id, appointment=appointment(), referent=referent(), citizen=citizen()
        ),
    ]


def trace_id_of(traceparent: str) -> str:
    """`00-<trace id>-<span id>-<flags>` -> trace id."""
    return traceparent.split("-")[1]


def headers_of(outbox_row: sa.Row) -> dict[str, str]:
    """The trace context stored with an outbox row."""
    return json.loads(outbox_row.headers)


#: Awa Diallo's contact as she gives it on a form (intake's tests).
AWA_CONTACT = {
    "given_name": "Awa",
    "family_name": "Diallo",
    "email": "awa@example.fr",
    "postcode": "93200",
    "preferred_channel": "email",
}
#: The form Awa fills in after losing her job (France Travail, CAF, DGFiP).
AWA_FORM = {
    "life_event": "perte_emploi",
    "citizen": AWA_CONTACT,
    "description": "Licenciée le mois dernier.",
}
#: The form Awa fills in after her daughter's birth (CAF, CPAM).
AWA_BIRTH_FORM = {
    "life_event": "naissance",
    "citizen": AWA_CONTACT,
    "description": "Naissance de notre fille.",
}
