"""`guichet-dev`: run the whole system locally, benchmark it, or run a bare Kafka broker.

Everything runs as real processes (no Docker): a Kafka broker from Maven Central jars
(devstack.kafka), Keycloak from Maven Central (devstack.keycloak), optionally PostgreSQL from
the Debian packages (devstack.postgres), the agency simulator, the SMTP sink and every service
(devstack.stack). `guichet-dev token` prints a test user's access token (devstack.token_command).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer

from devstack import bench as benchmod
from devstack import channel_bench
from devstack import kafka_sasl
from devstack.kafka import LocalKafka, _tail, ensure_kafka_jars, find_root
from devstack.keycloak import DEV_PORT as KEYCLOAK_PORT
from devstack.keycloak import ADMIN_PASSWORD, ADMIN_USERNAME, LocalKeycloak, template_ready
from devstack.postgres import LocalPostgres
from devstack.stack import Ports, Stack
from devstack.kafka_env_command import kafka_env
from devstack.token_command import token

app = typer.Typer(
    name="guichet-dev",
    help="Developer tools of guichet unique: run the whole system locally, benchmark it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

KAFKA_PORT = 9092
POSTGRES_PORT = 5432

DEMO_FILE = {
    "life_event": "perte_emploi",
    "citizen": {
        "given_name": "Marie",
        "family_name": "Dupont",
        "email": "marie.dupont@example.fr",
        "phone": "0612345678",
        "postcode": "93200",
        "preferred_channel": "email",
    },
    "description": "J'ai perdu mon emploi le 15 novembre.",
    "urgent": True,
}


def shell_quote(text: str) -> str:
    """`text` as one single-quoted shell word (an apostrophe becomes '\\'')."""
    return "'" + text.replace("'", "'\\''") + "'"


def demo_curl(intake_url: str) -> str:
    body = json.dumps(DEMO_FILE, ensure_ascii=False, separators=(",", ":"))
    return (
        f"curl -s -X POST {intake_url}/api/files -H 'Content-Type: application/json' "
        f"-H 'Idempotency-Key: demo-1' -d {shell_quote(body)}"
    )


def say(message: str = "", *, err: bool = False) -> None:
    typer.echo(message, err=err)


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def port_is_free(port: int) -> bool:
    """True if we could listen on 127.0.0.1:`port` now (as uvicorn would, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def fixed_ports(ports: Ports) -> list[tuple[str, int]]:
    """(what, port) of every fixed port of the stack."""
    named = [
        ("intake", ports.intake),
        ("assignment", ports.assignment),
        ("notification", ports.notification),
        ("web", ports.web),
    ]
    named += [(f"adapter-{a.replace('_', '-')}", p) for a, p in ports.adapters.items()]
    named += [(f"simulator-{a.replace('_', '-')}", p) for a, p in ports.simulators.items()]
    named += [
        ("smtp-sink (SMTP)", ports.smtp),
        ("smtp-sink (HTTP)", ports.smtp_http),
        ("channel-providers (SMS, post)", ports.providers),
    ]
    return named


class Signals:
    """One handler for SIGINT and SIGTERM for the whole command, whose effect depends on the phase:

    * "starting": raise KeyboardInterrupt, so the startup code unwinds and stops what it started;
    * "running": set `event` (the main loop notices and shuts down);
    * "stopping": only say we are on it, a second Ctrl-C must not cut the shutdown short
      (that would leave processes behind).
    """

    def __init__(self) -> None:
        self.phase = "starting"
        self.received: list[str] = []
        self.event = threading.Event()
        self._old: dict[int, Any] = {}

    def __call__(self, signum: int, frame: Any) -> None:
        if self.phase == "stopping":
            # os.write: printing through sys.stderr here could hit a "reentrant call" error if
            # the signal interrupted a print to the same stream.
            os.write(2, b"still stopping, please wait...\n")
            return
        self.received.append(signal.Signals(signum).name)
        self.event.set()
        if self.phase == "starting":
            raise KeyboardInterrupt

    def __enter__(self) -> Signals:
        self._old = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _postgres_alive(pg: LocalPostgres) -> bool:
    try:
        pid = int((pg.data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, 0)
        return True
    except (OSError, ValueError, IndexError):
        return False


def _exit_status(code: int | None) -> str:
    if code is None:
        return "never started"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _dead_process(
    stack: Stack | None,
    kafka: LocalKafka | None,
    pg: LocalPostgres | None,
    keycloak: LocalKeycloak | None = None,
) -> tuple[str, str] | None:
    """(description, log tail) of the first process found dead, else None."""
    if kafka is not None and (kafka.proc is None or kafka.proc.poll() is not None):
        code = None if kafka.proc is None else kafka.proc.returncode
        return f"kafka ({_exit_status(code)})", _tail(kafka.log_path)
    if keycloak is not None and (keycloak.proc is None or keycloak.proc.poll() is not None):
        code = None if keycloak.proc is None else keycloak.proc.returncode
        return f"keycloak ({_exit_status(code)})", _tail(keycloak.log_path)
    if pg is not None and not _postgres_alive(pg):
        return "postgresql", _tail(pg.log_path)
    if stack is not None:
        for name, proc in stack.processes.items():
            if not proc.is_running:
                return f"{name} ({_exit_status(proc.returncode)})", proc.log_tail()
    return None


def _stop_all(
    stack: Stack | None,
    pg: LocalPostgres | None,
    kafka: LocalKafka | None,
    keycloak: LocalKeycloak | None = None,
) -> None:
    """Stack, then PostgreSQL, Kafka, Keycloak; each step runs even if an earlier one failed."""
    if stack is not None:
        say("stopping services...")
        stack.stop()
    if pg is not None:
        say("stopping PostgreSQL...")
        try:
            pg.stop()
        except Exception as e:  # noqa: BLE001
            say(f"warning: stopping PostgreSQL failed: {e}", err=True)
    if kafka is not None:
        say("stopping Kafka...")
        kafka.stop()
    if keycloak is not None:
        say("stopping Keycloak...")
        keycloak.stop()


@contextmanager
def _workdir_lock(workdir: Path) -> Iterator[None]:
    """One `guichet-dev run` per workdir: two brokers on the same Kafka data would corrupt it."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                fail(f"another `guichet-dev run` already uses {workdir}")
            raise
        yield


def _ensure_jars(root: Path) -> None:
    marker = root / ".cache" / "kafka" / "libs" / ".complete"
    if not marker.is_file():
        say("fetching the Kafka broker jars from Maven Central (first run only)...")
    ensure_kafka_jars(root)


def _banner(
    stack: Stack,
    kafka: LocalKafka,
    pg: LocalPostgres | None,
    workdir: Path,
    keycloak: LocalKeycloak | None = None,
) -> str:
    p = stack.ports
    url = lambda port: f"http://127.0.0.1:{port}"  # noqa: E731
    services = [
        ("intake", p.intake, "  API docs /docs, citizen API /api/files"),
        ("assignment", p.assignment, ""),
        ("notification", p.notification, ""),
    ]
    services += [(f"adapter-{a.replace('_', '-')}", port, "") for a, port in p.adapters.items()]
    lines = [
        "",
        "guichet unique is running.",
        "",
        f"Pages (citizens, counter, référents, supervisors): {url(p.web)}",
        "",
        "Services (health at /health, OpenAPI docs at /docs):",
    ]
    lines += [f"  {name:<24}{url(port)}{extra}" for name, port, extra in services]
    lines += [
        "",
        *(
            f"  {'simulator ' + a:<24}{url(port)}  (e.g. GET /agencies/{a}/received)"
            for a, port in p.simulators.items()
        ),
        f"  {'SMTP sink':<24}smtp://127.0.0.1:{p.smtp}  mail as JSON: {url(p.smtp_http)}/messages",
        f"  {'SMS gateway, post':<24}{url(p.providers)}/api/sms, {url(p.providers)}/api/letters (PDF)",
        f"  {'Kafka':<24}{kafka.bootstrap}  (topics without prefix"
        + ("; SASL: `guichet-dev kafka-env operator`)" if kafka.sasl else ")"),
    ]
    if keycloak is not None:
        lines += [
            f"  {'Keycloak (OIDC)':<24}{keycloak.url}/admin  ({ADMIN_USERNAME} / {ADMIN_PASSWORD}; "
            "realms citoyens, agents)",
            f"  {'':<24}a test user's token: guichet-dev token marie.dupont  (docs/security.md)",
        ]
    if pg is not None:
        lines.append(
            f"  {'PostgreSQL':<24}127.0.0.1:{pg.port}, user/password guichet/guichet, one database per service:"
        )
        lines.append(f"  {'':<24}psql postgresql://guichet:guichet@127.0.0.1:{pg.port}/intake")
    else:
        lines.append(f"  {'SQLite':<24}{stack.data_dir}/<service>.db")
    lines += [
        "",
        f"Logs   {workdir / 'logs'}/<service>.log  (kafka: {kafka.log_path})",
        f"Mail   {stack.maildir}  (Maildir)",
        f"Spans  {stack.spans_dir}/<service>.jsonl",
        "",
        f"State in {workdir} is kept between runs (--fresh starts over).",
        "",
        "Try it:",
        f"  {demo_curl(stack.intake_url)}",
        f"  curl -s {stack.intake_url}/api/files/<file_id>",
        "",
        "Press Ctrl-C to stop everything.",
    ]
    return "\n".join(lines)


RUN_HELP = (
    " ".join(
        """
Run the whole system locally on fixed ports (intake on http://127.0.0.1:8000), for `make run`.
""".split()
    )
    + "\n\n"
    + " ".join(
        """
Starts a Kafka broker (port 9092, or a free port if 9092 is taken; SASL SCRAM-SHA-512 and ACLs as
in production, each process its own principal, see docs/security.md), Keycloak (port 8180,
realms citoyens and agents; tokens with `guichet-dev token`), optionally PostgreSQL
(port 5432, or a free one), the agency simulator, the SMTP sink and every service, prints
their addresses, then waits until Ctrl-C / SIGTERM, or until a process dies (its log tail
is shown and the exit code is 1). Everything is stopped on exit: services, PostgreSQL, Kafka.
""".split()
    )
    + "\n\n"
    + " ".join(
        """
State persists in WORKDIR between runs, all of it together so that it stays consistent:
the Kafka data (WORKDIR/kafka: topics, consumer offsets, events not consumed yet), the
service databases (SQLite files in WORKDIR/data, or PostgreSQL in WORKDIR/pg), mail
(WORKDIR/mail), logs (WORKDIR/logs), spans (WORKDIR/spans) and Keycloak's database
(WORKDIR/keycloak, started over when deploy/keycloak/realms changes). Use --fresh to start from
scratch. Services log at INFO unless GUICHET_LOG_LEVEL says otherwise.
""".split()
    )
)


@app.command(help=RUN_HELP)
def run(
    postgres: bool = typer.Option(False, "--postgres", help="PostgreSQL instead of SQLite files."),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="State directory (default: <repo>/var/run)."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Delete WORKDIR first (all data, mail and logs)."
    ),
    clock_file: Path | None = typer.Option(
        None,
        "--clock-file",
        help="Rehearsal: every service takes today's date from this file (ISO date; empty: the real date).",
    ),
    kafka_sasl: bool = typer.Option(
        True,
        "--kafka-sasl/--no-kafka-sasl",
        help="Kafka authenticates every process (SCRAM-SHA-512 over TLS) and authorises it by "
        "ACLs, as in production; --no-kafka-sasl: an open broker.",
    ),
) -> None:
    root = find_root()
    workdir = (workdir or root / "var" / "run").resolve()
    ports = Ports()
    if busy := [f"{port} ({what})" for what, port in fixed_ports(ports) if not port_is_free(port)]:
        fail(
            f"port(s) already in use on 127.0.0.1: {', '.join(busy)}. "
            "Stop whatever listens there (another `guichet-dev run`?) and retry."
        )
    os.environ.setdefault("GUICHET_LOG_LEVEL", "INFO")

    kafka: LocalKafka | None = None
    keycloak: LocalKeycloak | None = None
    pg: LocalPostgres | None = None
    stack: Stack | None = None
    exit_code = 0
    with Signals() as signals, _workdir_lock(workdir):
        try:
            # Startup: a SIGINT/SIGTERM raises KeyboardInterrupt, handled below.
            if fresh:
                say(f"deleting everything in {workdir}")
                for child in workdir.iterdir():
                    if child.name == ".lock":  # held by us
                        continue
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            _ensure_jars(root)
            if not template_ready(root):
                say(
                    "preparing Keycloak (first run only: Maven Central download, Quarkus build, "
                    "realm import; a few minutes)..."
                )
            keycloak = LocalKeycloak(
                root, workdir / "keycloak", port=KEYCLOAK_PORT if port_is_free(KEYCLOAK_PORT) else 0
            )
            say("starting Keycloak...")
            keycloak.launch()  # boots while Kafka (and PostgreSQL) start
            kafka_port = KAFKA_PORT if port_is_free(KAFKA_PORT) else 0
            kafka = LocalKafka(
                root, workdir / "kafka", port=kafka_port, sasl=kafka_sasl, tls=kafka_sasl
            )
            say("starting Kafka...")
            bootstrap = kafka.start()
            if kafka_port == 0:
                say(f"note: port {KAFKA_PORT} is taken, Kafka listens on {bootstrap} instead")
            database = None
            if postgres:
                pg_port = POSTGRES_PORT if port_is_free(POSTGRES_PORT) else 0
                pg = LocalPostgres(root, workdir / "pg", port=pg_port)
                say("starting PostgreSQL...")
                pg.start()
                if pg_port == 0:
                    say(
                        f"note: port {POSTGRES_PORT} is taken, PostgreSQL listens on port {pg.port} instead"
                    )
                database = pg.create_database
            keycloak.wait_ready()
            if keycloak.port != KEYCLOAK_PORT:
                say(f"note: port {KEYCLOAK_PORT} is taken, Keycloak listens on {keycloak.url}")
            stack = Stack(
                workdir,
                bootstrap,
                ports=ports,
                postgres=database,
                clock_file=clock_file.resolve() if clock_file else None,
                oidc_issuers=keycloak.issuers,
            )
            say("starting services...")
            stack.start()
            say(_banner(stack, kafka, pg, workdir, keycloak))

            signals.phase = "running"
            while not signals.event.wait(0.5):
                if dead := _dead_process(stack, kafka, pg, keycloak):
                    name, tail = dead
                    say(f"\nerror: {name} died. Last lines of its log:\n{tail}\n", err=True)
                    exit_code = 1
                    break
            if signals.received:
                say(f"\n{signals.received[0]} received, stopping...")
        except KeyboardInterrupt:
            say("\ninterrupted during startup, stopping...")
            exit_code = 130
        except (RuntimeError, TimeoutError) as e:
            say(f"\nerror: startup failed: {e}", err=True)
            exit_code = 1
        finally:
            signals.phase = "stopping"
            _stop_all(stack, pg, kafka, keycloak)
            say("stopped.")
    raise typer.Exit(exit_code)


