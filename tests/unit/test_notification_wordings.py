"""What the deadline messages and the letters say, word for word (issue 18 §3): every
expected sentence and date below is written out by hand from the law's wording and the
calendar, never produced by the templates or the date formatting under test."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from notification import domain, letters
from notification.messages import render
from shared_models import NotificationChannel, NotificationKind
from tests.pdfs import pdf_text
from tests.unit.samples import citizen, referent

FILE_ID = "GU-2027-ABCDEFGH"
CAF = "Caisse d'allocations familiales (CAF)"
POSTAL = citizen(street="12 rue de la République", city="Saint-Denis")
#: Received 31 December 2026: two months end on 28 February 2027, breached on 1 March.
DUE = dt.date(2027, 2, 28)
BREACH_DAY = dt.date(2027, 3, 1)


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def text_of(kind: NotificationKind, channel: NotificationChannel, **context) -> str:
    rendered = render(
        kind, channel, file_id=FILE_ID, referent=referent(), citizen=POSTAL, **context
    )
    return flat(rendered.text)


def letter(day: dt.date, kind=NotificationKind.REFERENT_ASSIGNED, **context) -> str:
    """The PDF letter of `kind` dated `day`, as a reader extracts its text."""
    rendered = render(
        kind,
        NotificationChannel.LETTER,
        file_id=FILE_ID,
        referent=referent(),
        citizen=POSTAL,
        **context,
    )
    pdf = letters.render_pdf(
        letters.Letter(
            FILE_ID,
            rendered.subject,
            rendered.text,
            referent(),
            domain.address_block(POSTAL),
            day,
        )
    )
    return flat(pdf_text(pdf))


# ------------------------------------------------------------------ the date in words


@pytest.mark.parametrize(
    ("day", "written"),
    [
        (dt.date(2027, 1, 1), "Le 1er janvier 2027"),  # the first of the month: "1er"
        (dt.date(2027, 2, 28), "Le 28 février 2027"),
        (dt.date(2028, 2, 29), "Le 29 février 2028"),  # leap year
        (dt.date(2027, 3, 1), "Le 1er mars 2027"),
        (dt.date(2027, 8, 15), "Le 15 août 2027"),
        (dt.date(2026, 12, 31), "Le 31 décembre 2026"),
        (dt.date(2027, 5, 2), "Le 2 mai 2027"),
    ],
)
def test_a_letter_is_dated_in_french_words(day, written):
    assert written in letter(day)


# ------------------------------------------------------------------ the référent's warning


def test_the_warning_gives_the_last_day_and_the_days_left_word_for_word():
    context = {
        "agency_label": CAF,
        "due_on": DUE,
        "days_left": 7,
        "rule": "silence_vaut_acceptation",
    }

    email = text_of(NotificationKind.DEADLINE_WARNING, NotificationChannel.EMAIL, **context)
    sms = text_of(NotificationKind.DEADLINE_WARNING, NotificationChannel.SMS, **context)

    assert email.startswith(
        "Bonjour Yasmine Haddad, Pour le dossier GU-2027-ABCDEFGH de Awa Diallo, Caisse "
        "d'allocations familiales (CAF) n'a pas encore répondu. Le délai légal se termine le "
        "28/02/2027 : il reste 7 jour(s). Sans réponse à cette date, la demande sera acceptée "
        "implicitement."
    ), email
    assert sms.startswith(
        "Dossier GU-2027-ABCDEFGH : Caisse d'allocations familiales (CAF) doit répondre avant le "
        "28/02/2027 (7 j)."
    ), sms


def test_a_warning_where_silence_rejects_tells_the_citizen_may_have_to_contest():
    email = text_of(
        NotificationKind.DEADLINE_WARNING,
        NotificationChannel.EMAIL,
        agency_label=CAF,
        due_on=dt.date(2028, 2, 29),
        days_left=15,
        rule="silence_vaut_rejet",
    )

    assert (
        "Le délai légal se termine le 29/02/2028 : il reste 15 jour(s). Sans réponse à cette "
        "date, la demande sera rejetée implicitement : le citoyen devra peut-être contester."
    ) in email


# ------------------------------------------------------------------ the supervisors' alert


def test_the_breach_tells_the_supervisor_the_day_that_passed_and_the_referent():
    context = {
        "agency_label": CAF,
        "due_on": DUE,
        "rule": "silence_vaut_rejet",
        "supervisor_name": "Hélène Marchand",
    }

    email = text_of(NotificationKind.DEADLINE_BREACHED, NotificationChannel.EMAIL, **context)
    sms = text_of(NotificationKind.DEADLINE_BREACHED, NotificationChannel.SMS, **context)

    assert email.startswith(
        "Bonjour Hélène Marchand, Le délai légal de réponse de Caisse d'allocations familiales "
        "(CAF) pour le dossier GU-2027-ABCDEFGH (Awa Diallo) s'est terminé le 28/02/2027 sans "
        "réponse. Le silence vaut rejet : une décision implicite de rejet est enregistrée et le "
        "citoyen en reçoit le courrier, avec les voies de recours. Le référent du dossier est "
        "Yasmine Haddad (France Services Saint-Denis)."
    ), email
    assert sms.startswith(
        "Dossier GU-2027-ABCDEFGH : délai légal de Caisse d'allocations familiales (CAF) dépassé "
        "(28/02/2027)."
    ), sms


# ------------------------------------------------------------------ the citizen's letter


def test_the_implicit_rejection_letter_is_dated_on_the_breach_day_and_gives_the_appeal():
    context = {
        "agency_label": CAF,
        "due_on": DUE,
        "decided_on": BREACH_DAY,
        "accepted": False,
    }

    text = letter(BREACH_DAY, NotificationKind.IMPLICIT_DECISION, **context)
    sms = text_of(NotificationKind.IMPLICIT_DECISION, NotificationChannel.SMS, **context)

    assert "Awa Diallo 12 rue de la République 93200 SAINT-DENIS Le 1er mars 2027" in text
    assert "Objet : Votre dossier GU-2027-ABCDEFGH : décision implicite de l'organisme" in text
    assert (
        "Bonjour Awa Diallo, Vous avez déposé une demande auprès de Caisse d'allocations "
        "familiales (CAF) dans le cadre de votre dossier GU-2027-ABCDEFGH. La loi lui donnait "
        "jusqu'au 28/02/2027 pour vous répondre, et aucune réponse n'est arrivée. Pour cette "
        "démarche, le silence de l'administration vaut rejet : votre demande est donc rejetée "
        "depuis le 01/03/2027. Vous pouvez contester cette décision dans un délai de deux mois : "
        "par un recours gracieux auprès de Caisse d'allocations familiales (CAF), puis, si "
        "besoin, devant le tribunal administratif."
    ) in text, text
    assert sms.startswith(
        "Dossier GU-2027-ABCDEFGH : sans réponse de Caisse d'allocations familiales (CAF) au "
        "28/02/2027, votre demande est rejetée (recours possible sous 2 mois). Un courrier suit."
    ), sms


def test_the_implicit_acceptance_says_since_when_the_request_is_accepted():
    email = text_of(
        NotificationKind.IMPLICIT_DECISION,
        NotificationChannel.EMAIL,
        agency_label="Direction générale des Finances publiques (DGFiP)",
        due_on=dt.date(2028, 2, 29),
        decided_on=dt.date(2028, 3, 1),
        accepted=True,
    )

    assert (
        "La loi lui donnait jusqu'au 29/02/2028 pour vous répondre, et aucune réponse n'est "
        "arrivée. Pour cette démarche, le silence de l'administration vaut acceptation : votre "
        "demande est donc acceptée depuis le 01/03/2028. Ce courrier vous permet de le faire "
        "valoir ; vous pouvez aussi demander à Direction générale des Finances publiques (DGFiP) "
        "une attestation de cette décision implicite."
    ) in email, email
