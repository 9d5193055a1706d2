"""Form data to the services' JSON, and the services' French errors back to form fields,
so every message lands next to its field and nothing typed is lost."""

from __future__ import annotations

import re
from typing import Any

# In the order the form shows them.
FILE_FIELDS = (
    "channel",
    "life_event",
    "description",
    "given_name",
    "family_name",
    "street",
    "postcode",
    "city",
    "preferred_channel",
    "email",
    "phone",
)
LABELS = {
    "life_event": "Changement de situation",
    "description": "Situation",
    "given_name": "Prénom",
    "family_name": "Nom",
    "email": "Adresse électronique",
    "phone": "Téléphone",
    "postcode": "Code postal",
    "street": "Numéro et rue",
    "city": "Commune",
    "preferred_channel": "Moyen de contact",
    "reference": "Référence du dossier",
    "code": "Code",
    "reason": "Motif",
    "channel": "Accueil de l'usager",
    "message": "Message de remerciement",
    "score": "Satisfaction",
    "referent_reachable": "Référent joignable",
    "comment": "Commentaire",
    "document": "Document",
    "agency": "Organisme destinataire",
    "starts_at": "Créneau du rendez-vous",
    "cancel_reason": "Motif de l'annulation",
    "access_reason": "Motif de votre intervention",
    "cancel_access_reason": "Motif de votre intervention",
}
CITIZEN_FIELDS = (
    "given_name",
    "family_name",
    "email",
    "phone",
    "street",
    "postcode",
    "city",
    "preferred_channel",
)
OPTIONAL_CONTACTS = ("email", "phone", "street", "city")
CONTACT_FIELDS = ("preferred_channel", "email", "phone", "street", "postcode", "city")
SURVEY_FIELDS = ("score", "referent_reachable", "comment")
FILE_REFERENCE = re.compile(r"^GU-\d{4}-[0-9A-Z]{8}$")


def typed(form: Any, fields: tuple[str, ...]) -> dict[str, str]:
    """What the person typed, as text, to show back in the form."""
    return {name: str(form.get(name, "") or "") for name in fields}


def file_body(values: dict[str, str], urgent: bool) -> dict[str, Any]:
    """The intake request for a new file; empty optional contacts are left out."""
    citizen: dict[str, Any] = {
        name: values[name] for name in CITIZEN_FIELDS if name not in OPTIONAL_CONTACTS
    }
    if not values["preferred_channel"]:
        citizen.pop("preferred_channel")
    for optional in OPTIONAL_CONTACTS:
        if values[optional].strip():
            citizen[optional] = values[optional]
    body: dict[str, Any] = {
        "citizen": citizen,
        "description": values["description"],
        "urgent": urgent,
    }
    if values["life_event"]:
        body["life_event"] = values["life_event"]
    if values.get("channel"):
        # The front desk says how the citizen came (intake requires it from an agent).
        body["channel"] = values["channel"]
    return body


def contact_values(citizen: dict[str, Any]) -> dict[str, str]:
    """The contact details on record, as the contact form shows them."""
    return {name: str(citizen.get(name) or "") for name in CONTACT_FIELDS}


def contact_body(values: dict[str, str]) -> dict[str, Any]:
    """The intake request changing the contact preferences; empty optional contacts are left out."""
    body: dict[str, Any] = {
        name: values[name] for name in ("preferred_channel", "postcode") if values[name]
    }
    body.update({name: values[name] for name in OPTIONAL_CONTACTS if values[name].strip()})
    return body


def survey_body(values: dict[str, str]) -> dict[str, Any]:
    """The survey's answers; what was left blank is left out (intake says what is required)."""
    body: dict[str, Any] = {}
    score = values["score"].strip()
    if score:
        body["score"] = int(score) if score.isdigit() else score
    if values["referent_reachable"] in ("oui", "non"):
        body["referent_reachable"] = values["referent_reachable"] == "oui"
    if values["comment"].strip():
        body["comment"] = values["comment"]
    return body


def document_error(filename: str, content: bytes) -> str | None:
    """Checked before asking intake: a form sent without choosing a file."""
    if not filename and not content:
        return "Choisissez le fichier à envoyer."
    return None


def document_errors(errors: list[dict[str, str]], status: int) -> list[dict[str, str]]:
    """Intake's refusal of a document, placed next to the file field; next to the choice of
    agency only when several agencies wait and the citizen did not say which one (422)."""
    return [
        {
            "field": "agency" if e.get("field") == "agency" and status == 422 else "document",
            "message": e["message"],
        }
        for e in errors
    ]


def document_hint(max_bytes: int) -> str:
    return f"Format PDF, JPEG ou PNG, {max_bytes // 1024} Ko au plus."


def file_errors(
    errors: list[dict[str, str]], values: dict[str, str], fields: tuple[str, ...] = FILE_FIELDS
) -> dict[str, str]:
    """Intake's {field, message} list as {form field: message}, in the order of `fields`."""
    out: dict[str, str] = {}
    for err in errors:
        field = err.get("field", "")
        if field in ("citizen", "body"):
            # The "reachable" check on the whole contact: the contact the chosen channel needs
            # (letters need the address).
            if "postale" in err.get("message", ""):
                field = "street" if not values.get("street", "").strip() else "city"
            else:
                field = "email" if values.get("preferred_channel") == "email" else "phone"
        elif field.startswith("citizen."):
            field = field.removeprefix("citizen.")
        if field in fields:
            out.setdefault(field, err["message"])
        else:
            out.setdefault("form", err["message"])
    # In the order of the form, so the summary reads like the page.
    return {name: out[name] for name in (*fields, "form") if name in out}


def normalise_reference(raw: str) -> str:
    return re.sub(r"\s", "", raw).upper()


def reference_error(reference: str) -> str | None:
    if not reference:
        return "Indiquez la référence de votre dossier."
    if not FILE_REFERENCE.match(reference):
        return (
            "Référence invalide : elle a la forme GU-2026-ABCD2345"
            " (sur votre courriel ou votre récépissé)."
        )
    return None


def code_error(code: str) -> str | None:
    compact = re.sub(r"\s", "", code)
    if not compact:
        return "Indiquez le code reçu par courriel."
    if not re.fullmatch(r"\d{6}", compact):
        return "Le code comporte 6 chiffres, par ex. 123456."
    return None
