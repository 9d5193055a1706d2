"""The benchmark's HTTP client to intake, on aiohttp.

It shares the 2-core box with the stack it measures, so its own CPU per file is taken from
the product's. With httpx, three quarters of the bench client's CPU went into httpx and
httpcore (its pool asks every kept-alive connection whether it expired, through anyio's
typed attributes, at each request): 4.2 ms of CPU per file, about as much as a product
service's share. aiohttp does the same POST for a fraction of it (docs/performance.md).

The interface is the part of httpx's `AsyncClient.post` that `devstack.bench` uses: a
reply's `status_code`, `text` and `json()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from guichet_runtime.tls_context import client_tls


class Bearer(Protocol):
    """Where the access token comes from (`devstack.tokens.FreshBearer`)."""

    def token(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, read whole."""

    status_code: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class IntakeClient:
    """`async with IntakeClient(url, connections=16, timeout=60, auth=bearer) as client:`,
    then `await client.post("/api/files", json=body, headers={...})`: at most
    `connections` kept-alive connections, each request done within `timeout` seconds, and
    `Authorization: Bearer …` from `auth` when given (fetched again once it is old)."""

    def __init__(
        self, base_url: str, *, connections: int, timeout: float, auth: Bearer | None = None
    ) -> None:
        self.base_url = base_url
        self.connections = connections
        self.timeout = timeout
        self.auth = auth
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> IntakeClient:
        self._session = aiohttp.ClientSession(
            base_url=self.base_url,
            connector=aiohttp.TCPConnector(limit=self.connections, ssl=client_tls()),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def post(self, path: str, json: Any, headers: dict[str, str]) -> Reply:
        assert self._session is not None, "use the client inside `async with`"
        sent = {**headers, "Content-Type": "application/json"}
        if self.auth is not None:
            sent["Authorization"] = f"Bearer {self.auth.token()}"
        body = _dumps(json)
        async with self._session.post(path, data=body, headers=sent) as response:
            return Reply(response.status, await response.text())


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
