"""What a chaos run (devstack.chaos) left behind, read where it is kept: the services'
databases (read-only queries), the test doubles' records (SMTP sink, SMS and postal providers,
agency simulators) and the stack's dead-letter topics. Gathered into a
devstack.chaos_plan.Observation, which `judge` turns into figures."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devstack import kafka_sasl
from devstack.chaos_plan import Observation, answered
from devstack.smtp_sink import read_maildir
from devstack.stack import Stack
from guichet_runtime.tls_context import client_tls
from shared_models import topics


class Databases:
    """One engine per service database, for read-only queries (retried while SQLite is busy)."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.engines: dict[str, AsyncEngine] = {n: create_async_engine(u) for n, u in urls.items()}

    async def rows(self, service: str, statement: str) -> list[Any]:
        for attempt in range(10):
            try:
                async with self.engines[service].connect() as conn:
                    return list((await conn.execute(sa.text(statement))).all())
            except sa.exc.OperationalError:
                if attempt == 9:
                    raise
                await asyncio.sleep(0.5)
        return []

    async def dispose(self) -> None:
        for engine in self.engines.values():
            await engine.dispose()


async def progress(db: Databases, ids: Sequence[str]) -> tuple[int, tuple[Any, ...]]:
    """(files answered, a signature that changes while the system still works)."""
    obs = Observation(submitted=ids)
    obs.intake_files = {
        r[0]: r[1] for r in await db.rows("intake", "SELECT file_id, status FROM files")
    }
    obs.notifications = await notifications(db)
    done = sum(1 for f in ids if answered(obs, f))
    states = Counter(obs.intake_files.values())
    agencies = await db.rows("intake", "SELECT status, count(*) FROM file_agencies GROUP BY status")
    sent = sum(len(kinds) for kinds in obs.notifications.values())
    return done, (done, tuple(sorted(states.items())), tuple(sorted(map(tuple, agencies))), sent)


async def notifications(db: Databases) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for file_id, kind, status in await db.rows(
        "notification", "SELECT file_id, kind, status FROM notifications"
    ):
        found[file_id][kind].append(status)
    return found


async def dead_letters(bootstrap: str, namespace: str) -> dict[str, int]:
    """Records on every dead-letter topic of the stack."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    names = [namespace + t for t in topics.all_topics() if t.endswith(".dlq")]
    consumer = AIOKafkaConsumer(**kafka_sasl.client_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        present = set(await consumer.topics())
        parts = [
            TopicPartition(t, p)
            for t in names
            if t in present
            for p in sorted(consumer.partitions_for_topic(t) or {0})
        ]
        if not parts:
            return {}
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        counts: Counter[str] = Counter()
        for tp in parts:
            counts[tp.topic.removeprefix(namespace)] += ends[tp] - starts[tp]
        return dict(counts)
    finally:
        await consumer.stop()


def mail_repeats(duplicates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The SMTP sink's `/duplicates` as the judge reads them: each Message-ID stored more
    than once, its file, its subject (the judge matches a repeat it explains with the same
    subject's count by it) and how many copies."""
    return [
        {
            "message_id": d["message_id"],
            "file_id": next((v for k, v in d["headers"] if k == "X-Guichet-File"), None),
            "subject": d["subject"],
            "copies": d["copies"],
        }
        for d in duplicates
    ]


async def doubles(stack: Stack) -> dict[str, Any]:
    """What the SMTP sink, the providers and the agency simulators recorded."""
    out: dict[str, Any] = {"calls": {}}
    # Generous: after a 10,000-file run the sink holds some 20,000 messages.
    async with httpx.AsyncClient(timeout=600, verify=client_tls()) as http:
        out["mail"] = mail_repeats((await http.get(f"{stack.smtp_http_url}/duplicates")).json())
        repeats = (await http.get(f"{stack.providers_url}/repeats")).json()
        out["sms"] = [r for r in repeats if r["kind"] == "sms"]
        out["letters"] = [r for r in repeats if r["kind"] == "letters"]
        for agency in stack.ports.simulators:
            url = f"{stack.simulator_url(agency)}/agencies/{agency}/stats"
            out["calls"][agency] = (await http.get(url)).json()["per_request"]
    return out


def mail_subjects(stack: Stack) -> dict[str, dict[str, int]]:
    return maildir_subjects(stack.maildir)


def maildir_subjects(maildir: Any) -> dict[str, dict[str, int]]:
    """File id -> subject -> how many emails the sink stored."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for message in read_maildir(maildir):
        if file_id := message["X-Guichet-File"]:
            found[file_id][str(message["Subject"])] += 1
    return {f: dict(c) for f, c in found.items()}


async def observe(stack: Stack, db: Databases, bootstrap: str, ids: Sequence[str]) -> Observation:
    obs = Observation(submitted=ids)
    obs.intake_files = {
        r[0]: r[1] for r in await db.rows("intake", "SELECT file_id, status FROM files")
    }
    agencies: dict[str, dict[str, str]] = defaultdict(dict)
    for file_id, agency, status in await db.rows(
        "intake", "SELECT file_id, agency, status FROM file_agencies"
    ):
        agencies[file_id][agency] = status
    obs.intake_agencies = agencies
    obs.assignment_files = {
        r[0]: (r[1], r[2])
        for r in await db.rows("assignment", "SELECT file_id, status, referent_id FROM files")
    }
    obs.assignments = {
        r[0]: r[1]
        for r in await db.rows(
            "assignment", "SELECT file_id, count(*) FROM assignments GROUP BY file_id"
        )
    }
    obs.requests = {
        r[0]: (r[1], r[2], r[3])
        for r in await db.rows(
            "assignment", "SELECT request_id, file_id, agency, status FROM agency_requests"
        )
    }
    adapters, callbacks = {}, {}
    for agency in stack.ports.adapters:
        name = topics.adapter_service(agency)
        adapters[agency] = {
            r[0]: r[1] for r in await db.rows(name, "SELECT request_id, status FROM requests")
        }
        callbacks[agency] = {
            r[0]: r[1]
            for r in await db.rows(
                name, "SELECT request_id, count(*) FROM callbacks GROUP BY request_id"
            )
        }
    obs.adapter_requests, obs.callbacks = adapters, callbacks
    obs.notifications = await notifications(db)
    found = await doubles(stack)
    obs.mail_duplicates, obs.sms_repeats = found["mail"], found["sms"]
    obs.letter_repeats, obs.agency_calls = found["letters"], found["calls"]
    obs.mail_subjects = await asyncio.to_thread(mail_subjects, stack)
    obs.dead_letters = await dead_letters(bootstrap, stack.namespace)
    return obs
