"""Benchmark of one adapter process (`guichet-dev bench-adapter`, part of `make bench`).

One real adapter process (the CAF's by default) on a real Kafka broker, against its
simulated agency system answering at once. The benchmark publishes N requests to the
adapter's topic in one burst and reads its answers topic, which gives the requests per
second one adapter process sustains; the adapter's own samples (`/metrics/overhead`)
give the time each request spends in the adapter runtime with the agency's latency taken
out (Kafka decoding, inbox, translation, ledger, outbox, commit), p50 and p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from devstack import kafka_sasl
from devstack.bench import percentile
from guichet_runtime.tls_context import client_tls
from shared_models import AgencyRequestIssued, CitizenContact, citizen_data_for, topics

LIFE_EVENT = {
    "caf": "naissance",
    "dgfip": "demenagement",
    "cpam": "naissance",
    "france_travail": "perte_emploi",
}


def request_event(agency: str, index: int, run: str) -> AgencyRequestIssued:
    file_id = f"GU-BENCH-{run}-{index:06d}"
    return AgencyRequestIssued(
        file_id=file_id,
        request_id=f"{file_id}-{agency}",
        agency=agency,
        life_event=LIFE_EVENT[agency],
        citizen=citizen_data_for(
            agency,
            CitizenContact(
                given_name="Marie",
                family_name=f"Banc{index:06d}",
                email=f"bench.{index}@example.fr",
                phone="0612345678",
                postcode="93200",
                preferred_channel="email",
            ),
            "Demande de test de charge.",
        ),
        urgent=False,
    )


def adapter_report(
    *,
    requests: int,
    answered: int,
    first_sent: float | None,
    last_answer: float | None,
    runtime_s: Sequence[float],
    agency_s: Sequence[float],
    context: dict[str, Any],
) -> dict[str, Any]:
    """The figures: throughput, and runtime overhead / agency latency percentiles in ms."""

    def ms(values: Sequence[float], p: float) -> float | None:
        value = percentile(values, p)
        return None if value is None else round(value * 1000, 3)

    elapsed = (
        (last_answer - first_sent) if first_sent is not None and last_answer is not None else None
    )
    return {
        **context,
        "requests": requests,
        "answered": answered,
        "elapsed_s": None if elapsed is None else round(elapsed, 3),
        "requests_per_s": None if not elapsed or not answered else round(answered / elapsed, 1),
        "runtime_overhead_ms": {
            "p50": ms(runtime_s, 50),
            "p99": ms(runtime_s, 99),
            "count": len(runtime_s),
        },
        "agency_latency_ms": {"p50": ms(agency_s, 50), "p99": ms(agency_s, 99)},
    }


def format_adapter_report(r: dict[str, Any]) -> str:
    o, a = r["runtime_overhead_ms"], r["agency_latency_ms"]
    return "\n".join(
        [
            f"adapter {r['agency']} ({r['backend']}): {r['answered']}/{r['requests']} requests "
            "answered "
            f"in {r['elapsed_s']} s",
            f"  sustained by one adapter process : {r['requests_per_s']} requests/s",
            f"  runtime overhead per request     : p50 {o['p50']} ms, p99 {o['p99']} ms "
            f"(agency latency excluded, {o['count']} samples)",
            f"  agency latency (instant simulator): p50 {a['p50']} ms, p99 {a['p99']} ms",
        ]
    )


async def measure_adapter(
    bootstrap: str,
    namespace: str,
    agency: str,
    adapter_url: str,
    *,
    requests: int,
    warmup: int,
    timeout: float,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    run = uuid.uuid4().hex[:6]
    answers_topic = namespace + topics.agency_answers(agency)
    consumer = AIOKafkaConsumer(
        answers_topic,
        **kafka_sasl.client_options(bootstrap),
        group_id=f"bench-{run}",
        auto_offset_reset="latest",
    )
    producer = AIOKafkaProducer(**kafka_sasl.client_options(bootstrap), linger_ms=5)
    await consumer.start()
    await producer.start()
    arrived: dict[str, float] = {}
    progress = asyncio.Event()  # set whenever answers arrive

    async def collect() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    arrived.setdefault(record.key.decode(), now)
            if batch:
                progress.set()

    async def publish(indexes: range) -> tuple[list[str], float]:
        started = time.monotonic()
        ids = []
        for i in indexes:
            event = request_event(agency, i, run)
            ids.append(event.file_id)
            await producer.send(
                namespace + topics.agency_requests(agency),
                event.model_dump_json().encode(),
                key=event.key().encode(),
                headers=[("event_type", event.event_type.encode())],
            )
        await producer.flush()
        return ids, started

    async def wait(ids: list[str]) -> None:
        deadline = time.monotonic() + timeout
        while True:
            progress.clear()  # before looking: an arrival from now on sets it again
            remaining = deadline - time.monotonic()
            if all(i in arrived for i in ids) or remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), remaining)

    collector = asyncio.create_task(collect())
    try:
        await asyncio.sleep(1)  # the reader's partitions are assigned before anything is sent
        async with httpx.AsyncClient(timeout=10, verify=client_tls()) as client:
            warm_ids, _ = await publish(range(warmup))
            await wait(warm_ids)
            skip = len((await client.get(f"{adapter_url}/metrics/overhead")).json()["runtime_s"])
            log(f"warm-up done ({len(warm_ids)} requests); measuring {requests} requests...")
            ids, first_sent = await publish(range(warmup, warmup + requests))
            await wait(ids)
            samples = (await client.get(f"{adapter_url}/metrics/overhead")).json()
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        await producer.stop()
        await consumer.stop()
    done = [arrived[i] for i in ids if i in arrived]
    return adapter_report(
        requests=requests,
        answered=len(done),
        first_sent=first_sent,
        last_answer=max(done) if done else None,
        runtime_s=samples["runtime_s"][skip:],
        agency_s=samples["agency_s"][skip:],
        context={"agency": agency},
    )


def write(report: dict[str, Any], path: Path) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
