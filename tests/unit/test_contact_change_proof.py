"""Issue 12's attack on contact details, over HTTP: an outsider puts their own email on a
file, then asks for an access code, which would go to them. Changing the contact now needs
the proof a verified code gave (bound to the file, short-lived), and the contact left
behind is told of the change, signed by the référent."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from guichet_runtime.errors import install_french_validation
from guichet_runtime.refusals import install_refusals
from intake import api as intake_api
from intake import projections
from intake.commands.files import SubmitFile, submit_file
from intake.schemas import FileIn
from notification import projections as notification
from notification.domain import GUICHET_DESK
from shared_models import (
    AccessCodeIssued,
    ContactPreferencesChanged,
    NotificationKind,
    ReferentAssigned,
)
from tests.unit.samples import AWA_BIRTH_FORM, KEYRING, citizen, opened_code, referent

FORM = AWA_BIRTH_FORM
OUTSIDER = {"email": "intrus@example.com", "postcode": "93200", "preferred_channel": "email"}
NEEDED = (
    "Pour modifier vos coordonnées, ouvrez d'abord votre dossier avec le code d'accès reçu "
    "par courriel ou SMS."
)


async def new_file(db) -> str:
    file_id, _ = await submit_file(SubmitFile(form=FileIn.model_validate(FORM)), db.uow())
    return file_id


@pytest.fixture
async def client(intake_db):
    app = FastAPI()
    install_french_validation(app)
    install_refusals(app)
    app.include_router(intake_api.router(intake_db, KEYRING))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def events(db, cls) -> list:
    return [e for _, e in await db.outbox_events() if isinstance(e, cls)]


async def proof_over_http(client, db, file_id: str) -> str:
    """What the pages do: ask for a code, type the code received, keep the proof."""
    assert (await client.post(f"/api/files/{file_id}/access-codes")).status_code == 202
    code = opened_code((await events(db, AccessCodeIssued))[-1])
    verified = await client.post(f"/api/files/{file_id}/access-codes/verify", json={"code": code})
    assert verified.status_code == 200, verified.text
    return verified.json()["proof"]


async def test_an_outsider_cannot_put_their_email_on_a_file(client, intake_db):
    file_id = await new_file(intake_db)
    other_file = await new_file(intake_db)
    other_proof = await proof_over_http(client, intake_db, other_file)
    url = f"/api/files/{file_id}/contact-preferences"

    anonymous = await client.put(url, json=OUTSIDER)
    made_up = await client.put(url, json=OUTSIDER, headers={"X-Access-Proof": "devine"})
    borrowed = await client.put(url, json=OUTSIDER, headers={"X-Access-Proof": other_proof})

    for refused in (anonymous, made_up, borrowed):
        assert refused.status_code == 401 and refused.json()["kind"] == "unauthenticated"
    assert anonymous.json()["message"] == NEEDED
    assert "demandez un nouveau code" in made_up.json()["message"]
    assert await events(intake_db, ContactPreferencesChanged) == []
    [record] = await intake_db.rows("files", intake_db.tables.files.c.file_id == file_id)
    assert record.citizen["email"] == "awa@example.fr"
    # The code the outsider then asks for goes to the citizen, not to them.
    assert (await client.post(f"/api/files/{file_id}/access-codes")).status_code == 202
    sent_to = [e.citizen.email for e in await events(intake_db, AccessCodeIssued)]
    assert sent_to[-1] == "awa@example.fr" and "intrus@example.com" not in sent_to


async def test_a_proof_expires(client, intake_db):
    file_id = await new_file(intake_db)
    proof = await proof_over_http(client, intake_db, file_id)
    access_codes = intake_db.tables.access_codes
    await intake_db.execute(
        sa.update(access_codes).values(
            proof_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        )
    )

    late = await client.put(
        f"/api/files/{file_id}/contact-preferences",
        json=OUTSIDER,
        headers={"X-Access-Proof": proof},
    )

    assert late.status_code == 401
    assert late.json()["message"].startswith("Votre accès au dossier a expiré")


async def test_the_citizen_with_a_proof_changes_it_and_the_old_address_is_told(
    client, intake_db, notification_db
):
    file_id = await new_file(intake_db)
    ref = referent()
    assigned = ReferentAssigned(
        file_id=file_id, referent=ref, rule="proximite", explanation="…", citizen=citizen()
    )
    await projections.on_referent_assigned(
        assigned, intake_db.uow(("intake", str(assigned.event_id)))
    )
    proof = await proof_over_http(client, intake_db, file_id)
    new = {"email": "awa.diallo@nouveau.fr", "postcode": "93200", "preferred_channel": "email"}

    changed = await client.put(
        f"/api/files/{file_id}/contact-preferences", json=new, headers={"X-Access-Proof": proof}
    )

    assert changed.status_code == 200, changed.text
    [event] = await events(intake_db, ContactPreferencesChanged)
    assert event.previous_citizen.email == "awa@example.fr"
    assert event.citizen.email == "awa.diallo@nouveau.fr" and event.referent == ref

    await notification.on_contact_preferences_changed(
        event, notification_db.uow(("notification", str(event.event_id)))
    )
    [notice] = await notification_db.rows("notifications")
    assert notice.kind == NotificationKind.CONTACT_CHANGED_NOTICE.value
    assert (notice.recipient, notice.plan) == ("awa@example.fr", "email")
    assert notice.subject == f"Votre dossier {file_id} : vos coordonnées ont été modifiées"
    assert "adresse électronique" in notice.body and "awa.diallo@nouveau.fr" not in notice.body
    assert ref.name in notice.body and ref.phone in notice.body  # signed by the référent
    [stored] = await notification_db.rows("contacts")
    assert "awa.diallo@nouveau.fr" in stored.citizen  # later messages go to the new address


async def test_no_notice_when_nothing_changed_and_the_desk_signs_before_a_referent(
    notification_db,
):
    before = citizen()
    same = ContactPreferencesChanged(
        file_id="GU-2026-NOTICE01", citizen=before, previous_citizen=before
    )
    moved = ContactPreferencesChanged(
        file_id="GU-2026-NOTICE02",
        citizen=citizen(email=None, phone="0611223344", preferred_channel="sms"),
        previous_citizen=before,
    )
    for event in (same, moved):
        await notification.on_contact_preferences_changed(
            event, notification_db.uow(("notification", str(event.event_id)))
        )

    [notice] = await notification_db.rows("notifications")
    assert notice.file_id == "GU-2026-NOTICE02" and notice.recipient == before.email
    assert "adresse électronique, numéro de téléphone, moyen de contact préféré" in notice.body
    assert GUICHET_DESK.phone in notice.body
