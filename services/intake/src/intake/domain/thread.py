"""The file's thread: the citizen writes to their référent (the agent covering an absence
while it lasts), who answers with the référent's messages. Pure rules, no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from guichet_runtime.refusals import RefusalKind, Refused
from intake.domain import NO_REFERENT_YET, document_type, named_referent
from shared_models import Referent

MAX_CITIZEN_MESSAGE_CHARS = 2000
MAX_ATTACHMENTS = 3
#: The `channel` of a citizen's message that came as an email reply (none: the space).
BY_EMAIL_REPLY = "courriel"
#: The rule of the referent's covering in assignment's ReferentAssigned (AssignmentRule.COVER).
COVER_RULE = "suppleance"


@dataclass(frozen=True)
class Upload:
    """A document the citizen attaches to their message, as received."""

    filename: str
    declared_type: str | None
    content: bytes


@dataclass(frozen=True)
class CheckedUpload:
    filename: str
    media_type: str
    content: bytes


@dataclass(frozen=True)
class Answerer:
    """Who answers the citizen's message: the référent, or their cover during an absence."""

    referent: Referent
    covering_for: Referent | None

    def sentence(self, last_day: dt.date | None = None) -> str:
        """What the citizen is told once their message is sent, in French."""
        absent = self.covering_for.name if self.covering_for else None
        return who_answers_sentence(self.referent.name, absent, last_day)


def who_answers_sentence(name: str, covering_for: str | None, last_day: dt.date | None) -> str:
    """The citizen is told who answers their message, why during an absence, and by when
    (the answer-time promise's last day; none for a message older than the promise)."""
    by = f" au plus tard le {last_day:%d/%m/%Y}" if last_day is not None else ""
    if covering_for is None:
        return f"Votre message est transmis à votre référent, {name}, qui vous répondra{by}."
    return (
        f"{covering_for} est absent(e) : votre message est transmis à {name}, qui assure "
        f"le suivi de votre dossier pendant cette absence et vous répondra{by}."
    )


def overdue_message_sentence(received_on: str, answerer_name: str, office: str) -> str:
    """The citizen's timeline once the answer-time promise of their message lapsed."""
    return (
        f"Votre message du {received_on} n'a pas reçu de réponse dans le délai promis : "
        f"le responsable de {office} en est informé et veille à ce que {answerer_name} "
        "vous réponde."
    )


def citizen_message_text(text: str | None) -> str:
    """The citizen's words, trimmed: 1 to 2,000 characters, or a refusal next to the field."""
    value = (text or "").strip()
    if not value:
        raise Refused(
            RefusalKind.INVALID, "Écrivez votre message avant de l'envoyer.", field="text"
        )
    if len(value) > MAX_CITIZEN_MESSAGE_CHARS:
        raise Refused(
            RefusalKind.INVALID,
            f"Le message fait au plus {MAX_CITIZEN_MESSAGE_CHARS} caractères (ici : {len(value)}).",
            field="text",
        )
    return value


def checked_attachments(uploads: list[Upload]) -> list[CheckedUpload]:
    """The attachments, with the same content checks as the documents an agency asks for
    (PDF, JPEG or PNG recognised by their content, 512 Ko at most each), 3 at most."""
    if len(uploads) > MAX_ATTACHMENTS:
        raise Refused(
            RefusalKind.INVALID,
            f"Joignez au plus {MAX_ATTACHMENTS} documents à un message.",
            field="fichier",
        )
    return [
        CheckedUpload(
            (u.filename or "piece")[:200], document_type(u.content, u.declared_type), u.content
        )
        for u in uploads
    ]


def who_answers(card: dict[str, Any] | None, covering_for: dict[str, Any] | None) -> Answerer:
    """The file's current référent answers (the agent covering an absence, who is the
    file's référent while it lasts); no référent yet: a refusal saying they come soon."""
    referent = named_referent(card, NO_REFERENT_YET)
    absent = Referent.model_validate(covering_for) if covering_for else None
    if absent is not None and absent.agent_id == referent.agent_id:
        absent = None
    return Answerer(referent, absent)


def covering_after_assignment(
    rule: str, previous: Referent | None, covering: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The absent référent a newly assigned agent covers: the titular stays the one covered
    when a cover is itself covered; any other assignment ends the covering."""
    if rule != COVER_RULE or previous is None:
        return None
    return covering or previous.model_dump(mode="json")


def citizen_message_label(
    answerer: Answerer, text: str, attachments: int, by_email: bool = False
) -> str:
    """The citizen's message in their timeline."""
    joined = f" ({attachments} pièce(s) jointe(s))" if attachments else ""
    how = " (réponse par courriel)" if by_email else ""
    return f"Votre message à {answerer.referent.name}{how}{joined} : « {text} »"
