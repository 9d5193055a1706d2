"""Steps the adapters' end-to-end tests share: submit a file, read each agency's status,
what the simulated France Travail received and decided."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import httpx

from devstack.stack import Stack
from tests.e2e.support import LAUNCHER, file_body


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


#: A salary certificate, as the citizen uploads it.
PDF = b"%PDF-1.4\n% attestation de salaire\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def france_travail_decision(view: dict) -> dict:
    return next(d for d in view["answer"]["decisions"] if d["agency"] == "france_travail")


async def when(awaitable, condition):
    value = await awaitable
    return value if condition(value) else None


#: The adapters' stack's settings (adapter_sdk.config, from the environment): short timeouts
#: and few attempts, so a failing agency reaches the dead-letter topic quickly; a short
#: circuit breaker and pause, so an unreachable agency is retried often.
TUNING = {
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
#: Consecutive failures that open an adapter's circuit (adapter_sdk.config's default).
BREAKER_THRESHOLD = 5
#: Attempts of the runtime's consumer per delivery before it hands a transient failure back
#: to the broker (guichet_runtime.consumer's default).
CONSUMER_ATTEMPTS = 4
#: How long one delivery keeps trying an unreachable agency before it is handed back (each
#: attempt pauses UNAVAILABLE_PAUSE_SECONDS), plus the circuit's open time: an outage
#: longer than this has outlived the retries a failing (not unreachable) agency gets
#: before the dead-letter topic.
RETRY_WINDOW_SECONDS = CONSUMER_ATTEMPTS * float(TUNING["UNAVAILABLE_PAUSE_SECONDS"]) + float(
    TUNING["BREAKER_SECONDS"]
)


def adapters_stack(
    kafka_bootstrap: str, workdir: Path, oidc_issuers: dict[str, str] | None = None
) -> Stack:
    """The adapters' stack, not started, with TUNING; France Travail reconciled every few
    seconds. `oidc_issuers`: the token issuers the services trust (`keycloak.issuers`)."""
    return Stack(
        workdir,
        kafka_bootstrap,
        namespace=f"e2e-ad-{uuid.uuid4().hex[:6]}.",
        extra_env=TUNING,
        oidc_issuers=oidc_issuers,
        launcher=LAUNCHER,
    )


async def agency_calls(client: httpx.AsyncClient, stack: Stack, agency: str) -> dict[str, float]:
    """The adapter's calls to its agency so far, by outcome (its /metrics)."""
    text = (await client.get(f"{stack.adapter_url(agency)}/metrics")).text
    found = re.findall(
        rf'^adapter_agency_calls_total{{agency="{agency}",outcome="([a-z_]+)"}} (\S+)$',
        text,
        re.MULTILINE,
    )
    return {outcome: float(n) for outcome, n in found}


#: How long the CAF's system stays down in the outage test: three retry windows (about 20 s
#: with TUNING); GUICHET_E2E_OUTAGE_SECONDS=120 for the two minutes of the original claim.
OUTAGE_SECONDS = float(os.environ.get("GUICHET_E2E_OUTAGE_SECONDS", 3 * RETRY_WINDOW_SECONDS))


def assert_outlived_the_retries(before: dict[str, float], after: dict[str, float]) -> None:
    """The outage outlived the retries (calls by outcome, before and at its end): the circuit
    opened (calls refused while open), and trial calls after its open time found the agency
    still unreachable (more refused connections than it takes to open the circuit)."""
    unreachable = after.get("injoignable", 0) - before.get("injoignable", 0)
    opened = after.get("circuit_ouvert", 0) - before.get("circuit_ouvert", 0)
    assert unreachable > BREAKER_THRESHOLD and opened >= 1, (before, after)
