"""The published indicators, end to end on real processes (a real Kafka broker, every
service, the agency simulator): an answered file shows in the figures and in their open-data
CSV; once on SQLite, once on PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from devstack.stack import Stack
from tests.e2e.support import BACKENDS, answered_view, citizen_client, eventually, file_body, query

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request, shared_stack):
    """The session's stack on each backend (tests/e2e/conftest.py): indicators of every
    group published from the first file, always fresh."""
    return shared_stack(request.param)


@pytest.fixture
async def client(stack, tokens):
    """Marie's client of intake: she submits a file and reads it; indicators are public."""
    async with citizen_client(stack, tokens) as c:
        yield c


async def test_an_answered_file_shows_in_the_published_indicators_and_their_open_data_csv(
    stack: Stack, client
):
    file_id = (await client.post("/api/files", json=file_body())).json()["file_id"]
    view = await eventually(lambda: answered_view(client, file_id), what="coordinated answer")
    office = view["referent"]["office"]

    # The file's own read model: every delay measured, every agency answered within its legal
    # deadline (each deadline arrives on its own topic, possibly after the answer).
    seen = {}

    async def measured():
        seen["file"] = await query(
            stack.database_urls["intake"],
            "SELECT referent_delay_s, contact_delay_s, answer_delay_s, office_name"
            " FROM file_metrics WHERE file_id = :f",
            f=file_id,
        )
        seen["agencies"] = await query(
            stack.database_urls["intake"],
            "SELECT agency, deadline_rule, due_on, answered_on FROM file_agencies"
            " WHERE file_id = :f",
            f=file_id,
        )
        in_time = [
            a
            for a in seen["agencies"]
            if a.deadline_rule and a.answered_on and a.answered_on <= a.due_on
        ]
        return (
            seen["file"]
            if len(in_time) == 3 and seen["file"][0].contact_delay_s is not None
            else None
        )

    try:
        # Three agencies, their deadlines and the first contact arrive on separate topics.
        [row] = await eventually(
            measured, timeout=120, what="the file's delays and agency deadlines"
        )
    except AssertionError as missing:
        raise AssertionError(seen) from missing
    assert row.office_name == office and row.referent_delay_s <= row.answer_delay_s < 86400

    found = (await client.get("/api/indicators")).json()
    national = found["national"]
    assert national["published"] and national["files"] >= 1 and national["answer_count"] >= 1
    assert national["answer_median_days"] is not None and national["deadline_within"] >= 3
    by_office = {o["label"]: o for o in found["offices"]}
    assert by_office[office]["published"] and by_office[office]["answer_count"] >= 1
    assert {"caf", "dgfip", "france_travail"} <= {
        a["id"] for a in found["agencies"] if a["deadline_within"]
    }
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).date().isoformat()
    assert (await client.get("/api/indicators", params={"from": tomorrow})).json()["national"][
        "files"
    ] is None
    backwards = await client.get("/api/indicators", params={"from": tomorrow, "to": "2020-01-01"})
    assert backwards.status_code == 422 and backwards.json()["message"].startswith("La date de fin")

    exported = await client.get("/api/indicators.csv")
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        exported.headers["content-disposition"]
        == 'attachment; filename="indicateurs-guichet-unique-tout.csv"'
    )
    lines = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8")), delimiter=";"))
    office_line = next(r for r in lines if r["libelle"] == office)
    assert office_line["niveau"] == "espace France Services" and office_line["publie"] == "oui"
    assert int(office_line["dossiers_avec_reponse_coordonnee"]) >= 1
    assert len(lines) == 1 + len(found["offices"]) + len(found["agencies"])
