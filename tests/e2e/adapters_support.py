"""Steps the adapters' end-to-end tests share: submit a file, read each agency's status,
what the simulated France Travail received and decided."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from devstack.stack import Stack
from tests.e2e.support import file_body


async def submit(client: httpx.AsyncClient, life_event: str, **citizen) -> str:
    response = await client.post("/api/files", json=file_body(life_event, **citizen))
    assert response.status_code == 201, response.text
    return response.json()["file_id"]


async def agency_status(client: httpx.AsyncClient, file_id: str) -> dict[str, dict]:
    view = (await client.get(f"/api/files/{file_id}")).json()
    return {a["agency"]: a for a in view["agencies"]}


async def france_travail_received(sim: httpx.AsyncClient, file_id: str) -> bool:
    return any(
        r["file_id"] == file_id for r in (await sim.get("/agencies/france_travail/received")).json()
    )


def france_travail_decision(view: dict) -> dict:
    return next(d for d in view["answer"]["decisions"] if d["agency"] == "france_travail")


async def when(awaitable, condition):
    value = await awaitable
    return value if condition(value) else None


def adapters_stack(
    kafka_bootstrap: str, workdir: Path, oidc_issuers: dict[str, str] | None = None
) -> Stack:
    """The adapters' stack, not started: short timeouts and few attempts, so a failing agency
    reaches the dead-letter topic quickly; France Travail reconciled every few seconds.
    `oidc_issuers`: the token issuers the services trust (`keycloak.issuers`)."""
    namespace = f"e2e-ad-{uuid.uuid4().hex[:6]}."
    # Short timeouts and few attempts, so a failing agency reaches the dead-letter topic quickly.
    tuning = {
        "AGENCY_TIMEOUT_SECONDS": "2",
        "ATTEMPTS": "3",
        "BACKOFF_SECONDS": "0.1",
        "BREAKER_SECONDS": "3",
        "UNAVAILABLE_PAUSE_SECONDS": "1",
        # France Travail's requests without a decision are looked up after 3 s, then every 3 s.
        "RECONCILE_FIRST_SECONDS": "3",
        "RECONCILE_MAX_SECONDS": "3",
        "RECONCILE_TICK_SECONDS": "0.5",
    }
    st = Stack(
        workdir,
        kafka_bootstrap,
        namespace=namespace,
        extra_env=tuning,
        oidc_issuers=oidc_issuers,
    )
    return st
