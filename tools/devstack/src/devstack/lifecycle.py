"""What `guichet-dev run` and the benchmarks share: messages, signals, the processes' health
and their orderly stop."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any, NoReturn

import typer

from devstack.kafka import LocalKafka, ensure_kafka_jars, log_tail
from devstack.keycloak import LocalKeycloak
from devstack.postgres import LocalPostgres
from devstack.stack import Stack


def say(message: str = "", *, err: bool = False) -> None:
    typer.echo(message, err=err)


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


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


def postgres_alive(pg: LocalPostgres) -> bool:
    try:
        pid = int((pg.data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, 0)
        return True
    except (OSError, ValueError, IndexError):
        return False


def exit_status(code: int | None) -> str:
    if code is None:
        return "never started"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def dead_process(
    stack: Stack | None,
    kafka: LocalKafka | None,
    pg: LocalPostgres | None,
    keycloak: LocalKeycloak | None = None,
) -> tuple[str, str] | None:
    """(description, log tail) of the first process found dead, else None."""
    if kafka is not None and (kafka.proc is None or kafka.proc.poll() is not None):
        code = None if kafka.proc is None else kafka.proc.returncode
        return f"kafka ({exit_status(code)})", log_tail(kafka.log_path)
    if keycloak is not None and (keycloak.proc is None or keycloak.proc.poll() is not None):
        code = None if keycloak.proc is None else keycloak.proc.returncode
        return f"keycloak ({exit_status(code)})", log_tail(keycloak.log_path)
    if pg is not None and not postgres_alive(pg):
        return "postgresql", log_tail(pg.log_path)
    if stack is not None:
        for name, proc in stack.processes.items():
            if not proc.is_running:
                return f"{name} ({exit_status(proc.returncode)})", proc.log_tail()
    return None


def stop_all(
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
        except Exception as e:
            say(f"warning: stopping PostgreSQL failed: {e}", err=True)
    if kafka is not None:
        say("stopping Kafka...")
        kafka.stop()
    if keycloak is not None:
        say("stopping Keycloak...")
        keycloak.stop()


def ensure_jars(root: Path) -> None:
    """The Kafka broker jars in <root>/.cache, fetched from Maven Central the first time."""
    marker = root / ".cache" / "kafka" / "libs" / ".complete"
    if not marker.is_file():
        say("fetching the Kafka broker jars from Maven Central (first run only)...")
    ensure_kafka_jars(root)
