"""The benchmark commands of `guichet-dev` (registered on its Typer app in devstack.cli):
`bench` (the whole system), `bench-decision` (one référent decision), `bench-channels`
(notifications per channel) and `bench-adapter` (one adapter against its simulated agency)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import typer

from devstack import adapter_bench, channel_bench, kafka_sasl, procstats
from devstack import bench as benchmod
from devstack import bench_decision as bd
from devstack.kafka import LocalKafka, find_root
from devstack.keycloak import LocalKeycloak, template_ready
from devstack.lifecycle import Signals, dead_process, ensure_jars, say, stop_all
from devstack.ports import free_ports
from devstack.postgres import LocalPostgres
from devstack.procs import ServiceProcess, Supervisor
from devstack.stack import Stack
from devstack.tokens import FreshBearer

#: The citizen who submits the benchmark's files, logged in (realm citoyens; created on start).
BENCH_CITIZEN = "citoyen.banc"


def bench(
    files: int = typer.Option(300, "--files", min=1, help="Files measured (after the warm-up)."),
    concurrency: int = typer.Option(16, "--concurrency", min=1, help="POSTs in flight at most."),
    postgres: bool = typer.Option(False, "--postgres", help="PostgreSQL instead of SQLite files."),
    agencies_per_file: int = typer.Option(
        3,
        "--agencies-per-file",
        help="3: perte_emploi (France Travail, CAF, DGFiP); 2: naissance (CAF, CPAM).",
    ),
    warmup: int = typer.Option(
        5, "--warmup", min=0, help="Files sent and answered before measuring."
    ),
    timeout: float = typer.Option(
        300, "--timeout", help="Seconds to wait for the answers after the last POST."
    ),
    output: Path | None = typer.Option(
        None, "--output", help="JSON figures (default: <repo>/var/bench/last.json)."
    ),
    kafka_bootstrap: str | None = typer.Option(
        None,
        "--kafka-bootstrap",
        help="Use this broker instead of starting one (topics get a unique prefix).",
    ),
    keep: bool = typer.Option(
        False,
        "--keep",
        help=(
            "Keep the temporary workdir (logs, mail, data); by default only a failed run keeps it."
        ),
    ),
    channel_messages: int = typer.Option(
        200,
        "--channel-messages",
        min=0,
        help=(
            "Notifications sent per channel (email, SMS, letter) for the per-channel figures;"
            " 0: skip."
        ),
    ),
) -> None:
    """Benchmark the whole system on a fresh broker and stack in a temporary directory.

    Measures throughput, latencies (submit -> référent named, submit -> answer sent, POST)
    and the memory of every process; prints a table and writes the figures as JSON. As in
    production, the services verify tokens: a Keycloak runs beside them and the files are
    submitted by a logged-in citizen (BENCH_CITIZEN).
    """
    try:
        life_event = benchmod.life_event_for(agencies_per_file)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--agencies-per-file") from None
    root = find_root()
    output = (output or root / "var" / "bench" / "last.json").resolve()
    workdir = Path(tempfile.mkdtemp(prefix="guichet-bench-"))
    pg_workdir: Path | None = None
    kafka: LocalKafka | None = None
    keycloak: LocalKeycloak | None = None
    pg: LocalPostgres | None = None
    stack: Stack | None = None
    ok = False
    report: dict[str, Any] | None = None
    with Signals() as signals:  # Ctrl-C / SIGTERM: KeyboardInterrupt, then a shielded cleanup
        try:
            t0 = time.monotonic()
            if not template_ready(root):
                say("preparing Keycloak (first run only: download, build, realm import)...")
            keycloak = LocalKeycloak(root, workdir / "keycloak")
            say("starting Keycloak...")
            keycloak.launch()  # boots while Kafka (and PostgreSQL) start
            if kafka_bootstrap is None:
                ensure_jars(root)
                kafka = LocalKafka(root, workdir / "kafka", sasl=True, tls=True)
                say("starting Kafka...")
                kafka_bootstrap = kafka.start()
            database = None
            if postgres:
                # Its own temp dir: the postgres OS user must enter it (the workdir is private).
                pg_workdir = Path(tempfile.mkdtemp(prefix="guichet-bench-pg-"))
                pg = LocalPostgres(root, pg_workdir)
                say("starting PostgreSQL...")
                pg.start()
                database = pg.create_service_database
            namespace = f"bench-{uuid.uuid4().hex[:8]}."
            keycloak.wait_ready()
            keycloak.ensure_user(BENCH_CITIZEN, "citoyens")
            citizen = FreshBearer(partial(keycloak.password_token, BENCH_CITIZEN, "citoyens"))
            stack = Stack(
                workdir / "stack",
                kafka_bootstrap,
                namespace=namespace,
                postgres=database,
                oidc_issuers=keycloak.issuers,
            )
            say("starting services...")
            stack.start()
            say(f"stack up in {time.monotonic() - t0:.1f} s (workdir {workdir})")

            def check() -> str | None:
                if signals.received:
                    return f"interrupted by {signals.received[0]}"
                dead = dead_process(stack, kafka, pg, keycloak)
                if dead:
                    say(f"error: {dead[0]} died. Last lines of its log:\n{dead[1]}", err=True)
                    return f"{dead[0]} died"
                return None

            pids = {
                name: proc.proc.pid
                for name, proc in stack.processes.items()
                if proc.proc is not None
            }
            if kafka is not None and kafka.proc is not None:
                pids[benchmod.KAFKA] = kafka.proc.pid
            pids[benchmod.CLIENT] = os.getpid()
            cpu_before = {name: procstats.process_cpu_seconds(pid) for name, pid in pids.items()}
            # While measuring, a signal only sets a flag that `check` reports: the measure then
            # stops at its next poll and everything unwinds normally (see bench.measure).
            signals.phase = "running"
            m = asyncio.run(
                benchmod.measure(
                    stack.intake_url,
                    kafka_bootstrap,
                    namespace,
                    files=files,
                    concurrency=concurrency,
                    life_event=life_event,
                    warmup=warmup,
                    timeout=timeout,
                    check=check,
                    log=say,
                    auth=citizen,
                )
            )
            signals.phase = "starting"
            if signals.received:
                raise KeyboardInterrupt
            per_channel = None
            if channel_messages:
                say("measuring notifications per channel...")
                per_channel = asyncio.run(
                    channel_bench.measure_channels(
                        workdir / "channels",
                        stack.ports.smtp,
                        stack.providers_url,
                        messages=channel_messages,
                        log=say,
                    )
                )
            cpu = procstats.cpu_deltas(
                cpu_before, {n: procstats.process_cpu_seconds(p) for n, p in pids.items()}
            )
            memory = {name: procstats.process_memory_mb(pid) for name, pid in pids.items()}
            report = benchmod.build_report(
                m,
                rss_mb=memory,
                cpu_s=cpu,
                context={
                    "backend": "postgresql" if postgres else "sqlite",
                    "agencies_per_file": agencies_per_file,
                    "warmup": warmup,
                    "cpus": os.cpu_count(),
                    "python": sys.version.split()[0],
                },
            )
            if per_channel is not None:
                report["channels"] = per_channel
            ok = report["completed"] == files and not m.aborted
        except KeyboardInterrupt:
            say("\ninterrupted, stopping...", err=True)
        except (RuntimeError, TimeoutError) as e:
            say(f"\nerror: {e}", err=True)
        finally:
            signals.phase = "stopping"
            stop_all(stack, pg, kafka, keycloak)
            # Kept for a post-mortem when the run failed, not when the user stopped it.
            if not keep and (ok or signals.received):
                shutil.rmtree(workdir, ignore_errors=True)
                if pg_workdir is not None:
                    shutil.rmtree(pg_workdir, ignore_errors=True)
            else:
                say(
                    f"logs, mail and data kept in {workdir}"
                    + (f" and {pg_workdir}" if pg_workdir else "")
                )
    if report is not None:
        benchmod.write_report(report, output)
        say("")
        say(benchmod.format_report(report))
        if "channels" in report:
            say("")
            say(channel_bench.format_channels(report["channels"]))
        say(f"\nfigures written to {output}")
    raise typer.Exit(0 if ok else 1)


def bench_decision(
    past_files: int = typer.Option(
        1_000_000, "--past-files", min=0, help="Answered files already in the database."
    ),
    decisions: int = typer.Option(
        2000, "--decisions", min=10, help="Decisions timed per directory size."
    ),
    sizes: str = typer.Option(
        "50:500,150:1500,500:5000", "--sizes", help="offices:agents,... directory sizes."
    ),
    output: Path | None = typer.Option(
        None, "--output", help="JSON figures (default: <repo>/var/bench/decision.json)."
    ),
    postgres: bool = typer.Option(
        False, "--postgres", help="Also on PostgreSQL (a private server from Debian's packages)."
    ),
) -> None:
    """Time one référent decision (continuity, proximity, skills, load, capacity taken)
    on the assignment service's database, for growing directories."""
    try:
        parsed = [(int(o), int(a)) for o, a in (s.split(":") for s in sizes.split(","))]
    except ValueError:
        raise typer.BadParameter(
            "format attendu : bureaux:agents,… (par exemple 500:5000)", param_hint="--sizes"
        ) from None
    rows = asyncio.run(bd.run(parsed, past_files, decisions))
    if postgres:
        with tempfile.TemporaryDirectory(prefix="guichet-decision-pg-") as pgdir:
            os.chmod(pgdir, 0o755)
            with LocalPostgres(find_root(), Path(pgdir)) as pg:
                rows += asyncio.run(
                    bd.run(parsed, past_files, decisions, postgres=pg.create_database)
                )
    say(f"Référent decision, {past_files:,} past files, {decisions} decisions per size")
    say(
        f"{'database':>10} {'offices':>8} {'agents':>7} {'p50 ms':>8} {'p95 ms':>8}"
        f" {'p99 ms':>8} {'max ms':>8}"
    )
    for r in rows:
        say(
            f"{r['database']:>10} {r['offices']:>8} {r['agents']:>7} {r['p50_ms']:>8}"
            f" {r['p95_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}"
        )
    output = (output or find_root() / "var" / "bench" / "decision.json").resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    say(f"figures written to {output}")


