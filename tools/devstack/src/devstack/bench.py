"""End-to-end benchmark of guichet unique on real processes (`guichet-dev bench`).

Files are submitted over HTTP to intake with bounded concurrency while a Kafka consumer of
our own (unique group, earliest offsets) watches `referents.assigned` and
`notifications.sent`. For every file we keep:

* its submit time (just before its POST was sent) and the POST's latency,
* when its `ReferentAssigned` reached us (a référent is named),
* when its `NotificationSent` of kind `answer_ready` reached us (the coordinated answer
  was e-mailed to the citizen).

All times are `time.monotonic()` readings in this process, so the latencies include the last
Kafka hop to the benchmark's consumer. The statistics and the report are pure functions
below, unit-tested in tests/devstack/test_bench.py; `measure` is the async driver and the
`bench` command (devstack.cli_bench_system) sets up the broker and the stack around it.

Two phases, one report each: a **burst** (`files` files, at most `concurrency` POSTs in
flight: the throughput) and, with a rate, an **open loop**: files arrive on a schedule
(file i at start + i / rate) whether or not earlier ones are done, and every latency of a
file counts from its *scheduled* time, so a client or a server falling behind shows as
latency instead of being hidden by a slower sender (coordinated omission). Around each phase
the CPU time of every process is read (`probe`) and the messages the product wrote on every
topic of its namespace are counted (end offsets), per file.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devstack import kafka_sasl, procstats
from devstack.bench_http import IntakeClient
from shared_models import topics

#: Life event to submit for a given number of agencies per file (intake's catalogue:
#: perte_emploi -> France Travail, CAF, DGFiP; naissance -> CAF, CPAM).
LIFE_EVENT_BY_AGENCY_COUNT: dict[int, str] = {2: "naissance", 3: "perte_emploi"}

#: Postcodes of départements that have a France Services office in assignment's directory,
#: so the files spread over several offices like real traffic.
POSTCODES = ("75018", "93200", "69100", "13013", "59100", "33000")

#: Warm-up files use citizens numbered from here, apart from the measured ones.
WARMUP_BASE = 900_000
#: The open loop's files use citizens numbered from here.
OPEN_LOOP_BASE = 500_000
#: POSTs in flight at most in the open loop: a bound on sockets, not on arrivals (a file
#: waiting for a connection is late, and its latency says so).
OPEN_LOOP_CONNECTIONS = 256


REFERENT_EVENT = "ReferentAssigned"
NOTIFICATION_EVENT = "NotificationSent"
ANSWER_KIND = "answer_ready"


# -- pure helpers -------------------------------------------------------------------


def life_event_for(agencies_per_file: int) -> str:
    """The catalogue's life event concerning exactly `agencies_per_file` agencies."""
    try:
        return LIFE_EVENT_BY_AGENCY_COUNT[agencies_per_file]
    except KeyError:
        choices = ", ".join(str(n) for n in sorted(LIFE_EVENT_BY_AGENCY_COUNT))
        raise ValueError(
            f"no life event concerns {agencies_per_file} agencies (choose {choices})"
        ) from None


def file_body(index: int, life_event: str) -> dict[str, Any]:
    """A valid POST /api/files body; each index is a different citizen (no référent continuity)."""
    return {
        "life_event": life_event,
        "citizen": {
            "given_name": "Marie",
            "family_name": f"Banc{index:06d}",
            "email": f"bench.{index}@example.fr",
            "phone": "0612345678",
            "postcode": POSTCODES[index % len(POSTCODES)],
            "preferred_channel": "email",
        },
        "description": "Dossier de test de charge : situation décrite par le citoyen.",
        "urgent": index % 2 == 0,
    }


