"""Citizen access without an account: a file reference and a one-time code sent by email.
Intake keeps only a hash; the notification service sends the code, signed when a référent
is named."""

from __future__ import annotations

import re

import pytest

from guichet_runtime.refusals import Refused
from intake import domain, projections
from intake.commands.access import issue_access_code, verify_access_code
from intake.commands.files import SubmitFile, submit_file
from intake.schemas import FileIn
from notification import projections as notification
from shared_models import AccessCodeIssued, NotificationKind, ReferentAssigned, topics
from tests.unit.samples import citizen, referent

FORM = {
    "life_event": "naissance",
    "citizen": {
        "given_name": "Awa",
        "family_name": "Diallo",
        "email": "awa.diallo@example.fr",
        "postcode": "93200",
        "preferred_channel": "email",
    },
    "description": "Notre fille est née le 2 novembre.",
}


async def new_file(db, **citizen_overrides) -> str:
    form = FileIn.model_validate({**FORM, "citizen": {**FORM["citizen"], **citizen_overrides}})
    file_id, _ = await submit_file(SubmitFile(form=form), db.uow())
    return file_id


async def issued_codes(db) -> list[AccessCodeIssued]:
    return [e for t, e in await db.outbox_events() if t == topics.ACCESS_CODES]


async def test_a_code_is_emitted_once_and_only_its_hash_is_stored(intake_db):
    file_id = await new_file(intake_db)

    await issue_access_code(file_id, intake_db.uow())

    [event] = await issued_codes(intake_db)
    assert re.fullmatch(r"\d{6}", event.code) and event.citizen.email == "awa.diallo@example.fr"
    assert event.referent is None  # no référent yet: the message goes out unsigned by a person
    [row] = await intake_db.rows("access_codes")
    assert event.code not in (row.code_hash, row.salt) and len(row.code_hash) == 64


async def test_the_right_code_opens_the_file_once(intake_db):
    file_id = await new_file(intake_db)
    await issue_access_code(file_id, intake_db.uow())
    [event] = await issued_codes(intake_db)

    await verify_access_code(file_id, event.code, intake_db.uow())

    with pytest.raises(Refused, match="plus valable"):
        await verify_access_code(file_id, event.code, intake_db.uow())


async def test_wrong_codes_are_counted_then_the_code_dies(intake_db):
    file_id = await new_file(intake_db)
    await issue_access_code(file_id, intake_db.uow())
    [event] = await issued_codes(intake_db)
    wrong = f"{(int(event.code) + 1) % 10**6:06d}"

    messages = []
    for _ in range(domain.ACCESS_CODE_MAX_ATTEMPTS):
        with pytest.raises(Refused) as refused:
            await verify_access_code(file_id, wrong, intake_db.uow())
        messages.append(refused.value.message)

    assert messages[0] == "Code incorrect. Il vous reste 4 essais."
    assert "plus valable" in messages[-1]
    with pytest.raises(Refused, match="plus valable"):
        await verify_access_code(file_id, event.code, intake_db.uow())  # even the right one


async def test_codes_are_limited_and_refused_without_an_email_or_phone(intake_db):
    file_id = await new_file(intake_db)
    for _ in range(domain.ACCESS_CODES_PER_TTL):
        await issue_access_code(file_id, intake_db.uow())
    with pytest.raises(Refused) as too_many:
        await issue_access_code(file_id, intake_db.uow())
    assert too_many.value.status == 429

    by_sms = await new_file(intake_db, email=None, phone="0612345678", preferred_channel="sms")
    await issue_access_code(by_sms, intake_db.uow())  # the code goes out by SMS
    assert [e.citizen.phone for e in await issued_codes(intake_db) if e.file_id == by_sms] == [
        "0612345678"
    ]
    offline = await new_file(
        intake_db,
        email=None,
        preferred_channel="courrier",
        street="3 rue de la Paix",
        city="Saint-Denis",
    )
    with pytest.raises(Refused) as unreachable:
        await issue_access_code(offline, intake_db.uow())
    assert unreachable.value.status == 409 and "numéro de téléphone" in unreachable.value.message
    with pytest.raises(Refused) as unknown:
        await issue_access_code("GU-2026-INCONNU1", intake_db.uow())
    assert unknown.value.status == 404


async def test_once_a_referent_is_named_the_code_message_is_signed(intake_db, notification_db):
    file_id = await new_file(intake_db)
    ref = referent()
    assigned = ReferentAssigned(
        file_id=file_id, referent=ref, rule="proximite", explanation="…", citizen=citizen()
    )
    await projections.on_referent_assigned(
        assigned, intake_db.uow(("intake", str(assigned.event_id)))
    )
    await issue_access_code(file_id, intake_db.uow())
    [event] = await issued_codes(intake_db)
    assert event.referent == ref

    await notification.on_access_code_issued(
        event, notification_db.uow(("notification", str(event.event_id)))
    )

    [row] = await notification_db.rows("notifications")
    assert (
        row.kind == NotificationKind.ACCESS_CODE.value and row.recipient == "awa.diallo@example.fr"
    )
    assert event.code in row.body and ref.name in row.body and ref.phone in row.body
    assert row.subject == f"Votre dossier {file_id} : votre code d'accès"