@app.command()
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
        help="Keep the temporary workdir (logs, mail, data); by default only a failed run keeps it.",
    ),
    channel_messages: int = typer.Option(
        200,
        "--channel-messages",
        min=0,
        help="Notifications sent per channel (email, SMS, letter) for the per-channel figures; 0: skip.",
    ),
) -> None:
    """Benchmark the whole system on a fresh broker and stack in a temporary directory.

    Measures throughput, latencies (submit -> référent named, submit -> answer sent, POST)
    and the memory of every process; prints a table and writes the figures as JSON.
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
    pg: LocalPostgres | None = None
    stack: Stack | None = None
    ok = False
    report: dict[str, Any] | None = None
    with Signals() as signals:  # Ctrl-C / SIGTERM: KeyboardInterrupt, then a shielded cleanup
        try:
            t0 = time.monotonic()
            if kafka_bootstrap is None:
                _ensure_jars(root)
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
                database = pg.create_database
            namespace = f"bench-{uuid.uuid4().hex[:8]}."
            stack = Stack(
                workdir / "stack", kafka_bootstrap, namespace=namespace, postgres=database
            )
            say("starting services...")
            stack.start()
            say(f"stack up in {time.monotonic() - t0:.1f} s (workdir {workdir})")

            def check() -> str | None:
                if signals.received:
                    return f"interrupted by {signals.received[0]}"
                dead = _dead_process(stack, kafka, pg)
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
            cpu_before = {name: benchmod.process_cpu_seconds(pid) for name, pid in pids.items()}
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
            cpu = benchmod.cpu_deltas(
                cpu_before, {n: benchmod.process_cpu_seconds(p) for n, p in pids.items()}
            )
            memory = {name: benchmod.process_memory_mb(pid) for name, pid in pids.items()}
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
            _stop_all(stack, pg, kafka)
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


@app.command("bench-decision")
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
    import json

    from devstack import bench_decision as bd

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
        f"{'database':>10} {'offices':>8} {'agents':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for r in rows:
        say(
            f"{r['database']:>10} {r['offices']:>8} {r['agents']:>7} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}"
        )
    output = (output or find_root() / "var" / "bench" / "decision.json").resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    say(f"figures written to {output}")


@app.command("bench-channels")
def bench_channels(
    messages: int = typer.Option(200, "--messages", min=1, help="Notifications sent per channel."),
) -> None:
    """Notifications/s per channel only: the SMTP sink and the SMS / postal simulator as
    real processes, no broker (the same figures `bench` reports after the whole system)."""
    from devstack.ports import free_port
    from devstack.procs import ServiceProcess, Supervisor

    workdir = Path(tempfile.mkdtemp(prefix="guichet-bench-channels-"))
    smtp, smtp_http, providers = free_port(), free_port(), free_port()
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


@app.command("bench-adapter")
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
    from devstack import adapter_bench
    from devstack.ports import free_port
    from devstack.procs import ServiceProcess

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
            _ensure_jars(root)
            kafka = LocalKafka(root, workdir / "kafka", sasl=True, tls=True)
            say("starting Kafka...")
            bootstrap = kafka.start()
        namespace = f"bench-{uuid.uuid4().hex[:8]}."
        sim_port, adapter_port = free_port(), free_port()
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


@app.command()
def kafka(
    port: int = typer.Option(KAFKA_PORT, "--port", help="Client port."),
    controller_port: int = typer.Option(
        0, "--controller-port", help="KRaft controller port (0: a free one)."
    ),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="Data directory (default: <repo>/var/kafka) (kept)."
    ),
) -> None:
    """Run a bare Kafka broker in the foreground until Ctrl-C (prints its bootstrap address)."""
    from devstack.kafka import main

    argv = ["--port", str(port), "--controller-port", str(controller_port)]
    if workdir is not None:
        argv += ["--workdir", str(workdir)]
    raise typer.Exit(main(argv))


app.command("token")(token)  # defined in devstack.token_command


app.command("kafka-env")(kafka_env)  # defined in devstack.kafka_env_command


if __name__ == "__main__":
    app()


@app.command()
def asyncapi(
    output: Path = typer.Option(
        Path("docs/asyncapi.yaml"), "--output", help="Where to write the document."
    ),
) -> None:
    """Regenerate the AsyncAPI document of the events from the shared contracts."""
    from devstack.asyncapi import render

    output.write_text(render(), encoding="utf-8")
    typer.echo(f"wrote {output}")


@app.command("k8s-generate")
def k8s_generate(
    root: Path = typer.Option(
        Path("deploy/k8s"), "--root", help="The kustomize tree to write into."
    ),
) -> None:
    """Regenerate deploy/k8s's workloads and Strimzi topics and users (ACLs from the topology)."""
    from devstack.k8s import write

    changed = write(root)
    for path in changed:
        typer.echo(f"wrote {path}")
    typer.echo(f"{len(changed)} file(s) changed")
