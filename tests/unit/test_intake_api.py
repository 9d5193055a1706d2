"""Issue 18 §5: intake's HTTP routes (intake.api) on its real SQLite database, with tokens
from an in-process provider: what each route answers, in French, beyond the access rules
tested in test_intake_access.py (the public catalogue and open-data CSV, a retried
submission or message answered as the first, refusals of unknown files and bad input)."""

from __future__ import annotations

from tests.unit.samples import referent
from tests.unit.test_intake_access import FORM, assign, client

REFERENT = referent().agent_id
__all__ = ["client"]  # the fixture: intake's routes with tokens, shared with test_intake_access


async def filed(client, key: str = "k-1") -> str:
    headers = {"Idempotency-Key": key, **client.tokens.citizen("marie")}
    created = await client.post("/api/files", json=FORM, headers=headers)
    assert created.status_code == 201, created.text
    return created.json()["file_id"]


async def test_the_life_events_are_public_with_the_agencies_french_names(client):
    answer = await client.get("/api/life-events")
    assert answer.status_code == 200
    events = {e["code"]: e for e in answer.json()}
    assert set(events) == {"perte_emploi", "naissance", "demenagement", "arret_maladie"}
    assert events["naissance"] == {
        "code": "naissance",
        "label": "Naissance d'un enfant",
        "agencies": [
            "Caisse d'allocations familiales (CAF)",
            "Caisse primaire d'assurance maladie (CPAM)",
        ],
    }


async def test_a_submission_retried_with_its_key_answers_the_same_file_and_says_so(client):
    headers = {"Idempotency-Key": "formulaire-1", **client.tokens.citizen("marie")}
    first = await client.post("/api/files", json=FORM, headers=headers)
    again = await client.post("/api/files", json=FORM, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    file_id = first.json()["file_id"]
    assert again.json()["file_id"] == file_id
    # The first answer comes from the transaction that opened the file, the replay from the
    # stored row: the same status and creation time, to the microsecond.
    assert again.json() == first.json()
    assert first.json()["status"] == "depose"
    assert first.headers["Location"] == again.headers["Location"] == f"/api/files/{file_id}"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(await client.db.rows("files")) == 1


async def test_a_form_with_errors_is_refused_field_by_field_in_french(client):
    bad = {**FORM, "citizen": {**FORM["citizen"], "postcode": "9320", "email": "pas-un-email"}}
    answer = await client.post("/api/files", json=bad, headers=client.tokens.citizen("marie"))
    assert answer.status_code == 422
    body = answer.json()
    assert body["message"] == "Certaines informations sont manquantes ou invalides."
    fields = {e["field"] for e in body["errors"]}
    assert {"citizen.postcode", "citizen.email"} <= fields
    assert all(e["message"] and "Input should" not in e["message"] for e in body["errors"])


async def test_the_open_data_csv_is_a_download_named_after_its_period(client):
    whole = await client.get("/api/indicators.csv")
    period = await client.get(
        "/api/indicators.csv", params={"from": "2026-01-01", "to": "2026-03-31"}
    )

    assert whole.status_code == 200
    assert whole.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert whole.headers["Content-Disposition"] == (
        'attachment; filename="indicateurs-guichet-unique-tout.csv"'
    )
    assert period.headers["Content-Disposition"] == (
        'attachment; filename="indicateurs-guichet-unique-2026-01-01_2026-03-31.csv"'
    )
    header, *rows = whole.text.split("\r\n")
    assert ";" in header and rows[0].split(";")[0]  # the national row is always there


async def test_a_referents_message_retried_with_its_key_is_sent_once(client):
    file_id = await filed(client)
    await assign(client.db, file_id)
    headers = {"Idempotency-Key": "msg-1", **client.tokens.agent(REFERENT)}
    url = f"/api/files/{file_id}/messages"

    first = await client.post(url, json={"text": "Votre dossier avance."}, headers=headers)
    again = await client.post(url, json={"text": "Votre dossier avance."}, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json() == again.json()
    listed = await client.get(url, headers=client.tokens.citizen("marie"))
    assert [m["text"] for m in listed.json()] == ["Votre dossier avance."]


async def test_an_unknown_file_is_named_in_the_refusal(client):
    supervisor = client.tokens.supervisor_of("FS-93-01")
    for path in ("", "/messages", "/contact", "/audit"):
        answer = await client.get(f"/api/files/GU-2026-INCONNU{path}", headers=supervisor)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json() == {
            "message": "Aucun dossier ne porte la référence GU-2026-INCONNU.",
            "kind": "not_found",
        }


async def test_a_file_the_caller_may_read_but_not_write_to(client):
    file_id = await filed(client)
    await assign(client.db, file_id)
    survey_too_early = await client.post(
        f"/api/files/{file_id}/survey", json={"score": 4}, headers=client.tokens.citizen("marie")
    )
    assert survey_too_early.status_code == 409
    assert "réponse coordonnée" in survey_too_early.json()["message"]
    thanked = await client.post(
        f"/api/files/{file_id}/thanks",
        json={"message": "Merci pour votre aide."},
        headers=client.tokens.citizen("marie"),
    )
    assert thanked.status_code == 201
    assert thanked.json() == {"message": f"Merci ! Votre message est transmis à {referent().name}."}
