"""Tokens for the dev tools' own calls to the services (`guichet-dev bench`): an httpx `auth`
that sends a Keycloak access token and fetches a new one before it expires, and the token
requests themselves (password and client credentials grants). Development and
tests only (the users and passwords are the dev realms', see devstack.keycloak)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import httpx

from guichet_runtime.tls_context import client_tls

#: A token is used at most this long after it was fetched (the realms' tokens live 300 s).
REUSE_SECONDS = 240
#: The password of every test user of deploy/keycloak/realms/*.json. Dev and tests only.
DEV_PASSWORD = "dev-only-password"
#: The public client for tokens by password (direct access grant), in both realms. Dev only.
DEV_CLIENT = "guichet-dev"


class FreshBearer(httpx.Auth):
    """`Authorization: Bearer <token>` on every request; `fetch` (e.g.
    `lambda: keycloak.password_token("citoyen.banc", "citoyens")`) is called again once the
    token is `reuse` seconds old. The fetch blocks: once every few minutes, it is short."""

    def __init__(
        self,
        fetch: Callable[[], str],
        reuse: float = REUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.reuse = reuse
        self.clock = clock
        self._token = ""
        self._at = 0.0

    def token(self) -> str:
        if not self._token or self.clock() - self._at > self.reuse:
            self._token = self.fetch()
            self._at = self.clock()
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request


def dev_secret(client_id: str) -> str:
    """The dev-only secret of a confidential client of deploy/keycloak/realms/ (adapters)."""
    return f"{client_id}-dev-secret"


def _token(token_url: str, form: dict[str, str]) -> str:
    response = httpx.post(token_url, data=form, timeout=30, verify=client_tls())
    if response.status_code != 200:
        raise RuntimeError(f"no token from {token_url}: {response.status_code} {response.text}")
    return str(response.json()["access_token"])


def password_token(
    token_url: str, username: str, *, password: str = DEV_PASSWORD, client_id: str = DEV_CLIENT
) -> str:
    return _token(
        token_url,
        {
            "grant_type": "password",
            "client_id": client_id,
            "username": username,
            "password": password,
            "scope": "openid",
        },
    )


def client_token(token_url: str, client_id: str, secret: str) -> str:
    return _token(
        token_url,
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
