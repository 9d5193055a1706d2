"""The soak-and-chaos run (`guichet-dev chaos`, `make chaos`): files at a steady arrival rate
through the whole stack while services are SIGKILLed and restarted, each agency's system goes
down for a while and the Kafka broker is restarted; then, once the system is quiet, what it
left behind: files answered, lost, stuck (and why), duplicates of every kind, dead letters.

The results are read where they are kept, not through the services' APIs (which will ask for
a token): the services' databases, the test doubles' own records (SMTP sink, SMS and postal
providers, agency simulators) and the dead-letter topics. Submitting stays anonymous
(`POST /api/files`), or as a Keycloak citizen with `token`. The schedule and the judgement
are pure (devstack.chaos_plan); the command is in devstack.cli_chaos.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from devstack.bench import file_body, summarize
from devstack.chaos_observe import Databases, observe, progress
from devstack.chaos_plan import (
    Fault,
    Step,
    judge,
    now_iso,
    schedule,
    verdict,
)
from devstack.kafka import LocalKafka
from devstack.lifecycle import exit_status
from devstack.stack import Stack
from guichet_runtime.tls_context import client_tls
from shared_models import topics

#: Agencies of each life event submitted (intake's catalogue).
AGENCIES_OF = {"perte_emploi": ("france_travail", "caf", "dgfip"), "naissance": ("caf", "cpam")}


@dataclass
class ChaosConfig:
    files: int = 10_000
    rate: float = 3.0  # files per second
    life_event: str = "perte_emploi"
    victims: Sequence[str] = ()
    kill_every: float = 20.0
    max_kills: int | None = None
    down_seconds: float = 2.0  # between a SIGKILL (or the broker's stop) and the restart
    outage_every: float = 120.0
    outage_seconds: float = 20.0
    broker_restarts: int = 1
    seed: int = 2026
    in_flight: int = 64  # POSTs in flight at most
    submit_patience: float = 300.0  # how long one submission is retried
    settle: float = 240.0  # quiescence: this long without progress
    timeout: float = 3600.0  # quiescence: at most this long after the last submission
    poll: float = 5.0
    linger: float = 10.0  # once every file is answered, late repeats get this long to show
    #: Agency -> a simulator fault mode held for the whole run (e.g. "silent"): to see the run
    #: catch what it should. Outages then end on this mode instead of "ok".
    faults: dict[str, str] = field(default_factory=dict)


@dataclass
class Journal:
    """What the chaos did, as it did it (seconds since the first submission)."""

    t0: float = field(default_factory=time.monotonic)
    kills: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0
    crashes: list[dict[str, Any]] = field(default_factory=list)
    broker_restarts: list[dict[str, Any]] = field(default_factory=list)
    outages: list[dict[str, Any]] = field(default_factory=list)
    down: set[str] = field(default_factory=set)  # stopped on purpose, being restarted
    failed: list[str] = field(default_factory=list)  # restarts that never came healthy

    def since(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kills": self.kills,
            "restarts": self.restarts,
            "crashes": self.crashes,
            "broker_restarts": self.broker_restarts,
            "outages": self.outages,
            "restarts_failed": self.failed,
        }


Log = Callable[[str], None]


# -- the faults ------------------------------------------------------------------------


def restart_service(stack: Stack, name: str, attempts: int = 3, timeout: float = 120) -> None:
    """Start `name` again until it is healthy (as an orchestrator would, a few times)."""
    for attempt in range(attempts):
        try:
            stack.restart(name, timeout)
            return
        except (RuntimeError, TimeoutError):
            if attempt == attempts - 1:
                raise
            time.sleep(2)


async def kill_and_restart(stack: Stack, name: str, cfg: ChaosConfig, j: Journal, log: Log) -> None:
    j.down.add(name)
    try:
        stack.kill(name)
        j.kills.append({"at": j.since(), "service": name})
        log(f"[{j.since():7.1f}s] SIGKILL {name}")
        await asyncio.sleep(cfg.down_seconds)
        await asyncio.to_thread(restart_service, stack, name)
        j.restarts += 1
        log(f"[{j.since():7.1f}s] {name} restarted")
    except (RuntimeError, TimeoutError) as e:
        j.failed.append(f"{name}: {e}")
        log(f"[{j.since():7.1f}s] {name} did not come back: {e}")
    finally:
        j.down.discard(name)


async def set_fault(stack: Stack, agency: str, mode: str) -> None:
    async with httpx.AsyncClient(timeout=10, verify=client_tls()) as http:
        resp = await http.post(
            f"{stack.simulator_url(agency)}/admin/faults", json={"agency": agency, "mode": mode}
        )
        resp.raise_for_status()


async def outage(
    stack: Stack, agency: str, seconds: float, j: Journal, log: Log, after: str = "ok"
) -> None:
    """The agency's system answers 503 to everything for `seconds`, then is in mode `after`."""
    at = j.since()
    await set_fault(stack, agency, "down")
    log(f"[{at:7.1f}s] {agency} down for {seconds:.0f} s")
    try:
        await asyncio.sleep(seconds)
    finally:
        await set_fault(stack, agency, after)
        j.outages.append({"at": at, "agency": agency, "seconds": round(j.since() - at, 1)})
        log(f"[{j.since():7.1f}s] {agency} back")


