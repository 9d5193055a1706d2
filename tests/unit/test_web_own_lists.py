"""One's own lists on the pages: "Mes dossiers" for a citizen signed in with their account,
the files a front-desk agent registered on /guichet (intake answers for the forwarded token
only); the contact form of a file shows the details on record, read from the citizen's own
route (`/contact`), never from the agents' record."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from guichet_runtime.policy import Policy, route_policies
from tests.unit.test_web_auth import AGENT_LOGIN, pages, signed_in
from tests.unit.test_web_citizen_file import VIEW, FakeBackend, file_page
from web.backend import CREDENTIALS
from web.bootstrap import bootstrap
from web.settings import WebSettings

CITIZEN_LOGIN = {
    "kind": "citoyens",
    "claims": {"sub": "kc-marie", "iss": "http://127.0.0.1:1/realms/citoyens", "name": "Marie"},
    "access_token": "jeton-de-marie",
    "refresh_token": "rafraichissement",
    "expires_at": time.time() + 3600,
    "id_token": "id-de-marie",
}
FRONT_DESK_LOGIN = {
    **AGENT_LOGIN,
    "claims": {
        **AGENT_LOGIN["claims"],
        "sub": "kc-julien",
        "name": "Julien Durand",
        "agent_id": "AG-75-01-3",
        "roles": ["guichet"],
    },
    "access_token": "jeton-de-julien",
}
LISTED = {
    "file_id": "GU-2026-MARIE001",
    "status": "en_cours",
    "life_event": "naissance",
    "life_event_label": "Naissance d'un enfant",
    "created_at": "2026-11-24T10:00:00+00:00",
    "channel": "en_ligne",
    "referent_name": "Camille Martin",
    "citizen_name": None,
}


class ListsBackend(FakeBackend):
    """Intake's lists, answered from memory; whose token asked is kept."""

    def __init__(self) -> None:
        super().__init__(VIEW)
        self.asked: list[tuple[str, str | None]] = []

    async def my_files(self) -> list[dict]:
        self.asked.append(("mine", CREDENTIALS.get().access_token))
        return [LISTED]

    async def registered_files(self) -> list[dict]:
        self.asked.append(("registered", CREDENTIALS.get().access_token))
        return [{**LISTED, "channel": "telephone", "citizen_name": "Lucas Bernard"}]

    async def life_events(self) -> list[dict]:
        return [{"code": "naissance", "label": "Naissance d'un enfant", "agencies": ["CAF"]}]


@pytest.fixture
def settings(tmp_path: Path) -> WebSettings:
    (tmp_path / "@gouvfr" / "dsfr" / "dist").mkdir(parents=True)
    return WebSettings(
        assets_dir=tmp_path,
        secret_key="test-only-secret",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/web.db",
    )


def test_mes_dossiers_is_a_citizens_page(settings):
    assert route_policies(bootstrap(settings))["GET /mes-dossiers"] is Policy.CITIZEN
    backend = ListsBackend()
    with pages(settings, backend) as client:
        anonymous = client.get("/mes-dossiers")
        signed_in(client, settings, AGENT_LOGIN)
        agent = client.get("/mes-dossiers")
        signed_in(client, settings, CITIZEN_LOGIN)
        home = client.get("/")
        mine = client.get("/mes-dossiers")

    for refused in (anonymous, agent):
        assert refused.status_code == 303
        assert refused.headers["location"] == "/connexion/citoyens?suite=%2Fmes-dossiers"
    assert 'href="/mes-dossiers"' in home.text  # in the nav, once signed in as a citizen
    assert mine.status_code == 200
    assert "<h1>Mes dossiers</h1>" in mine.text
    assert 'href="/dossier/GU-2026-MARIE001"' in mine.text and "Camille Martin" in mine.text
    assert backend.asked == [("mine", "jeton-de-marie")]


def test_the_front_desk_sees_the_files_they_registered_on_the_counter_page(settings):
    backend = ListsBackend()
    with pages(settings, backend) as client:
        signed_in(client, settings, AGENT_LOGIN)  # a référent: no list
        referent = client.get("/guichet")
        signed_in(client, settings, FRONT_DESK_LOGIN)
        desk = client.get("/guichet")

    assert referent.status_code == 200 and "dossiers-enregistres" not in referent.text
    assert desk.status_code == 200
    listed = desk.text[desk.text.index('id="dossiers-enregistres"') :]
    assert "Lucas Bernard" in listed and "Au téléphone" in listed
    assert 'href="/guichet/recu/GU-2026-MARIE001"' in listed
    assert backend.asked == [("registered", "jeton-de-julien")]


def test_the_contact_form_shows_the_details_on_record(settings):
    page = file_page(settings)
    email = re.search(r'<input[^>]*id="email"[^>]*>', page)
    assert email and 'value="awa@example.fr"' in email.group(0)
    postcode = re.search(r'<input[^>]*id="postcode"[^>]*>', page)
    assert postcode and 'value="93200"' in postcode.group(0)
