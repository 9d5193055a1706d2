"""French wordings shared by every service that shows a decision or an amount, so the
citizen reads the same words on the page, in the email and on the letter."""

from __future__ import annotations

from shared_models.events import Decision

#: A decision, in the words that follow "<agency> :" in a sentence (lower case).
DECISION_WORDS: dict[Decision, str] = {
    Decision.GRANTED: "accordé",
    Decision.REFUSED: "refusé",
    Decision.DOCUMENT_REQUESTED: "en attente d'une pièce justificative",
    Decision.IMPLICIT_ACCEPTANCE: "accepté implicitement (sans réponse dans le délai légal)",
    Decision.IMPLICIT_REJECTION: "rejeté implicitement (sans réponse dans le délai légal)",
}


def decision_label(decision: Decision | str) -> str:
    """The decision as a label standing alone (capitalised): « Accordé »."""
    words = DECISION_WORDS[Decision(decision)]
    return words[:1].upper() + words[1:]


#: French typography: a narrow no-break space groups thousands, a no-break space precedes €.
_THOUSANDS = "\u202f"
_BEFORE_UNIT = "\u00a0"


def euros_fr(amount: float) -> str:
    """1234.5 -> « 1 234,50 € » (narrow no-break space between thousands)."""
    whole, cents = f"{amount:,.2f}".split(".")
    return f"{whole.replace(',', _THOUSANDS)},{cents}{_BEFORE_UNIT}€"
