"""The front desk books for a citizen on the phone (issue 16 §3), on the pages: from the
counter page, the file's reference leads to the slots page naming the citizen; the agent
books, moves and cancels there, stating why each time (sent to assignment, which keeps it in
its audit trail); a refusal comes back next to its field, what was typed kept. The backend
is assignment's answers in memory (tests.unit.test_web_appointments)."""

from __future__ import annotations

import pytest

from guichet_runtime.policy import Policy, route_policies
from tests.unit.test_web_appointments import (
    FIRST,
    NBSP,
    SECOND,
    TAKEN,
    WEDNESDAY,
    AppointmentsBackend,
)
from tests.unit.test_web_auth import pages, signed_in
from tests.unit.test_web_citizen_file import (  # noqa: F401  (the `settings` fixture)
    FILE_ID,
    form_token,
    settings,
)
from web.api.guichet_rendez_vous import ASK_REFERENCE
from web.backend import BackendError
from web.bootstrap import bootstrap

FRONT_DESK_LOGIN = {
    "kind": "agents",
    "claims": {
        "sub": "kc-julien",
        "iss": "http://127.0.0.1:1/realms/agents",
        "name": "Julien Durand",
        "agent_id": "AG-75-01-3",
        "roles": ["guichet"],
    },
    "access_token": "jeton-julien",
    "refresh_token": "renouvellement-julien",
    "expires_at": 4102444800,
}
ON_THE_PHONE = "Appel téléphonique de l'usager"
BASE = f"/guichet/dossiers/{FILE_ID}"
REASON_NEEDED = (
    "Indiquez le motif de cette action (au moins 5 caractères) : il est conservé dans le "
    "journal d'audit."
)


class PhoneBackend(AppointmentsBackend):
    """Assignment as the front desk of the référent's office sees it: the citizen's name
    with the appointments; the reasons stated are kept in `stated`."""

    def __init__(self) -> None:
        super().__init__()
        self.stated: list[tuple[str, str | None]] = []

    async def file_appointments(self, file_id: str) -> dict:
        found = await super().file_appointments(file_id)
        return {**found, "citizen": {"given_name": "Awa", "family_name": "Diallo"}}

    async def book_appointment(self, file_id, starts_at, access_reason=None) -> dict:
        self.stated.append(("book", access_reason))
        return await super().book_appointment(file_id, starts_at)

    async def move_appointment(self, file_id, appointment_id, starts_at, access_reason=None):
        self.stated.append(("move", access_reason))
        return await super().move_appointment(file_id, appointment_id, starts_at)

    async def cancel_appointment(self, file_id, appointment_id, reason, access_reason=None):
        self.stated.append(("cancel", access_reason))
        return await super().cancel_appointment(file_id, appointment_id, reason)

    async def registered_files(self) -> list[dict]:
        return []

    async def life_events(self) -> list[dict]:
        return [{"code": "naissance", "label": "Naissance d'un enfant", "agencies": ["CAF"]}]


