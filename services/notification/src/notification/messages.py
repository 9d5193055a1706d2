"""Composing messages, for every kind and every channel, in one place.

A kind is a NotificationKind plus an entry in `KINDS` and its templates:
`<kind>.txt.j2` (the text of the email and of the letter), `<kind>.sms.j2` (short), and
optionally `<kind>.html.j2` (otherwise the text is laid out as HTML paragraphs). Channel
code never knows about kinds: adding one (an implicit decision letter, a deadline warning,
a missing document request) touches this registry and the templates only.

`render` is the only way to produce a message: it signs every output with the référent's
name and direct contact (`domain.sign`) and refuses to return one without them
(`domain.ensure_signed`).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import cache, lru_cache

from jinja2 import (
    Environment,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    select_autoescape,
)
from markupsafe import Markup, escape

from notification.domain import Audience, ensure_signed, sign
from shared_models import (
    CitizenContact,
    CitizenName,
    NotificationChannel,
    NotificationKind,
    Referent,
)


@dataclass(frozen=True)
class KindSpec:
    subject: str  # str.format with file_id and referent (the référent's name)
    audience: Audience


CITIZEN, AGENT = Audience.CITIZEN, Audience.AGENT
KINDS: dict[NotificationKind, KindSpec] = {
    NotificationKind.REFERENT_ASSIGNED: KindSpec(
        "Votre dossier {file_id} : {referent} est votre référent", CITIZEN
    ),
    NotificationKind.ANSWER_READY: KindSpec(
        "Votre dossier {file_id} : la réponse coordonnée est prête", CITIZEN
    ),
    NotificationKind.REFERENT_CHANGED: KindSpec(
        "Votre dossier {file_id} : {referent} est votre nouveau référent", CITIZEN
    ),
    NotificationKind.AGENT_HANDOVER: KindSpec("Dossier {file_id} : passation à {referent}", AGENT),
    NotificationKind.CALL_REQUESTED: KindSpec(
        "Dossier {file_id} : appel téléphonique à passer", AGENT
    ),
    NotificationKind.THANKS_RECEIVED: KindSpec(
        "Dossier {file_id} : un citoyen vous remercie", AGENT
    ),
    NotificationKind.DOCUMENT_REQUESTED: KindSpec(
        "Votre dossier {file_id} : une pièce justificative est demandée", CITIZEN
    ),
    NotificationKind.DEADLINE_WARNING: KindSpec(
        "Dossier {file_id} : délai légal bientôt atteint", AGENT
    ),
    NotificationKind.DEADLINE_BREACHED: KindSpec("Dossier {file_id} : délai légal dépassé", AGENT),
    NotificationKind.IMPLICIT_DECISION: KindSpec(
        "Votre dossier {file_id} : décision implicite de l'organisme", CITIZEN
    ),
    # To a département's supervisors; the contact is the supervision desk (no référent yet).
    NotificationKind.SUPERVISOR_ALERT: KindSpec(
        "Dossier {file_id} en attente d'un référent", AGENT
    ),
    NotificationKind.ACCESS_CODE: KindSpec("Votre dossier {file_id} : votre code d'accès", CITIZEN),
    NotificationKind.REFERENT_MESSAGE: KindSpec(
        "Votre dossier {file_id} : un message de {referent}", CITIZEN
    ),
    # The answer-time promise of a citizen's message: its last day, then its lapse.
    NotificationKind.MESSAGE_REMINDER: KindSpec(
        "Dossier {file_id} : un message de l'usager attend votre réponse", AGENT
    ),
    NotificationKind.MESSAGE_OVERDUE: KindSpec(
        "Dossier {file_id} : message de l'usager sans réponse dans le délai promis", AGENT
    ),
    # To the contact the citizen just left (the email, phone or address it replaced).
    NotificationKind.CONTACT_CHANGED_NOTICE: KindSpec(
        "Votre dossier {file_id} : vos coordonnées ont été modifiées", CITIZEN
    ),
    # Appointments with the référent (issue 16 §3); a move gives a new appointment.
    NotificationKind.APPOINTMENT_BOOKED: KindSpec(
        "Votre dossier {file_id} : rendez-vous confirmé avec {referent}", CITIZEN
    ),
    NotificationKind.APPOINTMENT_MOVED: KindSpec(
        "Votre dossier {file_id} : votre rendez-vous avec {referent} est déplacé", CITIZEN
    ),
    NotificationKind.APPOINTMENT_CANCELLED: KindSpec(
        "Votre dossier {file_id} : votre rendez-vous avec {referent} est annulé", CITIZEN
    ),
    NotificationKind.APPOINTMENT_REMINDER: KindSpec(
        "Votre dossier {file_id} : rappel de votre rendez-vous avec {referent}", CITIZEN
    ),
}

#: Context every template may use; the composition root sets the portal's address.
DEFAULTS: dict[str, object] = {"portal_url": "https://guichet-unique.gouv.fr"}


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
        auto_reload=False,  # the templates ship with the package: no stat() per message
    )


@lru_cache(maxsize=1)
def html_env() -> Environment:
    """The environment of the HTML templates (autoescaped)."""
    return Environment(
        loader=PackageLoader("notification", "templates"),
        undefined=StrictUndefined,
        autoescape=select_autoescape(default=True, default_for_string=True),
        auto_reload=False,
    )


@cache
def _html_body(kind: NotificationKind) -> Template | None:
    """The kind's own HTML body, None if it has none (its text is then shown as HTML):
    asked once, not at each message (Jinja caches the templates it found, not a miss)."""
    try:
        return html_env().get_template(f"{kind.value}.html.j2")
    except TemplateNotFound:
        return None


def subject_of(kind: NotificationKind, file_id: str, referent: Referent) -> str:
    """The subject line of a message of `kind`."""
    return KINDS[kind].subject.format(file_id=file_id, referent=referent.name)


def text_to_html(text: str) -> Markup:
    """Paragraphs of a plain-text body as escaped HTML."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    # Every line escaped (markupsafe's C escape), the tags joined as plain strings: the same
    # markup as Markup.format and Markup.join, without their escaping formatter per call.
    return Markup(
        "\n".join(
            "<p>" + "<br>".join(str(escape(line)) for line in p.splitlines()) + "</p>"
            for p in paragraphs
        )
    )


