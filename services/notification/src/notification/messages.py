"""Composing messages, for every kind and every channel, in one place.

A kind is a NotificationKind plus an entry in `KINDS` and its templates:
`<kind>.txt.j2` (the text of the email and of the letter), `<kind>.sms.j2` (short), and
optionally `<kind>.html.j2` (otherwise the text is laid out as HTML paragraphs). Channel
code never knows about kinds: adding one (an implicit decision letter, a deadline warning,
a missing document request) touches this registry and the templates only.

`render` signs every output with the référent's name and direct contact and refuses to
return a message without them: this is the one place where that rule is enforced.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, TemplateNotFound, select_autoescape
from markupsafe import Markup, escape

from shared_models import CitizenContact, NotificationChannel, NotificationKind, Referent

Audience = Literal["citoyen", "agent"]


@dataclass(frozen=True)
class KindSpec:
    subject: str  # str.format with file_id and referent (the référent's name)
    audience: Audience


KINDS: dict[NotificationKind, KindSpec] = {
    NotificationKind.REFERENT_ASSIGNED: KindSpec("Votre dossier {file_id} : {referent} est votre référent", "citoyen"),
    NotificationKind.ANSWER_READY: KindSpec("Votre dossier {file_id} : la réponse coordonnée est prête", "citoyen"),
    NotificationKind.REFERENT_CHANGED: KindSpec(
        "Votre dossier {file_id} : {referent} est votre nouveau référent", "citoyen"
    ),
    NotificationKind.AGENT_HANDOVER: KindSpec("Dossier {file_id} : passation à {referent}", "agent"),
    NotificationKind.CALL_REQUESTED: KindSpec("Dossier {file_id} : appel téléphonique à passer", "agent"),
    NotificationKind.THANKS_RECEIVED: KindSpec("Dossier {file_id} : un citoyen vous remercie", "agent"),
    NotificationKind.DOCUMENT_REQUESTED: KindSpec(
        "Votre dossier {file_id} : une pièce justificative est demandée", "citoyen"
    ),
    NotificationKind.DEADLINE_WARNING: KindSpec("Dossier {file_id} : délai légal bientôt atteint", "agent"),
    NotificationKind.DEADLINE_BREACHED: KindSpec("Dossier {file_id} : délai légal dépassé", "agent"),
    NotificationKind.IMPLICIT_DECISION: KindSpec("Votre dossier {file_id} : décision implicite de l'organisme", "citoyen"),
    # To a département's supervisors; the contact is the supervision desk (no référent yet).
    NotificationKind.SUPERVISOR_ALERT: KindSpec("Dossier {file_id} en attente d'un référent", "agent"),
    NotificationKind.ACCESS_CODE: KindSpec("Votre dossier {file_id} : votre code d'accès", "citoyen"),
    NotificationKind.REFERENT_MESSAGE: KindSpec("Votre dossier {file_id} : un message de {referent}", "citoyen"),
}
# A file may wait for its référent; only these messages can go out before one is named.
UNSIGNED_ALLOWED = {NotificationKind.ACCESS_CODE}

#: Context every template may use; the composition root sets the portal's address.
DEFAULTS: dict[str, object] = {"portal_url": "https://guichet-unique.gouv.fr"}

# Kept for callers of the first version.
SUBJECTS = {kind: spec.subject for kind, spec in KINDS.items()}


class UnsignedMessage(Exception):
    """A rendered message lacks the référent's name or direct phone."""


@dataclass(frozen=True)
class Rendered:
    """One message on one channel, signed. `html` only for email."""

    channel: NotificationChannel
    subject: str
    text: str
    html: str | None = None


@lru_cache(maxsize=1)
def _text_env() -> Environment:
    return Environment(
        loader=PackageLoader("notification", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # plain text, SMS and letters
    )


@lru_cache(maxsize=1)
def _html_env() -> Environment:
    return Environment(
        loader=PackageLoader("notification", "templates"),
        undefined=StrictUndefined,
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


def signature(referent: Referent, audience: Audience = "citoyen") -> str:
    # Agents read who is in charge of the file; citizens read who their référent is.
    title = "Votre référent" if audience == "citoyen" else "Contact pour ce dossier"
    return (
        "\n--\n"
        f"{referent.name}\n"
        f"{title} — {referent.office}\n"
        f"Téléphone direct : {referent.phone}\n"
        f"Courriel : {referent.email}\n"
        + (f"Accueil : {referent.opening_hours}\n" if referent.opening_hours else "")
    )


def sms_signature(referent: Referent) -> str:
    return f"\n{referent.name}, {referent.office}, tél. direct {referent.phone}"


def _signed(text: str, referent: Referent, sign: str) -> str:
    if referent.name not in text or referent.phone not in text:
        text = text.rstrip("\n") + ("\n" if sign.startswith("\n--") else "") + sign
    return text


def _check(kind: NotificationKind, channel: NotificationChannel, file_id: str, referent: Referent, *texts: str) -> None:
    for text in texts:
        if referent.name not in text or referent.phone not in text:
            raise UnsignedMessage(f"{kind.value} ({channel.value}) pour {file_id}")


def text_to_html(text: str) -> Markup:
    """Paragraphs of a plain-text body as escaped HTML."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return Markup("\n").join(Markup("<p>{}</p>").format(Markup("<br>").join(escape(line) for line in p.splitlines())) for p in paragraphs)


def render(
    kind: NotificationKind,
    channel: NotificationChannel,
    *,
    file_id: str,
    referent: Referent,
    citizen: CitizenContact,
    **context: object,
) -> Rendered:
    """The message of `kind` on `channel`, signed with the référent's direct contact."""
    spec = KINDS[kind]
    values = {**DEFAULTS, "file_id": file_id, "referent": referent, "citizen": citizen, **context}
    subject = spec.subject.format(file_id=file_id, referent=referent.name)
    if channel is NotificationChannel.SMS:
        body = _text_env().get_template(f"{kind.value}.sms.j2").render(**values).strip()
        body = _signed(body, referent, sms_signature(referent))
        _check(kind, channel, file_id, referent, body)
        return Rendered(channel, subject, body)
    text = _signed(
        _text_env().get_template(f"{kind.value}.txt.j2").render(**values), referent, signature(referent, spec.audience)
    )
    if channel is NotificationChannel.LETTER:
        _check(kind, channel, file_id, referent, text)
        return Rendered(channel, subject, text)
    try:
        content = Markup(_html_env().get_template(f"{kind.value}.html.j2").render(**values))
    except TemplateNotFound:
        content = text_to_html(text.split("\n--\n")[0])
    page = _html_env().get_template("email.html.j2").render(subject=subject, content=content, **values)
    _check(kind, channel, file_id, referent, text, html.unescape(page))
    return Rendered(channel, subject, text, page)


def compose(
    kind: NotificationKind,
    *,
    file_id: str,
    referent: Referent | None,
    citizen: CitizenContact,
    **context: object,
) -> tuple[str, str]:
    """(subject, plain-text body) of a message, signed with the référent's direct contact."""
    rendered = render(
        kind, NotificationChannel.LETTER, file_id=file_id, referent=referent, citizen=citizen, **context
    )
    return rendered.subject, rendered.text