def test_the_front_desk_finds_the_file_books_moves_and_cancels_stating_why(settings):  # noqa: F811
    backend = PhoneBackend()
    with pages(settings, backend) as client:
        signed_in(client, settings, FRONT_DESK_LOGIN)
        counter = client.get("/guichet")
        token = form_token(client, "/guichet")
        found = client.get("/guichet/rendez-vous", params={"dossier": f"  {FILE_ID.lower()} "})
        nothing = client.get("/guichet/rendez-vous", params={"dossier": "?"})
        slots = client.get(f"{BASE}/rendez-vous")
        # Assignment asks why: the refusal next to the reason, the slot still to choose.
        backend.refusal = BackendError(422, REASON_NEEDED, field="access_reason")
        unstated = client.post(
            f"{BASE}/rendez-vous", data={"starts_at": FIRST, "csrf_token": token}
        )
        booked = client.post(
            f"{BASE}/rendez-vous",
            data={"starts_at": FIRST, "access_reason": ON_THE_PHONE, "csrf_token": token},
        )
        confirmed = client.get(f"{BASE}/rendez-vous")
        moved = client.post(
            f"{BASE}/rendez-vous/RDV-1/deplacer",
            data={"starts_at": WEDNESDAY, "access_reason": ON_THE_PHONE, "csrf_token": token},
        )
        backend.refusal = BackendError(422, REASON_NEEDED, field="access_reason")
        cancel_unstated = client.post(
            f"{BASE}/rendez-vous/RDV-2/annuler",
            data={"cancel_reason": "Empêchement de l'usager.", "csrf_token": token},
        )
        cancelled = client.post(
            f"{BASE}/rendez-vous/RDV-2/annuler",
            data={
                "cancel_reason": "Empêchement de l'usager.",
                "cancel_access_reason": ON_THE_PHONE,
                "csrf_token": token,
            },
        )
        after = client.get(f"{BASE}/rendez-vous")

    # The counter page: a form asking for the reference, sent to the file's slots page.
    section = counter.text.split('id="rendez-vous-telephone"', 1)[1]
    assert 'action="/guichet/rendez-vous"' in section and 'name="dossier"' in section
    assert found.status_code == 303 and found.headers["location"] == f"{BASE}/rendez-vous"
    assert nothing.headers["location"] == "/guichet#rendez-vous-telephone"
    # The slots page names the citizen and asks why; its form posts under the front desk.
    assert "Usager : <strong>Awa Diallo</strong>" in slots.text
    assert f'action="{BASE}/rendez-vous"' in slots.text and 'name="access_reason"' in slots.text
    assert 'href="/guichet#rendez-vous-telephone"' in slots.text
    assert unstated.status_code == 422
    reason_error = unstated.text.split('id="access_reason-messages"')[1].split("</div>")[0]
    assert "Indiquez le motif de cette action" in reason_error
    assert 'name="starts_at" value="' + FIRST in unstated.text  # nothing booked, still free
    # Booked: back to the slots page, the confirmation and the appointment shown there.
    assert booked.status_code == 303 and booked.headers["location"] == f"{BASE}/rendez-vous"
    assert "Rendez-vous réservé pour l&#39;usager le mardi 2 mars 2027" in confirmed.text
    assert f"mardi 2 mars 2027 à 9{NBSP}h{NBSP}30</time>" in confirmed.text
    assert f'action="{BASE}/rendez-vous/RDV-1/deplacer"' in confirmed.text
    assert f'action="{BASE}/rendez-vous/RDV-1/annuler"' in confirmed.text
    assert moved.status_code == 303 and ("move", "RDV-1", WEDNESDAY) in backend.calls
    # Cancelling without a reason: refused next to it, the citizen's reason kept.
    assert cancel_unstated.status_code == 422
    kept = cancel_unstated.text.split('id="cancel_access_reason-messages"')[1].split("</div>")[0]
    assert "Indiquez le motif de cette action" in kept
    assert ">Empêchement de l&#39;usager.</textarea>" in cancel_unstated.text
    assert cancelled.status_code == 303
    assert "Le rendez-vous du mercredi 3 mars 2027" in after.text
    assert backend.upcoming is None
    assert backend.stated == [
        ("book", ""),
        ("book", ON_THE_PHONE),
        ("move", ON_THE_PHONE),
        ("cancel", ""),
        ("cancel", ON_THE_PHONE),
    ]
    assert ASK_REFERENCE in nothing_flash(settings)


def nothing_flash(settings) -> str:  # noqa: F811
    """The counter page after a reference that is none: the message asking for one."""
    with pages(settings, PhoneBackend()) as client:
        signed_in(client, settings, FRONT_DESK_LOGIN)
        client.get("/guichet/rendez-vous", params={"dossier": ""})
        return client.get("/guichet").text


def test_the_slot_taken_meanwhile_comes_back_next_to_the_slots_the_reason_kept(settings):  # noqa: F811
    backend = PhoneBackend()
    with pages(settings, backend) as client:
        signed_in(client, settings, FRONT_DESK_LOGIN)
        token = form_token(client, "/guichet")
        backend.refusal = BackendError(409, TAKEN, field="starts_at")
        lost = client.post(
            f"{BASE}/rendez-vous",
            data={"starts_at": SECOND, "access_reason": ON_THE_PHONE, "csrf_token": token},
        )
    assert lost.status_code == 409
    assert TAKEN.replace("'", "&#39;") in lost.text.split('id="starts_at-messages"')[1]
    assert 'value="Appel téléphonique de l&#39;usager"' in lost.text
    assert backend.upcoming is None


@pytest.mark.parametrize(
    "route",
    [
        "GET /guichet/rendez-vous",
        "GET /guichet/dossiers/{file_id}/rendez-vous",
        "POST /guichet/dossiers/{file_id}/rendez-vous",
        "POST /guichet/dossiers/{file_id}/rendez-vous/{appointment_id}/deplacer",
        "POST /guichet/dossiers/{file_id}/rendez-vous/{appointment_id}/annuler",
    ],
)
def test_each_front_desk_appointment_page_declares_its_policy(settings, route):  # noqa: F811
    assert route_policies(bootstrap(settings))[route] is Policy.AGENT


def test_the_front_desk_pages_send_to_the_login_first(settings):  # noqa: F811
    with pages(settings, PhoneBackend()) as client:
        response = client.get(f"{BASE}/rendez-vous")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/connexion/agents?suite=")
