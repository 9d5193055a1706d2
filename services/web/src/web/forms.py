"""Form data to the services' JSON, and the services' French errors back to form fields,
so every message lands next to its field and nothing typed is lost."""

from __future__ import annotations

import re
from typing import Any

# In the order the form shows them.
FILE_FIELDS = ("life_event", "description", "given_name", "family_name", "street", "postcode", "city",
               "preferred_channel", "email", "phone")
LABELS = {
    "life_event": "Changement de situation", "description": "Situation", "given_name": "Prénom",
    "family_name": "Nom", "email": "Adresse électronique", "phone": "Téléphone", "postcode": "Code postal",
    "street": "Numéro et rue", "city": "Commune",
    "preferred_channel": "Moyen de contact", "reference": "Référence du dossier", "code": "Code",
    "reason": "Motif", "agent": "Votre nom",
}
CITIZEN_FIELDS = ("given_name", "family_name", "email", "phone", "street", "postcode", "city", "preferred_channel")
OPTIONAL_CONTACTS = ("email", "phone", "street", "city")
FILE_REFERENCE = re.compile(r"^GU-\d{4}-[0-9A-Z]{8}$")


def typed(form: Any, fields: tuple[str, ...]) -> dict[str, str]:
    """What the person typed, as text, to show back in the form."""
    return {name: str(form.get(name, "") or "") for name in fields}


def file_body(values: dict[str, str], urgent: bool) -> dict[str, Any]:
    """The intake request for a new file; empty optional contacts are left out."""
    citizen: dict[str, Any] = {name: values[name] for name in CITIZEN_FIELDS if name not in OPTIONAL_CONTACTS}
    if not values["preferred_channel"]:
        citizen.pop("preferred_channel")
    for optional in OPTIONAL_CONTACTS:
        if values[optional].strip():
            citizen[optional] = values[optional]
    body: dict[str, Any] = {"citizen": citizen, "description": values["description"], "urgent": urgent}
    if values["life_event"]:
        body["life_event"] = values["life_event"]
    return body


def file_errors(errors: list[dict[str, str]], values: dict[str, str]) -> dict[str, str]:
    """Intake's {field, message} list as {form field: message}."""
    out: dict[str, str] = {}
    for err in errors:
        field = err.get("field", "")
        if field == "citizen":
            # "reachable" check: the contact the chosen channel needs (letters need the address).
            if "postale" in err.get("message", ""):
                field = "street" if not values.get("street", "").strip() else "city"
            else:
                field = "email" if values.get("preferred_channel") == "email" else "phone"
        elif field.startswith("citizen."):
            field = field.removeprefix("citizen.")
        if field in FILE_FIELDS:
            out.setdefault(field, err["message"])
        else:
            out.setdefault("form", err["message"])
    # In the order of the form, so the summary reads like the page.
    return {name: out[name] for name in (*FILE_FIELDS, "form") if name in out}


def normalise_reference(raw: str) -> str:
    return re.sub(r"\s", "", raw).upper()


def reference_error(reference: str) -> str | None:
    if not reference:
        return "Indiquez la référence de votre dossier."
    if not FILE_REFERENCE.match(reference):
        return "Référence invalide : elle a la forme GU-2026-ABCD2345 (sur votre courriel ou votre récépissé)."
    return None


def code_error(code: str) -> str | None:
    compact = re.sub(r"\s", "", code)
    if not compact:
        return "Indiquez le code reçu par courriel."
    if not re.fullmatch(r"\d{6}", compact):
        return "Le code comporte 6 chiffres, par ex. 123456."
    return None
