"""Helpers of the end-to-end tests: poll the real system, read the services' databases,
mail and spans."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.kafka_sasl import client_options
from devstack.smtp_sink import read_maildir

T = TypeVar("T")

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
    """Poll `probe` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"not reached within {timeout}s: {what} (last: {last!r})")


async def answered_view(
    client: httpx.AsyncClient, file_id: str, notifications: int = 2
) -> dict | None:
    """The citizen's view once the answer is there and both emails are reported sent."""
    view = (await client.get(f"/api/files/{file_id}")).json()
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
    is), polled until `wanted(records)` holds."""
    import uuid

    from aiokafka import AIOKafkaConsumer

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
                    records.append(
                        {
                            "key": r.key.decode() if r.key else None,
                            "body": body,
                            **{k: v.decode() for k, v in r.headers},
                        }
                    )
            return records if wanted(records) else None

        return await eventually(probe, timeout=timeout, what=f"records on {topic}")
    finally:
        await consumer.stop()
