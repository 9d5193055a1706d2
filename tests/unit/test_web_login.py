"""The pages' OpenID Connect login against a provider answered in memory (discovery, JWKS,
token endpoint, end session): authorization code with PKCE S256, the ID token checked
(signature, nonce), a new session id once signed in, the access token forwarded and
refreshed when it expires, a forged return refused, signing out at the provider too.
(tests/e2e/test_pages*.py do the same on Keycloak's real login page.)"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.unit.test_web_auth import DeskBackend
from web.api.deps import get_backend
from web.bootstrap import bootstrap
from web.login import Login
from web.sessions import COOKIE
from web.settings import WebSettings

ISSUER = "https://proconnect.test/realms/agents"


class Provider:
    """The agents' provider: it remembers the authorization request and checks PKCE."""

    def __init__(self, lifetime: int = 300) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "cle-1"})
        self.lifetime = lifetime
        self.authorized: dict[str, str] = {}
        self.grants: list[dict[str, list[str]]] = []
        self.issued = 0

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": "web",
            "sub": "kc-camille",
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "name": "Camille Martin",
            "agent_id": "AG-75-01-1",
            "roles": ["referent"],
        }
        return jwt.encode({"alg": "RS256", "kid": "cle-1"}, claims, self.key)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/auth",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/certs",
                    "end_session_endpoint": f"{ISSUER}/logout",
                    "id_token_signing_alg_values_supported": ["RS256"],
                },
            )
        if path.endswith("/certs"):
            return httpx.Response(200, json={"keys": [self.key.as_dict(private=False)]})
        assert path.endswith("/token"), path
        form = parse_qs(request.content.decode())
        self.grants.append(form)
        if form["grant_type"] == ["authorization_code"]:
            verifier = form["code_verifier"][0]
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if challenge.rstrip(b"=").decode() != self.authorized["code_challenge"]:
                return httpx.Response(400, json={"error": "invalid_grant"})
        elif form["refresh_token"] != ["rafraichissement"]:
            return httpx.Response(400, json={"error": "invalid_grant"})
        self.issued += 1
        return httpx.Response(
            200,
            json={
                "access_token": f"jeton-{self.issued}",
                "token_type": "Bearer",
                "expires_in": self.lifetime,
                "refresh_token": "rafraichissement",
                "id_token": self.id_token(self.authorized["nonce"]),
            },
        )


@contextmanager
def pages(tmp_path: Path, provider: Provider, backend: DeskBackend) -> Iterator[TestClient]:
    (tmp_path / "@gouvfr" / "dsfr" / "dist").mkdir(parents=True, exist_ok=True)
    settings = WebSettings(
        assets_dir=tmp_path,
        secret_key="test-only-secret",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/web.db",
        login_agents_issuer=ISSUER,
        login_agents_client_secret="web-agents-secret",
    )
    app = bootstrap(settings)
    app.state.login = Login(settings, transport=httpx.MockTransport(provider))
    app.dependency_overrides[get_backend] = lambda: backend
    with TestClient(app, follow_redirects=False) as client:
        yield client


def start(client: TestClient, provider: Provider) -> str:
    """To the provider's login page; what it was asked is kept; the state is returned."""
    client.get("/suivi")  # a session exists before the login (it must not survive it)
    to_provider = client.get("/connexion/agents", params={"suite": "/referent"})
    assert to_provider.status_code == 302
    url = urlsplit(to_provider.headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{ISSUER}/auth"
    asked = {k: v[0] for k, v in parse_qs(url.query).items()}
    provider.authorized = asked
    return asked["state"]


def test_an_agent_signs_in_with_pkce_and_works_with_a_refreshed_token(tmp_path):
    provider, backend = Provider(lifetime=10), DeskBackend()
    with pages(tmp_path, provider, backend) as client:
        state = start(client, provider)
        before = client.cookies.get(COOKIE)
        back = client.get("/connexion/agents/retour", params={"code": "c0de", "state": state})
        after = client.cookies.get(COOKIE)
        desk = client.get("/referent")

    asked = provider.authorized
    assert asked["code_challenge_method"] == "S256" and asked["client_id"] == "web"
    assert asked["response_type"] == "code" and "openid" in asked["scope"]
    assert asked["redirect_uri"] == "http://testserver/connexion/agents/retour"
    assert back.status_code == 303 and back.headers["location"] == "/referent"
    assert before and after and before != after  # a new session id once signed in
    assert desk.status_code == 200 and "Camille Martin" in desk.text
    # The token lived 10 s (< the 30 s margin): refreshed before being forwarded.
    assert [g["grant_type"][0] for g in provider.grants] == ["authorization_code", "refresh_token"]
    [(_, agent_id, credentials)] = backend.calls
    assert (agent_id, credentials.access_token) == ("AG-75-01-1", "jeton-2")


def test_a_forged_return_is_refused_and_signs_nobody_in(tmp_path):
    provider = Provider()
    with pages(tmp_path, provider, DeskBackend()) as client:
        start(client, provider)
        forged = client.get("/connexion/agents/retour", params={"code": "c0de", "state": "faux"})
        desk = client.get("/referent")

    assert forged.status_code == 400 and "La connexion n&#39;a pas abouti" in forged.text
    assert provider.grants == []
    assert desk.status_code == 303 and desk.headers["location"].startswith("/connexion/agents")


def test_a_refresh_the_provider_refuses_signs_the_agent_out(tmp_path):
    provider = Provider(lifetime=10)
    with pages(tmp_path, provider, DeskBackend()) as client:
        state = start(client, provider)
        client.get("/connexion/agents/retour", params={"code": "c0de", "state": state})
        provider.authorized["code_challenge"] = "x"
        original = Provider.__call__

        def refuse_refresh(self: Provider, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/token"):
                return httpx.Response(400, json={"error": "invalid_grant"})
            return original(self, request)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Provider, "__call__", refuse_refresh)
            desk = client.get("/referent")

    assert desk.status_code == 303 and desk.headers["location"].startswith("/connexion/agents")


def test_signing_out_ends_the_session_here_and_at_the_provider(tmp_path):
    provider = Provider()
    with pages(tmp_path, provider, DeskBackend()) as client:
        state = start(client, provider)
        client.get("/connexion/agents/retour", params={"code": "c0de", "state": state})
        desk = client.get("/referent")
        token = desk.text.split('name="csrf_token" value="')[1].split('"')[0]
        out = client.post("/deconnexion", data={"csrf_token": token})
        again = client.get("/referent")

    logout = urlsplit(out.headers["location"])
    asked = parse_qs(logout.query)
    assert out.status_code == 303 and logout.path == "/realms/agents/logout"
    assert asked["post_logout_redirect_uri"] == ["http://testserver/"]
    assert asked["id_token_hint"][0].count(".") == 2
    assert again.status_code == 303  # the session is gone: to the login again
