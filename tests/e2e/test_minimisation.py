"""Minimisation on the wire (issue 13), on a real broker: what is really on each agency's
request topic is the citizen fields the policy of tests/personal_data.py allows it (written
from docs/data-protection.md, not read from the catalogue or the adapters), nothing more:
the raw bytes of each record are probed for every other personal value of the citizen in
every form it may travel in (the phone as typed and as intake stores it, the street, the
town, the email, the description's words); thanks travel with the citizen's name, not
their contact. On the shared stack (the four agencies and the ANTS), three files, then the
adapters still answer."""

from __future__ import annotations

import json
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from devstack.kafka_sasl import client_options
from devstack.stack import Stack
from shared_models import topics
from tests.e2e.sealing_support import opener_for
from tests.e2e.support import (
    answered_view,
    citizen_client,
    eventually,
    file_body,
    mails_for,
    shared_catalogue_path,
)
from tests.personal_data import AGENTS_MAY_RECEIVE, MAY_RECEIVE, PROBED_FIELDS, leaks

pytestmark = pytest.mark.integration

#: Which file each agency's request comes from.
FILE_OF = {
    "france_travail": "perte_emploi",
    "dgfip": "perte_emploi",
    "caf": "naissance",
    "cpam": "naissance",
    "ants": "perte_papiers",
}
#: What Marie gives beside the form's defaults (her phone typed `06 12 34 56 78`, which
#: intake stores as `0612345678`): a postal address, so every field exists; a street and a
#: town that no office or agent's name contains (the référent's office travels by design).
ADDRESS = {"street": "7 impasse des Glycines", "city": "Pierrefitte-sur-Seine"}
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
    """The file's records on `topic`: event type, the body with its sealed personal fields
    opened (what a service allowed to read them gets), `raw`: the same body serialised again
    (what the probes look into), and `wire`: the value's bytes as they travelled."""
    opener = opener_for(stack.namespace + topic)
    consumer = AIOKafkaConsumer(
        stack.namespace + topic,
        **client_options(stack.kafka_bootstrap),
        group_id=f"e2e-raw-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    mine: list[dict] = []
    try:

        async def probe() -> list[dict] | None:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                for r in part:
                    if r.key and r.key.decode() == file_id:
                        headers = {k: v.decode() for k, v in r.headers}
                        body = json.loads(r.value)
                        if opener is not None:
                            body = await opener.opened(body, headers.get("event_type"))
                        mine.append(
                            {
                                "event_type": headers.get("event_type"),
                                "body": body,
                                "raw": json.dumps(body, ensure_ascii=False).encode(),
                                "wire": r.value,
                            }
                        )
            return mine or None

        return await eventually(probe, timeout=60, what=f"the records of {file_id} on {topic}")
    finally:
        await consumer.stop()


def personal_values(file: dict) -> dict[str, str]:
    """Every personal value Marie gave for the file, as she typed it."""
    return {**file["body"]["citizen"], "description": file["body"]["description"]}


async def test_the_probes_find_every_personal_value_where_it_must_travel(stack, files):
    """FileSubmitted carries the whole contact (assignment needs it): every probe finds its
    value there, the phone in the form intake stores it."""
    file = files["perte_emploi"]
    [record] = await records_of(stack, topics.FILES_SUBMITTED, file["file_id"])
    assert record["body"]["citizen"]["phone"] == "0612345678"  # typed "06 12 34 56 78"
    found = {f.split(":")[0] for f in leaks(record["raw"], personal_values(file), PROBED_FIELDS)}
    assert found == set(PROBED_FIELDS)


@pytest.mark.parametrize("agency", sorted(FILE_OF))
async def test_the_agency_request_topic_carries_only_what_the_policy_allows(stack, files, agency):
    file = files[FILE_OF[agency]]
    allowed = MAY_RECEIVE[agency]

    [record] = await records_of(stack, topics.agency_requests(agency), file["file_id"])

    request = record["body"]
    assert record["event_type"] == "AgencyRequestIssued"
    assert set(request) == REQUEST_KEYS and request["schema_version"] == 3
    assert set(request["citizen"]) == allowed
    given = personal_values(file)
    for name in allowed:
        assert request["citizen"][name] == given[name], name
    # Every other value the citizen gave is nowhere in the record's bytes, in any form.
    assert leaks(record["raw"], given, set(PROBED_FIELDS) - allowed) == [], agency
    # As it travelled (sealed with Marie's key, as in production): no value in clear at all.
    assert leaks(record["wire"], given, set(PROBED_FIELDS)) == [], agency


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
    assert record["body"]["schema_version"] == 3
    given = personal_values(files["perte_papiers"])
    assert leaks(record["raw"], given, set(PROBED_FIELDS) - AGENTS_MAY_RECEIVE) == []

    async def thanked_by_mail():
        mails = [m for m in mails_for(stack.maildir, file_id) if m["To"] == named["email"]]
        return mails or None

    [mail] = await eventually(thanked_by_mail, what="the référent's thanks email")
    assert "Marie Dupont vous remercie" in mail.get_body(preferencelist=("plain",)).get_content()
