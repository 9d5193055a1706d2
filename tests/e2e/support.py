"""Helpers of the end-to-end tests: poll the real system, read the services' databases,
mail and spans."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.forkserver import ForkServer
from devstack.kafka_sasl import client_options
from devstack.smtp_sink import read_maildir
from devstack.stack import Stack
from guichet_runtime.tls_context import client_tls
from tests.deadline import time_left
from tests.e2e.sealing_support import opener_for

if TYPE_CHECKING:
    from tests.e2e.auth_support import Tokens

T = TypeVar("T")

#: Where every test stack's services and simulators come from: forks of one process per pytest
#: process that has imported them already (devstack.forkserver; a stack starts in about 2.5 s
#: of CPU instead of 17, a restart after a kill in 0.3 s instead of 2).
LAUNCHER = ForkServer(Path(tempfile.gettempdir()) / f"guichet-forkserver-{os.getpid()}.log")

#: The database backends of the session's shared stacks (tests/e2e/conftest.py).
BACKENDS = ("sqlite", "postgresql")
#: The line the shared stacks add to the shipped catalogue: a fifth agency, the ANTS, joins
#: with a life event of its own (tests/e2e/test_new_agency.py, test_minimisation.py).
ANTS_LINE = (
    'perte_papiers = { label = "Perte ou vol de papiers d\'identité", agencies = ["ants"] }\n'
)


def client_of(base_url: str, **options: Any) -> httpx.AsyncClient:
    """A client of one of the stack's processes, sharing the process's TLS context."""
    return httpx.AsyncClient(base_url=base_url, verify=client_tls(), **options)


def simulator(stack: Stack, agency: str, **options: Any) -> httpx.AsyncClient:
    """A client of one agency's simulated system (its admin routes: faults, what it received)."""
    return client_of(stack.simulator_url(agency), **options)


def shared_catalogue_path(workdir: Path) -> Path:
    """The catalogue a shared stack started in `workdir` runs with (GUICHET_CATALOGUE)."""
    return workdir / "catalogue.toml"


MARIE = {
    "given_name": "Marie",
    "family_name": "Dupont",
    "email": "marie.dupont@example.fr",
    "phone": "06 12 34 56 78",
    "postcode": "93200",
    "preferred_channel": "email",
}


def file_body(life_event: str = "perte_emploi", **citizen: Any) -> dict[str, Any]:
    return {
        "life_event": life_event,
        "citizen": {**MARIE, **citizen},
        "description": "J'ai perdu mon emploi le 15 novembre et je ne sais pas par où commencer.",
        "urgent": True,
    }


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 60, what: str = ""
) -> T:
    """Poll `probe` until it returns something truthy, for `timeout` seconds or until the
    test's own deadline (its pytest timeout, see tests/deadline.py) if that comes first."""
    timeout = time_left(timeout)
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"not reached within {timeout}s: {what} (last: {last!r})")


class Bearer(httpx.Auth):
    """An httpx `auth`: the token of one principal on every request to `origin`, unless the
    request names its own `Authorization` (or passes `auth=None`: anonymous).

    `token` is a `Tokens` method (tests/e2e/auth_support.py), called per request, so a test
    longer than a token's life gets a fresh one. Other hosts (simulators, SMTP sink, another
    service, whose audience the token is not for) get nothing."""

    def __init__(self, token: Callable[[], dict[str, str]], origin: str) -> None:
        self.token = token
        self.origin = httpx.URL(origin)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = request.url
        here = (url.scheme, url.host, url.port) == (
            self.origin.scheme,
            self.origin.host,
            self.origin.port,
        )
        if here and "Authorization" not in request.headers:
            request.headers.update(self.token())
        yield request


def client_as(
    base_url: str, token: Callable[[], dict[str, str]], timeout: float = 10
) -> httpx.AsyncClient:
    """A client of one service (`async with`) sending `token()`'s header on every request,
    e.g. `client_as(stack.assignment_url, lambda: tokens.agent_id("AG-93-01-1"))`."""
    return httpx.AsyncClient(
        base_url=base_url, timeout=timeout, auth=Bearer(token, base_url), verify=client_tls()
    )


def citizen_client(
    stack: Stack, tokens: Tokens, username: str = "marie.dupont", timeout: float = 10
) -> httpx.AsyncClient:
    """A citizen's client of intake (`async with`): files submitted with it are theirs
    (linked to their `sub`), so their views read with it too."""
    return client_as(stack.intake_url, lambda: tokens.citizen(username), timeout)


