"""The authorisation matrix (issue 12, item 7), on one real stack with real Keycloak tokens.

Every route of intake, assignment and an adapter (France Travail's: the asynchronous agency,
with callbacks) is called as each principal of the matrix in docs/security.md
(tests/security_matrix.py reads it), on the files of the scenario (tests/e2e/authz_support.py).
A cell `oui` must open the door: 2xx, or a business answer from behind it (409, 422, 429);
a cell `non` must be refused: 401 for an anonymous caller or a token not meant for the service
(an agency's token is meant for its own adapter only), 403 for an identified caller without
the right. A refused call changes nothing, so in each row the refused calls go first; rows
that change who the référent is go last.

The routes come from the apps themselves: a route without a row, or without a request below,
fails the first test.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from guichet_runtime.policy import Policy, route_policies, routes_without_policy
from guichet_runtime.tls_context import client_tls
from tests.e2e.authz_support import (
    ABSENT_AGENT,
    LUCAS,
    MARIE,
    Scenario,
    file_body,
    start_stack,
)
from tests.security_matrix import PRINCIPALS, RUNTIME, Row, app_builders, read_tables

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

#: The services the matrix calls, and the table group of each.
SERVICES = {"intake": "intake", "assignment": "assignment", "adapter-france_travail": "adapters"}
#: Business answers that prove the door opened (and, for the one-time code, its limits:
#: three codes per quarter of an hour per file, whoever asks).
OPENED = {409, 422}
OPENED_CODES = OPENED | {429}
#: The key id on the key service's row: the door refuses before anything is looked up.
UNKNOWN_KEY = "00000000-0000-4000-8000-000000000000"
#: An appointment no file has: behind the door, moving or cancelling it is a 404 (the file's
#: door opened: the files of the scenario exist), and nothing changes.
UNKNOWN_APPOINTMENT = "00000000-0000-4000-8000-00000000a11e"
#: Rows that change the file's référent: called last, in this order.
LAST = ("POST /api/files/{file_id}/reassign", "POST /api/files/{file_id}/referent-change")
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def _contact(citizen: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in citizen.items() if k not in ("given_name", "family_name")}


def request(world: Scenario, row: Row, principal: str) -> dict[str, Any]:
    """The request a principal sends for a row: httpx.request's keyword arguments besides
    the method and URL (every body is well formed: what it would really send)."""
    route = row.route
    today = dt.datetime.now(dt.UTC).date()
    match route:
        case "POST /api/files":
            citizen = LUCAS if principal == "citizen_b" else MARIE
            channel = "guichet" if principal == "front_desk" else None
            return {"json": file_body(citizen, channel)}
        case "POST /api/files/{file_id}/access-codes/verify":
            # Not a code: 422 behind the door, and no try is spent on the file's live code.
            return {"json": {"code": "pas un code"}}
        case "POST /api/files/{file_id}/documents":
            return {"files": {"fichier": ("justificatif.pdf", PDF, "application/pdf")}}
        case "POST /api/files/{file_id}/citizen-messages":
            # No words: 422 behind the door, and nothing is written to the référent.
            return {"data": {"text": ""}}
        case "POST /api/files/{file_id}/messages":
            return {"json": {"text": "Bonjour, votre dossier avance : je vous tiens informée."}}
        case "POST /api/files/{file_id}/survey":
            return {"json": {"score": 5, "referent_reachable": True}}
        case "POST /api/files/{file_id}/thanks":
            return {"json": {"message": "Merci encore pour votre aide."}}
        case "PUT /api/files/{file_id}/contact-preferences":
            return {"json": _contact(MARIE if row.file != "B" else LUCAS)}
        case "POST /api/files/{file_id}/referent-change":
            return {"json": {"reason": "Je préfère un référent plus proche de chez moi."}}
        case "POST /api/files/{file_id}/erasure":
            # Not confirmed: 422 behind the door, and nothing is erased (the file may be
            # closed by then).
            return {"json": {"confirm": False}}
        case (
            "POST /api/files/{file_id}/appointments"
            | "POST /api/files/{file_id}/appointments/{appointment_id}/move"
        ):
            # A time that is never a slot (a Sunday, long past): 422 behind the door, or 404
            # for the unknown appointment; nothing is booked.
            return {"json": {"starts_at": "2024-01-07T09:00:00+01:00"}}
        case "POST /api/files/{file_id}/appointments/{appointment_id}/cancel":
            return {"json": {"reason": "Contrôle des droits."}}
        case "GET /api/supervision/deadlines":
            return {"params": {"within_days": 366}}
        case "PUT /api/files/{file_id}/personal-word":
            return {"json": {"text": "Je reste à votre écoute pour la suite."}}
        case "POST /api/agents":
            return {
                "json": {
                    "agent_id": "AG-75-01-8",
                    "name": "Inès Fontaine",
                    "office_id": "FS-75-01",
                    "phone": "01 40 13 24 38",
                    "email": "ines.fontaine@france-services.gouv.fr",
                    "agencies": ["caf", "cpam"],
                    "capacity": 10,
                }
            }
        case "POST /api/directory/import":
            # Not a directory: the administrator gets 422, and nothing is imported.
            return {"json": {"pas": "un annuaire"}, "params": {"reason": "Contrôle des droits."}}
        case "GET /api/files/{file_id}/record":
            return {"params": {"reason": "Contrôle des droits d'accès."}}
        case "POST /api/agents/{agent_id}/absences":
            start = today + dt.timedelta(days=30)
            return {
                "json": {
                    "starts_on": start.isoformat(),
                    "ends_on": (start + dt.timedelta(days=2)).isoformat(),
                    "reason": "congés",
                }
            }
        case "POST /api/agents/{agent_id}/departure":
            return {"json": {"reason": "mutation"}}
        case "POST /api/files/{file_id}/reassign":
            referent = world.referents[world.file_a]
            return {"json": {"reason": "Rééquilibrage des portefeuilles.", "agent_id": referent}}
        case "POST /callbacks":
            return {
                "json": {
                    "request_id": f"{world.file_a}-france_travail",
                    "decision": {"status": "accorde", "summary": "Droits ouverts."},
                }
            }
    return {}


#: Writes sent without a body (what they really are).
NO_BODY = {
    "POST /api/files/{file_id}/access-codes",
    "POST /api/agents/{agent_id}/return",
    "DELETE /api/files/{file_id}/personal-word",
    "POST /api/files/{file_id}/citizen-messages/read",
}


def path(world: Scenario, row: Row) -> str:
    agent = (
        ABSENT_AGENT
        if row.path.startswith("/api/agents/{agent_id}/") and (row.method == "POST")
        else world.referents[world.file_a]
    )
    # The key service (SERVICE_KEYS): no principal of the matrix is one of our services.
    return row.path.format(
        file_id=world.file(row.file),
        agent_id=agent,
        key_id=UNKNOWN_KEY,
        attachment_id=world.attachment,
        appointment_id=UNKNOWN_APPOINTMENT,
    )


def tokens_accepted(service: str, principal: str) -> bool:
    """Whether `service` takes this principal's token at all (its audience): agencies'
    tokens are meant for their own adapter, people's for intake and assignment."""
    if principal in ("anonymous", "code_holder"):
        return True
    if service.startswith("adapter-"):
        return principal == service.removeprefix("adapter-").replace("_", "-")
    return principal not in ("caf", "dgfip")


