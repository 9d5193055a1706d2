"""Helpers of the crash-point tests (tests/e2e/test_crash_points.py,
tests/e2e/test_delivery_keys.py): arm a crash point in one service, watch it die there,
restart it, and check what the citizen and the agencies see."""

from __future__ import annotations

import asyncio
import collections

import httpx

from devstack.stack import Stack
from guichet_runtime.crashpoints import EXIT_STATUS
from tests.e2e.support import (
    answered_view,
    eventually,
    file_body,
    mails_for,
    query,
    read_topic,
)

#: A restart joins the consumer group again; slow on a loaded 2-core machine.
RESTART_TIMEOUT = 150


async def submit(client: httpx.AsyncClient, life_event: str, email: str, **citizen) -> str:
    """Marie's file for `life_event`, with her `email` (and the other `citizen` fields)."""
    body = file_body(life_event, email=email, **citizen)
    response = await client.post("/api/files", json=body)
    assert response.status_code == 201, response.text
    return response.json()["file_id"]


async def crash_at(stack: Stack, service: str, point: str, action):
    """Restart `service` with the crash point `point` armed, run `action`, wait for the
    process to die at the point, then restart it unarmed. Returns what `action` returned."""
    proc = stack.processes[service]
    # The process's log is appended to at each start: count only what this run wrote.
    logged_before = proc.log_path.stat().st_size if proc.log_path.exists() else 0
    armed = {"GUICHET_CRASH_POINTS_ENABLED": "1", "GUICHET_CRASH_AT": point}
    proc.env.update(armed)
    try:
        await asyncio.to_thread(stack.restart, service, RESTART_TIMEOUT)
        result = await action()

        async def died() -> bool:
            return not proc.is_running

        await eventually(died, timeout=90, what=f"{service} dying at {point}")
    finally:
        for name in armed:
            proc.env.pop(name, None)
    assert proc.returncode == EXIT_STATUS, proc.log_tail()
    with proc.log_path.open("rb") as log:
        log.seek(logged_before)
        logged = log.read().decode(errors="replace")
    assert logged.count(f"crash point {point} reached") == 1
    await asyncio.to_thread(stack.restart, service, RESTART_TIMEOUT)
    return result


async def events_of(stack: Stack, topic: str, file_id: str, wanted=lambda rs: bool(rs)):
    """The records of `topic` keyed by `file_id`, polled until `wanted(records)`."""
    return [
        r
        for r in await read_topic(
            stack.kafka_bootstrap,
            stack.namespace + topic,
            lambda rs: wanted([r for r in rs if r["key"] == file_id]),
        )
        if r["key"] == file_id
    ]


async def assert_answered_once(stack: Stack, client: httpx.AsyncClient, file_id: str) -> dict:
    """One référent, one coordinated answer, each email once as the citizen sees it."""
    view = await eventually(
        lambda: answered_view(client, file_id), timeout=150, what=f"answer for {file_id}"
    )
    urls = stack.database_urls
    assigned = await query(
        urls["assignment"], "SELECT file_id FROM assignments WHERE file_id = :f", f=file_id
    )
    assert len(assigned) == 1
    answers = await query(
        urls["intake"],
        "SELECT count(*) AS n FROM timeline WHERE kind = 'reponse_coordonnee' AND file_id = :f",
        f=file_id,
    )
    assert answers[0].n == 1
    mails = mails_for(stack.maildir, file_id)
    by_id = collections.Counter(m["Message-ID"] for m in mails)
    subjects = {m["Subject"] for m in mails}
    assert len(by_id) == 2 and len(subjects) == 2, (by_id, subjects)
    return view
