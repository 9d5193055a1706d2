"""`make test`: the suite as three pytest runs side by side on the two cores, on one Kafka
broker and one Keycloak, both started while the lint and the audit run
(`python -m devstack.lanes --first "make lint audit"`).

The lanes:
- **in-process and tools**: `tests/unit`, `tests/deploy`, `tests/test_*.py`, then the tools'
  and adapters' integration tests (devstack's commands, the short chaos run, the bench, the
  contract kit); CPU-bound;
- **end-to-end, first and second half** (`GUICHET_E2E_SHARD`, `tests/e2e/shards.py`): the
  whole system on the real broker, Keycloak and PostgreSQL; they mostly wait on their stacks.

Each lane draws its servers' ports from its own range (`GUICHET_PORT_RANGE`), the shared
servers theirs from another. Every lane finds the broker through GUICHET_KAFKA_BOOTSTRAP and
its credentials through DEVSTACK_KAFKA_SASL (`devstack.kafka_sasl.register`), and Keycloak
through GUICHET_KEYCLOAK_URL. Topic namespaces, consumer groups prefixed by them and users
of their own keep the lanes' traffic apart, as they already kept the modules of one lane
apart; the key rotation of `tests/devstack/test_keycloak.py` happens in a realm of its own.
PostgreSQL stays one per lane (its start is cheap, and a lane drops and creates databases
by name).

The first half's output streams to the terminal; the others' are in var/test-*.log and
follow it. The exit status is non-zero when the first command or any lane failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from devstack.kafka import LocalKafka, find_root
from devstack.keycloak import LocalKeycloak
from devstack.ports import RANGE_VARIABLE

#: The shared servers' ports; the lanes' ranges below never overlap it (nor the ephemeral one).
SERVERS_PORT_RANGE = "10000-11999"
KAFKA_VARIABLE = "GUICHET_KAFKA_BOOTSTRAP"
KEYCLOAK_VARIABLE = "GUICHET_KEYCLOAK_URL"


@dataclass(frozen=True)
class Lane:
    """One pytest run: its title, its arguments, its environment, and where its output goes
    (None: the terminal)."""

    title: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    log: str | None = None


PYTEST = ("-m", "pytest", "-q", "-p", "no:cacheprovider")

LANES = (
    Lane(
        "in-process and tools tests (tests/unit, tests/deploy, tests/test_*.py, "
        "tests/adapters, tests/devstack, tests/tools)",
        (
            "--durations=15",
            "tests/unit",
            "tests/deploy",
            "tests/test_*.py",
            "tests/adapters",
            "tests/devstack",
            "tests/tools",
        ),
        {RANGE_VARIABLE: "12000-19999"},
        log="var/test-in-process.log",
    ),
    Lane(
        "end-to-end, second half (PostgreSQL, and the modules with stacks of their own)",
        ("--durations=20", "tests/e2e"),
        {"GUICHET_E2E_SHARD": "2/2", RANGE_VARIABLE: "26384-32767"},
        log="var/test-e2e-2.log",
    ),
    Lane(
        "end-to-end, first half (SQLite, the pages)",
        ("--durations=20", "tests/e2e"),
        {"GUICHET_E2E_SHARD": "1/2", RANGE_VARIABLE: "20000-26383"},
    ),
)


def expand(root: Path, args: tuple[str, ...]) -> list[str]:
    """The shell's globbing of `tests/test_*.py`, done here (no shell in between)."""
    out: list[str] = []
    for arg in args:
        out += sorted(str(p.relative_to(root)) for p in root.glob(arg)) if "*" in arg else [arg]
    return out


