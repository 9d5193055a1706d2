"""Minimisation on the wire (issue 13), on a real broker: what is really on each agency's
request topic is the citizen fields the catalogue lists for it (the same its adapter
declares), nothing more; thanks travel with the citizen's name, not their contact. On
the shared stack (the four agencies and the ANTS), three files, then the adapters still
answer."""

from __future__ import annotations

import json

import pytest

from devstack.stack import Stack
from shared_models import topics
from shared_models.catalogue import load_catalogue
from tests.e2e.support import (
    answered_view,
    citizen_client,
    eventually,
    file_body,
    mails_for,
    read_topic,
    shared_catalogue_path,
)

pytestmark = pytest.mark.integration

#: Which file each agency's request comes from.
FILE_OF = {
    "france_travail": "perte_emploi",
    "dgfip": "perte_emploi",
    "caf": "naissance",
    "cpam": "naissance",
    "ants": "perte_papiers",
}
#: What Marie gives beside the form's defaults: a postal address, so every field exists.
ADDRESS = {"street": "12 rue de la Paix", "city": "Saint-Denis"}
#: The envelope and the request's own fields: nothing else at the top of the record.
REQUEST_KEYS = {
    "event_id",
    "occurred_at",
    "schema_version",
    "file_id",
    "request_id",
    "agency",
    "life_event",
    "citizen",
    "urgent",
}


@pytest.fixture(scope="module")
def stack(shared_stack):
    """The session's SQLite stack: the four agencies and the ANTS, whose life event the
    catalogue gains (tests/e2e/conftest.py)."""
    return shared_stack("sqlite")


@pytest.fixture(scope="module")
def catalogue_file(stack):
    """The shipped catalogue plus one line, a life event that reaches the ANTS (ANTS_LINE)."""
    return shared_catalogue_path(stack.workdir)


@pytest.fixture(scope="module")
async def files(stack, tokens) -> dict[str, dict]:
    """Life event -> (file id, the body Marie submitted)."""
    submitted = {}
    async with citizen_client(stack, tokens) as client:
        for life_event in sorted(set(FILE_OF.values())):
            body = file_body(life_event, **ADDRESS)
            response = await client.post("/api/files", json=body)
            assert response.status_code == 201, response.text
            submitted[life_event] = {"file_id": response.json()["file_id"], "body": body}
    return submitted


async def records_of(stack: Stack, topic: str, file_id: str) -> list[dict]:
    return [
        r
        for r in await read_topic(
            stack.kafka_bootstrap,
            stack.namespace + topic,
            lambda rs: any(r["key"] == file_id for r in rs),
            timeout=60,
        )
        if r["key"] == file_id
    ]


@pytest.mark.parametrize("agency", sorted(FILE_OF))
async def test_the_agency_request_topic_carries_only_the_catalogue_fields(
    stack, files, catalogue_file, agency
):
    file = files[FILE_OF[agency]]
    listed = load_catalogue(catalogue_file).citizen_fields_of(agency)

    [record] = await records_of(stack, topics.agency_requests(agency), file["file_id"])

    request = record["body"]
    assert record["event_type"] == "AgencyRequestIssued"
    assert set(request) == REQUEST_KEYS and request["schema_version"] == 2
    assert set(request["citizen"]) == listed
    # Every value the citizen gave that is not listed is nowhere in the record's bytes.
    given = {**file["body"]["citizen"], "description": file["body"]["description"]}
    raw = json.dumps(record, ensure_ascii=False)
    for name, value in given.items():
        if name in listed:
            assert request["citizen"][name] == value
        elif name != "preferred_channel":  # "email" is also a field's name
            assert value not in raw, f"{name} reached {agency}'s topic"


async def test_every_adapter_still_answers_from_the_minimised_requests(stack, files, tokens):
    async with citizen_client(stack, tokens) as client:
        for life_event, file in files.items():
            view = await eventually(
                lambda: answered_view(client, file["file_id"]),  # noqa: B023 (awaited here)
                timeout=120,
                what=f"the answer to {life_event}",
            )
            assert all(a["status"] == "repondu" for a in view["agencies"]), view["agencies"]


async def test_thanks_travel_with_the_citizen_name_and_still_reach_the_referent(
    stack, files, tokens
):
    file_id = files["perte_papiers"]["file_id"]
    async with citizen_client(stack, tokens) as client:

        async def referent():
            view = (await client.get(f"/api/files/{file_id}")).json()
            return view.get("referent")

        named = await eventually(referent, what="the référent")
        thanks = await client.post(f"/api/files/{file_id}/thanks", json={"message": "Merci !"})
        assert thanks.status_code == 201, thanks.text

    [record] = await records_of(stack, topics.THANKS, file_id)
    assert record["body"]["citizen"] == {"given_name": "Marie", "family_name": "Dupont"}
    assert record["body"]["schema_version"] == 2

    async def thanked_by_mail():
        mails = [m for m in mails_for(stack.maildir, file_id) if m["To"] == named["email"]]
        return mails or None

    [mail] = await eventually(thanked_by_mail, what="the référent's thanks email")
    assert "Marie Dupont vous remercie" in mail.get_body(preferencelist=("plain",)).get_content()