def percentile(values: Iterable[float], p: float) -> float | None:
    """The `p`-th percentile (0-100) by linear interpolation between closest ranks
    (numpy's default); None for no values."""
    data = sorted(values)
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {p}")
    if not data:
        return None
    rank = (len(data) - 1) * p / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (rank - lo)


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50/p95/p99, max and mean of `values` (None where there is no value)."""
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
    }


def latencies_ms(
    start: Mapping[str, float], end: Mapping[str, float], ids: Iterable[str] | None = None
) -> list[float]:
    """end - start in milliseconds for each id (default: every id of `start`) present in both."""
    keys = start.keys() if ids is None else ids
    return [(end[k] - start[k]) * 1000 for k in keys if k in start and k in end]


def throughput(
    completed: int, first_submit: float | None, last_answer: float | None
) -> float | None:
    """Completed files per second between the first submit and the last answer."""
    if not completed or first_submit is None or last_answer is None or last_answer <= first_submit:
        return None
    return completed / (last_answer - first_submit)


def classify(event_type: str | None, body: bytes | None) -> str | None:
    """'referent' for a ReferentAssigned, 'answer' for a NotificationSent of kind answer_ready,
    None for anything else (other notifications, unknown or unreadable records)."""
    if event_type == REFERENT_EVENT:
        return "referent"
    if event_type == NOTIFICATION_EVENT and body:
        try:
            kind = json.loads(body).get("kind")
        except (ValueError, AttributeError):
            return None
        return "answer" if kind == ANSWER_KIND else None
    return None


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    """Value of Kafka header `name`, decoded, or None."""
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode(errors="replace")
    return None


# -- measurement -------------------------------------------------------------------


@dataclass
class Recorder:
    """First arrival time of each file's référent and answer events (duplicates ignored:
    delivery is at least once)."""

    referent: dict[str, float] = field(default_factory=dict)
    answer: dict[str, float] = field(default_factory=dict)
    records: int = 0

    def record(
        self, event_type: str | None, key: bytes | None, body: bytes | None, at: float
    ) -> str | None:
        self.records += 1
        what = classify(event_type, body)
        if what is None or not key:
            return None
        target = self.referent if what == "referent" else self.answer
        target.setdefault(key.decode(errors="replace"), at)
        return what


@dataclass
class Measurement:
    """Raw timings of one run: monotonic seconds."""

    files: int
    concurrency: int
    life_event: str
    submitted: dict[str, float] = field(default_factory=dict)  # file id -> submit time
    post_latency_ms: list[float] = field(default_factory=list)
    post_errors: list[str] = field(default_factory=list)
    referent: dict[str, float] = field(default_factory=dict)
    answer: dict[str, float] = field(default_factory=dict)
    submit_phase_s: float | None = None
    timed_out: bool = False
    aborted: str | None = None  # why measuring stopped early (a process died)
    mode: str = "burst"  # or "open-loop"
    rate: float | None = None  # the open loop's arrivals per second
    send_lag_ms: list[float] = field(default_factory=list)  # POST sent - scheduled
    cpu_s: dict[str, float | None] = field(default_factory=dict)  # per process, this phase
    messages: dict[str, int] = field(default_factory=dict)  # per topic, written this phase


def offsets_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Records written per topic between two end-offset snapshots."""
    return {t: n - before.get(t, 0) for t, n in after.items()}


# -- the async driver ------------------------------------------------------------------


async def _consume(consumer: Any, recorder: Recorder) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=1000)
        now = time.monotonic()
        for records in batches.values():
            for rec in records:
                recorder.record(header(rec.headers, "event_type"), rec.key, rec.value, now)


async def _wait_for(
    ids: Sequence[str],
    arrived: Mapping[str, float],
    deadline: float,
    check: Callable[[], str | None] | None,
    progress: Callable[[str], None] | None = None,
    every: float = 5.0,
) -> str | None:
    """Until every id has arrived: None; 'timeout' or the reason `check` gives otherwise.
    `progress` is told how many arrived every `every` seconds."""
    next_report = time.monotonic() + every
    while True:
        if all(i in arrived for i in ids):
            return None
        if progress is not None and time.monotonic() >= next_report:
            next_report += every
            progress(f"  {sum(1 for i in ids if i in arrived)}/{len(ids)} answered...")
        if check is not None and (problem := check()):
            return problem
        if time.monotonic() > deadline:
            return "timeout"
        await asyncio.sleep(0.05)


async def _post(client: Any, body: dict[str, Any]) -> tuple[str | None, float, float, str | None]:
    """(file id or None, submit time, latency s, error)."""
    t0 = time.monotonic()
    try:
        resp = await client.post(
            "/api/files", json=body, headers={"Idempotency-Key": f"bench-{uuid.uuid4()}"}
        )
    except Exception as e:
        return None, t0, time.monotonic() - t0, f"{type(e).__name__}: {e}"
    latency = time.monotonic() - t0
    if resp.status_code != 201:
        return None, t0, latency, f"HTTP {resp.status_code}: {resp.text[:200]}"
    return resp.json()["file_id"], t0, latency, None


