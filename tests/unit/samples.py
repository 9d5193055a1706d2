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
    AgencyDecision,
    Appointment,
    CitizenContact,
    Decision,
    FileSubmitted,
    NotificationKind,
    PreferredChannel,
    Referent,
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
