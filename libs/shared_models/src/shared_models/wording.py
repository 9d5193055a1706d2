"""French wordings shared by every service that shows a decision, an amount or an
appointment's time, so the citizen reads the same words on the page, in the email, on the
letter and in their file's history."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

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


_WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
_PARIS = ZoneInfo("Europe/Paris")


def day_fr(day: dt.date) -> str:
    """A day in words: « mardi 2 mars 2027 », « lundi 1er mars 2027 »."""
    first = "er" if day.day == 1 else ""
    return f"{_WEEKDAYS[day.weekday()]} {day.day}{first} {_MONTHS[day.month - 1]} {day.year}"


def date_fr(day: dt.date) -> str:
    """A date without its weekday: « 3 mars 2027 », « 1er mars 2027 »."""
    first = "er" if day.day == 1 else ""
    return f"{day.day}{first} {_MONTHS[day.month - 1]} {day.year}"


def span_fr(first: dt.date, last: dt.date) -> str:
    """A span of days, both included: « le 3 mars 2027 », « du 3 au 7 mars 2027 », « du 28
    février au 3 mars 2027 », « du 30 décembre 2026 au 2 janvier 2027 »."""
    if first == last:
        return f"le {date_fr(first)}"
    start = date_fr(first)
    if first.year == last.year:
        start = start.removesuffix(f" {first.year}")
        if first.month == last.month:
            start = start.removesuffix(f" {_MONTHS[first.month - 1]}")
    return f"du {start} au {date_fr(last)}"


def time_fr(at: dt.time) -> str:
    """A time of day as French typography writes it: « 9 h 30 », « 14 h », « 9 h 05 »."""
    return f"{at.hour} h" + (f" {at.minute:02d}" if at.minute else "")


def moment_fr(at: dt.datetime) -> str:
    """An instant (aware) as a person in France reads it, in Paris time:
    « mardi 2 mars 2027 à 9 h 30 » (an appointment's start)."""
    local = at.astimezone(_PARIS)
    return f"{day_fr(local.date())} à {time_fr(local.time())}"
