"""Notification's pure rules: the plan of a message, what a failed send becomes, the
référent's signature, without a database or a template."""

from __future__ import annotations

import datetime as dt

import pytest

from notification import domain
from notification.domain import (
    EMAIL,
    LETTER,
    SMS,
    Audience,
    FallBack,
    GiveUp,
    NotificationStatus,
    Retry,
)
from shared_models import NotificationKind, PreferredChannel, SupervisorContact
from tests.unit.samples import citizen, referent

ADDRESS = {"street": "12 rue de la République", "city": "Saint-Denis"}


def test_agents_are_written_to_by_email_whatever_the_citizen_prefers():
    letter_only = citizen(preferred_channel=PreferredChannel.LETTER, **ADDRESS)
    assert domain.message_plan(Audience.AGENT, letter_only) == [EMAIL]


def test_a_kind_bound_to_some_channels_keeps_them_when_the_citizen_has_them_else_the_plan():
    reachable = citizen(**ADDRESS)
    assert domain.message_plan(Audience.CITIZEN, reachable, [LETTER]) == [LETTER]
    assert domain.message_plan(Audience.CITIZEN, reachable, [EMAIL, SMS]) == [EMAIL, SMS]
    # No postal address: the decision goes by the channels the citizen has.
    assert domain.message_plan(Audience.CITIZEN, citizen(), [LETTER]) == [EMAIL, SMS]


def test_a_message_without_any_channel_is_kept_not_lost():
    assert domain.initial_status([]) is NotificationStatus.NO_CHANNEL
    assert domain.initial_status([SMS]) is NotificationStatus.TO_SEND


def test_only_a_citizen_who_chose_the_phone_and_gave_a_number_is_called():
    assert domain.wants_a_call(citizen(preferred_channel=PreferredChannel.PHONE, **ADDRESS))
    assert not domain.wants_a_call(citizen(preferred_channel=PreferredChannel.PHONE, phone=None))
    assert not domain.wants_a_call(citizen())


def test_a_postal_recipient_is_the_address_block_on_one_line():
    to = domain.recipient(LETTER, citizen(**ADDRESS))
    assert to == ["Awa Diallo", "12 rue de la République", "93200 SAINT-DENIS"]
    assert domain.recipient_text(to) == "Awa Diallo / 12 rue de la République / 93200 SAINT-DENIS"
    assert domain.recipient_text(None) is None


def test_a_temporary_failure_is_retried_later_with_a_growing_wait_capped_at_five_minutes():
    plan = [EMAIL, SMS]
    assert domain.after_failure(plan, 0, 0, permanent=False) == Retry(1, dt.timedelta(seconds=2))
    assert domain.after_failure(plan, 0, 3, permanent=False) == Retry(4, dt.timedelta(seconds=16))
    assert domain.backoff(9) == dt.timedelta(minutes=5)


def test_a_refusal_or_too_many_failures_fall_back_to_the_next_channel_then_give_up():
    plan = [EMAIL, SMS, LETTER]
    assert domain.after_failure(plan, 0, 0, permanent=True) == FallBack(1, SMS)
    # Eight temporary failures on one channel: the eighth (attempt index 7) falls back.
    assert domain.after_failure(plan, 1, 6, permanent=False) == Retry(
        7, dt.timedelta(minutes=2, seconds=8)
    )
    assert domain.after_failure(plan, 1, 7, permanent=False) == FallBack(2, LETTER)
    assert domain.after_failure(plan, 2, 0, permanent=True) == GiveUp(1)


def test_the_identity_of_a_message_is_its_file_its_kind_and_its_fact():
    kind = NotificationKind.DOCUMENT_REQUESTED
    key = domain.notification_key("GU-1", kind, "req", "doc")
    assert key == "GU-1:document_requested:req:doc"
    assert domain.referent_copy_key(key) == "GU-1:document_requested:req:doc:referent"
    assert domain.call_request_key("GU-1:answer_ready") == "GU-1:answer_ready:appel"


@pytest.mark.parametrize("channel", [EMAIL, SMS, LETTER])
def test_sign_appends_the_referents_direct_contact_once(channel):
    ref = referent()
    signed = domain.sign("Bonjour,\n\nVotre dossier avance.\n", ref, channel)

    assert domain.is_signed(signed, ref)
    assert domain.sign(signed, ref, channel) == signed
    assert (signed.count("\n--\n") == 1) == (channel is not SMS)


def test_the_signature_tells_agents_whose_file_it_is_and_citizens_who_their_referent_is():
    ref = referent()
    assert "Votre référent —" in domain.signature(ref, Audience.CITIZEN)
    assert "Contact pour ce dossier —" in domain.signature(ref, Audience.AGENT)


def test_an_unsigned_output_is_refused_with_what_it_was():
    ref = referent()
    with pytest.raises(domain.UnsignedMessage, match="answer_ready"):
        domain.ensure_signed(ref, "answer_ready (email) pour GU-1", f"{ref.name}", "rien")


def test_the_supervisor_signs_an_alert_about_a_file_without_a_referent():
    boss = SupervisorContact(
        supervisor_id="SUP-93",
        name="Hélène Marchand",
        email="helene.marchand@example.fr",
        phone="01 41 60 00 00",
    )
    desk = domain.supervision_desk(boss)
    assert (desk.name, desk.phone, desk.office) == (
        boss.name,
        boss.phone,
        "Supervision des référents",
    )


def test_times_are_told_in_paris_time():
    assert domain.time_in_paris(dt.datetime(2026, 7, 1, 16, 45, tzinfo=dt.UTC)) == "18h45"
