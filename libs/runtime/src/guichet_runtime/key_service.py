"""The client of intake's key service (`GET /internal/personal-data-keys/{key_id}`), for the
services that read personal data sealed with a citizen's data key (assignment,
notification, the adapters; see guichet_runtime.personal_data).

The service authenticates as itself: an OAuth2 client-credentials token from the agents'
issuer (Keycloak in dev: one confidential client per service, its service account holding
the realm role `personal-data-reader`). Keys are kept in memory only (`KeyCache`, a short
TTL), never on disk.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time

import httpx

from guichet_runtime.personal_data import KeyShredded, KeyUnavailable, KeyUnknown
from guichet_runtime.refusals import RefusalKind

log = logging.getLogger(__name__)

#: A token is renewed this long before it expires.
TOKEN_MARGIN_SECONDS = 30.0


class ClientCredentials:
    """Access tokens for this service (OAuth2 client credentials), renewed before expiry."""

    def __init__(
        self, client: httpx.AsyncClient, token_url: str, client_id: str, client_secret: str
    ) -> None:
        self._client = client
        self._token_url = token_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        self._token = ""
        self._until = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:
            if not self._token or time.monotonic() >= self._until:
                try:
                    response = await self._client.post(self._token_url, data=self._form)
                except httpx.HTTPError as exc:
                    raise KeyUnavailable(f"token endpoint unreachable: {exc!r}") from exc
                if response.status_code != 200:
                    raise KeyUnavailable(f"token refused: {response.status_code}")
                body = response.json()
                self._token = str(body["access_token"])
                lifetime = float(body.get("expires_in", 60))
                self._until = time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, 5.0)
            return self._token

    def expire(self) -> None:
        self._token = ""


class KeyServiceClient:
    """Fetches a citizen's data key from intake (use it behind a `KeyCache`)."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, credentials: ClientCredentials
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._credentials = credentials
        self.fetched = 0

    async def fetch(self, key_id: str) -> bytes:
        """The key; KeyShredded on 410; KeyUnknown when intake says it has no such key (a
        404 with its refusal, not a 404 of a wrong URL: a misconfigured service waits rather
        than dead-letters); KeyUnavailable otherwise (retried by the consumer)."""
        for attempt in (1, 2):
            token = await self._credentials.token()
            try:
                response = await self._client.get(
                    f"{self._base}/internal/personal-data-keys/{key_id}",
                    headers={"Authorization": f"Bearer {token}"},
                )
            except httpx.HTTPError as exc:
                raise KeyUnavailable(f"key service unreachable: {exc!r}") from exc
            if response.status_code == 401 and attempt == 1:
                self._credentials.expire()  # revoked or expired early: one new token
                continue
            if response.status_code == 410:
                raise KeyShredded(key_id)
            if _no_such_key(response):
                raise KeyUnknown(f"data key {key_id} unknown to the key service")
            if response.status_code != 200:
                raise KeyUnavailable(f"key service answered {response.status_code} for {key_id}")
            self.fetched += 1
            return base64.b64decode(response.json()["key"])
        raise KeyUnavailable("key service refused this service's token")


def _no_such_key(response: httpx.Response) -> bool:
    """Intake's own refusal of an unknown key: a 404 whose body is a NOT_FOUND refusal."""
    if response.status_code != 404:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("kind") == RefusalKind.NOT_FOUND.value
