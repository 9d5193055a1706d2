"""The citizen's file page through its routes, with intake and assignment replaced by a fake
backend (a FastAPI dependency override): the page reads intake's explicit flags — whether the
référent now in charge was already thanked, whether the survey was answered — and says each
decision and amount in the words every service uses."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from web.api.deps import get_backend
from web.backend import BackendError
from web.bootstrap import bootstrap
from web.settings import WebSettings

FILE_ID = "GU-2026-PAGE0001"

VIEW = {
    "file_id": FILE_ID,
    "life_event_label": "Naissance d'un enfant",
    "status": "repondu",
    "created_at": "2026-11-24T10:00:00+00:00",
    "referent": {
        "name": "Sophie Lefebvre",
        "phone": "04 78 12 34 56",
        "agent_id": None,
        "email": "sophie.lefebvre@france-services.gouv.fr",
        "office": "FS Villeurbanne",
    },
    "agencies": [
        {
            "agency": "caf",
            "label": "Caisse d'allocations familiales (CAF)",
            "status": "repondu",
            "deadline": None,
            "due_on": None,
            "requested_document": None,
        }
    ],
    "answer": {
        "issued_at": "2026-12-02T09:00:00+00:00",
        "text": "Bonjour,\n\nVoici la réponse.",
        "decisions": [
            {
                "agency": "caf",
                "decision": "accorde",
                "summary": "Prime accordée.",
                "amount_eur": 2168.13,
                "start_date": None,
                "reason": None,
            }
        ],
    },
    "exchanges": [],
    "timeline": [{"kind": "depot", "at": "2026-11-24T10:00:00+00:00", "label": "Dossier déposé"}],
    "thanked": False,
    "survey_answered": False,
}

CITIZEN = {
    "given_name": "Awa",
    "family_name": "Diallo",
    "email": "awa@example.fr",
    "phone": None,
    "street": None,
    "postcode": "93200",
    "city": None,
    "preferred_channel": "email",
}


class FakeBackend:
    """The calls the citizen's file page makes, answered from memory."""

    def __init__(self, view: dict) -> None:
        self.view = view

    async def verify_access_code(self, file_id: str, code: str) -> dict:
        return {"message": "Code accepté."}

    async def file_view(self, file_id: str) -> dict:
        return self.view

    async def assignment_record(self, file_id: str) -> dict:
        return {"deadline": "2027-01-24"}

    async def file_contact(self, file_id: str) -> dict:
        return {k: v for k, v in CITIZEN.items() if k not in ("given_name", "family_name")}

    async def file_thread(self, file_id: str) -> list[dict]:
        return []

    async def file_appointments(self, file_id: str) -> dict:
        return {"referent": None, "upcoming": None, "appointments": []}

    async def file_record(self, file_id: str) -> dict:
        # The agents' record (FILE_AGENTS): intake refuses it to a citizen.
        raise BackendError(403, "Vous n'avez pas accès à cette ressource.")

    async def close(self) -> None:
        return None


@pytest.fixture
def settings(tmp_path: Path) -> WebSettings:
    (tmp_path / "@gouvfr" / "dsfr" / "dist").mkdir(parents=True)
    return WebSettings(
        assets_dir=tmp_path,
        secret_key="test-only-secret",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/web.db",
    )


def form_token(client: TestClient, path: str = "/suivi") -> str:
    """The CSRF token of this browser's session, as a page's form carries it."""
    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def open_with_code(client: TestClient, **extra: str) -> object:
    return client.post(
        "/suivi/code",
        data={"reference": FILE_ID, "code": "123456", "csrf_token": form_token(client)},
        **extra,
    )


@contextmanager
def client_for(settings: WebSettings, view: dict) -> Iterator[TestClient]:
    app = bootstrap(settings)
    app.dependency_overrides[get_backend] = lambda: FakeBackend(view)
    with TestClient(app) as client:
        yield client


def file_page(settings: WebSettings, **flags: object) -> str:
    """The file page as the citizen sees it once their code opened it."""
    view = {**copy.deepcopy(VIEW), **flags}
    with client_for(settings, view) as client:
        opened = open_with_code(client)
    assert opened.status_code == 200 and str(opened.url).endswith(f"/dossier/{FILE_ID}")
    return opened.text


def test_a_referent_not_yet_thanked_can_be_thanked(settings):
    html = file_page(settings, thanked=False)

    assert f'action="/dossier/{FILE_ID}/merci"' in html and "Remercier mon référent" in html
    assert "Vous avez remercié" not in html


