"""Issue 12's attacks on intake, assignment and the adapters ("Why"), each sent as it was,
to the real stack with Keycloak: every one is now refused and changes nothing. (The pages'
attacks, a forged session cookie and `?agent=nobody`, are in the web's tests.)"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from devstack.smtp_sink import read_maildir
from guichet_runtime.tls_context import client_tls
from tests.e2e.auth_support import Tokens
from tests.e2e.authz_support import (
    ABSENT_AGENT,
    MARIE,
    Scenario,
    file_body,
    scalar,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

OUTSIDER = "pirate@example.net"


@pytest.fixture(scope="module")
def world(shared_stack, keycloak):
    """The scenario's files on the session's SQLite stack (tests/e2e/conftest.py)."""
    return Scenario(shared_stack("sqlite"), Tokens(keycloak)).set_up()


def refused(answer: httpx.Response, status: int = 401) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["kind"] == ("unauthenticated" if status == 401 else "forbidden")
    assert answer.json()["message"]  # in French, for whoever reads it


def test_anonymous_cannot_read_a_files_record_nor_its_answer(world: Scenario):
    """`GET :8000/api/files/{id}/record` gave the citizen's name, email, phone, postcode and
    own words; `GET /api/files/{id}` the answer, its amounts, the timeline and the ledger."""
    with httpx.Client(base_url=world.stack.intake_url, timeout=10, verify=client_tls()) as intake:
        for file_id in (world.file_a, world.file_b):
            record = intake.get(f"/api/files/{file_id}/record")
            refused(record)
            assert "Dupont" not in record.text and "Bernard" not in record.text
            refused(intake.get(f"/api/files/{file_id}"))
            refused(intake.get(f"/api/files/{file_id}/messages"))
        # A file id that does not exist looks the same: ids reveal nothing.
        refused(intake.get("/api/files/DOS-0000-NOPE/record"))


def test_anonymous_cannot_list_every_open_file_by_its_deadlines(world: Scenario):
    with httpx.Client(
        base_url=world.stack.assignment_url, timeout=10, verify=client_tls()
    ) as assignment:
        answer = assignment.get("/api/supervision/deadlines", params={"within_days": 366})
        refused(answer)
        assert world.file_a not in answer.text
        refused(assignment.get("/api/supervision/waiting"))
        refused(assignment.get("/api/supervision/portfolios"))


def test_anonymous_cannot_read_a_referents_portfolio(world: Scenario):
    referent = world.referents[world.file_a]
    with httpx.Client(
        base_url=world.stack.assignment_url, timeout=10, verify=client_tls()
    ) as assignment:
        answer = assignment.get(f"/api/agents/{referent}/portfolio")
        refused(answer)
        assert "Dupont" not in answer.text
        # Another référent's token does not open it either.
        other = assignment.get(
            f"/api/agents/{referent}/portfolio", headers=world.headers("other_referent")
        )
        refused(other, 403)


def test_an_outsider_cannot_change_the_contact_and_the_code_still_goes_to_the_citizen(
    world: Scenario,
):
    """The outsider put their own email on the file, then asked for a code: it came to them
    and opened the file."""
    stolen = {**{k: v for k, v in MARIE.items() if "name" not in k}, "email": OUTSIDER}
    url = f"/api/files/{world.file_a}/contact-preferences"
    with httpx.Client(base_url=world.stack.intake_url, timeout=10, verify=client_tls()) as intake:
        refused(intake.put(url, json=stolen))
        refused(intake.put(url, json=stolen, headers={"X-Access-Proof": "x" * 43}))
        refused(intake.put(url, json=stolen, headers=world.headers("citizen_b")), 403)
        refused(intake.put(url, json=stolen, headers=world.headers("other_referent")), 403)
        citizen = scalar(
            world.stack, "intake", "SELECT citizen FROM files WHERE file_id = :f", f=world.file_a
        )
        citizen = json.loads(citizen) if isinstance(citizen, str) else citizen
        assert citizen["email"] == MARIE["email"]
        asked = intake.post(f"/api/files/{world.file_a}/access-codes")
        assert asked.status_code == 202, asked.text

    def code_mails() -> list:
        return [
            m
            for m in read_maildir(world.stack.maildir)
            if m["Subject"] == f"Votre dossier {world.file_a} : votre code d'accès"
        ]

    mails = wait_for(code_mails, what="the access code's email")
    assert {m["To"] for m in mails} == {MARIE["email"]}
    assert not [m for m in read_maildir(world.stack.maildir) if OUTSIDER in (m["To"] or "")]


def test_a_forged_france_travail_callback_is_refused_and_recorded(world: Scenario):
    """`POST :8013/callbacks` with a made-up France Travail decision was taken from anyone."""
    stack = world.stack
    with httpx.Client(base_url=stack.intake_url, timeout=10, verify=client_tls()) as intake:
        body = file_body({**MARIE, "postcode": "93200", "email": "rappel@example.fr"})
        body["life_event"] = "perte_emploi"
        created = intake.post("/api/files", json=body)
        assert created.status_code == 201, created.text
    file_id = created.json()["file_id"]
    request_id = f"{file_id}-france_travail"
    wait_for(
        lambda: scalar(
            stack,
            "adapter-france-travail",
            "SELECT count(*) FROM exchanges WHERE request_id = :r",
            r=request_id,
        ),
        what="the France Travail request",
    )
    forged = {
        "callback_id": "forge-authz-1",
        "request_id": request_id,
        "decision": {
            "decision": "refuse",
            "summary": "Décision inventée par un tiers",
            "agency_reference": "FT-2026-000000000000",
            "reason": "Rappel forgé.",
        },
    }
    with httpx.Client(
        base_url=stack.adapter_url("france_travail"), timeout=10, verify=client_tls()
    ) as adapter:
        refused(adapter.post("/callbacks", json=forged))
        # Nor does a token of France Travail's own service account replace the signature.
        token = world.tokens.agency("france_travail")
        refused(adapter.post("/callbacks", json=forged, headers=token))
        refused(
            adapter.post(
                "/callbacks",
                json=forged,
                headers={"X-Signature": f"t={int(time.time())},v1={'0' * 64}"},
            )
        )
        metrics = adapter.get("/metrics").text
    assert 'adapter_callbacks_refused_total{agency="france_travail"' in metrics

    def recorded() -> bool:
        purposes = scalar(
            stack,
            "adapter-france-travail",
            "SELECT group_concat(purpose, '|') FROM exchanges WHERE request_id = :r",
            r=request_id,
        )
        return "Rappel refusé" in (purposes or "")

    wait_for(recorded, what="the refused callback in the exchange ledger")
    # Whatever the real decision's timing, the forged one is nowhere in the citizen's file.
    world.referent_known(file_id)
    view = httpx.get(
        f"{stack.intake_url}/api/files/{file_id}",
        headers=world.headers("supervisor"),
        timeout=10,
        verify=client_tls(),
    )
    assert view.status_code == 200, view.text
    assert "Décision inventée" not in view.text


def test_messages_and_personal_word_in_the_referents_name_are_refused(world: Scenario):
    """The référent's agent_id is public in the citizen's view: with it in the body, anyone
    sent an official message or a personal word signed with the référent's name."""
    referent = world.referents[world.file_a]
    message = {"agent_id": referent, "text": "Votre dossier est clos, rappelez le 0899 00 00 00."}
    word = {"agent_id": referent, "text": "Appelez-moi au 0899 00 00 00."}
    outsiders = ("anonymous", "citizen_a", "citizen_b", "other_referent", "supervisor")
    for principal in outsiders:
        status = 401 if principal == "anonymous" else 403
        headers = world.headers(principal)
        answer = httpx.post(
            f"{world.stack.intake_url}/api/files/{world.file_a}/messages",
            json=message,
            headers=headers,
            timeout=10,
            verify=client_tls(),
        )
        refused(answer, status)
        with httpx.Client(
            base_url=world.stack.assignment_url, timeout=10, verify=client_tls()
        ) as assignment:
            path = f"/api/files/{world.file_a}/personal-word"
            refused(assignment.put(path, json=word, headers=headers), status)
            refused(assignment.delete(path, params={"agent_id": referent}, headers=headers), status)
    sent = scalar(
        world.stack,
        "intake",
        "SELECT count(*) FROM referent_messages WHERE file_id = :f",
        f=world.file_a,
    )
    assert sent == 0
    personal = scalar(
        world.stack,
        "assignment",
        "SELECT personal_word FROM files WHERE file_id = :f",
        f=world.file_a,
    )
    assert personal is None


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/directory/import", {"version": "pirate", "offices": [], "agents": []}),
        (
            "POST",
            "/api/agents",
            {
                "agent_id": "AG-75-01-66",
                "name": "Faux Agent",
                "office_id": "FS-75-01",
                "phone": "08 99 00 00 00",
                "email": "faux@example.net",
                "agencies": ["caf"],
                "capacity": 40,
            },
        ),
        ("POST", f"/api/agents/{ABSENT_AGENT}/departure", {"reason": "parti"}),
        (
            "POST",
            f"/api/agents/{ABSENT_AGENT}/absences",
            {"starts_on": "2026-12-01", "ends_on": "2027-12-01", "reason": "absent"},
        ),
        ("POST", "/api/files/{file_id}/reassign", {"reason": "Réaffectation pirate."}),
    ],
)
def test_anonymous_cannot_run_the_directory(world: Scenario, method: str, path: str, body):
    """Marking every agent as departed stopped the network; importing a new phone number for
    a référent put an outsider's number on citizens' letters."""
    url = world.stack.assignment_url + path.format(file_id=world.file_a)
    stack = world.stack

    def agent_state() -> tuple:
        """The agent's status and absences (on a shared stack, other tests may have
        recorded and ended absences of theirs before: the refused calls add none)."""
        status = scalar(
            stack, "assignment", "SELECT status FROM agents WHERE agent_id = :a", a=ABSENT_AGENT
        )
        absences = scalar(
            stack, "assignment", "SELECT count(*) FROM absences WHERE agent_id = :a", a=ABSENT_AGENT
        )
        return status, absences

    before = agent_state()
    refused(httpx.request(method, url, json=body, timeout=10, verify=client_tls()))
    # An agent who is not an administrator nor the office's supervisor is refused too.
    refused(
        httpx.request(
            method,
            url,
            json=body,
            headers=world.headers("referent"),
            timeout=10,
            verify=client_tls(),
        ),
        403,
    )
    assert agent_state() == before and before[0] == "actif"
    assert not scalar(
        stack, "assignment", "SELECT count(*) FROM agents WHERE agent_id = 'AG-75-01-66'"
    )
    assert (
        scalar(
            stack, "assignment", "SELECT referent_id FROM files WHERE file_id = :f", f=world.file_a
        )
        == world.referents[world.file_a]
    )
