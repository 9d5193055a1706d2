"""`guichet-dev bench`: the whole system on real processes, and its ceiling on the same broker.

One run tells: the product's files/s in a burst; latencies (POST, submit -> référent named,
submit -> answer sent) in that burst and in an open loop at a given arrival rate; the bare
chain's files/s (devstack.bare_chain: the product's topology with no work) and the product's
fraction of it; CPU ms per file and peak RSS of every process, each service, adapter and test
double, the bench client, Kafka and Keycloak listed apart. With `--compare-kafka-security`
the same bench runs twice back to back, on an open broker then on the production-like one
(SASL/SCRAM-SHA-512 over TLS with ACLs), and the difference is reported.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import typer
from aiokafka.errors import KafkaError

from devstack import bare_chain, channel_bench, kafka_sasl, procstats
from devstack import bench as benchmod
from devstack import bench_report as reports
from devstack.kafka import LocalKafka, find_root
from devstack.keycloak import LocalKeycloak, running_keycloak, template_ready
from devstack.lifecycle import Signals, dead_process, ensure_jars, say, stop_all
from devstack.postgres import LocalPostgres
from devstack.stack import Stack
from devstack.tokens import FreshBearer

#: The citizen who submits the benchmark's files, logged in (realm citoyens; created on start).
BENCH_CITIZEN = "citoyen.banc"
#: The two brokers `--compare-kafka-security` runs on, in this order.
PLAINTEXT, SECURE = "plaintext", "sasl_scram_tls"


@dataclass(frozen=True)
class Options:
    files: int
    concurrency: int
    life_event: str
    warmup: int
    timeout: float
    rate: float | str | None
    rate_files: int | None
    chain_files: int
    channel_messages: int
    postgres: bool
    agencies_per_file: int
    sealing: bool = True
    trace_ratio: float = 0.1


def parse_rate(value: str | None) -> float | str | None:
    """--rate: None (no open loop), "auto" (half the burst's throughput) or files/s > 0."""
    if value is None or value.strip().lower() in ("", "0", "none"):
        return None
    if value.strip().lower() == "auto":
        return "auto"
    try:
        rate = float(value)
    except ValueError:
        raise typer.BadParameter("a number of files per second, or auto") from None
    if rate <= 0:
        raise typer.BadParameter("the rate must be positive")
    return rate


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
    rate: str | None = typer.Option(
        None,
        "--rate",
        help=(
            "After the burst, an open loop: files arriving at this rate (files/s, or 'auto':"
            " half the burst's throughput) on a schedule, latencies from each scheduled time."
        ),
    ),
    rate_files: int | None = typer.Option(
        None, "--rate-files", min=1, help="Files of the open loop (default: --files)."
    ),
    chain_files: int = typer.Option(
        2000,
        "--chain-files",
        min=0,
        help="Files through the bare chain (the topology with no work); 0: skip it.",
    ),
    compare_kafka_security: bool = typer.Option(
        False,
        "--compare-kafka-security",
        help=(
            "Run the bench twice back to back: on an open broker (PLAINTEXT, no ACLs), then on"
            " the production-like one (SASL/SCRAM-SHA-512 over TLS, ACLs); report both."
        ),
    ),
    sealing: bool = typer.Option(
        True,
        "--sealing/--no-sealing",
        help=(
            "Crypto-shredding as in production: personal fields sealed on every topic with the"
            " citizen's data key (--no-sealing: in clear, to measure what sealing costs)."
        ),
    ),
    trace_ratio: float = typer.Option(
        0.1,
        "--trace-ratio",
        min=0.0,
        max=1.0,
        help=(
            "Share of files traced (parent-based ratio sampler, as production's overlay sets"
            " it); 1: every file traced, as the tests do."
        ),
    ),
    output: Path | None = typer.Option(
        None, "--output", help="JSON figures (default: <repo>/var/bench/last.json)."
    ),
    kafka_bootstrap: str | None = typer.Option(
        None,
        "--kafka-bootstrap",
        help="Use this broker instead of starting one (topics get a unique prefix).",
    ),
    keycloak_url: str | None = typer.Option(
        None,
        "--keycloak-url",
        help=(
            "Use this Keycloak (http://127.0.0.1:<port>, with devstack's realms) instead of"
            " starting one; its CPU is then not measured."
        ),
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

    Measures throughput, latencies (submit -> référent named, submit -> answer sent, POST),
    CPU per file and memory of every process, and the bare chain on the same broker; prints
    a table and writes the figures as JSON. As in production, the services verify tokens: a
    Keycloak runs beside them and the files are submitted by a logged-in citizen
    (BENCH_CITIZEN).
    """
    try:
        life_event = benchmod.life_event_for(agencies_per_file)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--agencies-per-file") from None
    if compare_kafka_security and kafka_bootstrap:
        raise typer.BadParameter(
            "the comparison starts its two brokers itself", param_hint="--kafka-bootstrap"
        )
    opts = Options(
        files=files,
        concurrency=concurrency,
        life_event=life_event,
        warmup=warmup,
        timeout=timeout,
        rate=parse_rate(rate),
        rate_files=rate_files,
        chain_files=chain_files,
        channel_messages=channel_messages,
        postgres=postgres,
        agencies_per_file=agencies_per_file,
        sealing=sealing,
        trace_ratio=trace_ratio,
    )
    root = find_root()
    output = (output or root / "var" / "bench" / "last.json").resolve()
    workdir = Path(tempfile.mkdtemp(prefix="guichet-bench-"))
    pg_workdir: Path | None = None
    keycloak: LocalKeycloak | None = None
    pg: LocalPostgres | None = None
    ok = False
    runs: dict[str, dict[str, Any]] = {}
    modes = [PLAINTEXT, SECURE] if compare_kafka_security else [SECURE]
    with Signals() as signals:  # Ctrl-C / SIGTERM: KeyboardInterrupt, then a shielded cleanup
        try:
            if keycloak_url:
                keycloak = running_keycloak(root, workdir / "keycloak", keycloak_url)
            else:
                if not template_ready(root):
                    say("preparing Keycloak (first run only: download, build, realm import)...")
                keycloak = LocalKeycloak(root, workdir / "keycloak")
                say("starting Keycloak...")
                keycloak.launch()  # boots while Kafka (and PostgreSQL) start
            if kafka_bootstrap is None:
                ensure_jars(root)
            if postgres:
                # Its own temp dir: the postgres OS user must enter it (the workdir is private).
                pg_workdir = Path(tempfile.mkdtemp(prefix="guichet-bench-pg-"))
                pg = LocalPostgres(root, pg_workdir)
                say("starting PostgreSQL...")
                pg.start()
            if keycloak.proc is not None:
                keycloak.wait_ready()
            keycloak.ensure_user(BENCH_CITIZEN, "citoyens")
            citizen = FreshBearer(partial(keycloak.password_token, BENCH_CITIZEN, "citoyens"))
            for mode in modes:
                if compare_kafka_security:
                    say(f"\n== Kafka {mode} ==")
                run = _Run(root, workdir / mode, opts, keycloak, citizen, pg, signals)
                runs[mode] = run.execute(mode == SECURE, kafka_bootstrap, last=mode == modes[-1])
                if not run.ok:
                    break
            ok = len(runs) == len(modes) and all(r["_ok"] for r in runs.values())
        except KeyboardInterrupt:
            say("\ninterrupted, stopping...", err=True)
        except (RuntimeError, TimeoutError) as e:
            say(f"\nerror: {e}", err=True)
        finally:
            signals.phase = "stopping"
            stop_all(None, pg, None, keycloak)
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
    if runs:
        _publish(runs, output)
    raise typer.Exit(0 if ok else 1)


def _publish(runs: dict[str, dict[str, Any]], output: Path) -> None:
    """Write and print the figures: the last run's at the top level; with two runs, the other
    under `plaintext_run` and the comparison under `kafka_security`."""
    for r in runs.values():
        r.pop("_ok", None)
    report = runs.get(SECURE) or next(iter(runs.values()))
    if PLAINTEXT in runs and SECURE in runs:
        report["plaintext_run"] = runs[PLAINTEXT]
        report["kafka_security"] = reports.compare_security(runs[PLAINTEXT], runs[SECURE])
    reports.write_report(report, output)
    for r in runs.values():
        say("")
        say(reports.format_report(r))
    if "channels" in report:
        say("")
        say(channel_bench.format_channels(report["channels"]))
    if "kafka_security" in report:
        say("")
        say(reports.format_comparison(report["kafka_security"]))
    say(f"\nfigures written to {output}")


class _Run:
    """One bench on one broker: start it (unless given) and the stack, measure the burst, the
    open loop and the bare chain, stop them."""

    def __init__(
        self,
        root: Path,
        workdir: Path,
        opts: Options,
        keycloak: LocalKeycloak,
        citizen: FreshBearer,
        pg: LocalPostgres | None,
        signals: Signals,
    ) -> None:
        self.root, self.workdir, self.opts = root, workdir, opts
        self.keycloak, self.citizen, self.pg, self.signals = keycloak, citizen, pg, signals
        self.ok = False

    def execute(self, secure: bool, bootstrap: str | None, *, last: bool) -> dict[str, Any]:
        kafka: LocalKafka | None = None
        stack: Stack | None = None
        try:
            t0 = time.monotonic()
            if bootstrap is None:
                kafka = LocalKafka(self.root, self.workdir / "kafka", sasl=secure, tls=secure)
                say("starting Kafka" + (" (SASL/SCRAM over TLS, ACLs)..." if secure else "..."))
                bootstrap = kafka.start()
            namespace = f"bench-{uuid.uuid4().hex[:8]}."
            stack = Stack(
                self.workdir / "stack",
                bootstrap,
                namespace=namespace,
                postgres=self.pg.create_service_database if self.pg else None,
                oidc_issuers=self.keycloak.issuers,
                personal_data_sealing=self.opts.sealing,
                trace_ratio=self.opts.trace_ratio,
                # As deployed: the migration Job first, the services without Alembic.
                migrate_first=True,
            )
            say(
                "starting services" + (" (personal data sealed)..." if self.opts.sealing else "...")
            )
            stack.start()
            say(f"stack up in {time.monotonic() - t0:.1f} s (workdir {self.workdir})")
            report = self._measure(stack, kafka, bootstrap, namespace, last=last)
            report["personal_data_sealed"] = self.opts.sealing
            report["trace_ratio"] = self.opts.trace_ratio
        finally:
            self.signals.phase = "stopping"
            stop_all(stack, None, kafka, None)
            self.signals.phase = "starting"
        return report

    def _pids(self, stack: Stack, kafka: LocalKafka | None) -> dict[str, tuple[int, bool]]:
        """name -> (pid, whether its children count: launchers and servers that fork)."""
        pids = {n: (p.proc.pid, False) for n, p in stack.processes.items() if p.proc is not None}
        if kafka is not None and kafka.proc is not None:
            pids[reports.KAFKA] = (kafka.proc.pid, False)
        if self.keycloak.proc is not None:
            pids[reports.KEYCLOAK] = (self.keycloak.proc.pid, True)
        if self.pg is not None and (pid := _postmaster(self.pg)) is not None:
            pids[reports.POSTGRES] = (pid, True)
        pids[reports.CLIENT] = (os.getpid(), False)
        return pids

    def _measure(
        self,
        stack: Stack,
        kafka: LocalKafka | None,
        bootstrap: str,
        namespace: str,
        *,
        last: bool,
    ) -> dict[str, Any]:
        opts, signals = self.opts, self.signals
        pids = self._pids(stack, kafka)

        def check() -> str | None:
            if signals.received:
                return f"interrupted by {signals.received[0]}"
            # A Keycloak given by --keycloak-url is another process's to watch.
            own_keycloak = self.keycloak if self.keycloak.proc is not None else None
            dead = dead_process(stack, kafka, self.pg, own_keycloak)
            if dead:
                say(f"error: {dead[0]} died. Last lines of its log:\n{dead[1]}", err=True)
                return f"{dead[0]} died"
            return None

        probe = partial(_cpu, pids)
        # While measuring, a signal only sets a flag that `check` reports: the measure then
        # stops at its next poll and everything unwinds normally (see bench.measure).
        signals.phase = "running"
        phases = asyncio.run(
            benchmod.measure(
                stack.intake_url,
                bootstrap,
                namespace,
                files=opts.files,
                concurrency=opts.concurrency,
                life_event=opts.life_event,
                warmup=opts.warmup,
                timeout=opts.timeout,
                check=check,
                log=say,
                auth=self.citizen,
                rate=opts.rate,
                rate_files=opts.rate_files,
                probe=probe,
            )
        )
        signals.phase = "starting"
        if signals.received:
            raise KeyboardInterrupt
        memory = {name: procstats.process_memory_mb(pid) for name, (pid, _) in pids.items()}
        chain = None
        if opts.chain_files and not any(p.aborted or p.timed_out for p in phases):
            done = len(phases[0].answer.keys() & phases[0].submitted.keys())
            written = reports.messages_per_file(phases[0].messages, done)["per_topic"]
            try:
                chain = self._chain(bootstrap, namespace, probe, written)
            except (RuntimeError, TimeoutError, KafkaError) as e:  # the product's figures stay
                say(f"error: the bare chain failed: {e!r}", err=True)
                chain = {"error": repr(e), "files": opts.chain_files, "completed": 0}
        report = reports.run_report(
            phases,
            rss_mb=memory,
            chain=chain,
            context={
                "backend": "postgresql" if opts.postgres else "sqlite",
                "kafka": _security(bootstrap),
                "agencies_per_file": opts.agencies_per_file,
                "warmup": opts.warmup,
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
            },
        )
        if last and opts.channel_messages:
            say("measuring notifications per channel...")
            report["channels"] = asyncio.run(
                channel_bench.measure_channels(
                    self.workdir / "channels",
                    stack.ports.smtp,
                    stack.providers_url,
                    messages=opts.channel_messages,
                    log=say,
                )
            )
        complete = [p for p in phases if len(p.answer.keys() & p.submitted.keys()) == p.files]
        self.ok = (
            len(complete) == len(phases)
            and not any(p.aborted for p in phases)
            and (chain is None or chain["completed"] == chain["files"])
            and (opts.chain_files == 0 or chain is not None)
        )
        report["_ok"] = self.ok
        return report

    def _chain(
        self,
        bootstrap: str,
        namespace: str,
        probe: Callable[[], dict[str, float | None]],
        written: dict[str, float],
    ) -> dict[str, Any]:
        """The bare chain on the same broker, its own topics, writing per file what the
        product was measured writing (`written`); Kafka's CPU during its files."""
        snapshots: list[dict[str, float | None]] = []
        plan = bare_chain.plan(self.opts.life_event).with_measured(written)
        result = asyncio.run(
            bare_chain.run(
                bootstrap,
                namespace.rstrip(".") + "-",
                self.opts.life_event,
                files=self.opts.chain_files,
                log=say,
                probe=lambda: snapshots.append(probe()),
                plan_=plan,
            )
        )
        kafka_cpu: dict[str, float | None] = {}
        if len(snapshots) == 2:
            deltas = procstats.cpu_deltas(snapshots[0], snapshots[1])
            kafka_cpu = {n: v for n, v in deltas.items() if n == reports.KAFKA}
        return reports.chain_report(result, plan.describe(), kafka_cpu)


def _security(bootstrap: str) -> str:
    """How the broker's clients connect, in words."""
    access = kafka_sasl.access(bootstrap)
    if not access.sasl:
        return "PLAINTEXT, no ACLs"
    return f"{access.protocol} ({kafka_sasl.MECHANISM}), ACLs"


def _cpu(pids: dict[str, tuple[int, bool]]) -> dict[str, float | None]:
    return {
        name: procstats.process_tree_cpu_seconds(pid)
        if tree
        else procstats.process_cpu_seconds(pid)
        for name, (pid, tree) in pids.items()
    }


def _postmaster(pg: LocalPostgres) -> int | None:
    try:
        return int((pg.data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
