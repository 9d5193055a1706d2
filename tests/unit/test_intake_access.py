"""Who may do what at intake (issue 12; the route -> policy table of docs/security.md), over
the real routes with tokens from an in-process provider: 401 without identity, 403 with the
wrong one, 404 for an unknown file to an identified caller; identity only from the token."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI

from guichet_runtime.errors import install_french_validation
from guichet_runtime.refusals import install_refusals
from intake import api as intake_api
from intake import projections
from intake.commands.access import issue_access_code, verify_access_code
from intake.commands.citizen import thank_referent
from shared_models import AccessCodeIssued, ContactPreferencesChanged, ReferentAssigned
from tests.unit.samples import AWA_BIRTH_FORM, KEYRING, citizen, opened_code, referent

FORM = AWA_BIRTH_FORM
REFERENT = referent().agent_id  # AG-93-01-2, of FS-93-01
NOT_LOGGED_IN = "Identifiez-vous pour continuer."
NOT_ALLOWED = "Vous n'avez pas accès à cette ressource."


@pytest.fixture
async def client(intake_db, tokens):
    app = FastAPI()
    install_french_validation(app)
    install_refusals(app)
    app.include_router(intake_api.router(intake_db, KEYRING))
    tokens.install(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        c.db = intake_db
        c.tokens = tokens
        yield c


async def filed(client, headers: dict[str, str] | None = None, **extra) -> str:
    response = await client.post("/api/files", json={**FORM, **extra}, headers=headers or {})
    assert response.status_code == 201, response.text
    return response.json()["file_id"]


async def assign(db, file_id: str) -> None:
    event = ReferentAssigned(
        file_id=file_id, referent=referent(), rule="proximite", explanation="…", citizen=citizen()
    )
    await projections.on_referent_assigned(event, db.uow(("intake", str(event.event_id))))


async def proof_for(db, file_id: str) -> dict[str, str]:
    await issue_access_code(file_id, db.uow(), KEYRING)
    *_, (_, event) = [
        (t, e) for t, e in await db.outbox_events() if isinstance(e, AccessCodeIssued)
    ]
    proof = await verify_access_code(file_id, opened_code(event), db.uow())
    return {"X-Access-Proof": proof.token}


async def stored(db, file_id: str):
    [row] = await db.rows("files", db.tables.files.c.file_id == file_id)
    return row


# --------------------------------------------------------------------------- opening a file


async def test_a_logged_in_citizens_file_is_linked_to_them_and_only_they_read_it(client):
    marie, paul = client.tokens.citizen("marie"), client.tokens.citizen("paul")
    file_id = await filed(client, marie)

    row = await stored(client.db, file_id)
    assert (row.citizen_subject, row.registered_by, row.channel) == ("marie", None, "en_ligne")
    url = f"/api/files/{file_id}"
    mine, theirs, anonymous = (
        await client.get(url, headers=marie),
        await client.get(url, headers=paul),
        await client.get(url),
    )
    assert (mine.status_code, theirs.status_code, anonymous.status_code) == (200, 403, 401)
    assert theirs.json()["message"] == NOT_ALLOWED
    assert anonymous.json()["message"] == NOT_LOGGED_IN
    assert anonymous.headers["www-authenticate"] == "Bearer"
    unknown = await client.get("/api/files/GU-2026-INCONNU", headers=paul)
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "Aucun dossier ne porte la référence GU-2026-INCONNU."
    # An anonymous caller learns nothing of which references exist.
    assert (await client.get("/api/files/GU-2026-INCONNU")).status_code == 401


async def test_an_anonymous_file_opens_with_the_proof_of_its_own_one_time_code(client):
    file_id = await filed(client)
    other = await filed(client)
    assert (await stored(client.db, file_id)).citizen_subject is None

    proof = await proof_for(client.db, file_id)

    assert (await client.get(f"/api/files/{file_id}", headers=proof)).status_code == 200
    borrowed = await client.get(f"/api/files/{other}", headers=proof)
    assert borrowed.status_code == 401
    assert "demandez un nouveau code" in borrowed.json()["message"]
    assert (await client.get(f"/api/files/{file_id}/messages", headers=proof)).json() == []
    # The proof opens the citizen's side only, never the agents' record.
    assert (await client.get(f"/api/files/{file_id}/record", headers=proof)).status_code == 401


async def test_the_front_desk_registers_a_file_saying_the_channel_and_reads_its_receipt(client):
    desk, colleague = client.tokens.guichet("AG-93-01-9"), client.tokens.guichet("AG-93-01-8")

    missing = await client.post("/api/files", json=FORM, headers=desk)
    online = await client.post("/api/files", json={**FORM, "channel": "en_ligne"}, headers=desk)
    made_up = await client.post("/api/files", json={**FORM, "channel": "fax"}, headers=desk)
    file_id = await filed(client, desk, channel="telephone")

    for refused in (missing, online):
        assert refused.status_code == 422 and refused.json()["field"] == "channel"
        assert refused.json()["message"].startswith("Précisez par quel canal l'usager")
    assert made_up.status_code == 422 and made_up.json()["errors"][0]["field"] == "channel"
    row = await stored(client.db, file_id)
    assert (row.citizen_subject, row.registered_by, row.channel) == (
        None,
        "AG-93-01-9",
        "telephone",
    )
    receipt = await client.get(
        f"/api/files/{file_id}/record", params={"reason": "Récépissé"}, headers=desk
    )
    assert receipt.status_code == 200 and receipt.json()["citizen"]["email"] == "awa@example.fr"
    assert (await client.get(f"/api/files/{file_id}", headers=desk)).status_code == 200
    assert (await client.get(f"/api/files/{file_id}/record", headers=colleague)).status_code == 403


async def test_no_other_agent_nor_agency_files_and_citizens_cannot_claim_a_desk_channel(client):
    tokens = client.tokens
    referent_agent = await client.post("/api/files", json=FORM, headers=tokens.agent(REFERENT))
    supervisor = await client.post(
        "/api/files", json={**FORM, "channel": "guichet"}, headers=tokens.supervisor_of("FS-93-01")
    )
    agency = await client.post("/api/files", json=FORM, headers=tokens.agency("caf"))
    citizen_at_desk = await client.post(
        "/api/files", json={**FORM, "channel": "guichet"}, headers=tokens.citizen()
    )
    anonymous_at_desk = await client.post("/api/files", json={**FORM, "channel": "courrier"})

    for refused in (referent_agent, supervisor, agency):
        assert refused.status_code == 403
        assert refused.json()["message"] == (
            "Seul un agent d'accueil enregistre un dossier au nom d'un usager."
        )
    for refused in (citizen_at_desk, anonymous_at_desk):
        assert refused.status_code == 422 and refused.json()["field"] == "channel"
    assert await client.db.rows("files") == []


async def test_the_same_idempotency_key_from_another_citizen_is_a_conflict(client):
    key = {"Idempotency-Key": "formulaire-1"}
    first = await client.post(
        "/api/files", json=FORM, headers={**key, **client.tokens.citizen("marie")}
    )
    again = await client.post(
        "/api/files", json=FORM, headers={**key, **client.tokens.citizen("marie")}
    )
    other = await client.post(
        "/api/files", json=FORM, headers={**key, **client.tokens.citizen("paul")}
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 409)
    assert again.json()["file_id"] == first.json()["file_id"]


# --------------------------------------------------------------------------- the file's agents


async def test_the_record_is_for_the_files_agents_only(client):
    tokens = client.tokens
    file_id = await filed(client, tokens.citizen("marie"))
    await assign(client.db, file_id)
    url = f"/api/files/{file_id}/record?reason=Traitement du dossier"

    statuses = {
        name: (await client.get(url, headers=headers)).status_code
        for name, headers in {
            "anonymous": {},
            "citizen": tokens.citizen("marie"),
            "référent": tokens.agent(REFERENT),
            "another référent": tokens.agent("AG-93-01-1"),
            "supervisor of the office": tokens.supervisor_of("FS-93-01"),
            "supervisor elsewhere": tokens.supervisor_of("FS-75-01"),
            "front desk elsewhere": tokens.guichet(),
            "administrator": tokens.admin(),
            "agency": tokens.agency("caf"),
        }.items()
    }

    assert statuses == {
        "anonymous": 401,
        "citizen": 403,
        "référent": 200,
        "another référent": 403,
        "supervisor of the office": 200,
        "supervisor elsewhere": 403,
        "front desk elsewhere": 403,
        "administrator": 403,
        "agency": 403,
    }


async def test_messages_are_written_by_the_token_s_referent_and_read_by_the_citizen(client):
    tokens = client.tokens
    file_id = await filed(client, tokens.citizen("marie"))
    await assign(client.db, file_id)
    url = f"/api/files/{file_id}/messages"

    anonymous = await client.post(url, json={"text": "Bonjour"})
    citizen_writes = await client.post(
        url, json={"text": "Bonjour"}, headers=tokens.citizen("marie")
    )
    supervisor_writes = await client.post(
        url, json={"text": "Bonjour"}, headers=tokens.supervisor_of("FS-93-01")
    )
    sent = await client.post(url, json={"text": "Bonjour"}, headers=tokens.agent(REFERENT))

    assert anonymous.status_code == 401
    assert citizen_writes.status_code == supervisor_writes.status_code == 403
    assert sent.status_code == 201 and sent.json()["agent_id"] == REFERENT
    [message] = (await client.get(url, headers=tokens.citizen("marie"))).json()
    assert (message["agent_id"], message["text"]) == (REFERENT, "Bonjour")
    assert (await client.get(url, headers=tokens.citizen("paul"))).status_code == 403
    assert (await client.get(url)).status_code == 401


async def test_the_thanks_an_agent_received_are_theirs_and_their_supervisors(client):
    tokens = client.tokens
    file_id = await filed(client)
    await assign(client.db, file_id)
    await thank_referent(file_id, "Merci pour tout !", client.db.uow())
    url = f"/api/agents/{REFERENT}/thanks"

    statuses = {
        name: (await client.get(url, headers=headers)).status_code
        for name, headers in {
            "anonymous": {},
            "the agent": tokens.agent(REFERENT),
            "a colleague": tokens.agent("AG-93-01-1"),
            "supervisor of their office": tokens.supervisor_of("FS-93-01"),
            "supervisor elsewhere": tokens.supervisor_of("FS-75-01"),
            "citizen": tokens.citizen(),
        }.items()
    }

    assert statuses == {
        "anonymous": 401,
        "the agent": 200,
        "a colleague": 403,
        "supervisor of their office": 200,
        "supervisor elsewhere": 403,
        "citizen": 403,
    }
    # An agent intake never saw thanked: only they read their (empty) list.
    never = "/api/agents/AG-75-01-1/thanks"
    assert (await client.get(never, headers=tokens.agent("AG-75-01-1"))).json()["count"] == 0
    assert (await client.get(never, headers=tokens.supervisor_of("FS-75-01"))).status_code == 403


# --------------------------------------------------------------------------- the citizen's acts


async def test_a_logged_in_citizen_changes_their_contact_without_a_code_and_the_old_is_told(
    client,
):
    tokens = client.tokens
    file_id = await filed(client, tokens.citizen("marie"))
    url = f"/api/files/{file_id}/contact-preferences"
    new = {"email": "awa.diallo@nouveau.fr", "postcode": "93200", "preferred_channel": "email"}

    someone_else = await client.put(url, json=new, headers=tokens.citizen("paul"))
    referent_agent = await client.put(url, json=new, headers=tokens.agent(REFERENT))
    changed = await client.put(url, json=new, headers=tokens.citizen("marie"))

    assert someone_else.status_code == referent_agent.status_code == 403
    assert changed.status_code == 200, changed.text
    [event] = [
        e for _, e in await client.db.outbox_events() if isinstance(e, ContactPreferencesChanged)
    ]
    assert (event.previous_citizen.email, event.citizen.email) == (
        "awa@example.fr",
        "awa.diallo@nouveau.fr",
    )


async def test_the_citizens_acts_need_their_login_or_their_proof(client):
    tokens = client.tokens
    file_id = await filed(client, tokens.citizen("marie"))
    await assign(client.db, file_id)
    acts = {
        "referent-change": {"reason": "Je souhaite un autre interlocuteur."},
        "thanks": {"message": "Merci !"},
        "survey": {"score": 5},
    }

    for act, body in acts.items():
        url = f"/api/files/{file_id}/{act}"
        assert (await client.post(url, json=body)).status_code == 401, act
        for stranger in (tokens.citizen("paul"), tokens.agent(REFERENT)):
            assert (await client.post(url, json=body, headers=stranger)).status_code == 403, act
    change = await client.post(
        f"/api/files/{file_id}/referent-change",
        json=acts["referent-change"],
        headers=tokens.citizen("marie"),
    )
    thanks = await client.post(
        f"/api/files/{file_id}/thanks", json=acts["thanks"], headers=tokens.citizen("marie")
    )
    assert (change.status_code, thanks.status_code) == (202, 201)
    # Without an account, the proof of the file's one-time code: past the policy, the
    # survey is only refused because it opens with the answer.
    survey = await client.post(
        f"/api/files/{file_id}/survey",
        json=acts["survey"],
        headers=await proof_for(client.db, file_id),
    )
    assert survey.status_code == 409 and survey.json()["message"].startswith("L'enquête")


async def test_a_document_comes_from_the_citizen_or_the_files_agents(client):
    tokens = client.tokens
    file_id = await filed(client, tokens.citizen("marie"))
    await assign(client.db, file_id)
    url = f"/api/files/{file_id}/documents"
    pdf = {"fichier": ("piece.pdf", b"%PDF-1.4 test", "application/pdf")}

    anonymous = await client.post(url, files=pdf)
    stranger = await client.post(url, files=pdf, headers=tokens.citizen("paul"))
    for_them = await client.post(url, files=pdf, headers=tokens.agent(REFERENT))

    assert (anonymous.status_code, stranger.status_code) == (401, 403)
    # Past the policy: refused only because no agency asked for a document.
    assert for_them.status_code == 409, for_them.text


# --------------------------------------------------------------------------- one's own


async def test_the_citizens_contact_details_are_theirs_only(client):
    tokens = client.tokens
    marie = tokens.citizen("marie")
    mine = await filed(client, marie)
    anonymous_file = await filed(client)
    await assign(client.db, mine)

    url = f"/api/files/{mine}/contact"
    found = await client.get(url, headers=marie)
    assert found.status_code == 200, found.text
    assert found.json() == {
        "preferred_channel": "email",
        "email": "awa@example.fr",
        "phone": None,
        "street": None,
        "postcode": "93200",
        "city": None,
    }
    refused = {
        "anonymous": await client.get(url),
        "another citizen": await client.get(url, headers=tokens.citizen("paul")),
        "référent": await client.get(url, headers=tokens.agent(REFERENT)),
        "front desk": await client.get(url, headers=tokens.guichet()),
        "supervisor": await client.get(url, headers=tokens.supervisor_of("FS-93-01")),
    }
    assert {k: r.status_code for k, r in refused.items()} == {
        "anonymous": 401,
        "another citizen": 403,
        "référent": 403,
        "front desk": 403,
        "supervisor": 403,
    }
    # Without an account: the proof of the file's own one-time code opens it.
    proof = await proof_for(client.db, anonymous_file)
    with_code = await client.get(f"/api/files/{anonymous_file}/contact", headers=proof)
    assert with_code.status_code == 200 and with_code.json()["email"] == "awa@example.fr"
    assert (await client.get(url, headers=proof)).status_code == 401
    unknown = await client.get("/api/files/GU-2026-INCONNU/contact", headers=marie)
    assert unknown.status_code == 404


async def test_a_logged_in_citizen_lists_her_own_files_and_no_one_elses(client):
    tokens = client.tokens
    marie, paul = tokens.citizen("marie"), tokens.citizen("paul")
    first = await filed(client, marie)
    second = await filed(client, marie, life_event="demenagement")
    theirs = await filed(client, paul)
    await filed(client)  # anonymous: nobody's list
    await filed(client, tokens.guichet("AG-93-01-9"), channel="guichet")
    await assign(client.db, first)

    listed = await client.get("/api/me/files", headers=marie)
    assert listed.status_code == 200, listed.text
    assert [f["file_id"] for f in listed.json()] == [second, first]  # newest first
    by_id = {f["file_id"]: f for f in listed.json()}
    assert by_id[first]["referent_name"] == "Yasmine Haddad"
    assert by_id[first]["channel"] == "en_ligne" and by_id[first]["status"] == "en_cours"
    assert by_id[second]["life_event_label"] and by_id[second]["referent_name"] is None
    assert by_id[first]["citizen_name"] is None  # she knows her name
    assert [f["file_id"] for f in (await client.get("/api/me/files", headers=paul)).json()] == [
        theirs
    ]
    refused = {
        "anonymous": await client.get("/api/me/files"),
        "agent": await client.get("/api/me/files", headers=tokens.agent(REFERENT)),
        "front desk": await client.get("/api/me/files", headers=tokens.guichet()),
        "agency": await client.get("/api/me/files", headers=tokens.agency("caf")),
    }
    assert {k: r.status_code for k, r in refused.items()} == {
        "anonymous": 401,
        "agent": 403,
        "front desk": 403,
        "agency": 403,
    }
    assert refused["anonymous"].json()["message"] == NOT_LOGGED_IN


async def test_the_front_desk_lists_the_files_they_registered_and_no_others(client):
    tokens = client.tokens
    desk, colleague = tokens.guichet("AG-93-01-9"), tokens.guichet("AG-93-01-8")
    counter = await filed(client, desk, channel="guichet")
    phone = await filed(client, desk, channel="telephone")
    other = await filed(client, colleague, channel="courrier")
    await filed(client, tokens.citizen("marie"))

    listed = await client.get("/api/me/registered-files", headers=desk)
    assert listed.status_code == 200, listed.text
    assert [(f["file_id"], f["channel"]) for f in listed.json()] == [
        (phone, "telephone"),
        (counter, "guichet"),
    ]
    assert {f["citizen_name"] for f in listed.json()} == {"Awa Diallo"}
    theirs = await client.get("/api/me/registered-files", headers=colleague)
    assert [f["file_id"] for f in theirs.json()] == [other]
    refused = {
        "anonymous": await client.get("/api/me/registered-files"),
        "citizen": await client.get("/api/me/registered-files", headers=tokens.citizen("marie")),
        "référent": await client.get("/api/me/registered-files", headers=tokens.agent(REFERENT)),
        "supervisor": await client.get(
            "/api/me/registered-files", headers=tokens.supervisor_of("FS-93-01")
        ),
    }
    assert {k: r.status_code for k, r in refused.items()} == {
        "anonymous": 401,
        "citizen": 403,
        "référent": 403,
        "supervisor": 403,
    }
    # Citizens' names: each list read by an agent is in the audit trail.
    read = [r for r in await client.db.rows("audit_log") if r.action.endswith("files.read")]
    assert [(r.actor_agent_id, json.loads(r.details)["files"]) for r in read] == [
        ("AG-93-01-9", 2),
        ("AG-93-01-8", 1),
    ]