class Servers:
    """The broker (SASL/SCRAM over TLS with ACLs, as `tests/conftest.py` starts one) and
    Keycloak (taking one user's logins at once: the halves log the same test users in),
    started together; `env()` is what a lane needs to use them."""

    def __init__(self, root: Path, workdir: Path) -> None:
        self.kafka = LocalKafka(root, workdir / "kafka", sasl=True, tls=True)
        self.keycloak = LocalKeycloak(root, workdir / "keycloak", concurrent_logins=True)

    def start(self) -> None:
        self.keycloak.launch()  # boots while the broker starts
        self.kafka.start()
        self.keycloak.wait_ready()

    def env(self) -> dict[str, str]:
        # DEVSTACK_KAFKA_SASL (the broker's credentials) is in os.environ since kafka.start().
        return {KAFKA_VARIABLE: self.kafka.bootstrap, KEYCLOAK_VARIABLE: self.keycloak.url}

    def stop(self) -> None:
        self.kafka.stop()
        self.keycloak.stop()


def run_lanes(root: Path, servers: Servers) -> list[tuple[Lane, int, float]]:
    """Start every lane, wait for them all; (lane, exit status, seconds) each."""
    (root / "var").mkdir(exist_ok=True)
    running: list[tuple[Lane, subprocess.Popen[bytes], float]] = []
    try:
        for lane in LANES:
            env = {**os.environ, **servers.env(), **lane.env}
            out = open(root / lane.log, "wb") if lane.log else None  # noqa: SIM115
            try:
                proc = subprocess.Popen(
                    [sys.executable, *PYTEST, *expand(root, lane.args)],
                    cwd=root,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT if out else None,
                )
            finally:
                if out:
                    out.close()
            running.append((lane, proc, time.monotonic()))
        # Each lane's time ends when it does (waiting on them in turn gave every lane the
        # time of the slowest before it).
        ended: dict[int, tuple[int, float]] = {}
        while len(ended) < len(running):
            for i, (_, proc, started) in enumerate(running):
                if i not in ended and (status := proc.poll()) is not None:
                    ended[i] = (status, time.monotonic() - started)
            time.sleep(0.5)
        return [(lane, *ended[i]) for i, (lane, _, _) in enumerate(running)]
    except BaseException:
        for _, proc, _ in running:
            proc.terminate()
        for _, proc, _ in running:
            proc.wait()
        raise


def main(argv: list[str] | None = None) -> int:
    """Start the shared servers, run `--first` meanwhile, then the three lanes."""
    ap = argparse.ArgumentParser(prog="python -m devstack.lanes", description=main.__doc__)
    ap.add_argument(
        "--first",
        default="",
        help="a shell command run while the servers start (the lint and the audit); "
        "the lanes run only if it succeeds",
    )
    args = ap.parse_args(argv)
    root = find_root()
    os.environ[RANGE_VARIABLE] = SERVERS_PORT_RANGE
    workdir = Path(tempfile.mkdtemp(prefix="guichet-lanes-"))
    servers = Servers(root, workdir)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="servers")
    starting = pool.submit(servers.start)
    try:
        first = subprocess.run(args.first, shell=True, cwd=root).returncode if args.first else 0
        failed = starting.exception()  # waits for the start; reported once `first` is done
        if first != 0:
            return first
        if failed is not None:
            raise failed
        print(
            f"--- one broker ({servers.kafka.bootstrap}) and one Keycloak "
            f"({servers.keycloak.url}) for the three lanes ---",
            flush=True,
        )
        results = run_lanes(root, servers)
    finally:
        pool.shutdown()  # the start is over (it ran to its end or failed) before the stop
        servers.stop()
    for lane, _, _ in results:
        if lane.log:
            print(f"--- {lane.title} ---", flush=True)
            sys.stdout.write((root / lane.log).read_text(encoding="utf-8", errors="replace"))
    print("--- lanes ---")
    for lane, status, seconds in results:
        print(f"{'passed' if status == 0 else 'FAILED'} in {seconds:5.0f} s: {lane.title}")
    passed = all(status == 0 for _, status, _ in results)
    if passed:  # the broker's and Keycloak's folders (logs, data): about 60 MB a run
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"the broker's and Keycloak's logs are kept in {workdir}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