def check(service: str, row: Row, principal: str, answer: httpx.Response) -> str | None:
    """What is wrong with this answer for this cell, or None."""
    status = answer.status_code
    if row.cells[principal]:
        opened = OPENED_CODES if row.policy is Policy.ONE_TIME_CODE else OPENED
        if "{appointment_id}" in row.path:
            opened = opened | {404}
        if status < 400 or status in opened:
            return None
        return f"allowed, got {status}"
    if status == 429:
        return "denied, got 429: a rate limit counted the call before the policy refused it"
    if status not in (401, 403):
        return f"LEAK: denied, got {status}"
    must_be_401 = (
        principal in ("anonymous", "code_holder")
        or not tokens_accepted(service, principal)
        or row.policy is Policy.AGENCY_CALLBACK
    )
    expected = 401 if must_be_401 else 403
    return None if status == expected else f"denied with {status}, expected {expected}"


def matrix_rows() -> list[tuple[str, Row]]:
    """(service, row) in calling order: reads, then writes, then the rows in LAST."""
    rows = read_tables()
    calls = []
    for service, group in SERVICES.items():
        calls += [(service, r) for r in rows if r.cells and r.group in (group, RUNTIME)]

    def order(call: tuple[str, Row]) -> tuple[int, int]:
        row = call[1]
        if row.route in LAST:
            return (2, LAST.index(row.route))
        return (0 if row.method == "GET" else 1, 0)

    return sorted(calls, key=order)


@pytest.fixture(scope="module")
def world(tmp_path_factory, kafka_bootstrap, keycloak):
    from tests.e2e.auth_support import Tokens

    stack = start_stack(tmp_path_factory.mktemp("authz-matrix"), kafka_bootstrap, keycloak)
    try:
        yield Scenario(stack, Tokens(keycloak)).set_up()
    finally:
        stack.stop()