async def restart_broker(kafka: LocalKafka, cfg: ChaosConfig, j: Journal, log: Log) -> None:
    """Stop the broker (SIGTERM: a rolling restart's controlled shutdown) and start it again
    on the same port with the same data."""
    j.down.add("kafka")
    at = j.since()
    log(f"[{at:7.1f}s] stopping the Kafka broker")
    try:
        await asyncio.to_thread(kafka.stop)
        await asyncio.sleep(cfg.down_seconds)
        await asyncio.to_thread(kafka.start, 180)
        j.broker_restarts.append({"at": at, "down_s": round(j.since() - at, 1)})
        log(f"[{j.since():7.1f}s] Kafka broker back")
    finally:
        j.down.discard("kafka")


async def unleash(
    stack: Stack, kafka: LocalKafka, steps: Sequence[Step], cfg: ChaosConfig, j: Journal, log: Log
) -> None:
    """Play the schedule: kills and broker restarts one after the other (a kill's restart is
    awaited, so a slow restart delays the next kill), agency outages on their own clock."""
    outages: list[asyncio.Task[None]] = []

    async def at(step: Step) -> None:
        await asyncio.sleep(max(0.0, j.t0 + step.at - time.monotonic()))

    async def agencies() -> None:
        for step in (s for s in steps if s.fault is Fault.OUTAGE):
            await at(step)
            after = cfg.faults.get(step.target, "ok")
            outages.append(
                asyncio.create_task(outage(stack, step.target, step.seconds, j, log, after))
            )

    async def processes() -> None:
        for step in (s for s in steps if s.fault is not Fault.OUTAGE):
            await at(step)
            if step.fault is Fault.KILL:
                await kill_and_restart(stack, step.target, cfg, j, log)
            else:
                await restart_broker(kafka, cfg, j, log)

    try:
        await asyncio.gather(agencies(), processes())
    finally:
        await asyncio.gather(*outages, return_exceptions=True)


async def watch(stack: Stack, kafka: LocalKafka, j: Journal, log: Log) -> None:
    """A process that died on its own (not one the chaos stopped) is recorded and restarted."""
    while True:
        await asyncio.sleep(1)
        for name, proc in list(stack.processes.items()):
            if name in j.down or proc.is_running:
                continue
            j.crashes.append(
                {
                    "at": j.since(),
                    "service": name,
                    "status": exit_status(proc.returncode),
                    "log_tail": proc.log_tail(20),
                }
            )
            log(f"[{j.since():7.1f}s] {name} died by itself ({exit_status(proc.returncode)})")
            j.down.add(name)
            try:
                await asyncio.to_thread(restart_service, stack, name)
                j.restarts += 1
            except (RuntimeError, TimeoutError) as e:
                j.failed.append(f"{name}: {e}")
            finally:
                j.down.discard(name)
        if "kafka" not in j.down and (kafka.proc is None or kafka.proc.poll() is not None):
            j.crashes.append({"at": j.since(), "service": "kafka", "status": "exited"})
            j.down.add("kafka")
            try:
                await asyncio.to_thread(kafka.start, 180)
            finally:
                j.down.discard("kafka")


