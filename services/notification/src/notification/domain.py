"""Notification's rules, pure (no SQL, HTTP, SMTP or Kafka): who a message is for, which
channels it tries and in which order, what becomes of it when a channel fails, and the
référent's signature that every message carries.

The states a message goes through are stored as these enums' values (the strings in the
database and in `NotificationSent` are unchanged).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from guichet_runtime.clock import paris_day
from guichet_runtime.public_holidays import is_working_day
from shared_models import (
    CitizenContact,
    CitizenName,
    NotificationChannel,
    NotificationKind,
    PreferredChannel,
    Referent,
    SupervisorContact,
)

EMAIL, SMS, LETTER = NotificationChannel.EMAIL, NotificationChannel.SMS, NotificationChannel.LETTER
PARIS = ZoneInfo("Europe/Paris")
#: The emails a citizen may answer by email: they carry the file's Reply-To (its routing
#: address at intake's inbound SMTP, docs/notifications.md).
REPLYABLE = frozenset({NotificationKind.REFERENT_MESSAGE})


class Audience(StrEnum):
    """Who reads a message: the citizen, or an agent (référent, supervisor)."""

    CITIZEN = "citoyen"
    AGENT = "agent"


class NotificationStatus(StrEnum):
    """Where a recorded message stands."""

    TO_SEND = "a_envoyer"
    SENT = "envoye"
    #: Every channel of its plan refused it, or kept failing.
    FAILED = "echec"
    #: The citizen gave no contact any channel could use.
    NO_CHANNEL = "canal_indisponible"
    #: Waits for its time (`next_attempt_at`: an appointment's reminder letter, posted so as
    #: to arrive the day before); the dispatcher takes it up then, as one `a_envoyer`.
    PLANNED = "programme"
    #: A planned message taken back before it left (the appointment it reminded of was
    #: cancelled or moved).
    WITHDRAWN = "retire"


class DeliveryOutcome(StrEnum):
    """The outcome of one attempt on one channel."""

    #: Recorded, with its delivery key, before the provider is called; its outcome replaces
    #: it. An attempt left so was cut between the two (the service died): the provider may
    #: hold the message, so it is presented again with the same key (`delivery_key`).
    SENDING = "envoi_en_cours"
    SENT = "envoye"
    #: Retrying cannot help (address or number refused): the next channel is tried.
    REFUSED = "refus_definitif"
    #: The provider is away or answered an error that may pass: retried later.
    TEMPORARY_ERROR = "erreur_temporaire"


# --------------------------------------------------------------------------- channel plan

#: The fallback chain: whatever the preferred channel, the next ones are tried in this order.
FALLBACK: tuple[NotificationChannel, ...] = (EMAIL, SMS, LETTER)
#: Where in the chain each preference starts; a citizen who asked to be phoned gets a letter.
START: dict[PreferredChannel, int] = {
    PreferredChannel.EMAIL: 0,
    PreferredChannel.SMS: 1,
    PreferredChannel.LETTER: 2,
    PreferredChannel.PHONE: 2,
}


class NoPostalAddress(Exception):
    """The citizen gave no street and town: no letter can reach them."""


def channel_plan(citizen: CitizenContact) -> list[NotificationChannel]:
    """The channels to try for a citizen, in order: from the preferred one down the
    fallback chain email → SMS → letter, skipping those the citizen gave no contact for.
    Letters are the floor: 20% of people use no digital channel."""
    reachable = {
        EMAIL: bool(citizen.email),
        SMS: bool(citizen.phone),
        LETTER: bool(citizen.street and citizen.city),
    }
    return [c for c in FALLBACK[START[citizen.preferred_channel] :] if reachable[c]]


def message_plan(
    audience: Audience,
    citizen: CitizenContact | CitizenName,
    required: Sequence[NotificationChannel] | None = None,
) -> list[NotificationChannel]:
    """The plan of one message: agents are written to by email only; a citizen along
    their channel plan, narrowed to `required` channels (in that order) for a kind that
    must go by them when it can (an access code by email or SMS, a decision by letter).
    A citizen known only by name (an agents' event) has no channel."""
    if audience is Audience.AGENT:
        return [EMAIL]
    if not isinstance(citizen, CitizenContact):
        return []
    plan = channel_plan(citizen)
    if required is not None:
        plan = [c for c in required if c in plan] or plan
    return plan


def initial_status(plan: Sequence[NotificationChannel]) -> NotificationStatus:
    """A message with a channel to try is to send; one with none is kept, not lost."""
    return NotificationStatus.TO_SEND if plan else NotificationStatus.NO_CHANNEL


def reachable_within_a_day(citizen: CitizenContact) -> bool:
    """A message that must arrive by tomorrow (an appointment's reminder) can reach the
    citizen: their channel plan has email or SMS (a letter takes days)."""
    return any(channel in (EMAIL, SMS) for channel in channel_plan(citizen))


#: How many working days a letter takes from its posting to the citizen's letter box: La
#: Poste's « lettre verte » is delivered in 3 working days (setting LETTER_DELIVERY_DAYS).
LETTER_DELIVERY_DAYS = 3


def is_postal_working_day(day: dt.date) -> bool:
    """A day the post is counted to carry letters: Monday to Friday, not a public holiday of
    metropolitan France (a Saturday delivery only brings a letter earlier)."""
    return is_working_day(day)


def reminder_letter_posting_day(starts_at: dt.datetime, delivery_days: int) -> dt.date:
    """The day an appointment's reminder letter is posted (Paris calendar) to be in the
    letter box by the day before: `delivery_days` working days before the last working day
    on or before that eve."""
    day = paris_day(starts_at) - dt.timedelta(days=1)
    while not is_postal_working_day(day):
        day -= dt.timedelta(days=1)
    for _ in range(delivery_days):
        day -= dt.timedelta(days=1)
        while not is_postal_working_day(day):
            day -= dt.timedelta(days=1)
    return day


def reminder_letter_posted_at(
    starts_at: dt.datetime, booked_at: dt.datetime, delivery_days: int
) -> dt.datetime | None:
    """When the reminder letter of an appointment booked at `booked_at` leaves: the start
    (Paris time) of its posting day; None when the booking came on that day or later (too
    close for a second letter to arrive in time: the confirmation is the only letter)."""
    day = reminder_letter_posting_day(starts_at, delivery_days)
    if paris_day(booked_at) >= day:
        return None
    return dt.datetime.combine(day, dt.time(), tzinfo=PARIS).astimezone(dt.UTC)


def reminded_by_letter(citizen: CitizenContact) -> bool:
    """A citizen whose appointment reminder goes by letter: reachable by neither email nor
    SMS, with a postal address, and not asking to be phoned (their référent calls them the
    day before instead)."""
    return (
        not reachable_within_a_day(citizen)
        and not wants_a_call(citizen)
        and LETTER in channel_plan(citizen)
    )


def wants_a_call(citizen: CitizenContact) -> bool:
    """A citizen who chose the phone (and gave a number): their référent is asked to call
    them, on top of the letter they receive."""
    return citizen.preferred_channel is PreferredChannel.PHONE and bool(citizen.phone)


def address_block(citizen: CitizenContact) -> tuple[str, ...]:
    """The lines of the citizen's postal address, as a window envelope shows them."""
    if not citizen.street or not citizen.city:
        raise NoPostalAddress("adresse postale incomplète (rue et commune)")
    return (
        f"{citizen.given_name} {citizen.family_name}",
        citizen.street,
        f"{citizen.postcode} {citizen.city.upper()}",
    )


def recipient(channel: NotificationChannel, citizen: CitizenContact) -> str | list[str] | None:
    """The citizen's address on a channel: email address, phone number, postal lines."""
    if channel is EMAIL:
        return citizen.email
    if channel is SMS:
        return citizen.phone
    return list(address_block(citizen))


def recipient_text(to: object) -> str | None:
    """A recipient on one line (a postal address's lines joined with « / »)."""
    if isinstance(to, list):
        return " / ".join(str(line) for line in to)
    return str(to) if to else None


# --------------------------------------------------------------------------- identity


def notification_key(file_id: str, kind: NotificationKind, *qualifiers: str) -> str:
    """A message's identity, `file:kind[:qualifier…]`: the same fact redelivered under a
    new event id finds it already recorded, so nothing is sent twice."""
    return ":".join((file_id, kind.value, *qualifiers))


def call_request_key(notification_id: str) -> str:
    """The référent's call request that goes with a message to a phone-preferring citizen."""
    return f"{notification_id}:appel"


def referent_copy_key(notification_id: str) -> str:
    """The référent's copy of a message to the citizen."""
    return f"{notification_id}:referent"


MAIL_DOMAIN = "guichet-unique.gouv.fr"


def delivery_key(notification_id: str, channel: NotificationChannel) -> str:
    """The key a receiver recognises a message by, recorded before the message is handed to
    it: the `Message-ID` of an email, the `Idempotency-Key` of an SMS or a letter. Stable per
    (message, channel), with no attempt number: a retry after a timeout (the provider may have
    accepted) must present the same key for the provider to answer it from its first answer;
    the next channel of the plan is another key, as it is another message."""
    if channel is EMAIL:
        return f"<{notification_id.replace(':', '.')}@{MAIL_DOMAIN}>"
    return f"{notification_id}/{channel.value}"


# --------------------------------------------------------------------------- failures

MAX_ATTEMPTS = 8  # temporary failures on one channel before falling back to the next
MAX_BACKOFF = dt.timedelta(minutes=5)
LEASE = dt.timedelta(seconds=60)  # a claimed message is retried after this if its sender died


@dataclass(frozen=True)
class Retry:
    """Try the same channel again after `delay`."""

    attempts: int
    delay: dt.timedelta


@dataclass(frozen=True)
class FallBack:
    """Try the next channel of the plan, now."""

    step: int
    channel: NotificationChannel


@dataclass(frozen=True)
class GiveUp:
    """Every channel of the plan failed: the message is `echec`."""

    attempts: int


def backoff(attempts: int) -> dt.timedelta:
    """Wait 2ⁿ seconds after the n-th temporary failure, five minutes at most."""
    return min(dt.timedelta(seconds=2**attempts), MAX_BACKOFF)


def after_failure(
    plan: Sequence[NotificationChannel], step: int, attempts: int, *, permanent: bool
) -> Retry | FallBack | GiveUp:
    """What becomes of a message whose send on `plan[step]` failed, after `attempts`
    earlier failures there: a temporary failure is retried later on the same channel, up
    to MAX_ATTEMPTS; a refusal (or too many failures) falls back to the next channel."""
    attempts += 1
    if not permanent and attempts < MAX_ATTEMPTS:
        return Retry(attempts, backoff(attempts))
    if step + 1 < len(plan):
        return FallBack(step + 1, plan[step + 1])
    return GiveUp(attempts)


# --------------------------------------------------------------------------- the signature


class UnsignedMessage(Exception):
    """A rendered message lacks the référent's name or direct phone."""


#: Who signs a message sent before any référent is named (the one-time access code):
#: the national public-service line, so the message still names a way to reach a person.
GUICHET_DESK = Referent(
    agent_id="guichet",
    name="Le guichet unique des services publics",
    office="Accueil du guichet unique",
    office_id="guichet",
    phone="39 39",
    email="contact@guichet-unique.gouv.fr",
)


def supervision_desk(supervisor: SupervisorContact) -> Referent:
    """Who signs an alert about a file still waiting for its référent: the supervisor."""
    return Referent(
        agent_id=supervisor.supervisor_id,
        name=supervisor.name,
        office="Supervision des référents",
        office_id="supervision",
        phone=supervisor.phone,
        email=supervisor.email,
    )


def signature(referent: Referent, audience: Audience = Audience.CITIZEN) -> str:
    """The signature block of an email or a letter: the référent's name, office, direct
    phone, email and opening hours."""
    # Agents read who is in charge of the file; citizens read who their référent is.
    title = "Votre référent" if audience is Audience.CITIZEN else "Contact pour ce dossier"
    return (
        "\n--\n"
        f"{referent.name}\n"
        f"{title} — {referent.office}\n"
        f"Téléphone direct : {referent.phone}\n"
        f"Courriel : {referent.email}\n"
        + (f"Accueil : {referent.opening_hours}\n" if referent.opening_hours else "")
    )


def sms_signature(referent: Referent) -> str:
    """The short signature of an SMS."""
    return f"\n{referent.name}, {referent.office}, tél. direct {referent.phone}"


def is_signed(text: str, referent: Referent) -> bool:
    """A message is signed when it names the référent and gives their direct phone."""
    return referent.name in text and referent.phone in text


def sign(
    text: str,
    referent: Referent,
    channel: NotificationChannel,
    audience: Audience = Audience.CITIZEN,
) -> str:
    """The référent's signature on a message: appended (short for SMS) unless the text
    already names the référent and gives their direct phone, so never twice."""
    if is_signed(text, referent):
        return text
    block = sms_signature(referent) if channel is SMS else signature(referent, audience)
    return text.rstrip("\n") + ("\n" if block.startswith("\n--") else "") + block


def ensure_signed(referent: Referent, what: str, *texts: str) -> None:
    """Refuse (UnsignedMessage) any output that would reach its reader unsigned."""
    for text in texts:
        if not is_signed(text, referent):
            raise UnsignedMessage(what)


# --------------------------------------------------------------------------- wording


def contact_changes(before: CitizenContact, after: CitizenContact) -> list[str]:
    """What changed in the citizen's contact, in words ("adresse électronique", …)."""
    fields = (
        ("adresse électronique", ("email",)),
        ("numéro de téléphone", ("phone",)),
        ("adresse postale", ("street", "postcode", "city")),
        ("moyen de contact préféré", ("preferred_channel",)),
    )
    return [
        words
        for words, names in fields
        if any(getattr(before, n) != getattr(after, n) for n in names)
    ]


#: Stands for a sealed secret (the access code) in every stored text of a message; the
#: dispatcher puts the secret in its place only in what it hands to the provider.
SECRET_PLACEHOLDER = "[[code-scelle]]"


def reveal(content: dict[str, object], secret: str) -> dict[str, object]:
    """A message's content for one channel with the secret in place of its placeholder."""
    return {
        key: value.replace(SECRET_PLACEHOLDER, secret) if isinstance(value, str) else value
        for key, value in content.items()
    }


def time_in_paris(at: dt.datetime) -> str:
    """A time as the citizen reads it: « 18h45 », Paris time."""
    return at.astimezone(PARIS).strftime("%Hh%M")
