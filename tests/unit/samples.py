"""Sample contracts shared by the unit tests (plain functions: import them from
`tests.unit.samples`)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from shared_models import (
    AccessCodeIssued,
    Agency,
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
)


# --------------------------------------------------------------------------- contracts


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
    }
    return Referent(**{**values, **overrides})


def decision(agency: Agency, verdict: Decision = Decision.GRANTED, **overrides: Any) -> AgencyDecision:
    values: dict[str, Any] = {
        "agency": agency,
        "decision": verdict,
        "summary": f"Décision de {agency.value} sur votre dossier.",
        "agency_reference": f"{agency.value.upper()}-2025-0001",
    }
    return AgencyDecision(**{**values, **overrides})


def file_submitted(
    file_id: str = "GU-2025-ABCDEFGH",
    agencies: tuple[Agency, ...] = (Agency.FRANCE_TRAVAIL, Agency.CAF, Agency.DGFIP),
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


def one_event_of_each_type() -> list[Event]:
    """A valid instance of every event type (with every optional field set)."""
    file_id = "GU-2025-ABCDEFGH"
    granted = decision(
        Agency.CAF,
        amount_eur=1234.56,
        start_date=dt.date(2025, 2, 1),
    )
    refused = decision(Agency.DGFIP, Decision.REFUSED, reason="Revenus supérieurs au plafond.")
    return [
        file_submitted(file_id),
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
            agency=Agency.CAF,
            life_event="perte_emploi",
            citizen=citizen(),
            description="J'ai été licenciée le mois dernier.",
            urgent=True,
        ),
        AgencyAnswerReceived(file_id=file_id, request_id=f"{file_id}-caf", answer=granted),
        CoordinatedAnswerIssued(
            file_id=file_id,
            referent=referent(),
            citizen=citizen(),
            decisions=[granted, refused],
            text="Bonjour Awa Diallo, …",
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
            file_id=file_id, requested_by="citoyen", reason="Nous ne parvenons pas à nous comprendre."
        ),
        AccessCodeIssued(
            file_id=file_id,
            code="428193",
            expires_at=dt.datetime(2025, 1, 6, 9, 15, tzinfo=dt.UTC),
            citizen=citizen(),
            referent=referent(),
        ),
    ]


def trace_id_of(traceparent: str) -> str:
    """`00-<trace id>-<span id>-<flags>` -> trace id."""
    return traceparent.split("-")[1]


def headers_of(outbox_row: sa.Row) -> dict[str, str]:
    """The trace context stored with an outbox row."""
    return json.loads(outbox_row.headers)