# -- submissions ------------------------------------------------------------------------


@dataclass
class Submissions:
    ids: list[str]  # the file ids intake gave
    errors: list[str]  # the last error of each file never accepted
    retried: int  # files accepted (or not) after more than one POST
    seconds: list[float]  # per accepted file: from its due time to its file id, retries included


async def submit_one(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    key: str,
    patience: float,
    headers: Callable[[], dict[str, str]],
) -> tuple[str | None, str | None, int]:
    """POST one file, again with the same Idempotency-Key while intake is away or failing (a
    retry after a commit whose answer was lost gets the same file): (file id, last error,
    attempts)."""
    deadline = time.monotonic() + patience
    delay, error, attempts = 0.2, None, 0
    while True:
        attempts += 1
        try:
            resp = await client.post(
                "/api/files", json=body, headers={"Idempotency-Key": key, **headers()}
            )
            if resp.status_code in (200, 201):
                return resp.json()["file_id"], None, attempts
            error = f"HTTP {resp.status_code}: {resp.text[:200]}"
            if resp.status_code < 500 and resp.status_code not in (408, 429):
                return None, error, attempts
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            return None, error, attempts
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def submit_all(
    intake_url: str,
    cfg: ChaosConfig,
    run_id: str,
    j: Journal,
    log: Log,
    headers: Callable[[], dict[str, str]] = dict,
) -> Submissions:
    """Submit `cfg.files` files at `cfg.rate` per second from `j.t0`."""
    gate = asyncio.Semaphore(cfg.in_flight)
    limits = httpx.Limits(max_connections=cfg.in_flight)
    async with httpx.AsyncClient(
        base_url=intake_url, timeout=30, limits=limits, verify=client_tls()
    ) as client:

        async def one(i: int) -> tuple[str | None, str | None, int, float]:
            due = j.t0 + i / cfg.rate
            async with gate:
                body = file_body(i, cfg.life_event)
                found = await submit_one(
                    client, body, f"chaos-{run_id}-{i}", cfg.submit_patience, headers
                )
            return *found, time.monotonic() - due

        tasks = []
        for i in range(cfg.files):
            await asyncio.sleep(max(0.0, j.t0 + i / cfg.rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(i)))
            if i and i % max(1, int(cfg.rate * 30)) == 0:
                log(f"[{j.since():7.1f}s] {i}/{cfg.files} submitted")
        results = await asyncio.gather(*tasks)
    return Submissions(
        ids=[f for f, *_ in results if f],
        errors=[e or "?" for f, e, *_ in results if not f],
        retried=sum(1 for _, _, attempts, _ in results if attempts > 1),
        seconds=[s for f, _, _, s in results if f],
    )


async def quiesce(
    db: Databases, ids: Sequence[str], cfg: ChaosConfig, j: Journal, log: Log
) -> bool:
    """Wait until every file is answered (True), or nothing moved for `cfg.settle` seconds or
    `cfg.timeout` passed (False)."""
    deadline = time.monotonic() + cfg.timeout
    last, changed = None, time.monotonic()
    while True:
        done, signature = await progress(db, ids)
        now = time.monotonic()
        if done == len(ids) and not j.down:
            return True
        if signature != last:
            last, changed = signature, now
            log(f"[{j.since():7.1f}s] {done}/{len(ids)} answered")
        if now - changed > cfg.settle or now > deadline:
            return False
        await asyncio.sleep(cfg.poll)


