"""`guichet-dev chaos` (`make chaos`): the soak-and-chaos run of devstack.chaos on a fresh
broker, database server and stack of its own, in a temporary directory (registered on the
Typer app in devstack.cli)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import typer

from devstack import chaos
from devstack.bench_report import write_report
from devstack.chaos_plan import format_report
from devstack.kafka import LocalKafka, find_root
from devstack.keycloak import LocalKeycloak
from devstack.lifecycle import Signals, ensure_jars, say, stop_all
from devstack.ports import free_port
from devstack.postgres import LocalPostgres
from devstack.procs import ServiceProcess
from devstack.stack import Stack

#: What a kill may hit by default: every service with state or a consumer (the web is
#: stateless and not on the files' path; the test doubles stand for the outside world).
DEFAULT_VICTIMS = (
    "intake",
    "assignment",
    "notification",
    "adapter-france-travail",
    "adapter-caf",
    "adapter-dgfip",
)

#: A citizen of the realm `citoyens` who submits every file when Keycloak runs.
CITIZEN = "marie.dupont"
#: Tokens live 5 minutes in the realms: one is used at most this long.
TOKEN_REUSE_SECONDS = 240


def add_replica(stack: Stack, name: str = "assignment-2") -> str:
    """A second assignment process on the same database and consumer group (PostgreSQL)."""
    first = stack.processes["assignment"]
    port = free_port()
    env = {
        **first.env,
        "HTTP_PORT": str(port),
        "OTEL_SPANS_FILE": str(stack.spans_dir / f"{name}.jsonl"),
    }
    proc = ServiceProcess(
        name,
        first.argv,
        env,
        stack.workdir / "logs" / f"{name}.log",
        health_url=f"http://127.0.0.1:{port}/health",
        cwd=stack.workdir,
    )
    stack.processes[name] = proc
    proc.start()
    proc.wait_healthy(120)
    return name


class CitizenToken:
    """Authorization headers of a Keycloak citizen, fetched again before the token expires."""

    def __init__(self, keycloak: LocalKeycloak, username: str = CITIZEN) -> None:
        self.keycloak, self.username = keycloak, username
        self._lock = threading.Lock()
        self._at, self._token = 0.0, ""

    def __call__(self) -> dict[str, str]:
        with self._lock:
            # An empty token is never fresh (the monotonic clock counts from boot: a zero
            # stamp looks recent on a machine up for less than TOKEN_REUSE_SECONDS).
            if not self._token or time.monotonic() - self._at > TOKEN_REUSE_SECONDS:
                self._token = self.keycloak.password_token(self.username, "citoyens")
                self._at = time.monotonic()
            return {"Authorization": f"Bearer {self._token}"}


def chaos_command(
    files: int = typer.Option(10_000, "--files", min=1, help="Files submitted."),
    rate: float = typer.Option(3.0, "--rate", min=0.01, help="Files submitted per second."),
    backend: str = typer.Option("sqlite", "--backend", help="sqlite or postgresql."),
    replicas: int = typer.Option(
        2, "--replicas", min=1, max=2, help="Assignment processes (PostgreSQL only; SQLite: 1)."
    ),
    victims: str = typer.Option(
        ",".join(DEFAULT_VICTIMS), "--victims", help="Services a kill may hit, comma separated."
    ),
    kill_every: float = typer.Option(20.0, "--kill-every", help="Seconds between two kills."),
    max_kills: int | None = typer.Option(None, "--max-kills", help="Kills at most."),
    down_seconds: float = typer.Option(
        2.0, "--down-seconds", help="Seconds a killed service (or the broker) stays down."
    ),
    outage_every: float = typer.Option(
        120.0, "--outage-every", help="Seconds between two agency outages (at most)."
    ),
    outage_seconds: float = typer.Option(
        20.0, "--outage-seconds", help="How long an agency's system stays down."
    ),
    broker_restarts: int = typer.Option(1, "--broker-restarts", min=0),
    seed: int = typer.Option(2026, "--seed", help="Seed of the victims' draw."),
    settle: float = typer.Option(
        240.0, "--settle", help="Quiescence: give up after this long without progress."
    ),
    reconcile_after: float = typer.Option(
        60.0,
        "--reconcile-after",
        help="RECONCILE_FIRST_SECONDS of the adapters (first status poll of a silent request).",
    ),
    keycloak: bool = typer.Option(
        False,
        "--keycloak",
        help="Run Keycloak: the services trust its realms and the files are submitted as a "
        f"citizen ({CITIZEN}) with a token, refreshed before it expires.",
    ),
    fault: list[str] = typer.Option(
        [],
        "--fault",
        help="AGENCY=MODE: a simulator fault mode held for the whole run (e.g. "
        "france_travail=silent), to check that the run reports what it should.",
    ),
    output: Path | None = typer.Option(
        None, "--output", help="JSON report (default: <repo>/var/chaos/last.json)."
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the workdir even when the run passed."),
) -> None:
    """Soak and chaos: N files through the whole stack while services are SIGKILLed and
    restarted, each agency's system goes down for a while and the broker is restarted; then
    wait for quiescence and report files answered, lost, stuck (and why), duplicate référents,
    duplicate messages per channel, agency requests sent twice and dead letters.

    Exit code 1 on any loss, stuck file, duplicate, dead letter or process that died on
    its own; 2 when the run could not be made."""
    if backend not in ("sqlite", "postgresql"):
        raise typer.BadParameter("sqlite or postgresql", param_hint="--backend")
    postgres = backend == "postgresql"
    replicas = replicas if postgres else 1
    chosen = [v.strip() for v in victims.split(",") if v.strip()]
    if replicas == 2 and "assignment" in chosen:
        chosen.append("assignment-2")
    faults = dict(f.split("=", 1) for f in fault if "=" in f)
    if len(faults) != len(fault):
        raise typer.BadParameter("AGENCY=MODE", param_hint="--fault")
    cfg = chaos.ChaosConfig(
        faults=faults,
        files=files,
        rate=rate,
        victims=chosen,
        kill_every=kill_every,
        max_kills=max_kills,
        down_seconds=down_seconds,
        outage_every=outage_every,
        outage_seconds=outage_seconds,
        broker_restarts=broker_restarts,
        seed=seed,
        settle=settle,
    )
    root = find_root()
    output = (output or root / "var" / "chaos" / "last.json").resolve()
    workdir = Path(tempfile.mkdtemp(prefix="guichet-chaos-"))
    pg_workdir: Path | None = None
    kafka: LocalKafka | None = None
    pg: LocalPostgres | None = None
    kc: LocalKeycloak | None = None
    stack: Stack | None = None
    report: dict[str, Any] | None = None
    code = 2
    with Signals() as signals:
        try:
            t0 = time.monotonic()
            ensure_jars(root)
            if keycloak:
                kc = LocalKeycloak(root, workdir / "keycloak")
                say("starting Keycloak...")
                kc.launch()
            kafka = LocalKafka(root, workdir / "kafka", sasl=True, tls=True)
            say("starting Kafka...")
            bootstrap = kafka.start()
            database = None
            if postgres:
                pg_workdir = Path(tempfile.mkdtemp(prefix="guichet-chaos-pg-"))
                pg = LocalPostgres(root, pg_workdir)
                say("starting PostgreSQL...")
                pg.start()
                database = pg.create_service_database
            if kc is not None:
                kc.wait_ready()
            stack = Stack(
                workdir / "stack",
                bootstrap,
                namespace=f"chaos-{uuid.uuid4().hex[:6]}.",
                postgres=database,
                oidc_issuers=kc.issuers if kc is not None else None,
                extra_env={"RECONCILE_FIRST_SECONDS": str(reconcile_after)},
            )
            say("starting services...")
            stack.start(timeout=180)
            if replicas == 2:
                add_replica(stack)
            say(f"stack up in {time.monotonic() - t0:.0f} s (workdir {workdir})")
            signals.phase = "running"
            context = {
                "backend": backend,
                "assignment_replicas": replicas,
                "keycloak": keycloak,
                "reconcile_after_s": reconcile_after,
                "python": sys.version.split()[0],
            }
            headers = CitizenToken(kc) if kc is not None else dict
            report = asyncio.run(
                _interruptible(
                    chaos.run(stack, kafka, cfg, context=context, log=say, headers=headers),
                    signals,
                )
            )
            code = 1 if report["failures"] else 0
        except KeyboardInterrupt:
            say("\ninterrupted, stopping...", err=True)
        except (RuntimeError, TimeoutError) as e:
            say(f"\nerror: {e}", err=True)
        finally:
            signals.phase = "stopping"
            stop_all(stack, pg, kafka, kc)
            if code == 0 and not keep:
                shutil.rmtree(workdir, ignore_errors=True)
                if pg_workdir is not None:
                    shutil.rmtree(pg_workdir, ignore_errors=True)
            else:
                kept = f"{workdir}" + (f" and {pg_workdir}" if pg_workdir else "")
                say(f"logs, mail and data kept in {kept}")
    if report is not None:
        write_report(report, output)
        say("\n" + format_report(report))
        say(f"\nreport written to {output}")
    raise typer.Exit(code)


async def _interruptible(coro: Any, signals: Signals) -> Any:
    """Run `coro`, cancelled when a SIGINT/SIGTERM sets the flag (then KeyboardInterrupt)."""
    task = asyncio.ensure_future(coro)
    while not task.done():
        await asyncio.wait({task}, timeout=0.5)
        if signals.received and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise KeyboardInterrupt
    return task.result()
