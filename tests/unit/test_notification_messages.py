"""Messages are always signed by the référent, with a direct line, on every channel:
every template of every kind is rendered on email (text and HTML), SMS and the PDF
letter (read back with a real PDF reader)."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from jinja2 import UndefinedError

from notification import domain, letters, messages
from notification.domain import GUICHET_DESK, UnsignedMessage
from notification.messages import compose, render
from shared_models import AGENCY_LABELS, NotificationChannel, NotificationKind, RequestedDocument
from tests.pdfs import pdf_text
from tests.unit.samples import APPOINTMENT_CONTEXTS, citizen, referent

FILE_ID = "GU-2025-ABCDEFGH"
ANSWER_WITHOUT_SIGNATURE = (
    "Bonjour Awa Diallo,\n\n"
    "Chacun des organismes concernés a répondu : la CAF vous accorde le RSA.\n"
)
CHANGE = {
    "previous_referent": referent(agent_id="AG-93-01-1", name="Karim Benali"),
    "reason": "Nous ne parvenons pas à nous comprendre.",
    "rule": "changement_demande",
}
PROMISE = {"received_at": "27/11/2026", "last_day": "01/12/2026"}
CONTEXT = APPOINTMENT_CONTEXTS | {
    NotificationKind.REFERENT_ASSIGNED: {},
    NotificationKind.ANSWER_READY: {"text": ANSWER_WITHOUT_SIGNATURE},
    NotificationKind.REFERENT_CHANGED: CHANGE,
    NotificationKind.AGENT_HANDOVER: CHANGE,
    NotificationKind.CALL_REQUESTED: {"about": "Votre dossier : la réponse coordonnée est prête"},
    NotificationKind.THANKS_RECEIVED: {"message": "Merci pour votre écoute et votre patience."},
    NotificationKind.DOCUMENT_REQUESTED: {
        "document": RequestedDocument(
            code="attestation_salaire", label="Attestation de salaire de l'employeur"
        ),
        "agency_label": AGENCY_LABELS["cpam"],
        "for_referent": False,
    },
    NotificationKind.DEADLINE_WARNING: {
        "agency_label": AGENCY_LABELS["caf"],
        "due_on": dt.date(2026, 12, 31),
        "days_left": 7,
        "rule": "silence_vaut_acceptation",
    },
    NotificationKind.DEADLINE_BREACHED: {
        "agency_label": AGENCY_LABELS["caf"],
        "due_on": dt.date(2026, 12, 31),
        "rule": "silence_vaut_rejet",
        "supervisor_name": "Hélène Marchand",
    },
    NotificationKind.MESSAGE_REMINDER: PROMISE,
    NotificationKind.MESSAGE_OVERDUE: {**PROMISE, "supervisor_name": "Hélène Marchand"},
    NotificationKind.SUPERVISOR_ALERT: {
        "supervisor_name": "Hélène Marchand",
        "reason": "Aucun agent n'a de place pour ce nouveau dossier.",
        "urgent": True,
        "departement": "93",
        "life_event_label": "Perte d'emploi",
    },
    NotificationKind.IMPLICIT_DECISION: {
        "agency_label": AGENCY_LABELS["caf"],
        "due_on": dt.date(2026, 12, 31),
        "decided_on": dt.date(2027, 1, 1),
        "accepted": False,
    },
    NotificationKind.ACCESS_CODE: {
        "code": "428193",
        "expires_at_paris": "18h45",
        "referent_named": True,
    },
    NotificationKind.REFERENT_MESSAGE: {
        "text": "Bonjour, pouvez-vous m'envoyer votre dernier avis d'imposition ?"
    },
    NotificationKind.CONTACT_CHANGED_NOTICE: {
        "changes": ["adresse électronique", "moyen de contact préféré"],
        "changed_at_paris": "10h12",
        "referent_named": True,
    },
}
# A name and phone the templates cannot contain by chance, with characters HTML escapes.
SIGNER = referent(
    name="Bérénice N'Diaye-Ortiz", phone="01 23 45 67 89", office="France Services Bobigny"
)
POSTAL = citizen(street="12 rue de la République", city="Saint-Denis")


@pytest.mark.parametrize("channel", list(NotificationChannel))
@pytest.mark.parametrize("kind", list(NotificationKind))
def test_every_template_on_every_channel_carries_the_referents_name_and_direct_phone(kind, channel):
    rendered = render(
        kind, channel, file_id=FILE_ID, referent=SIGNER, citizen=POSTAL, **CONTEXT[kind]
    )

    outputs = [rendered.text]
    if channel is NotificationChannel.EMAIL:
        assert rendered.html is not None and rendered.html.startswith("<!DOCTYPE html>")
        outputs.append(html.unescape(rendered.html))
    if channel is NotificationChannel.LETTER:
        pdf = letters.render_pdf(
            letters.Letter(
                FILE_ID,
                rendered.subject,
                rendered.text,
                SIGNER,
                domain.address_block(POSTAL),
                dt.date(2026, 3, 1),
            )
        )
        outputs.append(pdf_text(pdf))
    for output in outputs:
        assert SIGNER.name in output and SIGNER.phone in output, (kind, channel, output)
    if channel is NotificationChannel.SMS:
        assert len(rendered.text) <= 480  # three SMS segments at most


def test_the_letter_has_the_address_block_date_subject_and_the_referents_block():
    rendered = render(
        NotificationKind.REFERENT_ASSIGNED,
        NotificationChannel.LETTER,
        file_id=FILE_ID,
        referent=SIGNER,
        citizen=POSTAL,
    )
    text = pdf_text(
        letters.render_pdf(
            letters.Letter(
                FILE_ID,
                rendered.subject,
                rendered.text,
                SIGNER,
                domain.address_block(POSTAL),
                dt.date(2026, 3, 1),
            )
        )
    )

    assert "Awa Diallo\n12 rue de la République\n93200 SAINT-DENIS" in text
    assert (
        f"Votre référent : {SIGNER.name}" in text and f"Téléphone direct : {SIGNER.phone}" in text
    )
    assert "Le 1er mars 2026" in text
    assert f"Objet : Votre dossier {FILE_ID} : {SIGNER.name} est votre référent" in text


def test_a_letter_needs_a_street_and_a_town():
    with pytest.raises(domain.NoPostalAddress):
        domain.address_block(citizen())


def test_characters_outside_the_pdf_fonts_are_reduced_not_fatal():
    assert letters.printable("Łukasz Żółw — 12 €") == "Lukasz Zólw — 12 €"


def test_an_email_whose_html_would_lose_the_signature_is_refused(monkeypatch):
    # A layout that forgets the signature block; the text part is still signed.
    env = messages.html_env()
    original = env.get_template
    monkeypatch.setattr(
        env,
        "get_template",
        lambda name: (
            env.from_string("{{ content }}") if name == "email.html.j2" else original(name)
        ),
    )
    with pytest.raises(UnsignedMessage, match="email"):
        render(
            NotificationKind.ANSWER_READY,
            NotificationChannel.EMAIL,
            file_id=FILE_ID,
            referent=SIGNER,
            citizen=POSTAL,
            text="Bonjour, voici la réponse.",
        )


def test_the_answer_carries_the_survey_link_on_every_channel():
    for channel in NotificationChannel:
        rendered = render(
            NotificationKind.ANSWER_READY,
            channel,
            file_id=FILE_ID,
            referent=SIGNER,
            citizen=POSTAL,
            text="Bonjour, voici la réponse.",
        )
        assert f"https://guichet-unique.gouv.fr/dossiers/{FILE_ID}" in rendered.text


def test_every_kind_of_notification_has_a_context_here():
    assert set(CONTEXT) == set(NotificationKind)


@pytest.mark.parametrize("kind", list(NotificationKind))
def test_every_message_has_a_subject_and_a_body_signed_with_a_direct_contact(kind):
    ref = referent()

    subject, body = compose(kind, file_id=FILE_ID, referent=ref, citizen=citizen(), **CONTEXT[kind])

    assert subject.strip() and FILE_ID in subject
    assert ref.name in body
    assert ref.office in body
    assert ref.phone in body


def test_the_referent_assigned_message_names_the_referent_in_its_subject():
    subject, body = compose(
        NotificationKind.REFERENT_ASSIGNED, file_id=FILE_ID, referent=referent(), citizen=citizen()
    )

    assert subject == f"Votre dossier {FILE_ID} : Yasmine Haddad est votre référent"
    assert body.startswith("Bonjour Awa Diallo,")


def test_an_answer_that_already_carries_the_signature_is_not_signed_twice():
    ref = referent()
    signed = (
        f"Bonjour,\n\nVotre réponse.\n\n{ref.name}\n{ref.office}\nTéléphone direct : {ref.phone}\n"
    )

    _, body = compose(
        NotificationKind.ANSWER_READY, file_id=FILE_ID, referent=ref, citizen=citizen(), text=signed
    )

    assert body.startswith(signed)  # then the survey's invitation
    assert body.count(ref.phone) == 1


def test_a_template_variable_that_is_missing_fails_loudly():
    with pytest.raises(UndefinedError):
        compose(
            NotificationKind.ANSWER_READY, file_id=FILE_ID, referent=referent(), citizen=citizen()
        )


def test_an_answer_whose_text_lacks_the_referent_is_refused_when_the_signature_is_lost(monkeypatch):
    # The answer text below names nobody; only the signature could add the référent.
    # Break the signature: the message must not go out unsigned.
    monkeypatch.setattr(domain, "signature", lambda _referent, _audience="citoyen": "")
    ref = referent(name="Bérénice Lefèvre-Ortiz")
    assert ref.name not in ANSWER_WITHOUT_SIGNATURE

    with pytest.raises(UnsignedMessage, match=FILE_ID):
        compose(
            NotificationKind.ANSWER_READY,
            file_id=FILE_ID,
            referent=ref,
            citizen=citizen(),
            text=ANSWER_WITHOUT_SIGNATURE,
        )


def test_a_referent_assigned_message_without_its_direct_phone_is_refused(monkeypatch):
    # The template names the référent but never gives the phone: only the signature does.
    monkeypatch.setattr(domain, "signature", lambda _referent, _audience="citoyen": "")

    with pytest.raises(UnsignedMessage):
        compose(
            NotificationKind.REFERENT_ASSIGNED,
            file_id=FILE_ID,
            referent=referent(),
            citizen=citizen(),
        )


def test_a_text_giving_the_phone_but_not_the_name_is_signed_rather_than_refused():
    ref = referent()

    _, body = compose(
        NotificationKind.ANSWER_READY,
        file_id=FILE_ID,
        referent=ref,
        citizen=citizen(),
        text=f"Pour toute question, appelez le {ref.phone}.",
    )

    assert ref.name in body


@pytest.mark.parametrize(
    "rule", ["changement_demande", "reaffectation_superviseur", "suppleance", "retour", "depart"]
)
def test_every_kind_of_change_is_explained_and_signed(rule):
    before, after = referent(agent_id="AG-1", name="Karim Benali"), referent()
    _, body = compose(
        NotificationKind.REFERENT_CHANGED,
        file_id=FILE_ID,
        referent=after,
        citizen=citizen(),
        previous_referent=before,
        reason="Karim Benali est absent(e) jusqu'au 12/12/2026 inclus.",
        rule=rule,
    )
    assert after.name in body and after.phone in body
    assert ("demandé" in body) == (rule == "changement_demande")
    assert "12/12/2026" in body


@pytest.mark.parametrize("for_referent", [False, True])
def test_a_document_request_names_the_document_the_agency_and_the_referent(for_referent):
    ref = referent()
    context = {**CONTEXT[NotificationKind.DOCUMENT_REQUESTED], "for_referent": for_referent}
    _, body = compose(
        NotificationKind.DOCUMENT_REQUESTED,
        file_id=FILE_ID,
        referent=ref,
        citizen=citizen(),
        **context,
    )
    assert "Attestation de salaire de l'employeur" in body and AGENCY_LABELS["cpam"] in body
    assert ref.name in body and ref.phone in body
    assert ("Envoyez-la depuis votre dossier" in body) != for_referent


@pytest.mark.parametrize("channel", ["email", "sms"])
@pytest.mark.parametrize("for_referent", [False, True])
def test_a_document_asked_again_says_the_first_was_incomplete_and_the_clock_restarts(
    for_referent, channel
):
    ref = referent()
    context = {
        **CONTEXT[NotificationKind.DOCUMENT_REQUESTED],
        "for_referent": for_referent,
        "again": True,
        "reason": "Pièce incomplète : la page 2 de l'attestation manque.",
    }
    text = render(
        NotificationKind.DOCUMENT_REQUESTED,
        NotificationChannel(channel),
        file_id=FILE_ID,
        referent=ref,
        citizen=citizen(),
        **context,
    ).text
    assert "incomplète" in text and "Attestation de salaire de l'employeur" in text
    assert ref.name in text
    if channel == "email":
        assert "la page 2 de l'attestation manque" in text
        assert ("repartira" in text) and ("Envoyez-la depuis votre dossier" in text) != for_referent


def test_the_access_code_sent_before_a_referent_is_named_gives_the_public_service_line():
    subject, body = compose(
        NotificationKind.ACCESS_CODE,
        file_id=FILE_ID,
        referent=GUICHET_DESK,
        citizen=citizen(),
        **{**CONTEXT[NotificationKind.ACCESS_CODE], "referent_named": False},
    )
    assert "428193" in body and FILE_ID in subject
    assert "Votre référent vous sera présenté" in body and "39 39" in body


# ------------------------------------------------- the answer's personal word, the desk's messages
WORD = (
    "Je sais que ces semaines ont été difficiles : passez me voir quand vous voulez,"
    " sans rendez-vous."
)


def answer_with_word(word: str | None) -> str:
    """The answer as the assignment service composes it."""
    from assignment.domain import compose_answer
    from shared_models import AgencyDecision, Decision

    granted = AgencyDecision(
        agency="caf",
        decision=Decision.GRANTED,
        summary="Le RSA vous est accordé.",
        amount_eur=607.75,
        start_date=dt.date(2026, 12, 1),
        agency_reference="CAF-1",
    )
    return compose_answer(FILE_ID, "Perte d'emploi", POSTAL, [granted], SIGNER_WITH_HOURS, word)


SIGNER_WITH_HOURS = SIGNER.model_copy(
    update={"opening_hours": "Du lundi au vendredi, 9h-12h et 14h-17h"}
)


@pytest.mark.parametrize("channel", list(NotificationChannel))
def test_the_personal_word_reaches_the_citizen_on_every_channel_or_is_announced_by_sms(channel):
    rendered = render(
        NotificationKind.ANSWER_READY,
        channel,
        file_id=FILE_ID,
        referent=SIGNER_WITH_HOURS,
        citizen=POSTAL,
        text=answer_with_word(WORD),
        personal_word=WORD,
    )
    bare = render(
        NotificationKind.ANSWER_READY,
        channel,
        file_id=FILE_ID,
        referent=SIGNER_WITH_HOURS,
        citizen=POSTAL,
        text=answer_with_word(None),
        personal_word=None,
    )

    if channel is NotificationChannel.SMS:
        assert "Un mot de votre référent vous attend dans votre espace." in rendered.text
        assert "Un mot de votre référent" not in bare.text
        assert len(rendered.text) <= 480
        return
    # The amount is written with a no-break space before €; text extracted from a PDF
    # reads it as a plain space.
    outputs = [(rendered.text, "607,75\u00a0€")]
    if channel is NotificationChannel.EMAIL:
        outputs.append((html.unescape(rendered.html), "607,75\u00a0€"))
    else:
        outputs.append(
            (
                pdf_text(
                    letters.render_pdf(
                        letters.Letter(
                            FILE_ID,
                            rendered.subject,
                            rendered.text,
                            SIGNER_WITH_HOURS,
                            domain.address_block(POSTAL),
                            dt.date(2026, 12, 1),
                        )
                    )
                ).replace("\n", " "),
                "607,75 €",
            )
        )
    for output, amount in outputs:
        assert WORD in output, (channel, output)
        assert amount in output and "01/12/2026" in output
    assert WORD not in bare.text


@pytest.mark.parametrize("channel", [NotificationChannel.EMAIL, NotificationChannel.LETTER])
def test_the_signature_block_gives_the_email_and_the_offices_opening_hours(channel):
    rendered = render(
        NotificationKind.REFERENT_ASSIGNED,
        channel,
        file_id=FILE_ID,
        referent=SIGNER_WITH_HOURS,
        citizen=POSTAL,
    )

    outputs = [rendered.text]
    if channel is NotificationChannel.EMAIL:
        outputs.append(
            re.sub(r"<[^>]+>", "", html.unescape(rendered.html))
        )  # the text a reader sees
    else:
        outputs.append(
            pdf_text(
                letters.render_pdf(
                    letters.Letter(
                        FILE_ID,
                        rendered.subject,
                        rendered.text,
                        SIGNER_WITH_HOURS,
                        domain.address_block(POSTAL),
                        dt.date(2026, 12, 1),
                    )
                )
            )
        )
    for output in outputs:
        assert f"Courriel : {SIGNER.email}" in output, output
        assert "Accueil : Du lundi au vendredi, 9h-12h et 14h-17h" in output, output


def test_a_long_message_from_the_referent_is_cut_in_an_sms_with_a_link_to_the_rest():
    long = "Voici ce que j'ai appris de la CAF. " * 40

    sms = render(
        NotificationKind.REFERENT_MESSAGE,
        NotificationChannel.SMS,
        file_id=FILE_ID,
        referent=SIGNER,
        citizen=POSTAL,
        text=long,
    )
    mail = render(
        NotificationKind.REFERENT_MESSAGE,
        NotificationChannel.EMAIL,
        file_id=FILE_ID,
        referent=SIGNER,
        citizen=POSTAL,
        text=long,
    )

    assert len(sms.text) <= 480 and f"/dossiers/{FILE_ID}" in sms.text
    assert long.strip() in mail.text  # the whole message by email and letter
    assert mail.subject == f"Votre dossier {FILE_ID} : un message de {SIGNER.name}"
