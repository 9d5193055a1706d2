"""Messages to citizens are always signed by their référent, with a direct line."""

from __future__ import annotations

import pytest
from jinja2 import UndefinedError

from notification import messages
from notification.messages import UnsignedMessage, compose
from shared_models import NotificationKind
from tests.unit.samples import citizen, referent

FILE_ID = "GU-2025-ABCDEFGH"
ANSWER_WITHOUT_SIGNATURE = (
    "Bonjour Awa Diallo,\n\nChacun des organismes concernés a répondu : la CAF vous accorde le RSA.\n"
)
CONTEXT = {
    NotificationKind.REFERENT_ASSIGNED: {},
    NotificationKind.ANSWER_READY: {"text": ANSWER_WITHOUT_SIGNATURE},
    NotificationKind.REFERENT_CHANGED: {
        "previous_referent": referent(agent_id="AG-93-01-1", name="Karim Benali"),
        "reason": "Nous ne parvenons pas à nous comprendre.",
        "rule": "changement_demande",
    },
    NotificationKind.AGENT_HANDOVER: {
        "previous_referent": referent(agent_id="AG-93-01-1", name="Karim Benali"),
        "reason": "Nous ne parvenons pas à nous comprendre.",
        "rule": "changement_demande",
    },
    NotificationKind.ACCESS_CODE: {"code": "428193", "expires_at_paris": "18h45"},
}


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
    signed = f"Bonjour,\n\nVotre réponse.\n\n{ref.name}\n{ref.office}\nTéléphone direct : {ref.phone}\n"

    _, body = compose(
        NotificationKind.ANSWER_READY, file_id=FILE_ID, referent=ref, citizen=citizen(), text=signed
    )

    assert body.rstrip("\n") == signed.rstrip("\n")
    assert body.count(ref.phone) == 1


def test_a_template_variable_that_is_missing_fails_loudly():
    with pytest.raises(UndefinedError):
        compose(NotificationKind.ANSWER_READY, file_id=FILE_ID, referent=referent(), citizen=citizen())


def test_an_answer_whose_text_lacks_the_referent_is_refused_when_the_signature_is_lost(monkeypatch):
    # The answer text below names nobody; only the signature could add the référent.
    # Break the signature: the message must not go out unsigned.
    monkeypatch.setattr(messages, "signature", lambda _referent: "")
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
    monkeypatch.setattr(messages, "signature", lambda _referent: "")

    with pytest.raises(UnsignedMessage):
        compose(NotificationKind.REFERENT_ASSIGNED, file_id=FILE_ID, referent=referent(), citizen=citizen())


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


@pytest.mark.parametrize("rule", ["changement_demande", "reaffectation_superviseur", "suppleance", "retour", "depart"])
def test_every_kind_of_change_is_explained_and_signed(rule):
    before, after = referent(agent_id="AG-1", name="Karim Benali"), referent()
    _, body = compose(
        NotificationKind.REFERENT_CHANGED, file_id=FILE_ID, referent=after, citizen=citizen(),
        previous_referent=before, reason="Karim Benali est absent(e) jusqu'au 12/12/2026 inclus.", rule=rule,
    )
    assert after.name in body and after.phone in body
    assert ("demandé" in body) == (rule == "changement_demande")
    assert ("12/12/2026" in body)


def test_only_the_access_code_may_go_out_before_a_referent_is_named():
    subject, body = compose(
        NotificationKind.ACCESS_CODE, file_id=FILE_ID, referent=None, citizen=citizen(),
        **CONTEXT[NotificationKind.ACCESS_CODE],
    )
    assert "428193" in body and "guichet unique" in body and FILE_ID in subject
    with pytest.raises(UnsignedMessage):
        compose(NotificationKind.REFERENT_ASSIGNED, file_id=FILE_ID, referent=None, citizen=citizen())
