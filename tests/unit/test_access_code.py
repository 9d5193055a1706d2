"""Citizen access without an account: a file reference and a one-time code sent by email.
Intake keeps only a hash; the notification service sends the code, signed when a référent
is named."""

from __future__ import annotations

import base64
import json
import re

import pytest

from guichet_runtime.refusals import Refused
from guichet_runtime.sealing import CannotOpen, KeyMissing, Keyring, new_key
from intake import projections
from intake.bootstrap import IntakeSettings
from intake.bootstrap import bootstrap as intake_bootstrap
from intake.commands.access import issue_access_code, verify_access_code
from intake.commands.files import SubmitFile, submit_file
from intake.schemas import FileIn
from notification import projections as notification
from notification.bootstrap import NotificationSettings
from notification.bootstrap import bootstrap as notification_bootstrap
from notification.channels import Outgoing
from notification.dispatch import dispatch_pending
from notification.domain import SECRET_PLACEHOLDER
from shared_models import (
    AccessCodeIssued,
    NotificationChannel,
    NotificationKind,
    ReferentAssigned,
    topics,
)
from tests.unit.samples import KEYRING, citizen, opened_code, referent

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

    await issue_access_code(file_id, intake_db.uow(), KEYRING)

    [event] = await issued_codes(intake_db)
    assert (
        re.fullmatch(r"\d{6}", opened_code(event))
        and event.citizen.email == "awa.diallo@example.fr"
    )
    assert event.referent is None  # no référent yet: the message goes out unsigned by a person
    [row] = await intake_db.rows("access_codes")
    assert opened_code(event) not in (row.code_hash, row.salt) and len(row.code_hash) == 64


async def test_the_right_code_opens_the_file_once(intake_db):
    file_id = await new_file(intake_db)
    await issue_access_code(file_id, intake_db.uow(), KEYRING)
    [event] = await issued_codes(intake_db)

    await verify_access_code(file_id, opened_code(event), intake_db.uow())

    with pytest.raises(Refused, match="plus valable"):
        await verify_access_code(file_id, opened_code(event), intake_db.uow())


async def test_wrong_codes_are_counted_then_the_code_dies(intake_db):
    file_id = await new_file(intake_db)
    await issue_access_code(file_id, intake_db.uow(), KEYRING)
    [event] = await issued_codes(intake_db)
    wrong = f"{(int(opened_code(event)) + 1) % 10**6:06d}"

    messages = []
    for _ in range(5):  # five attempts per code
        with pytest.raises(Refused) as refused:
            await verify_access_code(file_id, wrong, intake_db.uow())
        messages.append(refused.value.message)

    assert messages[0] == "Code incorrect. Il vous reste 4 essais."
    assert "plus valable" in messages[-1]
    with pytest.raises(Refused, match="plus valable"):
        await verify_access_code(file_id, opened_code(event), intake_db.uow())  # even the right one


async def test_codes_are_limited_and_refused_without_an_email_or_phone(intake_db):
    file_id = await new_file(intake_db)
    for _ in range(3):  # three codes per file within 15 minutes
        await issue_access_code(file_id, intake_db.uow(), KEYRING)
    with pytest.raises(Refused) as too_many:
        await issue_access_code(file_id, intake_db.uow(), KEYRING)
    assert too_many.value.status == 429

    by_sms = await new_file(intake_db, email=None, phone="0612345678", preferred_channel="sms")
    await issue_access_code(by_sms, intake_db.uow(), KEYRING)  # the code goes out by SMS
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
        await issue_access_code(offline, intake_db.uow(), KEYRING)
    assert unreachable.value.status == 409 and "numéro de téléphone" in unreachable.value.message
    with pytest.raises(Refused) as unknown:
        await issue_access_code("GU-2026-INCONNU1", intake_db.uow(), KEYRING)
    assert unknown.value.status == 404


class RecordingChannel:
    """A provider that keeps what it is handed."""

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    async def send(self, outgoing: Outgoing) -> str:
        self.sent.append(outgoing)
        return f"ref-{len(self.sent)}"


async def every_stored_value(db) -> list[str]:
    """Every value of every column of every table of a service's database, as text."""
    values = []
    for table in db.tables.metadata.sorted_tables:
        for row in await db.rows(table):
            values += [str(v) for v in row if v is not None]
    return values


