"""Reading what a sealed stack put on its topics (crypto-shredding, docs/data-protection.md).

The shared stacks run as production does: every personal field of an event travels sealed
with the citizen's data key. A test that reads a field's value opens it as one of our services
would: with a service's own client-credentials token (Keycloak client `service-assignment`,
role `personal-data-reader`) at intake's key service. The raw bytes stay as they travelled
(what the probes of tests/personal_data.py look into).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx

from devstack.stack import Stack
from guichet_runtime.personal_data import open_value
from guichet_runtime.tls_context import client_tls
from shared_models import EVENT_TYPES, is_sealed, personal_fields

#: How long the shared stacks' services keep a citizen's data key in memory (production keeps
#: it five minutes): a shredding reaches every service within it, so the modules about sealed
#: data wait this long (plus a margin) after shredding a key; the other modules' services fetch
#: keys again and again, as a service whose cache expired does.
KEY_TTL_SECONDS = 2.0


async def key_caches_expired() -> None:
    """Wait until no service of a shared stack still holds a key shredded before the call."""
    await asyncio.sleep(KEY_TTL_SECONDS + 0.5)


#: The client a test borrows to read keys: one of the services allowed to (devstack's realm
#: gives each `service-<name>` client the secret `<client>-dev-secret`).
READER = "service-assignment"


class Opener:
    """Opens the sealed fields of `stack`'s events with keys from its key service."""

    def __init__(self, stack: Stack) -> None:
        agents = next(i for i, kind in stack.oidc_issuers.items() if kind == "agent")
        self.token_url = f"{agents.rstrip('/')}/protocol/openid-connect/token"
        self.keys_url = f"{stack.intake_url}/internal/personal-data-keys"
        self._keys: dict[str, bytes | None] = {}
        self._token = ""
        self._token_until = 0.0

    async def _bearer(self, client: httpx.AsyncClient) -> str:
        """The reader's token, renewed a while before it expires (one per key otherwise)."""
        if not self._token or time.monotonic() >= self._token_until:
            answer = await client.post(
                self.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": READER,
                    "client_secret": f"{READER}-dev-secret",
                },
            )
            answer.raise_for_status()
            body = answer.json()
            self._token = str(body["access_token"])
            self._token_until = time.monotonic() + max(float(body.get("expires_in", 60)) - 30, 5)
        return self._token

    async def key(self, key_id: str) -> bytes | None:
        """The data key, or None once shredded (410). Any other answer raises: a key id a
        personal field names is one this stack's intake made (404 would be a real fault)."""
        if key_id not in self._keys:
            async with httpx.AsyncClient(timeout=10, verify=client_tls()) as client:
                token = await self._bearer(client)
                answer = await client.get(
                    f"{self.keys_url}/{key_id}", headers={"Authorization": f"Bearer {token}"}
                )
            if answer.status_code == 410:
                self._keys[key_id] = None
            else:
                answer.raise_for_status()
                self._keys[key_id] = base64.b64decode(answer.json()["key"])
        return self._keys[key_id]

    async def opened(self, body: Any, event_type: str | None) -> Any:
        """`body` (an event's JSON) with each sealed personal field replaced by its value, as
        a consumer opens it: only the fields `event_type`'s model marks personal (another
        field of the same shape, e.g. AccessCodeIssued's `sealed_code`, is sealed with
        another service's own key, not a citizen's). An erased marker, or a field sealed with
        a shredded key, stays as it is; a body of no known event type is returned as it is."""
        model = EVENT_TYPES.get(event_type or "")
        if model is None or not isinstance(body, dict) or not isinstance(body.get("file_id"), str):
            return body
        out = dict(body)
        for name in personal_fields(model):
            value = body.get(name)
            if is_sealed(value) and value.get("nonce"):
                try:
                    key = await self.key(value["key_id"])
                except httpx.HTTPStatusError as exc:
                    raise AssertionError(
                        f"{event_type} of {body['file_id']}: the key of its field {name!r} "
                        f"({value['key_id']}) is not to be had: {exc}"
                    ) from exc
                if key is not None:
                    out[name] = open_value(key, value, body["file_id"])
        return out

    async def opened_column(self, stored: Any, file_id: str) -> Any:
        """A service's stored personal column, opened: a sealed object (or its JSON text, as
        notification stores it) becomes its value; anything else is returned as it is."""
        value = stored
        if isinstance(stored, str) and stored.startswith("{"):
            try:
                value = json.loads(stored)
            except ValueError:
                return stored
        if is_sealed(value) and value.get("nonce"):
            key = await self.key(value["key_id"])
            if key is not None:
                return open_value(key, value, file_id)
        return stored


#: The sealed stacks' openers, by topic namespace (a shared stack registers itself).
OPENERS: dict[str, Opener] = {}


def register(stack: Stack) -> None:
    if stack.personal_data_sealing:
        OPENERS[stack.namespace] = Opener(stack)


async def opened_column(stack: Stack, stored: Any, file_id: str) -> Any:
    """`stored` opened when `stack` is sealed (`Opener.opened_column`), else as it is."""
    opener = OPENERS.get(stack.namespace)
    return stored if opener is None else await opener.opened_column(stored, file_id)


def opener_for(topic: str) -> Opener | None:
    """The opener of the stack whose namespace prefixes `topic`, if it is sealed."""
    return next((o for ns, o in OPENERS.items() if ns and topic.startswith(ns)), None)