def test_every_route_has_a_matrix_row_and_a_request(tmp_path):
    """The routes come from the apps: a new route without a row in docs/security.md fails."""
    rows = read_tables()
    for service, group in SERVICES.items():
        app = app_builders()[service][1](tmp_path / service)
        routes = set(route_policies(app)) | set(routes_without_policy(app))
        in_matrix = {r.route for r in rows if r.cells and r.group in (group, RUNTIME)}
        assert routes - in_matrix == set(), f"{service}: routes without a matrix row"
        assert in_matrix - routes == set(), f"{service}: matrix rows without a route"
    # A write needs the request it would really send (request() above), or to say it has none.
    blank = Scenario(stack=None, tokens=None, file_a="F-A", file_b="F-B")  # type: ignore[arg-type]
    blank.referents = {"F-A": "AG-A", "F-B": "AG-B"}
    for row in rows:
        if row.cells and row.method != "GET" and row.route not in NO_BODY:
            principal = next(iter(PRINCIPALS.values()))
            assert request(blank, row, principal), f"{row.route}: no request written"


def test_every_cell_of_the_matrix(world: Scenario):
    problems: list[str] = []
    calls = 0
    for service, row in matrix_rows():
        url = world.url(service) + path(world, row)
        # Refused calls first: they must change nothing for the allowed ones.
        for principal in sorted(PRINCIPALS.values(), key=lambda p: row.cells[p]):
            answer = httpx.request(
                row.method,
                url,
                headers=world.headers(principal, row.file),
                timeout=15,
                verify=client_tls(),
                **request(world, row, principal),
            )
            calls += 1
            wrong = check(service, row, principal, answer)
            if wrong:
                problems.append(
                    f"{service} {row.route} [{row.file or '-'}] as {principal}: {wrong} "
                    f"{answer.text[:160]!r}"
                )
    assert calls >= len(PRINCIPALS) * 40
    assert not problems, f"{len(problems)} cells wrong of {calls}:\n" + "\n".join(problems)


#: A front-desk agent of another office (Marseille, FS-13-01), in the directory.
FRONT_DESK_ELSEWHERE = "AG-13-01-2"
ON_THE_PHONE = "Appel téléphonique de l'usager"


def test_only_the_front_desk_of_the_referents_office_books_on_the_phone(world: Scenario):
    """FILE_APPOINTMENTS beyond the cells: the front desk of another office is refused (403)
    and an anonymous caller asked to log in (401) on file A's appointments, with a reason
    stated; the front desk of the référent's office is let in, and without a reason gets
    the French 422 that asks for one. Nothing is booked (a time that is never a slot)."""
    url = f"{world.url('assignment')}/api/files/{world.file_a}/appointments"
    body = {"starts_at": "2024-01-07T09:00:00+01:00", "access_reason": ON_THE_PHONE}
    elsewhere = world.tokens.agent_id(FRONT_DESK_ELSEWHERE, roles=("guichet",))
    for method, target, sent in (
        ("GET", url, None),
        ("GET", f"{url}/slots", None),
        ("POST", url, body),
        ("POST", f"{url}/{UNKNOWN_APPOINTMENT}/move", body),
        ("POST", f"{url}/{UNKNOWN_APPOINTMENT}/cancel", {"access_reason": ON_THE_PHONE}),
    ):
        refused = httpx.request(
            method, target, json=sent, headers=elsewhere, timeout=15, verify=client_tls()
        )
        assert refused.status_code == 403, (target, refused.text)
        assert refused.json()["message"] == "Vous n'avez pas accès à cette ressource."
        anonymous = httpx.request(method, target, json=sent, timeout=15, verify=client_tls())
        assert anonymous.status_code == 401, (target, anonymous.text)
    office_desk = world.headers("front_desk")
    card = httpx.get(url, headers=office_desk, timeout=15, verify=client_tls())
    assert card.status_code == 200, card.text
    assert card.json()["citizen"]["family_name"] == "Dupont"
    unstated = httpx.post(
        url,
        json={"starts_at": body["starts_at"]},
        headers=office_desk,
        timeout=15,
        verify=client_tls(),
    )
    assert unstated.status_code == 422 and unstated.json()["field"] == "access_reason"
    stated = httpx.post(url, json=body, headers=office_desk, timeout=15, verify=client_tls())
    assert stated.status_code == 422 and stated.json()["field"] == "starts_at"