async def test_once_a_referent_is_named_the_code_message_is_signed(intake_db, notification_db):
    file_id = await new_file(intake_db)
    ref = referent()
    assigned = ReferentAssigned(
        file_id=file_id, referent=ref, rule="proximite", explanation="…", citizen=citizen()
    )
    await projections.on_referent_assigned(
        assigned, intake_db.uow(("intake", str(assigned.event_id)))
    )
    await issue_access_code(file_id, intake_db.uow(), KEYRING)
    [event] = await issued_codes(intake_db)
    assert event.referent == ref
    code = opened_code(event)

    await notification.on_access_code_issued(
        event, notification_db.uow(("notification", str(event.event_id)))
    )

    [row] = await notification_db.rows("notifications")
    assert (
        row.kind == NotificationKind.ACCESS_CODE.value and row.recipient == "awa.diallo@example.fr"
    )
    # Stored without the code: the texts hold a placeholder, the code stays sealed.
    assert SECRET_PLACEHOLDER in row.body and ref.name in row.body and ref.phone in row.body
    assert not any(code in value for value in await every_stored_value(notification_db))
    assert row.subject == f"Votre dossier {file_id} : votre code d'accès"

    email = RecordingChannel()
    assert (
        await dispatch_pending(
            notification_db.uow, {NotificationChannel.EMAIL: email}, keyring=KEYRING
        )
        == 1
    )

    [sent] = email.sent
    assert re.search(rf"^\s+{code}\s*$", sent.content["text"], re.MULTILINE)
    assert code in sent.content["html"] and SECRET_PLACEHOLDER not in sent.content["html"]
    assert ref.name in sent.content["text"]
    # Sent: nothing in notification's database contains the code, nor opens to it.
    [row] = await notification_db.rows("notifications")
    assert row.status == "envoye" and row.sealed_secret is None
    assert not any(code in value for value in await every_stored_value(notification_db))


async def test_the_code_never_leaves_intake_in_plaintext(intake_db):
    file_id = await new_file(intake_db)
    await issue_access_code(file_id, intake_db.uow(), KEYRING)
    [event] = await issued_codes(intake_db)
    code = opened_code(event)

    [row] = [r for r in await intake_db.outbox() if r.topic == topics.ACCESS_CODES]
    assert code not in row.payload
    assert json.loads(row.payload)["sealed_code"]["key_id"] == KEYRING.current_id
    assert not any(code in value for value in await every_stored_value(intake_db))

    other = Keyring.from_text(new_key(), name="ACCESS_CODE_KEY")
    with pytest.raises(CannotOpen):
        other.open(event.sealed_code, AccessCodeIssued.sealing_context(file_id))
    with pytest.raises(CannotOpen):  # copied into another file's event: does not open
        KEYRING.open(event.sealed_code, AccessCodeIssued.sealing_context("GU-2026-AUTRE001"))
    tampered = event.sealed_code.model_copy(
        update={"ciphertext": event.sealed_code.ciphertext[:-2] + "AA"}
    )
    with pytest.raises(CannotOpen):
        KEYRING.open(tampered, AccessCodeIssued.sealing_context(file_id))


async def test_a_code_notification_cannot_open_is_given_up_and_forgotten(
    intake_db, notification_db
):
    file_id = await new_file(intake_db)
    await issue_access_code(file_id, intake_db.uow(), KEYRING)
    [event] = await issued_codes(intake_db)
    await notification.on_access_code_issued(
        event, notification_db.uow(("notification", str(event.event_id)))
    )
    email, sms = RecordingChannel(), RecordingChannel()
    wrong = Keyring.from_text(new_key(), name="ACCESS_CODE_KEY")

    channels = {NotificationChannel.EMAIL: email, NotificationChannel.SMS: sms}
    assert await dispatch_pending(notification_db.uow, channels, keyring=wrong) == 0

    assert email.sent == [] and sms.sent == []
    [row] = await notification_db.rows("notifications")
    assert row.status == "echec" and row.sealed_secret is None


def test_keys_rotate_and_no_service_runs_without_one(tmp_path):
    old, new = new_key(), new_key()
    sealed_before = Keyring.from_text(old, name="K").seal("123456", "ctx")
    reader = Keyring.from_text(new, old, name="K")  # notification first: new key, old kept
    assert reader.open(sealed_before, "ctx") == "123456"
    assert reader.open(Keyring.from_text(new, name="K").seal("654321", "ctx"), "ctx") == "654321"
    with pytest.raises(CannotOpen):
        Keyring.from_text(new, name="K").open(sealed_before, "ctx")  # old key dropped
    with pytest.raises(ValueError, match="32 bytes"):
        Keyring.from_text(base64.b64encode(b"short").decode(), name="K")

    db = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    with pytest.raises(KeyMissing, match="ACCESS_CODE_KEY is not set"):
        intake_bootstrap(IntakeSettings(database_url=db))
    with pytest.raises(KeyMissing, match="ACCESS_CODE_KEY is not set"):
        notification_bootstrap(NotificationSettings(database_url=db))
