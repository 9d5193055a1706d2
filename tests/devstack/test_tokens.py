"""devstack.tokens: the dev tools' token stays fresh (the realms' tokens live 5 minutes)."""

from __future__ import annotations

import httpx

from devstack.tokens import FreshBearer


async def test_every_request_carries_the_token_fetched_again_once_it_is_old():
    fetched: list[str] = []

    def fetch() -> str:
        fetched.append(f"jeton-{len(fetched) + 1}")
        return fetched[-1]

    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(201)

    now = [1000.0]
    auth = FreshBearer(fetch, reuse=60, clock=lambda: now[0])
    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=transport, auth=auth, base_url="http://t") as client:
        await client.post("/api/files")
        await client.post("/api/files")
        now[0] += 61  # the token is now older than `reuse`
        await client.post("/api/files")
    assert seen == ["Bearer jeton-1", "Bearer jeton-1", "Bearer jeton-2"]
    assert fetched == ["jeton-1", "jeton-2"]
