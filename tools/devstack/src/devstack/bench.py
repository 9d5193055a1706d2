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
`bench` command of devstack.cli sets up the broker and the stack around it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import kafka_sasl
from shared_models import topics

#: Life event to submit for a given number of agencies per file (intake's catalogue:
#: perte_emploi -> France Travail, CAF, DGFiP; naissance -> CAF, CPAM).
LIFE_EVENT_BY_AGENCY_COUNT: dict[int, str] = {2: "naissance", 3: "perte_emploi"}

#: Postcodes of départements that have a France Services office in assignment's directory,
#: so the files spread over several offices like real traffic.
POSTCODES = ("75018", "93200", "69100", "13013", "59100", "33000")

#: Warm-up files use citizens numbered from here, apart from the measured ones.
WARMUP_BASE = 900_000

#: Processes measured but not counted in the stack's totals.
KAFKA, CLIENT = "kafka", "bench client"
NOT_IN_TOTAL = frozenset({KAFKA, CLIENT})

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


def build_report(
    m: Measurement,
    *,
    rss_mb: Mapping[str, Mapping[str, float | None]] | None = None,
    cpu_s: Mapping[str, float | None] | None = None,
    context: Mapping[str, Any] | None = None,
    max_missing_listed: int = 50,
) -> dict[str, Any]:
    """The figures of a run as a JSON-ready dict."""
    ids = list(m.submitted)
    done = [i for i in ids if i in m.answer]
    missing_answer = [i for i in ids if i not in m.answer]
    missing_referent = [i for i in ids if i not in m.referent]
    first_submit = min(m.submitted.values()) if m.submitted else None
    last_answer = max((m.answer[i] for i in done), default=None)
    wall = (
        (last_answer - first_submit)
        if first_submit is not None and last_answer is not None
        else None
    )
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **({"context": dict(context)} if context else {}),
        "files": m.files,
        "concurrency": m.concurrency,
        "life_event": m.life_event,
        "submitted": len(ids),
        "post_errors": len(m.post_errors),
        "post_error_samples": m.post_errors[:10],
        "completed": len(done),
        "missing_referent": len(missing_referent),
        "missing_answer": len(missing_answer),
        "missing_answer_ids": missing_answer[:max_missing_listed],
        "timed_out": m.timed_out,
        "aborted": m.aborted,
        "submit_phase_s": m.submit_phase_s,
        "post_rate_per_s": (len(ids) / m.submit_phase_s) if m.submit_phase_s else None,
        "wall_time_s": wall,
        "files_per_s": throughput(len(done), first_submit, last_answer),
        "latency_ms": {
            "post": summarize(m.post_latency_ms),
            "referent": summarize(latencies_ms(m.submitted, m.referent)),
            "answer": summarize(latencies_ms(m.submitted, m.answer)),
        },
        "rss_mb": {k: dict(v) for k, v in (rss_mb or {}).items()},
        "cpu_s": dict(cpu_s or {}),
    }


def _fmt(value: float | int | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def format_report(r: Mapping[str, Any]) -> str:
    """The human-readable table printed at the end of `guichet-dev bench`."""
    ctx = r.get("context", {})
    backend = ctx.get("backend", "")
    head = (
        f"{r['files']} files '{r['life_event']}'"
        + (f" ({ctx['agencies_per_file']} agencies each)" if "agencies_per_file" in ctx else "")
        + f", concurrency {r['concurrency']}"
        + (f", {backend}" if backend else "")
    )
    lines = [
        f"guichet unique benchmark: {head}",
        "",
        f"  completed          {r['completed']}/{r['submitted']} answers sent"
        f" (POST errors {r['post_errors']}, no référent {r['missing_referent']}, no answer "
        f"{r['missing_answer']})",
        f"  wall time          {_fmt(r['wall_time_s'], '.2f')} s (first submit -> last answer)",
        f"  throughput         {_fmt(r['files_per_s'], '.1f')} files/s",
        f"  submit phase       {_fmt(r['submit_phase_s'], '.2f')} s "
        f"({_fmt(r['post_rate_per_s'], '.1f')} POST/s)",
    ]
    if r.get("aborted"):
        lines.append(f"  ABORTED            {r['aborted']}")
    elif r.get("timed_out"):
        lines.append(
            "  TIMED OUT          some answers never arrived (see missing_answer_ids in the JSON)"
        )
    cols = ("p50", "p95", "p99", "max")
    lines += ["", f"  {'latency (ms)':<28}" + "".join(f"{c:>9}" for c in cols)]
    for label, key in (
        ("POST /api/files", "post"),
        ("submit -> référent named", "referent"),
        ("submit -> answer sent", "answer"),
    ):
        s = r["latency_ms"][key]
        lines.append(f"  {label:<28}" + "".join(f"{_fmt(s[c]):>9}" for c in cols))
    names = list(dict.fromkeys([*r.get("rss_mb", {}), *r.get("cpu_s", {})]))
    if names:
        rss, cpu = r.get("rss_mb", {}), r.get("cpu_s", {})
        lines += ["", f"  {'process':<28}{'RSS MB':>9}{'peak MB':>9}{'CPU s':>9}"]
        for name in names:
            mem = rss.get(name, {})
            lines.append(
                f"  {name:<28}{_fmt(mem.get('rss')):>9}{_fmt(mem.get('peak')):>9}"
                f"{_fmt(cpu.get(name), '.1f'):>9}"
            )
        total_rss = [
            m["rss"] for n, m in rss.items() if m.get("rss") is not None and n not in NOT_IN_TOTAL
        ]
        total_cpu = [c for n, c in cpu.items() if c is not None and n not in NOT_IN_TOTAL]
        lines.append(
            f"  {'total of the stack':<28}{_fmt(sum(total_rss) if total_rss else None):>9}{'':>9}"
            f"{_fmt(sum(total_cpu) if total_cpu else None, '.1f'):>9}"
        )
        if cpu:
            lines.append("  (CPU s: used from the warm-up to the end of the measure)")
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


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
) -> Measurement:
    """Warm up with `warmup` files (not measured), then submit `files` files with at most
    `concurrency` POSTs in flight and wait (at most `timeout` s after the last POST) until each
    one's answer notification was sent. `auth`: the httpx auth the POSTs carry (the bench
    citizen's token, devstack.tokens.FreshBearer; None: anonymous).

    `check` is polled (from the event loop, so it must be quick) and returns a reason to stop
    early, e.g. a dead process or a Ctrl-C: the run then ends normally with `aborted` set. A
    stop is asked that way rather than by raising KeyboardInterrupt inside the loop, which can
    leave aiokafka's background tasks half torn down and `consumer.stop()` hanging.
    """
    import httpx
    from aiokafka import AIOKafkaConsumer

    m = Measurement(files=files, concurrency=concurrency, life_event=life_event)
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

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    try:
        async with httpx.AsyncClient(
            base_url=intake_url, timeout=60, limits=limits, auth=auth
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
                    return m

            log(f"submitting {files} files with concurrency {concurrency}...")
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

            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
            m.submit_phase_s = time.monotonic() - started
            if not problems():
                log(f"all POSTs done in {m.submit_phase_s:.1f} s; waiting for the answers...")
            problem = problems() or await _wait_for(
                list(m.submitted), m.answer, time.monotonic() + timeout, problems, log
            )
            if problem == "timeout":
                m.timed_out = True
            elif problem:
                m.aborted = problem
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        await consumer.stop()
    return m
