"""How France Travail's simulator POSTs its callbacks: aiohttp, one session kept alive.

The simulator shares the 2-core box with the stack `make bench` measures, so its CPU per
file is taken from the product's. With httpx, a third of the France Travail simulator's CPU
went into httpx and httpcore (its pool asks every kept-alive connection whether it
expired, through anyio's typed attributes, at each request); aiohttp does the same POST for
a fraction of it (docs/performance.md).

The interface is the part of httpx's `AsyncClient` the simulator uses (`post(url,
content=, headers=, timeout=)`, a reply's `status_code`, `is_success` and `json()`, and
`aclose()`), so a test may still hand the simulator an httpx client.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

#: What a delivery that did not reach the adapter raises: the callback is sent again later.
DELIVERY_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class Reply:
    """The adapter's answer to a callback, read whole."""

    status_code: int
    text: str

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        return json.loads(self.text)


class CallbackClient:
    """POSTs callbacks; its session is opened at the first one (inside the event loop)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def post(
        self, url: str, *, content: bytes, headers: dict[str, str], timeout: float
    ) -> Reply:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(
            url, data=content, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            return Reply(response.status, await response.text())

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