def render(
    kind: NotificationKind,
    channel: NotificationChannel,
    *,
    file_id: str,
    referent: Referent,
    citizen: CitizenContact | CitizenName,
    **context: object,
) -> Rendered:
    """The message of `kind` on `channel`, signed with the référent's direct contact."""
    audience = KINDS[kind].audience
    values = {
        **DEFAULTS,
        "file_id": file_id,
        "referent": referent,
        "citizen": citizen,
        "channel": channel.value,  # a text may say what only one channel has (an attachment)
        **context,
    }
    subject = subject_of(kind, file_id, referent)
    what = f"{kind.value} ({channel.value}) pour {file_id}"
    if channel is NotificationChannel.SMS:
        body = _text_env().get_template(f"{kind.value}.sms.j2").render(**values).strip()
        body = sign(body, referent, channel)
        ensure_signed(referent, what, body)
        return Rendered(channel, subject, body)
    text = _text_env().get_template(f"{kind.value}.txt.j2").render(**values)
    text = sign(text, referent, channel, audience)
    if channel is NotificationChannel.LETTER:
        ensure_signed(referent, what, text)
        return Rendered(channel, subject, text)
    body = _html_body(kind)
    if body is not None:
        content = Markup(body.render(**values))
    else:
        content = text_to_html(text.split("\n--\n")[0])
    layout = html_env().get_template("email.html.j2")
    page = layout.render(subject=subject, content=content, **values)
    ensure_signed(referent, what, text, html.unescape(page))
    return Rendered(channel, subject, text, page)


def compose(
    kind: NotificationKind,
    *,
    file_id: str,
    referent: Referent,
    citizen: CitizenContact | CitizenName,
    **context: object,
) -> tuple[str, str]:
    """(subject, plain-text body) of a message, signed with the référent's direct contact."""
    rendered = render(
        kind,
        NotificationChannel.LETTER,
        file_id=file_id,
        referent=referent,
        citizen=citizen,
        **context,
    )
    return rendered.subject, rendered.text
