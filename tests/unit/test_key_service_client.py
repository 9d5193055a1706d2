"""The key service's client (`guichet_runtime.key_service.KeyServiceClient`) against intake's
real app: a known key is served, a shredded one is KeyShredded, an unknown key id (forged or
corrupted) is KeyUnknown, a CannotOpen the consumer dead-letters rather than retries for
ever; a 404 that is not intake's refusal (a wrong URL) stays KeyUnavailable, so a
misconfigured service waits instead of dead-lettering everything."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from guichet_runtime.key_service import KeyServiceClient
from guichet_runtime.personal_data import CannotOpen, KeyShredded, KeyUnavailable, KeyUnknown
from tests.unit.test_personal_data import intake, new_key_at_intake  # noqa: F401


class Token:
    """The caller's token: intake's app here takes the service principal as the caller
    (the `intake` fixture); a token is still asked for and sent, as in production."""

    def __init__(self) -> None:
        self.asked = 0

    async def token(self) -> str:
        self.asked += 1
        return "jeton-de-service"

    def expire(self) -> None:
        pass


def client_of(app, base: str = "http://intake") -> tuple[KeyServiceClient, Token]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    token = Token()
    return KeyServiceClient(http, base, token), token  # type: ignore[arg-type]


def test_known_shredded_and_unknown_keys(intake):  # noqa: F811
    from intake.commands.personal_data import shred_personal_data_key

    app, runtime, _ = intake
    key_id = new_key_at_intake(runtime, None)
    shredded = new_key_at_intake(runtime, None)
    asyncio.run(shred_personal_data_key(shredded, "Demande d'effacement", runtime.uow()))
    client, token = client_of(app)

    key = asyncio.run(client.fetch(key_id))
    assert key == asyncio.run(runtime.personal_data.vault.get(key_id)) and token.asked == 1
    with pytest.raises(KeyShredded):
        asyncio.run(client.fetch(shredded))
    with pytest.raises(KeyUnknown) as unknown:
        asyncio.run(client.fetch("0f0f0f0f-forged-key-id"))
    assert isinstance(unknown.value, CannotOpen)  # the consumer dead-letters a CannotOpen


def test_a_404_that_is_not_intakes_refusal_is_waited_out(intake):  # noqa: F811
    app, runtime, _ = intake
    key_id = new_key_at_intake(runtime, None)
    misconfigured, _ = client_of(app, "http://intake/ailleurs")

    with pytest.raises(KeyUnavailable) as waiting:
        asyncio.run(misconfigured.fetch(key_id))
    assert not isinstance(waiting.value, CannotOpen) and "404" in str(waiting.value)
