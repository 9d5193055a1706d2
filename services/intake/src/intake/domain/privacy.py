"""The citizen's GDPR rights in intake's domain: when a file's personal data may be erased,
and when the citizen's data key goes with it (pure rules, no I/O)."""

from __future__ import annotations

import datetime as dt

from guichet_runtime.refusals import RefusalKind, Refused
from intake.domain.states import FileStatus

STILL_PROCESSED = (
    "Ce dossier est en cours de traitement : ses données ne peuvent pas être effacées avant la "
    "réponse coordonnée, car l'administration doit les conserver pour instruire votre demande "
    "(RGPD, article 17, paragraphe 3, b). Vous pourrez demander l'effacement une fois le "
    "dossier clos."
)
ALREADY_ERASED = "Les données personnelles de ce dossier ont déjà été effacées."
#: What erasure removes from intake (the event's `erased`); kept: the anonymous skeleton
#: (life event, dates, channel, agencies' decisions, the survey's score), the exchange
#: ledger's digests and the audit trail (the law keeps them; none names the citizen).
ERASED_DATA = (
    "contact",
    "compte",
    "description",
    "motif_changement_referent",
    "reponse_coordonnee",
    "chronologie",
    "pieces",
    "messages_referent",
    "commentaire_enquete",
    "remerciements",
    "codes_acces",
)


def ensure_erasure_allowed(status: str, erased_at: dt.datetime | None) -> None:
    """The erasure rule (RGPD art. 17): a file still being processed is kept, as the law
    requires of the administration (art. 17(3)(b)); a closed file (the coordinated answer
    sent) is erased once, except what the law keeps (audit trail, anonymous indicators)."""
    if erased_at is not None:
        raise Refused(RefusalKind.CONFLICT, ALREADY_ERASED)
    if status != FileStatus.ANSWERED:
        raise Refused(RefusalKind.CONFLICT, STILL_PROCESSED)


ERASURE_NOT_CONFIRMED = (
    "Confirmez votre demande d'effacement : elle est définitive, vos données ne pourront pas "
    "être retrouvées."
)


def ensure_erasure_confirmed(confirm: bool) -> None:
    """An erasure cannot be undone: the citizen confirms it explicitly."""
    if not confirm:
        raise Refused(RefusalKind.INVALID, ERASURE_NOT_CONFIRMED, field="confirm")


def ensure_not_erased(erased_at: dt.datetime | None) -> None:
    """Nothing is done for a citizen whose data was erased: there is no one to write to."""
    if erased_at is not None:
        raise Refused(RefusalKind.CONFLICT, ALREADY_ERASED)


def contact_identity(email: str | None, phone: str | None) -> str | None:
    """What identifies a citizen without an account across their files, so they share one
    data key and keep their référent (continuity): their email, else their phone,
    normalised; none without either (each file then has a key of its own)."""
    if email:
        return "email:" + email.strip().lower()
    if phone:
        return "phone:" + "".join(ch for ch in phone if ch.isdigit() or ch == "+")
    return None


def key_may_be_shredded(other_files_holding_data: int) -> bool:
    """A citizen's data key is shredded with the last of their files still holding personal
    data: the others still need it to be read."""
    return other_files_holding_data == 0
