"""Issue 12, the pages: every route declares its policy; agents' pages need a login (the
`?agent=` seam is gone); sessions live server-side (revocable, idle timeout, absolute end),
the cookie is a random id (HttpOnly, SameSite=Lax, Secure in production); every form carries
a CSRF token; security headers on every response; the person's own credentials (token,
the proof of the very file) are forwarded to the services."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from guichet_runtime.policy import Policy, route_policies, routes_without_policy
from guichet_runtime.secrets import MissingSecret
from tests.unit.test_web_citizen_file import FILE_ID, VIEW, FakeBackend, form_token
from web.api.deps import get_backend
from web.backend import CREDENTIALS, Backend, Credentials
from web.bootstrap import bootstrap
from web.security import CSRF_REFUSED
from web.sessions import COOKIE, SessionPolicy
from web.settings import WebSettings
from web.tables import sessions

AGENT_LOGIN = {
    "kind": "agents",
    "claims": {
        "sub": "kc-camille",
        "iss": "http://127.0.0.1:1/realms/agents",
        "name": "Camille Martin",
        "agent_id": "AG-75-01-1",
        "roles": ["referent"],
    },
    "access_token": "jeton-de-camille",
    "refresh_token": "rafraichissement",
    "expires_at": time.time() + 3600,
    "id_token": "id-de-camille",
}


class DeskBackend(FakeBackend):
    """What the référent's desk asks, answered from memory; what was sent is kept."""

    def __init__(self) -> None:
        super().__init__(VIEW)
        self.calls: list[tuple] = []

    async def portfolio(self, agent_id: str) -> dict:
        self.calls.append(("portfolio", agent_id, CREDENTIALS.get()))
        agent = {"agent_id": agent_id, "name": "Camille Martin", "office": "FS Paris 18e"}
        return {"agent": {**agent, "active_files": 0, "capacity": 40}, "files": []}

    async def agent_thanks(self, agent_id: str) -> dict:
        return {"agent_id": agent_id, "count": 0, "thanks": []}

    async def citizen_inbox(self, agent_id: str) -> dict:
        return {"agent_id": agent_id, "unread": 0, "waiting": 0, "files": []}

    async def send_message_to_citizen(self, file_id: str, text: str, key: str) -> dict:
        self.calls.append(("message", file_id, text))
        return {}


@pytest.fixture
def settings(tmp_path: Path) -> WebSettings:
    (tmp_path / "@gouvfr" / "dsfr" / "dist").mkdir(parents=True)
    return WebSettings(
        assets_dir=tmp_path,
        secret_key="test-only-secret",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/web.db",
        session_idle_minutes=30,
    )


@contextmanager
def pages(settings: WebSettings, backend: object | None = None) -> Iterator[TestClient]:
    app = bootstrap(settings)
    fake = backend or FakeBackend(VIEW)
    app.dependency_overrides[get_backend] = lambda: fake
    with TestClient(app, follow_redirects=False) as client:
        yield client


def signed_in(client: TestClient, settings: WebSettings, login: dict) -> str:
    """A session holding a login, as the login's return leaves it; the cookie is set."""
    store = client.app.state.sessions  # type: ignore[attr-defined]
    policy = SessionPolicy(
        dt.timedelta(minutes=settings.session_idle_minutes),
        dt.timedelta(hours=settings.session_lifetime_hours),
        secure=False,
    )
    session_id = client.portal.call(store.create, {"login": login}, policy)  # type: ignore[union-attr]
    client.cookies.set(COOKIE, session_id)
    return session_id


def rows(client: TestClient, statement: sa.Executable) -> None:
    async def run() -> None:
        async with client.app.state.sessions.engine.begin() as conn:  # type: ignore[attr-defined]
            await conn.execute(statement)

    client.portal.call(run)  # type: ignore[union-attr]


def test_every_page_declares_its_policy(settings):
    app = bootstrap(settings)
    table = route_policies(app)

    assert routes_without_policy(app) == []
    assert table["GET /"] is Policy.PUBLIC
    assert table["GET /dossier/{file_id}"] is Policy.FILE_READ
    assert table["POST /dossier/{file_id}/contact"] is Policy.FILE_CITIZEN
    assert table["GET /referent/dossiers/{file_id}"] is Policy.AGENT
    assert table["POST /guichet"] is Policy.AGENT
    assert table["GET /supervision"] is Policy.SUPERVISOR
    assert table["POST /suivi/code"] is Policy.ONE_TIME_CODE
    assert "GET /agent" not in table and "POST /agent" not in table  # the picker is gone


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/referent/dossiers/GU-2026-PAGE0001?agent=nobody", {}),
        ("/referent?agent=AG-75-01-1", {}),
        ("/referent", {"X-Guichet-Agent": "AG-75-01-1"}),
        ("/supervision", {}),
        ("/guichet", {}),
    ],
)
def test_the_agents_pages_send_to_the_login_whatever_the_request_claims(settings, path, headers):
    with pages(settings) as client:
        response = client.get(path, headers=headers)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/connexion/agents?suite=")