async def answered_view(
    client: httpx.AsyncClient,
    file_id: str,
    notifications: int = 2,
    headers: dict[str, str] | None = None,
) -> dict | None:
    """The citizen's view once the answer is there and both emails are reported sent
    (read with the client's identity, or `headers`' token)."""
    view = (await client.get(f"/api/files/{file_id}", headers=headers)).json()
    sent = [e for e in view.get("timeline", []) if e["kind"] == "notification"]
    if view.get("answer") and len(sent) >= notifications:
        return view
    return None


async def query(url: str, statement: str, **params: Any) -> list[sa.Row]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(statement), params)).all())
    finally:
        await engine.dispose()


def mails_for(maildir: Path, file_id: str) -> list:
    return [m for m in read_maildir(maildir) if m["X-Guichet-File"] == file_id]


def spans(spans_dir: Path) -> list[dict]:
    out = []
    for path in spans_dir.glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


async def read_topic(
    bootstrap: str, topic: str, wanted: Callable[[list[dict]], bool], timeout: float = 30
) -> list[dict]:
    """Records of `topic` from the beginning (headers decoded, body parsed as JSON when it
    is, its sealed personal fields opened when the topic is a sealed stack's), polled until
    `wanted(records)` holds."""
    import uuid

    from aiokafka import AIOKafkaConsumer

    opener = opener_for(topic)

    consumer = AIOKafkaConsumer(
        topic,
        **client_options(bootstrap),
        group_id=f"e2e-reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[dict] = []
    try:

        async def probe() -> list[dict] | None:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                for r in part:
                    try:
                        body = json.loads(r.value)
                    except ValueError:
                        body = r.value
                    headers = {k: v.decode() for k, v in r.headers}
                    if opener is not None:
                        body = await opener.opened(body, headers.get("event_type"))
                    records.append(
                        {"key": r.key.decode() if r.key else None, "body": body, **headers}
                    )
            return records if wanted(records) else None

        return await eventually(probe, timeout=timeout, what=f"records on {topic}")
    finally:
        await consumer.stop()


async def repeats(stack: Stack, file_ids: Iterable[str] | None = None) -> dict[str, list[dict]]:
    """What the test doubles received more than once (issue 18), limited to `file_ids` when
    given: ``mail`` (Message-IDs the SMTP sink stored more than once, from its
    ``/duplicates``), ``sms`` and ``letters`` (Idempotency-Keys the providers were called with
    more than once, from ``/repeats``; they delivered them once) and, per agency, the request
    ids its simulator was called with more than once, and (CPAM) the documents sent again
    after its decision (``/agencies/<agency>/stats``). Empty lists everywhere: nothing was
    sent twice."""
    wanted = None if file_ids is None else set(file_ids)

    def mine(file_id: str | None) -> bool:
        return wanted is None or file_id in wanted

    found: dict[str, list[dict]] = {"mail": [], "sms": [], "letters": []}
    async with httpx.AsyncClient(timeout=10, verify=client_tls()) as http:
        for dup in (await http.get(f"{stack.smtp_http_url}/duplicates")).json():
            file_id = next((v for k, v in dup["headers"] if k == "X-Guichet-File"), None)
            if mine(file_id):
                found["mail"].append(
                    {"message_id": dup["message_id"], "file_id": file_id, "copies": dup["copies"]}
                )
        for rep in (await http.get(f"{stack.providers_url}/repeats")).json():
            if mine(rep["file_id"]):
                found[rep["kind"]].append(rep)
        for agency in stack.ports.simulators:
            url = f"{stack.simulator_url(agency)}/agencies/{agency}/stats"
            stats = (await http.get(url)).json()
            again = stats["repeated"] + stats.get("documents_again", [])
            found[agency] = [r for r in again if mine(r["file_id"])]
    return found


async def assert_no_repeats(stack: Stack, file_ids: Iterable[str] | None = None) -> None:
    """Nothing of `file_ids` (of the whole run when None) reached a test double twice: no
    email stored twice by the SMTP sink, no SMS or letter key sent twice to the providers, no
    request sent twice to an agency. The doubles record every call, repeats included, so this
    fails when the product does send twice (issue 18)."""
    found = await repeats(stack, file_ids)
    assert not any(found.values()), {k: v for k, v in found.items() if v}
