"""Tokens for the dev tools' own calls to the services (`guichet-dev bench`): an httpx `auth`
that sends a Keycloak access token and fetches a new one before it expires. Development and
tests only (the users and passwords are the dev realms', see devstack.keycloak)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import httpx

#: A token is used at most this long after it was fetched (the realms' tokens live 300 s).
REUSE_SECONDS = 240


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