async def end_offsets(admin: Any, consumer: Any, namespace: str) -> dict[str, int]:
    """Records ever written per topic of `namespace` (end offsets summed over partitions),
    topic names without the namespace. `admin`: an AIOKafkaAdminClient; `consumer`: an
    AIOKafkaConsumer in no group."""
    from aiokafka import TopicPartition

    names = [t for t in await admin.list_topics() if t.startswith(namespace)]
    parts = [
        TopicPartition(t["topic"], p["partition"])
        for t in (await admin.describe_topics(names) if names else [])
        for p in t["partitions"]
    ]
    written: dict[str, int] = {}
    for tp, offset in (await consumer.end_offsets(parts)).items() if parts else ():
        name = tp.topic.removeprefix(namespace)
        written[name] = written.get(name, 0) + offset
    return written


async def open_loop(
    client: Any,
    m: Measurement,
    *,
    count: int,
    rate: float,
    life_event: str,
    base: int = OPEN_LOOP_BASE,
    stop: Callable[[], str | None] = lambda: None,
) -> None:
    """Send `count` files at `rate` per second on a fixed schedule (file i at start + i/rate),
    each in its own task whether or not earlier POSTs have returned. `m.submitted` holds each
    file's *scheduled* time and `post_latency_ms` counts from it; `send_lag_ms` is how late
    each POST actually left (the client's own delay, visible rather than hidden)."""
    m.mode, m.rate = "open-loop", rate
    start = time.monotonic()

    async def one(i: int, at: float) -> None:
        m.send_lag_ms.append((time.monotonic() - at) * 1000)
        fid, _sent, _latency, error = await _post(client, file_body(base + i, life_event))
        if error:
            m.post_errors.append(error)
        else:
            assert fid is not None
            m.submitted[fid] = at
            m.post_latency_ms.append((time.monotonic() - at) * 1000)

    tasks = []
    for i in range(count):
        at = start + i / rate
        if (delay := at - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        if stop():
            break
        tasks.append(asyncio.create_task(one(i, at)))
    await asyncio.gather(*tasks)
    m.submit_phase_s = time.monotonic() - start


def auto_rate(burst: Measurement) -> float | None:
    """Half the burst's throughput (files/s), the open loop's default arrival rate."""
    done = [burst.answer[i] for i in burst.submitted if i in burst.answer]
    fps = throughput(
        len(done), min(burst.submitted.values(), default=None), max(done, default=None)
    )
    return None if fps is None else fps / 2


async def measure(
    intake_url: str,
    bootstrap: str,
    namespace: str,
    *,
    files: int,
    concurrency: int,
    life_event: str,
    warmup: int = 5,
    timeout: float = 300,
    warmup_timeout: float = 120,
    check: Callable[[], str | None] | None = None,
    log: Callable[[str], None] = print,
    auth: Any = None,
    rate: float | str | None = None,
    rate_files: int | None = None,
    probe: Callable[[], Mapping[str, float | None]] | None = None,
) -> list[Measurement]:
    """Warm up with `warmup` files (not measured), then the burst: submit `files` files with
    at most `concurrency` POSTs in flight and wait (at most `timeout` s after the last POST)
    until each one's answer notification was sent. With a `rate` (files/s, or "auto": half
    the burst's throughput), then the open loop: `rate_files` (default `files`) files on that
    schedule, answered likewise. One Measurement per phase. `auth`: where the POSTs' bearer token
    comes from (the bench citizen's, devstack.tokens.FreshBearer; None: anonymous).
    `probe`: CPU seconds per process so far, read before and after each phase.

    `check` is polled (from the event loop, so it must be quick) and returns a reason to stop
    early, e.g. a dead process or a Ctrl-C: the run then ends normally with `aborted` set. A
    stop is asked that way rather than by raising KeyboardInterrupt inside the loop, which can
    leave aiokafka's background tasks half torn down and `consumer.stop()` hanging.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    m = Measurement(files=files, concurrency=concurrency, life_event=life_event)
    phases = [m]
    recorder = Recorder(referent=m.referent, answer=m.answer)
    consumer = AIOKafkaConsumer(
        namespace + topics.REFERENTS_ASSIGNED,
        namespace + topics.NOTIFICATIONS_SENT,
        **kafka_sasl.client_options(bootstrap),
        group_id=f"{namespace}bench-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    # Counting what the product writes: an admin client (topics, partitions) and a reader in
    # no group (end offsets).
    admin = AIOKafkaAdminClient(**kafka_sasl.client_options(bootstrap))
    offsets = AIOKafkaConsumer(**kafka_sasl.client_options(bootstrap), enable_auto_commit=False)
    await admin.start()
    await offsets.start()
    await consumer.start()
    consuming = asyncio.create_task(_consume(consumer, recorder))

    stopped: list[str] = []  # the first problem found, kept: `check` may print as it finds one

    def problems() -> str | None:
        if not stopped:
            if consuming.done():
                stopped.append(
                    f"the benchmark's own Kafka consumer stopped: {consuming.exception()!r}"
                )
            elif check is not None and (problem := check()):
                stopped.append(problem)
        return stopped[0] if stopped else None

    async def phase_start() -> tuple[dict[str, int], Mapping[str, float | None]]:
        return await end_offsets(admin, offsets, namespace), (probe() if probe else {})

    async def phase_end(
        phase: Measurement, before: tuple[dict[str, int], Mapping[str, float | None]]
    ) -> None:
        """Wait for the phase's answers, then take its CPU times and messages written."""
        problem = problems() or await _wait_for(
            list(phase.submitted), phase.answer, time.monotonic() + timeout, problems, log
        )
        if problem == "timeout":
            phase.timed_out = True
        elif problem:
            phase.aborted = problem
        if probe is not None:
            phase.cpu_s = procstats.cpu_deltas(before[1], probe())
        phase.messages = offsets_delta(before[0], await end_offsets(admin, offsets, namespace))

    try:
        async with IntakeClient(
            intake_url, connections=max(1, concurrency), timeout=60, auth=auth
        ) as client:
            if warmup:
                log(f"warming up with {warmup} files...")
                results = await asyncio.gather(
                    *(_post(client, file_body(WARMUP_BASE + i, life_event)) for i in range(warmup))
                )
                errors = [e for _, _, _, e in results if e]
                if errors:
                    raise RuntimeError(f"warm-up POST failed: {errors[0]}")
                problem = await _wait_for(
                    [fid for fid, *_ in results if fid],
                    m.answer,
                    time.monotonic() + warmup_timeout,
                    problems,
                )
                if problem == "timeout":
                    raise RuntimeError(f"warm-up files not answered within {warmup_timeout:.0f} s")
                if problem:
                    m.aborted = f"during the warm-up: {problem}"
                    return phases

            log(f"burst: submitting {files} files with concurrency {concurrency}...")
            next_index = iter(range(files))

            async def worker() -> None:
                for i in next_index:  # shared iterator: each index taken once
                    if problems():
                        return
                    fid, t0, latency, error = await _post(client, file_body(i, life_event))
                    if error:
                        m.post_errors.append(error)
                    else:
                        assert fid is not None
                        m.submitted[fid] = t0
                        m.post_latency_ms.append(latency * 1000)

            before = await phase_start()
            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
            m.submit_phase_s = time.monotonic() - started
            if not problems():
                log(f"all POSTs done in {m.submit_phase_s:.1f} s; waiting for the answers...")
            await phase_end(m, before)
        if rate is None or m.aborted or m.timed_out:
            return phases
        per_s = auto_rate(m) if rate == "auto" else float(rate)
        if not per_s:
            return phases
        o = Measurement(files=rate_files or files, concurrency=0, life_event=life_event)
        o.referent, o.answer = m.referent, m.answer  # the recorder's: ids differ per phase
        phases.append(o)
        log(f"open loop: {o.files} files at {per_s:.1f} files/s...")
        async with IntakeClient(
            intake_url, connections=OPEN_LOOP_CONNECTIONS, timeout=120, auth=auth
        ) as client:
            before = await phase_start()
            await open_loop(
                client, o, count=o.files, rate=per_s, life_event=life_event, stop=problems
            )
            await phase_end(o, before)
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        await consumer.stop()
        await offsets.stop()
        await admin.close()
    return phases