def bench_channels(
    messages: int = typer.Option(200, "--messages", min=1, help="Notifications sent per channel."),
) -> None:
    """Notifications/s per channel only: the SMTP sink and the SMS / postal simulator as
    real processes, no broker (the same figures `bench` reports after the whole system)."""
    workdir = Path(tempfile.mkdtemp(prefix="guichet-bench-channels-"))
    smtp, smtp_http, providers = free_ports(3)
    try:
        with Supervisor() as sup:
            sup.add(
                ServiceProcess(
                    "smtp-sink",
                    [
                        sys.executable,
                        "-m",
                        "devstack.smtp_sink",
                        "--port",
                        str(smtp),
                        "--http-port",
                        str(smtp_http),
                        "--maildir",
                        str(workdir / "mail"),
                        "--log-level",
                        "WARNING",
                    ],
                    {},
                    workdir / "smtp-sink.log",
                    health_url=f"http://127.0.0.1:{smtp_http}/health",
                )
            )
            sup.add(
                ServiceProcess(
                    "channel-providers",
                    [
                        sys.executable,
                        "-m",
                        "devstack.providers",
                        "--port",
                        str(providers),
                        "--data-dir",
                        str(workdir / "providers"),
                        "--log-level",
                        "WARNING",
                    ],
                    {},
                    workdir / "providers.log",
                    health_url=f"http://127.0.0.1:{providers}/health",
                )
            )
            results = asyncio.run(
                channel_bench.measure_channels(
                    workdir / "db",
                    smtp,
                    f"http://127.0.0.1:{providers}",
                    messages=messages,
                    log=say,
                )
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    say(channel_bench.format_channels(results))


def bench_adapter(
    requests: int = typer.Option(
        2000, "--requests", min=1, help="Requests measured (after the warm-up)."
    ),
    agency: str = typer.Option(
        "caf", "--agency", help="Whose adapter: caf, dgfip, cpam (synchronous agencies)."
    ),
    warmup: int = typer.Option(
        50, "--warmup", min=1, help="Requests sent and answered before measuring."
    ),
    timeout: float = typer.Option(300, "--timeout", help="Seconds to wait for the answers."),
    output: Path | None = typer.Option(
        None, "--output", help="JSON figures (default: <repo>/var/bench/adapter.json)."
    ),
    kafka_bootstrap: str | None = typer.Option(
        None,
        "--kafka-bootstrap",
        help="Use this broker instead of starting one (topics get a unique prefix).",
    ),
) -> None:
    """One adapter process against its instant simulated agency on a fresh broker: requests
    per second it sustains, and its runtime overhead per request (agency latency excluded)."""
    if agency not in ("caf", "dgfip", "cpam"):
        raise typer.BadParameter("choose caf, dgfip or cpam", param_hint="--agency")
    root = find_root()
    output = (output or root / "var" / "bench" / "adapter.json").resolve()
    workdir = Path(tempfile.mkdtemp(prefix="guichet-bench-adapter-"))
    kafka: LocalKafka | None = None
    procs: list[ServiceProcess] = []
    report = None
    try:
        bootstrap = kafka_bootstrap
        if bootstrap is None:
            ensure_jars(root)
            kafka = LocalKafka(root, workdir / "kafka", sasl=True, tls=True)
            say("starting Kafka...")
            bootstrap = kafka.start()
        namespace = f"bench-{uuid.uuid4().hex[:8]}."
        sim_port, adapter_port = free_ports(2)
        name = f"adapter-{agency.replace('_', '-')}"
        broker = kafka_sasl.access(bootstrap)
        if broker.sasl:  # topics and ACLs as a Stack makes them; the adapter is its principal
            broker.prepare_blocking(namespace, [agency])
        bin_dir = Path(sys.executable).parent
        procs.append(
            ServiceProcess(
                "simulator",
                [
                    str(bin_dir / "agency-simulator"),
                    "--agency",
                    agency,
                    "--port",
                    str(sim_port),
                    "--log-level",
                    "warning",
                ],
                {},
                workdir / "logs" / "simulator.log",
                health_url=f"http://127.0.0.1:{sim_port}/health",
            )
        )
        procs.append(
            ServiceProcess(
                name,
                [str(bin_dir / name)],
                {
                    **broker.env(name),
                    "TOPIC_NAMESPACE": namespace,
                    "HTTP_PORT": str(adapter_port),
                    "DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/adapter.db",
                    "LOG_LEVEL": "WARNING",
                    "AGENCY_BASE_URL": f"http://127.0.0.1:{sim_port}",
                },
                workdir / "logs" / f"{name}.log",
                health_url=f"http://127.0.0.1:{adapter_port}/health",
                cwd=workdir,
            )
        )
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_healthy(60)
        report = asyncio.run(
            adapter_bench.measure_adapter(
                bootstrap,
                namespace,
                agency,
                f"http://127.0.0.1:{adapter_port}",
                requests=requests,
                warmup=warmup,
                timeout=timeout,
                log=say,
            )
        )
        report.update(
            {"backend": "sqlite", "cpus": os.cpu_count(), "python": sys.version.split()[0]}
        )
    finally:
        for proc in reversed(procs):
            proc.terminate()
        if kafka is not None:
            kafka.stop()
        if report is not None and report["answered"] == requests:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"logs kept in {workdir}")
    if report is None:
        raise typer.Exit(1)
    adapter_bench.write(report, output)
    say(adapter_bench.format_adapter_report(report))
    say(f"figures written to {output}")
    raise typer.Exit(0 if report["answered"] == requests else 1)
