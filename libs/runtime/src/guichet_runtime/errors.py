"""Bad input answered in French, one message per field, for every service's HTTP API."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

# Pydantic's error types, said in French for citizens and agents.
FRENCH_MESSAGES: dict[str, str] = {
    "missing": "Ce champ est obligatoire.",
    "string_too_short": "Ce champ ne peut pas être vide.",
    "string_too_long": "Ce texte est trop long.",
    "string_type": "Une chaîne de caractères est attendue.",
    "bool_type": "Oui ou non (true/false) attendu.",
    "int_type": "Un nombre entier est attendu.",
    "int_parsing": "Un nombre entier est attendu.",
    "int_from_float": "Un nombre entier est attendu.",
    "bool_parsing": "Oui ou non (true/false) attendu.",
    "date_from_datetime_parsing": "Date invalide : format AAAA-MM-JJ attendu.",
    "date_parsing": "Date invalide : format AAAA-MM-JJ attendu.",
    "date_type": "Date invalide : format AAAA-MM-JJ attendu.",
    "enum": "Valeur inconnue : choisissez parmi {expected}.",
    "value_error": "Valeur invalide.",
    "extra_forbidden": "Champ inconnu.",
    "model_type": "Un objet est attendu.",
    "model_attributes_type": "Un objet est attendu.",
    "dict_type": "Un objet est attendu.",
    "json_invalid": "Le corps de la requête n'est pas un JSON valide.",
    "float_type": "Un nombre est attendu.",
    "float_parsing": "Un nombre est attendu.",
    "greater_than": "La valeur doit être supérieure à {gt}.",
    "greater_than_equal": "La valeur doit être au moins {ge}.",
    "less_than": "La valeur doit être inférieure à {lt}.",
    "less_than_equal": "La valeur doit être au plus {le}.",
    "list_type": "Une liste est attendue.",
    "too_short": "Au moins {min_length} élément(s) attendu(s).",
    "string_pattern_mismatch": "Format invalide.",
}


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def french_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Pydantic's errors as {field, message}, every message in French."""
    out = []
    for err in errors:
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "enum":
            choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
            message = FRENCH_MESSAGES["enum"].format(expected=", ".join(choices))
        elif kind == "value_error" and "email" in str(err.get("msg", "")).lower():
            message = "Adresse électronique invalide."
        elif kind == "string_too_short" and int(ctx.get("min_length", 1)) > 1:
            message = f"Au moins {ctx['min_length']} caractères sont attendus."
        elif kind in FRENCH_MESSAGES:
            message = FRENCH_MESSAGES[kind].format(**ctx)
        else:
            message = err["msg"]  # our own validators (PydanticCustomError) speak French
        out.append({"field": _field_path(tuple(err["loc"])), "message": message})
    return out


def install_french_validation(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "message": "Certaines informations sont manquantes ou invalides.",
                "errors": french_errors(list(exc.errors())),
            },
        )