def test_a_signed_in_agent_works_as_themselves_with_their_token_forwarded(settings):
    backend = DeskBackend()
    with pages(settings, backend) as client:
        signed_in(client, settings, AGENT_LOGIN)
        desk = client.get("/referent")
        token = re.search(r'name="csrf_token" value="([^"]+)"', desk.text).group(1)
        sent = client.post(
            f"/referent/dossiers/{FILE_ID}/messages",
            data={"message": "Bonjour", "csrf_token": token, "agent_id": "AG-99-99-9"},
        )

    assert desk.status_code == 200 and "Camille Martin" in desk.text
    [(_, agent_id, credentials), (_, file_id, text)] = backend.calls
    assert agent_id == "AG-75-01-1" and credentials.access_token == "jeton-de-camille"
    assert (file_id, text) == (FILE_ID, "Bonjour") and sent.status_code == 303


def test_the_supervisors_page_is_theirs_only(settings):
    with pages(settings) as client:
        signed_in(client, settings, AGENT_LOGIN)
        refused = client.get("/supervision")

    assert refused.status_code == 403 and "réservée aux superviseurs" in refused.text


def test_a_form_without_its_csrf_token_is_refused_in_french(settings):
    with pages(settings) as client:
        token = form_token(client)
        missing = client.post("/suivi", data={"reference": FILE_ID})
        wrong = client.post("/suivi", data={"reference": FILE_ID, "csrf_token": "x" + token})
        signed_in(client, settings, AGENT_LOGIN)
        desk = client.post(f"/referent/dossiers/{FILE_ID}/mot", data={"personal_word": "Hop"})

    for refused in (missing, wrong, desk):
        assert refused.status_code == 403
        assert CSRF_REFUSED.replace("'", "&#39;") in refused.text


def test_the_session_cookie_is_a_random_id_httponly_samesite_and_secure_in_production(
    settings, tmp_path
):
    with pages(settings) as client:
        plain = client.get("/suivi").headers["set-cookie"]
    secure = settings.model_copy(update={"secure_cookies": True})
    with pages(secure) as client:
        https = client.get("/suivi").headers["set-cookie"]

    value = re.match(rf"{COOKIE}=([^;]+);", plain).group(1)
    assert len(value) >= 40 and "." not in value  # nothing signed in it: a random id
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    assert "Secure" in https


def test_security_headers_on_every_response(settings):
    with pages(settings) as client:
        answers = [client.get("/"), client.get("/nulle-part"), client.get("/static/web.css")]

    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert answer.headers["referrer-policy"] == "same-origin"
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert answers[0].headers["cache-control"] == "no-store"
    assert "set-cookie" not in answers[2].headers  # static files: no session read nor made


def opened(client: TestClient) -> int:
    return client.get(f"/dossier/{FILE_ID}").status_code


def open_with_a_code(client: TestClient) -> None:
    done = client.post(
        "/suivi/code",
        data={"reference": FILE_ID, "code": "123456", "csrf_token": form_token(client)},
    )
    assert done.status_code == 303 and opened(client) == 200


def test_an_operator_revokes_a_session_by_deleting_its_row(settings):
    with pages(settings) as client:
        open_with_a_code(client)
        rows(client, sessions.delete())
        assert opened(client) == 303


def test_a_session_idle_too_long_or_too_old_is_over(settings):
    with pages(settings) as client:
        open_with_a_code(client)
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=31)
        rows(client, sessions.update().values(last_seen_at=long_ago))
        assert opened(client) == 303

        open_with_a_code(client)
        rows(client, sessions.update().values(expires_at=dt.datetime.now(dt.UTC)))
        assert opened(client) == 303


def test_signing_out_deletes_the_session(settings):
    with pages(settings) as client:
        open_with_a_code(client)
        token = form_token(client, f"/dossier/{FILE_ID}")
        out = client.post("/deconnexion", data={"csrf_token": token})
        assert out.status_code == 303 and out.headers["location"] == "/"
        assert "Max-Age=0" in out.headers["set-cookie"]
        left = client.portal.call(count_sessions, client)  # type: ignore[union-attr]

    assert left == 0


async def count_sessions(client: TestClient) -> int:
    async with client.app.state.sessions.engine.connect() as conn:  # type: ignore[attr-defined]
        return int((await conn.execute(sa.select(sa.func.count()).select_from(sessions))).scalar())


def test_a_provider_configured_without_its_client_secret_stops_the_start(settings):
    configured = settings.model_copy(
        update={"login_agents_issuer": "https://proconnect.example/realms/agents"}
    )
    with pytest.raises(MissingSecret, match="LOGIN_AGENTS_CLIENT_SECRET"):
        bootstrap(configured)


def test_the_persons_token_and_the_proof_of_that_very_file_go_to_the_services():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async def calls() -> None:
        backend = Backend(
            "http://intake", "http://assignment", transport=httpx.MockTransport(answer)
        )
        held = CREDENTIALS.set(Credentials("jeton", {"GU-2026-AAAAAAAA": "preuve-a"}))
        try:
            await backend.file_view("GU-2026-AAAAAAAA")
            await backend.file_view("GU-2026-BBBBBBBB")
            await backend.agent_card("AG-75-01-1")
        finally:
            CREDENTIALS.reset(held)
            await backend.close()
        await Backend(
            "http://intake", "http://a", transport=httpx.MockTransport(answer)
        ).life_events()

    asyncio.run(calls())

    mine, other, card, anonymous = seen
    assert all(r.headers["authorization"] == "Bearer jeton" for r in (mine, other, card))
    assert mine.headers["x-access-proof"] == "preuve-a"
    assert "x-access-proof" not in other.headers and "x-access-proof" not in card.headers
    assert "authorization" not in anonymous.headers