def test_a_referent_already_thanked_is_not_offered_again(settings):
    html = file_page(settings, thanked=True)

    assert "Vous avez remercié Sophie Lefebvre : votre message lui a été transmis." in html
    assert f'action="/dossier/{FILE_ID}/merci"' not in html


def test_the_survey_is_answered_once(settings):
    open_survey = file_page(settings, survey_answered=False)
    answered = file_page(settings, survey_answered=True)

    assert f'action="/dossier/{FILE_ID}/enquete"' in open_survey
    assert "Vous avez répondu à l'enquête pour ce dossier" in answered
    assert f'action="/dossier/{FILE_ID}/enquete"' not in answered


def test_decisions_and_amounts_are_said_in_the_shared_wording(settings):
    decisions = file_page(settings).split('id="decisions"')[1].split("</table>")[0]

    assert "<td>Accordé</td>" in decisions
    assert "Montant : 2\u202f168,13\u00a0€." in decisions


def test_the_page_needs_intakes_flags(settings):
    view = {k: v for k, v in VIEW.items() if k != "thanked"}
    with client_for(settings, view) as client, pytest.raises(KeyError, match="thanked"):
        open_with_code(client)


def test_a_file_not_opened_with_a_code_sends_to_the_code_form(settings):
    with client_for(settings, VIEW) as client:
        response = client.get(f"/dossier/{FILE_ID}", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/suivi?dossier={FILE_ID}"


def test_agents_are_sent_to_their_login_then_back(settings):
    with client_for(settings, VIEW) as client:
        assert client.get("/health").json() == {"status": "ok", "service": "web"}
        response = client.get("/referent", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/connexion/agents?suite=%2Freferent"


class ProvingBackend(FakeBackend):
    """Intake as it answers a verified code (with a proof), and the contact changes it got."""

    def __init__(self, view: dict, refuse: BackendError | None = None) -> None:
        super().__init__(view)
        self.refuse = refuse
        self.changes: list[tuple[str, dict, str | None]] = []

    async def verify_access_code(self, file_id: str, code: str) -> dict:
        return {"file_id": file_id, "access": "accorde", "proof": "preuve-de-ce-navigateur"}

    async def change_contact_preferences(
        self, file_id: str, body: dict, access_proof: str | None
    ) -> dict:
        self.changes.append((file_id, body, access_proof))
        if self.refuse:
            raise self.refuse
        return {"message": "Vos préférences de contact sont enregistrées."}


CONTACT_FORM = {"preferred_channel": "email", "email": "awa@nouveau.fr", "postcode": "93200"}


def test_a_contact_change_carries_the_proof_the_code_gave(settings):
    backend = ProvingBackend(VIEW)
    app = bootstrap(settings)
    app.dependency_overrides[get_backend] = lambda: backend
    with TestClient(app) as client:
        open_with_code(client)
        token = form_token(client, f"/dossier/{FILE_ID}")
        done = client.post(
            f"/dossier/{FILE_ID}/contact", data={**CONTACT_FORM, "csrf_token": token}
        )

    assert done.status_code == 200 and "préférences de contact sont enregistrées" in done.text
    [(file_id, body, proof)] = backend.changes
    assert (file_id, body["email"], proof) == (FILE_ID, "awa@nouveau.fr", "preuve-de-ce-navigateur")


def test_a_proof_intake_no_longer_takes_asks_for_a_new_code(settings):
    expired = BackendError(401, "Votre accès au dossier a expiré : demandez un nouveau code.")
    backend = ProvingBackend(VIEW, refuse=expired)
    app = bootstrap(settings)
    app.dependency_overrides[get_backend] = lambda: backend
    with TestClient(app) as client:
        open_with_code(client)
        token = form_token(client, f"/dossier/{FILE_ID}")
        refused = client.post(
            f"/dossier/{FILE_ID}/contact",
            data={**CONTACT_FORM, "csrf_token": token},
            follow_redirects=False,
        )
        asked = client.get(refused.headers["location"])
        closed = client.get(f"/dossier/{FILE_ID}", follow_redirects=False)

    assert refused.status_code == 303
    assert refused.headers["location"] == f"/suivi?dossier={FILE_ID}"
    assert "Votre accès au dossier a expiré" in asked.text
    assert closed.status_code == 303  # the file is closed in this browser
