"""Composing messages to citizens. Every message is signed here, in one place, with the
référent's name and direct contact; a message without them is never produced."""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from shared_models import CitizenContact, NotificationKind, Referent

SUBJECTS = {
    NotificationKind.REFERENT_ASSIGNED: "Votre dossier {file_id} : {referent} est votre référent",
    NotificationKind.ANSWER_READY: "Votre dossier {file_id} : la réponse coordonnée est prête",
    NotificationKind.REFERENT_CHANGED: "Votre dossier {file_id} : {referent} est votre nouveau référent",
    NotificationKind.AGENT_HANDOVER: "Dossier {file_id} : passation à {referent}",
    NotificationKind.ACCESS_CODE: "Votre dossier {file_id} : votre code d'accès",
}
# A file may wait for its référent; only these messages can go out before one is named.
UNSIGNED_ALLOWED = {NotificationKind.ACCESS_CODE}


class UnsignedMessage(Exception):
    """A rendered message lacks the référent's name or direct phone."""


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=PackageLoader("notification", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # plain-text bodies
    )


def signature(referent: Referent) -> str:
    return (
        "\n--\n"
        f"{referent.name}\n"
        f"Votre référent — {referent.office}\n"
        f"Téléphone direct : {referent.phone}\n"
        f"Courriel : {referent.email}\n"
    )


def compose(
    kind: NotificationKind,
    *,
    file_id: str,
    referent: Referent | None,
    citizen: CitizenContact,
    **context: object,
) -> tuple[str, str]:
    """(subject, body) of a message, signed with the référent's direct contact."""
    if referent is None and kind not in UNSIGNED_ALLOWED:
        raise UnsignedMessage(f"{kind.value} pour {file_id} : aucun référent")
    body = _env().get_template(f"{kind.value}.txt.j2").render(
        file_id=file_id, referent=referent, citizen=citizen, **context
    )
    if referent is None:
        return SUBJECTS[kind].format(file_id=file_id, referent=""), body
    if referent.name not in body or referent.phone not in body:
        body = body.rstrip("\n") + "\n" + signature(referent)
    if referent.name not in body or referent.phone not in body:
        raise UnsignedMessage(f"{kind.value} pour {file_id}")
    subject = SUBJECTS[kind].format(file_id=file_id, referent=referent.name)
    return subject, body
