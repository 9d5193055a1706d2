"""The benchmark commands of `guichet-dev` (registered on its Typer app in devstack.cli):
`bench-decision` (one référent decision), `bench-channels` (notifications per channel) and
`bench-adapter` (one adapter against its simulated agency). `bench`, the whole system, is in
devstack.cli_bench_system."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import typer

from devstack import adapter_bench, channel_bench, kafka_sasl
from devstack import bench_decision as bd
from devstack.kafka import LocalKafka, find_root
from devstack.lifecycle import ensure_jars, say
from devstack.ports import free_ports
from devstack.postgres import LocalPostgres
from devstack.procs import ServiceProcess, Supervisor


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
