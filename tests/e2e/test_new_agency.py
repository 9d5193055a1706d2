"""A fifth agency joins without touching the core: its adapter is installed (the
`adapter-ants` package, found by its entry point) and the catalogue gains one line, a life
event that reaches it. On a real Kafka broker and real processes, a file for that life
event goes to the (simulated) ANTS, whose decision comes back in the coordinated answer,
and the exchange ledger shows the transmission both ways."""

from __future__ import annotations

import pytest

from adapter_sdk import discovery
from devstack.stack import Stack
from shared_models.catalogue import DEFAULT_CATALOGUE
from tests.e2e.support import (
    ANTS_LINE,
    answered_view,
    assert_no_repeats,
    citizen_client,
    eventually,
    file_body,
    shared_catalogue_path,
    simulator,
)

pytestmark = pytest.mark.integration

ANTS = "Agence nationale des titres sécurisés (ANTS)"


@pytest.fixture(scope="module")
def stack(shared_stack):
    """The session's SQLite stack: the ANTS's adapter and simulator run beside the four
    agencies', and its catalogue is the shipped one plus ANTS_LINE (tests/e2e/conftest.py)."""
    st = shared_stack("sqlite")
    catalogue = shared_catalogue_path(st.workdir).read_text(encoding="utf-8")
    assert catalogue == DEFAULT_CATALOGUE.read_text(encoding="utf-8") + ANTS_LINE  # one line more
    return st


async def test_one_catalogue_line_makes_a_file_reach_the_ants_end_to_end(stack: Stack, tokens):
    assert discovery.available()["ants"] == "adapter_ants:AntsAdapter"
    async with citizen_client(stack, tokens) as client:  # Marie's file
        offered = {e["code"]: e for e in (await client.get("/api/life-events")).json()}
        assert offered["perte_papiers"]["agencies"] == [ANTS]
        body = file_body("perte_papiers", email="papiers@example.fr")
        response = await client.post("/api/files", json=body)
        assert response.status_code == 201, response.text
        file_id = response.json()["file_id"]
        view = await eventually(
            lambda: answered_view(client, file_id), timeout=90, what="the ANTS's answer"
        )

    [decision] = view["answer"]["decisions"]
    assert decision["agency"] == "ants" and decision["decision"] in ("accorde", "refuse")
    assert ANTS in view["answer"]["text"]
    agencies = [(a["agency"], a["label"], a["status"]) for a in view["agencies"]]
    assert agencies == [("ants", ANTS, "repondu")]

    ledger = view["exchanges"]
    directions = sorted((x["agency"], x["direction"]) for x in ledger)
    assert directions == [("ants", "envoi"), ("ants", "reception")]
    assert all("Décret n° 55-1397" in x["legal_basis"] for x in ledger)
    assert all(len(x["payload_sha256"]) == 64 for x in ledger)
    async with simulator(stack, "ants") as sim:
        received = (await sim.get("/agencies/ants/received")).json()
    received = [r for r in received if r["file_id"] == file_id]
    # The ANTS got the request once, with only the fields its adapter declares.
    assert len(received) == 1 and received[0]["life_event"] == "perte_papiers"
    assert set(received[0]["citizen"]) == {"given_name", "family_name", "postcode"}
    await assert_no_repeats(stack, [file_id])  # ... and only once: no call repeated
