"""The citizen's actions at intake besides the file: changing contact preferences, the
satisfaction survey after the answer, thanks to the référent by name."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from guichet_runtime.errors import install_french_validation
from guichet_runtime.refusals import RefusalKind, Refused, install_refusals
from intake import api as intake_api
from intake import projections
from intake.commands.access import issue_access_code, verify_access_code
from intake.commands.citizen import answer_survey, thank_referent
from intake.commands.files import (
    ChangeContactPreferences,
    SubmitFile,
    change_contact_preferences,
    submit_file,
)
from intake.schemas import ContactIn, FileIn, SurveyIn
from intake.views import files as views
from shared_models import (
    AccessCodeIssued,
    ContactPreferencesChanged,
    CoordinatedAnswerIssued,
    NotificationChannel,
    NotificationKind,
    NotificationSent,
    ReferentAssigned,
    ReferentThanked,
    SurveyAnswered,
    topics,
)
from tests.unit.samples import AWA_BIRTH_FORM, KEYRING, citizen, opened_code, referent

FORM = AWA_BIRTH_FORM


async def handle(db, handler, event) -> None:
    await handler(event, db.uow(("intake", str(event.event_id))))


@pytest.fixture
async def file_id(intake_db) -> str:
    file_id, _ = await submit_file(SubmitFile(form=FileIn.model_validate(FORM)), intake_db.uow())
    return file_id


async def assign(db, file_id: str) -> None:
    await handle(
        db,
        projections.on_referent_assigned,
        ReferentAssigned(
            file_id=file_id,
            referent=referent(),
            rule="proximite",
            explanation="…",
            citizen=citizen(),
        ),
    )


async def answer(db, file_id: str) -> None:
    await handle(
        db,
        projections.on_coordinated_answer_issued,
        CoordinatedAnswerIssued(
            file_id=file_id, referent=referent(), citizen=citizen(), decisions=[], text="Bonjour…"
        ),
    )


async def emitted(db, cls):
    return [(t, e) for t, e in await db.outbox_events() if isinstance(e, cls)]


async def access_proof(db, file_id: str) -> str:
    """What the citizen holds once their code is verified: a code is sent, then typed."""
    await issue_access_code(file_id, db.uow(), KEYRING)
    *_, (_, event) = await emitted(db, AccessCodeIssued)
    return (await verify_access_code(file_id, opened_code(event), db.uow())).token


async def test_changed_preferences_are_stored_and_sent_to_notification_with_the_names_kept(
    intake_db, file_id
):
    contact = ContactIn.model_validate(
        {
            "preferred_channel": "courrier",
            "street": "3 rue Pasteur",
            "postcode": "93000",
            "city": "Bobigny",
        }
    )

    proof = await access_proof(intake_db, file_id)
    await change_contact_preferences(
        ChangeContactPreferences(file_id, contact, proof), intake_db.uow()
    )

    [(topic, event)] = await emitted(intake_db, ContactPreferencesChanged)
    assert topic == topics.CONTACT_CHANGES
    assert (event.citizen.given_name, event.citizen.email, event.citizen.city) == (
        "Awa",
        None,
        "Bobigny",
    )
    view = await views.file_view(intake_db.uow(), file_id)
    assert view["timeline"][-1]["label"].endswith("par courrier postal.")
    with pytest.raises(Refused) as unknown:
        await change_contact_preferences(
            ChangeContactPreferences("GU-2026-INCONNU", contact, proof), intake_db.uow()
        )
    assert unknown.value.status == 404


async def test_the_survey_opens_with_the_answer_and_is_answered_once(intake_db, file_id):
    await assign(intake_db, file_id)
    with pytest.raises(Refused) as early:
        await answer_survey(file_id, SurveyIn(score=5), intake_db.uow())
    assert early.value.status == 409 and early.value.kind is RefusalKind.CONFLICT

    await answer(intake_db, file_id)
    assert (await views.file_view(intake_db.uow(), file_id))["survey_answered"] is False
    await answer_survey(file_id, SurveyIn(score=4, comment="Rapide."), intake_db.uow())
    assert (await views.file_view(intake_db.uow(), file_id))["survey_answered"] is True
    with pytest.raises(Refused) as twice:
        await answer_survey(file_id, SurveyIn(score=1), intake_db.uow())
    assert twice.value.status == 409 and "déjà répondu" in twice.value.message

    [(topic, event)] = await emitted(intake_db, SurveyAnswered)
    assert topic == topics.SURVEYS
    assert (event.score, event.referent_agent_id, event.office_id) == (4, "AG-93-01-2", "FS-93-01")


async def test_thanks_reach_the_named_referent_once_and_are_listed_for_them(intake_db, file_id):
    with pytest.raises(Refused) as nobody:
        await thank_referent(file_id, "Merci !", intake_db.uow())
    assert nobody.value.status == 409
    await assign(intake_db, file_id)

    assert (await views.file_view(intake_db.uow(), file_id))["thanked"] is False
    name = await thank_referent(file_id, "Merci pour tout.", intake_db.uow())
    assert (await views.file_view(intake_db.uow(), file_id))["thanked"] is True
    with pytest.raises(Refused) as twice:
        await thank_referent(file_id, "Encore merci.", intake_db.uow())

    assert name == "Yasmine Haddad" and "déjà remercié Yasmine Haddad" in twice.value.message
    [(topic, event)] = await emitted(intake_db, ReferentThanked)
    assert (
        topic == topics.THANKS
        and event.referent == referent()
        and event.message == "Merci pour tout."
    )
    listed = await views.thanks_for_agent(intake_db.uow(), "AG-93-01-2")
    assert (listed["agent_name"], listed["count"]) == ("Yasmine Haddad", 1)
    assert listed["thanks"][0]["citizen_given_name"] == "Awa"
    assert (await views.thanks_for_agent(intake_db.uow(), "AG-AUTRE"))["count"] == 0


@pytest.mark.parametrize(
    ("channel", "label"),
    [("email", "Courriel envoyé"), ("sms", "SMS envoyé"), ("courrier", "Courrier postal envoyé")],
)
async def test_the_timeline_says_which_channel_carried_the_message_and_skips_agents_mail(
    intake_db, file_id, channel, label
):
    sent = {
        "file_id": file_id,
        "kind": NotificationKind.REFERENT_ASSIGNED,
        "subject": "Votre dossier",
        "referent_name": "Yasmine Haddad",
        "channel": NotificationChannel(channel),
    }
    await handle(
        intake_db, projections.on_notification_sent, NotificationSent(notification_id="n1", **sent)
    )
    await handle(
        intake_db,
        projections.on_notification_sent,
        NotificationSent(
            notification_id="n2",
            audience="agent",
            **{**sent, "kind": NotificationKind.THANKS_RECEIVED},
        ),
    )

    entries = [
        e
        for e in (await views.file_view(intake_db.uow(), file_id))["timeline"]
        if e["kind"] == "notification"
    ]
    assert [e["label"] for e in entries] == [f"{label} : « Votre dossier »."]


async def test_a_new_referent_has_not_been_thanked_yet(intake_db, file_id):
    await assign(intake_db, file_id)
    await thank_referent(file_id, "Merci pour tout.", intake_db.uow())
    other = referent().model_copy(update={"agent_id": "AG-93-01-3", "name": "Paul Martin"})
    await handle(
        intake_db,
        projections.on_referent_assigned,
        ReferentAssigned(
            file_id=file_id,
            referent=other,
            previous_referent=referent(),
            rule="changement",
            explanation="…",
            citizen=citizen(),
        ),
    )

    view = await views.file_view(intake_db.uow(), file_id)
    assert (view["thanked"], view["survey_answered"]) == (False, False)


async def test_the_routes_answer_refusals_in_french_with_their_status(intake_db, file_id, tokens):
    app = FastAPI()
    install_french_validation(app)
    install_refusals(app)
    app.include_router(intake_api.router(intake_db, KEYRING))
    tokens.install(app)
    # The citizen filed logged in: their token opens the file.
    files = intake_db.tables.files
    await intake_db.execute(
        files.update().where(files.c.file_id == file_id).values(citizen_subject="awa")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers=tokens.citizen("awa"),
    ) as c:
        early = await c.post(f"/api/files/{file_id}/survey", json={"score": 5})
        await assign(intake_db, file_id)
        await answer(intake_db, file_id)
        first = await c.post(f"/api/files/{file_id}/survey", json={"score": 5})
        twice = await c.post(f"/api/files/{file_id}/survey", json={"score": 4})
        thanks = await c.post(f"/api/files/{file_id}/thanks", json={"message": "Merci !"})
        view = (await c.get(f"/api/files/{file_id}")).json()
        unknown = await c.get("/api/files/GU-2026-INCONNU")
        period = await c.get("/api/indicators", params={"from": "2026-11-05", "to": "2026-11-01"})

    assert (early.status_code, early.json()["kind"]) == (409, "conflict")
    assert early.json()["message"].startswith("L'enquête de satisfaction s'ouvre")
    assert (first.status_code, twice.status_code, thanks.status_code) == (201, 409, 201)
    assert twice.json()["message"] == "Vous avez déjà répondu à l'enquête pour ce dossier : merci !"
    assert (view["status"], view["thanked"], view["survey_answered"]) == ("repondu", True, True)
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "Aucun dossier ne porte la référence GU-2026-INCONNU."
    assert period.status_code == 422 and period.json()["errors"] == [
        {"field": "to", "message": "La date de fin de période précède la date de début."}
    ]