# -- the run ------------------------------------------------------------------------------


async def run(
    stack: Stack,
    kafka: LocalKafka,
    cfg: ChaosConfig,
    *,
    context: dict[str, Any],
    log: Log = print,
    headers: Callable[[], dict[str, str]] = dict,
) -> dict[str, Any]:
    """Submit, unleash the chaos, wait for quiescence, judge: the report (JSON-ready)."""
    agencies = AGENCIES_OF[cfg.life_event]
    window = cfg.files / cfg.rate
    steps = schedule(
        window,
        victims=cfg.victims,
        agencies=agencies,
        kill_every=cfg.kill_every,
        max_kills=cfg.max_kills,
        outage_every=cfg.outage_every,
        outage_seconds=cfg.outage_seconds,
        broker_restarts=cfg.broker_restarts,
        rng=random.Random(cfg.seed),
    )
    log(
        f"{cfg.files} files at {cfg.rate}/s (~{window:.0f} s); faults planned: "
        + ", ".join(f"{n} {f}" for f, n in Counter(s.fault.value for s in steps).items())
    )
    run_id = f"{cfg.seed}-{int(time.time())}"
    for agency, mode in cfg.faults.items():
        await set_fault(stack, agency, mode)
        log(f"{agency} in fault mode {mode!r} for the whole run")
    j = Journal()
    watcher = asyncio.create_task(watch(stack, kafka, j, log))
    chaos = asyncio.create_task(unleash(stack, kafka, steps, cfg, j, log))
    db = Databases(stack.database_urls)
    try:
        sub = await submit_all(stack.intake_url, cfg, run_id, j, log, headers)
        ids, errors = sub.ids, sub.errors
        submit_phase = time.monotonic() - j.t0
        log(f"[{j.since():7.1f}s] submissions done: {len(ids)} accepted, {len(errors)} not")
        await chaos
        log(f"[{j.since():7.1f}s] chaos over; waiting for quiescence...")
        quiet_from = time.monotonic()
        settled = await quiesce(db, ids, cfg, j, log)
        quiescence = time.monotonic() - quiet_from
        if settled:
            await asyncio.sleep(cfg.linger)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        obs = await observe(stack, db, kafka.bootstrap, ids)
    finally:
        for task in (watcher, chaos):
            task.cancel()
        await asyncio.gather(watcher, chaos, return_exceptions=True)
        await db.dispose()
    killed_adapters = {
        a for a in agencies if any(k["service"] == topics.adapter_service(a) for k in j.kills)
    }
    notification_kills = sum(1 for k in j.kills if k["service"] == "notification")
    figures = judge(obs, killed_adapters, notification_kills)
    extra = {
        "submissions never accepted": len(errors),
        "processes that died by themselves": len(j.crashes),
        "restarts that failed": len(j.failed),
    }
    report = {
        "generated_at": now_iso(),
        "context": {**context, **_config(cfg)},
        "duration_s": round(time.monotonic() - j.t0, 1),
        "submit_phase_s": round(submit_phase, 1),
        "quiescence_s": round(quiescence, 1),
        "settled": settled,
        "submit_failed": len(errors),
        "submit_errors": errors[:10],
        "submit_retried": sub.retried,
        "submit_latency_s": {k: _round(v) for k, v in summarize(sub.seconds).items()},
        **figures,
        "chaos": j.as_dict(),
    }
    report["failures"] = verdict(figures, extra)
    return report


def _round(value: float | int | None) -> float | int | None:
    return round(value, 2) if isinstance(value, float) else value


def _config(cfg: ChaosConfig) -> dict[str, Any]:
    keys = (
        "files",
        "rate",
        "life_event",
        "kill_every",
        "max_kills",
        "down_seconds",
        "outage_every",
        "outage_seconds",
        "broker_restarts",
        "seed",
        "settle",
        "faults",
    )
    return {"victims": list(cfg.victims), **{k: getattr(cfg, k) for k in keys}}
